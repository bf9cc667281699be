package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestMigrateVolumeMoveAndRollback moves a volume's data into the target
// (rename and in-place shift) and rolls back: the data returns to the
// source volume with its original owners. On the rig, as on most hosts,
// /var/lib/docker is dockerd's bind mount of itself on the filesystem that
// also holds /home: one filesystem, two mounts, so the rename must go
// through a clone of the filesystem's mount. The move must succeed; it is
// never skipped.
func TestMigrateVolumeMoveAndRollback(t *testing.T) {
	const (
		ctr = "e2e-mv-mover"
		vol = "e2e-mv-mover-data"
	)
	e := newMigEnv(t, []string{ctr}, []string{vol}, nil)
	e.Docker(t, false, "volume", "create", vol)
	e.Docker(t, false, "run", "--rm", "-v", vol+":/data", e.Image, "sh", "-c",
		"echo moved > /data/f && chown 999:999 /data/f && mkdir /data/d && chown 5:6 /data/d && echo x > /data/d/g && chown 1000:33 /data/d/g")
	src := e.inspectVolume(false, vol)
	before := hostOwners(t, src)
	ino := inodeOf(t, src)
	e.Docker(t, false, "run", "-d", "--name", ctr, "-v", vol+":/data", e.Image, "sleep", "100000")

	srcMnt, dstMnt := mountID(t, filepath.Dir(src)), mountID(t, e.Home)
	t.Logf("source volume on mount %d, the user's home on mount %d (same device: %v)", srcMnt, dstMnt, devOf(t, src) == devOf(t, e.Home))

	dry := e.UnrootEnv(t, nil, e.args("migrate", "--dry-run", "--format", "json", "--volumes", "move", ctr)...)
	if dry.Code != 0 {
		t.Fatalf("dry run of the move: exit %d\n%s", dry.Code, dry.Stderr)
	}
	if f := findFinding(t, dry, "move-cross-filesystem"); f != nil {
		t.Fatalf("the dry run refuses the move: %+v", f)
	}

	res := e.mustMigrate("--volumes", "move", ctr)
	if !strings.Contains(res.Stderr, "volume "+vol+": renamed into") {
		t.Errorf("the run does not report the rename:\n%s", res.Stderr)
	}

	if _, err := os.Lstat(src); !os.IsNotExist(err) {
		t.Errorf("after a move the source's _data is still there (lstat: %v)", err)
	}
	dst := e.inspectVolume(true, vol)
	if got := inodeOf(t, dst); got != ino {
		t.Errorf("the target's _data is inode %d, the source's was %d: copied, not renamed", got, ino)
	}
	for p, want := range map[string]string{"/data/f": "999:999", "/data/d": "5:6", "/data/d/g": "1000:33"} {
		if got := e.exec(true, ctr, "stat", "-c", "%u:%g", p); got != want {
			t.Errorf("inside the target %s is %s, want %s", p, got, want)
		}
	}
	if got := e.exec(true, ctr, "cat", "/data/f"); got != "moved" {
		t.Errorf("content = %q", got)
	}

	out, errOut, code := e.Unroot(t, e.args("rollback", ctr)...)
	if code != 0 {
		t.Fatalf("rollback: exit %d\n%s\n%s", code, out, errOut)
	}
	after := hostOwners(t, src)
	if len(after) != len(before) {
		t.Errorf("after rollback the source holds %d entries, held %d", len(after), len(before))
	}
	for p, b := range before {
		if after[p] != b {
			t.Errorf("after rollback %s is %q, was %q", p, after[p], b)
		}
	}
	if got := inodeOf(t, src); got != ino {
		t.Errorf("after rollback the source's _data is inode %d, was %d", got, ino)
	}
	if got := e.exec(false, ctr, "cat", "/data/f"); got != "moved" {
		t.Errorf("source after rollback reads %q", got)
	}
	if got := e.exec(false, ctr, "stat", "-c", "%u:%g", "/data/d/g"); got != "1000:33" {
		t.Errorf("source after rollback: /data/d/g is %s", got)
	}
	if ents, err := os.ReadDir(dst); err != nil || len(ents) != 0 {
		t.Errorf("the target volume's _data after rollback: %d entries, %v", len(ents), err)
	}
}

func inodeOf(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func devOf(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Dev
}

// mountID is the id of the mount p is on (statx).
func mountID(t *testing.T, p string) uint64 {
	t.Helper()
	var st unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &st); err != nil {
		t.Fatalf("statx %s: %v", p, err)
	}
	return st.Mnt_id
}
