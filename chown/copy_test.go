package chown

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// checkCopied verifies that dst holds src's entries (orig) shifted by m:
// owners, modes, times, content, xattrs, symlink targets; no device node,
// socket or mount content; nothing else.
func checkCopied(t *testing.T, f *tree, src string, orig, got map[string]snap, dst string, m IDMap) {
	t.Helper()
	expected := map[string]bool{}
	for rel, o := range orig {
		typ := o.Mode & unix.S_IFMT
		if f.mounted && (rel == "mnt" || strings.HasPrefix(rel, "mnt/")) || typ == unix.S_IFCHR || typ == unix.S_IFSOCK {
			continue
		}
		expected[rel] = true
		a, ok := got[rel]
		if !ok {
			t.Errorf("%s: not copied", rel)
			continue
		}
		wu, ok := m.HostUID(o.UID)
		if !ok {
			wu = Overflow
		}
		wg, ok := m.HostGID(o.GID)
		if !ok {
			wg = Overflow
		}
		if a.UID != wu || a.GID != wg {
			t.Errorf("%s: owner %d:%d, want %d:%d", rel, a.UID, a.GID, wu, wg)
		}
		if a.Mode != o.Mode || a.Size != o.Size || a.Mtime != o.Mtime || a.Atime != o.Atime || a.Target != o.Target {
			t.Errorf("%s: mode %o size %d mtime %v atime %v target %q, want %o %d %v %v %q",
				rel, a.Mode, a.Size, a.Mtime, a.Atime, a.Target, o.Mode, o.Size, o.Mtime, o.Atime, o.Target)
		}
		if want := wantXattrs(t, rel, o, m); !maps.Equal(a.Xattrs, want) {
			t.Errorf("%s: xattrs\n got %q\nwant %q", rel, a.Xattrs, want)
		}
		if typ == unix.S_IFREG {
			x, err1 := os.ReadFile(filepath.Join(src, rel))
			y, err2 := os.ReadFile(filepath.Join(dst, rel))
			if err1 != nil || err2 != nil || !bytes.Equal(x, y) {
				t.Errorf("%s: content differs (%v, %v)", rel, err1, err2)
			}
		}
	}
	for rel := range got {
		if !expected[rel] {
			t.Errorf("%s: in dst, not expected", rel)
		}
	}
}

func TestCopy(t *testing.T) {
	ctx := context.Background()
	f := buildFixture(t)
	shadow := shadowStat(t)
	orig := snapshot(t, f.root)
	dst := filepath.Join(t.TempDir(), "dst")
	opts := fullOptions(t)

	rep, err := Copy(ctx, f.root, dst, opts)
	if err != nil {
		t.Fatal(err)
	}
	if d := diffSnaps(orig, snapshot(t, f.root), exactlySame); len(d) > 0 {
		t.Errorf("copy changed the source: %q", d)
	}
	got := snapshot(t, dst)
	checkCopied(t, f, f.root, orig, got, dst, opts.Map)
	if a, b := got["links/a"], got["links/sub/b"]; a.Ino != b.Ino || a.Nlink != 2 {
		t.Errorf("hardlinks not kept: inodes %d, %d, nlink %d", a.Ino, b.Ino, a.Nlink)
	}
	if s := got["sparse"]; s.Size != sparseSize || s.Blocks*512 > 1<<20 {
		t.Errorf("sparse file: size %d, %d bytes allocated, want %d and at most 1 MiB", s.Size, s.Blocks*512, sparseSize)
	}
	if rep.Devices != 1 || rep.Sockets != 1 {
		t.Errorf("report: %d devices, %d sockets, want 1 each", rep.Devices, rep.Sockets)
	}
	if st := shadowStat(t); st != shadow {
		t.Error("/etc/shadow changed")
	}
}

func TestCopyUpdate(t *testing.T) {
	ctx := context.Background()
	f := buildFixture(t)
	dst := filepath.Join(t.TempDir(), "dst")
	opts := fullOptions(t)
	if _, err := Copy(ctx, f.root, dst, opts); err != nil {
		t.Fatal(err)
	}
	// The source changes while the containers still run.
	later := time.Now().Add(time.Hour)
	changed := filepath.Join(f.root, "owners/f33")
	if err := os.WriteFile(changed, []byte("changed content"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(changed, later, later); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(f.root, "owners/f999")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(f.root, "a")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.root, "owners/new"), []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(f.root, "inner")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("owners/f70", filepath.Join(f.root, "inner")); err != nil {
		t.Fatal(err)
	}
	orig := snapshot(t, f.root)

	if _, err := Copy(ctx, f.root, dst, opts); !errors.Is(err, ErrNotEmpty) {
		t.Errorf("copy into a non-empty dst without update: %v, want ErrNotEmpty", err)
	}
	opts.Update = true
	rep, err := Copy(ctx, f.root, dst, opts)
	if err != nil {
		t.Fatal(err)
	}
	checkCopied(t, f, f.root, orig, snapshot(t, dst), dst, opts.Map)
	if rep.Removed != 2 {
		t.Errorf("removed %d, want 2 (owners/f999, a)", rep.Removed)
	}
	if rep.Unchanged == 0 {
		t.Error("update rewrote every file")
	}
	// the file rewritten, the symlink and the new file; dirs always get
	// their metadata
	if files := rep.Changed - rep.Dirs; files != 3 {
		t.Errorf("update wrote %d non-directories, want 3", files)
	}
}

func TestCopyRefusesNesting(t *testing.T) {
	f := buildFixture(t)
	before := snapshot(t, f.root)
	opts := fullOptions(t)
	if _, err := Copy(context.Background(), f.root, filepath.Join(f.root, "owners", "inside"), opts); err == nil {
		t.Error("copy into a directory inside the source succeeded")
	}
	if d := diffSnaps(before, snapshot(t, f.root), exactlySame); len(d) > 0 {
		t.Errorf("refused copy changed the source: %q", d)
	}
	opts.Update = true
	if _, err := Copy(context.Background(), filepath.Join(f.root, "owners"), f.root, opts); err == nil {
		t.Error("update of a directory that holds the source succeeded")
	}
}

// TestCopyDataShapes: every file shape gets the same content and size in
// dst, and holes stay holes, whichever path (one range, or SEEK_DATA
// segments with a truncate for a trailing hole) copyData takes.
func TestCopyDataShapes(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		name   string
		size   int64
		data   map[int64]string // offset → bytes written
		sparse bool             // dst must allocate well under size
	}{
		{"empty", 0, nil, false},
		{"dense", 3*4096 + 17, map[int64]string{0: strings.Repeat("d", 3*4096+17)}, false},
		{"trailing hole", 8 * mib, map[int64]string{0: "head"}, true},
		{"leading hole", 8 * mib, map[int64]string{8*mib - 5: "tail!"}, true},
		{"hole between", 8 * mib, map[int64]string{0: "head", 4 * mib: "middle", 8*mib - 3: "end"}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
			f, err := os.Create(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Truncate(c.size); err != nil {
				t.Fatal(err)
			}
			for off, s := range c.data {
				if _, err := f.WriteAt([]byte(s), off); err != nil {
					t.Fatal(err)
				}
			}
			f.Close()
			var st unix.Stat_t
			if err := unix.Stat(src, &st); err != nil {
				t.Fatal(err)
			}
			if c.sparse && st.Blocks*512 >= st.Size {
				t.Skipf("the filesystem of %s allocated the holes", dir)
			}
			rfd, err := unix.Open(src, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(rfd)
			wfd, err := unix.Open(dst, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(wfd)
			if err := copyData(rfd, wfd, st.Size, st.Blocks); err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(dst)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("dst content differs from src (%d bytes vs %d)", len(got), len(want))
			}
			var dt unix.Stat_t
			if err := unix.Stat(dst, &dt); err != nil {
				t.Fatal(err)
			}
			if c.sparse && dt.Blocks*512 > mib {
				t.Errorf("dst allocates %d bytes of %d: holes were filled", dt.Blocks*512, dt.Size)
			}
		})
	}
}

// TestCopyBlocked checks a refused Copy: it returns the whole census with a
// *BlockedError, leaves a fresh dst empty again, and never writes the
// content of a file hardlinked from outside src (multi-link inodes are
// copied only after the walk has seen every link).
func TestCopyBlocked(t *testing.T) {
	for _, c := range []struct {
		name string
		opts func(*Options)
		prep func(t *testing.T, f *tree)
		want error
	}{
		{"unmappable", func(o *Options) { o.MapUnmappableToOverflow = false }, nil, ErrUnmappable},
		{"device", func(o *Options) { o.AllowDevices = false }, nil, ErrDeviceNode},
		{"external hardlink", nil, func(t *testing.T, f *tree) {
			outside := filepath.Join(t.TempDir(), "secret")
			if err := os.WriteFile(outside, []byte("host secret"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Link(outside, filepath.Join(f.root, "links", "secret")); err != nil {
				t.Fatal(err)
			}
		}, ErrExternalHardlinks},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := buildFixture(t)
			if c.prep != nil {
				c.prep(t, f)
			}
			opts := fullOptions(t)
			if c.opts != nil {
				c.opts(&opts)
			}
			full, err := Audit(context.Background(), f.root, opts)
			if err != nil {
				t.Fatal(err)
			}
			dst := filepath.Join(t.TempDir(), "dst")
			rep, err := Copy(context.Background(), f.root, dst, opts)
			if !errors.Is(err, c.want) {
				t.Fatalf("Copy = %v, want %v", err, c.want)
			}
			var b *BlockedError
			if !errors.As(err, &b) || b.Hint() == "" || rep == nil {
				t.Fatalf("want a *BlockedError with a hint and the census, got %v, %v", err, rep)
			}
			if rep.Files != full.Files || rep.Dirs != full.Dirs || rep.UnmappableEntries != full.UnmappableEntries ||
				rep.Devices != full.Devices || rep.ExternalHardlinks != full.ExternalHardlinks || rep.Changed != 0 {
				t.Errorf("refused copy's census %+v differs from the audit's %+v (or says it changed something)", rep, full)
			}
			names, err := os.ReadDir(dst)
			if err != nil || len(names) != 0 {
				t.Errorf("a refused copy left %d entries in dst (%v)", len(names), err)
			}
		})
	}
}

// TestCopyCensusIsTheAudit: the report of a Copy, fresh and as a delta
// sync, counts the source exactly as Audit does (migrate verifies a copied
// volume by comparing the final sync's report with an audit of the copy).
func TestCopyCensusIsTheAudit(t *testing.T) {
	ctx := context.Background()
	f := buildFixture(t)
	opts := fullOptions(t)
	want, err := Audit(ctx, f.root, opts)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "dst")
	for _, update := range []bool{false, true} {
		opts.Update = update
		got, err := Copy(ctx, f.root, dst, opts)
		if err != nil {
			t.Fatalf("update=%v: %v", update, err)
		}
		census := func(r *Report) Report {
			c := *r
			c.Changed, c.Unchanged = 0, 0
			return c
		}
		if g, w := census(got), census(want); !reflect.DeepEqual(g, w) {
			t.Errorf("update=%v: Copy's census differs from Audit's:\n got %+v\nwant %+v", update, g, w)
		}
	}
}
