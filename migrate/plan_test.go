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

	"github.com/unroot/unroot/chown"
	"github.com/unroot/unroot/inventory"
)

// testMap is a rootless map for uid/gid 1001 with a subordinate range that
// deliberately does not start at 100000.
var testMap = chown.IDMap{
	UIDs: []chown.Range{{Container: 0, Host: 1001, Size: 1}, {Container: 1, Host: 231072, Size: 65536}},
	GIDs: []chown.Range{{Container: 0, Host: 1001, Size: 1}, {Container: 1, Host: 231072, Size: 65536}},
}

func testOptions(src, tgt *fakeDaemon) Options {
	o := Options{
		Source: src, SourceHost: "unix:///var/run/docker.sock", TargetHost: "unix:///run/user/1001/docker.sock",
		User: User{Name: "alice", UID: 1001, GID: 1001, Home: "/home/alice"},
		Map:  testMap, MapSource: "live", All: true, TargetSocket: "/run/user/1001/docker.sock",
	}
	if tgt != nil {
		o.Target = tgt
	}
	return o
}

func mustBuild(t *testing.T, o Options) *Plan {
	t.Helper()
	p, err := Build(context.Background(), o)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	checkSummaryConsistent(t, p)
	return p
}

// checkSummaryConsistent recounts what the summary claims.
func checkSummaryConsistent(t *testing.T, p *Plan) {
	t.Helper()
	var blockers, warnings int
	for _, f := range p.Findings {
		switch f.Severity {
		case Blocker:
			blockers++
		case Warning:
			warnings++
		}
	}
	if p.Summary.Blockers != blockers || p.Summary.Warnings != warnings || len(p.Blockers()) != blockers {
		t.Errorf("summary says %d blockers, %d warnings; findings have %d, %d", p.Summary.Blockers, p.Summary.Warnings, blockers, warnings)
	}
	if p.Summary.Applicable != (blockers == 0) {
		t.Errorf("Applicable = %v with %d blockers", p.Summary.Applicable, blockers)
	}
	if p.SchemaVersion != SchemaVersion {
		t.Errorf("SchemaVersion = %d", p.SchemaVersion)
	}
}

func findings(p *Plan, code string) []Finding {
	var out []Finding
	for _, f := range p.Findings {
		if f.Code == code {
			out = append(out, f)
		}
	}
	return out
}

func service(t *testing.T, p *Plan, name string) *Service {
	t.Helper()
	for _, s := range p.Services {
		if s.Container == name {
			return s
		}
	}
	t.Fatalf("no service %s in plan", name)
	return nil
}

func TestBuildPortRewrite(t *testing.T) {
	src, tgt := newFakeDaemon(false), newFakeDaemon(true)
	src.addContainer("web", publish("80/tcp", "", "80"), publish("443/tcp", "127.0.0.1", "443"), publish("9000/tcp", "", "9000"), publish("53/udp", "", "53"), publish("7000/tcp", "", ""))
	p := mustBuild(t, testOptions(src, tgt))
	got := service(t, p, "web").Ports
	want := []PortPlan{
		{Container: "web", ContainerPort: 53, Proto: "udp", OldHostPort: "53", NewHostPort: "8053", Rewritten: true, Reason: "below 1024: +8000"},
		{Container: "web", ContainerPort: 80, Proto: "tcp", OldHostPort: "80", NewHostPort: "8080", Rewritten: true, Reason: "below 1024: +8000"},
		{Container: "web", ContainerPort: 443, Proto: "tcp", HostIP: "127.0.0.1", OldHostPort: "443", NewHostPort: "8443", Rewritten: true, Reason: "below 1024: +8000"},
		{Container: "web", ContainerPort: 7000, Proto: "tcp", OldHostPort: "", NewHostPort: ""},
		{Container: "web", ContainerPort: 9000, Proto: "tcp", OldHostPort: "9000", NewHostPort: "9000"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ports:\n got %+v\nwant %+v", got, want)
	}
	if p.Summary.PortsRewritten != 3 {
		t.Errorf("PortsRewritten = %d, want 3", p.Summary.PortsRewritten)
	}
	if n := len(findings(p, CodePortRewritten)); n != 3 {
		t.Errorf("%d port-rewritten findings, want 3", n)
	}
	if fs := findings(p, CodePortConflict); len(fs) != 0 {
		t.Errorf("unexpected conflicts: %+v", fs)
	}
	if !p.Summary.Applicable {
		t.Errorf("plan blocked: %+v", p.Blockers())
	}
}

func TestBuildPortOverrideAndStart(t *testing.T) {
	src := newFakeDaemon(false)
	src.addContainer("web", publish("80/tcp", "", "80"), publish("443/tcp", "", "443"))
	o := testOptions(src, nil)
	o.PortMap = PortMap{80: 8081}
	o.UnprivilegedPortStart = 443
	p := mustBuild(t, o)
	ports := service(t, p, "web").Ports
	if ports[0].NewHostPort != "8081" || ports[0].Reason != "--port-map" || !ports[0].Rewritten {
		t.Errorf("80 = %+v, want 8081 by --port-map", ports[0])
	}
	if ports[1].NewHostPort != "443" || ports[1].Rewritten {
		t.Errorf("443 with start 443 = %+v, want it kept", ports[1])
	}
	if p.PortStart != 443 {
		t.Errorf("PortStart = %d", p.PortStart)
	}
}

func TestBuildPortConflicts(t *testing.T) {
	tests := []struct {
		name      string
		setup     func(src, tgt *fakeDaemon, o *Options)
		wantOwner []string // substrings of the conflict messages, in order; nil means no conflict
	}{
		{
			name: "unselected source container holds the new port",
			setup: func(src, tgt *fakeDaemon, o *Options) {
				src.addContainer("legacy", publish("8080/tcp", "", "8080"))
				o.All, o.Containers = false, []string{"web"}
			},
			wantOwner: []string{"source container legacy"},
		},
		{
			name: "target daemon's container holds the new port",
			setup: func(src, tgt *fakeDaemon, o *Options) {
				tgt.addContainer("other", publish("80/tcp", "", "8080"))
			},
			wantOwner: []string{"target container other"},
		},
		{
			name: "host listener on the new port",
			setup: func(src, tgt *fakeDaemon, o *Options) {
				o.Listeners = []Listener{{"tcp", "0.0.0.0", 22}, {"tcp", "127.0.0.1", 8080}}
			},
			wantOwner: []string{"a process listening on 127.0.0.1:8080"},
		},
		{
			name: "host listener on another address does not collide",
			setup: func(src, tgt *fakeDaemon, o *Options) {
				o.Listeners = []Listener{{"tcp", "127.0.0.1", 8080}}
				src.containers = nil
				src.addContainer("web", publish("80/tcp", "10.0.0.5", "80"))
			},
		},
		{
			name: "udp listener does not collide with tcp",
			setup: func(src, tgt *fakeDaemon, o *Options) {
				o.Listeners = []Listener{{"udp", "0.0.0.0", 8080}}
			},
		},
		{
			name: "a container's own old port is not a conflict",
			setup: func(src, tgt *fakeDaemon, o *Options) {
				// The rootful daemon's proxy listens on 8080 for web itself.
				src.containers = nil
				src.addContainer("web", publish("8080/tcp", "", "8080"))
				o.Listeners = []Listener{{"tcp", "0.0.0.0", 8080}}
			},
		},
		{
			name: "two selected containers want the same port",
			setup: func(src, tgt *fakeDaemon, o *Options) {
				src.addContainer("api", publish("8080/tcp", "", "8080"))
			},
			// api is cut over first (name order) and keeps 8080; web's
			// rewrite then meets it both as a claim and as a running port.
			wantOwner: []string{"migrated container api", "the running source container api until it is cut over"},
		},
		{
			name: "override onto a taken port",
			setup: func(src, tgt *fakeDaemon, o *Options) {
				src.addContainer("legacy", publish("9999/tcp", "", "9999"))
				o.All, o.Containers = false, []string{"web"}
				o.PortMap = PortMap{80: 9999}
			},
			wantOwner: []string{"source container legacy"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, tgt := newFakeDaemon(false), newFakeDaemon(true)
			src.addContainer("web", publish("80/tcp", "", "80"))
			o := testOptions(src, tgt)
			tt.setup(src, tgt, &o)
			p := mustBuild(t, o)
			fs := findings(p, CodePortConflict)
			if len(fs) != len(tt.wantOwner) {
				t.Fatalf("conflicts = %+v, want %d", fs, len(tt.wantOwner))
			}
			for i, f := range fs {
				if f.Severity != Blocker || !strings.Contains(f.Message, tt.wantOwner[i]) {
					t.Errorf("conflict %d = %+v, want a blocker naming %q", i, f, tt.wantOwner[i])
				}
			}
			if p.Summary.Applicable != (len(tt.wantOwner) == 0) {
				t.Errorf("Applicable = %v", p.Summary.Applicable)
			}
		})
	}
}

type wantFinding struct {
	code      string
	sev       Severity
	container string
	subject   string
}

func TestBuildFindings(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(t *testing.T, src, tgt *fakeDaemon, o *Options)
		want       []wantFinding
		absent     []string
		applicable bool
	}{
		{
			name: "privileged",
			setup: func(t *testing.T, src, tgt *fakeDaemon, o *Options) {
				src.addContainer("app", hostConfig(func(hc *container.HostConfig) { hc.Privileged = true }))
			},
			want:       []wantFinding{{CodePrivileged, Warning, "app", ""}},
			applicable: true,
		},
		{
			name: "domainname",
			setup: func(t *testing.T, src, tgt *fakeDaemon, o *Options) {
				src.addContainer("app", func(c *container.InspectResponse) { c.Config.Domainname = "corp.example" })
			},
			want:       []wantFinding{{CodeDomainname, Warning, "app", "corp.example"}},
			applicable: true,
		},
		{
			name: "host network",
			setup: func(t *testing.T, src, tgt *fakeDaemon, o *Options) {
				src.addContainer("app", onNetwork("host"))
			},
			want:   []wantFinding{{CodeHostNetwork, Blocker, "app", ""}},
			absent: []string{CodeNetworkDriver},
		},
		{
			name: "kernel sysctl blocks, net sysctl is fine",
			setup: func(t *testing.T, src, tgt *fakeDaemon, o *Options) {
				src.addContainer("app", hostConfig(func(hc *container.HostConfig) {
					hc.Sysctls = map[string]string{"kernel.shmmax": "68719476736", "net.core.somaxconn": "1024"}
				}))
			},
			want: []wantFinding{{CodeSysctl, Blocker, "app", "kernel.shmmax"}},
		},
		{
			name: "net sysctl only",
			setup: func(t *testing.T, src, tgt *fakeDaemon, o *Options) {
				src.addContainer("app", hostConfig(func(hc *container.HostConfig) {
					hc.Sysctls = map[string]string{"net.ipv4.ip_forward": "1"}
				}))
			},
			absent:     []string{CodeSysctl},
			applicable: true,
		},
		{
			name: "security options",
			setup: func(t *testing.T, src, tgt *fakeDaemon, o *Options) {
				src.addContainer("app", hostConfig(func(hc *container.HostConfig) {
					hc.SecurityOpt = []string{"apparmor=docker-nginx", "label=disable", "seccomp=/etc/docker/strict.json", "no-new-privileges"}
				}))
				src.addContainer("loose", hostConfig(func(hc *container.HostConfig) { hc.SecurityOpt = []string{"seccomp=unconfined"} }))
			},
			want: []wantFinding{
				{CodeAppArmor, Warning, "app", "apparmor=docker-nginx"},
				{CodeSELinux, Warning, "app", "label=disable"},
				{CodeSeccomp, Warning, "app", "seccomp=/etc/docker/strict.json"},
			},
			applicable: true,
		},
		{
			name: "host-only capability, namespaced one is fine",
			setup: func(t *testing.T, src, tgt *fakeDaemon, o *Options) {
				src.addContainer("app", hostConfig(func(hc *container.HostConfig) { hc.CapAdd = []string{"CAP_SYS_TIME", "NET_ADMIN"} }))
			},
			want:       []wantFinding{{CodeHostCapability, Warning, "app", "SYS_TIME"}},
			applicable: true,
		},
		{
			name: "host pid, ipc, uts",
			setup: func(t *testing.T, src, tgt *fakeDaemon, o *Options) {
				src.addContainer("app", hostConfig(func(hc *container.HostConfig) { hc.PidMode, hc.IpcMode, hc.UTSMode = "host", "host", "host" }))
			},
			want:       []wantFinding{{CodeHostPID, Warning, "app", ""}, {CodeHostIPC, Warning, "app", ""}, {CodeHostUTS, Warning, "app", ""}},
			applicable: true,
		},
		{
			name: "macvlan network",
			setup: func(t *testing.T, src, tgt *fakeDaemon, o *Options) {
				src.addNetwork("lan", "macvlan")
				src.addContainer("app", onNetwork("lan"))
			},
			want: []wantFinding{{CodeNetworkDriver, Blocker, "", "lan"}},
		},
		{
			name: "limits with cgroup driver none",
			setup: func(t *testing.T, src, tgt *fakeDaemon, o *Options) {
				tgt.info.CgroupDriver, tgt.info.CgroupVersion = "none", "1"
				src.addContainer("app", hostConfig(func(hc *container.HostConfig) { hc.Memory = 256 << 20 }))
			},
			want:       []wantFinding{{CodeLimitsIgnored, Warning, "app", ""}},
			applicable: true,
		},
		{
			name: "limits with delegated cgroup v2",
			setup: func(t *testing.T, src, tgt *fakeDaemon, o *Options) {
				src.addContainer("app", hostConfig(func(hc *container.HostConfig) { hc.Memory = 256 << 20 }))
			},
			absent:     []string{CodeLimitsIgnored},
			applicable: true,
		},
		{
			name: "docker socket bind is rewritten",
			setup: func(t *testing.T, src, tgt *fakeDaemon, o *Options) {
				src.addContainer("ci", bindMount("/var/run/docker.sock", "/var/run/docker.sock"))
			},
			want:       []wantFinding{{CodeDockerSocket, Info, "ci", "/var/run/docker.sock"}},
			absent:     []string{CodeSystemBind},
			applicable: true,
		},
		{
			name: "system path bind is refused",
			setup: func(t *testing.T, src, tgt *fakeDaemon, o *Options) {
				src.addContainer("app", bindMount("/etc", "/host-etc"), bindMount("/usr/share/zoneinfo", "/zi"))
			},
			want: []wantFinding{{CodeSystemBind, Blocker, "app", "/etc"}, {CodeSystemBind, Blocker, "app", "/usr/share/zoneinfo"}},
		},
		{
			name: "missing bind source",
			setup: func(t *testing.T, src, tgt *fakeDaemon, o *Options) {
				src.addContainer("app", bindMount(filepath.Join(t.TempDir(), "nope"), "/data"))
			},
			want:       []wantFinding{{CodeBindMissing, Warning, "app", ""}},
			applicable: true,
		},
		{
			name: "bind shared with an unselected container",
			setup: func(t *testing.T, src, tgt *fakeDaemon, o *Options) {
				dir := t.TempDir()
				src.addContainer("app", bindMount(dir, "/data"))
				src.addContainer("backup", bindMount(dir, "/backup"))
				o.All, o.Containers = false, []string{"app"}
			},
			want: []wantFinding{{CodeBindOutsideSelect, Blocker, "backup", ""}},
		},
		{
			name: "volume shared with an unselected container",
			setup: func(t *testing.T, src, tgt *fakeDaemon, o *Options) {
				src.addContainer("app", volumeMount("data", "/data"))
				src.addContainer("backup", volumeMount("data", "/backup"))
				o.All, o.Containers = false, []string{"app"}
			},
			want:       []wantFinding{{CodeSharedBind, Warning, "backup", "data"}},
			applicable: true,
		},
		{
			name: "non-local volume driver",
			setup: func(t *testing.T, src, tgt *fakeDaemon, o *Options) {
				src.addVolume("nfsdata", "rexray/ebs", nil)
				src.addContainer("app", volumeMount("nfsdata", "/data"))
			},
			want:       []wantFinding{{CodeVolumeDriver, Warning, "", "nfsdata"}},
			applicable: true,
		},
		{
			name: "sctp, links, runtime, log driver, oom, cgroup parent, devices",
			setup: func(t *testing.T, src, tgt *fakeDaemon, o *Options) {
				src.addContainer("db")
				src.addContainer("app", publish("9/sctp", "", "9999"), hostConfig(func(hc *container.HostConfig) {
					hc.Links = []string{"/db:/app/db"}
					hc.Runtime = "runsc"
					hc.LogConfig.Type = "journald"
					hc.OomKillDisable = ptr(true)
					hc.CgroupParent = "/custom"
					hc.Devices = []container.DeviceMapping{{PathOnHost: "/dev/ttyUSB0", PathInContainer: "/dev/ttyUSB0", CgroupPermissions: "rwm"}}
				}))
			},
			want: []wantFinding{
				{CodeSCTPPort, Blocker, "app", "9999->9/sctp"}, {CodeLinks, Warning, "app", "/db:/app/db"}, {CodeRuntime, Warning, "app", "runsc"},
				{CodeLogDriver, Warning, "app", "journald"}, {CodeOomKillDisable, Warning, "app", ""}, {CodeCgroupParent, Warning, "app", "/custom"},
				{CodeDevices, Warning, "app", "/dev/ttyUSB0"},
			},
		},
		{
			name: "volumes-from and network of an unselected container",
			setup: func(t *testing.T, src, tgt *fakeDaemon, o *Options) {
				src.addContainer("data")
				src.addContainer("app", hostConfig(func(hc *container.HostConfig) {
					hc.VolumesFrom = []string{"data:ro"}
					hc.NetworkMode = container.NetworkMode("container:" + fakeID("ctr data"))
				}))
				o.All, o.Containers = false, []string{"app"}
			},
			want: []wantFinding{{CodeVolumesFrom, Blocker, "app", "data"}, {CodeContainerNetwork, Blocker, "app", "data"}},
		},
		{
			name: "volumes-from a selected container is fine",
			setup: func(t *testing.T, src, tgt *fakeDaemon, o *Options) {
				src.addContainer("data")
				src.addContainer("app", hostConfig(func(hc *container.HostConfig) { hc.VolumesFrom = []string{"data:ro"} }))
			},
			absent:     []string{CodeVolumesFrom},
			applicable: true,
		},
		{
			name: "missing image",
			setup: func(t *testing.T, src, tgt *fakeDaemon, o *Options) {
				src.addContainer("app", func(c *container.InspectResponse) { c.Image = "sha256:dead" + strings.Repeat("0", 60) })
			},
			want: []wantFinding{{CodeImageMissing, Blocker, "app", "busybox:latest"}},
		},
		{
			name: "anonymous volume",
			setup: func(t *testing.T, src, tgt *fakeDaemon, o *Options) {
				src.addContainer("app", volumeMount(fakeID("anon"), "/cache"))
			},
			want:       []wantFinding{{CodeAnonymousVolume, Info, "app", fakeID("anon")}},
			applicable: true,
		},
		{
			name: "target is not rootless",
			setup: func(t *testing.T, src, tgt *fakeDaemon, o *Options) {
				tgt.info.SecurityOptions = []string{"name=seccomp,profile=builtin"}
				src.addContainer("app")
			},
			want: []wantFinding{{CodeTargetNotRootless, Blocker, "", "unix:///run/user/1001/docker.sock"}},
		},
		{
			name: "source runs userns-remap",
			setup: func(t *testing.T, src, tgt *fakeDaemon, o *Options) {
				src.info.SecurityOptions = append(src.info.SecurityOptions, "name=userns")
				src.addContainer("app")
			},
			want: []wantFinding{{CodeUsernsRemap, Blocker, "", ""}},
		},
		{
			name: "map from subid files, differing from live",
			setup: func(t *testing.T, src, tgt *fakeDaemon, o *Options) {
				o.MapSource = "subid"
				o.MapDiffs = []string{"uid range 1 differs"}
				src.addContainer("app")
			},
			want:       []wantFinding{{CodeMapFromFiles, Info, "", ""}, {CodeMapMismatch, Warning, "", ""}},
			applicable: true,
		},
		{
			name: "clean container",
			setup: func(t *testing.T, src, tgt *fakeDaemon, o *Options) {
				src.addContainer("app", hostConfig(func(hc *container.HostConfig) { hc.CapAdd = []string{"NET_BIND_SERVICE"} }))
			},
			absent:     []string{CodeHostCapability, CodePrivileged, CodeHostNetwork},
			applicable: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, tgt := newFakeDaemon(false), newFakeDaemon(true)
			o := testOptions(src, tgt)
			tt.setup(t, src, tgt, &o)
			p := mustBuild(t, o)
			for _, w := range tt.want {
				ok := slices.ContainsFunc(p.Findings, func(f Finding) bool {
					return f.Code == w.code && f.Severity == w.sev && f.Container == w.container && (w.subject == "" || f.Subject == w.subject)
				})
				if !ok {
					t.Errorf("missing finding %+v; have %+v", w, p.Findings)
				}
			}
			for _, code := range tt.absent {
				if fs := findings(p, code); len(fs) > 0 {
					t.Errorf("unexpected %s findings: %+v", code, fs)
				}
			}
			if p.Summary.Applicable != tt.applicable {
				t.Errorf("Applicable = %v, want %v; blockers %+v", p.Summary.Applicable, tt.applicable, p.Blockers())
			}
			for _, f := range p.Findings {
				if f.Message == "" || (f.Severity == Blocker && f.Hint == "") {
					t.Errorf("finding without message or blocker without hint: %+v", f)
				}
			}
		})
	}
}

func TestBuildBindActions(t *testing.T) {
	src := newFakeDaemon(false)
	dir := t.TempDir()
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	src.addContainer("app", bindMount(dir, "/data"), bindMount("/run/docker.sock", "/var/run/docker.sock"), bindMount("/etc", "/e"), bindMount(link, "/l"), bindMount(missing, "/m"))
	p := mustBuild(t, testOptions(src, nil))
	got := map[string]string{}
	for _, b := range p.Binds {
		got[b.Source] = b.Action
		if !reflect.DeepEqual(b.UsedBy, []string{"app"}) {
			t.Errorf("bind %s used by %v", b.Source, b.UsedBy)
		}
	}
	want := map[string]string{dir: "shift", "/run/docker.sock": "rewrite-socket", "/etc": "refuse", link: "refuse", missing: "skip"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("bind actions = %v, want %v", got, want)
	}
	if p.Summary.Binds != 1 {
		t.Errorf("Summary.Binds = %d, want 1 (only shifted binds count)", p.Summary.Binds)
	}
	if fs := findings(p, CodeDockerSocket); len(fs) != 1 || !strings.Contains(fs[0].Message, "/run/user/1001/docker.sock") {
		t.Errorf("docker-socket finding = %+v, want it to name the rootless socket", fs)
	}
}

func TestBuildTargetName(t *testing.T) {
	tests := []struct {
		name          string
		migrated      bool
		owned         bool
		wantCode      string
		wantSev       Severity
		wantSkipped   bool
		wantConflicts int
	}{
		{"taken by someone else", false, false, CodeTargetNameTaken, Blocker, false, 1},
		{"migrated earlier", true, false, CodeAlreadyMigrated, Info, true, 0},
		// The resumed run reuses the target container that holds 8080.
		{"left by an unfinished run", false, true, CodeResume, Info, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, tgt := newFakeDaemon(false), newFakeDaemon(true)
			src.addContainer("web", publish("80/tcp", "", "80"), volumeMount("webdata", "/data"))
			// The target's web already publishes the rewritten port.
			tgt.addContainer("web", publish("80/tcp", "", "8080"))
			o := testOptions(src, tgt)
			// rootlesskit listens on the host for the target's published port.
			o.Listeners = []Listener{{Proto: "tcp", Addr: "0.0.0.0", Port: 8080}}
			var asked []string
			o.Migrated = func(c string) bool { asked = append(asked, c); return tt.migrated }
			o.Owned = func(c string) bool { return tt.owned }
			p := mustBuild(t, o)
			fs := findings(p, tt.wantCode)
			if len(fs) != 1 || fs[0].Severity != tt.wantSev || fs[0].Container != "web" {
				t.Fatalf("%s findings = %+v", tt.wantCode, fs)
			}
			for _, other := range []string{CodeTargetNameTaken, CodeAlreadyMigrated, CodeResume} {
				if other != tt.wantCode && len(findings(p, other)) > 0 {
					t.Errorf("also has %s: %+v", other, findings(p, other))
				}
			}
			if !slices.Contains(asked, "web") {
				t.Errorf("Migrated was not asked about web: %v", asked)
			}
			s := service(t, p, "web")
			if s.AlreadyMigrated != tt.wantSkipped {
				t.Errorf("AlreadyMigrated = %v", s.AlreadyMigrated)
			}
			if tt.wantSkipped {
				if p.Summary.Skipped != 1 || p.Summary.Services != 0 || len(p.Images) != 0 || len(p.Volumes) != 0 {
					t.Errorf("a migrated service still moves things: summary %+v, images %d, volumes %d", p.Summary, len(p.Images), len(p.Volumes))
				}
			} else if p.Summary.Services != 1 || len(p.Images) != 1 || len(p.Volumes) != 1 {
				t.Errorf("summary %+v, images %d, volumes %d", p.Summary, len(p.Images), len(p.Volumes))
			}
			// The target's web holds 8080: a conflict unless it is unroot's
			// own copy (migrated, or left by the run being resumed).
			if n := len(findings(p, CodePortConflict)); n != tt.wantConflicts {
				t.Errorf("%d port conflicts, want %d", n, tt.wantConflicts)
			}
		})
	}
}

func TestBuildSelection(t *testing.T) {
	src := newFakeDaemon(false)
	src.addContainer("web", composeService("shop", "web", "db:service_started:false"))
	src.addContainer("db", composeService("shop", "db", ""))
	src.addContainer("other")
	src.addContainer("shop-run-1", composeService("shop", "web", ""), func(c *container.InspectResponse) {
		c.Config.Labels[inventory.LabelOneOff] = "True"
	})
	tests := []struct {
		name  string
		set   func(o *Options)
		want  []string
		check func(t *testing.T, err error)
	}{
		{name: "all skips one-off containers", set: func(o *Options) {}, want: []string{"db", "other", "web"}},
		{name: "project", set: func(o *Options) { o.All, o.Project = false, "shop" }, want: []string{"db", "web"}},
		{name: "names, repeated and by ID", set: func(o *Options) { o.All, o.Containers = false, []string{"web", fakeID("ctr web"), "other"} }, want: []string{"other", "web"}},
		{name: "nothing", set: func(o *Options) { o.All = false }, check: wantSelectionError("select exactly one")},
		{name: "two kinds at once", set: func(o *Options) { o.Project = "shop" }, check: wantSelectionError("select exactly one")},
		{name: "all and names", set: func(o *Options) { o.Containers = []string{"web"} }, check: wantSelectionError("select exactly one")},
		{name: "unknown name", set: func(o *Options) { o.All, o.Containers = false, []string{"wbe"} }, check: wantNotFound("container", "wbe", "web")},
		{name: "unknown project", set: func(o *Options) { o.All, o.Project = false, "shpo" }, check: wantNotFound("project", "shpo", "shop")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := testOptions(src, nil)
			tt.set(&o)
			p, err := Build(context.Background(), o)
			if tt.check != nil {
				if p != nil {
					t.Errorf("Build returned a plan with the error")
				}
				tt.check(t, err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range p.Services {
				got = append(got, s.Container)
			}
			slices.Sort(got)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("selected %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("empty daemon", func(t *testing.T) {
		_, err := Build(context.Background(), testOptions(newFakeDaemon(false), nil))
		wantSelectionError("has no containers")(t, err)
	})
	t.Run("bad volume mode", func(t *testing.T) {
		o := testOptions(src, nil)
		o.Volumes = "teleport"
		if _, err := Build(context.Background(), o); err == nil || !strings.Contains(err.Error(), `"teleport"`) {
			t.Errorf("err = %v", err)
		}
	})
}

func wantSelectionError(msg string) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		var se *SelectionError
		if !errors.As(err, &se) || !errors.Is(err, ErrNothingSelected) {
			t.Fatalf("err = %v (%T), want a *SelectionError", err, err)
		}
		if !strings.Contains(se.Error(), msg) || se.Hint() == "" {
			t.Errorf("err = %q hint %q, want %q", se.Error(), se.Hint(), msg)
		}
	}
}

func wantNotFound(kind, name, suggestion string) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		var nf *inventory.NotFoundError
		if !errors.As(err, &nf) {
			t.Fatalf("err = %v (%T), want *inventory.NotFoundError", err, err)
		}
		if nf.Kind != kind || nf.Name != name || nf.Suggestion != suggestion {
			t.Errorf("NotFoundError = %+v, want %s %q suggesting %q", nf, kind, name, suggestion)
		}
	}
}

func TestBuildCutoverOrderCompose(t *testing.T) {
	src := newFakeDaemon(false)
	src.addContainer("a-web", composeService("shop", "web", "api:service_healthy:false"))
	src.addContainer("b-api", composeService("shop", "api", "db:service_started:false,cache:service_started:false"))
	src.addContainer("c-db", composeService("shop", "db", ""))
	src.addContainer("d-cache", composeService("shop", "cache", ""))
	p := mustBuild(t, testOptions(src, nil))
	var got []string
	for i, s := range p.Services {
		got = append(got, s.Container)
		if s.Order != i+1 {
			t.Errorf("%s has Order %d at position %d", s.Container, s.Order, i+1)
		}
	}
	want := []string{"c-db", "d-cache", "b-api", "a-web"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("cutover order %v, want %v", got, want)
	}
	if d := service(t, p, "b-api").DependsOn; !reflect.DeepEqual(d, []string{"c-db", "d-cache"}) {
		t.Errorf("b-api depends on %v", d)
	}
}

func svc(name string, deps ...string) *Service { return &Service{Container: name, DependsOn: deps} }

func TestCutoverOrder(t *testing.T) {
	tests := []struct {
		name string
		in   []*Service
		want []string
	}{
		{"empty", nil, nil},
		{"independent by name", []*Service{svc("c"), svc("a"), svc("b")}, []string{"a", "b", "c"}},
		{"chain", []*Service{svc("a", "b"), svc("b", "c"), svc("c")}, []string{"c", "b", "a"}},
		{"diamond", []*Service{svc("top", "l", "r"), svc("l", "base"), svc("r", "base"), svc("base")}, []string{"base", "l", "r", "top"}},
		{"cycle keeps name order", []*Service{svc("b", "a"), svc("a", "b"), svc("z")}, []string{"z", "a", "b"}},
		{"cycle after its dependency", []*Service{svc("x", "y", "base"), svc("y", "x"), svc("base")}, []string{"base", "x", "y"}},
		{"dependency outside the selection waits forever, so name order", []*Service{svc("a", "gone"), svc("b")}, []string{"b", "a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, s := range cutoverOrder(tt.in) {
				got = append(got, s.Container)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("cutoverOrder = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestWritableChanges(t *testing.T) {
	ch := func(paths ...string) []inventory.Change {
		var out []inventory.Change
		for _, p := range paths {
			out = append(out, inventory.Change{Kind: "added", Path: p})
		}
		return out
	}
	tests := []struct {
		name string
		c    inventory.Container
		want int
	}{
		{"none", inventory.Container{}, 0},
		{"ephemeral paths", inventory.Container{Changes: ch("/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/run", "/run/nginx.pid", "/tmp", "/tmp/x", "/dev/shm")}, 0},
		{"etc file counts", inventory.Container{Changes: ch("/etc", "/etc/nginx", "/etc/nginx/site.conf")}, 1},
		{"leaves only", inventory.Container{Changes: ch("/var", "/var/spool", "/var/spool/x", "/bin", "/bin/wget", "/newfile")}, 3},
		{"hostsfile lookalike counts", inventory.Container{Changes: ch("/etc/hosts.allow", "/runner")}, 2},
		{"under mounts and tmpfs", inventory.Container{
			Mounts:  []inventory.Mount{{Type: "volume", Destination: "/data/"}, {Type: "bind", Destination: "/srv"}},
			Tmpfs:   map[string]string{"/cache": ""},
			Changes: ch("/data", "/data/a", "/srv/b", "/cache/c", "/srvx"),
		}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := writableChanges(&tt.c); got != tt.want {
				t.Errorf("writableChanges = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestBuildWritableLayer(t *testing.T) {
	for _, noCommit := range []bool{false, true} {
		src := newFakeDaemon(false)
		src.addContainer("app")
		src.diffs["app"] = []container.FilesystemChange{{Path: "/etc", Kind: container.ChangeModify}, {Path: "/etc/app.conf", Kind: container.ChangeAdd}, {Path: "/etc/hosts", Kind: container.ChangeModify}}
		o := testOptions(src, nil)
		o.NoCommit = noCommit
		p := mustBuild(t, o)
		s := service(t, p, "app")
		fs := findings(p, CodeWritableLayer)
		switch {
		case noCommit:
			// The change is lost, and the plan says so.
			if s.WritableChanges != 1 || s.CommitWritableLayer || len(fs) != 1 || fs[0].Severity != Warning {
				t.Errorf("no-commit: changes %d commit %v findings %+v", s.WritableChanges, s.CommitWritableLayer, fs)
			}
		default:
			if s.WritableChanges != 1 || !s.CommitWritableLayer || len(fs) != 1 || fs[0].Severity != Info {
				t.Errorf("commit: changes %d commit %v findings %+v", s.WritableChanges, s.CommitWritableLayer, fs)
			}
		}
	}
}

func TestIsSystemPath(t *testing.T) {
	tests := []struct {
		p    string
		want bool
	}{
		{"/", true}, {"/etc", true}, {"/etc/nginx", true}, {"/usr", true}, {"/usr/local/share", true},
		{"/var", true}, {"/var/lib", true}, {"/var/lib/docker", true}, {"/home", true}, {"/root", true},
		{"/proc", true}, {"/proc/1", true}, {"/sys/fs/cgroup", true}, {"/dev/null", true}, {"/boot/grub", true},
		{"/tmp", true}, {"/run", true}, {"/srv", true}, {"/opt", true}, {"/mnt", true},
		{"/srv/app", false}, {"/opt/app/data", false}, {"/home/alice/data", false}, {"/var/lib/app", false},
		{"/tmp/x", false}, {"/mnt/disk", false}, {"/etcetera", false}, {"/data", false},
	}
	for _, tt := range tests {
		if got := IsSystemPath(tt.p); got != tt.want {
			t.Errorf("IsSystemPath(%q) = %v, want %v", tt.p, got, tt.want)
		}
	}
}

func TestIsHostOnlyCap(t *testing.T) {
	tests := []struct {
		c    string
		want bool
	}{
		{"SYS_ADMIN", true}, {"CAP_SYS_ADMIN", true}, {"cap_sys_module", true}, {"sys_time", true}, {"ALL", true},
		{"NET_ADMIN", false}, {"NET_BIND_SERVICE", false}, {"CAP_CHOWN", false}, {"SYS_PTRACE", false}, {"", false},
	}
	for _, tt := range tests {
		if got := isHostOnlyCap(tt.c); got != tt.want {
			t.Errorf("isHostOnlyCap(%q) = %v, want %v", tt.c, got, tt.want)
		}
	}
}

func TestBuildAudit(t *testing.T) {
	tests := []struct {
		name       string
		report     chown.Report
		overflow   bool
		skipDev    bool
		want       []wantFinding
		applicable bool
	}{
		{"clean", chown.Report{Files: 3}, false, false, nil, true},
		{"unmappable blocks", chown.Report{Unmappable: []chown.UnmappableID{{Kind: "uid", ID: 4000000, Count: 2, Examples: []string{"a"}}}, UnmappableEntries: 2}, false, false,
			[]wantFinding{{CodeUnmappable, Blocker, "", ""}}, false},
		{"unmappable to overflow warns", chown.Report{Unmappable: []chown.UnmappableID{{Kind: "gid", ID: 4000000, Count: 2}}, UnmappableEntries: 2}, true, false,
			[]wantFinding{{CodeUnmappable, Warning, "", ""}}, true},
		{"device nodes block", chown.Report{Devices: 1}, false, false, []wantFinding{{CodeDeviceNodes, Blocker, "", ""}}, false},
		{"device nodes skipped warn", chown.Report{Devices: 1}, false, true, []wantFinding{{CodeDeviceNodes, Warning, "", ""}}, true},
		{"external hardlinks block", chown.Report{ExternalHardlinks: 1, Examples: map[string][]string{"external_hardlinks": {"x"}}}, false, false,
			[]wantFinding{{CodeExternalHardlink, Blocker, "", ""}}, false},
		{"malformed xattrs block", chown.Report{MalformedXattrs: 1}, false, false, []wantFinding{{CodeMalformedXattr, Blocker, "", ""}}, false},
		{"nested mount warns", chown.Report{Mounts: []string{"sub"}}, false, false, []wantFinding{{CodeNestedMount, Warning, "", "sub"}}, true},
		{"escaping symlinks inform", chown.Report{EscapingSymlinks: 2}, false, false, []wantFinding{{CodeEscapingSymlinks, Info, "", ""}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newFakeDaemon(false)
			dir := t.TempDir()
			src.addContainer("app", volumeMount("data", "/data"), bindMount(dir, "/srv"))
			o := testOptions(src, nil)
			o.MapUnmappableToOverflow, o.SkipDevices = tt.overflow, tt.skipDev
			var roots []string
			o.Audit = func(ctx context.Context, root string) (*chown.Report, error) {
				roots = append(roots, root)
				r := tt.report
				r.Root = root
				r.Bytes = 100
				r.Owners = []chown.OwnerChange{{FromUID: 0, FromGID: 0, ToUID: 1001, ToGID: 1001, Count: 5}}
				return &r, nil
			}
			p := mustBuild(t, o)
			wantRoots := []string{"/var/lib/docker/volumes/data/_data", dir}
			if !reflect.DeepEqual(roots, wantRoots) {
				t.Errorf("audited %v, want %v", roots, wantRoots)
			}
			if p.Volumes[0].Audit == nil || p.Binds[0].Audit == nil || p.Binds[0].Audit.Root != dir {
				t.Fatalf("audits not attached: %+v %+v", p.Volumes[0], p.Binds[0])
			}
			if p.Summary.Files != 2*tt.report.Files || p.Summary.Bytes != 200 || p.Summary.OwnerChanges != 10 {
				t.Errorf("summary files %d bytes %d owner changes %d", p.Summary.Files, p.Summary.Bytes, p.Summary.OwnerChanges)
			}
			for _, w := range tt.want {
				fs := findings(p, w.code)
				// One for the volume, one for the bind.
				if len(fs) != 2 {
					t.Fatalf("%s findings = %+v, want 2", w.code, fs)
				}
				for _, f := range fs {
					if f.Severity != w.sev || (w.subject != "" && f.Subject != w.subject) {
						t.Errorf("finding %+v, want %+v", f, w)
					}
				}
				if w.subject == "" {
					subjects := []string{fs[0].Subject, fs[1].Subject}
					slices.Sort(subjects)
					if want := []string{"bind " + dir, "volume data"}; !reflect.DeepEqual(subjects, want) {
						t.Errorf("%s subjects = %q, want %q", w.code, subjects, want)
					}
				}
			}
			if p.Summary.Applicable != tt.applicable {
				t.Errorf("Applicable = %v, want %v", p.Summary.Applicable, tt.applicable)
			}
		})
	}
	t.Run("audit error", func(t *testing.T) {
		src := newFakeDaemon(false)
		src.addContainer("app", volumeMount("data", "/data"))
		o := testOptions(src, nil)
		boom := errors.New("boom")
		o.Audit = func(context.Context, string) (*chown.Report, error) { return nil, boom }
		if _, err := Build(context.Background(), o); !errors.Is(err, boom) || !strings.Contains(err.Error(), "audit volume data") {
			t.Errorf("err = %v", err)
		}
	})
}

func TestBuildAuditFileBind(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown the bind source")
	}
	dir := t.TempDir()
	mapped := filepath.Join(dir, "app.conf")
	unmapped := filepath.Join(dir, "key.pem")
	for _, f := range []string{mapped, unmapped} {
		if err := os.WriteFile(f, []byte("0123456789"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(mapped, 33, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(unmapped, 70000, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(mapped, 0o755|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	src := newFakeDaemon(false)
	src.addContainer("app", bindMount(mapped, "/etc/app.conf"), bindMount(unmapped, "/key.pem"))
	o := testOptions(src, nil)
	o.Audit = func(context.Context, string) (*chown.Report, error) {
		t.Error("the walker was called for a file bind")
		return &chown.Report{}, nil
	}
	p := mustBuild(t, o)
	var a, b *chown.Report
	for _, bp := range p.Binds {
		switch bp.Source {
		case mapped:
			a = bp.Audit
		case unmapped:
			b = bp.Audit
		}
	}
	if a == nil || b == nil {
		t.Fatalf("binds %+v", p.Binds)
	}
	wantOwners := []chown.OwnerChange{{FromUID: 33, FromGID: 0, ToUID: 231072 + 32, ToGID: 1001, Count: 1}}
	if a.Files != 1 || a.Bytes != 10 || a.Setuid != 1 || !reflect.DeepEqual(a.Owners, wantOwners) || len(a.Unmappable) != 0 {
		t.Errorf("mapped file audit %+v", a)
	}
	if len(b.Owners) != 0 || b.UnmappableEntries != 1 || len(b.Unmappable) != 1 || b.Unmappable[0].ID != 70000 || b.Unmappable[0].Kind != "uid" {
		t.Errorf("unmapped file audit %+v", b)
	}
	if fs := findings(p, CodeUnmappable); len(fs) != 1 || fs[0].Subject != "bind "+unmapped || fs[0].Severity != Blocker {
		t.Errorf("unmappable findings %+v", fs)
	}
}

// TestBuildFixture plans the recorded API 1.41 compose project.
func TestBuildFixture(t *testing.T) {
	src := loadFixtureDaemon(t, "../testdata/inventory/api1.41")
	o := testOptions(src, nil)
	o.All, o.Project = false, "fxshop"
	p := mustBuild(t, o)
	if p.Source.Version != "20.10.24+dfsg1" || p.Source.APIVersion != "1.41" {
		t.Errorf("source daemon %+v", p.Source)
	}
	var order []string
	for _, s := range p.Services {
		order = append(order, s.Container)
	}
	if !reflect.DeepEqual(order, []string{"fxshop-db-1", "fxshop-web-1"}) {
		t.Fatalf("order %v", order)
	}
	web := p.Services[1]
	if !reflect.DeepEqual(web.DependsOn, []string{"fxshop-db-1"}) {
		t.Errorf("web depends on %v", web.DependsOn)
	}
	if len(p.Networks) != 1 || p.Networks[0].Name != "fxshop_default" || !reflect.DeepEqual(p.Networks[0].UsedBy, []string{"fxshop-db-1", "fxshop-web-1"}) {
		t.Errorf("networks %+v", p.Networks)
	}
	if len(p.Images) != 1 || !reflect.DeepEqual(p.Images[0].UsedBy, []string{"fxshop-db-1", "fxshop-web-1"}) {
		t.Errorf("images %+v", p.Images)
	}
	// 18080 and 18443 are unprivileged already.
	if p.Summary.PortsRewritten != 0 {
		t.Errorf("PortsRewritten = %d", p.Summary.PortsRewritten)
	}
	if fs := findings(p, CodeSysctl); len(fs) != 0 {
		t.Errorf("net.core.somaxconn flagged: %+v", fs)
	}
	if fs := findings(p, CodeAnonymousVolume); len(fs) != 1 || fs[0].Container != "fxshop-web-1" {
		t.Errorf("anonymous volume findings %+v", fs)
	}
}

func TestBuildPrerequisites(t *testing.T) {
	src, tgt := newFakeDaemon(false), newFakeDaemon(true)
	src.addContainer("web")
	o := testOptions(src, tgt)
	o.Prerequisites = []Prerequisite{
		{ID: "subuid", Status: "fail", Found: "/etc/subuid has 231072:1000 for alice (1000 ids)", Fix: "usermod --add-subuids 232072-297607 alice"},
		{ID: "linger", Status: "warn", Found: "linger is off", Fix: "loginctl enable-linger alice"},
		{ID: "userns", Status: "ok", Found: "allowed"},
	}
	p := mustBuild(t, o)
	fs := findings(p, CodePrerequisite)
	if len(fs) != 1 {
		t.Fatalf("prerequisite findings = %+v, want one for the failed check", fs)
	}
	if f := fs[0]; f.Severity != Blocker || f.Subject != "subuid" || f.Hint != o.Prerequisites[0].Fix || !strings.Contains(f.Message, "1000 ids") {
		t.Errorf("finding %+v", f)
	}
	if p.Summary.Applicable || len(p.Prerequisites) != 3 {
		t.Errorf("applicable %v with %d prerequisites, want blocked with 3", p.Summary.Applicable, len(p.Prerequisites))
	}
}

func TestWritableChangesIgnoresDockerInit(t *testing.T) {
	c := &inventory.Container{Changes: []inventory.Change{
		{Kind: "added", Path: "/sbin"}, {Kind: "added", Path: "/sbin/docker-init"}, {Kind: "added", Path: "/srv/state"},
	}}
	// /sbin holds only docker-init, which does not count; /srv/state does.
	if n := writableChanges(c); n != 1 {
		t.Errorf("writableChanges = %d, want 1 (/srv/state)", n)
	}
}
