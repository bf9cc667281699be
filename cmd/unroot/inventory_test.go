package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/unroot/unroot/inventory"
)

func runInventoryCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), code
}

// fakeDaemon serves the recorded API 1.41 JSON of testdata/inventory over a
// unix socket, so the real client (negotiation, decoding) is exercised.
func fakeDaemon(t *testing.T) string {
	t.Helper()
	dir := "../../testdata/inventory/api1.41"
	file := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// Objects are looked up by the name or ID in their file.
	byKey := map[string][]byte{}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		b := file(e.Name())
		var head struct{ Id, Name string }
		_ = json.Unmarshal(b, &head)
		prefix, _, _ := strings.Cut(e.Name(), "-")
		for _, k := range []string{head.Id, strings.TrimPrefix(head.Name, "/")} {
			if k != "" {
				byKey[prefix+"/"+k] = b
			}
		}
	}
	versionPrefix := regexp.MustCompile(`^/v[0-9.]+`)
	route := regexp.MustCompile(`^/(containers|images|volumes|networks)/(.+?)(/json)?$`)
	mux := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", "1.41")
		w.Header().Set("Content-Type", "application/json")
		path := versionPrefix.ReplaceAllString(r.URL.Path, "")
		switch path {
		case "/_ping":
			_, _ = w.Write([]byte("OK"))
			return
		case "/info":
			_, _ = w.Write(file("info.json"))
			return
		case "/containers/json":
			_, _ = w.Write(file("containers.json"))
			return
		case "/images/json":
			_, _ = w.Write(file("images.json"))
			return
		case "/volumes":
			_, _ = w.Write(file("volumes.json"))
			return
		case "/networks":
			_, _ = w.Write(file("networks.json"))
			return
		}
		if m := route.FindStringSubmatch(path); m != nil {
			kind := strings.TrimSuffix(m[1], "s")
			if b, ok := byKey[kind+"/"+m[2]]; ok {
				_, _ = w.Write(b)
				return
			}
		}
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"message":"No such object: ` + path + `"}`))
	})
	sock := filepath.Join(t.TempDir(), "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "unix://" + sock
}

func TestInventoryCmdJSONThroughRealClient(t *testing.T) {
	host := fakeDaemon(t)
	stdout, stderr, code := runInventoryCLI(t, "--source-host", host, "inventory", "--all", "--format", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if stderr != "" {
		t.Errorf("stderr = %q, want nothing", stderr)
	}
	var inv inventory.Inventory
	if err := json.Unmarshal([]byte(stdout), &inv); err != nil {
		t.Fatalf("stdout is not an inventory: %v", err)
	}
	if inv.Daemon.APIVersion != "1.41" {
		t.Errorf("api version = %q, want the negotiated 1.41", inv.Daemon.APIVersion)
	}
	c, err := inv.Container("fx-inv-mac")
	if err != nil {
		t.Fatal(err)
	}
	if c.MacAddress != "02:42:ac:11:00:99" {
		t.Errorf("mac address = %q: raw JSON not read through the real client", c.MacAddress)
	}
	if len(inv.Containers) != 4 || len(inv.Networks) != 4 || len(inv.Volumes) != 2 || len(inv.Projects) != 1 {
		t.Errorf("got %d containers, %d networks, %d volumes, %d projects; want 4, 4, 2, 1",
			len(inv.Containers), len(inv.Networks), len(inv.Volumes), len(inv.Projects))
	}
}

func TestInventoryCmdText(t *testing.T) {
	host := fakeDaemon(t)
	stdout, stderr, code := runInventoryCLI(t, "--source-host", host, "inventory", "fxshop-web-1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"CONTAINERS (1)", "fxshop-web-1  running", "127.0.0.1:18080->80/tcp", "BIND MOUNTS (1)", "COMPOSE PROJECTS (1)"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("text output lacks %q:\n%s", want, stdout)
		}
	}
}

func TestInventoryCmdErrors(t *testing.T) {
	host := fakeDaemon(t)
	tests := []struct {
		name     string
		args     []string
		code     int
		stderrRe string
	}{
		{"BadFormat", []string{"--source-host", host, "inventory", "--format", "yaml"}, exitUsage, `unknown --format "yaml"\nhint: use one of: text, json`},
		{"UnknownContainer", []string{"--source-host", host, "inventory", "fxshop-wbe-1"}, exitFailed,
			`no container named "fxshop-wbe-1"; did you mean "fxshop-web-1"\?\nhint: run 'docker ps -a' against the source daemon`},
		{"DaemonDown", []string{"--source-host", "unix://" + filepath.Join(t.TempDir(), "none.sock"), "inventory"}, exitFailed,
			`source daemon at unix://.*does not answer.*\nhint: start the rootful daemon`},
		{"UnknownFlag", []string{"inventory", "--bogus"}, exitUsage, `unknown flag: --bogus`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := runInventoryCLI(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d; stderr: %s", code, tt.code, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing on error", stdout)
			}
			if !regexp.MustCompile(tt.stderrRe).MatchString(stderr) {
				t.Errorf("stderr = %q, want match for %q", stderr, tt.stderrRe)
			}
		})
	}
}
