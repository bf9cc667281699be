package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// pluginClients are the docker CLIs the plugin is tested under: Debian's
// 20.10 (docker.io) and the 28.x static client, where installed.
var pluginClients = []string{"/usr/local/bin/docker", "/usr/bin/docker"}

// pluginHome is a HOME whose ~/.docker/cli-plugins holds docker-unroot, and
// the docker CLI run with it.
type pluginHome struct {
	docker string
	home   string
}

// forEachPluginClient runs f once per installed docker CLI, each with a fresh
// HOME in which docker-unroot is a symlink to the binary under test, the way
// 'make install' links it.
func forEachPluginClient(t *testing.T, r *Rig, f func(t *testing.T, p *pluginHome)) {
	t.Helper()
	found := 0
	for _, docker := range pluginClients {
		if _, err := os.Stat(docker); err != nil {
			continue
		}
		found++
		t.Run(strings.ReplaceAll(strings.TrimPrefix(docker, "/"), "/", "_"), func(t *testing.T) {
			home := t.TempDir()
			dir := filepath.Join(home, ".docker", "cli-plugins")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(r.Bin, filepath.Join(dir, "docker-unroot")); err != nil {
				t.Fatal(err)
			}
			f(t, &pluginHome{docker: docker, home: home})
		})
	}
	if found == 0 {
		t.Fatalf("no docker CLI at any of %v", pluginClients)
	}
}

// pluginCleanEnv is the test process's environment without what would point
// the docker CLI or unroot somewhere else.
func pluginCleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "HOME", "DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CONFIG", "DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// run runs this HOME's docker CLI with extra environment variables.
func (p *pluginHome) run(t *testing.T, env []string, args ...string) Result {
	t.Helper()
	return pluginExec(t, p.docker, append([]string{"HOME=" + p.home}, env...), args...)
}

// mustRun is run that fails the test unless docker exits 0; it returns stdout.
func (p *pluginHome) mustRun(t *testing.T, env []string, args ...string) string {
	t.Helper()
	res := p.run(t, env, args...)
	if res.Code != 0 {
		t.Fatalf("%s %s: exit %d\nstdout: %s\nstderr: %s", p.docker, strings.Join(args, " "), res.Code, res.Stdout, res.Stderr)
	}
	return res.Stdout
}

func pluginExec(t *testing.T, bin string, env []string, args ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(pluginCleanEnv(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	code := 0
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("run %s %s: %v", bin, strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	t.Logf("%s %s → exit %d", bin, strings.Join(args, " "), code)
	return Result{Stdout: out.String(), Stderr: errb.String(), Code: code}
}

// pluginVersion is 'unroot version --format json' run directly.
func pluginVersion(t *testing.T, r *Rig) string {
	t.Helper()
	out, errOut, code := r.Unroot(t, "version", "--format", "json")
	if code != 0 {
		t.Fatalf("unroot version: exit %d: %s", code, errOut)
	}
	var v struct{ Version string }
	if err := json.Unmarshal([]byte(out), &v); err != nil || v.Version == "" {
		t.Fatalf("unroot version json %q: %v", out, err)
	}
	return v.Version
}

func TestPluginListedByDockerInfo(t *testing.T) {
	r := Load(t)
	want := pluginVersion(t, r)
	forEachPluginClient(t, r, func(t *testing.T, p *pluginHome) {
		out := p.mustRun(t, []string{"DOCKER_HOST=" + r.SourceHost}, "info", "--format", "{{json .ClientInfo.Plugins}}")
		var plugins []struct {
			Name, Path, SchemaVersion, Vendor, Version, ShortDescription, URL string
			Err                                                               any
		}
		if err := json.Unmarshal([]byte(out), &plugins); err != nil {
			t.Fatalf("docker info plugins %q: %v", out, err)
		}
		var found bool
		for _, pl := range plugins {
			if pl.Name != "unroot" {
				continue
			}
			found = true
			if pl.Err != nil {
				t.Errorf("docker rejects the plugin: %v", pl.Err)
			}
			if pl.SchemaVersion != "0.1.0" || pl.Vendor == "" || pl.Version != want || pl.ShortDescription == "" || pl.URL == "" {
				t.Errorf("plugin metadata as docker sees it: %+v (version want %q)", pl, want)
			}
			if pl.Path != filepath.Join(p.home, ".docker", "cli-plugins", "docker-unroot") {
				t.Errorf("plugin path %q", pl.Path)
			}
		}
		if !found {
			t.Fatalf("docker info does not list unroot: %s", out)
		}
		if help := p.mustRun(t, nil, "--help"); !strings.Contains(help, "unroot*") {
			t.Errorf("docker --help does not list the unroot plugin:\n%s", help)
		}
	})
}

func TestPluginVersionAndHelp(t *testing.T) {
	r := Load(t)
	direct, errOut, code := r.Unroot(t, "--help")
	if code != 0 {
		t.Fatalf("unroot --help: exit %d: %s", code, errOut)
	}
	verbs := pluginHelpVerbs(direct)
	if len(verbs) < 3 {
		t.Fatalf("unroot --help lists too few verbs %v:\n%s", verbs, direct)
	}
	wantVersion := pluginVersion(t, r)
	forEachPluginClient(t, r, func(t *testing.T, p *pluginHome) {
		var v struct{ Version string }
		out := p.mustRun(t, nil, "unroot", "version", "--format", "json")
		if err := json.Unmarshal([]byte(out), &v); err != nil || v.Version != wantVersion {
			t.Errorf("docker unroot version: %q (%v), want version %q", out, err, wantVersion)
		}
		help := p.mustRun(t, nil, "unroot", "--help")
		if !strings.Contains(help, "docker unroot [command]") {
			t.Errorf("docker unroot --help does not say 'docker unroot':\n%s", help)
		}
		if got := pluginHelpVerbs(help); strings.Join(got, " ") != strings.Join(verbs, " ") {
			t.Errorf("docker unroot --help lists %v, unroot --help %v", got, verbs)
		}
		// The docker 28 CLI completes plugin commands by asking the plugin
		// ('docker-unroot __complete unroot ...'); 20.10 does not.
		if major := p.clientMajor(t); major >= 28 {
			got := p.mustRun(t, nil, "__complete", "unroot", "")
			for _, v := range verbs {
				if !strings.Contains(got, v+"\t") {
					t.Errorf("docker %d completion of 'docker unroot ' lacks %s:\n%s", major, v, got)
				}
			}
		}
		res := p.run(t, nil, "unroot", "--no-such-flag")
		if res.Code != 2 || !strings.Contains(res.Stderr, "--no-such-flag") {
			t.Errorf("docker unroot --no-such-flag: exit %d, stderr %q; want the usage exit 2", res.Code, res.Stderr)
		}
	})
}

// clientMajor is the docker CLI's major version.
func (p *pluginHome) clientMajor(t *testing.T) int {
	t.Helper()
	v := strings.TrimSpace(p.mustRun(t, nil, "version", "--format", "{{.Client.Version}}"))
	major, err := strconv.Atoi(strings.SplitN(v, ".", 2)[0])
	if err != nil {
		t.Fatalf("docker client version %q: %v", v, err)
	}
	return major
}

// pluginHelpVerbs returns the verbs under "Available Commands:" in help text.
func pluginHelpVerbs(help string) []string {
	_, rest, ok := strings.Cut(help, "Available Commands:\n")
	if !ok {
		return nil
	}
	var verbs []string
	for _, line := range strings.Split(rest, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			break
		}
		verbs = append(verbs, f[0])
	}
	return verbs
}

// pluginInventory is the part of 'unroot inventory --format json' these tests read.
type pluginInventory struct {
	Daemon struct {
		Rootless      bool   `json:"rootless"`
		DockerRootDir string `json:"docker_root_dir"`
	} `json:"daemon"`
	Containers []struct {
		Name string `json:"name"`
	} `json:"containers"`
}

func pluginParseInventory(t *testing.T, out string) pluginInventory {
	t.Helper()
	var inv pluginInventory
	if err := json.Unmarshal([]byte(out), &inv); err != nil {
		t.Fatalf("inventory json: %v\n%s", err, out)
	}
	return inv
}

func (inv pluginInventory) has(name string) bool {
	for _, c := range inv.Containers {
		if strings.TrimPrefix(c.Name, "/") == name {
			return true
		}
	}
	return false
}

// TestPluginInventoryFollowsDockerDaemonSelection proves which daemon
// 'docker unroot inventory' reads: the rig's rootful daemon reports
// rootless=false and has the test container, the rootless one reports
// rootless=true, for each way the docker CLI selects a daemon.
func TestPluginInventoryFollowsDockerDaemonSelection(t *testing.T) {
	r := Load(t)
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := "e2e-plugin-" + hex.EncodeToString(b)
	r.Docker(t, false, "create", "--name", name, r.Image, "true")
	t.Cleanup(func() { _, _ = r.DockerErr(false, "rm", "-f", name) })

	forEachPluginClient(t, r, func(t *testing.T, p *pluginHome) {
		ctxName := "e2e-plugin-rootless"
		p.mustRun(t, nil, "context", "create", ctxName, "--docker", "host="+r.TargetHost)
		p.mustRun(t, nil, "context", "create", "e2e-plugin-gone", "--docker", "host=unix:///nonexistent/e2e-plugin.sock")

		tests := []struct {
			name     string
			env      []string
			args     []string
			rootless bool
		}{
			{"DOCKER_HOST", []string{"DOCKER_HOST=" + r.SourceHost}, nil, false},
			{"-H", nil, []string{"-H", r.TargetHost}, true},
			{"--context", nil, []string{"--context", ctxName}, true},
			{"DOCKER_CONTEXT", []string{"DOCKER_CONTEXT=" + ctxName}, nil, true},
			{"--context beats DOCKER_HOST", []string{"DOCKER_HOST=" + r.SourceHost}, []string{"--context", ctxName}, true},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				args := append(append(tt.args, "unroot", "inventory", "--format", "json"), name)
				if tt.rootless {
					// The container lives in the rootful daemon only.
					args = args[:len(args)-1]
				}
				inv := pluginParseInventory(t, p.mustRun(t, tt.env, args...))
				if inv.Daemon.Rootless != tt.rootless {
					t.Errorf("read a daemon with rootless=%v (root dir %s), want rootless=%v",
						inv.Daemon.Rootless, inv.Daemon.DockerRootDir, tt.rootless)
				}
				if !tt.rootless && !inv.has(name) {
					t.Errorf("inventory of the rootful daemon lacks container %s", name)
				}
			})
		}

		// 'docker context use' is followed by unroot as a plugin and run
		// directly with the same HOME; DOCKER_HOST still wins.
		p.mustRun(t, nil, "context", "use", ctxName)
		if inv := pluginParseInventory(t, p.mustRun(t, nil, "unroot", "inventory", "--format", "json")); !inv.Daemon.Rootless {
			t.Errorf("docker unroot ignored the current context %s", ctxName)
		}
		direct := pluginExec(t, r.Bin, []string{"HOME=" + p.home}, "inventory", "--format", "json")
		if direct.Code != 0 || !pluginParseInventory(t, direct.Stdout).Daemon.Rootless {
			t.Errorf("unroot run directly ignored the current context %s: exit %d: %s", ctxName, direct.Code, direct.Stderr)
		}
		withHost := pluginExec(t, r.Bin, []string{"HOME=" + p.home, "DOCKER_HOST=" + r.SourceHost}, "inventory", "--format", "json", name)
		if withHost.Code != 0 || !pluginParseInventory(t, withHost.Stdout).has(name) {
			t.Errorf("DOCKER_HOST did not win over the current context: exit %d: %s", withHost.Code, withHost.Stderr)
		}

		// A context whose daemon is not there fails, naming its socket,
		// rather than falling back to the default socket.
		res := p.run(t, nil, "--context", "e2e-plugin-gone", "unroot", "inventory", "--format", "json")
		if res.Code != 1 || res.Stdout != "" || !strings.Contains(res.Stderr, "/nonexistent/e2e-plugin.sock") {
			t.Errorf("unreachable context: exit %d, stdout %q, stderr %q; want exit 1 naming the socket", res.Code, res.Stdout, res.Stderr)
		}
	})
}

// TestPluginMakeInstall installs with 'make install' into a temporary prefix
// and plugin directory and runs the result through the docker CLI.
func TestPluginMakeInstall(t *testing.T) {
	r := Load(t)
	tmp := t.TempDir()
	prefix := filepath.Join(tmp, "prefix")
	home := filepath.Join(tmp, "home")
	pluginDir := filepath.Join(home, ".docker", "cli-plugins")
	staged := filepath.Join(tmp, "destdir")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, args := range [][]string{
		{"install", "PREFIX=" + prefix, "PLUGINDIR=" + pluginDir, "BIN=" + filepath.Join(tmp, "unroot")},
		{"install", "DESTDIR=" + staged, "BIN=" + filepath.Join(tmp, "unroot")},
	} {
		cmd := exec.CommandContext(ctx, "make", append([]string{"-C", repoRoot()}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	// Staged for a package: the link points at the final location.
	link := filepath.Join(staged, "usr", "libexec", "docker", "cli-plugins", "docker-unroot")
	if dest, err := os.Readlink(link); err != nil || dest != "/usr/local/bin/unroot" {
		t.Errorf("staged plugin link %s → %q (%v), want /usr/local/bin/unroot", link, dest, err)
	}
	if fi, err := os.Stat(filepath.Join(staged, "usr", "local", "bin", "unroot")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("staged binary: %v %v", fi, err)
	}
	if _, err := os.Stat(filepath.Join(staged, "usr", "local", "share", "man", "man1", "unroot.1")); err != nil {
		t.Errorf("staged man page: %v", err)
	}

	want := pluginVersion(t, r)
	found := 0
	for _, docker := range pluginClients {
		if _, err := os.Stat(docker); err != nil {
			continue
		}
		found++
		res := pluginExec(t, docker, []string{"HOME=" + home}, "unroot", "version", "--format", "json")
		var v struct{ Version string }
		if res.Code != 0 || json.Unmarshal([]byte(res.Stdout), &v) != nil || v.Version != want {
			t.Errorf("%s unroot version after make install: exit %d, %q %q", docker, res.Code, res.Stdout, res.Stderr)
		}
	}
	if found == 0 {
		t.Fatalf("no docker CLI at any of %v", pluginClients)
	}
}

// TestPluginVerbsMatchDirectRun runs daemon-reading and state-reading verbs
// both ways and requires the same exit status and the same report.
func TestPluginVerbsMatchDirectRun(t *testing.T) {
	r := Load(t)
	state := t.TempDir()
	verbs := []struct {
		name string
		args []string
		// key reduces the JSON report to what must not differ between runs.
		key func(t *testing.T, out string) string
	}{
		{"check", append([]string{"check", "--format", "json"}, r.Hosts()...), func(t *testing.T, out string) string {
			// Statuses are left out: a container another test leaves behind
			// may turn a daemon check to warn between the two runs.
			var rep struct {
				User   struct{ Name string }
				Checks []struct{ ID string }
			}
			if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Checks) == 0 {
				t.Fatalf("check json: %v\n%s", err, out)
			}
			return fmt.Sprint(rep.User, rep.Checks)
		}},
		{"status", []string{"status", "--user", r.User, "--state-dir", state, "--format", "json"}, func(t *testing.T, out string) string {
			var v map[string]any
			if err := json.Unmarshal([]byte(out), &v); err != nil {
				t.Fatalf("status json: %v\n%s", err, out)
			}
			return fmt.Sprint(v)
		}},
	}
	for _, v := range verbs {
		t.Run(v.name, func(t *testing.T) {
			direct := r.UnrootEnv(t, nil, v.args...)
			if direct.Code != 0 && direct.Code != 1 {
				t.Fatalf("unroot %s: exit %d: %s", v.name, direct.Code, direct.Stderr)
			}
			want := v.key(t, direct.Stdout)
			forEachPluginClient(t, r, func(t *testing.T, p *pluginHome) {
				res := p.run(t, nil, append([]string{"unroot"}, v.args...)...)
				if res.Code != direct.Code {
					t.Errorf("exit %d, direct run %d: %s", res.Code, direct.Code, res.Stderr)
				}
				if got := v.key(t, res.Stdout); got != want {
					t.Errorf("docker unroot %s reports\n%s\ndirect run\n%s", v.name, got, want)
				}
			})
		})
	}
}
