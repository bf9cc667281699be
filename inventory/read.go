package inventory

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/system"
	"github.com/moby/moby/client"
)

// Options selects what [Read] reads.
type Options struct {
	// Containers names the containers to read, by name or (prefix of) ID.
	// Empty means every container, and then every volume and network of the
	// daemon is read too, used or not; otherwise only those the named
	// containers use.
	Containers []string
	// All includes stopped containers when Containers is empty (like
	// docker ps -a). Containers named in Containers are always read.
	All bool
	// Diff reads each container's writable-layer changes into
	// [Container].Changes. It is slow on big containers.
	Diff bool
}

// Read reads the daemon behind api: the containers opts selects with their
// full configuration, and the images, volumes, bind mounts, networks and
// compose projects they use. Unknown container names fail with
// [*NotFoundError]s (joined when several).
func Read(ctx context.Context, api API, opts Options) (*Inventory, error) {
	info, err := api.Info(ctx, client.InfoOptions{})
	if err != nil {
		return nil, fmt.Errorf("read daemon info: %w", err)
	}
	inv := &Inventory{Daemon: daemonOf(info.Info, api.ClientVersion())}

	list, err := api.ContainerList(ctx, client.ContainerListOptions{All: opts.All || len(opts.Containers) > 0})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	ids, err := selectContainers(list.Items, opts.Containers)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		res, err := api.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		if IsNotFound(err) && len(opts.Containers) == 0 {
			// Removed between the listing and now: it is no longer there
			// to migrate.
			inv.Warnings = append(inv.Warnings, fmt.Sprintf("container %s disappeared while being read", shortID(id)))
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("inspect container %s: %w", shortID(id), err)
		}
		c, warns := containerFromInspect(res)
		inv.Warnings = append(inv.Warnings, warns...)
		if opts.Diff {
			d, err := api.ContainerDiff(ctx, id, client.ContainerDiffOptions{})
			if err != nil {
				return nil, fmt.Errorf("diff container %s: %w", c.Name, err)
			}
			c.Changes = changesOf(d.Changes)
		}
		inv.Containers = append(inv.Containers, c)
	}
	slices.SortFunc(inv.Containers, func(a, b Container) int { return cmp.Compare(a.Name, b.Name) })
	whole := len(opts.Containers) == 0

	if inv.Images, err = readUsedImages(ctx, api, inv.Containers); err != nil {
		return nil, err
	}
	if inv.Volumes, err = readVolumes(ctx, api, inv, whole); err != nil {
		return nil, err
	}
	if inv.Networks, err = readNetworks(ctx, api, inv, whole); err != nil {
		return nil, err
	}
	inv.BindMounts = bindMountsOf(inv.Containers)
	inv.Projects = groupProjects(inv.Containers, inv.Volumes, inv.Networks)
	return inv, nil
}

// ReadImages lists every image the daemon behind api has, by ID. The planner
// asks the target daemon with it which images need no copy.
func ReadImages(ctx context.Context, api API) (map[string]Image, error) {
	list, err := api.ImageList(ctx, client.ImageListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	out := make(map[string]Image, len(list.Items))
	for _, s := range list.Items {
		out[s.ID] = Image{
			ID:          s.ID,
			RepoTags:    withoutNone(s.RepoTags),
			RepoDigests: withoutNone(s.RepoDigests),
			Size:        s.Size,
			Created:     time.Unix(s.Created, 0).UTC(),
		}
	}
	return out, nil
}

// withoutNone drops the "<none>:<none>" placeholders old daemons list.
func withoutNone(refs []string) []string {
	var out []string
	for _, r := range refs {
		if !strings.HasPrefix(r, "<none>") {
			out = append(out, r)
		}
	}
	return out
}

func daemonOf(i system.Info, apiVersion string) Daemon {
	d := Daemon{
		Name:            i.Name,
		ServerVersion:   i.ServerVersion,
		APIVersion:      apiVersion,
		OperatingSystem: i.OperatingSystem,
		KernelVersion:   i.KernelVersion,
		Architecture:    i.Architecture,
		DockerRootDir:   i.DockerRootDir,
		StorageDriver:   i.Driver,
		CgroupDriver:    i.CgroupDriver,
		CgroupVersion:   i.CgroupVersion,
		SecurityOptions: i.SecurityOptions,
		DefaultRuntime:  i.DefaultRuntime,
		LoggingDriver:   i.LoggingDriver,
	}
	for _, o := range i.SecurityOptions {
		if o == "name=rootless" {
			d.Rootless = true
		}
	}
	return d
}

// selectContainers resolves names to container IDs, in the order given; with
// no names it returns every listed container.
func selectContainers(list []container.Summary, names []string) ([]string, error) {
	if len(names) == 0 {
		ids := make([]string, len(list))
		for i, s := range list {
			ids[i] = s.ID
		}
		return ids, nil
	}
	var all []string
	for _, s := range list {
		for _, n := range s.Names {
			all = append(all, strings.TrimPrefix(n, "/"))
		}
	}
	var (
		ids  []string
		errs []error
	)
	for _, want := range names {
		id, err := resolveContainer(list, want, all)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return ids, nil
}

func resolveContainer(list []container.Summary, want string, all []string) (string, error) {
	name := strings.TrimPrefix(want, "/")
	for _, s := range list {
		if s.ID == name || slices.Contains(s.Names, "/"+name) {
			return s.ID, nil
		}
	}
	found := ""
	if name != "" && isHex(name) {
		for _, s := range list {
			if strings.HasPrefix(s.ID, name) {
				if found != "" {
					return "", &NotFoundError{Kind: "container", Name: want, Ambiguous: true}
				}
				found = s.ID
			}
		}
	}
	if found != "" {
		return found, nil
	}
	return "", notFound("container", want, all)
}

func changesOf(cs []container.FilesystemChange) []Change {
	if len(cs) == 0 {
		return nil
	}
	out := make([]Change, len(cs))
	for i, c := range cs {
		kind := "modified"
		switch c.Kind {
		case container.ChangeAdd:
			kind = "added"
		case container.ChangeDelete:
			kind = "deleted"
		}
		out[i] = Change{Kind: kind, Path: c.Path}
	}
	slices.SortFunc(out, func(a, b Change) int { return cmp.Compare(a.Path, b.Path) })
	return out
}

// IsNotFound reports a daemon's "no such …" answer. The moby client's HTTP
// errors do not have a NotFound method; containerd's errdefs (which the
// client uses) recognise them by status as well as by interface.
func IsNotFound(err error) bool {
	return err != nil && cerrdefs.IsNotFound(err)
}

func readUsedImages(ctx context.Context, api API, cs []Container) ([]Image, error) {
	users := map[string][]string{}
	var order []string
	for _, c := range cs {
		if c.ImageID == "" {
			continue
		}
		if _, ok := users[c.ImageID]; !ok {
			order = append(order, c.ImageID)
		}
		users[c.ImageID] = append(users[c.ImageID], c.Name)
	}
	out := make([]Image, 0, len(order))
	for _, id := range order {
		res, err := api.ImageInspect(ctx, id)
		if IsNotFound(err) {
			out = append(out, Image{ID: id, Missing: true, UsedBy: users[id]})
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("inspect image %s: %w", shortID(id), err)
		}
		im := imageFromInspect(res)
		im.UsedBy = users[id]
		out = append(out, im)
	}
	slices.SortFunc(out, func(a, b Image) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

func imageFromInspect(res client.ImageInspectResult) Image {
	r := res.InspectResponse
	im := Image{
		ID:           r.ID,
		RepoTags:     withoutNone(r.RepoTags),
		RepoDigests:  withoutNone(r.RepoDigests),
		Size:         r.Size,
		Architecture: r.Architecture,
		OS:           r.Os,
	}
	if t, err := time.Parse(time.RFC3339Nano, r.Created); err == nil {
		im.Created = t.UTC()
	}
	if r.Config != nil {
		im.User = r.Config.User
		im.Volumes = slices.Sorted(maps.Keys(r.Config.Volumes))
	}
	return im
}

func readVolumes(ctx context.Context, api API, inv *Inventory, whole bool) ([]Volume, error) {
	cs := inv.Containers
	list, err := api.VolumeList(ctx, client.VolumeListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list volumes: %w", err)
	}
	users := map[string][]MountUser{}
	for _, c := range cs {
		for _, m := range c.Mounts {
			if m.Type == MountVolume && m.Name != "" {
				users[m.Name] = append(users[m.Name], MountUser{Container: c.Name, Destination: m.Destination, RW: m.RW})
			}
		}
	}
	byName := map[string]Volume{}
	for _, v := range list.Items {
		if whole || users[v.Name] != nil {
			byName[v.Name] = volumeOf(v.Name, v.Driver, v.Options, v.Mountpoint, v.Labels, v.Scope, v.CreatedAt)
		}
	}
	for name := range users {
		if _, ok := byName[name]; ok {
			continue
		}
		// Listed after the volume list was taken, or hidden by a plugin.
		res, err := api.VolumeInspect(ctx, name, client.VolumeInspectOptions{})
		if IsNotFound(err) {
			inv.Warnings = append(inv.Warnings, fmt.Sprintf("volume %s is mounted but the daemon does not have it", name))
			byName[name] = Volume{Name: name, Missing: true, Anonymous: looksAnonymous(name)}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("inspect volume %s: %w", name, err)
		}
		v := res.Volume
		byName[name] = volumeOf(v.Name, v.Driver, v.Options, v.Mountpoint, v.Labels, v.Scope, v.CreatedAt)
	}
	out := make([]Volume, 0, len(byName))
	for name, v := range byName {
		v.UsedBy = users[name]
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b Volume) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

// labelAnonymous marks anonymous volumes on Docker 23 and later.
const labelAnonymous = "com.docker.volume.anonymous"

func volumeOf(name, driver string, options map[string]string, mountpoint string, labels map[string]string, scope, created string) Volume {
	_, anon := labels[labelAnonymous]
	return Volume{
		Name:       name,
		Driver:     driver,
		Options:    emptyToNil(options),
		Mountpoint: mountpoint,
		Labels:     emptyToNil(labels),
		Scope:      scope,
		CreatedAt:  created,
		Anonymous:  anon || looksAnonymous(name),
	}
}

// looksAnonymous reports whether name is one docker generates for -v /path:
// 64 lower-case hex digits.
func looksAnonymous(name string) bool { return len(name) == 64 && isHex(name) }

func nilIfEmpty[S ~[]E, E any](s S) S {
	if len(s) == 0 {
		return nil
	}
	return s
}

func emptyToNil[M ~map[K]V, K comparable, V any](m M) M {
	if len(m) == 0 {
		return nil
	}
	return m
}

// builtinNetworks are the networks every daemon creates itself.
var builtinNetworks = []string{"bridge", "host", "none"}

func readNetworks(ctx context.Context, api API, inv *Inventory, whole bool) ([]Network, error) {
	cs := inv.Containers
	members := map[string][]NetworkMember{}
	for _, c := range cs {
		for _, a := range c.Networks {
			members[a.Name] = append(members[a.Name], NetworkMember{Container: c.Name, Aliases: a.Aliases, IPv4Address: a.IPv4Address, IPv6Address: a.IPv6Address})
		}
	}
	var names []string
	if whole {
		list, err := api.NetworkList(ctx, client.NetworkListOptions{})
		if err != nil {
			return nil, fmt.Errorf("list networks: %w", err)
		}
		for _, n := range list.Items {
			names = append(names, n.Name)
		}
	}
	for n := range members {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	out := make([]Network, 0, len(names))
	for _, name := range names {
		res, err := api.NetworkInspect(ctx, name, client.NetworkInspectOptions{})
		if IsNotFound(err) && members[name] != nil {
			// A stopped container can outlive its network.
			inv.Warnings = append(inv.Warnings, fmt.Sprintf("network %s is used by %s but the daemon does not have it", name, members[name][0].Container))
			out = append(out, Network{Name: name, Missing: true, IPv4: true, Containers: members[name]})
			continue
		}
		if IsNotFound(err) {
			// Listed, then removed before we got to it; nobody selected
			// uses it.
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("inspect network %s: %w", name, err)
		}
		n := networkFromInspect(res)
		n.Containers = members[name]
		out = append(out, n)
	}
	return out, nil
}

func networkFromInspect(res client.NetworkInspectResult) Network {
	r := res.Network
	n := Network{
		Name:        r.Name,
		ID:          r.ID,
		Driver:      r.Driver,
		Scope:       r.Scope,
		Internal:    r.Internal,
		Attachable:  r.Attachable,
		IPv4:        r.EnableIPv4 || !rawHas(res.Raw, "EnableIPv4"),
		IPv6:        r.EnableIPv6,
		Builtin:     slices.Contains(builtinNetworks, r.Name),
		IPAMDriver:  r.IPAM.Driver,
		IPAMOptions: emptyToNil(r.IPAM.Options),
		Options:     emptyToNil(r.Options),
		Labels:      emptyToNil(r.Labels),
	}
	for _, c := range r.IPAM.Config {
		s := Subnet{}
		if c.Subnet.IsValid() {
			s.Subnet = c.Subnet.String()
		}
		if c.Gateway.IsValid() {
			s.Gateway = c.Gateway.String()
		}
		if c.IPRange.IsValid() {
			s.IPRange = c.IPRange.String()
		}
		for k, a := range c.AuxAddress {
			if s.AuxAddress == nil {
				s.AuxAddress = map[string]string{}
			}
			s.AuxAddress[k] = a.String()
		}
		n.IPAM = append(n.IPAM, s)
	}
	return n
}

func bindMountsOf(cs []Container) []BindMount {
	by := map[string][]MountUser{}
	for _, c := range cs {
		for _, m := range c.Mounts {
			if m.Type == MountBind {
				by[m.Source] = append(by[m.Source], MountUser{Container: c.Name, Destination: m.Destination, RW: m.RW})
			}
		}
	}
	out := make([]BindMount, 0, len(by))
	for _, src := range slices.Sorted(maps.Keys(by)) {
		out = append(out, BindMount{Source: src, UsedBy: by[src]})
	}
	return out
}

// rawHas reports whether the top-level JSON object raw has key. Without raw
// JSON it answers true, trusting the decoded value.
func rawHas(raw json.RawMessage, key string) bool {
	if len(raw) == 0 {
		return true
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return true
	}
	_, ok := m[key]
	return ok
}
