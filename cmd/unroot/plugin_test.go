package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// runEco runs the CLI in-process as a user would, after the same plugin
// argument handling main does.
func runEco(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), pluginArgs(os.Args[0], args), &out, &errb)
	return out.String(), errb.String(), code
}

// noDockerEnv clears what the docker CLI or the developer's shell may have set,
// restoring it after the test.
func noDockerEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{pluginEnv, "DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CONFIG"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
}

func TestPluginMetadataFields(t *testing.T) {
	noDockerEnv(t)
	out, errOut, code := runEco(t, pluginMetadataCmd)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("metadata is not JSON: %v\n%s", err, out)
	}
	root := newRootCmd(&bytes.Buffer{}, &bytes.Buffer{})
	want := map[string]any{
		"SchemaVersion":    "0.1.0",
		"Vendor":           "unroot",
		"Version":          readVersion().Version,
		"ShortDescription": root.Short,
		"URL":              projectURL,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("metadata\n got %v\nwant %v", got, want)
	}
}

func TestPluginMetadataHiddenFromHelp(t *testing.T) {
	noDockerEnv(t)
	out, _, code := runEco(t, "--help")
	if code != 0 || strings.Contains(out, pluginMetadataCmd) {
		t.Errorf("exit %d; help lists %s:\n%s", code, pluginMetadataCmd, out)
	}
}

func TestSplitPluginArgs(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		rest    []string
		globals dockerGlobals
		ok      bool
	}{
		{"plain", []string{"unroot", "version"}, []string{"version"}, dockerGlobals{}, true},
		{"no args", []string{"unroot"}, []string{}, dockerGlobals{}, true},
		{"host", []string{"-H", "unix:///x.sock", "unroot", "check"}, []string{"check"}, dockerGlobals{host: "unix:///x.sock"}, true},
		{"host equals", []string{"--host=tcp://h:2375", "unroot", "check"}, []string{"check"}, dockerGlobals{host: "tcp://h:2375"}, true},
		{"host attached", []string{"-Hunix:///y.sock", "unroot"}, []string{}, dockerGlobals{host: "unix:///y.sock"}, true},
		{"context", []string{"--context", "ctx", "unroot", "check", "--user", "u"}, []string{"check", "--user", "u"}, dockerGlobals{context: "ctx"}, true},
		{"context short equals", []string{"-c=ctx", "unroot", "inventory"}, []string{"inventory"}, dockerGlobals{context: "ctx"}, true},
		{"config and booleans", []string{"--config", "/d", "-D", "--tls", "unroot", "x"}, []string{"x"}, dockerGlobals{config: "/d"}, true},
		{"log level value is not the plugin name", []string{"--log-level", "unroot", "unroot", "v"}, []string{"v"}, dockerGlobals{}, true},
		{"tls files", []string{"--tlscacert", "ca.pem", "--tlsverify", "unroot", "v"}, []string{"v"}, dockerGlobals{}, true},
		{"flags after the name are unroot's", []string{"unroot", "-H", "x"}, []string{"-H", "x"}, dockerGlobals{}, true},
		{"completion", []string{"__complete", "unroot", "check", ""}, []string{"__complete", "check", ""}, dockerGlobals{}, true},
		{"completion no desc", []string{"__completeNoDesc", "unroot", ""}, []string{"__completeNoDesc", ""}, dockerGlobals{}, true},
		{"run directly", []string{"check", "--user", "u"}, []string{"check", "--user", "u"}, dockerGlobals{}, false},
		{"run directly with flag", []string{"--user", "unroot", "check"}, []string{"--user", "unroot", "check"}, dockerGlobals{}, false},
		{"dangling value flag", []string{"-H"}, []string{"-H"}, dockerGlobals{}, false},
		{"empty", nil, nil, dockerGlobals{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rest, globals, ok := splitPluginArgs(tt.args)
			if ok != tt.ok || globals != tt.globals || !reflect.DeepEqual(rest, tt.rest) {
				t.Errorf("splitPluginArgs(%q) = %q, %+v, %v; want %q, %+v, %v",
					tt.args, rest, globals, ok, tt.rest, tt.globals, tt.ok)
			}
		})
	}
}

func TestDockerGlobalsEnv(t *testing.T) {
	tests := []struct {
		name string
		in   dockerGlobals
		want map[string]string
	}{
		{"none", dockerGlobals{}, map[string]string{}},
		{"host", dockerGlobals{host: "unix:///h"}, map[string]string{"DOCKER_HOST": "unix:///h"}},
		{"context overrides an outer DOCKER_HOST", dockerGlobals{context: "c"}, map[string]string{"DOCKER_CONTEXT": "c", "DOCKER_HOST": ""}},
		{"config", dockerGlobals{config: "/cfg"}, map[string]string{"DOCKER_CONFIG": "/cfg"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.in.env(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("env() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPluginArgsOnlyInPluginMode(t *testing.T) {
	noDockerEnv(t)
	args := []string{"-H", "unix:///x.sock", "unroot", "version"}
	if got := pluginArgs("/usr/local/bin/unroot", args); !reflect.DeepEqual(got, args) {
		t.Errorf("outside plugin mode: got %q, want args unchanged", got)
	}
	if _, set := os.LookupEnv("DOCKER_HOST"); set {
		t.Errorf("outside plugin mode DOCKER_HOST was set")
	}
	if got := pluginArgs("/usr/libexec/docker/cli-plugins/docker-unroot", args); !reflect.DeepEqual(got, []string{"version"}) {
		t.Errorf("by binary name: got %q, want [version]", got)
	}
	if h := os.Getenv("DOCKER_HOST"); h != "unix:///x.sock" {
		t.Errorf("DOCKER_HOST = %q after -H", h)
	}
}

func TestPluginArgsContextUnsetsHost(t *testing.T) {
	noDockerEnv(t)
	t.Setenv(pluginEnv, "/usr/bin/docker")
	t.Setenv("DOCKER_HOST", "unix:///outer.sock")
	got := pluginArgs("/tmp/x/unroot.test", []string{"--context", "ctx", "unroot", "check"})
	if !reflect.DeepEqual(got, []string{"check"}) {
		t.Errorf("got %q, want [check]", got)
	}
	if c := os.Getenv("DOCKER_CONTEXT"); c != "ctx" {
		t.Errorf("DOCKER_CONTEXT = %q, want ctx", c)
	}
	if h, set := os.LookupEnv("DOCKER_HOST"); set {
		t.Errorf("DOCKER_HOST = %q, want unset: docker's --context beats DOCKER_HOST", h)
	}
}

func TestPluginModeHelpSaysDockerUnroot(t *testing.T) {
	tests := []struct {
		name   string
		plugin bool
		args   []string
		want   string
	}{
		{"root plugin", true, []string{"unroot", "--help"}, "docker unroot [command]"},
		{"verb plugin", true, []string{"unroot", "completion", "--help"}, "docker unroot completion bash|zsh|fish"},
		{"root direct", false, []string{"--help"}, "\n  unroot [command]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			noDockerEnv(t)
			if tt.plugin {
				t.Setenv(pluginEnv, "/usr/bin/docker")
			}
			out, errOut, code := runEco(t, tt.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			if !strings.Contains(out, tt.want) {
				t.Errorf("help lacks %q:\n%s", tt.want, out)
			}
			if !tt.plugin && strings.Contains(out, "docker unroot [command]") {
				t.Errorf("direct run says docker unroot:\n%s", out)
			}
		})
	}
}

func TestPluginModeCompletesVerbs(t *testing.T) {
	noDockerEnv(t)
	t.Setenv(pluginEnv, "/usr/local/bin/docker")
	out, errOut, code := runEco(t, "__complete", "unroot", "")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	root := newRootCmd(&bytes.Buffer{}, &bytes.Buffer{})
	for _, c := range root.Commands() {
		if c.IsAvailableCommand() && !strings.Contains(out, "\n"+c.Name()+"\t") && !strings.HasPrefix(out, c.Name()+"\t") {
			t.Errorf("completion lacks verb %s:\n%s", c.Name(), out)
		}
	}
}

func TestPluginSocketContextCancelledWhenCLIClosesSocket(t *testing.T) {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	name := "@unroot_test_" + hex.EncodeToString(b) // abstract, as the docker CLI uses
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: name, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	t.Setenv(pluginSocketEnv, name)

	ctx := pluginSocketContext(context.Background())
	conn, err := l.AcceptUnix()
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
		t.Fatal("cancelled while the CLI still holds the connection")
	case <-time.After(50 * time.Millisecond):
	}
	conn.Close()
	select {
	case <-ctx.Done():
		if !errors.Is(ctx.Err(), context.Canceled) || !errors.Is(context.Cause(ctx), errPluginStopped) {
			t.Errorf("err %v, cause %v", ctx.Err(), context.Cause(ctx))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("not cancelled after the CLI closed the socket")
	}
}

func TestPluginSocketContextWithoutSocket(t *testing.T) {
	tests := []struct{ name, value string }{
		{"unset", ""},
		{"unreachable", "@unroot_test_nobody_listens"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(pluginSocketEnv, tt.value)
			parent := context.Background()
			if ctx := pluginSocketContext(parent); ctx != parent {
				t.Errorf("context replaced without a docker CLI socket")
			}
		})
	}
}
