package migrate

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"

	"github.com/unroot/unroot/inventory"
)

const testComposeFile = `# the shop
services:
  web:
    image: busybox
    ports:
      - "127.0.0.1:80:80" # public
    volumes:
      - /var/run/docker.sock:/var/run/docker.sock
    depends_on: [db]
  db:
    image: busybox
    volumes:
      - data:/data
volumes:
  data: {}
`

// v1Service labels a container the way Compose 1.29 does: no depends_on
// label, config_files relative to the working directory.
func v1Service(dir, project, service string, number string, extra ...string) ctrOpt {
	return func(c *container.InspectResponse) {
		l := c.Config.Labels
		l[inventory.LabelProject] = project
		l[inventory.LabelService] = service
		l[inventory.LabelContainerNumber] = number
		l[inventory.LabelWorkingDir] = dir
		l[inventory.LabelConfigFiles] = "docker-compose.yml"
		l[inventory.LabelVersion] = "1.29.2"
		l[inventory.LabelOneOff] = "False"
		for i := 0; i+1 < len(extra); i += 2 {
			l[extra[i]] = extra[i+1]
		}
	}
}

// composeFixture writes the compose file into a fresh project directory
// and returns a source daemon with the project's containers: a-web (named
// so that name order would put it first) publishing 127.0.0.1:80 and
// binding the docker socket, and b-db.
func composeFixture(t *testing.T, webLabels ...string) (string, *fakeDaemon) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "docker-compose.yml"), []byte(testComposeFile), 0o644); err != nil {
		t.Fatal(err)
	}
	src := newFakeDaemon(false)
	src.addContainer("a-web", v1Service(dir, "shop", "web", "1", webLabels...), publish("80/tcp", "127.0.0.1", "80"),
		bindMount("/var/run/docker.sock", "/var/run/docker.sock"))
	src.addContainer("b-db", v1Service(dir, "shop", "db", "1"), volumeMount("shop_data", "/data"))
	return dir, src
}

func projectOptions(src *fakeDaemon) Options {
	o := testOptions(src, nil)
	o.All, o.Project = false, "shop"
	return o
}

func TestBuildComposeDependsOnFromFiles(t *testing.T) {
	dir, src := composeFixture(t)
	p := mustBuild(t, projectOptions(src))
	var order []string
	for _, s := range p.Services {
		order = append(order, s.Container)
	}
	if !reflect.DeepEqual(order, []string{"b-db", "a-web"}) {
		t.Errorf("cutover order %v, want b-db before a-web (depends_on from the file)", order)
	}
	if len(p.Compose) != 1 {
		t.Fatalf("compose projects = %+v", p.Compose)
	}
	cp := p.Compose[0]
	if cp.DependsOnFrom != "files" || cp.ComposeVersion != "1.29.2" {
		t.Errorf("depends_on from %q, version %q", cp.DependsOnFrom, cp.ComposeVersion)
	}
	wantSvcs := []ComposeService{{Name: "db", Containers: []string{"b-db"}}, {Name: "web", Containers: []string{"a-web"}, DependsOn: []string{"db"}}}
	if !reflect.DeepEqual(cp.Services, wantSvcs) {
		t.Errorf("services = %+v, want %+v", cp.Services, wantSvcs)
	}
	if len(cp.Files) != 1 {
		t.Fatalf("files = %+v", cp.Files)
	}
	f := cp.Files[0]
	rootless := filepath.Join(dir, RootlessComposeFile)
	if f.Original != filepath.Join(dir, "docker-compose.yml") || f.Rootless != rootless {
		t.Errorf("file %s → %s", f.Original, f.Rootless)
	}
	wantChanges := []ComposeChange{
		{Service: "web", Field: "ports", Old: "127.0.0.1:80:80", New: "127.0.0.1:8080:80"},
		{Service: "web", Field: "volumes", Old: "/var/run/docker.sock:/var/run/docker.sock", New: "/run/user/1001/docker.sock:/var/run/docker.sock"},
	}
	if !reflect.DeepEqual(f.Changes, wantChanges) {
		t.Errorf("changes = %+v, want %+v", f.Changes, wantChanges)
	}
	if len(f.Manual) != 0 {
		t.Errorf("manual = %v, want none", f.Manual)
	}
	wantCmd := "DOCKER_HOST=unix:///run/user/1001/docker.sock docker-compose -f " + rootless + " -p shop up -d"
	if cp.Command != wantCmd {
		t.Errorf("command = %q, want %q", cp.Command, wantCmd)
	}
	if !reflect.DeepEqual(cp.Recreate, []string{"web"}) {
		t.Errorf("recreate = %v, want [web] (no hasher)", cp.Recreate)
	}
	if _, err := os.Stat(rootless); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the plan wrote %s: %v", rootless, err)
	}
	if fs := findings(p, CodeComposeFile); len(fs) != 1 || fs[0].Hint != wantCmd {
		t.Errorf("compose-file findings = %+v", fs)
	}
}

func TestBuildComposeOneOffAndReplicas(t *testing.T) {
	dir, src := composeFixture(t)
	src.addContainer("a-web-2", v1Service(dir, "shop", "web", "2"), publish("80/tcp", "127.0.0.1", "81"))
	src.addContainer("shop_web_run_1", v1Service(dir, "shop", "web", "1", inventory.LabelOneOff, "True"))

	p := mustBuild(t, projectOptions(src))
	for _, s := range p.Services {
		if s.Container == "shop_web_run_1" {
			t.Error("the one-off container is migrated")
		}
	}
	if fs := findings(p, CodeComposeOneOff); len(fs) != 1 || fs[0].Container != "shop_web_run_1" || fs[0].Severity != Info {
		t.Errorf("one-off findings = %+v", fs)
	}
	if !reflect.DeepEqual(p.Compose[0].OneOff, []string{"shop_web_run_1"}) {
		t.Errorf("one_off = %v", p.Compose[0].OneOff)
	}
	if fs := findings(p, CodeComposeReplica); len(fs) != 0 {
		t.Errorf("--project selects every replica, yet: %+v", fs)
	}

	o := testOptions(src, nil)
	o.All, o.Containers = false, []string{"a-web", "b-db"}
	p = mustBuild(t, o)
	fs := findings(p, CodeComposeReplica)
	if len(fs) != 1 || fs[0].Severity != Blocker || fs[0].Subject != "a-web-2" {
		t.Errorf("replica findings = %+v, want one blocker about a-web-2", fs)
	}
	if p.Summary.Applicable {
		t.Error("a plan that splits a service's replicas is applicable")
	}
}

func TestBuildComposePartialProject(t *testing.T) {
	_, src := composeFixture(t)
	o := testOptions(src, nil)
	o.All, o.Containers = false, []string{"b-db"}
	p := mustBuild(t, o)
	if len(p.Compose) != 1 || len(p.Compose[0].Files) != 0 || p.Compose[0].Command != "" {
		t.Errorf("a partial project gets a rootless file: %+v", p.Compose)
	}
	if fs := findings(p, CodeComposePartial); len(fs) != 1 || !strings.Contains(fs[0].Message, "web") {
		t.Errorf("partial findings = %+v", fs)
	}
}

func TestBuildComposeUnreadable(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
	}{
		{"missing", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "docker-compose.yml")) }},
		{"invalid", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "docker-compose.yml"), []byte("services:\n  web:\n    ports: 80\n"), 0o644)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, src := composeFixture(t)
			tt.setup(t, dir)
			p := mustBuild(t, projectOptions(src))
			if fs := findings(p, CodeComposeUnreadable); len(fs) != 1 || fs[0].Severity != Warning {
				t.Errorf("unreadable findings = %+v", fs)
			}
			if len(p.Compose) != 1 || len(p.Compose[0].Files) != 0 || p.Compose[0].DependsOnFrom != "none" {
				t.Errorf("compose plan = %+v", p.Compose)
			}
			if !p.Summary.Applicable {
				t.Error("unreadable compose files block the migration")
			}
		})
	}
}

func TestBuildComposeFileExists(t *testing.T) {
	tests := []struct {
		name    string
		content string
		blocker bool
	}{
		{"the admin's", "services: {}\n", true},
		{"unroot's", "# " + composeHeaderMark + " from an earlier run\nservices: {}\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, src := composeFixture(t)
			if err := os.WriteFile(filepath.Join(dir, RootlessComposeFile), []byte(tt.content), 0o644); err != nil {
				t.Fatal(err)
			}
			p := mustBuild(t, projectOptions(src))
			if got := len(findings(p, CodeComposeFileExists)) == 1; got != tt.blocker {
				t.Errorf("compose-file-exists = %v, want %v: %+v", got, tt.blocker, p.Findings)
			}
		})
	}
}

func TestBuildComposeConfigHash(t *testing.T) {
	tests := []struct {
		name       string
		label      string
		hashErr    error
		wantCarry  bool
		wantLabels string
	}{
		{"reproduced", "old-hash", nil, true, "new-hash"},
		{"not reproduced", "other-hash", nil, false, "other-hash"},
		{"compose missing", "old-hash", errors.New("docker-compose: not found"), false, "old-hash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, src := composeFixture(t, LabelConfigHash, tt.label)
			o := projectOptions(src)
			var reqs []ComposeHashRequest
			o.ComposeHash = func(_ context.Context, req ComposeHashRequest) (map[string]string, error) {
				reqs = append(reqs, req)
				if tt.hashErr != nil {
					return nil, tt.hashErr
				}
				if strings.Contains(string(req.Files[0]), "8080") {
					return map[string]string{"web": "new-hash", "db": "db-hash"}, nil
				}
				return map[string]string{"web": "old-hash", "db": "db-hash"}, nil
			}
			p := mustBuild(t, o)
			cp := p.Compose[0]
			if tt.wantCarry != (cp.ConfigHashes["web"] == "new-hash") || tt.wantCarry != !slices.Contains(cp.Recreate, "web") {
				t.Errorf("config hashes %v, recreate %v; want carried = %v", cp.ConfigHashes, cp.Recreate, tt.wantCarry)
			}
			c, _ := p.Inventory().Container("a-web")
			if got := c.Labels[LabelConfigHash]; got != tt.wantLabels {
				t.Errorf("target label = %q, want %q", got, tt.wantLabels)
			}
			if len(reqs) == 0 || reqs[0].Project != "shop" || reqs[0].WorkingDir != dir || reqs[0].Version != "1.29.2" {
				t.Errorf("hash requests = %+v", reqs)
			}
			// The source inventory the plan read keeps the source's label.
			if sc := src.containers[0]; sc.Config.Labels[LabelConfigHash] != tt.label {
				t.Errorf("source label changed to %q", sc.Config.Labels[LabelConfigHash])
			}
		})
	}
}

func TestWriteComposeFiles(t *testing.T) {
	dir, src := composeFixture(t)
	p := mustBuild(t, projectOptions(src))
	rootless := filepath.Join(dir, RootlessComposeFile)
	stateDir := filepath.Join(t.TempDir(), "alice")

	recs, err := WriteComposeFiles(p, stateDir, func(string) bool { return false })
	if err != nil || len(recs) != 0 {
		t.Fatalf("before the cutover: %v, %v", recs, err)
	}
	if _, err := os.Stat(rootless); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("written before the project migrated: %v", err)
	}

	done := func(string) bool { return true }
	recs, err = WriteComposeFiles(p, stateDir, done)
	if err != nil || len(recs) != 1 || recs[0].Files[0] != rootless || recs[0].Command != p.Compose[0].Command {
		t.Fatalf("WriteComposeFiles = %+v, %v", recs, err)
	}
	b, err := os.ReadFile(rootless)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "# "+composeHeaderMark) || !strings.Contains(string(b), `"127.0.0.1:8080:80" # public`) {
		t.Errorf("rootless file:\n%s", b)
	}
	if orig, _ := os.ReadFile(filepath.Join(dir, "docker-compose.yml")); string(orig) != testComposeFile {
		t.Error("the original changed")
	}
	if st, _ := os.Stat(rootless); st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want the original's 0644", st.Mode().Perm())
	}
	got, err := LoadComposeRecords(stateDir)
	if err != nil || len(got) != 1 || got[0].Project != "shop" {
		t.Errorf("records = %+v, %v", got, err)
	}
	// A second run rewrites its own file; a file of the admin's is refused.
	if _, err := WriteComposeFiles(p, stateDir, done); err != nil {
		t.Errorf("rewriting unroot's own file: %v", err)
	}
	if err := os.WriteFile(rootless, []byte("services: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteComposeFiles(p, stateDir, done); !errors.Is(err, ErrComposeFileExists) {
		t.Errorf("over the admin's file: %v, want ErrComposeFileExists", err)
	}
	if b, _ := os.ReadFile(rootless); string(b) != "services: {}\n" {
		t.Error("the admin's file was overwritten")
	}
}

func TestComposeCommand(t *testing.T) {
	tests := []struct {
		name, version, wd string
		files             []string
		want              string
	}{
		{"v1", "1.29.2", "/srv/shop", []string{"/srv/shop/compose.rootless.yaml"},
			"DOCKER_HOST=unix:///run/user/7/docker.sock docker-compose -f /srv/shop/compose.rootless.yaml -p shop up -d"},
		{"v2", "2.24.0", "/srv/shop", []string{"/srv/shop/compose.rootless.yaml", "/srv/shop/override.rootless.yml"},
			"DOCKER_HOST=unix:///run/user/7/docker.sock docker compose -f /srv/shop/compose.rootless.yaml -f /srv/shop/override.rootless.yml -p shop up -d"},
		{"other project dir", "2.24.0", "/srv/shop", []string{"/etc/shop/compose.rootless.yaml"},
			"DOCKER_HOST=unix:///run/user/7/docker.sock docker compose -f /etc/shop/compose.rootless.yaml --project-directory /srv/shop -p shop up -d"},
		{"quoting", "", "/srv/my shop", []string{"/srv/my shop/compose.rootless.yaml"},
			"DOCKER_HOST=unix:///run/user/7/docker.sock docker compose -f '/srv/my shop/compose.rootless.yaml' -p shop up -d"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := composeCommand(7, "", tt.version, "shop", tt.wd, tt.files); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestRootlessPath(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, orig string
		i          int
		wd, want   string
	}{
		{"first in the project dir", "/x/docker-compose.yml", 0, dir, filepath.Join(dir, RootlessComposeFile)},
		{"first, no project dir", "/x/docker-compose.yml", 0, "", "/x/" + RootlessComposeFile},
		{"first, project dir gone", "/x/docker-compose.yml", 0, "/nonexistent", "/x/" + RootlessComposeFile},
		{"override", "/x/docker-compose.override.yml", 1, dir, "/x/docker-compose.override.rootless.yml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rootlessPath(tt.orig, tt.i, tt.wd); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

// TestComposeSchemaDocFields fails when a JSON field of the compose part of
// the plan is missing from docs/plan-schema.md.
func TestComposeSchemaDocFields(t *testing.T) {
	b, err := os.ReadFile("../docs/plan-schema.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []reflect.Type{reflect.TypeFor[ComposePlan](), reflect.TypeFor[ComposeService](), reflect.TypeFor[ComposeFile](), reflect.TypeFor[ComposeChange]()} {
		for f := range typ.Fields() {
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if !strings.Contains(string(b), "`"+name+"`") {
				t.Errorf("docs/plan-schema.md does not document %s field %q", typ.Name(), name)
			}
		}
	}
}

func TestWriteComposeTextGolden(t *testing.T) {
	for _, markdown := range []bool{false, true} {
		name := map[bool]string{false: "plan-compose.txt.golden", true: "plan-compose.md.golden"}[markdown]
		t.Run(name, func(t *testing.T) {
			dir, src := composeFixture(t)
			src.addContainer("shop_web_run_1", v1Service(dir, "shop", "web", "1", inventory.LabelOneOff, "True"))
			p := mustBuild(t, projectOptions(src))
			var b strings.Builder
			if err := WriteComposeText(&b, p, markdown); err != nil {
				t.Fatal(err)
			}
			checkComposeGolden(t, name, []byte(strings.ReplaceAll(b.String(), dir, "/srv/shop")))
		})
	}
	var b strings.Builder
	if err := WriteComposeText(&b, &Plan{}, false); err != nil || b.Len() != 0 {
		t.Errorf("a plan without projects writes %q, %v", b.String(), err)
	}
}

func TestBuildComposeConfigHashAlreadyMigrated(t *testing.T) {
	for _, tt := range []struct {
		name, targetLabel string
		wantRecreate      bool
	}{
		{"carried by the earlier run", "new-hash", false},
		{"not carried by the earlier run", "old-hash", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir, src := composeFixture(t, LabelConfigHash, "old-hash")
			tgt := newFakeDaemon(true)
			tgt.addContainer("a-web", v1Service(dir, "shop", "web", "1", LabelConfigHash, tt.targetLabel))
			tgt.addContainer("b-db", v1Service(dir, "shop", "db", "1"))
			o := projectOptions(src)
			o.Target = tgt
			o.Migrated = func(string) bool { return true }
			o.ComposeHash = func(_ context.Context, req ComposeHashRequest) (map[string]string, error) {
				if strings.Contains(string(req.Files[0]), "8080") {
					return map[string]string{"web": "new-hash"}, nil
				}
				return map[string]string{"web": "old-hash"}, nil
			}
			p := mustBuild(t, o)
			if got := slices.Contains(p.Compose[0].Recreate, "web"); got != tt.wantRecreate {
				t.Errorf("recreate = %v, want web listed = %v", p.Compose[0].Recreate, tt.wantRecreate)
			}
		})
	}
}

func TestBuildComposePortRanges(t *testing.T) {
	const file = `services:
  web:
    image: busybox
    ports:
      - "80-81:80-81"
      - "0.0.0.0:53:53/udp"
      - "8000-8001:9000"
      - target: 443
        published: 443
`
	tests := []struct {
		name        string
		portMap     PortMap
		wantChanges []string
		wantManual  int
	}{
		{"default", nil, []string{"80-81:80-81 → 8080-8081:80-81", "0.0.0.0:53:53/udp → 0.0.0.0:8053:53/udp", "published: 443 → published: 8443"}, 0},
		{"port map splits the range", PortMap{80: 9080, 443: 10443}, []string{"0.0.0.0:53:53/udp → 0.0.0.0:8053:53/udp", "published: 443 → published: 10443"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "docker-compose.yml"), []byte(file), 0o644); err != nil {
				t.Fatal(err)
			}
			src := newFakeDaemon(false)
			src.addContainer("web", v1Service(dir, "shop", "web", "1"), publish("80/tcp", "", "80"), publish("81/tcp", "", "81"),
				publish("53/udp", "0.0.0.0", "53"), publish("9000/tcp", "", "8000-8001"), publish("443/tcp", "", "443"))
			o := projectOptions(src)
			o.PortMap = tt.portMap
			p := mustBuild(t, o)
			if len(p.Compose) != 1 || len(p.Compose[0].Files) != 1 {
				t.Fatalf("compose = %+v, findings %+v", p.Compose, p.Findings)
			}
			f := p.Compose[0].Files[0]
			var got []string
			for _, c := range f.Changes {
				got = append(got, c.Old+" → "+c.New)
			}
			if !reflect.DeepEqual(got, tt.wantChanges) {
				t.Errorf("changes = %q, want %q", got, tt.wantChanges)
			}
			if len(f.Manual) != tt.wantManual || len(findings(p, CodeComposeManual)) != tt.wantManual {
				t.Errorf("manual = %v, want %d", f.Manual, tt.wantManual)
			}
		})
	}
}

func TestBuildComposePortsOutsideTheFiles(t *testing.T) {
	dir := t.TempDir()
	base := "services:\n  web:\n    image: busybox\n    ports:\n      - \"80:80\"\n"
	main := "services:\n  web:\n    extends:\n      file: base.yml\n      service: web\n"
	for name, content := range map[string]string{"base.yml": base, "docker-compose.yml": main} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	src := newFakeDaemon(false)
	src.addContainer("web", v1Service(dir, "shop", "web", "1"), publish("80/tcp", "", "80"))
	p := mustBuild(t, projectOptions(src))
	if len(p.Compose) != 1 || len(p.Compose[0].Files) != 1 {
		t.Fatalf("compose = %+v, findings %+v", p.Compose, p.Findings)
	}
	f := p.Compose[0].Files[0]
	if len(f.Changes) != 0 || len(f.Manual) != 1 || !strings.Contains(f.Manual[0], "extends") {
		t.Errorf("changes %v, manual %v: want the port in base.yml listed for a manual edit", f.Changes, f.Manual)
	}
	if fs := findings(p, CodeComposeManual); len(fs) != 1 {
		t.Errorf("compose-manual-edit findings = %+v", fs)
	}
}
