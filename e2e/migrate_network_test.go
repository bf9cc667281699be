package e2e

import (
	"strings"
	"testing"
)

// TestMigrateNetworkPortsWritableLayerAndRollback migrates a web server and
// a client on a user network: the web page lives only in the web
// container's writable layer; port 81 moves to --port-map 81:18181; the
// client resolves the server by name and alias inside the rootless daemon.
// A second migrate changes nothing; rollback brings back the rootful pair
// with its port and restart policy.
func TestMigrateNetworkPortsWritableLayerAndRollback(t *testing.T) {
	const (
		web = "e2e-mig-web"
		cli = "e2e-mig-cli"
		net = "e2e-mig-net"
	)
	e := newMigEnv(t, []string{web, cli}, nil, []string{net})
	e.Docker(t, false, "network", "create", "--label", "e2e=mig", net)
	e.Docker(t, false, "run", "-d", "--name", web, "--network", net, "--network-alias", "webalias",
		"--restart", "always", "-p", "127.0.0.1:81:80", e.Image, "sh", "-c", "mkdir -p /www && exec httpd -f -p 80 -h /www")
	e.exec(false, web, "sh", "-c", "echo from-the-writable-layer > /www/index.html")
	e.Docker(t, false, "run", "-d", "--name", cli, "--network", net, "--restart", "unless-stopped", e.Image, "sleep", "100000")
	if got := httpGet(t, 81, "/index.html"); !strings.Contains(got, "from-the-writable-layer") {
		t.Fatalf("source serves %q", got)
	}

	res := e.mustMigrate("--port-map", "81:18181", web, cli)
	if !strings.Contains(res.Stdout, "81→18181") {
		t.Errorf("result does not show the port rewrite:\n%s", res.Stdout)
	}

	// Port rewritten and served from the committed writable layer.
	if got := httpGet(t, 18181, "/index.html"); !strings.Contains(got, "from-the-writable-layer") {
		t.Errorf("target serves %q", got)
	}
	if got := e.inspect(true, web, "{{.Config.Image}}"); got != "unroot/commit:"+web {
		t.Errorf("target web runs image %q, want the committed one", got)
	}
	// Service DNS between the two migrated containers.
	for _, name := range []string{web, "webalias"} {
		out, err := e.DockerErr(true, "exec", cli, "nslookup", name)
		if err != nil || !strings.Contains(out, "Address") {
			t.Errorf("nslookup %s in the rootless daemon: %v\n%s", name, err, out)
		}
	}
	if got := e.inspect(true, web, "{{.HostConfig.RestartPolicy.Name}}"); got != "always" {
		t.Errorf("target restart policy = %q, want always", got)
	}
	// The source may not come back on a reboot.
	if got := e.inspect(false, web, "{{.HostConfig.RestartPolicy.Name}} {{.State.Running}}"); got != "no false" {
		t.Errorf("source web: restart policy and running = %q, want \"no false\"", got)
	}
	st := e.status()
	if s := st.Services[web]; s.Phase != "done" || len(s.Ports) != 1 || s.Ports[0].OldHostPort != "81" || s.Ports[0].NewHostPort != "18181" {
		t.Errorf("status of %s = %+v", web, s)
	}
	if st.Services[web].DowntimeMS <= 0 {
		t.Errorf("no downtime recorded: %+v", st.Services[web])
	}

	// A second migrate is a no-op.
	id := e.inspect(true, web, "{{.Id}}")
	res = e.migrate("--port-map", "81:18181", web, cli)
	if res.Code != 0 {
		t.Errorf("second migrate: exit %d", res.Code)
	}
	if !strings.Contains(res.Stdout, "already-migrated") {
		t.Errorf("second migrate does not say already migrated:\n%s", res.Stdout)
	}
	if got := e.inspect(true, web, "{{.Id}}"); got != id {
		t.Errorf("second migrate replaced the target container: %s → %s", id, got)
	}

	// Rollback: the rootful pair is back exactly.
	out, errOut, code := e.Unroot(t, e.args("rollback", web, cli)...)
	if code != 0 {
		t.Fatalf("rollback: exit %d\n%s\n%s", code, out, errOut)
	}
	for c, policy := range map[string]string{web: "always", cli: "unless-stopped"} {
		if got := e.inspect(false, c, "{{.HostConfig.RestartPolicy.Name}} {{.State.Running}}"); got != policy+" true" {
			t.Errorf("source %s after rollback: %q, want %q", c, got, policy+" true")
		}
		if _, err := e.DockerErr(true, "inspect", c); err == nil {
			t.Errorf("target %s still exists after rollback", c)
		}
	}
	if got := e.inspect(false, web, `{{range $p, $b := .HostConfig.PortBindings}}{{$p}}={{(index $b 0).HostIp}}:{{(index $b 0).HostPort}}{{end}}`); got != "80/tcp=127.0.0.1:81" {
		t.Errorf("source port binding after rollback = %q", got)
	}
	if got := httpGet(t, 81, "/index.html"); !strings.Contains(got, "from-the-writable-layer") {
		t.Errorf("source after rollback serves %q", got)
	}
	if s := e.status().Services[web]; s.Phase != "rolled-back" {
		t.Errorf("status after rollback = %q", s.Phase)
	}
}
