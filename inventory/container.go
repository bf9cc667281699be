package inventory

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// legacyInspect holds the inspect fields that daemons before API 1.44 send
// but the current types dropped.
type legacyInspect struct {
	Config struct {
		MacAddress string
	}
}

// containerFromInspect converts an inspect result. Problems that do not stop
// the container from being described (an unreadable label) come back as
// warnings.
func containerFromInspect(res client.ContainerInspectResult) (Container, []string) {
	r := res.Container
	c := Container{
		ID:   r.ID,
		Name: strings.TrimPrefix(r.Name, "/"),
		// The daemon calls it Image; it is the image ID.
		ImageID: r.Image,
		Raw:     res.Raw,
	}
	var warns []string
	if t, err := time.Parse(time.RFC3339Nano, r.Created); err == nil {
		c.Created = t.UTC()
	}
	if s := r.State; s != nil {
		c.State = string(s.Status)
		c.Running = s.Running
		c.ExitCode = s.ExitCode
		if s.Health != nil && s.Health.Status != container.NoHealthcheck {
			c.Health = string(s.Health.Status)
		}
	}
	if cfg := r.Config; cfg != nil {
		c.Image = cfg.Image
		c.Entrypoint = nilIfEmpty(cfg.Entrypoint)
		c.Cmd = nilIfEmpty(cfg.Cmd)
		c.Env = nilIfEmpty(cfg.Env)
		c.User = cfg.User
		c.WorkingDir = cfg.WorkingDir
		c.Hostname = cfg.Hostname
		c.Domainname = cfg.Domainname
		c.Tty = cfg.Tty
		c.OpenStdin = cfg.OpenStdin
		c.Labels = emptyToNil(cfg.Labels)
		c.StopSignal = cfg.StopSignal
		c.StopTimeout = cfg.StopTimeout
		if h := cfg.Healthcheck; h != nil {
			c.Healthcheck = &Healthcheck{
				Test:          nilIfEmpty(h.Test),
				Interval:      h.Interval,
				Timeout:       h.Timeout,
				StartPeriod:   h.StartPeriod,
				StartInterval: h.StartInterval,
				Retries:       h.Retries,
			}
		}
		ci, err := composeInfo(cfg.Labels)
		if err != nil {
			warns = append(warns, fmt.Sprintf("container %s: label %s: %v", c.Name, LabelDependsOn, err))
		}
		c.Compose = ci
	}
	if len(res.Raw) > 0 {
		var legacy legacyInspect
		if err := json.Unmarshal(res.Raw, &legacy); err == nil {
			c.MacAddress = legacy.Config.MacAddress
		}
	}

	var exposed network.PortSet
	if r.Config != nil {
		exposed = r.Config.ExposedPorts
	}
	var current network.PortMap
	if r.NetworkSettings != nil {
		current = r.NetworkSettings.Ports
	}
	if hc := r.HostConfig; hc != nil {
		hostConfigInto(&c, hc)
		c.Ports = portsOf(exposed, hc.PortBindings, current, hc.PublishAllPorts)
		c.Mounts = mountsOf(r.Mounts, hc)
	} else {
		c.Ports = portsOf(exposed, nil, current, false)
		c.Mounts = mountsOf(r.Mounts, &container.HostConfig{})
	}
	if r.NetworkSettings != nil {
		c.Networks = attachmentsOf(r.NetworkSettings.Networks, c.ID)
	}
	return c, warns
}

func hostConfigInto(c *Container, hc *container.HostConfig) {
	c.RestartPolicy = RestartPolicy{Name: string(hc.RestartPolicy.Name), MaximumRetryCount: hc.RestartPolicy.MaximumRetryCount}
	c.AutoRemove = hc.AutoRemove
	c.LogConfig = LogConfig{Type: hc.LogConfig.Type, Config: emptyToNil(hc.LogConfig.Config)}
	c.NetworkMode = string(hc.NetworkMode)
	c.PublishAllPorts = hc.PublishAllPorts
	res := hc.Resources
	c.Resources = Resources{
		Memory:            res.Memory,
		MemoryReservation: res.MemoryReservation,
		MemorySwap:        res.MemorySwap,
		NanoCPUs:          res.NanoCPUs,
		CPUShares:         res.CPUShares,
		CPUQuota:          res.CPUQuota,
		CPUPeriod:         res.CPUPeriod,
		CpusetCpus:        res.CpusetCpus,
		CpusetMems:        res.CpusetMems,
		BlkioWeight:       res.BlkioWeight,
	}
	// 0 and -1 both mean unlimited; keep one spelling.
	if res.PidsLimit != nil && *res.PidsLimit > 0 {
		c.Resources.PidsLimit = *res.PidsLimit
	}
	if res.OomKillDisable != nil {
		c.Resources.OomKillDisable = *res.OomKillDisable
	}
	c.CgroupParent = res.CgroupParent
	for _, d := range res.Devices {
		c.Devices = append(c.Devices, Device{PathOnHost: d.PathOnHost, PathInContainer: d.PathInContainer, CgroupPermissions: d.CgroupPermissions})
	}
	for _, d := range res.DeviceRequests {
		c.DeviceRequests = append(c.DeviceRequests, DeviceRequest{Driver: d.Driver, Count: d.Count, DeviceIDs: nilIfEmpty(d.DeviceIDs), Capabilities: nilIfEmpty(d.Capabilities)})
	}
	for _, u := range res.Ulimits {
		if u != nil {
			c.Ulimits = append(c.Ulimits, Ulimit{Name: u.Name, Soft: u.Soft, Hard: u.Hard})
		}
	}
	c.CapAdd = nilIfEmpty(hc.CapAdd)
	c.CapDrop = nilIfEmpty(hc.CapDrop)
	c.Privileged = hc.Privileged
	c.PidMode = string(hc.PidMode)
	c.IpcMode = string(hc.IpcMode)
	c.UTSMode = string(hc.UTSMode)
	c.UsernsMode = string(hc.UsernsMode)
	c.CgroupnsMode = string(hc.CgroupnsMode)
	c.Sysctls = emptyToNil(hc.Sysctls)
	c.SecurityOpt = nilIfEmpty(hc.SecurityOpt)
	c.Tmpfs = emptyToNil(hc.Tmpfs)
	c.ExtraHosts = nilIfEmpty(hc.ExtraHosts)
	for _, a := range hc.DNS {
		c.DNS = append(c.DNS, a.String())
	}
	c.DNSSearch = nilIfEmpty(hc.DNSSearch)
	c.DNSOptions = nilIfEmpty(hc.DNSOptions)
	c.Init = hc.Init
	c.ShmSize = hc.ShmSize
	c.ReadOnly = hc.ReadonlyRootfs
	c.GroupAdd = nilIfEmpty(hc.GroupAdd)
	c.OomScoreAdj = hc.OomScoreAdj
	c.VolumeDriver = hc.VolumeDriver
	c.VolumesFrom = nilIfEmpty(hc.VolumesFrom)
	c.Links = nilIfEmpty(hc.Links)
	c.Runtime = hc.Runtime
}

// mountsOf lists the container's mounts by destination: what the daemon
// reports mounted, plus --tmpfs mounts, which it does not report.
func mountsOf(mps []container.MountPoint, hc *container.HostConfig) []Mount {
	var out []Mount
	for _, mp := range mps {
		m := Mount{
			Type:        string(mp.Type),
			Name:        mp.Name,
			Source:      mp.Source,
			Destination: mp.Destination,
			RW:          mp.RW,
			Mode:        mp.Mode,
			Propagation: string(mp.Propagation),
			Driver:      mp.Driver,
		}
		if m.Type == MountVolume {
			m.Anonymous = looksAnonymous(m.Name)
		}
		if m.Type == MountTmpfs {
			m.Options = tmpfsOptions(hc.Mounts, m.Destination)
		}
		out = append(out, m)
	}
	for dst, opts := range hc.Tmpfs {
		if slices.ContainsFunc(out, func(m Mount) bool { return m.Destination == dst }) {
			continue
		}
		out = append(out, Mount{Type: MountTmpfs, Destination: dst, RW: !hasOption(opts, "ro"), Options: opts})
	}
	slices.SortFunc(out, func(a, b Mount) int { return cmp.Compare(a.Destination, b.Destination) })
	return out
}

// tmpfsOptions renders the options of a --mount type=tmpfs mount at dst in
// the --tmpfs syntax.
func tmpfsOptions(ms []mount.Mount, dst string) string {
	for _, m := range ms {
		if m.Type != mount.TypeTmpfs || m.Target != dst || m.TmpfsOptions == nil {
			continue
		}
		var opts []string
		if m.TmpfsOptions.SizeBytes > 0 {
			opts = append(opts, "size="+strconv.FormatInt(m.TmpfsOptions.SizeBytes, 10))
		}
		if m.TmpfsOptions.Mode != 0 {
			// Docker stores the octal mode as plain bits (01777 = 1023),
			// not as os.FileMode's sticky flag.
			opts = append(opts, "mode="+strconv.FormatUint(uint64(m.TmpfsOptions.Mode)&0o7777, 8))
		}
		return strings.Join(opts, ",")
	}
	return ""
}

func hasOption(opts, want string) bool {
	for o := range strings.SplitSeq(opts, ",") {
		if strings.TrimSpace(o) == want {
			return true
		}
	}
	return false
}

// attachmentsOf lists the container's networks by name. Daemons before API
// 1.44 add the container's short ID to the aliases themselves; it is left
// out so that aliases are what the user asked for on every daemon.
func attachmentsOf(eps map[string]*network.EndpointSettings, id string) []NetworkAttachment {
	var out []NetworkAttachment
	for _, name := range slices.Sorted(maps.Keys(eps)) {
		ep := eps[name]
		if ep == nil {
			out = append(out, NetworkAttachment{Name: name})
			continue
		}
		a := NetworkAttachment{
			Name:       name,
			ID:         ep.NetworkID,
			Links:      nilIfEmpty(ep.Links),
			DriverOpts: emptyToNil(ep.DriverOpts),
		}
		for _, al := range ep.Aliases {
			if al != shortID(id) && al != id && !slices.Contains(a.Aliases, al) {
				a.Aliases = append(a.Aliases, al)
			}
		}
		if ep.IPAMConfig != nil {
			if ep.IPAMConfig.IPv4Address.IsValid() {
				a.IPv4Address = ep.IPAMConfig.IPv4Address.String()
			}
			if ep.IPAMConfig.IPv6Address.IsValid() {
				a.IPv6Address = ep.IPAMConfig.IPv6Address.String()
			}
		}
		if len(ep.MacAddress) > 0 {
			a.MacAddress = ep.MacAddress.String()
		}
		if ep.IPAddress.IsValid() {
			a.IPAddress = ep.IPAddress.String()
		}
		out = append(out, a)
	}
	return out
}
