package chown

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/unroot/unroot/e2e"
)

// TestRootlessMapMatchesRigDaemon checks the map computed from /etc/subuid
// and /etc/subgid against the real rootless dockerd of the test rig, and then
// checks what the kernel does with it: a file created as container uid n in
// the daemon's user namespace is owned by RootlessMap's host id of n.
func TestRootlessMapMatchesRigDaemon(t *testing.T) {
	rig := e2e.Load(t)
	subuids, err := ParseSubIDsFile("/etc/subuid", rig.User, rig.UID)
	if err != nil {
		t.Fatal(err)
	}
	subgids, err := ParseSubIDsFile("/etc/subgid", rig.User, rig.UID)
	if err != nil {
		t.Fatal(err)
	}
	files, err := RootlessMap(uint32(rig.UID), uint32(rig.GID), subuids, subgids)
	if err != nil {
		t.Fatal(err)
	}
	live, pid, err := LiveMap(filepath.Join("/run/user", strconv.Itoa(rig.UID)), "/proc")
	if err != nil {
		t.Fatal(err)
	}
	if d := DiffMaps(live, files); d != nil {
		t.Errorf("live map of dockerd pid %d differs from the subordinate id files: %q", pid, d)
	}
	if h, ok := live.HostUID(1); !ok || h != rig.SubUIDStart {
		t.Errorf("live host uid of container 1 = %d, %v; want the subuid start %d", h, ok, rig.SubUIDStart)
	}

	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		t.Skip("no nsenter to create files inside the daemon's user namespace")
	}
	// The namespace's ids are unprivileged on the host: let them in.
	dir := t.TempDir()
	if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o1777); err != nil {
		t.Fatal(err)
	}
	for _, c := range []uint32{0, 1, 1000, rig.SubUIDCount} {
		p := filepath.Join(dir, strconv.FormatUint(uint64(c), 10))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		id := strconv.FormatUint(uint64(c), 10)
		out, err := exec.CommandContext(ctx, nsenter, "-t", strconv.Itoa(pid), "-U",
			"--setuid", id, "--setgid", id, "--", "touch", p).CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("touch as container id %d in the namespace of pid %d: %v\n%s", c, pid, err, out)
		}
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		wantU, _ := files.HostUID(c)
		wantG, _ := files.HostGID(c)
		if st.Uid != wantU || st.Gid != wantG {
			t.Errorf("container %d:%d created a file owned by host %d:%d; RootlessMap says %d:%d", c, c, st.Uid, st.Gid, wantU, wantG)
		}
		if back, ok := files.ContainerUID(st.Uid); !ok || back != c {
			t.Errorf("ContainerUID(%d) = %d, %v; want %d", st.Uid, back, ok, c)
		}
	}
}
