package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestBadInputTargetDiskFull: the rootless user's disk fills up in the
// middle of a volume copy. A 512 KiB tmpfs is mounted where the rootless
// daemon will put the volume's _data, and the source volume holds 2 MiB.
// The cutover fails with ENOSPC before the source is stopped, rolls itself
// back and exits 1 with a hint; the source container and its volume are
// untouched. The target volume unroot created is kept for a re-run (see
// docs/migration.md) and 'rollback --purge' removes it, after which both
// daemons are as before.
func TestBadInputTargetDiskFull(t *testing.T) {
	const (
		ctr = badPrefix + "full"
		vol = badPrefix + "full-vol"
	)
	e := newMigEnv(t, []string{ctr}, []string{vol}, nil)
	e.Docker(t, false, "volume", "create", vol)
	e.Docker(t, false, "run", "--rm", "-v", vol+":/d", e.Image, "sh", "-c",
		"dd if=/dev/urandom of=/d/big bs=1024 count=2048 2>/dev/null && echo small > /d/small")
	e.quickContainer(ctr, "--restart", "always", "-v", vol+":/d")

	// The rootless daemon creates volumes/NAME/_data with MkdirAll, so a
	// directory prepared with the user as owner is used as it is.
	volDir := filepath.Join(e.Home, ".local/share/docker/volumes", vol)
	data := filepath.Join(volDir, "_data")
	if fileExists(volDir) {
		t.Fatalf("%s exists before the test (left over from a killed run? unmount and remove it)", volDir)
	}
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The daemon's volume removal may already have detached the mount.
		_ = unix.Unmount(data, unix.MNT_DETACH)
		_, _ = e.DockerErr(true, "volume", "rm", "-f", vol)
		if err := os.RemoveAll(volDir); err != nil {
			t.Errorf("remove %s: %v", volDir, err)
		}
	})
	for _, d := range []string{volDir, data} {
		if err := os.Chown(d, e.UID, e.GID); err != nil {
			t.Fatal(err)
		}
	}
	opts := "size=512k,mode=0755,uid=" + strconv.Itoa(e.UID) + ",gid=" + strconv.Itoa(e.GID)
	if err := unix.Mount("tmpfs", data, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		t.Fatalf("mount a small tmpfs on %s: %v", data, err)
	}

	srcVol := filepath.Dir(e.volumeDir(vol))
	before := e.snap(t, []string{ctr}, srcVol)
	res := e.migrate("--settle", "1s", ctr)
	wantRefusal(t, "disk full", res, 1, "no space left on device", "run the same command again")
	if !strings.Contains(res.Stderr, "rolled back, the source runs again") {
		t.Errorf("stderr does not say the source runs again:\n%s", res.Stderr)
	}
	if out, _ := e.DockerErr(true, "ps", "-a", "-q", "--filter", "name=^/"+ctr+"$"); out != "" {
		t.Errorf("the target has a container %s after the failed cutover", ctr)
	}
	if _, err := e.DockerErr(true, "volume", "inspect", vol); err != nil {
		t.Errorf("the target volume unroot created is gone, a re-run cannot resume: %v", err)
	}
	// The source is as it was; the target holds only the partial volume.
	after := e.snap(t, []string{ctr}, srcVol)
	for c, v := range before.source {
		if after.source[c] != v {
			t.Errorf("source container %s changed: %q → %q", c, v, after.source[c])
		}
	}
	for p, v := range before.files {
		if after.files[p] != v {
			t.Errorf("source volume: %s changed: %s → %s", p, v, after.files[p])
		}
	}

	out, errOut, code := e.Unroot(t, e.args("rollback", "--purge", ctr)...)
	if code != 0 || !strings.Contains(out, ctr+": rolled back") {
		t.Fatalf("rollback --purge: exit %d\n%s%s", code, out, errOut)
	}
	e.unchanged(t, "disk full, then rollback --purge", before)
}
