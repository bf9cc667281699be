package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// chownDir makes a directory the rootless daemon can reach (its parents are
// world-traversable), removed at the end.
func chownDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "e2e-chown-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// inContainerView lists name uid:gid mode of paths as a container of the
// source (target=false) or target daemon sees them through a bind mount.
func inContainerView(t *testing.T, rig *Rig, target bool, data string, paths ...string) string {
	t.Helper()
	args := []string{"run", "--rm", "-v", data + ":/data", rig.Image, "stat", "-c", "%n %u:%g %a"}
	for _, p := range paths {
		args = append(args, "/data/"+p)
	}
	return strings.TrimSpace(rig.Docker(t, target, args...))
}

func hostOwner(t *testing.T, p string) (uint32, uint32) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Uid, st.Gid
}

// TestChownBindSeenAlikeByBothDaemons: files a rootful container wrote keep
// their in-container owners when a rootless container mounts them after
// 'unroot chown', and --reverse gives the host its original owners back.
func TestChownBindSeenAlikeByBothDaemons(t *testing.T) {
	rig := Load(t)
	dir := chownDir(t)
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	rig.Docker(t, false, "run", "--rm", "-v", data+":/data", rig.Image, "sh", "-c",
		"echo r > /data/root.txt && echo w > /data/www.txt && chown 33:33 /data/www.txt && "+
			"mkdir /data/db && chown 999:999 /data/db && chmod 4755 /data/root.txt && ln -s /etc/shadow /data/link")
	paths := []string{".", "root.txt", "www.txt", "db"}
	before := inContainerView(t, rig, false, data, paths...)
	state := filepath.Join(dir, "state")

	out, stderr, code := rig.Unroot(t, "chown", "--user", rig.User, "--state-dir", state, "--format", "json", data)
	if code != 0 {
		t.Fatalf("unroot chown: exit %d\n%s", code, stderr)
	}
	var res []struct {
		Path   string `json:"path"`
		Action string `json:"action"`
		Report struct {
			Changed          int64 `json:"changed"`
			EscapingSymlinks int64 `json:"escaping_symlinks"`
			AlreadyDone      bool  `json:"already_done"`
		} `json:"report"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res) != 1 {
		t.Fatalf("json output: %v\n%s", err, out)
	}
	if r := res[0].Report; r.Changed != 5 || r.EscapingSymlinks != 1 || res[0].Action != "shift" {
		t.Errorf("report: %+v, want 5 changed, 1 escaping symlink", r)
	}
	if u, g := hostOwner(t, filepath.Join(data, "root.txt")); u != uint32(rig.UID) || g != uint32(rig.GID) {
		t.Errorf("host owner of root.txt %d:%d, want the user's %d:%d", u, g, rig.UID, rig.GID)
	}
	if u, _ := hostOwner(t, filepath.Join(data, "www.txt")); u != rig.SubUIDStart+32 {
		t.Errorf("host owner of www.txt %d, want %d", u, rig.SubUIDStart+32)
	}
	if after := inContainerView(t, rig, true, data, paths...); after != before {
		t.Errorf("rootless container sees\n%s\nrootful saw\n%s", after, before)
	}
	// The container's uid 999 can write where it could before.
	rig.Docker(t, true, "run", "--rm", "-u", "999", "-v", data+":/data", rig.Image, "sh", "-c", "echo x > /data/db/new")

	out, stderr, code = rig.Unroot(t, "chown", "--user", rig.User, "--state-dir", state, "--format", "json", data)
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || !res[0].Report.AlreadyDone {
		t.Errorf("second chown: exit %d, %s %s", code, out, stderr)
	}

	if _, stderr, code := rig.Unroot(t, "chown", "--user", rig.User, "--state-dir", state, "--reverse", data); code != 0 {
		t.Fatalf("reverse: exit %d\n%s", code, stderr)
	}
	if back := inContainerView(t, rig, false, data, paths...); back != before {
		t.Errorf("after reverse the rootful container sees\n%s\nwant\n%s", back, before)
	}
	if u, _ := hostOwner(t, "/etc/shadow"); u != 0 {
		t.Errorf("/etc/shadow owner %d", u)
	}
}

func TestChownRefusesBeforeChanging(t *testing.T) {
	rig := Load(t)
	dir := chownDir(t)
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(data, "big")
	if err := os.WriteFile(big, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(big, int(rig.SubUIDCount)+5, 0); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := rig.Unroot(t, "chown", "--user", rig.User, "--state-dir", filepath.Join(dir, "state"), data)
	if code != 1 || !strings.Contains(stderr, "--map-unmappable-to-overflow") || !strings.Contains(stderr, "hint:") {
		t.Errorf("exit %d, stderr:\n%s\nwant exit 1 with a hint naming --map-unmappable-to-overflow", code, stderr)
	}
	if u, _ := hostOwner(t, data); u != 0 {
		t.Errorf("refused chown changed the root to %d", u)
	}
	for _, p := range []string{"/", "/etc", "/var/lib/docker", rig.Home} {
		if _, stderr, code := rig.Unroot(t, "chown", "--user", rig.User, "--dry-run", p); code != 2 || !strings.Contains(stderr, "refusing") {
			t.Errorf("chown %s: exit %d\n%s", p, code, stderr)
		}
	}
}
