package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMigrateComposeProject brings a two-service project up with
// docker-compose on the rootful daemon and migrates it with --project: the
// services keep their compose labels (compose sees the project in the
// rootless daemon), and the web service still reaches the db by its
// service name on the project network.
func TestMigrateComposeProject(t *testing.T) {
	compose, err := exec.LookPath("docker-compose")
	if err != nil {
		unavailable(t, "docker-compose is not installed")
	}
	const proj = "e2e-mig-proj"
	db, web := proj+"_db_1", proj+"_web_1"
	e := newMigEnv(t, []string{db, web}, []string{proj + "_data"}, []string{proj + "_default"})
	dir := t.TempDir()
	yml := `version: "3.7"
services:
  db:
    image: ` + e.Image + `
    command: ["sh", "-c", "echo ready > /data/state && exec sleep 100000"]
    user: "999:999"
    volumes: ["data:/data"]
  web:
    image: ` + e.Image + `
    command: ["httpd", "-f", "-p", "80", "-h", "/"]
    depends_on: ["db"]
    ports: ["127.0.0.1:18501:80"]
volumes:
  data: {}
`
	if err := os.WriteFile(filepath.Join(dir, "docker-compose.yml"), []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	runCompose := func(host string, args ...string) (string, error) {
		cmd := exec.Command(compose, append([]string{"-p", proj}, args...)...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+host)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	// The volume is created by compose as root; make it the db's.
	if out, err := runCompose(e.SourceHost, "up", "-d"); err != nil {
		t.Fatalf("docker-compose up: %v\n%s", err, out)
	}
	e.Docker(t, false, "run", "--rm", "-v", proj+"_data:/data", e.Image, "chown", "-R", "999:999", "/data")
	e.Docker(t, false, "restart", db)

	e.mustMigrate("--project", proj)

	if got := e.inspect(true, web, `{{index .Config.Labels "com.docker.compose.service"}}/{{index .Config.Labels "com.docker.compose.project"}}`); got != "web/"+proj {
		t.Errorf("compose labels in the target: %q", got)
	}
	if out, err := e.DockerErr(true, "exec", web, "nslookup", "db"); err != nil || !strings.Contains(out, "Address") {
		t.Errorf("web cannot resolve db in the rootless daemon: %v\n%s", err, out)
	}
	if got := e.exec(true, db, "stat", "-c", "%u:%g", "/data/state"); got != "999:999" {
		t.Errorf("db data owned by %s inside the target", got)
	}
	if got := httpGet(t, 18501, "/etc/hostname"); strings.TrimSpace(got) == "" {
		t.Error("web does not answer on its port in the target")
	}
	// Compose itself finds the project's containers in the rootless daemon.
	out, err := runCompose(e.TargetHost, "ps", "-q")
	if err != nil || strings.Count(strings.TrimSpace(out), "\n") != 1 {
		t.Errorf("docker-compose ps against the target: %v\n%s", err, out)
	}
}
