package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ansiblePlaybook finds ansible-playbook. It skips without it, except under
// CI=true, where the rig installs ansible-core.
func ansiblePlaybook(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("ansible-playbook")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("ansible-playbook not found (install ansible-core): %v", err)
		}
		Skip(t, "ansible-playbook not found: %v", err)
	}
	return bin
}

func fleetPlaybook(t *testing.T) string {
	t.Helper()
	playbook, err := filepath.Abs(filepath.Join("..", "docs", "fleet", "playbook.yml"))
	if err != nil {
		t.Fatal(err)
	}
	return playbook
}

// TestFleetPlaybookSyntax checks docs/fleet/playbook.yml and its role with
// ansible-playbook --syntax-check.
func TestFleetPlaybookSyntax(t *testing.T) {
	bin := ansiblePlaybook(t)
	playbook := fleetPlaybook(t)
	cmd := exec.Command(bin, "--syntax-check", playbook, "-i", "localhost,")
	cmd.Env = append(os.Environ(), "ANSIBLE_LOCAL_TEMP="+t.TempDir(), "ANSIBLE_NOCOLOR=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ansible-playbook --syntax-check %s: %v\n%s", playbook, err, out)
	}
}

// recap is one host's line of a PLAY RECAP.
type recap struct{ ok, changed, failed, unreachable int }

var recapLine = regexp.MustCompile(`(?m)^localhost\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)`)

// TestFleetPlaybookLocalhost runs the role for real, against localhost and
// the rig, as an admin would across a fleet: check mode plans and reports
// "changed" without changing anything; a run cuts the service over; a
// second run is "ok" with nothing changed; and a plan with a blocker fails
// the host before anything moves.
func TestFleetPlaybookLocalhost(t *testing.T) {
	const (
		web  = "e2e-fleet-web"
		host = "e2e-fleet-hostnet"
		vol  = "e2e-fleet-data"
		port = 141 // below 1024: rewritten to 8141
	)
	bin := ansiblePlaybook(t)
	playbook := fleetPlaybook(t)
	e := newMigEnv(t, []string{web, host}, []string{vol}, nil)
	e.Docker(t, false, "run", "-d", "--name", web, "--restart", "always", "-p", "127.0.0.1:"+strconv.Itoa(port)+":80",
		"-v", vol+":/data", e.Image, "sh", "-c", "echo fleet-web > /data/index.html && exec httpd -f -p 80 -h /data")
	e.Docker(t, false, "run", "-d", "--name", host, "--network", "host", e.Image, "sleep", "100000")
	t.Cleanup(func() {
		e.UnrootEnv(t, nil, e.args("rollback", "--all", "--purge")...)
	})

	play := func(containers []string, check bool) (recap, string, int) {
		t.Helper()
		vars, err := json.Marshal(map[string]any{
			"unroot_user":        e.User,
			"unroot_bin":         e.Bin,
			"unroot_containers":  containers,
			"unroot_global_args": append(e.Hosts(), "--state-dir", e.stateDir),
			// localhost as root: no sudo to become through
			"ansible_become":             false,
			"ansible_python_interpreter": "/usr/bin/python3",
		})
		if err != nil {
			t.Fatal(err)
		}
		args := []string{"-i", "localhost,", "-c", "local", playbook, "-e", string(vars)}
		if check {
			args = append(args, "--check")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = append(os.Environ(), "ANSIBLE_LOCAL_TEMP="+t.TempDir(), "ANSIBLE_NOCOLOR=1", "ANSIBLE_HOST_KEY_CHECKING=0")
		outb, err := cmd.CombinedOutput()
		out := string(outb)
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("ansible-playbook: %v\n%s", err, out)
		}
		m := recapLine.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no PLAY RECAP for localhost (exit %d):\n%s", code, out)
		}
		n := func(i int) int { v, _ := strconv.Atoi(m[i]); return v }
		r := recap{ok: n(1), changed: n(2), unreachable: n(3), failed: n(4)}
		t.Logf("ansible-playbook check=%v %v → exit %d, %+v", check, containers, code, r)
		return r, out, code
	}
	sourceUntouched := func(what string) {
		t.Helper()
		if got := e.inspect(false, web, "{{.State.Running}} {{.HostConfig.RestartPolicy.Name}}"); got != "true always" {
			t.Errorf("%s: source %s is %q, want running with restart always", what, web, got)
		}
		if _, err := e.DockerErr(true, "inspect", web); err == nil {
			t.Errorf("%s: the rootless daemon has %s", what, web)
		}
		if _, err := e.DockerErr(true, "volume", "inspect", vol); err == nil {
			t.Errorf("%s: the rootless daemon has volume %s", what, vol)
		}
	}

	// A blocker fails the host in the plan step, in check mode and for real.
	for _, check := range []bool{true, false} {
		r, out, code := play([]string{web, host}, check)
		if code == 0 || r.failed != 1 || r.changed != 0 || !strings.Contains(out, "host-network") {
			t.Errorf("blocked plan (check=%v): exit %d, %+v; want a failed host naming the host-network blocker\n%s", check, code, r, out)
		}
		sourceUntouched("blocked plan")
	}

	// Check mode: reports the service it would move as "changed", moves nothing.
	r, out, code := play([]string{web}, true)
	if code != 0 || r.failed != 0 || r.changed != 1 || !strings.Contains(out, web) {
		t.Fatalf("check mode: exit %d, %+v; want ok with changed=1\n%s", code, r, out)
	}
	sourceUntouched("check mode")
	if st := e.status(); len(st.Services) != 0 {
		t.Errorf("check mode recorded state: %+v", st.Services)
	}

	// The cutover.
	r, out, code = play([]string{web}, false)
	if code != 0 || r.failed != 0 || r.changed != 1 {
		t.Fatalf("cutover: exit %d, %+v; want ok with changed=1\n%s", code, r, out)
	}
	if got := e.inspect(true, web, "{{.State.Running}}"); got != "true" {
		t.Errorf("target %s running = %q", web, got)
	}
	if got := e.inspect(false, web, "{{.State.Running}} {{.HostConfig.RestartPolicy.Name}}"); got != "false no" {
		t.Errorf("source %s after the cutover is %q, want stopped with restart no", web, got)
	}
	if body := httpGet(t, port+8000, "/index.html"); strings.TrimSpace(body) != "fleet-web" {
		t.Errorf("GET :%d = %q", port+8000, body)
	}
	if ph := e.status().Services[web].Phase; ph != "done" {
		t.Errorf("phase of %s = %q, want done", web, ph)
	}

	// Idempotent: a second run, and a second check, change nothing.
	for _, check := range []bool{false, true} {
		r, out, code = play([]string{web}, check)
		if code != 0 || r.failed != 0 || r.changed != 0 {
			t.Errorf("re-run (check=%v): exit %d, %+v; want ok with changed=0\n%s", check, code, r, out)
		}
	}
	if got := e.inspect(true, web, "{{.State.Running}}"); got != "true" {
		t.Errorf("target %s after the re-runs: running = %q", web, got)
	}
}
