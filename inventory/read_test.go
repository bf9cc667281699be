package inventory

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	dir141 = "../testdata/inventory/api1.41"
	dir152 = "../testdata/inventory/api1.52"
)

func mustRead(t *testing.T, api API, opts Options) *Inventory {
	t.Helper()
	inv, err := Read(context.Background(), api, opts)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return inv
}

func mustContainer(t *testing.T, inv *Inventory, name string) *Container {
	t.Helper()
	c, err := inv.Container(name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func eq[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %#v, want %#v", what, got, want)
	}
}

func containerNames(inv *Inventory) []string {
	var out []string
	for _, c := range inv.Containers {
		out = append(out, c.Name)
	}
	return out
}

// TestReadAPI141 reads objects recorded from Debian 12's docker 20.10.
func TestReadAPI141(t *testing.T) {
	inv := mustRead(t, loadFake(t, dir141, "1.41"), Options{All: true})

	eq(t, "daemon", inv.Daemon.ServerVersion+" api "+inv.Daemon.APIVersion, "20.10.24+dfsg1 api 1.41")
	eq(t, "rootless", inv.Daemon.Rootless, false)
	eq(t, "root dir", inv.Daemon.DockerRootDir, "/var/lib/docker")
	eq(t, "containers", containerNames(inv), []string{"fx-inv-mac", "fx-inv-stopped", "fxshop-db-1", "fxshop-web-1"})
	eq(t, "warnings", inv.Warnings, []string(nil))

	db := mustContainer(t, inv, "fxshop-db-1")
	eq(t, "db state", [2]any{db.State, db.Running}, [2]any{"running", true})
	eq(t, "db health", db.Health, "healthy")
	eq(t, "db image", db.Image, "unroot-e2e/busybox:latest")
	eq(t, "db image id", db.ImageID, "sha256:a25c5cdf2aab7ca1ccef5df399081507edbeb2f82335a814a52581edb7505073")
	eq(t, "db cmd", db.Cmd, []string{"sleep", "3600"})
	eq(t, "db env", db.Env, []string{"POSTGRES_USER=app", "POSTGRES_PASSWORD=s3cr=t", "PATH=/bin"})
	eq(t, "db user", db.User, "999:999")
	eq(t, "db workdir", db.WorkingDir, "/data")
	eq(t, "db hostname", db.Hostname+"."+db.Domainname, "db.example.internal")
	eq(t, "db label", db.Labels["org.example.tier"], "data")
	eq(t, "db restart", db.RestartPolicy, RestartPolicy{Name: "unless-stopped"})
	eq(t, "db healthcheck", db.Healthcheck, &Healthcheck{
		Test: []string{"CMD-SHELL", "test -d /data"}, Interval: 30 * time.Second, Timeout: 5 * time.Second,
		StartPeriod: 10 * time.Second, Retries: 3,
	})
	eq(t, "db log", db.LogConfig, LogConfig{Type: "json-file", Config: map[string]string{"max-size": "1m", "max-file": "2"}})
	eq(t, "db resources", db.Resources, Resources{Memory: 64 << 20, MemorySwap: 128 << 20, NanoCPUs: 5e8, PidsLimit: 100})
	eq(t, "db caps", [2][]string{db.CapAdd, db.CapDrop}, [2][]string{{"CAP_NET_ADMIN"}, {"CAP_MKNOD"}})
	eq(t, "db ulimits", db.Ulimits, []Ulimit{{Name: "nofile", Soft: 1024, Hard: 2048}})
	eq(t, "db tmpfs", db.Tmpfs, map[string]string{"/run": "size=1m,mode=1777"})
	eq(t, "db sysctls", db.Sysctls, map[string]string{"net.core.somaxconn": "1024"})
	eq(t, "db security", db.SecurityOpt, []string{"no-new-privileges"})
	eq(t, "db dns", [][]string{db.DNS, db.DNSSearch, db.DNSOptions, db.ExtraHosts},
		[][]string{{"1.1.1.1"}, {"example.org"}, {"ndots:2"}, {"foo.internal:10.0.0.1"}})
	eq(t, "db stop", db.StopSignal, "SIGINT")
	if db.StopTimeout == nil || *db.StopTimeout != 20 {
		t.Errorf("db stop timeout = %v, want 20", db.StopTimeout)
	}
	if db.Init == nil || !*db.Init {
		t.Errorf("db init = %v, want true", db.Init)
	}
	eq(t, "db shm", db.ShmSize, int64(128<<20))
	eq(t, "db group add", db.GroupAdd, []string{"100"})
	eq(t, "db oom", db.OomScoreAdj, 100)
	eq(t, "db mounts", db.Mounts, []Mount{
		{Type: "volume", Name: "fxshop_dbdata", Source: "/var/lib/docker/volumes/fxshop_dbdata/_data", Destination: "/data", RW: true, Mode: "z", Driver: "local"},
		{Type: "tmpfs", Destination: "/run", RW: true, Options: "size=1m,mode=1777"},
	})
	eq(t, "db networks", db.Networks, []NetworkAttachment{{
		Name: "fxshop_default", ID: "710bdadf84fe3a727ca722c1852080f733bff348f84586d99987c89e1f993ae4",
		Aliases: []string{"db", "database"}, IPv4Address: "172.31.240.10", MacAddress: "02:42:ac:1f:f0:0a", IPAddress: "172.31.240.10",
	}})
	eq(t, "db compose", db.Compose, &ComposeInfo{
		Project: "fxshop", Service: "db", ContainerNumber: 1,
		ConfigFiles: []string{"/srv/fxshop/compose.yaml", "/srv/fxshop/compose.override.yaml"},
		WorkingDir:  "/srv/fxshop", Version: "2.20.2",
	})
	if !json.Valid(db.Raw) || !strings.Contains(string(db.Raw), `"MacAddress"`) {
		t.Errorf("db raw inspect JSON not kept")
	}

	web := mustContainer(t, inv, "fxshop-web-1")
	eq(t, "web ports", web.Ports, []Port{
		{ContainerPort: 80, Proto: "tcp", Published: true, HostIP: "127.0.0.1", HostPort: "18080", BoundHostPort: 18080},
		{ContainerPort: 443, Proto: "tcp", Published: true, HostPort: "18443", BoundHostPort: 18443},
		{ContainerPort: 7000, Proto: "tcp"},
		{ContainerPort: 9000, Proto: "udp", Published: true, HostIP: "127.0.0.1", BoundHostPort: 32769},
	})
	eq(t, "web published", len(web.PublishedPorts()), 3)
	eq(t, "web read-only", web.ReadOnly, true)
	eq(t, "web restart", web.RestartPolicy, RestartPolicy{Name: "on-failure", MaximumRetryCount: 3})
	eq(t, "web cpu", [2]int64{web.Resources.CPUShares, web.Resources.CPUQuota}, [2]int64{512, 50000})
	eq(t, "web devices", web.Devices, []Device{{PathOnHost: "/dev/null", PathInContainer: "/dev/xnull", CgroupPermissions: "rwm"}})
	eq(t, "web binds", web.MountsOfType(MountBind), []Mount{{Type: "bind", Source: "/tmp/fx-inv-bind", Destination: "/srv", RW: false, Mode: "ro", Propagation: "rprivate"}})
	eq(t, "web tmpfs", web.MountsOfType(MountTmpfs), []Mount{{Type: "tmpfs", Destination: "/cache", RW: true, Options: "size=1048576"}})
	anon := web.MountsOfType(MountVolume)
	if len(anon) != 1 || !anon[0].Anonymous || anon[0].Destination != "/anon" {
		t.Errorf("web volume mounts = %+v, want one anonymous at /anon", anon)
	}
	// API 1.41 adds the short ID to the aliases; it must not come through.
	eq(t, "web aliases", web.Network("fxshop_default").Aliases, []string{"web", "www"})
	eq(t, "web bridge", web.Network("bridge").Aliases, []string(nil))
	eq(t, "web depends_on", web.Compose.DependsOn, []Dependency{{Service: "db", Condition: ConditionHealthy}})

	stopped := mustContainer(t, inv, "fx-inv-stopped")
	eq(t, "stopped state", [2]any{stopped.State, stopped.Running}, [2]any{"exited", false})
	eq(t, "stopped entrypoint", stopped.Entrypoint, []string{"sh"})
	eq(t, "stopped modes", [3]string{stopped.NetworkMode, stopped.PidMode, stopped.IpcMode}, [3]string{"none", "host", "host"})
	eq(t, "stopped changes without Diff", stopped.Changes, []Change(nil))

	mac := mustContainer(t, inv, "fx-inv-mac")
	// Config.MacAddress exists only in API < 1.44 and only in the raw JSON.
	eq(t, "mac", mac.MacAddress, "02:42:ac:11:00:99")
	eq(t, "mac state", mac.State, "created")
	eq(t, "mac privileged", mac.Privileged, true)
	eq(t, "mac bind", mac.Mounts, []Mount{{Type: "bind", Source: "/tmp/fx-inv-bind", Destination: "/mnt/bind", RW: true, Mode: "rw,rslave", Propagation: "rslave"}})

	eq(t, "images", len(inv.Images), 1)
	im := inv.Images[0]
	eq(t, "image tags", im.RepoTags, []string{"unroot-e2e/busybox:latest"})
	eq(t, "image used by", im.UsedBy, []string{"fx-inv-mac", "fx-inv-stopped", "fxshop-db-1", "fxshop-web-1"})
	if im.Size <= 0 || im.Created.IsZero() {
		t.Errorf("image size/created = %d/%v", im.Size, im.Created)
	}

	vol, err := inv.Volume("fxshop_dbdata")
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "volume options", vol.Options, map[string]string{"type": "tmpfs", "device": "tmpfs", "o": "size=10m"})
	eq(t, "volume labels", vol.Labels["com.docker.compose.volume"], "dbdata")
	eq(t, "volume used by", vol.UsedBy, []MountUser{{Container: "fxshop-db-1", Destination: "/data", RW: true}})
	eq(t, "volume scope", vol.Scope+" "+vol.Driver, "local local")
	eq(t, "volume anonymous", vol.Anonymous, false)

	eq(t, "bind mounts", inv.BindMounts, []BindMount{{Source: "/tmp/fx-inv-bind", UsedBy: []MountUser{
		{Container: "fx-inv-mac", Destination: "/mnt/bind", RW: true},
		{Container: "fxshop-web-1", Destination: "/srv", RW: false},
	}}})
	eq(t, "bind rw", inv.BindMounts[0].RW(), true)

	var netNames []string
	for _, n := range inv.Networks {
		netNames = append(netNames, n.Name)
	}
	eq(t, "networks", netNames, []string{"bridge", "fxshop_default", "host", "none"})
	net, err := inv.Network("fxshop_default")
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "net builtin", net.Builtin, false)
	eq(t, "net flags", [4]bool{net.IPv4, net.IPv6, net.Internal, net.Attachable}, [4]bool{true, false, false, true})
	eq(t, "net ipam", net.IPAM, []Subnet{{Subnet: "172.31.240.0/24", Gateway: "172.31.240.1", IPRange: "172.31.240.128/25"}})
	eq(t, "net options", net.Options, map[string]string{"com.docker.network.bridge.enable_icc": "true"})
	eq(t, "net members", net.Containers, []NetworkMember{
		{Container: "fxshop-db-1", Aliases: []string{"db", "database"}, IPv4Address: "172.31.240.10"},
		{Container: "fxshop-web-1", Aliases: []string{"web", "www"}},
	})
	bridge, _ := inv.Network("bridge")
	// API 1.41 has no EnableIPv4: IPv4 is on.
	eq(t, "bridge", [2]bool{bridge.Builtin, bridge.IPv4}, [2]bool{true, true})

	p, err := inv.Project("fxshop")
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "project", *p, Project{
		Name: "fxshop", WorkingDir: "/srv/fxshop",
		ConfigFiles: []string{"/srv/fxshop/compose.yaml", "/srv/fxshop/compose.override.yaml"},
		Services: []Service{
			{Name: "db", Containers: []string{"fxshop-db-1"}},
			{Name: "web", Containers: []string{"fxshop-web-1"}, DependsOn: []Dependency{{Service: "db", Condition: ConditionHealthy}}},
		},
		Networks: []string{"fxshop_default"},
		Volumes:  []string{"fxshop_dbdata"},
	})
}

// TestReadAPI152 reads hand-written objects in the shape of API 1.5x
// (rootless docker 29): per-network MAC, DNSNames, EnableIPv4, ranges.
func TestReadAPI152(t *testing.T) {
	inv := mustRead(t, loadFake(t, dir152, "1.52"), Options{All: true})
	eq(t, "rootless", inv.Daemon.Rootless, true)
	eq(t, "cgroup", inv.Daemon.CgroupDriver+" v"+inv.Daemon.CgroupVersion, "systemd v2")
	eq(t, "containers", containerNames(inv), []string{"app-web-1", "app-web-run-7f3c2a"})

	web := mustContainer(t, inv, "app-web-1")
	eq(t, "mac", web.MacAddress, "")
	eq(t, "net", web.Networks, []NetworkAttachment{{
		Name: "app_default", ID: "b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1",
		Aliases: []string{"app-web-1", "web"}, IPv6Address: "fd00:89::20", MacAddress: "02:42:0a:59:00:14",
	}})
	eq(t, "ports", web.Ports, []Port{
		{ContainerPort: 53, Proto: "udp", Published: true, HostIP: "127.0.0.1", HostPort: "5300-5310", BoundHostPort: 5303},
		{ContainerPort: 8080, Proto: "tcp", Published: true, HostPort: "8080", BoundHostPort: 8080},
		{ContainerPort: 8080, Proto: "tcp", Published: true, HostIP: "::", HostPort: "8080", BoundHostPort: 8080},
		{ContainerPort: 9090, Proto: "sctp"},
	})
	eq(t, "healthcheck", web.Healthcheck.StartInterval, time.Second)
	eq(t, "health", web.Health, "starting")
	eq(t, "resources", web.Resources, Resources{Memory: 512 << 20, MemoryReservation: 256 << 20, MemorySwap: -1, NanoCPUs: 15e8, CpusetCpus: "0-1"})
	eq(t, "device requests", web.DeviceRequests, []DeviceRequest{{Driver: "nvidia", Count: -1, Capabilities: [][]string{{"gpu"}}}})
	eq(t, "dns", web.DNS, []string{"192.0.2.53", "2001:db8::53"})
	eq(t, "links", web.Links, []string{"/app-cache-1:/app-web-1/cache"})
	eq(t, "volumes from", web.VolumesFrom, []string{"app-data-1:ro"})
	eq(t, "ipc", web.IpcMode, "shareable")
	eq(t, "init", *web.Init, false)
	eq(t, "log", web.LogConfig, LogConfig{Type: "local", Config: map[string]string{"max-size": "10m"}})
	// By destination: /var/cache/app, then /var/lib/app.
	eq(t, "volume names", web.VolumeNames(), []string{"d1c0ffee00000000000000000000000000000000000000000000000000000001", "app_data"})
	eq(t, "tmpfs", web.MountsOfType(MountTmpfs), []Mount{{Type: "tmpfs", Destination: "/tmp", RW: true, Options: "size=67108864,mode=1777"}})
	eq(t, "depends_on", web.Compose.DependsOn, []Dependency{
		{Service: "cache", Condition: ConditionStarted},
		{Service: "db", Condition: ConditionHealthy, Restart: true},
		{Service: "migrate", Condition: ConditionCompleted},
	})

	run := mustContainer(t, inv, "app-web-run-7f3c2a")
	eq(t, "run oneoff", run.Compose.OneOff, true)
	eq(t, "run auto remove", run.AutoRemove, true)
	eq(t, "run tty", [2]bool{run.Tty, run.OpenStdin}, [2]bool{true, true})
	// PublishAllPorts on a stopped container: published, port unknown.
	eq(t, "run ports", run.Ports, []Port{{ContainerPort: 8080, Proto: "tcp", Published: true}})
	eq(t, "run pids", run.Resources.PidsLimit, int64(0))
	if len(inv.Warnings) != 1 || !strings.Contains(inv.Warnings[0], "app-web-run-7f3c2a") || !strings.Contains(inv.Warnings[0], "maybe") {
		t.Errorf("warnings = %q, want one about the bad depends_on label", inv.Warnings)
	}

	im, err := inv.Image("ghcr.io/example/web:latest")
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "image", [4]string{im.User, im.Architecture, im.OS, strings.Join(im.Volumes, ",")}, [4]string{"app", "arm64", "linux", "/var/cache/app"})
	eq(t, "image digests", im.RepoDigests, []string{"ghcr.io/example/web@sha256:aa11bb22cc33dd44ee55ff6677889900aabbccddeeff00112233445566778899"})

	net, _ := inv.Network("app_default")
	eq(t, "net flags", [4]bool{net.IPv4, net.IPv6, net.Internal, net.Attachable}, [4]bool{false, true, true, true})
	eq(t, "net ipam", net.IPAM, []Subnet{{Subnet: "fd00:89::/64", Gateway: "fd00:89::1", IPRange: "fd00:89::/80", AuxAddress: map[string]string{"router": "fd00:89::2"}}})
	// The stopped one-off container is a member although the daemon's
	// network inspect lists only running ones.
	eq(t, "net members", len(net.Containers), 2)

	vols := map[string]Volume{}
	for _, v := range inv.Volumes {
		vols[v.Name] = v
	}
	eq(t, "volume count (whole daemon, unused included)", len(vols), 3)
	eq(t, "anonymous by label", vols["d1c0ffee00000000000000000000000000000000000000000000000000000001"].Anonymous, true)
	eq(t, "orphan unused", vols["orphan"].UsedBy, []MountUser(nil))
	eq(t, "orphan options", vols["orphan"].Options["type"], "nfs")

	p, _ := inv.Project("app")
	eq(t, "project services", len(p.Services), 1)
	eq(t, "project web", p.Service("web").Containers, []string{"app-web-1"})
	eq(t, "project oneoff", p.OneOff, []string{"app-web-run-7f3c2a"})
	eq(t, "project resources", [2][]string{p.Networks, p.Volumes}, [2][]string{{"app_default"}, {"app_data"}})
}

func TestReadRunningOnly(t *testing.T) {
	f := loadFake(t, dir141, "1.41")
	inv := mustRead(t, f, Options{})
	eq(t, "containers", containerNames(inv), []string{"fxshop-db-1", "fxshop-web-1"})
	eq(t, "list call", f.calls[0], "ContainerList all=false")
	if inv.BindMount("/tmp/fx-inv-bind") == nil || len(inv.BindMount("/tmp/fx-inv-bind").UsedBy) != 1 {
		t.Errorf("bind mounts = %+v, want only fxshop-web-1's", inv.BindMounts)
	}
}

func TestReadNamedContainers(t *testing.T) {
	f := loadFake(t, dir141, "1.41")
	inv := mustRead(t, f, Options{Containers: []string{"fxshop-web-1", "/fx-inv-stopped", "6728f2bf"}})
	// Named containers are read even when stopped, each once.
	eq(t, "containers", containerNames(inv), []string{"fx-inv-stopped", "fxshop-web-1"})
	var vols, nets []string
	for _, v := range inv.Volumes {
		vols = append(vols, v.Name)
	}
	for _, n := range inv.Networks {
		nets = append(nets, n.Name)
	}
	eq(t, "volumes (only used)", vols, []string{"28699d33e36c4ef88e019696f336dc9a6945bf51b81d20100e77f09ae65b744d"})
	eq(t, "networks (only used)", nets, []string{"bridge", "fxshop_default", "none"})
	eq(t, "image used by", inv.Images[0].UsedBy, []string{"fx-inv-stopped", "fxshop-web-1"})
	p, _ := inv.Project("fxshop")
	eq(t, "project services", len(p.Services), 1)
}

func TestReadUnknownContainers(t *testing.T) {
	f := loadFake(t, dir141, "1.41")
	_, err := Read(context.Background(), f, Options{Containers: []string{"fxshop-wbe-1", "fxshop-db-1", "zzz"}})
	if err == nil {
		t.Fatal("Read succeeded, want not-found errors")
	}
	var nf *NotFoundError
	if !errors.As(err, &nf) {
		t.Fatalf("error %v is not a *NotFoundError", err)
	}
	eq(t, "first", *nf, NotFoundError{Kind: "container", Name: "fxshop-wbe-1", Suggestion: "fxshop-web-1"})
	eq(t, "hint", nf.Hint(), "run 'docker ps -a' against the source daemon to see the names")
	for _, want := range []string{`no container named "fxshop-wbe-1"; did you mean "fxshop-web-1"?`, `no container named "zzz"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), `"zzz"; did you mean`) {
		t.Errorf("error %q suggests a name for zzz", err)
	}
	for _, c := range f.calls {
		if strings.HasPrefix(c, "ContainerInspect") {
			t.Errorf("inspected %s after a lookup failed", c)
		}
	}
}

func TestReadAmbiguousPrefix(t *testing.T) {
	f := loadFake(t, dir141, "1.41")
	// No fixture IDs share a first digit, so build the clash.
	var items []map[string]any
	if err := json.Unmarshal(f.containers, &items); err != nil {
		t.Fatal(err)
	}
	items[1]["Id"] = items[0]["Id"].(string)[:4] + "ffff"
	f.containers, _ = json.Marshal(items)
	_, err := Read(context.Background(), f, Options{Containers: []string{items[0]["Id"].(string)[:4]}})
	var nf *NotFoundError
	if !errors.As(err, &nf) || !nf.Ambiguous {
		t.Fatalf("err = %v, want an ambiguous *NotFoundError", err)
	}
}

func TestReadDiffOnlyWhenAsked(t *testing.T) {
	for _, diff := range []bool{false, true} {
		f := loadFake(t, dir141, "1.41")
		inv := mustRead(t, f, Options{Containers: []string{"fx-inv-stopped"}, Diff: diff})
		diffed := slices.ContainsFunc(f.calls, func(c string) bool { return strings.HasPrefix(c, "ContainerDiff") })
		eq(t, "diff called", diffed, diff)
		if !diff {
			continue
		}
		eq(t, "changes", inv.Containers[0].Changes, []Change{
			{Kind: "modified", Path: "/bin"}, {Kind: "deleted", Path: "/bin/wget"}, {Kind: "added", Path: "/newfile"},
			{Kind: "modified", Path: "/var"}, {Kind: "added", Path: "/var/spool"}, {Kind: "added", Path: "/var/spool/x"},
		})
	}
}

func TestReadMissingImage(t *testing.T) {
	f := loadFake(t, dir141, "1.41")
	f.image = map[string][]byte{}
	inv := mustRead(t, f, Options{Containers: []string{"fxshop-db-1"}})
	eq(t, "images", inv.Images, []Image{{
		ID: "sha256:a25c5cdf2aab7ca1ccef5df399081507edbeb2f82335a814a52581edb7505073", Missing: true, UsedBy: []string{"fxshop-db-1"},
	}})
}

func TestReadVolumeNotListed(t *testing.T) {
	f := loadFake(t, dir141, "1.41")
	f.volumes = []byte(`{"Volumes":[]}`)
	inv := mustRead(t, f, Options{Containers: []string{"fxshop-db-1"}})
	eq(t, "inspected", slices.Contains(f.calls, "VolumeInspect fxshop_dbdata"), true)
	eq(t, "volume", len(inv.Volumes) == 1 && inv.Volumes[0].Options["o"] == "size=10m", true)
}

func TestReadImages(t *testing.T) {
	imgs, err := ReadImages(context.Background(), loadFake(t, dir152, "1.52"))
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "count", len(imgs), 2)
	im := imgs["sha256:3f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0"]
	eq(t, "tags", im.RepoTags, []string{"ghcr.io/example/web:2.1", "ghcr.io/example/web:latest"})
	eq(t, "created", im.Created, time.Unix(1764700000, 0).UTC())
	eq(t, "untagged", imgs["sha256:0000000000000000000000000000000000000000000000000000000000000abc"].RepoTags, []string(nil))
}

// TestInventoryJSONRoundTrip checks that the JSON form the CLI prints
// decodes back into the same inventory, the contract with the planner.
func TestInventoryJSONRoundTrip(t *testing.T) {
	for _, dir := range []string{dir141, dir152} {
		inv := mustRead(t, loadFake(t, dir, "1.4x"), Options{All: true, Diff: true})
		b, err := json.Marshal(inv)
		if err != nil {
			t.Fatal(err)
		}
		var back Inventory
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		for i := range inv.Containers {
			// RawMessage comes back compacted; compare it separately.
			if !json.Valid(back.Containers[i].Raw) {
				t.Errorf("%s: raw JSON lost", inv.Containers[i].Name)
			}
			inv.Containers[i].Raw, back.Containers[i].Raw = nil, nil
		}
		if !reflect.DeepEqual(*inv, back) {
			t.Errorf("%s: JSON round trip changed the inventory", filepath.Base(dir))
		}
		if !strings.Contains(string(b), `"container_port"`) || strings.Contains(string(b), `"ContainerPort"`) {
			t.Errorf("%s: JSON keys are not snake_case", filepath.Base(dir))
		}
	}
}

// TestFixturesDecodeStrictly guards the fixtures themselves: every file must
// be valid JSON, so a broken hand edit fails here and not as a puzzling
// assertion elsewhere.
func TestFixturesDecodeStrictly(t *testing.T) {
	for _, dir := range []string{dir141, dir152} {
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid(b) {
				t.Errorf("%s/%s is not valid JSON", dir, e.Name())
			}
		}
	}
}

func TestReadObjectsGoneWhileReading(t *testing.T) {
	const macID = "87d48562686011ad8ae03ee829549b1ddcb115ea060c10f485b9731e26898122"
	t.Run("ContainerWholeDaemon", func(t *testing.T) {
		f := loadFake(t, dir141, "1.41")
		delete(f.inspect, macID)
		inv := mustRead(t, f, Options{All: true})
		eq(t, "containers", containerNames(inv), []string{"fx-inv-stopped", "fxshop-db-1", "fxshop-web-1"})
		eq(t, "warnings", inv.Warnings, []string{"container 87d485626860 disappeared while being read"})
	})
	t.Run("ContainerNamed", func(t *testing.T) {
		f := loadFake(t, dir141, "1.41")
		delete(f.inspect, macID)
		if _, err := Read(context.Background(), f, Options{Containers: []string{"fx-inv-mac"}}); err == nil {
			t.Error("Read of a named container that vanished succeeded")
		}
	})
	t.Run("Network", func(t *testing.T) {
		f := loadFake(t, dir141, "1.41")
		delete(f.network, "fxshop_default")
		inv := mustRead(t, f, Options{Containers: []string{"fxshop-db-1"}})
		n, err := inv.Network("fxshop_default")
		if err != nil {
			t.Fatal(err)
		}
		eq(t, "missing", [2]bool{n.Missing, n.IPv4}, [2]bool{true, true})
		eq(t, "members", n.Containers, []NetworkMember{{Container: "fxshop-db-1", Aliases: []string{"db", "database"}, IPv4Address: "172.31.240.10"}})
		eq(t, "warnings", inv.Warnings, []string{"network fxshop_default is used by fxshop-db-1 but the daemon does not have it"})
	})
	t.Run("Volume", func(t *testing.T) {
		f := loadFake(t, dir141, "1.41")
		f.volumes = []byte(`{"Volumes":null}`)
		f.volume = map[string][]byte{}
		inv := mustRead(t, f, Options{Containers: []string{"fxshop-db-1"}})
		eq(t, "volumes", inv.Volumes, []Volume{{Name: "fxshop_dbdata", Missing: true, UsedBy: []MountUser{{Container: "fxshop-db-1", Destination: "/data", RW: true}}}})
		eq(t, "warning count", len(inv.Warnings), 1)
	})
}

func TestReadNetworkRemovedAfterListing(t *testing.T) {
	f := loadFake(t, dir141, "1.41")
	delete(f.network, "host")
	inv := mustRead(t, f, Options{})
	if _, err := inv.Network("host"); err == nil {
		t.Error("a network removed after the listing is still reported")
	}
	eq(t, "warnings", inv.Warnings, []string(nil))
}
