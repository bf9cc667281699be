package migrate

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unroot/unroot/chown"
)

var update = flag.Bool("update", false, "rewrite testdata/migrate/*.golden")

// goldenPlan is a fixed plan with one of everything the renderers print.
func goldenPlan() *Plan {
	p := &Plan{
		SchemaVersion: SchemaVersion,
		User:          User{Name: "alice", UID: 1001, GID: 1001, Home: "/home/alice"},
		Source:        Daemon{Host: "unix:///var/run/docker.sock", Version: "27.5.1", CgroupDriver: "systemd", CgroupVersion: "2"},
		Target:        Daemon{Host: "unix:///run/user/1001/docker.sock", Version: "27.5.1", Rootless: true, CgroupDriver: "systemd", CgroupVersion: "2"},
		IDMap:         MapInfo{Source: "live", UIDs: testMap.UIDs, GIDs: testMap.GIDs},
		VolumesMode:   VolumesCopy,
		PortStart:     1024,
		Services: []*Service{
			{Order: 1, Container: "shop-db-1", ID: fakeID("db"), Image: "postgres:16", ImageID: "sha256:" + fakeID("pg"), Running: true, Project: "shop", Service: "db",
				Volumes: []string{"shop_dbdata"}, Networks: []string{"shop_default"}, StopTimeout: 30},
			{Order: 2, Container: "shop-web-1", ID: fakeID("web"), Image: "nginx:1.27", ImageID: "sha256:" + fakeID("ngx"), Running: true, Project: "shop", Service: "web",
				DependsOn: []string{"shop-db-1"}, Binds: []string{"/srv/shop/html"}, Networks: []string{"shop_default"}, StopTimeout: 10,
				WritableChanges: 2, CommitWritableLayer: true,
				Ports: []PortPlan{
					{Container: "shop-web-1", ContainerPort: 80, Proto: "tcp", OldHostPort: "80", NewHostPort: "8080", Rewritten: true, Reason: "below 1024: +8000"},
					{Container: "shop-web-1", ContainerPort: 443, Proto: "tcp", HostIP: "192.0.2.10", OldHostPort: "443", NewHostPort: "8443", Rewritten: true, Reason: "below 1024: +8000"},
					{Container: "shop-web-1", ContainerPort: 9000, Proto: "tcp", OldHostPort: "9000", NewHostPort: "9000"},
					{Container: "shop-web-1", ContainerPort: 5353, Proto: "udp", OldHostPort: "53", NewHostPort: "8053", Rewritten: true, Reason: "below 1024: +8000"},
				}},
			{Order: 3, Container: "old-cron", Image: "busybox:latest", ImageID: "sha256:" + fakeID("bb"), AlreadyMigrated: true, StopTimeout: 10},
		},
		Images: []ImagePlan{
			{ID: "sha256:" + fakeID("ngx"), Tags: []string{"nginx:1.27"}, Size: 192 << 20, UsedBy: []string{"shop-web-1"}},
			{ID: "sha256:" + fakeID("pg"), Tags: []string{"postgres:16"}, Size: 438 << 20, InTarget: true, UsedBy: []string{"shop-db-1"}},
		},
		Networks: []NetworkPlan{{Name: "shop_default", Driver: "bridge", Subnets: []string{"172.20.0.0/16"}, UsedBy: []string{"shop-db-1", "shop-web-1"}}},
		Volumes: []VolumePlan{{Name: "shop_dbdata", Driver: "local", SourcePath: "/var/lib/docker/volumes/shop_dbdata/_data", CopyData: true, UsedBy: []string{"shop-db-1"},
			Audit: &chown.Report{Root: "/var/lib/docker/volumes/shop_dbdata/_data", Files: 1200, Dirs: 40, Symlinks: 3, Hardlinks: 1, Bytes: 52 << 20,
				Owners: []chown.OwnerChange{{FromUID: 0, FromGID: 0, ToUID: 1001, ToGID: 1001, Count: 2}, {FromUID: 999, FromGID: 999, ToUID: 232070, ToGID: 232070, Count: 1238}}}}},
		Binds: []BindPlan{{Source: "/srv/shop/html", UsedBy: []string{"shop-web-1"}, Action: "shift",
			Audit: &chown.Report{Root: "/srv/shop/html", Files: 10, Dirs: 2, Bytes: 4096, Setuid: 1, ACLs: 2, Devices: 1, EscapingSymlinks: 1, UnmappableEntries: 1,
				Owners:     []chown.OwnerChange{{FromUID: 33, FromGID: 33, ToUID: 231104, ToGID: 231104, Count: 10}},
				Unmappable: []chown.UnmappableID{{Kind: "uid", ID: 70000, Count: 1, Examples: []string{"cache/x"}}}}}},
		Findings: []Finding{
			{Code: CodeDeviceNodes, Severity: Blocker, Subject: "bind /srv/shop/html", Message: "bind /srv/shop/html holds 1 device nodes; a rootless container cannot create or use them", Hint: "remove them, or pass --skip-devices to leave them out"},
			{Code: CodeUnmappable, Severity: Blocker, Subject: "bind /srv/shop/html", Message: "bind /srv/shop/html: 1 files owned by uid 70000, which the user's range cannot map (e.g. cache/x)", Hint: "widen the range | or map to overflow"},
			{Code: CodeSysctl, Severity: Warning, Container: "shop-web-1", Subject: "x", Message: "a warning", Hint: "a hint"},
			{Code: CodePortRewritten, Severity: Info, Container: "shop-web-1", Subject: "80", Message: "host port 80 becomes 8080 (below 1024: +8000)", Hint: "not shown for info in text"},
		},
		Prerequisites: []Prerequisite{
			{ID: "subuid", Status: "ok", Found: "alice:231072:65536"},
			{ID: "cgroup-delegation", Status: "fail", Found: "cpu | io missing", Fix: "mkdir -p /etc/systemd/system/user@.service.d && echo `Delegate=yes`"},
		},
	}
	p.Summary = Summary{Services: 2, Skipped: 1, Images: 1, ImageBytes: 192 << 20, Volumes: 1, Binds: 1, Networks: 1,
		Files: 1210, Bytes: 52<<20 + 4096, OwnerChanges: 1250, PortsRewritten: 3, Blockers: 2, Warnings: 1}
	return p
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join(testdataDir, name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./migrate -run Golden -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the output; run go test ./migrate -run Golden -update and review the diff\ngot:\n%s", path, got)
	}
}

func TestGoldenWriteText(t *testing.T) {
	tests := []struct {
		name string
		plan func() *Plan
	}{
		{"plan-blocked.txt.golden", goldenPlan},
		{"plan-ready.txt.golden", func() *Plan {
			p := goldenPlan()
			p.Findings = p.Findings[2:]
			p.Summary.Blockers, p.Summary.Applicable = 0, true
			return p
		}},
		{"plan-empty.txt.golden", func() *Plan {
			return &Plan{SchemaVersion: 1, User: User{Name: "bob", UID: 1002}, VolumesMode: VolumesCopy, PortStart: 1024, Summary: Summary{Applicable: true}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := WriteText(&b, tt.plan()); err != nil {
				t.Fatal(err)
			}
			checkGolden(t, tt.name, b.Bytes())
		})
	}
}

func TestGoldenWriteMarkdown(t *testing.T) {
	tests := []struct {
		name string
		mo   MarkdownOptions
	}{
		{"runbook-nginx.md.golden", MarkdownOptions{}},
		{"runbook-caddy.md.golden", MarkdownOptions{Proxy: "caddy", Command: "docker unroot --user alice"}},
		{"runbook-haproxy.md.golden", MarkdownOptions{Proxy: "haproxy"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := WriteMarkdown(&b, goldenPlan(), tt.mo); err != nil {
				t.Fatal(err)
			}
			checkGolden(t, tt.name, b.Bytes())
		})
	}
}

// TestWriteMarkdownContent checks what a reviewer relies on, independent of
// the golden files: cutover order, rollback per service, escaped cells.
func TestWriteMarkdownContent(t *testing.T) {
	var b bytes.Buffer
	if err := WriteMarkdown(&b, goldenPlan(), MarkdownOptions{}); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	db, web := strings.Index(md, "### 1. shop-db-1"), strings.Index(md, "### 2. shop-web-1")
	if db < 0 || web < db {
		t.Errorf("services not in cutover order")
	}
	for _, want := range []string{
		"unroot --user alice rollback shop-db-1", "unroot --user alice rollback shop-web-1",
		"**blocked**: 2 blockers", "widen the range \\| or map to overflow", "`mkdir -p /etc/systemd/system/user@.service.d && echo 'Delegate=yes'`",
		"sysctl -w net.ipv4.ip_unprivileged_port_start=80", "Already migrated; nothing to do",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("runbook lacks %q", want)
		}
	}
	if strings.Contains(md, "migrate old-cron") {
		t.Errorf("runbook migrates an already migrated service")
	}
}

func TestRewrittenPorts(t *testing.T) {
	got := rewrittenPorts(goldenPlan())
	// udp 53 is left out: the snippets proxy TCP streams.
	if len(got) != 2 || got[0].OldHostPort != "80" || got[1].OldHostPort != "443" {
		t.Errorf("rewrittenPorts = %+v", got)
	}
	if lo := lowestOld(got); lo != 80 {
		t.Errorf("lowestOld = %d", lo)
	}
}

func TestProxySnippet(t *testing.T) {
	ports := []PortPlan{
		{Container: "web", OldHostPort: "80", NewHostPort: "8080", Proto: "tcp"},
		{Container: "web", HostIP: "192.0.2.10", OldHostPort: "443", NewHostPort: "8443", Proto: "tcp"},
	}
	tests := []struct {
		proxy string
		want  string
	}{
		{"nginx", "# in /etc/nginx/nginx.conf, top level (needs the stream module)\nstream {\n" +
			"\tserver {  # web\n\t\tlisten 80;\n\t\tproxy_pass 127.0.0.1:8080;\n\t}\n" +
			"\tserver {  # web\n\t\tlisten 192.0.2.10:443;\n\t\tproxy_pass 127.0.0.1:8443;\n\t}\n}\n"},
		{"", "# in /etc/nginx/nginx.conf, top level (needs the stream module)\nstream {\n" +
			"\tserver {  # web\n\t\tlisten 80;\n\t\tproxy_pass 127.0.0.1:8080;\n\t}\n" +
			"\tserver {  # web\n\t\tlisten 192.0.2.10:443;\n\t\tproxy_pass 127.0.0.1:8443;\n\t}\n}\n"},
		{"caddy", ":80 {\n\treverse_proxy 127.0.0.1:8080\n}\n" +
			"# web: port 443 needs TLS termination in Caddy; point it at the service's plain port instead\n"},
		{"haproxy", "frontend web_80\n\tbind *:80\n\tmode tcp\n\tdefault_backend web_8080\n" +
			"backend web_8080\n\tmode tcp\n\tserver s1 127.0.0.1:8080\n" +
			"frontend web_443\n\tbind 192.0.2.10:443\n\tmode tcp\n\tdefault_backend web_8443\n" +
			"backend web_8443\n\tmode tcp\n\tserver s1 127.0.0.1:8443\n"},
	}
	for _, tt := range tests {
		t.Run(tt.proxy, func(t *testing.T) {
			if got := ProxySnippet(tt.proxy, ports); got != tt.want {
				t.Errorf("ProxySnippet(%q) =\n%s\nwant\n%s", tt.proxy, got, tt.want)
			}
		})
	}
	if got := ProxySnippet("nginx", nil); got != "# in /etc/nginx/nginx.conf, top level (needs the stream module)\nstream {\n}\n" {
		t.Errorf("empty nginx snippet = %q", got)
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(b []byte) (int, error) {
	if f.n == 0 {
		return 0, errors.New("disk full")
	}
	f.n--
	return len(b), nil
}

func TestWriteErrors(t *testing.T) {
	if err := WriteText(&failWriter{n: 2}, goldenPlan()); err == nil || err.Error() != "disk full" {
		t.Errorf("WriteText err = %v", err)
	}
	if err := WriteMarkdown(&failWriter{n: 2}, goldenPlan(), MarkdownOptions{}); err == nil || err.Error() != "disk full" {
		t.Errorf("WriteMarkdown err = %v", err)
	}
}
