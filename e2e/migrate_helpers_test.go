package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// migEnv is one migration test's rig, state directory and the objects it
// must remove from both daemons when it ends.
type migEnv struct {
	*Rig
	t        *testing.T
	stateDir string
}

// newMigEnv loads the rig and registers cleanup of every named object,
// which start with "e2e-mig-".
func newMigEnv(t *testing.T, containers, volumes, networks []string) *migEnv {
	t.Helper()
	r := Load(t)
	e := &migEnv{Rig: r, t: t, stateDir: t.TempDir()}
	clean := func() {
		for _, target := range []bool{true, false} {
			for _, c := range containers {
				_, _ = r.DockerErr(target, "rm", "-f", c)
			}
			for _, v := range volumes {
				_, _ = r.DockerErr(target, "volume", "rm", "-f", v)
			}
			for _, n := range networks {
				_, _ = r.DockerErr(target, "network", "rm", n)
			}
			for _, c := range containers {
				_, _ = r.DockerErr(target, "rmi", "unroot/commit:"+c)
			}
		}
	}
	clean()
	t.Cleanup(clean)
	return e
}

// args returns the global flags plus the test's state directory.
func (e *migEnv) args(verb string, args ...string) []string {
	return append(append(append([]string{}, e.Hosts()...), "--state-dir", e.stateDir, verb), args...)
}

// migrate runs 'unroot migrate --yes ARGS' and returns its result.
func (e *migEnv) migrate(args ...string) Result {
	e.t.Helper()
	res := e.UnrootEnv(e.t, nil, e.args("migrate", append([]string{"--yes"}, args...)...)...)
	e.t.Logf("stdout:\n%s\nstderr:\n%s", res.Stdout, res.Stderr)
	return res
}

// mustMigrate fails the test unless the migration exits 0.
func (e *migEnv) mustMigrate(args ...string) Result {
	e.t.Helper()
	res := e.migrate(args...)
	if res.Code != 0 {
		e.t.Fatalf("migrate %v: exit %d", args, res.Code)
	}
	return res
}

// status returns 'unroot status --format json' decoded.
func (e *migEnv) status() migState {
	e.t.Helper()
	out, errOut, code := e.Unroot(e.t, e.args("status", "--format", "json")...)
	if code != 0 {
		e.t.Fatalf("status: exit %d: %s", code, errOut)
	}
	var st migState
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		e.t.Fatalf("status json: %v\n%s", err, out)
	}
	return st
}

// migState is the part of the state file the tests read.
type migState struct {
	Services map[string]struct {
		Phase                string `json:"phase"`
		DowntimeMS           int64  `json:"downtime_ms"`
		TargetID             string `json:"target_id"`
		RestartPolicyChanged bool   `json:"restart_policy_changed"`
		Ports                []struct {
			OldHostPort string `json:"old_host_port"`
			NewHostPort string `json:"new_host_port"`
		} `json:"ports"`
	} `json:"services"`
}

// exec runs a command in a container of the source or target daemon.
func (e *migEnv) exec(target bool, container string, cmd ...string) string {
	e.t.Helper()
	return e.Docker(e.t, target, append([]string{"exec", container}, cmd...)...)
}

// inspect returns a Go template's value for a container.
func (e *migEnv) inspect(target bool, container, format string) string {
	e.t.Helper()
	return e.Docker(e.t, target, "inspect", "-f", format, container)
}

// httpGet fetches path from 127.0.0.1:port with bounded retries and
// returns the body.
func httpGet(t *testing.T, port int, path string) string {
	t.Helper()
	var last error
	for i := 0; i < 20; i++ {
		body, err := httpGetOnce(port, path)
		if err == nil {
			return body
		}
		last = err
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("GET 127.0.0.1:%d%s: %v", port, path, last)
	return ""
}

func httpGetOnce(port int, path string) (string, error) {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n", path); err != nil {
		return "", err
	}
	br := bufio.NewReader(c)
	status, err := br.ReadString('\n')
	if err != nil {
		return "", err
	}
	if !strings.Contains(status, " 200 ") {
		return "", errors.New(strings.TrimSpace(status))
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return "", err
		}
		if strings.TrimSpace(line) == "" {
			break
		}
	}
	b, err := io.ReadAll(br)
	return string(b), err
}

// startUnroot starts the binary without waiting, its stderr piped to lines.
func (e *migEnv) startUnroot(ctx context.Context, args ...string) (*exec.Cmd, <-chan string) {
	e.t.Helper()
	cmd := exec.CommandContext(ctx, e.Bin, args...)
	cmd.Env = os.Environ()
	pr, err := cmd.StderrPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	lines := make(chan string, 1000)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return cmd, lines
}
