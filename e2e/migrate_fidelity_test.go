package e2e

import (
	"fmt"
	"strings"
	"testing"
)

// TestMigrateFidelityHealthcheckAndSharedVolume creates a container with
// many settings and a healthcheck, plus a second container sharing its
// volume; both move as one unit (both stopped before either starts in the
// target), the target passes its healthcheck, every setting reads the same
// in the rootless daemon, and the docker socket bind points at the rootless
// socket.
func TestMigrateFidelityHealthcheckAndSharedVolume(t *testing.T) {
	const (
		a   = "e2e-mig-fid-a"
		b   = "e2e-mig-fid-b"
		vol = "e2e-mig-fid-shared"
	)
	e := newMigEnv(t, []string{a, b}, []string{vol}, nil)
	e.Docker(t, false, "run", "-d", "--name", a,
		"--env", "FOO=bar baz", "--label", "com.example.team=infra", "--user", "1234:1234", "--workdir", "/tmp",
		"--hostname", "fidhost", "--domainname", "example.org", "--add-host", "h1:10.1.2.3",
		"--dns", "10.9.9.9", "--dns-search", "example.org", "--dns-option", "ndots:2",
		"--stop-signal", "SIGUSR1", "--stop-timeout", "3", "--init", "--shm-size", "32m", "--read-only",
		"--tmpfs", "/run:size=8m", "--cap-drop", "NET_RAW", "--cap-add", "SYS_PTRACE", "--ulimit", "nofile=512:1024",
		"--log-opt", "max-size=1m", "--health-cmd", "test -d /s", "--health-interval", "1s", "--health-retries", "2",
		"--restart", "on-failure:3", "-v", vol+":/s", "-v", "/var/run/docker.sock:/var/run/docker.sock",
		e.Image, "sleep", "100000")
	e.Docker(t, false, "run", "-d", "--name", b, "-v", vol+":/s", e.Image, "sh", "-c", "echo from-b > /s/b && exec sleep 100000")
	fields := []string{
		"{{json .Config.Env}}", "{{json .Config.Labels}}", "{{.Config.User}}", "{{.Config.WorkingDir}}",
		"{{.Config.Hostname}}", "{{.Config.StopSignal}}", "{{json .Config.StopTimeout}}",
		"{{json .Config.Healthcheck}}", "{{json .Config.Cmd}}", "{{json .Config.Entrypoint}}",
		"{{json .HostConfig.ExtraHosts}}", "{{json .HostConfig.Dns}}", "{{json .HostConfig.DnsSearch}}", "{{json .HostConfig.DnsOptions}}",
		"{{json .HostConfig.Init}}", "{{.HostConfig.ShmSize}}", "{{.HostConfig.ReadonlyRootfs}}", "{{json .HostConfig.Tmpfs}}",
		"{{json .HostConfig.Ulimits}}", "{{json .HostConfig.LogConfig}}",
	}
	want := map[string]string{}
	for _, f := range fields {
		want[f] = e.inspect(false, a, f)
	}
	wantCaps := normCaps(e.inspect(false, a, "{{json .HostConfig.CapAdd}} {{json .HostConfig.CapDrop}}"))

	res := e.mustMigrate(a, b)

	lines := strings.Split(res.Stderr, "\n")
	lastStop, firstCreate := -1, len(lines)
	for i, l := range lines {
		if strings.HasSuffix(l, ": source stopped") {
			lastStop = i
		}
		if strings.HasPrefix(l, "e2e-mig-fid-") && strings.HasSuffix(l, ": created in target") && i < firstCreate {
			firstCreate = i
		}
	}
	if lastStop < 0 || lastStop > firstCreate {
		t.Errorf("containers sharing a volume were not cut over together (last stop at line %d, first create at %d):\n%s", lastStop, firstCreate, res.Stderr)
	}
	for _, f := range fields {
		if got := e.inspect(true, a, f); got != want[f] {
			t.Errorf("%s: target %s, source %s", f, got, want[f])
		}
	}
	if got := normCaps(e.inspect(true, a, "{{json .HostConfig.CapAdd}} {{json .HostConfig.CapDrop}}")); got != wantCaps {
		t.Errorf("capabilities: target %s, source %s", got, wantCaps)
	}
	if got := e.inspect(true, a, "{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}"); got != "on-failure:3" {
		t.Errorf("target restart policy %s", got)
	}
	// A rootless container cannot set its domain name: dropped, with a
	// warning, rather than a container that fails to start.
	if got := e.inspect(true, a, "{{.Config.Domainname}}"); got != "" || !strings.Contains(res.Stderr, "domain name") {
		t.Errorf("domain name in the target %q; warning in stderr: %v", got, strings.Contains(res.Stderr, "domain name"))
	}
	if got := e.inspect(true, a, "{{.State.Health.Status}}"); got != "healthy" {
		t.Errorf("target health %q", got)
	}
	sock := e.inspect(true, a, `{{range .Mounts}}{{if eq .Destination "/var/run/docker.sock"}}{{.Source}}{{end}}{{end}}`)
	if want := fmt.Sprintf("/run/user/%d/docker.sock", e.UID); sock != want {
		t.Errorf("docker socket bind source in the target = %q, want %q", sock, want)
	}
	if got := e.exec(true, a, "cat", "/s/b"); got != "from-b" {
		t.Errorf("shared volume seen by %s: %q", a, got)
	}
}

// normCaps drops the CAP_ prefix the client adds, so "SYS_PTRACE" and
// "CAP_SYS_PTRACE" compare equal.
func normCaps(s string) string { return strings.ReplaceAll(s, "CAP_", "") }
