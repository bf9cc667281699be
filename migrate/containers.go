package migrate

import (
	"fmt"
	"math"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/unroot/unroot/inventory"
)

// dockerSocketPaths are the host paths of the rootful daemon's socket; a bind
// of one of them is rewritten to the rootless daemon's socket.
var dockerSocketPaths = []string{"/var/run/docker.sock", "/run/docker.sock"}

// ConvertOptions say how a source container becomes a target container.
type ConvertOptions struct {
	// Image is the reference the target container is created from: one of
	// the source image's tags, its ID, or the image committed from the
	// source container. Required.
	Image string
	// HostPorts maps a published host port of the source to the host port
	// the target publishes instead (the plan's rewrites); ports not in it
	// keep their number.
	HostPorts map[uint16]uint16
	// DockerSocket is the rootless daemon's socket path on the host
	// (/run/user/UID/docker.sock); a bind of the rootful socket is rewritten
	// to it. Empty leaves such binds alone.
	DockerSocket string
	// ContainerName maps a reference to another source container (an ID in
	// "container:ID" network, pid and ipc modes, a name in links and
	// volumes-from) to that container's name, which its migrated twin
	// carries in the target. Nil keeps references as they are.
	ContainerName func(ref string) string
	// Limits carries cgroup limits (memory, cpu, pids, blkio) over. A
	// rootless daemon only enforces them with cgroup v2 delegation; without
	// it they are dropped with a warning.
	Limits bool
}

// NetworkAttach is a network the target container joins after it is created
// and before it starts: API 1.41 accepts one endpoint at create time.
type NetworkAttach struct {
	Network  string
	Endpoint *network.EndpointSettings
}

// CreateSpec is everything needed to create a target container.
type CreateSpec struct {
	Create client.ContainerCreateOptions
	// Connect lists the networks beyond the first, in order.
	Connect []NetworkAttach
	// Warnings say what did not carry over.
	Warnings []string
}

// ConvertContainer turns a source container into the options that create
// its twin in the rootless daemon: the same name, command, environment,
// user, labels (compose labels included), restart policy, healthcheck, log
// config, mounts, networks with aliases, and ports rewritten per
// o.HostPorts. Whatever cannot carry over is dropped and named in
// Warnings.
func ConvertContainer(c *inventory.Container, o ConvertOptions) (*CreateSpec, error) {
	if o.Image == "" {
		return nil, fmt.Errorf("convert container %s: no image", c.Name)
	}
	spec := &CreateSpec{}
	warn := func(format string, a ...any) {
		spec.Warnings = append(spec.Warnings, fmt.Sprintf(format, a...))
	}

	cfg := &container.Config{
		Hostname:    c.Hostname,
		Domainname:  c.Domainname,
		User:        c.User,
		Tty:         c.Tty,
		OpenStdin:   c.OpenStdin,
		Env:         slices.Clone(c.Env),
		Cmd:         slices.Clone(c.Cmd),
		Entrypoint:  slices.Clone(c.Entrypoint),
		Image:       o.Image,
		WorkingDir:  c.WorkingDir,
		Labels:      cloneMap(c.Labels),
		StopSignal:  c.StopSignal,
		StopTimeout: c.StopTimeout,
	}
	// Docker names an unnamed container's host after its short ID; the new
	// container has a new ID and gets its own default.
	if c.Hostname == shortImageID(c.ID) {
		cfg.Hostname = ""
	}
	if h := c.Healthcheck; h != nil {
		cfg.Healthcheck = &container.HealthConfig{
			Test: slices.Clone(h.Test), Interval: h.Interval, Timeout: h.Timeout,
			StartPeriod: h.StartPeriod, StartInterval: h.StartInterval, Retries: h.Retries,
		}
	}

	hc := &container.HostConfig{
		LogConfig:       container.LogConfig{Type: c.LogConfig.Type, Config: cloneMap(c.LogConfig.Config)},
		NetworkMode:     container.NetworkMode(c.NetworkMode),
		RestartPolicy:   container.RestartPolicy{Name: container.RestartPolicyMode(c.RestartPolicy.Name), MaximumRetryCount: c.RestartPolicy.MaximumRetryCount},
		AutoRemove:      c.AutoRemove,
		VolumeDriver:    c.VolumeDriver,
		VolumesFrom:     slices.Clone(c.VolumesFrom),
		CapAdd:          slices.Clone(c.CapAdd),
		CapDrop:         slices.Clone(c.CapDrop),
		CgroupnsMode:    container.CgroupnsMode(c.CgroupnsMode),
		DNSOptions:      slices.Clone(c.DNSOptions),
		DNSSearch:       slices.Clone(c.DNSSearch),
		ExtraHosts:      slices.Clone(c.ExtraHosts),
		GroupAdd:        slices.Clone(c.GroupAdd),
		IpcMode:         container.IpcMode(c.IpcMode),
		Links:           slices.Clone(c.Links),
		OomScoreAdj:     c.OomScoreAdj,
		PidMode:         container.PidMode(c.PidMode),
		Privileged:      c.Privileged,
		PublishAllPorts: c.PublishAllPorts,
		ReadonlyRootfs:  c.ReadOnly,
		Tmpfs:           cloneMap(c.Tmpfs),
		UTSMode:         container.UTSMode(c.UTSMode),
		UsernsMode:      container.UsernsMode(c.UsernsMode),
		ShmSize:         c.ShmSize,
		Sysctls:         cloneMap(c.Sysctls),
		Runtime:         c.Runtime,
		Init:            c.Init,
	}
	rewriteContainerRefs(hc, o.ContainerName)
	if hc.LogConfig.Type == "" {
		hc.LogConfig.Config = nil
	}
	for _, d := range c.DNS {
		a, err := netip.ParseAddr(d)
		if err != nil {
			warn("dns server %q is not an address: dropped", d)
			continue
		}
		hc.DNS = append(hc.DNS, a)
	}
	for _, s := range c.SecurityOpt {
		if strings.HasPrefix(s, "apparmor") || strings.HasPrefix(s, "label") {
			warn("security option %q is not supported by a rootless daemon: dropped", s)
			continue
		}
		hc.SecurityOpt = append(hc.SecurityOpt, s)
	}
	for _, u := range c.Ulimits {
		hc.Ulimits = append(hc.Ulimits, &container.Ulimit{Name: u.Name, Soft: u.Soft, Hard: u.Hard})
	}
	for _, d := range c.Devices {
		hc.Devices = append(hc.Devices, container.DeviceMapping{PathOnHost: d.PathOnHost, PathInContainer: d.PathInContainer, CgroupPermissions: d.CgroupPermissions})
	}
	for _, d := range c.DeviceRequests {
		hc.DeviceRequests = append(hc.DeviceRequests, container.DeviceRequest{Driver: d.Driver, Count: d.Count, DeviceIDs: slices.Clone(d.DeviceIDs), Capabilities: d.Capabilities})
	}
	// A rootless runc cannot write /proc/sys/kernel/domainname: the
	// container would be created but fail to start.
	if c.Domainname != "" {
		warn("domain name %q dropped: a rootless container cannot set it (set it in the search domains instead)", c.Domainname)
		cfg.Domainname = ""
	}
	if c.MacAddress != "" {
		warn("MAC address %s is not carried over: the rootless daemon assigns one", c.MacAddress)
	}
	if c.CgroupParent != "" {
		warn("cgroup parent %s dropped: the rootless daemon manages its own cgroups", c.CgroupParent)
	}
	if r := c.Resources; r.Limited() {
		if o.Limits {
			hc.Memory, hc.MemoryReservation, hc.MemorySwap = r.Memory, r.MemoryReservation, r.MemorySwap
			hc.NanoCPUs, hc.CPUShares, hc.CPUQuota, hc.CPUPeriod = r.NanoCPUs, r.CPUShares, r.CPUQuota, r.CPUPeriod
			hc.CpusetCpus, hc.CpusetMems, hc.BlkioWeight = r.CpusetCpus, r.CpusetMems, r.BlkioWeight
			if r.PidsLimit != 0 {
				p := r.PidsLimit
				hc.PidsLimit = &p
			}
			if r.OomKillDisable {
				t := true
				hc.OomKillDisable = &t
			}
		} else {
			warn("cgroup limits (memory, cpu, pids) are not enforced without cgroup v2 delegation: dropped")
		}
	}

	ports, exposed, err := convertPorts(c.Ports, o.HostPorts)
	if err != nil {
		return nil, fmt.Errorf("convert container %s: %w", c.Name, err)
	}
	cfg.ExposedPorts, hc.PortBindings = exposed, ports
	if hc.NetworkMode.IsContainer() {
		// The namespace's owner decides these; the daemon refuses them
		// ("conflicting options"), and inspect shows the owner's values.
		cfg.Hostname, cfg.Domainname, cfg.ExposedPorts = "", "", nil
		hc.DNS, hc.DNSSearch, hc.DNSOptions, hc.ExtraHosts, hc.Links = nil, nil, nil, nil, nil
		hc.PortBindings, hc.PublishAllPorts = nil, false
	}

	mounts, binds, mw := convertMounts(c, o.DockerSocket)
	hc.Mounts, hc.Binds = mounts, binds
	spec.Warnings = append(spec.Warnings, mw...)

	nc, connect := convertNetworks(c)
	spec.Create = client.ContainerCreateOptions{Name: c.Name, Config: cfg, HostConfig: hc, NetworkingConfig: nc}
	spec.Connect = connect
	return spec, nil
}

// rewriteContainerRefs points references to other source containers at
// their names: the target twin has another ID. Links come from inspect as
// "/db:/web/alias" and are written back as "db:alias".
func rewriteContainerRefs(hc *container.HostConfig, name func(string) string) {
	if name == nil {
		name = func(s string) string { return s }
	}
	if ref, ok := strings.CutPrefix(string(hc.NetworkMode), "container:"); ok {
		hc.NetworkMode = container.NetworkMode("container:" + name(ref))
	}
	if ref, ok := strings.CutPrefix(string(hc.PidMode), "container:"); ok {
		hc.PidMode = container.PidMode("container:" + name(ref))
	}
	if ref, ok := strings.CutPrefix(string(hc.IpcMode), "container:"); ok {
		hc.IpcMode = container.IpcMode("container:" + name(ref))
	}
	for i, l := range hc.Links {
		target, alias, ok := strings.Cut(l, ":")
		target = strings.TrimPrefix(target, "/")
		if !ok {
			alias = target
		}
		if j := strings.LastIndex(alias, "/"); j >= 0 {
			alias = alias[j+1:]
		}
		hc.Links[i] = name(target) + ":" + alias
	}
	for i, v := range hc.VolumesFrom {
		ref, mode, ok := strings.Cut(v, ":")
		hc.VolumesFrom[i] = name(ref)
		if ok {
			hc.VolumesFrom[i] += ":" + mode
		}
	}
}

// convertPorts builds the exposed set and the host bindings, rewriting host
// ports per hostPorts.
func convertPorts(in []inventory.Port, hostPorts map[uint16]uint16) (network.PortMap, network.PortSet, error) {
	var (
		pm  network.PortMap
		set network.PortSet
	)
	for _, p := range in {
		proto := p.Proto
		if proto == "" {
			proto = "tcp"
		}
		key, ok := network.PortFrom(p.ContainerPort, network.IPProtocol(proto))
		if !ok {
			return nil, nil, fmt.Errorf("port %d/%s: bad protocol", p.ContainerPort, proto)
		}
		if set == nil {
			set = network.PortSet{}
		}
		set[key] = struct{}{}
		if !p.Published {
			continue
		}
		var b network.PortBinding
		if p.HostIP != "" {
			a, err := netip.ParseAddr(p.HostIP)
			if err != nil {
				return nil, nil, fmt.Errorf("port %s: host address: %w", p, err)
			}
			b.HostIP = a
		}
		b.HostPort = p.HostPort
		if n, err := strconv.ParseUint(p.HostPort, 10, 16); err == nil {
			if to, ok := hostPorts[uint16(n)]; ok {
				b.HostPort = strconv.Itoa(int(to))
			}
		}
		if pm == nil {
			pm = network.PortMap{}
		}
		pm[key] = append(pm[key], b)
	}
	return pm, set, nil
}

// convertMounts turns the container's mounts into API mounts (volumes by
// name, tmpfs mounts not already in HostConfig.Tmpfs) and bind strings: binds
// go through HostConfig.Binds like -v, so a missing source is created as it
// was by the rootful daemon. A bind of the rootful docker socket is rewritten
// to dockerSocket.
func convertMounts(c *inventory.Container, dockerSocket string) ([]mount.Mount, []string, []string) {
	var (
		out   []mount.Mount
		binds []string
		warn  []string
	)
	for _, m := range c.Mounts {
		switch m.Type {
		case inventory.MountVolume:
			mm := mount.Mount{Type: mount.TypeVolume, Source: m.Name, Target: m.Destination, ReadOnly: !m.RW}
			out = append(out, mm)
		case inventory.MountBind:
			src := m.Source
			if dockerSocket != "" && slices.Contains(dockerSocketPaths, src) {
				src = dockerSocket
			}
			opts := []string{"rw"}
			if !m.RW {
				opts[0] = "ro"
			}
			if m.Propagation != "" && m.Propagation != string(mount.PropagationRPrivate) {
				opts = append(opts, m.Propagation)
			}
			if hasSELinuxRelabel(m.Mode) {
				warn = append(warn, fmt.Sprintf("bind %s: SELinux relabel option %q dropped", m.Destination, m.Mode))
			}
			binds = append(binds, src+":"+m.Destination+":"+strings.Join(opts, ","))
		case inventory.MountTmpfs:
			if _, ok := c.Tmpfs[m.Destination]; ok {
				continue
			}
			mm := mount.Mount{Type: mount.TypeTmpfs, Target: m.Destination, ReadOnly: !m.RW}
			if opts := parseTmpfsOptions(m.Options); opts != nil {
				mm.TmpfsOptions = opts
			}
			out = append(out, mm)
		default:
			warn = append(warn, fmt.Sprintf("mount %s of type %q is not supported: dropped", m.Destination, m.Type))
		}
	}
	return out, binds, warn
}

func hasSELinuxRelabel(mode string) bool {
	for _, o := range strings.Split(mode, ",") {
		if o == "z" || o == "Z" {
			return true
		}
	}
	return false
}

// parseTmpfsOptions reads "size=64m,mode=1777" into API options.
func parseTmpfsOptions(s string) *mount.TmpfsOptions {
	if s == "" {
		return nil
	}
	var o mount.TmpfsOptions
	for _, kv := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "size":
			if n, ok := parseSize(v); ok {
				o.SizeBytes = n
			}
		case "mode":
			if n, err := strconv.ParseUint(v, 8, 32); err == nil && n <= 0o7777 {
				o.Mode = os.FileMode(n)
			}
		}
	}
	if o.SizeBytes == 0 && o.Mode == 0 {
		return nil
	}
	return &o
}

// convertNetworks puts the container's primary network (the one named by
// its network mode, else the first) into the create request and returns
// the others for NetworkConnect.
func convertNetworks(c *inventory.Container) (*network.NetworkingConfig, []NetworkAttach) {
	if len(c.Networks) == 0 {
		return nil, nil
	}
	mode := c.NetworkMode
	if mode == "" || mode == "default" {
		mode = "bridge"
	}
	switch {
	case mode == "host" || mode == "none" || strings.HasPrefix(mode, "container:"):
		return nil, nil
	}
	primary := 0
	for i, n := range c.Networks {
		if n.Name == mode {
			primary = i
			break
		}
	}
	nc := &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
		c.Networks[primary].Name: endpoint(c.Networks[primary]),
	}}
	var rest []NetworkAttach
	for i, n := range c.Networks {
		if i != primary {
			rest = append(rest, NetworkAttach{Network: n.Name, Endpoint: endpoint(n)})
		}
	}
	return nc, rest
}

// endpoint copies the user-given settings of an attachment: aliases, static
// addresses, links, driver options. The default bridge takes no aliases.
func endpoint(n inventory.NetworkAttachment) *network.EndpointSettings {
	es := &network.EndpointSettings{DriverOpts: cloneMap(n.DriverOpts)}
	if n.Name != "bridge" {
		es.Aliases = slices.Clone(n.Aliases)
		es.Links = slices.Clone(n.Links)
	}
	var ipam network.EndpointIPAMConfig
	if a, err := netip.ParseAddr(n.IPv4Address); err == nil {
		ipam.IPv4Address = a
	}
	if a, err := netip.ParseAddr(n.IPv6Address); err == nil {
		ipam.IPv6Address = a
	}
	if ipam.IPv4Address.IsValid() || ipam.IPv6Address.IsValid() {
		es.IPAMConfig = &ipam
	}
	return es
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// parseSize reads a tmpfs size such as "65536", "64k", "64m" or "1g".
func parseSize(s string) (int64, bool) {
	mult := int64(1)
	if s != "" {
		switch s[len(s)-1] {
		case 'k', 'K':
			mult = 1 << 10
		case 'm', 'M':
			mult = 1 << 20
		case 'g', 'G':
			mult = 1 << 30
		}
		if mult > 1 {
			s = s[:len(s)-1]
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, false
	}
	return n * mult, true
}
