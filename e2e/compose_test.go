package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// cmpProject is a compose project of the rig, driven by the real
// docker-compose (Compose v1, which writes no depends_on label).
type cmpProject struct {
	e       *migEnv
	bin     string
	name    string
	dir     string
	timeout time.Duration
}

// newCmpProject writes yml as docker-compose.yml in a fresh directory and
// registers 'docker-compose down -v' on both daemons (with the original and
// the rootless file) before the rig's own cleanup of the named objects.
func newCmpProject(t *testing.T, name, yml string, containers, volumes, networks []string) *cmpProject {
	t.Helper()
	bin, err := exec.LookPath("docker-compose")
	if err != nil {
		unavailable(t, "docker-compose is not installed (scripts/testenv.sh up installs it)")
	}
	e := newMigEnv(t, containers, volumes, networks)
	p := &cmpProject{e: e, bin: bin, name: name, dir: t.TempDir(), timeout: 3 * time.Minute}
	if err := os.WriteFile(filepath.Join(p.dir, "docker-compose.yml"), []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, f := range []string{"docker-compose.yml", "compose.rootless.yaml"} {
			if _, err := os.Stat(filepath.Join(p.dir, f)); err != nil {
				continue
			}
			for _, host := range []string{e.TargetHost, e.SourceHost} {
				_, _ = p.run(host, "-f", f, "down", "-v", "--remove-orphans")
			}
		}
	})
	return p
}

// run runs docker-compose -p NAME ARGS in the project directory against host.
func (p *cmpProject) run(host string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.bin, append([]string{"-p", p.name}, args...)...)
	cmd.Dir = p.dir
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+host)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (p *cmpProject) mustRun(t *testing.T, host string, args ...string) string {
	t.Helper()
	out, err := p.run(host, args...)
	if err != nil {
		t.Fatalf("docker-compose %s against %s: %v\n%s", strings.Join(args, " "), host, err, out)
	}
	return out
}

// composeRecord mirrors migrate.ComposeRecord in the state directory.
type composeRecord struct {
	Project  string   `json:"project"`
	Files    []string `json:"files"`
	Command  string   `json:"command"`
	Recreate []string `json:"recreate_on_up"`
}

// TestComposeProjectRewrittenFile brings up, with the real docker-compose,
// a web service publishing 127.0.0.1:83 (a privileged port; 80 is the demo's) that depends on a db running as a
// non-root user with a named volume, and an agent that binds the docker
// socket; a one-off container ('docker-compose run') stays behind.
// 'unroot migrate --project' moves the three services into the rootless
// daemon, db before web (the order comes from the compose file: Compose v1
// writes no depends_on label), and writes compose.rootless.yaml beside the
// untouched original with port 83 rewritten to 8083, the socket bind
// pointed at the rootless socket, and its comments kept. docker-compose validates the new file, lists the migrated
// containers in the rootless daemon, and 'up -d' with it succeeds: the
// services unroot says compose recreates are recreated, the others are kept,
// and the volume's data survives.
func TestComposeProjectRewrittenFile(t *testing.T) {
	const name = "e2e-cmp-web"
	db, web, agent := name+"_db_1", name+"_web_1", name+"_agent_1"
	oneoff := name + "-oneoff"
	vol, nw := name+"_data", name+"_default"
	r := Load(t)
	yml := `# e2e: a web front and its db
version: "3.7"
services:
  db:
    image: ` + r.Image + `
    command: ["sh", "-c", "exec sleep 100000"]
    user: "999:999"
    volumes:
      - data:/data # the db's files
  web:
    image: ` + r.Image + `
    command: ["sh", "-c", "mkdir -p /www && echo compose-web > /www/index.html && exec httpd -f -p 80 -h /www"]
    depends_on:
      - db
    ports:
      - "127.0.0.1:83:80" # the public port
  agent:
    image: ` + r.Image + `
    command: ["sleep", "100000"]
    volumes:
      - /var/run/docker.sock:/var/run/docker.sock # talks to its daemon
volumes:
  data: {}
`
	p := newCmpProject(t, name, yml, []string{db, web, agent, oneoff}, []string{vol}, []string{nw})
	e := p.e
	p.mustRun(t, e.SourceHost, "up", "-d")
	p.mustRun(t, e.SourceHost, "run", "-d", "--no-deps", "--name", oneoff, "db", "sleep", "100000")
	// Compose creates the volume root-owned; hand it to the db's user and
	// write the data whose survival is checked.
	e.Docker(t, false, "run", "--rm", "-v", vol+":/data", e.Image, "chown", "999:999", "/data")
	token := fmt.Sprintf("token-%d", time.Now().UnixNano())
	e.exec(false, db, "sh", "-c", "echo "+token+" > /data/state")
	if got := httpGet(t, 83, "/index.html"); !strings.Contains(got, "compose-web") {
		t.Fatalf("source web serves %q", got)
	}
	orig, err := os.ReadFile(filepath.Join(p.dir, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	rootless := filepath.Join(p.dir, "compose.rootless.yaml")

	// The dry run names the file and the change, and writes nothing.
	out, errOut, code := e.Unroot(t, e.args("migrate", "--dry-run", "--format", "json", "--project", name)...)
	if code != 0 {
		t.Fatalf("dry run: exit %d\n%s\n%s", code, out, errOut)
	}
	var plan struct {
		Services []struct {
			Container string `json:"container"`
		} `json:"services"`
		Compose []struct {
			Project       string   `json:"project"`
			OneOff        []string `json:"one_off"`
			DependsOnFrom string   `json:"depends_on_from"`
			Files         []struct {
				Rootless string `json:"rootless"`
				Changes  []struct{ Service, Old, New string }
			} `json:"files"`
			Command string `json:"command"`
		} `json:"compose"`
	}
	if err := json.Unmarshal([]byte(out), &plan); err != nil {
		t.Fatalf("dry-run JSON: %v\n%s", err, out)
	}
	if len(plan.Compose) != 1 || len(plan.Compose[0].Files) != 1 {
		t.Fatalf("dry run plans no single rootless file: %+v", plan.Compose)
	}
	cp := plan.Compose[0]
	if cp.Files[0].Rootless != rootless || cp.DependsOnFrom != "files" {
		t.Errorf("dry run: rootless file %q (want %q), depends_on from %q (want files)", cp.Files[0].Rootless, rootless, cp.DependsOnFrom)
	}
	sock := "/run/user/" + fmt.Sprint(e.UID) + "/docker.sock"
	wantChanges := map[string]string{"web": "127.0.0.1:8083:80", "agent": sock + ":/var/run/docker.sock"}
	if ch := cp.Files[0].Changes; len(ch) != 2 || wantChanges[ch[0].Service] != ch[0].New || wantChanges[ch[1].Service] != ch[1].New {
		t.Errorf("dry run changes = %+v, want %v", ch, wantChanges)
	}
	if !slices.Equal(cp.OneOff, []string{oneoff}) {
		t.Errorf("dry run one-off containers = %v, want %s", cp.OneOff, oneoff)
	}
	var order []string
	for _, s := range plan.Services {
		order = append(order, s.Container)
	}
	if len(order) != 3 || slices.Index(order, db) > slices.Index(order, web) || slices.Contains(order, oneoff) {
		t.Errorf("cutover = %v, want the three services, db before web, no one-off", order)
	}
	if _, err := os.Stat(rootless); !os.IsNotExist(err) {
		t.Fatalf("the dry run wrote %s (stat: %v)", rootless, err)
	}

	res := e.mustMigrate("--project", name)
	if !strings.Contains(res.Stdout, rootless) || !strings.Contains(res.Stdout, "DOCKER_HOST="+e.TargetHost+" docker-compose -f "+rootless+" -p "+name+" up -d") {
		t.Errorf("migrate does not say where the rootless file is and how to use it:\n%s", res.Stdout)
	}

	// The original is untouched; the new file has the port rewritten and
	// keeps the comments.
	if now, _ := os.ReadFile(filepath.Join(p.dir, "docker-compose.yml")); string(now) != string(orig) {
		t.Errorf("the original compose file changed:\n%s", now)
	}
	b, err := os.ReadFile(rootless)
	if err != nil {
		t.Fatalf("no rootless compose file: %v", err)
	}
	for _, want := range []string{"# written by unroot", "# e2e: a web front and its db", "# the public port", "# the db's files",
		`"127.0.0.1:8083:80"`, sock + ":/var/run/docker.sock # talks to its daemon"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("rootless file lacks %q:\n%s", want, b)
		}
	}
	if strings.Contains(string(b), "127.0.0.1:83:80") {
		t.Errorf("rootless file still publishes port 83:\n%s", b)
	}

	// The services run in the rootless daemon and answer on the new port.
	for _, c := range []string{db, web, agent} {
		if got := e.inspect(true, c, "{{.State.Running}}"); got != "true" {
			t.Errorf("%s running in the target = %s", c, got)
		}
	}
	if got := e.inspect(true, agent, `{{range .Mounts}}{{if eq .Destination "/var/run/docker.sock"}}{{.Source}}{{end}}{{end}}`); got != sock {
		t.Errorf("agent's docker socket in the target is %q, want %s", got, sock)
	}
	// The one-off container stays where it was.
	if got := e.inspect(false, oneoff, "{{.State.Running}}"); got != "true" {
		t.Errorf("one-off on the source running = %s", got)
	}
	if _, err := e.DockerErr(true, "inspect", oneoff); err == nil {
		t.Errorf("the one-off container %s was migrated", oneoff)
	}
	if got := httpGet(t, 8083, "/index.html"); !strings.Contains(got, "compose-web") {
		t.Errorf("target web serves %q on 8083", got)
	}

	// docker-compose accepts the file and sees the migrated project.
	cfg := p.mustRun(t, e.TargetHost, "-f", "compose.rootless.yaml", "config")
	if !strings.Contains(cfg, "8083") {
		t.Errorf("docker-compose config of the rootless file has no port 8083:\n%s", cfg)
	}
	ps := p.mustRun(t, e.TargetHost, "-f", "compose.rootless.yaml", "ps", "-q")
	if n := len(strings.Fields(ps)); n != 3 {
		t.Errorf("docker-compose ps against the rootless daemon lists %d containers, want 3:\n%s", n, ps)
	}

	// A second run changes nothing and still knows the hash was carried.
	if again := e.migrate("--project", name); again.Code != 0 || !strings.Contains(again.Stdout, "already-migrated") {
		t.Errorf("second migrate: exit %d\n%s", again.Code, again.Stdout)
	}

	// What unroot recorded compose will recreate, and unroot status says so.
	var recs []composeRecord
	rb, err := os.ReadFile(filepath.Join(e.stateDir, e.User, "compose.json"))
	if err != nil {
		t.Fatalf("no compose record: %v", err)
	}
	if err := json.Unmarshal(rb, &recs); err != nil || len(recs) != 1 || recs[0].Project != name {
		t.Fatalf("compose record = %s (%v)", rb, err)
	}
	stOut, stErr, code := e.Unroot(t, e.args("status")...)
	if code != 0 || !strings.Contains(stOut, rootless) || !strings.Contains(stOut, recs[0].Command) {
		t.Errorf("unroot status (exit %d) does not show the rootless file and command:\n%s\n%s", code, stOut, stErr)
	}

	// docker-compose is installed, so unroot carried the config hash
	// compose computes for the rewritten file: up -d recreates nothing.
	if len(recs[0].Recreate) != 0 {
		t.Errorf("unroot expects compose to recreate %v; with docker-compose installed it carries the new config hash", recs[0].Recreate)
	}
	if got := e.inspect(true, web, `{{index .Config.Labels "com.docker.compose.config-hash"}}`); got == e.inspect(false, web, `{{index .Config.Labels "com.docker.compose.config-hash"}}`) {
		t.Errorf("migrated web kept the source's config hash %s although its ports changed", got)
	}

	// up -d with the rewritten file against the rootless daemon.
	before := map[string]string{}
	for _, c := range []string{db, web, agent} {
		before[c] = e.inspect(true, c, "{{.Id}}")
	}
	p.mustRun(t, e.TargetHost, "-f", "compose.rootless.yaml", "up", "-d")
	for c, id := range before {
		svc := strings.TrimSuffix(strings.TrimPrefix(c, name+"_"), "_1")
		after := e.inspect(true, c, "{{.Id}}")
		if recreate := slices.Contains(recs[0].Recreate, svc); recreate != (after != id) {
			t.Errorf("service %s: unroot says recreate=%v, but compose %s it", svc, recreate, map[bool]string{true: "recreated", false: "kept"}[after != id])
		}
		if got := e.inspect(true, c, "{{.State.Running}}"); got != "true" {
			t.Errorf("%s running after up -d = %s", c, got)
		}
	}
	if got := e.exec(true, db, "cat", "/data/state"); got != token {
		t.Errorf("volume data after up -d = %q, want %q", got, token)
	}
	if got := httpGet(t, 8083, "/index.html"); !strings.Contains(got, "compose-web") {
		t.Errorf("target web serves %q on 8083 after up -d", got)
	}
	// Nothing came back on the rootful daemon.
	if out := e.Docker(t, false, "ps", "--format", "{{.Names}}", "--filter", "label=com.docker.compose.project="+name); out != oneoff {
		t.Errorf("containers of the project on the rootful daemon: %q, want only the one-off %s", out, oneoff)
	}
}
