package chown

import (
	"context"
	"encoding/binary"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// shiftACLBytes shifts the ids of an ACL xattr by hand, independent of the
// codec: entries are 8 bytes after a 4-byte header, tag at +0, id at +4.
func shiftACLBytes(t testing.TB, b []byte, m IDMap) []byte {
	t.Helper()
	out := append([]byte{}, b...)
	for off := 4; off+8 <= len(out); off += 8 {
		tag := binary.LittleEndian.Uint16(out[off:])
		id := binary.LittleEndian.Uint32(out[off+4:])
		var h uint32
		var ok bool
		switch tag {
		case ACLUser:
			h, ok = m.HostUID(id)
		case ACLGroup:
			h, ok = m.HostGID(id)
		default:
			continue
		}
		if !ok {
			t.Fatalf("fixture ACL id %d unmappable", id)
		}
		binary.LittleEndian.PutUint32(out[off+4:], h)
	}
	return out
}

// checkShifted verifies that after is orig shifted by m: owners mapped (or
// the overflow id), modes with setuid/setgid kept, ACL ids and capability
// root ids shifted, other xattrs, times and sizes kept; device nodes and
// the nested mount untouched.
func checkShifted(t *testing.T, f *tree, orig, after map[string]snap, m IDMap) {
	t.Helper()
	for rel, o := range orig {
		a, ok := after[rel]
		if !ok {
			t.Errorf("%s: gone", rel)
			continue
		}
		if (f.mounted && (rel == "mnt" || strings.HasPrefix(rel, "mnt/"))) || o.Mode&unix.S_IFMT == unix.S_IFCHR {
			if !exactlySame(o, a) {
				t.Errorf("%s: changed, want untouched", rel)
			}
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
			t.Errorf("%s: owner %d:%d, want %d:%d (from %d:%d)", rel, a.UID, a.GID, wu, wg, o.UID, o.GID)
		}
		if a.Mode != o.Mode {
			t.Errorf("%s: mode %o, want %o", rel, a.Mode, o.Mode)
		}
		if a.Ino != o.Ino || a.Size != o.Size || a.Mtime != o.Mtime || a.Target != o.Target {
			t.Errorf("%s: inode, size, mtime or target changed", rel)
		}
		want := wantXattrs(t, rel, o, m)
		if !maps.Equal(a.Xattrs, want) {
			t.Errorf("%s: xattrs\n got %q\nwant %q", rel, a.Xattrs, want)
		}
	}
}

// wantXattrs is what the xattrs of the fixture entry rel, which had o's,
// become when shifted by m.
func wantXattrs(t testing.TB, rel string, o snap, m IDMap) map[string]string {
	hostRoot, _ := m.HostUID(0)
	h1000, _ := m.HostUID(1000)
	want := maps.Clone(o.Xattrs)
	for _, n := range []string{XattrACLAccess, XattrACLDefault} {
		if v, ok := want[n]; ok {
			want[n] = string(shiftACLBytes(t, []byte(v), m))
		}
	}
	switch rel {
	case "bin/capv2":
		want[XattrCapability] = string(capBytes(3, 1<<10, hostRoot))
	case "bin/capv3":
		want[XattrCapability] = string(capBytes(3, 1<<13, h1000))
	}
	return want
}

func fullOptions(t testing.TB) Options {
	return Options{Map: testMap(t), MapUnmappableToOverflow: true, AllowDevices: true,
		JournalDir: filepath.Join(t.TempDir(), "journal"), Workers: 3}
}

func TestShiftAndReverse(t *testing.T) {
	ctx := context.Background()
	f := buildFixture(t)
	shadow := shadowStat(t)
	orig := snapshot(t, f.root)
	opts := fullOptions(t)

	rep, err := Shift(ctx, f.root, opts)
	if err != nil {
		t.Fatal(err)
	}
	after := snapshot(t, f.root)
	checkShifted(t, f, orig, after, opts.Map)
	// every inode but the device node changes; the mount is not walked
	if rep.Changed != rep.Files+rep.Dirs+rep.Symlinks+rep.FIFOs+rep.Sockets {
		t.Errorf("changed %d inodes, report counts %d", rep.Changed, rep.Files+rep.Dirs+rep.Symlinks+rep.FIFOs+rep.Sockets)
	}
	if rep.AlreadyDone || rep.Resumed {
		t.Errorf("first shift: already done %v, resumed %v", rep.AlreadyDone, rep.Resumed)
	}

	again, err := Shift(ctx, f.root, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !again.AlreadyDone {
		t.Error("second shift did not say it was already done")
	}
	if d := diffSnaps(after, snapshot(t, f.root), exactlySame); len(d) > 0 {
		t.Errorf("second shift changed the tree: %q", d)
	}

	rrep, err := Reverse(ctx, f.root, opts)
	if err != nil {
		t.Fatal(err)
	}
	if rrep.Changed != rep.Changed || rrep.Mismatched != 0 {
		t.Errorf("reverse restored %d (mismatched %d), shift changed %d", rrep.Changed, rrep.Mismatched, rep.Changed)
	}
	if d := diffSnaps(orig, snapshot(t, f.root), restored); len(d) > 0 {
		t.Errorf("reverse did not restore: %q", d)
	}
	if r, err := Reverse(ctx, f.root, opts); err != nil || !r.AlreadyDone {
		t.Errorf("second reverse: %v, already done %v", err, r != nil && r.AlreadyDone)
	}
	if st := shadowStat(t); st != shadow {
		t.Error("/etc/shadow changed")
	}

	// A reversed journal is archived and the tree can be shifted anew.
	if _, err := Shift(ctx, f.root, opts); err != nil {
		t.Fatal(err)
	}
	checkShifted(t, f, orig, snapshot(t, f.root), opts.Map)
}

func TestShiftBlocked(t *testing.T) {
	for _, c := range []struct {
		name string
		opts func(*Options)
		want error
	}{
		{"unmappable", func(o *Options) { o.MapUnmappableToOverflow = false }, ErrUnmappable},
		{"device", func(o *Options) { o.AllowDevices = false }, ErrDeviceNode},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := buildFixture(t)
			before := snapshot(t, f.root)
			opts := fullOptions(t)
			c.opts(&opts)
			rep, err := Shift(context.Background(), f.root, opts)
			if !errors.Is(err, c.want) {
				t.Fatalf("Shift = %v, want %v", err, c.want)
			}
			var b *BlockedError
			if !errors.As(err, &b) || rep == nil || b.Hint() == "" {
				t.Errorf("want a *BlockedError with the audit, got %v, %v", err, rep)
			}
			if rep != nil && (rep.Changed != 0 || rep.Undone == 0) {
				t.Errorf("blocked shift: changed %d, undone %d; want 0 left changed and some put back", rep.Changed, rep.Undone)
			}
			if d := diffSnaps(before, snapshot(t, f.root), restored); len(d) > 0 {
				t.Errorf("blocked shift left the tree changed: %q", d)
			}
		})
	}
}

var errCrash = errors.New("simulated crash")

func TestShiftResume(t *testing.T) {
	ctx := context.Background()
	clean := buildFixture(t)
	cleanOpts := fullOptions(t)
	if _, err := Shift(ctx, clean.root, cleanOpts); err != nil {
		t.Fatal(err)
	}
	want := snapshot(t, clean.root)
	sameShift := func(x, y snap) bool {
		return x.UID == y.UID && x.GID == y.GID && x.Mode == y.Mode && x.Size == y.Size &&
			x.Target == y.Target && maps.Equal(x.Xattrs, y.Xattrs)
	}
	for _, n := range []int{1, 5, 23, 60} {
		t.Run("after "+itoa(n), func(t *testing.T) {
			f := buildFixture(t)
			orig := snapshot(t, f.root)
			opts := fullOptions(t)
			var applied atomic.Int64
			opts.afterApply = func() error {
				if applied.Add(1) >= int64(n) {
					return errCrash
				}
				return nil
			}
			if _, err := Shift(ctx, f.root, opts); !errors.Is(err, errCrash) {
				t.Fatalf("Shift = %v, want the crash", err)
			}
			// A record torn by the crash, never synced, must not block resume.
			j, err := os.OpenFile(filepath.Join(opts.JournalDir, journalFile), os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			torn := appendRecord(nil, &record{Dev: 1, Ino: 2, Rel: "torn", UID: 3})
			if _, err := j.Write(torn[:len(torn)-3]); err != nil {
				t.Fatal(err)
			}
			j.Close()

			opts.afterApply = nil
			rep, err := Shift(ctx, f.root, opts)
			if err != nil {
				t.Fatal(err)
			}
			if !rep.Resumed {
				t.Error("second run did not resume")
			}
			if d := diffSnaps(want, snapshot(t, f.root), sameShift); len(d) > 0 {
				t.Errorf("resumed shift differs from a clean one: %q", d)
			}
			if _, err := Reverse(ctx, f.root, opts); err != nil {
				t.Fatal(err)
			}
			if d := diffSnaps(orig, snapshot(t, f.root), restored); len(d) > 0 {
				t.Errorf("reverse after resume did not restore: %q", d)
			}
		})
	}
}

func TestShiftCancelled(t *testing.T) {
	f := buildFixture(t)
	orig := snapshot(t, f.root)
	opts := fullOptions(t)
	ctx, cancel := context.WithCancel(context.Background())
	var n atomic.Int64
	opts.afterApply = func() error {
		if n.Add(1) == 10 {
			cancel()
		}
		return nil
	}
	if _, err := Shift(ctx, f.root, opts); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shift = %v, want cancelled", err)
	}
	// Reverse undoes the journaled part of an interrupted shift.
	if _, err := Reverse(context.Background(), f.root, opts); err != nil {
		t.Fatal(err)
	}
	if d := diffSnaps(orig, snapshot(t, f.root), restored); len(d) > 0 {
		t.Errorf("reverse of an interrupted shift did not restore: %q", d)
	}
}

func TestShiftJournalOfAnotherTree(t *testing.T) {
	a, b := buildFixture(t), buildFixture(t)
	opts := fullOptions(t)
	opts.afterApply = func() error { return errCrash }
	if _, err := Shift(context.Background(), a.root, opts); !errors.Is(err, errCrash) {
		t.Fatal(err)
	}
	opts.afterApply = nil
	if _, err := Shift(context.Background(), b.root, opts); err == nil || !strings.Contains(err.Error(), "another directory") {
		t.Errorf("resuming on another tree: %v", err)
	}
	if _, err := Reverse(context.Background(), b.root, opts); err == nil {
		t.Error("reversing another tree succeeded")
	}
}

// TestShiftTreeChangedBeforeLinks: a link made to a multi-link file after the
// walk counted its links (here: from outside the tree) stops Shift before
// that inode changes, with a hint; the outside link's owner is untouched,
// and running Shift again, once the link is gone, resumes and finishes.
func TestShiftTreeChangedBeforeLinks(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "tree")
	for _, d := range []string{root, filepath.Join(root, "d")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	a, b := filepath.Join(root, "a"), filepath.Join(root, "d", "b")
	if err := os.WriteFile(a, []byte("linked"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(a, b); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "plain"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(base, "outside")
	opts := Options{Map: testMap(t), JournalDir: filepath.Join(base, "journal"), Workers: 2}
	opts.beforeLinks = func() {
		if err := os.Link(a, outside); err != nil {
			t.Error(err)
		}
	}
	_, err := Shift(context.Background(), root, opts)
	var tc *TreeChangedError
	if !errors.As(err, &tc) || (tc.Path != "a" && tc.Path != "d/b") || !strings.Contains(err.Error(), "link count changed from 2 to 3") || tc.Hint() == "" {
		t.Fatalf("Shift = %v; want a *TreeChangedError naming a or d/b, its link count and a hint", err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(outside, &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != 0 || st.Gid != 0 {
		t.Errorf("the file linked from outside was given away: %d:%d", st.Uid, st.Gid)
	}
	hostRoot, _ := opts.Map.HostUID(0)
	if err := unix.Lstat(filepath.Join(root, "plain"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != hostRoot {
		t.Errorf("plain: owner %d, want %d (shifted before the deferred pass)", st.Uid, hostRoot)
	}

	// The link goes; the re-run resumes from the journal and finishes.
	if err := os.Remove(outside); err != nil {
		t.Fatal(err)
	}
	opts.beforeLinks = nil
	rep, err := Shift(context.Background(), root, opts)
	if err != nil {
		t.Fatalf("re-run: %v", err)
	}
	if !rep.Resumed {
		t.Errorf("re-run did not resume from the journal: %+v", rep)
	}
	for _, p := range []string{a, b, root} {
		if err := unix.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid != hostRoot || st.Gid != hostRoot {
			t.Errorf("%s: owner %d:%d after the re-run, want %d:%d", p, st.Uid, st.Gid, hostRoot, hostRoot)
		}
	}
}
