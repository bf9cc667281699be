package chown

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Safety tests: what a container that controls the tree can do to a root
// walker while it runs (swap directories for symlinks, hardlink host files
// into the tree) and what a crash in the middle of a shift leaves behind.

// outsideMarker is the content of every file outside the tree; a copy that
// followed a symlink out of the tree would carry it into dst.
const outsideMarker = "outside-the-tree\n"

// buildOutside fills dir with files and directories owned by uid:gid 4242
// with an xattr each, the host files a walker must never touch.
func buildOutside(t testing.TB, dir string) {
	t.Helper()
	for i := range 3 {
		sub := filepath.Join(dir, fmt.Sprintf("sub%d", i))
		if err := os.MkdirAll(sub, 0o750); err != nil {
			t.Fatal(err)
		}
		for j := range 5 {
			p := filepath.Join(sub, fmt.Sprintf("f%d", j))
			if err := os.WriteFile(p, []byte(outsideMarker), 0o640); err != nil {
				t.Fatal(err)
			}
		}
	}
	err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(p, 4242, 4242); err != nil {
			return err
		}
		return SetXattr(p, "user.safety", []byte("x"))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// buildSwapTree makes n directories d0..dn-1 below root, each with files of
// several owners and a subdirectory.
func buildSwapTree(t testing.TB, root string, n int) {
	t.Helper()
	owners := []int{0, 33, 999, 1000}
	for i := range n {
		d := filepath.Join(root, fmt.Sprintf("d%d", i), "sub")
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for j := range 40 {
			dir := filepath.Dir(d)
			if j%2 == 1 {
				dir = d
			}
			p := filepath.Join(dir, fmt.Sprintf("f%d", j))
			if err := os.WriteFile(p, []byte("in\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			o := owners[j%len(owners)]
			if err := os.Lchown(p, o, o); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// swapper swaps root/d<i> for a symlink to target and back, as a hostile
// container would, until stop is closed or it has done max swaps.
func swapper(root, target string, n, max int, stop <-chan struct{}) (done <-chan int) {
	out := make(chan int, 1)
	go func() {
		swaps := 0
		defer func() { out <- swaps }()
		for swaps < max {
			select {
			case <-stop:
				return
			default:
			}
			d := filepath.Join(root, fmt.Sprintf("d%d", swaps%n))
			if os.Rename(d, d+".tmp") != nil {
				continue
			}
			_ = os.Symlink(target, d)
			runtimeYield()
			_ = os.Remove(d)
			_ = os.Rename(d+".tmp", d)
			swaps++
		}
	}()
	return out
}

func runtimeYield() { time.Sleep(time.Duration(rand.IntN(50)) * time.Microsecond) }

// sameOutside compares what a chown, chmod or xattr write would change.
func sameOutside(x, y snap) bool {
	return x.Ino == y.Ino && x.UID == y.UID && x.GID == y.GID && x.Mode == y.Mode &&
		x.Ctime == y.Ctime && fmt.Sprint(x.Xattrs) == fmt.Sprint(y.Xattrs)
}

// TestSafetySymlinkSwapRace runs Audit, Shift, Reverse and Copy over a tree
// whose directories are swapped for symlinks to a directory outside it (by
// absolute and relative path) while they run, and checks that nothing
// outside changed and that no copy carried outside content into dst.
func TestSafetySymlinkSwapRace(t *testing.T) {
	requireRoot(t)
	base := t.TempDir()
	root, outside := filepath.Join(base, "tree"), filepath.Join(base, "outside")
	buildOutside(t, outside)
	buildSwapTree(t, root, 4)
	before := snapshot(t, outside)
	shadow := shadowStat(t)

	targets := []string{outside, "../outside", "/"}
	var runs, failures atomic.Int64
	ctx := context.Background()
	for round := range 10 {
		stop := make(chan struct{})
		done := swapper(root, targets[round%len(targets)], 4, 200000, stop)
		opts := Options{Map: testMap(t), MapUnmappableToOverflow: true, AllowDevices: true, Workers: 2,
			JournalDir: filepath.Join(base, fmt.Sprintf("journal%d", round))}
		note := func(what string, err error) {
			runs.Add(1)
			if err != nil {
				failures.Add(1)
				t.Logf("round %d %s: %v", round, what, err)
			}
		}
		for i := range 3 {
			_, err := Audit(ctx, root, opts)
			note("audit", err)
			_, err = Shift(ctx, root, opts)
			note("shift", err)
			_, err = Reverse(ctx, root, opts)
			note("reverse", err)
			if err := os.RemoveAll(opts.JournalDir); err != nil {
				t.Fatal(err)
			}
			dst := filepath.Join(base, fmt.Sprintf("copy%d-%d", round, i))
			_, err = Copy(ctx, root, dst, opts)
			note("copy", err)
			checkNoOutsideContent(t, dst)
			if err := os.RemoveAll(dst); err != nil {
				t.Fatal(err)
			}
		}
		close(stop)
		t.Logf("round %d: %d swaps", round, <-done)
	}
	t.Logf("%d runs, %d stopped by the race", runs.Load(), failures.Load())

	if d := diffSnaps(before, snapshot(t, outside), sameOutside); len(d) > 0 {
		t.Errorf("files outside the tree changed: %v", d)
	}
	if after := shadowStat(t); after.Uid != shadow.Uid || after.Gid != shadow.Gid || after.Mode != shadow.Mode || after.Ctim != shadow.Ctim {
		t.Errorf("/etc/shadow changed: %+v → %+v", shadow, after)
	}
}

// checkNoOutsideContent fails when a regular file below dst holds the
// outside marker: Copy followed a symlink out of the tree.
func checkNoOutsideContent(t *testing.T, dst string) {
	t.Helper()
	_ = filepath.Walk(dst, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err == nil && string(b) == outsideMarker {
			t.Errorf("copy carried a file from outside the tree: %s", p)
		}
		return nil
	})
}

// TestSafetyExternalHardlinkNotGivenAway hardlinks a host file into the tree
// (what a compromised container's preparation looks like once an admin or a
// careless script ran ln on the host) and checks that the audit reports it
// and that Shift refuses without ever touching the host file (its ctime
// included: the walk defers hardlinked inodes until it has seen every link).
func TestSafetyExternalHardlinkNotGivenAway(t *testing.T) {
	requireRoot(t)
	base := t.TempDir()
	root, outside := filepath.Join(base, "tree"), filepath.Join(base, "outside")
	buildOutside(t, outside)
	buildSwapTree(t, root, 1)
	host := filepath.Join(outside, "sub0", "f0")
	if err := os.Link(host, filepath.Join(root, "d0", "link")); err != nil {
		t.Fatal(err)
	}
	// two links inside the tree to one inode are fine; only the third,
	// outside, makes it external
	if err := os.Link(filepath.Join(root, "d0", "f0"), filepath.Join(root, "d0", "sub", "inner")); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, outside)
	ctx := context.Background()
	opts := Options{Map: testMap(t), Workers: 2, JournalDir: filepath.Join(base, "journal")}

	rep, err := Audit(ctx, root, opts)
	if err != nil {
		t.Fatal(err)
	}
	if rep.ExternalHardlinks != 1 || len(rep.Examples["external_hardlinks"]) != 1 || rep.Examples["external_hardlinks"][0] != "d0/link" {
		t.Errorf("audit: %d external hardlinks %v, want 1 [d0/link]", rep.ExternalHardlinks, rep.Examples["external_hardlinks"])
	}

	_, err = Shift(ctx, root, opts)
	if err == nil {
		t.Error("shift of a tree with a hardlink to a host file succeeded")
	} else if hinted, ok := err.(interface{ Hint() string }); !ok || hinted.Hint() == "" {
		t.Errorf("shift refused without a hint: %v", err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(host, &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != 4242 || st.Gid != 4242 {
		t.Errorf("host file given away: owner %d:%d, want 4242:4242", st.Uid, st.Gid)
	}
	if d := diffSnaps(before, snapshot(t, outside), sameOutside); len(d) > 0 {
		t.Errorf("files outside the tree changed: %v", d)
	}
	if err := unix.Lstat(filepath.Join(root, "d0", "f2"), &st); err != nil {
		t.Fatal(err)
	} else if st.Uid != 999 {
		t.Errorf("refused shift changed the tree: d0/f2 owned by %d, want 999", st.Uid)
	}
}

// Crash campaign: the shift and its reverse run in a child process (this
// test binary re-executed) that is killed with SIGKILL at random points.

const (
	envChildOp      = "UNROOT_SAFETY_CHILD_OP"
	envChildRoot    = "UNROOT_SAFETY_CHILD_ROOT"
	envChildJournal = "UNROOT_SAFETY_CHILD_JOURNAL"
)

// TestSafetyChild is the child of the crash campaign; it does nothing
// unless the campaign started it.
func TestSafetyChild(t *testing.T) {
	op := os.Getenv(envChildOp)
	if op == "" {
		t.Skip("run by TestSafetyCrashCampaign only")
	}
	opts := crashOptions(t, os.Getenv(envChildJournal))
	var err error
	switch op {
	case "shift":
		_, err = Shift(context.Background(), os.Getenv(envChildRoot), opts)
	case "reverse":
		_, err = Reverse(context.Background(), os.Getenv(envChildRoot), opts)
	default:
		err = fmt.Errorf("unknown op %q", op)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func crashOptions(t testing.TB, journal string) Options {
	return Options{Map: testMap(t), MapUnmappableToOverflow: true, Workers: 2, JournalDir: journal}
}

// buildCrashTree makes a deterministic tree of about n files: several
// owners, setuid and setgid files, ACLs, v2 and v3 capabilities, hardlinks
// within the tree and symlinks.
func buildCrashTree(t testing.TB, root string, n int) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	owners := []int{0, 1, 33, 70, 999, 1000, 65534}
	perDir := 200
	for i := range n {
		dir := filepath.Join(root, fmt.Sprintf("d%03d", i/perDir), fmt.Sprintf("s%d", i%3))
		if i%perDir < 3 {
			must(os.MkdirAll(dir, 0o755))
			o := owners[(i/perDir)%len(owners)]
			must(os.Lchown(dir, o, o))
		}
		p := filepath.Join(dir, fmt.Sprintf("f%05d", i))
		switch {
		case i%97 == 5:
			must(os.Symlink("../s0", p))
			must(os.Lchown(p, owners[i%len(owners)], 0))
			continue
		case i%89 == 7 && i > perDir:
			must(os.Link(filepath.Join(root, "d000", "s0", "f00000"), p))
			continue
		}
		must(os.WriteFile(p, nil, 0o644))
		o := owners[i%len(owners)]
		must(os.Lchown(p, o, owners[(i/7)%len(owners)]))
		switch {
		case i%53 == 1:
			must(unix.Chmod(p, 0o4755))
		case i%59 == 2:
			must(unix.Chmod(p, 0o2750))
		case i%61 == 3:
			must(SetXattr(p, XattrACLAccess, aclBytes([]uint32{33, 1000}, []uint32{70})))
		case i%67 == 4:
			must(SetXattr(p, XattrCapability, capBytes(2, 1<<10, 0)))
		case i%71 == 6:
			must(SetXattr(p, XattrCapability, capBytes(3, 1<<12, 0)))
		}
	}
}

// ownership is the part of a snapshot a shift writes.
func ownership(s map[string]snap) map[string]string {
	out := make(map[string]string, len(s))
	for rel, x := range s {
		out[rel] = fmt.Sprintf("%d:%d %o %q", x.UID, x.GID, x.Mode, fmt.Sprint(x.Xattrs))
	}
	return out
}

func diffOwnership(want, got map[string]string) []string {
	var d []string
	for rel, w := range want {
		if g, ok := got[rel]; !ok || g != w {
			d = append(d, fmt.Sprintf("%s: want %s, got %s", rel, w, g))
		}
	}
	for rel := range got {
		if _, ok := want[rel]; !ok {
			d = append(d, rel+": unexpected")
		}
	}
	if len(d) > 10 {
		d = append(d[:10], fmt.Sprintf("and %d more", len(d)-10))
	}
	return d
}

// TestSafetyCrashCampaign SIGKILLs Shift and Reverse at random points of a
// ~20k-file tree, re-runs them, and checks that the end state equals a
// clean run's (owners, modes, ACL and capability bytes; an inode shifted
// twice would show an owner mapped twice) and that Reverse restores the
// original exactly.
func TestSafetyCrashCampaign(t *testing.T) {
	requireRoot(t)
	if testing.Short() {
		t.Skip("builds two 20k-file trees")
	}
	base := t.TempDir()
	clean, crashed := filepath.Join(base, "clean"), filepath.Join(base, "crashed")
	const files = 20000
	buildCrashTree(t, clean, files)
	buildCrashTree(t, crashed, files)
	orig := ownership(snapshot(t, crashed))
	if d := diffOwnership(ownership(snapshot(t, clean)), orig); len(d) > 0 {
		t.Fatalf("the two trees differ before the test: %v", d)
	}

	// the reference: one uninterrupted shift, timed to aim the kills
	start := time.Now()
	if _, err := Shift(context.Background(), clean, crashOptions(t, filepath.Join(base, "clean-journal"))); err != nil {
		t.Fatal(err)
	}
	span := time.Since(start) + 30*time.Millisecond // plus the child's start
	want := ownership(snapshot(t, clean))
	if d := diffOwnership(orig, want); len(d) == 0 {
		t.Fatal("the clean shift changed nothing")
	}

	journal := filepath.Join(base, "journal")
	child := func(op string, kill time.Duration) (finished bool) {
		t.Helper()
		cmd := exec.Command(os.Args[0], "-test.run=^TestSafetyChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), envChildOp+"="+op, envChildRoot+"="+crashed, envChildJournal+"="+journal)
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		var timer <-chan time.Time
		if kill > 0 {
			timer = time.After(kill)
		}
		select {
		case err := <-exited:
			if err != nil {
				t.Fatalf("%s child failed: %v\n%s", op, err, out.String())
			}
			return true
		case <-timer:
			_ = cmd.Process.Signal(syscall.SIGKILL)
			err := <-exited
			var ee *exec.ExitError
			if errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signaled() {
				return false
			}
			if err != nil {
				t.Fatalf("%s child failed: %v\n%s", op, err, out.String())
			}
			return true // it finished just before the kill
		case <-time.After(5 * time.Minute):
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-exited
			t.Fatalf("%s child did not finish in 5 minutes", op)
			return false
		}
	}
	randomKill := func() time.Duration {
		// aim at the first half of a full run: a resumed run has less left
		// to do, so a later point would often miss it
		hi := max(10*time.Millisecond, min(300*time.Millisecond, span/2))
		return 5*time.Millisecond + time.Duration(rand.Int64N(int64(hi)))
	}

	// each cycle: shift under kills until it completes, check; reverse under
	// kills until it completes, check; until 20 kills landed mid-run (each
	// cycle is bounded, and so is the number of cycles)
	kills := 0
	for cycle := 0; cycle < 30 && kills < 20; cycle++ {
		for _, op := range []string{"shift", "reverse"} {
			for attempt := 0; attempt < 30; attempt++ {
				if child(op, randomKill()) {
					break
				}
				kills++
			}
			// one more run without a kill completes it (a no-op if done)
			child(op, 0)
			got := ownership(snapshot(t, crashed))
			ref := want
			if op == "reverse" {
				ref = orig
			}
			if d := diffOwnership(ref, got); len(d) > 0 {
				t.Fatalf("cycle %d: after %s under kills the tree differs from a clean run: %v", cycle, op, d)
			}
		}
	}
	t.Logf("%d kills landed mid-run", kills)
	if kills < 20 {
		t.Errorf("only %d kills landed before the runs finished; the campaign needs 20", kills)
	}
}
