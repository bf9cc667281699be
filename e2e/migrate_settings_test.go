package e2e

import (
	"strconv"
	"strings"
	"testing"
)

// TestMigratePortsAndHostSettings covers a daemon-picked host port, a port
// range, a tmpfs mount, a read-only volume, ulimits, a namespaced sysctl, a
// shareable ipc namespace and an oom score: each reads the same in the
// rootless daemon, and the served ports answer on the host.
func TestMigratePortsAndHostSettings(t *testing.T) {
	const (
		ctr = "e2e-mig-settings"
		vol = "e2e-mig-settings-ro"
	)
	e := newMigEnv(t, []string{ctr}, []string{vol}, nil)
	e.Docker(t, false, "run", "-d", "--name", ctr, "--init",
		"-p", "127.0.0.1::80", "-p", "127.0.0.1:18710-18711:80-81", "--expose", "9999",
		"--mount", "type=tmpfs,dst=/scratch,tmpfs-size=1m", "-v", vol+":/ro:ro",
		"--ulimit", "nofile=4096:8192", "--sysctl", "net.ipv4.ip_forward=1", "--ipc", "shareable", "--oom-score-adj", "500",
		"--restart", "on-failure:5",
		e.Image, "sh", "-c", "httpd -p 80 -h /etc; exec httpd -f -p 81 -h /etc")

	e.mustMigrate(ctr)

	checks := map[string]string{
		"{{json .HostConfig.Ulimits}}": `[{"Name":"nofile","Hard":8192,"Soft":4096}]`,
		"{{json .HostConfig.Sysctls}}": `{"net.ipv4.ip_forward":"1"}`,
		"{{.HostConfig.IpcMode}}":      "shareable",
		"{{.HostConfig.OomScoreAdj}}":  "500",
		"{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}": "on-failure:5",
		`{{range $p, $v := .Config.ExposedPorts}}{{$p}} {{end}}`:                             "80/tcp 81/tcp 9999/tcp",
	}
	for f, want := range checks {
		if got := e.inspect(true, ctr, f); got != want {
			t.Errorf("%s in the target = %q, want %q", f, got, want)
		}
	}
	if got := e.exec(true, ctr, "sh", "-c", "df -k /scratch | tail -1"); !strings.HasPrefix(got, "tmpfs") || !strings.Contains(got, "1024") {
		t.Errorf("tmpfs mount in the target: %q", got)
	}
	if _, err := e.DockerErr(true, "exec", ctr, "touch", "/ro/x"); err == nil {
		t.Error("read-only volume is writable in the target")
	}
	ports := e.Docker(t, true, "port", ctr)
	var picked int
	for _, l := range strings.Split(ports, "\n") {
		if strings.HasPrefix(l, "80/tcp -> 127.0.0.1:") && !strings.HasSuffix(l, ":18710") {
			picked, _ = strconv.Atoi(l[strings.LastIndex(l, ":")+1:])
		}
	}
	if picked == 0 {
		t.Fatalf("no daemon-picked port for 80/tcp in the target:\n%s", ports)
	}
	for _, p := range []int{picked, 18710, 18711} {
		if got := httpGet(t, p, "/hostname"); strings.TrimSpace(got) == "" {
			t.Errorf("port %d does not serve", p)
		}
	}
}
