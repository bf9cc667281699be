package inventory

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/volume"
	"github.com/moby/moby/client"
)

// fakeAPI serves recorded daemon JSON from a testdata directory, decoding it
// the way github.com/moby/moby/client v0.6.3 does.
type fakeAPI struct {
	version    string
	info       []byte
	containers []byte
	images     []byte
	volumes    []byte
	networks   []byte
	inspect    map[string][]byte // container name or ID → inspect JSON
	changes    map[string][]byte // container name → changes JSON
	image      map[string][]byte // image ID (with and without sha256:)
	volume     map[string][]byte // volume name
	network    map[string][]byte // network name or ID
	calls      []string
}

type notFoundErr struct{ what string }

func (e notFoundErr) Error() string { return "Error: No such " + e.what }
func (notFoundErr) NotFound()       {}

func loadFake(t testing.TB, dir, version string) *fakeAPI {
	t.Helper()
	f := &fakeAPI{
		version: version,
		inspect: map[string][]byte{}, changes: map[string][]byte{},
		image: map[string][]byte{}, volume: map[string][]byte{}, network: map[string][]byte{},
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	f.info = read("info.json")
	f.containers = read("containers.json")
	f.images = read("images.json")
	f.volumes = read("volumes.json")
	f.networks = read("networks.json")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		name := e.Name()
		key := strings.TrimSuffix(name, ".json")
		var head struct{ ID, Id, Name string }
		switch {
		case strings.HasPrefix(name, "container-"):
			b := read(name)
			if err := json.Unmarshal(b, &head); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			f.inspect[head.Id] = b
			f.inspect[strings.TrimPrefix(head.Name, "/")] = b
		case strings.HasPrefix(name, "changes-"):
			f.changes[strings.TrimPrefix(key, "changes-")] = read(name)
		case strings.HasPrefix(name, "image-"):
			b := read(name)
			if err := json.Unmarshal(b, &head); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			f.image[head.Id] = b
			f.image[strings.TrimPrefix(head.Id, "sha256:")] = b
		case strings.HasPrefix(name, "volume-"):
			f.volume[strings.TrimPrefix(key, "volume-")] = read(name)
		case strings.HasPrefix(name, "network-"):
			b := read(name)
			if err := json.Unmarshal(b, &head); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			f.network[head.Id] = b
			f.network[head.Name] = b
		}
	}
	return f
}

func (f *fakeAPI) ClientVersion() string { return f.version }

func (f *fakeAPI) Info(ctx context.Context, _ client.InfoOptions) (client.SystemInfoResult, error) {
	var r client.SystemInfoResult
	err := json.Unmarshal(f.info, &r.Info)
	return r, err
}

func (f *fakeAPI) ContainerList(ctx context.Context, o client.ContainerListOptions) (client.ContainerListResult, error) {
	f.calls = append(f.calls, fmt.Sprintf("ContainerList all=%t", o.All))
	var items []container.Summary
	if err := json.Unmarshal(f.containers, &items); err != nil {
		return client.ContainerListResult{}, err
	}
	if !o.All {
		var running []container.Summary
		for _, s := range items {
			if s.State == container.StateRunning {
				running = append(running, s)
			}
		}
		items = running
	}
	return client.ContainerListResult{Items: items}, nil
}

func (f *fakeAPI) ContainerInspect(ctx context.Context, id string, _ client.ContainerInspectOptions) (client.ContainerInspectResult, error) {
	f.calls = append(f.calls, "ContainerInspect "+id)
	b, ok := f.inspect[id]
	if !ok {
		return client.ContainerInspectResult{}, notFoundErr{"container: " + id}
	}
	var r client.ContainerInspectResult
	if err := json.Unmarshal(b, &r.Container); err != nil {
		return r, err
	}
	r.Raw = b
	return r, nil
}

func (f *fakeAPI) ContainerDiff(ctx context.Context, id string, _ client.ContainerDiffOptions) (client.ContainerDiffResult, error) {
	f.calls = append(f.calls, "ContainerDiff "+id)
	var head struct{ Name string }
	if b, ok := f.inspect[id]; ok {
		_ = json.Unmarshal(b, &head)
	}
	b, ok := f.changes[strings.TrimPrefix(head.Name, "/")]
	if !ok {
		return client.ContainerDiffResult{}, nil
	}
	var r client.ContainerDiffResult
	err := json.Unmarshal(b, &r.Changes)
	return r, err
}

func (f *fakeAPI) ImageList(ctx context.Context, _ client.ImageListOptions) (client.ImageListResult, error) {
	var r client.ImageListResult
	err := json.Unmarshal(f.images, &r.Items)
	return r, err
}

func (f *fakeAPI) ImageInspect(ctx context.Context, id string, _ ...client.ImageInspectOption) (client.ImageInspectResult, error) {
	f.calls = append(f.calls, "ImageInspect "+id)
	b, ok := f.image[id]
	if !ok {
		return client.ImageInspectResult{}, notFoundErr{"image: " + id}
	}
	var r client.ImageInspectResult
	err := json.Unmarshal(b, &r)
	return r, err
}

func (f *fakeAPI) VolumeList(ctx context.Context, _ client.VolumeListOptions) (client.VolumeListResult, error) {
	var l volume.ListResponse
	if err := json.Unmarshal(f.volumes, &l); err != nil {
		return client.VolumeListResult{}, err
	}
	return client.VolumeListResult{Items: l.Volumes, Warnings: l.Warnings}, nil
}

func (f *fakeAPI) VolumeInspect(ctx context.Context, name string, _ client.VolumeInspectOptions) (client.VolumeInspectResult, error) {
	f.calls = append(f.calls, "VolumeInspect "+name)
	b, ok := f.volume[name]
	if !ok {
		return client.VolumeInspectResult{}, notFoundErr{"volume: " + name}
	}
	var r client.VolumeInspectResult
	err := json.Unmarshal(b, &r.Volume)
	r.Raw = b
	return r, err
}

func (f *fakeAPI) NetworkList(ctx context.Context, _ client.NetworkListOptions) (client.NetworkListResult, error) {
	var r client.NetworkListResult
	err := json.Unmarshal(f.networks, &r.Items)
	return r, err
}

func (f *fakeAPI) NetworkInspect(ctx context.Context, id string, _ client.NetworkInspectOptions) (client.NetworkInspectResult, error) {
	f.calls = append(f.calls, "NetworkInspect "+id)
	b, ok := f.network[id]
	if !ok {
		return client.NetworkInspectResult{}, notFoundErr{"network: " + id}
	}
	var r client.NetworkInspectResult
	err := json.Unmarshal(b, &r.Network)
	r.Raw = b
	return r, err
}

var _ API = (*fakeAPI)(nil)
