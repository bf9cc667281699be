package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeDockerConfig lays out a docker CLI config directory the way
// 'docker context create' and 'docker context use' leave it.
func writeDockerConfig(t *testing.T, dir, current string, contexts map[string]string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if current != "" {
		cfg := `{"auths": {}, "currentContext": "` + current + `"}`
		if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for name, meta := range contexts {
		sum := sha256.Sum256([]byte(name))
		d := filepath.Join(dir, "contexts", "meta", hex.EncodeToString(sum[:]))
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "meta.json"), []byte(meta), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func contextMeta(name, host string) string {
	return `{"Name":"` + name + `","Metadata":{},"Endpoints":{"docker":{"Host":"` + host + `","SkipTLSVerify":false}}}`
}

func TestResolveDockerEndpoint(t *testing.T) {
	contexts := map[string]string{
		"current": contextMeta("current", "unix:///run/current.sock"),
		"other":   contextMeta("other", "unix:///run/other.sock"),
		"nohost":  `{"Name":"nohost","Metadata":{},"Endpoints":{}}`,
	}
	tests := []struct {
		name    string
		current string            // currentContext in HOME/.docker/config.json
		env     map[string]string // DOCKER_CONFIG is relative to the fake HOME
		want    dockerEndpoint
	}{
		{"DOCKER_HOST wins", "current", map[string]string{"DOCKER_HOST": "tcp://h:2375", "DOCKER_CONTEXT": "other"}, dockerEndpoint{Host: "tcp://h:2375"}},
		{"DOCKER_CONTEXT beats currentContext", "current", map[string]string{"DOCKER_CONTEXT": "other"}, dockerEndpoint{Host: "unix:///run/other.sock", Context: "other"}},
		{"currentContext", "current", nil, dockerEndpoint{Host: "unix:///run/current.sock", Context: "current"}},
		{"DOCKER_CONTEXT default beats currentContext", "current", map[string]string{"DOCKER_CONTEXT": "default"}, dockerEndpoint{Host: defaultSourceHost}},
		{"currentContext default", "default", nil, dockerEndpoint{Host: defaultSourceHost}},
		{"no config", "", nil, dockerEndpoint{Host: defaultSourceHost}},
		{"context without docker host", "nohost", nil, dockerEndpoint{Host: defaultSourceHost, Context: "nohost"}},
		{"DOCKER_CONFIG elsewhere", "current", map[string]string{"DOCKER_CONFIG": "alt"}, dockerEndpoint{Host: "unix:///run/alt.sock", Context: "alt"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			home := t.TempDir()
			writeDockerConfig(t, filepath.Join(home, ".docker"), tt.current, contexts)
			writeDockerConfig(t, filepath.Join(home, "alt"), "alt", map[string]string{"alt": contextMeta("alt", "unix:///run/alt.sock")})
			env := map[string]string{"HOME": home}
			for k, v := range tt.env {
				if k == "DOCKER_CONFIG" {
					v = filepath.Join(home, v)
				}
				env[k] = v
			}
			got, err := resolveDockerEndpoint(func(k string) string { return env[k] })
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestResolveDockerEndpointErrors(t *testing.T) {
	tests := []struct {
		name     string
		config   string // raw config.json; empty means none
		env      map[string]string
		wantText string
		notFound bool
	}{
		{"unknown DOCKER_CONTEXT", "", map[string]string{"DOCKER_CONTEXT": "gone"}, `docker context "gone" not found`, true},
		{"unknown currentContext", `{"currentContext":"gone"}`, nil, `docker context "gone" not found`, true},
		{"malformed config", `{"currentContext":`, nil, "parse docker config", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			home := t.TempDir()
			dir := filepath.Join(home, ".docker")
			writeDockerConfig(t, dir, "", nil)
			if tt.config != "" {
				if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(tt.config), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			env := map[string]string{"HOME": home}
			for k, v := range tt.env {
				env[k] = v
			}
			_, err := resolveDockerEndpoint(func(k string) string { return env[k] })
			if err == nil || !strings.Contains(err.Error(), tt.wantText) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantText)
			}
			var nf *contextNotFoundError
			if errors.As(err, &nf) != tt.notFound {
				t.Errorf("contextNotFoundError: %v, want %v", errors.As(err, &nf), tt.notFound)
			}
			if tt.notFound && nf.Hint() == "" {
				t.Errorf("no hint")
			}
		})
	}
}

func TestGlobalSourceFlagBeatsContext(t *testing.T) {
	noDockerEnv(t)
	home := t.TempDir()
	writeDockerConfig(t, filepath.Join(home, ".docker"), "current", map[string]string{"current": contextMeta("current", "unix:///run/current.sock")})
	t.Setenv("HOME", home)
	tests := []struct {
		name string
		g    globalOptions
		host string
		want string
	}{
		{"flag", globalOptions{sourceHost: "unix:///flag.sock"}, "unix:///env.sock", "unix:///flag.sock"},
		{"DOCKER_HOST", globalOptions{}, "unix:///env.sock", "unix:///env.sock"},
		{"context", globalOptions{}, "", "unix:///run/current.sock"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("DOCKER_HOST", tt.host)
			if got := tt.g.source(); got != tt.want {
				t.Errorf("source() = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestCheckSourceFailsOnUnknownContext runs the CLI as a user would: a verb
// that talks to a daemon refuses an unresolvable context, while local verbs
// still work.
func TestCheckSourceFailsOnUnknownContext(t *testing.T) {
	noDockerEnv(t)
	t.Setenv("HOME", t.TempDir())
	t.Setenv("DOCKER_CONTEXT", "e2e-missing")
	_, errOut, code := runEco(t, "check", "--user", "root")
	if code != exitFailed || !strings.Contains(errOut, `docker context "e2e-missing" not found`) || !strings.Contains(errOut, "hint: ") {
		t.Errorf("check: exit %d, stderr %q; want exit %d naming the context, with a hint", code, errOut, exitFailed)
	}
	for _, args := range [][]string{{"version"}, {"completion", "bash"}, {"--help"}} {
		if _, errOut, code := runEco(t, args...); code != 0 {
			t.Errorf("%v: exit %d: %s", args, code, errOut)
		}
	}
	// chown and status read no daemon: whatever they say, it is not about
	// the context.
	for _, args := range [][]string{
		{"chown", "--user", "root", "--dry-run", t.TempDir()},
		{"status", "--user", "root", "--state-dir", t.TempDir()},
	} {
		if _, errOut, _ := runEco(t, args...); strings.Contains(errOut, "e2e-missing") {
			t.Errorf("%s resolved the docker context: %s", args[0], errOut)
		}
	}
	// --source-host makes the context irrelevant.
	if _, errOut, _ := runEco(t, "check", "--user", "root", "--source-host", "unix:///nonexistent.sock"); strings.Contains(errOut, "e2e-missing") {
		t.Errorf("--source-host given, still resolved the context: %s", errOut)
	}
}
