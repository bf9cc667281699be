package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMigrateCLIRefusals: without a terminal and without --yes migrate
// exits 2; with another run holding the lock it exits 1 naming the pid; a
// plan with a blocker exits 1. None of them changes anything.
func TestMigrateCLIRefusals(t *testing.T) {
	const (
		ctr  = "e2e-mig-cli-refuse"
		host = "e2e-mig-cli-hostnet"
	)
	e := newMigEnv(t, []string{ctr, host}, nil, nil)
	e.Docker(t, false, "run", "-d", "--name", ctr, "--restart", "always", e.Image, "sleep", "100000")
	unchanged := func(what string) {
		t.Helper()
		if got := e.inspect(false, ctr, "{{.State.Running}} {{.HostConfig.RestartPolicy.Name}}"); got != "true always" {
			t.Errorf("%s: source is %q", what, got)
		}
		if _, err := e.DockerErr(true, "inspect", ctr); err == nil {
			t.Errorf("%s: the target has the container", what)
		}
	}

	// No --yes, stdin not a terminal.
	res := e.UnrootEnv(t, nil, e.args("migrate", ctr)...)
	if res.Code != 2 || !strings.Contains(res.Stderr, "--yes") {
		t.Errorf("without --yes: exit %d, stderr %q; want 2 and a hint naming --yes", res.Code, res.Stderr)
	}
	unchanged("without --yes")

	// Lock held by another process (flock(1) here, with a pid in the file).
	lockDir := filepath.Join(e.stateDir, e.User)
	if err := os.MkdirAll(lockDir, 0o700); err != nil {
		t.Fatal(err)
	}
	lockPath := filepath.Join(lockDir, "lock")
	holder := exec.Command("flock", lockPath, "sleep", "30")
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { holder.Process.Kill(); holder.Wait() }()
	if err := os.WriteFile(lockPath, []byte(strconv.Itoa(holder.Process.Pid)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var locked Result
	for i := 0; i < 20; i++ { // flock(1) may not hold it yet
		locked = e.UnrootEnv(t, nil, e.args("migrate", "--yes", ctr)...)
		if strings.Contains(locked.Stderr, "another unroot run") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if locked.Code != 1 || !strings.Contains(locked.Stderr, "pid "+strconv.Itoa(holder.Process.Pid)) || !strings.Contains(locked.Stderr, "hint:") {
		t.Errorf("lock held: exit %d, stderr %q; want 1 naming pid %d with a hint", locked.Code, locked.Stderr, holder.Process.Pid)
	}
	unchanged("lock held")
	holder.Process.Kill()
	holder.Wait()

	// A blocker (host networking) refuses the whole run.
	e.Docker(t, false, "run", "-d", "--name", host, "--network", "host", e.Image, "sleep", "100000")
	res = e.migrate(ctr, host)
	if res.Code != 1 || !strings.Contains(res.Stderr, "host-network") || !strings.Contains(res.Stderr, "nothing was changed") {
		t.Errorf("blocked plan: exit %d, stderr %q", res.Code, res.Stderr)
	}
	unchanged("blocked plan")

	// Status of a user with nothing recorded.
	out, _, code := e.Unroot(t, e.args("status")...)
	if code != 0 || !strings.Contains(out, "no migration recorded") {
		t.Errorf("status: exit %d, %q", code, out)
	}
}
