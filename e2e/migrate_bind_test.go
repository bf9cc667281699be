package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// migBindDir makes a host directory for a bind mount with files of a few
// owners and removes it at the end.
func migBindDir(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join("/srv", name)
	_ = os.RemoveAll(dir)
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	files := map[string][2]int{"index.html": {33, 33}, "sub/secret": {999, 998}, "sub": {33, 33}, "rootfile": {0, 0}}
	for p, own := range files {
		full := filepath.Join(dir, p)
		if p != "sub" {
			if err := os.WriteFile(full, []byte("bind "+p+"\n"), 0o640); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Lchown(full, own[0], own[1]); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func hostOwners(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		m[strings.TrimPrefix(p, dir)] = fmt.Sprintf("%d:%d %v", st.Uid, st.Gid, fi.Mode())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestMigrateBindShiftAndRollback shifts a bind mount in place (the
// rootless container sees the original owners) and rolls back: owners,
// restart policy and the published port of the rootful service come back.
func TestMigrateBindShiftAndRollback(t *testing.T) {
	const ctr = "e2e-mig-bindweb"
	e := newMigEnv(t, []string{ctr}, nil, nil)
	dir := migBindDir(t, "e2e-mig-bind")
	before := hostOwners(t, dir)
	e.Docker(t, false, "run", "-d", "--name", ctr, "--restart", "unless-stopped", "-p", "127.0.0.1:18301:80",
		"-v", dir+":/www", e.Image, "httpd", "-f", "-p", "80", "-h", "/www")
	if got := httpGet(t, 18301, "/index.html"); got != "bind index.html\n" {
		t.Fatalf("source serves %q", got)
	}

	e.mustMigrate(ctr)

	for p, want := range map[string]string{"/www/index.html": "33:33", "/www/sub/secret": "999:998", "/www/rootfile": "0:0"} {
		if got := e.exec(true, ctr, "stat", "-c", "%u:%g", p); got != want {
			t.Errorf("inside the rootless container %s is %s, want %s", p, got, want)
		}
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(dir, "index.html"), &st); err != nil {
		t.Fatal(err)
	}
	if want := e.SubUIDStart + 33 - 1; st.Uid != want {
		t.Errorf("host owner of the shifted file = %d, want %d", st.Uid, want)
	}
	if got := httpGet(t, 18301, "/index.html"); got != "bind index.html\n" {
		t.Errorf("target serves %q", got)
	}

	out, errOut, code := e.Unroot(t, e.args("rollback", ctr)...)
	if code != 0 {
		t.Fatalf("rollback: exit %d\n%s\n%s", code, out, errOut)
	}
	after := hostOwners(t, dir)
	for p, b := range before {
		if after[p] != b {
			t.Errorf("after rollback %s is %s, was %s", p, after[p], b)
		}
	}
	if got := e.inspect(false, ctr, "{{.HostConfig.RestartPolicy.Name}} {{.State.Running}}"); got != "unless-stopped true" {
		t.Errorf("source after rollback: %q", got)
	}
	if got := httpGet(t, 18301, "/index.html"); got != "bind index.html\n" {
		t.Errorf("source after rollback serves %q", got)
	}
	if _, err := e.DockerErr(true, "inspect", ctr); err == nil {
		t.Error("target container still exists after rollback")
	}
}

// TestMigrateFailedHealthGateRollsBack migrates a service whose published
// port nobody serves: the health gate fails and the automatic rollback puts
// the bind mount's owners and the source back.
func TestMigrateFailedHealthGateRollsBack(t *testing.T) {
	const ctr = "e2e-mig-broken"
	e := newMigEnv(t, []string{ctr}, nil, nil)
	dir := migBindDir(t, "e2e-mig-broken")
	before := hostOwners(t, dir)
	e.Docker(t, false, "run", "-d", "--name", ctr, "--restart", "always", "-p", "127.0.0.1:18302:80",
		"-v", dir+":/www", e.Image, "sleep", "100000")

	res := e.migrate("--settle", "1s", ctr)
	if res.Code != 1 {
		t.Fatalf("migrate of a broken service: exit %d, want 1", res.Code)
	}
	if !strings.Contains(res.Stderr, "rolled back") {
		t.Errorf("stderr does not say it rolled back:\n%s", res.Stderr)
	}
	after := hostOwners(t, dir)
	for p, b := range before {
		if after[p] != b {
			t.Errorf("after the automatic rollback %s is %s, was %s", p, after[p], b)
		}
	}
	if got := e.inspect(false, ctr, "{{.HostConfig.RestartPolicy.Name}} {{.State.Running}}"); got != "always true" {
		t.Errorf("source after automatic rollback: %q", got)
	}
	if _, err := e.DockerErr(true, "inspect", ctr); err == nil {
		t.Error("target container left behind")
	}
	if s := e.status().Services[ctr]; s.Phase != "rolled-back" {
		t.Errorf("status = %q, want rolled-back", s.Phase)
	}
}
