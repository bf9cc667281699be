package e2e

import (
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/unroot/unroot/chown"
	"golang.org/x/sys/unix"
)

// safetyMarker starts the content of every file the tests put in a tree; a
// copy that followed a symlink out of the tree holds files without it.
const safetyMarker = "safety-"

// safetySnapshot records owner, mode, ctime (unless noCtime) and every
// xattr's bytes of each path under root, without following symlinks.
// Directories named in skip (relative to root) are not entered.
func safetySnapshot(t *testing.T, root string, noCtime bool, skip ...string) map[string]string {
	t.Helper()
	snap := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil // removed by someone else while walked
			}
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() && contains(skip, rel) {
			return filepath.SkipDir
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return nil
		}
		line := fmt.Sprintf("%o %d:%d", st.Mode, st.Uid, st.Gid)
		if !noCtime {
			line += fmt.Sprintf(" c%d.%d", st.Ctim.Sec, st.Ctim.Nsec)
		}
		buf := make([]byte, 4096)
		n, _ := unix.Llistxattr(p, buf)
		names := strings.Split(strings.TrimRight(string(buf[:max(n, 0)]), "\x00"), "\x00")
		sort.Strings(names)
		for _, name := range names {
			if name == "" {
				continue
			}
			v := make([]byte, 4096)
			if m, err := unix.Lgetxattr(p, name, v); err == nil {
				line += fmt.Sprintf(" %s=%x", name, v[:m])
			}
		}
		snap[rel] = line
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func contains(s []string, x string) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}

// diffSafety reports paths present before and after whose line changed.
// Paths that appeared or vanished are others' business (a shared host):
// a chown, chmod or xattr write changes a line, it adds or removes none.
func diffSafety(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	n := 0
	for k, v := range before {
		if a, ok := after[k]; ok && a != v {
			if n++; n <= 20 {
				t.Errorf("%s: %s changed:\n  before %s\n  after  %s", what, k, v, a)
			}
		}
	}
	if n > 20 {
		t.Errorf("%s: and %d more", what, n-20)
	}
}

// hostSnapshots takes the snapshots the race test compares: the host paths
// a followed symlink to / would reach, and a volume of another project.
func hostSnapshots(t *testing.T, other string) map[string]map[string]string {
	t.Helper()
	return map[string]map[string]string{
		"/etc":     safetySnapshot(t, "/etc", false),
		"/usr/bin": safetySnapshot(t, "/usr/bin", false),
		// engineers build and test on this host: their caches churn, and
		// writing a file moves its ctime, so /root compares owner, mode, xattrs
		"/root":                            safetySnapshot(t, "/root", true, ".cache", "go", ".config", ".local", ".npm"),
		"/var/lib/docker/image":            safetySnapshot(t, "/var/lib/docker/image", false, "overlay2/layerdb/mounts", "overlay2/imagedb/metadata"),
		"/var/lib/docker/volumes/" + other: safetySnapshot(t, "/var/lib/docker/volumes/"+other, false),
	}
}

// safetyTree fills dir with directories d0..d<n-1> of files owned by
// several ids, each holding safetyMarker.
func safetyTree(t *testing.T, dir string, n, files int) {
	t.Helper()
	owners := []int{0, 33, 999, 1000, 65534}
	for i := range n {
		sub := filepath.Join(dir, fmt.Sprintf("d%d", i), "sub")
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		for j := range files {
			p := filepath.Join(filepath.Dir(sub), fmt.Sprintf("f%d", j))
			if j%2 == 1 {
				p = filepath.Join(sub, fmt.Sprintf("f%d", j))
			}
			if err := os.WriteFile(p, []byte(safetyMarker+p), 0o644); err != nil {
				t.Fatal(err)
			}
			o := owners[j%len(owners)]
			if err := os.Lchown(p, o, o); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func rigMap(t *testing.T, r *Rig) chown.IDMap {
	t.Helper()
	m, err := chown.RootlessMap(uint32(r.UID), uint32(r.GID),
		[]chown.SubRange{{Start: r.SubUIDStart, Count: r.SubUIDCount}},
		[]chown.SubRange{{Start: r.SubGIDStart, Count: r.SubGIDCount}})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestSafetySymlinkSwapRaceAgainstContainer: a running rootful container
// swaps directories of its volume and of its bind for symlinks to / (and
// back) in a tight loop while 'unroot migrate --dry-run', 'unroot chown'
// (shift, then --reverse) and a volume copy run over them, ten rounds. No
// file outside the trees may change owner, mode, ctime or xattrs, and no
// copy may hold a file from outside.
func TestSafetySymlinkSwapRaceAgainstContainer(t *testing.T) {
	r := Load(t)
	id := fmt.Sprint(os.Getpid())
	name, vol, other := "e2e-safety-race-"+id, "e2e-safety-race-vol-"+id, "e2e-safety-race-other-"+id
	cleanupSource(t, r, []string{name}, []string{vol, other})
	r.Docker(t, false, "volume", "create", vol)
	r.Docker(t, false, "volume", "create", other)
	volPath := r.Docker(t, false, "volume", "inspect", "-f", "{{.Mountpoint}}", vol)
	otherPath := r.Docker(t, false, "volume", "inspect", "-f", "{{.Mountpoint}}", other)
	bind := t.TempDir()
	safetyTree(t, volPath, 4, 30)
	safetyTree(t, bind, 4, 30)
	safetyTree(t, otherPath, 1, 10)
	state := t.TempDir()

	before := hostSnapshots(t, other)
	loop := `while :; do for d in /vol/d0 /vol/d1 /vol/d2 /srv/d0 /srv/d1; do ` +
		`mv $d $d.tmp && ln -s / $d && rm $d && mv $d.tmp $d; ` +
		`mv /vol/d3 /vol/d3.tmp && ln -s ../../../../../.. /vol/d3 && rm /vol/d3 && mv /vol/d3.tmp /vol/d3; done; done`
	r.Docker(t, false, "run", "-d", "--name", name, "-v", vol+":/vol", "-v", bind+":/srv", r.Image,
		"timeout", "60", "sh", "-c", loop)

	m := rigMap(t, r)
	deadline := time.Now().Add(45 * time.Second)
	for round := 0; round < 10 && time.Now().Before(deadline); round++ {
		_, errOut, code := r.Unroot(t, append(r.Hosts(), "migrate", "--dry-run", name)...)
		if code == 2 {
			t.Errorf("round %d: migrate --dry-run usage error: %s", round, errOut)
		}
		for _, tree := range []string{volPath, bind} {
			args := append(r.Hosts(), "--state-dir", state, "chown", "--map-unmappable-to-overflow", tree)
			_, errOut, code = r.Unroot(t, args...)
			if code != 0 {
				t.Logf("round %d: chown %s exit %d (the race may stop it): %s", round, tree, code, strings.TrimSpace(errOut))
			}
			if code == 2 {
				t.Errorf("round %d: chown usage error: %s", round, errOut)
			}
			_, errOut, code = r.Unroot(t, append(r.Hosts(), "--state-dir", state, "chown", "--reverse", tree)...)
			if code != 0 {
				t.Logf("round %d: chown --reverse %s exit %d: %s", round, tree, code, strings.TrimSpace(errOut))
			}
			// a fresh journal for the next round
			if err := os.RemoveAll(state); err != nil {
				t.Fatal(err)
			}
		}
		dst := filepath.Join(t.TempDir(), "copy")
		if _, err := chown.Copy(context.Background(), volPath, dst, chown.Options{Map: m, MapUnmappableToOverflow: true}); err != nil {
			t.Logf("round %d: copy: %v", round, err)
		}
		checkCopyHoldsOnlyTree(t, dst)
	}
	out := r.Docker(t, false, "inspect", "-f", "{{.State.Running}}", name)
	t.Logf("container still running after the rounds: %s", out)
	r.Docker(t, false, "rm", "-f", name)

	after := hostSnapshots(t, other)
	for what, b := range before {
		diffSafety(t, what, b, after[what])
	}
}

// checkCopyHoldsOnlyTree fails when dst holds a regular file that the test
// did not write: Copy followed a symlink out of the tree.
func checkCopyHoldsOnlyTree(t *testing.T, dst string) {
	t.Helper()
	bad := 0
	_ = filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		b := make([]byte, len(safetyMarker))
		f, err := os.Open(p)
		if err != nil {
			return nil
		}
		n, _ := f.Read(b)
		f.Close()
		if string(b[:n]) != safetyMarker {
			if bad++; bad <= 5 {
				t.Errorf("the copy holds a file from outside the tree: %s", p)
			}
		}
		return nil
	})
}

// TestSafetyExternalHardlinkToHostFile: a volume holds a hardlink to a host
// file. The dry run must exit 1 with the external-hardlinks finding and
// change nothing, and 'unroot chown' must refuse, never touch the host file
// (its ctime included), and leave the volume's owners as they were.
func TestSafetyExternalHardlinkToHostFile(t *testing.T) {
	r := Load(t)
	id := fmt.Sprint(os.Getpid())
	name, vol := "e2e-safety-link-"+id, "e2e-safety-link-vol-"+id
	cleanupSource(t, r, []string{name}, []string{vol})
	r.Docker(t, false, "volume", "create", vol)
	volPath := r.Docker(t, false, "volume", "inspect", "-f", "{{.Mountpoint}}", vol)
	safetyTree(t, volPath, 1, 4)

	// the host file must share the volume's filesystem to be hardlinked
	hostDir, err := os.MkdirTemp(filepath.Dir(filepath.Dir(filepath.Dir(volPath))), "e2e-safety-host-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(hostDir) })
	host := filepath.Join(hostDir, "hostfile")
	if err := os.WriteFile(host, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(host, filepath.Join(volPath, "link")); err != nil {
		t.Fatalf("hardlink the host file into the volume: %v", err)
	}
	var orig unix.Stat_t
	if err := unix.Lstat(host, &orig); err != nil {
		t.Fatal(err)
	}
	r.Docker(t, false, "create", "--name", name, "-v", vol+":/data", r.Image, "true")
	beforeVol := safetySnapshot(t, volPath, false)
	beforeOwners := safetySnapshot(t, volPath, true)

	out, errOut, code := r.Unroot(t, append(r.Hosts(), "migrate", "--dry-run", name)...)
	if code != 1 {
		t.Errorf("migrate --dry-run exit %d, want 1\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out+errOut, "external-hardlinks") {
		t.Errorf("migrate --dry-run does not report external-hardlinks:\n%s\n%s", out, errOut)
	}

	state := t.TempDir()
	for _, dry := range []bool{true, false} {
		args := append(r.Hosts(), "--state-dir", state, "chown")
		if dry {
			args = append(args, "--dry-run")
		}
		out, errOut, code = r.Unroot(t, append(args, volPath)...)
		if code != 1 {
			t.Errorf("chown (dry run %v) exit %d, want 1\n%s\n%s", dry, code, out, errOut)
		}
		if !strings.Contains(errOut, "hardlinked") || !strings.Contains(errOut, "hint:") {
			t.Errorf("chown (dry run %v) does not name the external hardlink with a hint:\n%s", dry, errOut)
		}
		if dry {
			// the dry run writes nothing, ctimes included
			diffSafety(t, "volume after the dry run", beforeVol, safetySnapshot(t, volPath, false))
		} else if !strings.Contains(out, "put back") {
			t.Errorf("refused chown does not say it put back what it had changed:\n%s", out)
		}
	}
	var st unix.Stat_t
	if err := unix.Lstat(host, &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != orig.Uid || st.Gid != orig.Gid || st.Mode != orig.Mode || st.Ctim != orig.Ctim {
		t.Errorf("host file changed: %d:%d %o → %d:%d %o", orig.Uid, orig.Gid, orig.Mode, st.Uid, st.Gid, st.Mode)
	}
	// the refused shift walked once, shifted the single-link entries it met
	// and put them back from its journal: owners, modes and xattrs are as
	// before (their ctimes moved); the hardlinked inode was never touched
	diffSafety(t, "volume", beforeOwners, safetySnapshot(t, volPath, true))
}

// chownProc starts 'unroot chown' on tree and returns the command and a
// channel with its exit code.
func chownProc(t *testing.T, r *Rig, state, tree string, extra ...string) (*exec.Cmd, *strings.Builder, <-chan int) {
	t.Helper()
	args := append(append(r.Hosts(), "--state-dir", state, "chown"), extra...)
	cmd := exec.Command(r.Bin, append(args, tree)...)
	var errb strings.Builder
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan int, 1)
	go func() {
		err := cmd.Wait()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			code = -2
		}
		done <- code
	}()
	return cmd, &errb, done
}

// TestSafetyChownKilledAndInterrupted: SIGKILL 'unroot chown' at 20 random
// points of the shift of a 20k-file tree and of its reverse, re-run, and
// compare with a clean run on a twin tree (owners, modes, xattrs: an inode
// shifted twice shows its owner mapped twice); SIGINT stops with a hint to
// resume and a non-zero exit.
func TestSafetyChownKilledAndInterrupted(t *testing.T) {
	r := Load(t)
	if testing.Short() {
		t.Skip("builds two 20k-file trees")
	}
	base := t.TempDir()
	clean, crashed := filepath.Join(base, "clean"), filepath.Join(base, "crashed")
	safetyTree(t, clean, 100, 200)
	safetyTree(t, crashed, 100, 200)
	orig := safetySnapshot(t, crashed, true)

	start := time.Now()
	if _, errOut, code := r.Unroot(t, append(r.Hosts(), "--state-dir", filepath.Join(base, "clean-state"), "chown", clean)...); code != 0 {
		t.Fatalf("clean chown exit %d: %s", code, errOut)
	}
	span := time.Since(start)
	want := safetySnapshot(t, clean, true)

	state := filepath.Join(base, "state")
	killed := 0
	// Each cycle shifts under kills until a run completes, checks the result
	// against the clean run, then reverses under kills and checks against the
	// original. Once a run completes, later runs are no-ops, so cycles repeat
	// (bounded) until enough kills have landed mid-run.
	deadline := time.Now().Add(4 * time.Minute)
	for cycle := 0; cycle < 40 && (cycle == 0 || killed < 20) && time.Now().Before(deadline); cycle++ {
		for _, extra := range [][]string{nil, {"--reverse"}} {
			for i := 0; i < 40; i++ {
				cmd, _, done := chownProc(t, r, state, crashed, extra...)
				wait := 5*time.Millisecond + time.Duration(rand.Int64N(int64(min(300*time.Millisecond, span))))
				finished := false
				select {
				case <-done:
					finished = true // completed before the kill
				case <-time.After(wait):
				}
				if finished {
					break
				}
				_ = cmd.Process.Signal(syscall.SIGKILL)
				if code := <-done; code != 0 {
					killed++
				}
			}
			if _, errOut, code := r.Unroot(t, append(append(r.Hosts(), "--state-dir", state, "chown"), append(extra, crashed)...)...); code != 0 {
				t.Fatalf("chown %v after the kills: exit %d: %s", extra, code, errOut)
			}
			ref, what := want, "shift"
			if len(extra) > 0 {
				ref, what = orig, "reverse"
			}
			got := safetySnapshot(t, crashed, true)
			if len(got) != len(ref) {
				t.Errorf("after %s under kills: %d paths, want %d", what, len(got), len(ref))
			}
			diffSafety(t, what+" under kills vs a clean run", ref, got)
		}
	}
	t.Logf("%d kills landed mid-run", killed)
	if killed < 20 {
		t.Errorf("only %d kills landed before the runs finished; want ≥ 20", killed)
	}

	// SIGINT: a clean stop that says how to resume
	if err := os.RemoveAll(state); err != nil {
		t.Fatal(err)
	}
	cmd, errb, done := chownProc(t, r, state, crashed)
	select {
	case <-done:
		t.Fatal("chown finished before the interrupt could land")
	case <-time.After(max(20*time.Millisecond, span/4)):
	}
	_ = cmd.Process.Signal(os.Interrupt)
	var code int
	select {
	case code = <-done:
	case <-time.After(time.Minute):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		t.Fatal("chown did not stop within a minute of SIGINT")
	}
	if code != 1 {
		t.Errorf("SIGINT: exit %d, want 1: %s", code, errb.String())
	}
	if !strings.Contains(errb.String(), "hint:") || !strings.Contains(errb.String(), "resume") {
		t.Errorf("SIGINT: stderr does not say how to resume:\n%s", errb.String())
	}
	if _, errOut, code := r.Unroot(t, append(r.Hosts(), "--state-dir", state, "chown", crashed)...); code != 0 {
		t.Fatalf("resume after SIGINT: exit %d: %s", code, errOut)
	}
	diffSafety(t, "shift after SIGINT vs a clean run", want, safetySnapshot(t, crashed, true))
}
