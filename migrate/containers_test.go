package migrate

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"

	"github.com/unroot/unroot/inventory"
)

func intp(i int) *int    { return &i }
func boolp(b bool) *bool { return &b }

// fixtureWeb is a compose-made web container with most settings in use.
func fixtureWeb() *inventory.Container {
	return &inventory.Container{
		ID:            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		Name:          "shop-web-1",
		Image:         "nginx:1.25",
		Entrypoint:    []string{"/docker-entrypoint.sh"},
		Cmd:           []string{"nginx", "-g", "daemon off;"},
		Env:           []string{"A=1", "PATH=/usr/bin"},
		User:          "101:101",
		WorkingDir:    "/srv",
		Hostname:      "0123456789ab",
		Domainname:    "example.org",
		Labels:        map[string]string{"com.docker.compose.project": "shop", "com.docker.compose.service": "web"},
		RestartPolicy: inventory.RestartPolicy{Name: "on-failure", MaximumRetryCount: 3},
		Healthcheck:   &inventory.Healthcheck{Test: []string{"CMD", "true"}, Interval: time.Second, Retries: 2},
		LogConfig:     inventory.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "1m"}},
		Mounts: []inventory.Mount{
			{Type: "volume", Name: "shop_data", Source: "/var/lib/docker/volumes/shop_data/_data", Destination: "/data", RW: true},
			{Type: "bind", Source: "/srv/www", Destination: "/www", RW: false, Mode: "ro,z", Propagation: "rprivate"},
			{Type: "bind", Source: "/var/run/docker.sock", Destination: "/var/run/docker.sock", RW: true},
			{Type: "tmpfs", Destination: "/cache", RW: true, Options: "size=64m,mode=1777"},
			{Type: "tmpfs", Destination: "/run/x", RW: true},
		},
		NetworkMode: "shop_default",
		Networks: []inventory.NetworkAttachment{
			{Name: "shop_back", Aliases: []string{"web"}, IPv4Address: "172.30.0.10"},
			{Name: "shop_default", Aliases: []string{"web", "shop-web-1"}},
		},
		Ports: []inventory.Port{
			{ContainerPort: 80, Proto: "tcp", Published: true, HostIP: "127.0.0.1", HostPort: "80"},
			{ContainerPort: 443, Proto: "tcp", Published: true, HostPort: "8443"},
			{ContainerPort: 9000, Proto: "udp"},
		},
		CapAdd:      []string{"NET_ADMIN"},
		CapDrop:     []string{"MKNOD"},
		SecurityOpt: []string{"apparmor=docker-default", "no-new-privileges:true", "label=disable"},
		Tmpfs:       map[string]string{"/run/x": ""},
		Ulimits:     []inventory.Ulimit{{Name: "nofile", Soft: 1024, Hard: 2048}},
		ExtraHosts:  []string{"db:10.0.0.5"},
		DNS:         []string{"1.1.1.1", "not-an-ip"},
		DNSSearch:   []string{"example.org"},
		DNSOptions:  []string{"ndots:2"},
		StopSignal:  "SIGQUIT",
		StopTimeout: intp(30),
		Init:        boolp(true),
		ShmSize:     1 << 26,
		ReadOnly:    true,
		GroupAdd:    []string{"audio"},
		Resources:   inventory.Resources{Memory: 1 << 28},
	}
}

func TestConvertContainerFull(t *testing.T) {
	c := fixtureWeb()
	spec, err := ConvertContainer(c, ConvertOptions{Image: "nginx:1.25", HostPorts: map[uint16]uint16{80: 8080}, DockerSocket: "/run/user/1001/docker.sock"})
	if err != nil {
		t.Fatal(err)
	}
	cfg, hc := spec.Create.Config, spec.Create.HostConfig
	if spec.Create.Name != "shop-web-1" || cfg.Image != "nginx:1.25" {
		t.Errorf("name/image = %q/%q", spec.Create.Name, cfg.Image)
	}
	if cfg.Hostname != "" {
		t.Errorf("default hostname (the old short ID) carried over: %q", cfg.Hostname)
	}
	checks := []struct {
		name string
		ok   bool
	}{
		{"cmd", slices.Equal(cfg.Cmd, c.Cmd)},
		{"entrypoint", slices.Equal(cfg.Entrypoint, c.Entrypoint)},
		{"env", slices.Equal(cfg.Env, c.Env)},
		{"user", cfg.User == "101:101"},
		{"workdir", cfg.WorkingDir == "/srv"},
		{"domainname dropped", cfg.Domainname == ""},
		{"compose labels", cfg.Labels["com.docker.compose.service"] == "web"},
		{"stop signal", cfg.StopSignal == "SIGQUIT"},
		{"stop timeout", cfg.StopTimeout != nil && *cfg.StopTimeout == 30},
		{"healthcheck", cfg.Healthcheck != nil && cfg.Healthcheck.Retries == 2 && cfg.Healthcheck.Interval == time.Second},
		{"restart", hc.RestartPolicy == container.RestartPolicy{Name: "on-failure", MaximumRetryCount: 3}},
		{"log", hc.LogConfig.Type == "json-file" && hc.LogConfig.Config["max-size"] == "1m"},
		{"network mode", hc.NetworkMode == "shop_default"},
		{"cap add", slices.Equal(hc.CapAdd, []string{"NET_ADMIN"})},
		{"cap drop", slices.Equal(hc.CapDrop, []string{"MKNOD"})},
		{"security opts", slices.Equal(hc.SecurityOpt, []string{"no-new-privileges:true"})},
		{"tmpfs", hc.Tmpfs != nil && hc.Tmpfs["/run/x"] == ""},
		{"ulimits", len(hc.Ulimits) == 1 && hc.Ulimits[0].Name == "nofile" && hc.Ulimits[0].Hard == 2048},
		{"extra hosts", slices.Equal(hc.ExtraHosts, []string{"db:10.0.0.5"})},
		{"dns", slices.Equal(hc.DNS, []netip.Addr{netip.MustParseAddr("1.1.1.1")})},
		{"dns search", slices.Equal(hc.DNSSearch, []string{"example.org"})},
		{"dns options", slices.Equal(hc.DNSOptions, []string{"ndots:2"})},
		{"init", hc.Init != nil && *hc.Init},
		{"shm", hc.ShmSize == 1<<26},
		{"read-only", hc.ReadonlyRootfs},
		{"group add", slices.Equal(hc.GroupAdd, []string{"audio"})},
		{"limits dropped", hc.Memory == 0},
	}
	for _, ch := range checks {
		if !ch.ok {
			t.Errorf("%s not carried over as expected", ch.name)
		}
	}
	for _, w := range []string{"apparmor", "label=disable", "cgroup limits", "SELinux", "dns server", "domain name"} {
		if !slices.ContainsFunc(spec.Warnings, func(s string) bool { return strings.Contains(s, w) }) {
			t.Errorf("no warning mentioning %q in %q", w, spec.Warnings)
		}
	}
}

func TestConvertContainerPorts(t *testing.T) {
	spec, err := ConvertContainer(fixtureWeb(), ConvertOptions{Image: "x", HostPorts: map[uint16]uint16{80: 8080}})
	if err != nil {
		t.Fatal(err)
	}
	hc, cfg := spec.Create.HostConfig, spec.Create.Config
	tests := []struct {
		port     string
		wantIP   string
		wantHost string
	}{
		{"80/tcp", "127.0.0.1", "8080"},
		{"443/tcp", "", "8443"},
	}
	for _, tt := range tests {
		b := hc.PortBindings[network.MustParsePort(tt.port)]
		if len(b) != 1 {
			t.Fatalf("%s: bindings %v", tt.port, b)
		}
		ip := ""
		if b[0].HostIP.IsValid() {
			ip = b[0].HostIP.String()
		}
		if ip != tt.wantIP || b[0].HostPort != tt.wantHost {
			t.Errorf("%s → %s:%s, want %s:%s", tt.port, ip, b[0].HostPort, tt.wantIP, tt.wantHost)
		}
	}
	if _, ok := hc.PortBindings[network.MustParsePort("9000/udp")]; ok {
		t.Error("exposed-only port got a binding")
	}
	if _, ok := cfg.ExposedPorts[network.MustParsePort("9000/udp")]; !ok {
		t.Error("exposed port lost")
	}
}

func TestConvertContainerMounts(t *testing.T) {
	spec, err := ConvertContainer(fixtureWeb(), ConvertOptions{Image: "x", DockerSocket: "/run/user/1001/docker.sock"})
	if err != nil {
		t.Fatal(err)
	}
	want := []mount.Mount{
		{Type: mount.TypeVolume, Source: "shop_data", Target: "/data"},
		{Type: mount.TypeTmpfs, Target: "/cache", TmpfsOptions: &mount.TmpfsOptions{SizeBytes: 64 << 20, Mode: 0o1777}},
	}
	got := spec.Create.HostConfig.Mounts
	if len(got) != len(want) {
		t.Fatalf("mounts = %+v, want %+v", got, want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Type != w.Type || g.Source != w.Source || g.Target != w.Target || g.ReadOnly != w.ReadOnly {
			t.Errorf("mount %d = %+v, want %+v", i, g, w)
		}
		if (w.TmpfsOptions == nil) != (g.TmpfsOptions == nil) || (w.TmpfsOptions != nil && !tmpfsEqual(w.TmpfsOptions, g.TmpfsOptions)) {
			t.Errorf("mount %d tmpfs options = %+v, want %+v", i, g.TmpfsOptions, w.TmpfsOptions)
		}
	}
	wantBinds := []string{"/srv/www:/www:ro", "/run/user/1001/docker.sock:/var/run/docker.sock:rw"}
	if !slices.Equal(spec.Create.HostConfig.Binds, wantBinds) {
		t.Errorf("binds = %q, want %q", spec.Create.HostConfig.Binds, wantBinds)
	}
}

func TestConvertContainerNetworks(t *testing.T) {
	tests := []struct {
		name        string
		mode        string
		nets        []inventory.NetworkAttachment
		wantPrimary string
		wantConnect []string
		wantAliases []string
	}{
		{"mode names primary", "shop_default", fixtureWeb().Networks, "shop_default", []string{"shop_back"}, []string{"web", "shop-web-1"}},
		{"default bridge", "default", []inventory.NetworkAttachment{{Name: "bridge", Aliases: []string{"x"}}}, "bridge", nil, nil},
		{"first when mode absent", "bridge", []inventory.NetworkAttachment{{Name: "a", Aliases: []string{"a1"}}, {Name: "b"}}, "a", []string{"b"}, []string{"a1"}},
		{"host", "host", []inventory.NetworkAttachment{{Name: "host"}}, "", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fixtureWeb()
			c.NetworkMode, c.Networks = tt.mode, tt.nets
			spec, err := ConvertContainer(c, ConvertOptions{Image: "x"})
			if err != nil {
				t.Fatal(err)
			}
			nc := spec.Create.NetworkingConfig
			if tt.wantPrimary == "" {
				if nc != nil {
					t.Fatalf("networking config %+v, want none", nc)
				}
				return
			}
			if nc == nil || len(nc.EndpointsConfig) != 1 || nc.EndpointsConfig[tt.wantPrimary] == nil {
				t.Fatalf("endpoints = %+v, want only %s", nc, tt.wantPrimary)
			}
			if got := nc.EndpointsConfig[tt.wantPrimary].Aliases; !slices.Equal(got, tt.wantAliases) {
				t.Errorf("aliases = %q, want %q", got, tt.wantAliases)
			}
			var conn []string
			for _, a := range spec.Connect {
				conn = append(conn, a.Network)
			}
			if !slices.Equal(conn, tt.wantConnect) {
				t.Errorf("connect = %q, want %q", conn, tt.wantConnect)
			}
		})
	}
}

func TestConvertContainerStaticIP(t *testing.T) {
	spec, err := ConvertContainer(fixtureWeb(), ConvertOptions{Image: "x"})
	if err != nil {
		t.Fatal(err)
	}
	ep := spec.Connect[0].Endpoint
	if ep.IPAMConfig == nil || ep.IPAMConfig.IPv4Address != netip.MustParseAddr("172.30.0.10") {
		t.Errorf("static address lost: %+v", ep.IPAMConfig)
	}
}

func TestConvertContainerLimitsKept(t *testing.T) {
	spec, err := ConvertContainer(fixtureWeb(), ConvertOptions{Image: "x", Limits: true})
	if err != nil {
		t.Fatal(err)
	}
	if spec.Create.HostConfig.Memory != 1<<28 {
		t.Errorf("memory = %d", spec.Create.HostConfig.Memory)
	}
}

func TestConvertContainerNoImage(t *testing.T) {
	if _, err := ConvertContainer(fixtureWeb(), ConvertOptions{}); err == nil {
		t.Fatal("want an error without an image")
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{{"65536", 65536, true}, {"64k", 64 << 10, true}, {"64m", 64 << 20, true}, {"1g", 1 << 30, true}, {"x", 0, false}, {"-1", 0, false}}
	for _, tt := range tests {
		got, ok := parseSize(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseSize(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func tmpfsEqual(a, b *mount.TmpfsOptions) bool {
	return a.SizeBytes == b.SizeBytes && a.Mode == b.Mode
}

func TestParseTmpfsOptionsBounds(t *testing.T) {
	tests := []struct {
		in       string
		wantNil  bool
		wantSize int64
	}{
		{"size=64m,mode=1777", false, 64 << 20},
		{"mode=77777", true, 0},
		{"size=9223372036854775807g", true, 0},
		{"noexec", true, 0},
	}
	for _, tt := range tests {
		o := parseTmpfsOptions(tt.in)
		if (o == nil) != tt.wantNil || (o != nil && o.SizeBytes != tt.wantSize) {
			t.Errorf("parseTmpfsOptions(%q) = %+v", tt.in, o)
		}
	}
}

func TestConvertContainerRefs(t *testing.T) {
	names := map[string]string{"50ff04eb86e0": "db", "db": "db"}
	c := fixtureWeb()
	c.NetworkMode, c.Networks = "container:50ff04eb86e0", nil
	c.PidMode, c.IpcMode = "container:50ff04eb86e0", "shareable"
	c.Hostname = "dbhost"
	c.Links = []string{"/db:/shop-web-1/dbalias", "/db:/shop-web-1/db"}
	c.VolumesFrom = []string{"db:ro", "db"}
	spec, err := ConvertContainer(c, ConvertOptions{Image: "x", ContainerName: func(r string) string {
		if n, ok := names[r]; ok {
			return n
		}
		return r
	}})
	if err != nil {
		t.Fatal(err)
	}
	hc := spec.Create.HostConfig
	if hc.NetworkMode != "container:db" || hc.PidMode != "container:db" || hc.IpcMode != "shareable" {
		t.Errorf("modes = %s %s %s", hc.NetworkMode, hc.PidMode, hc.IpcMode)
	}
	if !slices.Equal(hc.VolumesFrom, []string{"db:ro", "db"}) {
		t.Errorf("volumes-from = %q", hc.VolumesFrom)
	}
	if spec.Create.NetworkingConfig != nil {
		t.Errorf("networking config for a container network: %+v", spec.Create.NetworkingConfig)
	}
	// The namespace owner's settings are refused by the daemon here.
	if spec.Create.Config.Hostname != "" || hc.DNS != nil || hc.ExtraHosts != nil || hc.PortBindings != nil || spec.Create.Config.ExposedPorts != nil || hc.Links != nil {
		t.Errorf("settings that conflict with a container network kept: hostname %q dns %v hosts %v ports %v links %v",
			spec.Create.Config.Hostname, hc.DNS, hc.ExtraHosts, hc.PortBindings, hc.Links)
	}
}

func TestConvertContainerLinks(t *testing.T) {
	c := fixtureWeb()
	c.NetworkMode = "default"
	c.Links = []string{"/db:/shop-web-1/dbalias", "/cache:/shop-web-1/cache"}
	spec, err := ConvertContainer(c, ConvertOptions{Image: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if got := spec.Create.HostConfig.Links; !slices.Equal(got, []string{"db:dbalias", "cache:cache"}) {
		t.Errorf("links = %q", got)
	}
}
