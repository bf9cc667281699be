package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// hostRun runs a host command and fails the test on error.
func hostRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// treeSnapshot records owner, mode, size and mtime of every entry under root.
func treeSnapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		m[p] = fmt.Sprintf("%d:%d %v %d %d", st.Uid, st.Gid, fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestMigrateVolumeKeepsOwnershipAndMetadata copies a volume holding files
// of several owners, a setuid file, a file with a capability, one with an
// ACL, a hardlink pair and a symlink to /etc/shadow, then checks what the
// rootless container sees and that the source and /etc/shadow are untouched.
func TestMigrateVolumeKeepsOwnershipAndMetadata(t *testing.T) {
	const (
		ctr = "e2e-mig-vol"
		vol = "e2e-mig-vol-data"
	)
	e := newMigEnv(t, []string{ctr}, []string{vol}, nil)
	e.Docker(t, false, "volume", "create", vol)
	src := e.inspectVolume(false, vol)
	e.Docker(t, false, "run", "--rm", "-v", vol+":/data", e.Image, "sh", "-c", strings.Join([]string{
		"echo nine > /data/f999 && chown 999:999 /data/f999",
		"echo thousand > /data/f1000 && chown 1000:1001 /data/f1000",
		"echo root > /data/f0",
		"mkdir /data/dir && chown 70:70 /data/dir && echo x > /data/dir/g && chown 70:71 /data/dir/g",
		"cp /bin/busybox /data/suid && chown 999:999 /data/suid && chmod 4755 /data/suid",
		"echo link > /data/hl1 && ln /data/hl1 /data/hl2 && chown 33:33 /data/hl1",
		"ln -s /etc/shadow /data/escape",
		"echo cap > /data/capfile",
		"echo acl > /data/aclfile",
	}, " && "))
	hostRun(t, "setfacl", "-m", "u:1000:rw,g:1001:r", filepath.Join(src, "aclfile"))
	hostRun(t, "setcap", "cap_net_bind_service+ep", filepath.Join(src, "capfile"))
	e.Docker(t, false, "run", "-d", "--name", ctr, "-v", vol+":/data", e.Image, "sleep", "100000")

	before := treeSnapshot(t, src)
	var shadowBefore syscall.Stat_t
	if err := syscall.Stat("/etc/shadow", &shadowBefore); err != nil {
		t.Fatal(err)
	}

	e.mustMigrate(ctr)

	if got := e.inspect(true, ctr, "{{.State.Running}}"); got != "true" {
		t.Fatalf("target container running = %s", got)
	}
	owners := map[string]string{
		"/data/f999": "999:999", "/data/f1000": "1000:1001", "/data/f0": "0:0",
		"/data/dir": "70:70", "/data/dir/g": "70:71", "/data/suid": "999:999", "/data/hl1": "33:33",
	}
	for p, want := range owners {
		if got := e.exec(true, ctr, "stat", "-c", "%u:%g", p); got != want {
			t.Errorf("inside the rootless container %s is owned by %s, want %s", p, got, want)
		}
	}
	if got := e.exec(true, ctr, "stat", "-c", "%a", "/data/suid"); got != "4755" {
		t.Errorf("setuid file mode = %s, want 4755", got)
	}
	if a, b := e.exec(true, ctr, "stat", "-c", "%i", "/data/hl1"), e.exec(true, ctr, "stat", "-c", "%i", "/data/hl2"); a != b {
		t.Errorf("hardlink broken: inodes %s and %s", a, b)
	}
	if got := e.exec(true, ctr, "readlink", "/data/escape"); got != "/etc/shadow" {
		t.Errorf("escaping symlink reads %q", got)
	}
	if got := e.exec(true, ctr, "stat", "-c", "%F", "/data/escape"); got != "symbolic link" {
		t.Errorf("escaping symlink became %q", got)
	}
	if got := e.exec(true, ctr, "cat", "/data/f999"); got != "nine" {
		t.Errorf("content = %q", got)
	}

	// ACL and capability as the host sees the target volume: ids shifted
	// into the user's range, v3 capability rooted at the user's uid.
	dst := e.inspectVolume(true, vol)
	acl := hostRun(t, "getfacl", "-n", "-p", filepath.Join(dst, "aclfile"))
	wantU := fmt.Sprintf("user:%d:rw-", e.SubUIDStart+1000-1)
	wantG := fmt.Sprintf("group:%d:r--", e.SubGIDStart+1001-1)
	if !strings.Contains(acl, wantU) || !strings.Contains(acl, wantG) {
		t.Errorf("target ACL:\n%s\nwant entries %s and %s", acl, wantU, wantG)
	}
	caps := hostRun(t, "getcap", "-n", filepath.Join(dst, "capfile"))
	if !strings.Contains(caps, "cap_net_bind_service=ep") || !strings.Contains(caps, fmt.Sprintf("[rootid=%d]", e.UID)) {
		t.Errorf("target capability = %q, want cap_net_bind_service=ep with rootid %d", caps, e.UID)
	}

	after := treeSnapshot(t, src)
	for p, b := range before {
		if after[p] != b {
			t.Errorf("source changed in copy mode: %s was %s, now %s", p, b, after[p])
		}
	}
	if len(after) != len(before) {
		t.Errorf("source has %d entries, had %d", len(after), len(before))
	}
	var shadowAfter syscall.Stat_t
	if err := syscall.Stat("/etc/shadow", &shadowAfter); err != nil {
		t.Fatal(err)
	}
	// Owner and mode: what a walker that followed the link would change.
	// (Not ctime or inode: useradd elsewhere on the host replaces the file.)
	if shadowAfter.Uid != shadowBefore.Uid || shadowAfter.Gid != shadowBefore.Gid || shadowAfter.Mode != shadowBefore.Mode {
		t.Errorf("/etc/shadow changed: %+v → %+v", shadowBefore, shadowAfter)
	}

	st := e.status()
	if s := st.Services[ctr]; s.Phase != "done" {
		t.Errorf("status phase = %q, want done", s.Phase)
	}

	// rollback --purge removes the target's copy; the source is as it was.
	out, errOut, code := e.Unroot(t, e.args("rollback", "--purge", ctr)...)
	if code != 0 {
		t.Fatalf("rollback --purge: exit %d\n%s\n%s", code, out, errOut)
	}
	if _, err := e.DockerErr(true, "volume", "inspect", vol); err == nil {
		t.Error("target volume kept after rollback --purge")
	}
	if got := e.exec(false, ctr, "stat", "-c", "%u:%g", "/data/f999"); got != "999:999" {
		t.Errorf("source after rollback: /data/f999 owned by %s", got)
	}
	if after := treeSnapshot(t, src); len(after) != len(before) {
		t.Errorf("source has %d entries after rollback, had %d", len(after), len(before))
	}
}

// inspectVolume returns a volume's host path on the source or target.
func (e *migEnv) inspectVolume(target bool, vol string) string {
	e.t.Helper()
	return e.Docker(e.t, target, "volume", "inspect", "-f", "{{.Mountpoint}}", vol)
}
