package migrate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/system"
	"github.com/moby/moby/api/types/volume"
	"github.com/moby/moby/client"

	"github.com/unroot/unroot/inventory"
)

// fakeDaemon is an [inventory.API] over typed Engine API values that a test
// builds with addContainer and friends. Inspect results carry Raw JSON
// marshalled from the value, the way the real client returns the body.
type fakeDaemon struct {
	version    string
	info       system.Info
	containers []container.InspectResponse
	diffs      map[string][]container.FilesystemChange // by container name
	images     []image.InspectResponse
	volumes    []volume.Volume
	networks   []network.Inspect
}

var _ inventory.API = (*fakeDaemon)(nil)

// testImageID is the image every container of a fake runs unless told.
var testImageID = "sha256:" + strings.Repeat("ab", 32)

func newFakeDaemon(rootless bool) *fakeDaemon {
	f := &fakeDaemon{
		version: "1.47",
		info: system.Info{
			ServerVersion: "27.5.1", Driver: "overlay2", CgroupDriver: "systemd", CgroupVersion: "2",
			DockerRootDir: "/var/lib/docker", SecurityOptions: []string{"name=seccomp,profile=builtin", "name=cgroupns"},
		},
		diffs: map[string][]container.FilesystemChange{},
	}
	if rootless {
		f.info.SecurityOptions = append(f.info.SecurityOptions, "name=rootless")
		f.info.DockerRootDir = "/home/alice/.local/share/docker"
	}
	for _, n := range []string{"bridge", "host", "none"} {
		f.addNetwork(n, n)
	}
	return f
}

func fakeID(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func (f *fakeDaemon) addNetwork(name, driver string) *network.Inspect {
	f.networks = append(f.networks, network.Inspect{Network: network.Network{Name: name, ID: fakeID("net " + name), Driver: driver, Scope: "local", EnableIPv4: true}})
	return &f.networks[len(f.networks)-1]
}

func (f *fakeDaemon) network(name string) *network.Inspect {
	for i := range f.networks {
		if f.networks[i].Name == name || f.networks[i].ID == name {
			return &f.networks[i]
		}
	}
	return nil
}

func (f *fakeDaemon) addVolume(name, driver string, opts map[string]string) {
	f.volumes = append(f.volumes, volume.Volume{Name: name, Driver: driver, Options: opts, Scope: "local",
		Mountpoint: filepath.Join(f.info.DockerRootDir, "volumes", name, "_data")})
}

func (f *fakeDaemon) volume(name string) *volume.Volume {
	for i := range f.volumes {
		if f.volumes[i].Name == name {
			return &f.volumes[i]
		}
	}
	return nil
}

func (f *fakeDaemon) addImage(id string, size int64, tags ...string) {
	f.images = append(f.images, image.InspectResponse{ID: id, RepoTags: tags, Size: size, Os: "linux", Architecture: "amd64"})
}

func (f *fakeDaemon) image(id string) *image.InspectResponse {
	for i := range f.images {
		if f.images[i].ID == id || strings.TrimPrefix(f.images[i].ID, "sha256:") == id {
			return &f.images[i]
		}
	}
	return nil
}

// ctrOpt changes a container before it is added.
type ctrOpt func(*container.InspectResponse)

// addContainer adds a running container on the default bridge with the test
// image; opts change it. Named volumes and networks it uses are created
// (local driver, bridge) when the fake does not have them yet.
func (f *fakeDaemon) addContainer(name string, opts ...ctrOpt) {
	c := container.InspectResponse{
		ID: fakeID("ctr " + name), Name: "/" + name, Image: testImageID, Created: "2025-01-02T03:04:05Z",
		State:      &container.State{Status: container.StateRunning, Running: true},
		Config:     &container.Config{Image: "busybox:latest", Labels: map[string]string{}},
		HostConfig: &container.HostConfig{NetworkMode: "bridge", PortBindings: network.PortMap{}},
		NetworkSettings: &container.NetworkSettings{
			Networks: map[string]*network.EndpointSettings{"bridge": {}},
		},
	}
	for _, o := range opts {
		o(&c)
	}
	if f.image(c.Image) == nil && !strings.HasPrefix(c.Image, "sha256:dead") {
		f.addImage(c.Image, 4<<20, c.Config.Image)
	}
	for _, m := range c.Mounts {
		if m.Type == mount.TypeVolume && f.volume(m.Name) == nil {
			f.addVolume(m.Name, "local", nil)
		}
	}
	for n := range c.NetworkSettings.Networks {
		if f.network(n) == nil {
			f.addNetwork(n, "bridge")
		}
	}
	f.containers = append(f.containers, c)
}

func publish(port, hostIP, hostPort string) ctrOpt {
	return func(c *container.InspectResponse) {
		var ip netip.Addr
		if hostIP != "" {
			ip = netip.MustParseAddr(hostIP)
		}
		p := network.MustParsePort(port)
		c.HostConfig.PortBindings[p] = append(c.HostConfig.PortBindings[p], network.PortBinding{HostIP: ip, HostPort: hostPort})
	}
}

func bindMount(src, dst string) ctrOpt {
	return func(c *container.InspectResponse) {
		c.Mounts = append(c.Mounts, container.MountPoint{Type: mount.TypeBind, Source: src, Destination: dst, RW: true})
	}
}

func volumeMount(name, dst string) ctrOpt {
	return func(c *container.InspectResponse) {
		c.Mounts = append(c.Mounts, container.MountPoint{Type: mount.TypeVolume, Name: name, Destination: dst, RW: true, Driver: "local"})
	}
}

// onNetwork attaches the container to network name instead of bridge.
func onNetwork(name string) ctrOpt {
	return func(c *container.InspectResponse) {
		c.HostConfig.NetworkMode = container.NetworkMode(name)
		c.NetworkSettings.Networks = map[string]*network.EndpointSettings{name: {}}
	}
}

func hostConfig(fn func(*container.HostConfig)) ctrOpt {
	return func(c *container.InspectResponse) { fn(c.HostConfig) }
}

func composeService(project, service, dependsOn string) ctrOpt {
	return func(c *container.InspectResponse) {
		c.Config.Labels[inventory.LabelProject] = project
		c.Config.Labels[inventory.LabelService] = service
		c.Config.Labels[inventory.LabelContainerNumber] = "1"
		if dependsOn != "" {
			c.Config.Labels[inventory.LabelDependsOn] = dependsOn
		}
	}
}

type fakeNotFound struct{ what string }

func (e fakeNotFound) Error() string { return "Error: No such " + e.what }
func (fakeNotFound) NotFound()       {}

func (f *fakeDaemon) ClientVersion() string { return f.version }

func (f *fakeDaemon) Info(context.Context, client.InfoOptions) (client.SystemInfoResult, error) {
	return client.SystemInfoResult{Info: f.info}, nil
}

func (f *fakeDaemon) ContainerList(_ context.Context, o client.ContainerListOptions) (client.ContainerListResult, error) {
	var r client.ContainerListResult
	for _, c := range f.containers {
		if !o.All && !c.State.Running {
			continue
		}
		r.Items = append(r.Items, container.Summary{ID: c.ID, Names: []string{c.Name}, Image: c.Config.Image, ImageID: c.Image,
			Labels: c.Config.Labels, State: c.State.Status, Mounts: c.Mounts})
	}
	return r, nil
}

func (f *fakeDaemon) container(ref string) *container.InspectResponse {
	for i := range f.containers {
		if f.containers[i].ID == ref || f.containers[i].Name == "/"+strings.TrimPrefix(ref, "/") {
			return &f.containers[i]
		}
	}
	return nil
}

func (f *fakeDaemon) ContainerInspect(_ context.Context, id string, _ client.ContainerInspectOptions) (client.ContainerInspectResult, error) {
	c := f.container(id)
	if c == nil {
		return client.ContainerInspectResult{}, fakeNotFound{"container: " + id}
	}
	raw, err := json.Marshal(c)
	if err != nil {
		return client.ContainerInspectResult{}, err
	}
	// Decode the JSON like the client does, so the plan never shares
	// memory with the fake.
	var r client.ContainerInspectResult
	err = json.Unmarshal(raw, &r.Container)
	r.Raw = raw
	return r, err
}

func (f *fakeDaemon) ContainerDiff(_ context.Context, id string, _ client.ContainerDiffOptions) (client.ContainerDiffResult, error) {
	c := f.container(id)
	if c == nil {
		return client.ContainerDiffResult{}, fakeNotFound{"container: " + id}
	}
	return client.ContainerDiffResult{Changes: f.diffs[strings.TrimPrefix(c.Name, "/")]}, nil
}

func (f *fakeDaemon) ImageList(context.Context, client.ImageListOptions) (client.ImageListResult, error) {
	var r client.ImageListResult
	for _, im := range f.images {
		r.Items = append(r.Items, image.Summary{ID: im.ID, RepoTags: im.RepoTags, Size: im.Size})
	}
	return r, nil
}

func (f *fakeDaemon) ImageInspect(_ context.Context, id string, _ ...client.ImageInspectOption) (client.ImageInspectResult, error) {
	im := f.image(id)
	if im == nil {
		return client.ImageInspectResult{}, fakeNotFound{"image: " + id}
	}
	return client.ImageInspectResult{InspectResponse: *im}, nil
}

func (f *fakeDaemon) VolumeList(context.Context, client.VolumeListOptions) (client.VolumeListResult, error) {
	return client.VolumeListResult{Items: append([]volume.Volume(nil), f.volumes...)}, nil
}

func (f *fakeDaemon) VolumeInspect(_ context.Context, name string, _ client.VolumeInspectOptions) (client.VolumeInspectResult, error) {
	v := f.volume(name)
	if v == nil {
		return client.VolumeInspectResult{}, fakeNotFound{"volume: " + name}
	}
	raw, err := json.Marshal(v)
	return client.VolumeInspectResult{Volume: *v, Raw: raw}, err
}

func (f *fakeDaemon) NetworkList(context.Context, client.NetworkListOptions) (client.NetworkListResult, error) {
	var r client.NetworkListResult
	for _, n := range f.networks {
		r.Items = append(r.Items, network.Summary{Network: n.Network})
	}
	return r, nil
}

func (f *fakeDaemon) NetworkInspect(_ context.Context, id string, _ client.NetworkInspectOptions) (client.NetworkInspectResult, error) {
	n := f.network(id)
	if n == nil {
		return client.NetworkInspectResult{}, fakeNotFound{"network: " + id}
	}
	raw, err := json.Marshal(n)
	return client.NetworkInspectResult{Network: *n, Raw: raw}, err
}

// loadFixtureDaemon builds a fake from a directory of recorded inspect JSON
// (testdata/inventory/api1.41 layout: info.json, container-*.json,
// image-*.json, volume-*.json, network-*.json, changes-NAME.json).
func loadFixtureDaemon(t testing.TB, dir string) *fakeDaemon {
	t.Helper()
	f := &fakeDaemon{version: "1.41", diffs: map[string][]container.FilesystemChange{}}
	decode := func(name string, v any) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	decode("info.json", &f.info)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		name := e.Name()
		switch {
		case strings.HasPrefix(name, "container-"):
			var c container.InspectResponse
			decode(name, &c)
			f.containers = append(f.containers, c)
		case strings.HasPrefix(name, "changes-"):
			var cs []container.FilesystemChange
			decode(name, &cs)
			f.diffs[strings.TrimSuffix(strings.TrimPrefix(name, "changes-"), ".json")] = cs
		case strings.HasPrefix(name, "image-"):
			var im image.InspectResponse
			decode(name, &im)
			f.images = append(f.images, im)
		case strings.HasPrefix(name, "volume-"):
			var v volume.Volume
			decode(name, &v)
			f.volumes = append(f.volumes, v)
		case strings.HasPrefix(name, "network-"):
			var n network.Inspect
			decode(name, &n)
			f.networks = append(f.networks, n)
		}
	}
	return f
}
