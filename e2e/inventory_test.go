package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/unroot/unroot/inventory"
)

// invName returns a name unique to this test process.
func invName(kind string) string {
	return fmt.Sprintf("e2e-inv-%d-%s", os.Getpid(), kind)
}

// readInventory runs 'unroot inventory --format json' and decodes it.
func readInventory(t *testing.T, rig *Rig, args ...string) *inventory.Inventory {
	t.Helper()
	stdout, stderr, code := rig.Unroot(t, append([]string{"--source-host", rig.SourceHost, "inventory", "--format", "json"}, args...)...)
	if code != 0 {
		t.Fatalf("unroot inventory exit %d: %s", code, stderr)
	}
	var inv inventory.Inventory
	if err := json.Unmarshal([]byte(stdout), &inv); err != nil {
		t.Fatalf("decode inventory JSON: %v\n%s", err, stdout)
	}
	return &inv
}

func TestInventoryRoundTrip(t *testing.T) {
	rig := Load(t)
	netName, volName, ctrName := invName("net"), invName("vol"), invName("web")
	bindDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(bindDir, "index.html"), []byte("hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	rig.Docker(t, false, "network", "create", "--label", "org.example.net=inv", netName)
	t.Cleanup(func() { _, _ = rig.DockerErr(false, "network", "rm", netName) })
	rig.Docker(t, false, "volume", "create", "--label", "org.example.vol=data", "--label", "org.example.tier=db", volName)
	t.Cleanup(func() { _, _ = rig.DockerErr(false, "volume", "rm", "-f", volName) })
	t.Cleanup(func() { _, _ = rig.DockerErr(false, "rm", "-f", ctrName) })
	rig.Docker(t, false, "run", "-d", "--name", ctrName,
		"--network", netName, "--network-alias", "e2e-inv-alias",
		"-v", volName+":/data",
		"-v", bindDir+":/srv:ro",
		"-p", "127.0.0.1::80",
		"--health-cmd", "true", "--health-interval", "5s", "--health-retries", "2",
		"-e", "FOO=bar", "-e", "EMPTY=",
		"-u", "1000:1000",
		"--label", "org.example.role=web", "--label", "com.docker.compose.project=e2einv",
		"--label", "com.docker.compose.service=web", "--label", "com.docker.compose.depends_on=db:service_healthy:true",
		"--restart", "unless-stopped",
		rig.Image, "sleep", "3600")
	id := rig.Docker(t, false, "inspect", "-f", "{{.Id}}", ctrName)
	// docker port prints "127.0.0.1:NNNNN"; the daemon chose the port.
	hostPort := rig.Docker(t, false, "port", ctrName, "80/tcp")
	_, portStr, ok := strings.Cut(hostPort, "127.0.0.1:")
	wantPort, err := strconv.ParseUint(strings.TrimSpace(strings.Split(portStr, "\n")[0]), 10, 16)
	if !ok || err != nil {
		t.Fatalf("docker port = %q", hostPort)
	}

	inv := readInventory(t, rig, ctrName)

	if len(inv.Containers) != 1 {
		t.Fatalf("containers = %d, want exactly the one named", len(inv.Containers))
	}
	c := &inv.Containers[0]
	check := func(what string, got, want any) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	check("name", c.Name, ctrName)
	check("id", c.ID, id)
	check("state", c.State+" "+strconv.FormatBool(c.Running), "running true")
	check("image", c.Image, rig.Image)
	check("user", c.User, "1000:1000")
	check("cmd", c.Cmd, []string{"sleep", "3600"})
	if !slices.Contains(c.Env, "FOO=bar") || !slices.Contains(c.Env, "EMPTY=") {
		t.Errorf("env = %q, want FOO=bar and EMPTY=", c.Env)
	}
	check("label", c.Labels["org.example.role"], "web")
	check("restart", c.RestartPolicy.Name, "unless-stopped")
	if c.Healthcheck == nil {
		t.Fatal("healthcheck missing")
	}
	check("healthcheck", fmt.Sprintln(c.Healthcheck.Test, c.Healthcheck.Interval, c.Healthcheck.Retries), fmt.Sprintln([]string{"CMD-SHELL", "true"}, 5*time.Second, 2))
	if c.Compose == nil {
		t.Fatal("compose labels not read")
	}
	check("compose", fmt.Sprintln(c.Compose.Project, c.Compose.Service, c.Compose.DependsOn),
		fmt.Sprintln("e2einv", "web", []inventory.Dependency{{Service: "db", Condition: inventory.ConditionHealthy, Restart: true}}))

	pub := c.PublishedPorts()
	if len(pub) != 1 {
		t.Fatalf("published ports = %+v, want one", pub)
	}
	check("port", fmt.Sprintln(pub[0].ContainerPort, pub[0].Proto, pub[0].HostIP, pub[0].BoundHostPort), fmt.Sprintln(80, "tcp", "127.0.0.1", wantPort))

	att := c.Network(netName)
	if att == nil {
		t.Fatalf("network %s not attached: %+v", netName, c.Networks)
	}
	check("aliases", att.Aliases, []string{"e2e-inv-alias"})

	vols := c.MountsOfType(inventory.MountVolume)
	binds := c.MountsOfType(inventory.MountBind)
	if len(vols) != 1 || len(binds) != 1 {
		t.Fatalf("mounts = %+v, want one volume and one bind", c.Mounts)
	}
	check("volume mount", fmt.Sprintln(vols[0].Name, vols[0].Destination, vols[0].RW), fmt.Sprintln(volName, "/data", true))
	check("bind mount", fmt.Sprintln(binds[0].Source, binds[0].Destination, binds[0].RW), fmt.Sprintln(bindDir, "/srv", false))

	v, err := inv.Volume(volName)
	if err != nil {
		t.Fatal(err)
	}
	check("volume labels", fmt.Sprintln(v.Labels["org.example.vol"], v.Labels["org.example.tier"]), fmt.Sprintln("data", "db"))
	check("volume driver", v.Driver, "local")
	check("volume used by", v.UsedBy, []inventory.MountUser{{Container: ctrName, Destination: "/data", RW: true}})
	if !strings.HasSuffix(v.Mountpoint, "/"+volName+"/_data") {
		t.Errorf("volume mountpoint = %q", v.Mountpoint)
	}

	b := inv.BindMount(bindDir)
	if b == nil {
		t.Fatalf("bind mount %s not listed: %+v", bindDir, inv.BindMounts)
	}
	check("bind used by", b.UsedBy, []inventory.MountUser{{Container: ctrName, Destination: "/srv", RW: false}})

	n, err := inv.Network(netName)
	if err != nil {
		t.Fatal(err)
	}
	check("network", fmt.Sprintln(n.Driver, n.Builtin, n.Labels["org.example.net"], len(n.IPAM) > 0), fmt.Sprintln("bridge", false, "inv", true))
	check("network members", n.Containers, []inventory.NetworkMember{{Container: ctrName, Aliases: []string{"e2e-inv-alias"}}})

	im, err := inv.Image(rig.Image)
	if err != nil {
		t.Fatal(err)
	}
	check("image used by", im.UsedBy, []string{ctrName})
	check("image id", im.ID, c.ImageID)

	p, err := inv.Project("e2einv")
	if err != nil {
		t.Fatal(err)
	}
	check("project service", p.Service("web").Containers, []string{ctrName})

	// Only what the named container uses is listed.
	for _, other := range inv.Networks {
		if other.Name != netName {
			t.Errorf("network %s listed although %s does not use it", other.Name, ctrName)
		}
	}

	// The text form names the same objects.
	stdout, stderr, code := rig.Unroot(t, "--source-host", rig.SourceHost, "inventory", ctrName)
	if code != 0 {
		t.Fatalf("text inventory exit %d: %s", code, stderr)
	}
	for _, want := range []string{ctrName, volName, netName, bindDir, "127.0.0.1:" + strconv.FormatUint(wantPort, 10) + "->80/tcp", "COMPOSE PROJECTS (1)"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("text inventory lacks %q:\n%s", want, stdout)
		}
	}
}

func TestInventoryDiffOfStoppedContainer(t *testing.T) {
	rig := Load(t)
	name := invName("stopped")
	t.Cleanup(func() { _, _ = rig.DockerErr(false, "rm", "-f", name) })
	rig.Docker(t, false, "run", "--name", name, rig.Image, "sh", "-c", "echo x > /e2e-inv-newfile")

	inv := readInventory(t, rig, "--diff", name)
	c := &inv.Containers[0]
	if c.Running || c.State != "exited" {
		t.Errorf("state = %s running=%t, want exited", c.State, c.Running)
	}
	if !slices.Contains(c.Changes, inventory.Change{Kind: "added", Path: "/e2e-inv-newfile"}) {
		t.Errorf("changes = %+v, want /e2e-inv-newfile added", c.Changes)
	}

	// Without --diff the expensive call is not made and nothing is listed.
	inv = readInventory(t, rig, name)
	if inv.Containers[0].Changes != nil {
		t.Errorf("changes without --diff = %+v", inv.Containers[0].Changes)
	}

	// A stopped container is left out of a listing without --all.
	inv = readInventory(t, rig)
	if _, err := inv.Container(name); err == nil {
		t.Errorf("stopped %s listed without --all", name)
	}
	inv = readInventory(t, rig, "--all")
	if _, err := inv.Container(name); err != nil {
		t.Errorf("stopped %s not listed with --all: %v", name, err)
	}
}

func TestInventoryUnknownContainer(t *testing.T) {
	rig := Load(t)
	name := invName("known")
	t.Cleanup(func() { _, _ = rig.DockerErr(false, "rm", "-f", name) })
	rig.Docker(t, false, "create", "--name", name, rig.Image, "true")

	typo := name[:len(name)-2] + name[len(name)-1:] + name[len(name)-2:len(name)-1] // swap the last two letters
	stdout, stderr, code := rig.Unroot(t, "--source-host", rig.SourceHost, "inventory", "--format", "json", typo)
	if code != 1 {
		t.Errorf("exit code = %d, want 1", code)
	}
	if stdout != "" {
		t.Errorf("stdout = %q, want nothing on failure", stdout)
	}
	if !strings.Contains(stderr, fmt.Sprintf("no container named %q; did you mean %q?", typo, name)) {
		t.Errorf("stderr lacks the suggestion:\n%s", stderr)
	}
	if !strings.Contains(stderr, "\nhint: run 'docker ps -a' against the source daemon to see the names") {
		t.Errorf("stderr lacks the hint line:\n%s", stderr)
	}
}

// TestInventoryReadImagesBothDaemons drives the library the planner uses
// against the real daemons: ReadImages must agree with docker image ls, and
// the rootless daemon must be recognised as such.
func TestInventoryReadImagesBothDaemons(t *testing.T) {
	rig := Load(t)
	ctx := t.Context()
	for _, target := range []bool{false, true} {
		host := rig.SourceHost
		if target {
			host = rig.TargetHost
		}
		role := map[bool]string{false: "source", true: "target"}[target]
		api, err := inventory.Dial(ctx, role, host)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = api.Close() })
		// Other tests load and remove images meanwhile: compare snapshots
		// taken back to back, a bounded number of times.
		var (
			imgs      map[string]inventory.Image
			got, want []string
		)
		for range 3 {
			if imgs, err = inventory.ReadImages(ctx, api); err != nil {
				t.Fatal(err)
			}
			want = nil
			if out := rig.Docker(t, target, "image", "ls", "-q", "--no-trunc"); out != "" {
				want = strings.Fields(out)
			}
			slices.Sort(want)
			want = slices.Compact(want)
			if got = slices.Sorted(maps.Keys(imgs)); slices.Equal(got, want) {
				break
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: ReadImages IDs = %v, docker image ls = %v", host, got, want)
		}
		if !target {
			id := rig.Docker(t, false, "image", "inspect", "-f", "{{.Id}}", rig.Image)
			if !slices.Contains(imgs[id].RepoTags, rig.Image) {
				t.Errorf("ReadImages[%s].RepoTags = %v, want %s", id, imgs[id].RepoTags, rig.Image)
			}
		}

		inv, err := inventory.Read(ctx, api, inventory.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if inv.Daemon.Rootless != target {
			t.Errorf("%s: rootless = %t, want %t", host, inv.Daemon.Rootless, target)
		}
		if target && !strings.HasPrefix(inv.Daemon.DockerRootDir, rig.Home) {
			t.Errorf("rootless root dir = %q, want it under %s", inv.Daemon.DockerRootDir, rig.Home)
		}
	}
}
