package inventory

import (
	"encoding/json"
	"slices"
	"strings"
	"time"
)

// Inventory is what [Read] found on a daemon: the selected containers and
// every image, volume, bind mount, network and compose project they use.
// Slices are sorted by name (images by ID) so output is stable.
type Inventory struct {
	Daemon     Daemon      `json:"daemon"`
	Containers []Container `json:"containers"`
	Images     []Image     `json:"images"`
	Volumes    []Volume    `json:"volumes"`
	BindMounts []BindMount `json:"bind_mounts"`
	Networks   []Network   `json:"networks"`
	Projects   []Project   `json:"projects"`
	// Warnings are problems that did not stop the read, e.g. a compose
	// label that could not be parsed.
	Warnings []string `json:"warnings,omitempty"`
}

// Daemon describes the daemon that was read.
type Daemon struct {
	Name          string `json:"name"`
	ServerVersion string `json:"server_version"`
	// APIVersion is the version negotiated with the daemon, e.g. "1.41".
	APIVersion      string   `json:"api_version"`
	OperatingSystem string   `json:"operating_system"`
	KernelVersion   string   `json:"kernel_version"`
	Architecture    string   `json:"architecture"`
	DockerRootDir   string   `json:"docker_root_dir"`
	StorageDriver   string   `json:"storage_driver"`
	CgroupDriver    string   `json:"cgroup_driver"`
	CgroupVersion   string   `json:"cgroup_version"`
	SecurityOptions []string `json:"security_options,omitempty"`
	// Rootless is true when the daemon runs rootless (its security options
	// include "name=rootless").
	Rootless       bool   `json:"rootless"`
	DefaultRuntime string `json:"default_runtime,omitempty"`
	LoggingDriver  string `json:"logging_driver,omitempty"`
}

// Container is one container with the configuration needed to re-create it.
// Durations and sizes keep the units of the Engine API (nanoseconds, bytes).
type Container struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"` // without the leading "/"
	Created time.Time `json:"created"`
	// State is the daemon's status word: created, running, paused,
	// restarting, removing, exited or dead.
	State    string `json:"state"`
	Running  bool   `json:"running"`
	ExitCode int    `json:"exit_code"`
	// Health is the current health status (starting, healthy, unhealthy),
	// empty when the container has no healthcheck.
	Health string `json:"health,omitempty"`

	// Image is the reference the container was created from, as the user
	// gave it (e.g. "nginx:1.25"); ImageID is the image it actually runs.
	Image   string `json:"image"`
	ImageID string `json:"image_id"`

	Entrypoint []string          `json:"entrypoint,omitempty"`
	Cmd        []string          `json:"cmd,omitempty"`
	Env        []string          `json:"env,omitempty"`
	User       string            `json:"user,omitempty"`
	WorkingDir string            `json:"working_dir,omitempty"`
	Hostname   string            `json:"hostname,omitempty"`
	Domainname string            `json:"domainname,omitempty"`
	MacAddress string            `json:"mac_address,omitempty"` // the configured one (old daemons: Config.MacAddress)
	Tty        bool              `json:"tty,omitempty"`
	OpenStdin  bool              `json:"open_stdin,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	// Compose holds the docker compose labels, nil when the container was not
	// created by compose.
	Compose *ComposeInfo `json:"compose,omitempty"`

	RestartPolicy RestartPolicy `json:"restart_policy"`
	AutoRemove    bool          `json:"auto_remove,omitempty"`
	Healthcheck   *Healthcheck  `json:"healthcheck,omitempty"`
	LogConfig     LogConfig     `json:"log_config"`

	Mounts []Mount `json:"mounts,omitempty"`
	// NetworkMode is HostConfig.NetworkMode: "default", "bridge", "host",
	// "none", a network name, or "container:ID".
	NetworkMode     string              `json:"network_mode"`
	Networks        []NetworkAttachment `json:"networks,omitempty"`
	Ports           []Port              `json:"ports,omitempty"`
	PublishAllPorts bool                `json:"publish_all_ports,omitempty"`

	Resources      Resources         `json:"resources"`
	CapAdd         []string          `json:"cap_add,omitempty"`
	CapDrop        []string          `json:"cap_drop,omitempty"`
	Devices        []Device          `json:"devices,omitempty"`
	DeviceRequests []DeviceRequest   `json:"device_requests,omitempty"`
	Privileged     bool              `json:"privileged,omitempty"`
	PidMode        string            `json:"pid_mode,omitempty"`
	IpcMode        string            `json:"ipc_mode,omitempty"`
	UTSMode        string            `json:"uts_mode,omitempty"`
	UsernsMode     string            `json:"userns_mode,omitempty"`
	CgroupnsMode   string            `json:"cgroupns_mode,omitempty"`
	CgroupParent   string            `json:"cgroup_parent,omitempty"`
	Sysctls        map[string]string `json:"sysctls,omitempty"`
	SecurityOpt    []string          `json:"security_opt,omitempty"`
	// Tmpfs is HostConfig.Tmpfs (--tmpfs): path → mount options. These are
	// also listed in Mounts with type "tmpfs".
	Tmpfs       map[string]string `json:"tmpfs,omitempty"`
	Ulimits     []Ulimit          `json:"ulimits,omitempty"`
	ExtraHosts  []string          `json:"extra_hosts,omitempty"`
	DNS         []string          `json:"dns,omitempty"`
	DNSSearch   []string          `json:"dns_search,omitempty"`
	DNSOptions  []string          `json:"dns_options,omitempty"`
	StopSignal  string            `json:"stop_signal,omitempty"`
	StopTimeout *int              `json:"stop_timeout,omitempty"` // seconds; nil = daemon default
	Init        *bool             `json:"init,omitempty"`
	ShmSize     int64             `json:"shm_size,omitempty"`
	ReadOnly    bool              `json:"read_only,omitempty"` // read-only root filesystem
	GroupAdd    []string          `json:"group_add,omitempty"`
	OomScoreAdj int               `json:"oom_score_adj,omitempty"`
	// VolumeDriver is the default driver for volumes this container creates.
	VolumeDriver string   `json:"volume_driver,omitempty"`
	VolumesFrom  []string `json:"volumes_from,omitempty"`
	Links        []string `json:"links,omitempty"`
	Runtime      string   `json:"runtime,omitempty"`

	// Changes is the writable layer's diff against the image; only read when
	// [Options].Diff is set, nil otherwise.
	Changes []Change `json:"changes,omitempty"`

	// Raw is the daemon's inspect JSON as received, for fields this type
	// does not carry.
	Raw json.RawMessage `json:"raw,omitempty"`
}

// ShortID is the 12-character ID that docker ps shows.
func (c *Container) ShortID() string { return shortID(c.ID) }

// PublishedPorts returns the ports bound on the host, in order.
func (c *Container) PublishedPorts() []Port {
	var out []Port
	for _, p := range c.Ports {
		if p.Published {
			out = append(out, p)
		}
	}
	return out
}

// MountsOfType returns the container's mounts of type t ("volume", "bind",
// "tmpfs"), in destination order.
func (c *Container) MountsOfType(t string) []Mount {
	var out []Mount
	for _, m := range c.Mounts {
		if m.Type == t {
			out = append(out, m)
		}
	}
	return out
}

// VolumeNames returns the names of the volumes the container mounts.
func (c *Container) VolumeNames() []string {
	var out []string
	for _, m := range c.Mounts {
		if m.Type == MountVolume && m.Name != "" && !slices.Contains(out, m.Name) {
			out = append(out, m.Name)
		}
	}
	return out
}

// Network returns the container's attachment to the network named name, or
// nil.
func (c *Container) Network(name string) *NetworkAttachment {
	for i := range c.Networks {
		if c.Networks[i].Name == name {
			return &c.Networks[i]
		}
	}
	return nil
}

// Label returns the value of label key and whether it is set.
func (c *Container) Label(key string) (string, bool) {
	v, ok := c.Labels[key]
	return v, ok
}

// RestartPolicy is the container's restart policy.
type RestartPolicy struct {
	Name              string `json:"name"` // "", "no", "always", "on-failure", "unless-stopped"
	MaximumRetryCount int    `json:"maximum_retry_count,omitempty"`
}

// Healthcheck is the container's healthcheck. Zero durations mean "inherit
// from the image".
type Healthcheck struct {
	// Test is {"NONE"}, {"CMD", args...} or {"CMD-SHELL", command}.
	Test          []string      `json:"test,omitempty"`
	Interval      time.Duration `json:"interval,omitempty"`
	Timeout       time.Duration `json:"timeout,omitempty"`
	StartPeriod   time.Duration `json:"start_period,omitempty"`
	StartInterval time.Duration `json:"start_interval,omitempty"`
	Retries       int           `json:"retries,omitempty"`
}

// LogConfig is the container's logging driver and its options.
type LogConfig struct {
	Type   string            `json:"type"`
	Config map[string]string `json:"config,omitempty"`
}

// Mount types.
const (
	MountVolume = "volume"
	MountBind   = "bind"
	MountTmpfs  = "tmpfs"
)

// Mount is one filesystem mounted into a container.
type Mount struct {
	Type        string `json:"type"`           // "volume", "bind", "tmpfs", ...
	Name        string `json:"name,omitempty"` // volume name
	Source      string `json:"source,omitempty"`
	Destination string `json:"destination"`
	RW          bool   `json:"rw"`
	// Mode is the option string given with -v (e.g. "ro,z"), if any.
	Mode        string `json:"mode,omitempty"`
	Propagation string `json:"propagation,omitempty"`
	Driver      string `json:"driver,omitempty"` // volume driver
	// Options holds tmpfs options ("size=1m,mode=1777") for --tmpfs mounts.
	Options string `json:"options,omitempty"`
	// Anonymous is true for a volume docker named itself (-v /path).
	Anonymous bool `json:"anonymous,omitempty"`
}

// NetworkAttachment is a container's endpoint on one network.
type NetworkAttachment struct {
	Name string `json:"name"`
	ID   string `json:"id,omitempty"`
	// Aliases are the user-given DNS aliases; the container short ID that
	// old daemons add implicitly is left out.
	Aliases []string `json:"aliases,omitempty"`
	// IPv4Address and IPv6Address are the static addresses asked for with
	// --ip / --ip6; empty when the daemon chose.
	IPv4Address string   `json:"ipv4_address,omitempty"`
	IPv6Address string   `json:"ipv6_address,omitempty"`
	Links       []string `json:"links,omitempty"`
	// MacAddress is the endpoint's current MAC address.
	MacAddress string            `json:"mac_address,omitempty"`
	DriverOpts map[string]string `json:"driver_opts,omitempty"`
	// IPAddress is the address the container has now (running containers).
	IPAddress string `json:"ip_address,omitempty"`
}

// Port is one container port, published or only exposed.
type Port struct {
	ContainerPort uint16 `json:"container_port"`
	Proto         string `json:"proto"` // "tcp", "udp" or "sctp"
	// Published says whether the port is bound on the host; when false the
	// port is only exposed.
	Published bool `json:"published"`
	// HostIP is the host address as configured; "" means all addresses.
	HostIP string `json:"host_ip,omitempty"`
	// HostPort is the host port as configured: "8080", a range
	// "8000-8010", or "" for a port the daemon chooses.
	HostPort string `json:"host_port,omitempty"`
	// BoundHostPort is the host port actually in use, for a running
	// container whose HostPort was empty or a range; 0 when unknown.
	BoundHostPort uint16 `json:"bound_host_port,omitempty"`
}

// String formats p like docker ps: "127.0.0.1:8080->80/tcp", or "80/tcp"
// for a port that is only exposed. A host port the daemon will choose but
// has not yet is shown as "*".
func (p Port) String() string {
	cp := formatPortProto(p.ContainerPort, p.Proto)
	if !p.Published {
		return cp
	}
	hp := p.HostPort
	if hp == "" && p.BoundHostPort != 0 {
		hp = formatUint(p.BoundHostPort)
	}
	if hp == "" {
		hp = "*"
	}
	host := hp
	if p.HostIP != "" {
		ip := p.HostIP
		if strings.Contains(ip, ":") {
			ip = "[" + ip + "]"
		}
		host = ip + ":" + hp
	}
	return host + "->" + cp
}

// Resources are the container's cgroup limits; zero means unlimited/default.
type Resources struct {
	Memory            int64  `json:"memory,omitempty"`
	MemoryReservation int64  `json:"memory_reservation,omitempty"`
	MemorySwap        int64  `json:"memory_swap,omitempty"`
	NanoCPUs          int64  `json:"nano_cpus,omitempty"`
	CPUShares         int64  `json:"cpu_shares,omitempty"`
	CPUQuota          int64  `json:"cpu_quota,omitempty"`
	CPUPeriod         int64  `json:"cpu_period,omitempty"`
	CpusetCpus        string `json:"cpuset_cpus,omitempty"`
	CpusetMems        string `json:"cpuset_mems,omitempty"`
	PidsLimit         int64  `json:"pids_limit,omitempty"`
	BlkioWeight       uint16 `json:"blkio_weight,omitempty"`
	OomKillDisable    bool   `json:"oom_kill_disable,omitempty"`
}

// Limited reports whether any limit is set; a rootless daemon can only
// enforce them with cgroup v2 delegation.
func (r Resources) Limited() bool { return r != Resources{} }

// Device is a host device made available in the container.
type Device struct {
	PathOnHost        string `json:"path_on_host"`
	PathInContainer   string `json:"path_in_container"`
	CgroupPermissions string `json:"cgroup_permissions"`
}

// DeviceRequest asks a device driver for devices (e.g. --gpus).
type DeviceRequest struct {
	Driver       string     `json:"driver,omitempty"`
	Count        int        `json:"count,omitempty"`
	DeviceIDs    []string   `json:"device_ids,omitempty"`
	Capabilities [][]string `json:"capabilities,omitempty"`
}

// Ulimit is one resource limit.
type Ulimit struct {
	Name string `json:"name"`
	Soft int64  `json:"soft"`
	Hard int64  `json:"hard"`
}

// Change is one path changed in a container's writable layer.
type Change struct {
	Kind string `json:"kind"` // "modified", "added" or "deleted"
	Path string `json:"path"`
}

// ComposeInfo holds the labels docker compose puts on a container.
type ComposeInfo struct {
	Project         string       `json:"project"`
	Service         string       `json:"service"`
	ContainerNumber int          `json:"container_number,omitempty"`
	OneOff          bool         `json:"oneoff,omitempty"`
	ConfigFiles     []string     `json:"config_files,omitempty"`
	WorkingDir      string       `json:"working_dir,omitempty"`
	DependsOn       []Dependency `json:"depends_on,omitempty"`
	Version         string       `json:"version,omitempty"` // compose version that created it
}

// Image is an image a container uses (or, from [ReadImages], any image).
type Image struct {
	ID          string    `json:"id"`
	RepoTags    []string  `json:"repo_tags,omitempty"`
	RepoDigests []string  `json:"repo_digests,omitempty"`
	Size        int64     `json:"size"`
	Created     time.Time `json:"created"`
	// User and Volumes come from the image config: the user a container
	// runs as when it sets none, and the paths that get anonymous volumes.
	User         string   `json:"user,omitempty"`
	Volumes      []string `json:"volumes,omitempty"`
	Architecture string   `json:"architecture,omitempty"`
	OS           string   `json:"os,omitempty"`
	// Missing is true when a container refers to an image the daemon no
	// longer has.
	Missing bool `json:"missing,omitempty"`
	// UsedBy names the containers that run this image.
	UsedBy []string `json:"used_by,omitempty"`
}

// Volume is a named volume.
type Volume struct {
	Name       string            `json:"name"`
	Driver     string            `json:"driver"`
	Options    map[string]string `json:"options,omitempty"` // driver options
	Mountpoint string            `json:"mountpoint"`
	Labels     map[string]string `json:"labels,omitempty"`
	Scope      string            `json:"scope"`
	CreatedAt  string            `json:"created_at,omitempty"`
	Anonymous  bool              `json:"anonymous,omitempty"`
	// Missing is true when a container mounts a volume the daemon does not
	// list or inspect; only Name is set then.
	Missing bool `json:"missing,omitempty"`
	// UsedBy lists the containers that mount the volume.
	UsedBy []MountUser `json:"used_by,omitempty"`
}

// MountUser is a container that mounts a volume or host path.
type MountUser struct {
	Container   string `json:"container"`
	Destination string `json:"destination"`
	RW          bool   `json:"rw"`
}

// BindMount is a host path bind-mounted into one or more containers.
type BindMount struct {
	Source string      `json:"source"`
	UsedBy []MountUser `json:"used_by"`
}

// RW reports whether any container mounts the path writable.
func (b BindMount) RW() bool {
	return slices.ContainsFunc(b.UsedBy, func(u MountUser) bool { return u.RW })
}

// Network is a network and the selected containers attached to it.
type Network struct {
	Name       string `json:"name"`
	ID         string `json:"id"`
	Driver     string `json:"driver"`
	Scope      string `json:"scope"`
	Internal   bool   `json:"internal,omitempty"`
	Attachable bool   `json:"attachable,omitempty"`
	// IPv4 is false only when IPv4 was disabled (API 1.47+); daemons that
	// predate the setting always have it.
	IPv4 bool `json:"ipv4"`
	IPv6 bool `json:"ipv6"`
	// Builtin marks the networks every daemon has: bridge, host and none.
	Builtin     bool              `json:"builtin,omitempty"`
	IPAMDriver  string            `json:"ipam_driver,omitempty"`
	IPAMOptions map[string]string `json:"ipam_options,omitempty"`
	IPAM        []Subnet          `json:"ipam,omitempty"`
	Options     map[string]string `json:"options,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Containers  []NetworkMember   `json:"containers,omitempty"`
	// Missing is true when a container is attached to a network the daemon
	// no longer has; only Name and Containers are set then.
	Missing bool `json:"missing,omitempty"`
}

// Subnet is one IPAM pool of a network.
type Subnet struct {
	Subnet     string            `json:"subnet,omitempty"`
	Gateway    string            `json:"gateway,omitempty"`
	IPRange    string            `json:"ip_range,omitempty"`
	AuxAddress map[string]string `json:"aux_addresses,omitempty"`
}

// NetworkMember is a container attached to a network.
type NetworkMember struct {
	Container   string   `json:"container"`
	Aliases     []string `json:"aliases,omitempty"`
	IPv4Address string   `json:"ipv4_address,omitempty"` // static address, if any
	IPv6Address string   `json:"ipv6_address,omitempty"` // static address, if any
}

// Project is a docker compose project, grouped from container labels.
type Project struct {
	Name        string    `json:"name"`
	WorkingDir  string    `json:"working_dir,omitempty"`
	ConfigFiles []string  `json:"config_files,omitempty"`
	Services    []Service `json:"services"`
	// OneOff names containers from 'docker compose run'.
	OneOff []string `json:"oneoff,omitempty"`
	// Networks and Volumes are those labelled with this project.
	Networks []string `json:"networks,omitempty"`
	Volumes  []string `json:"volumes,omitempty"`
}

// Service returns the project's service called name, or nil.
func (p *Project) Service(name string) *Service {
	for i := range p.Services {
		if p.Services[i].Name == name {
			return &p.Services[i]
		}
	}
	return nil
}

// Service is one compose service.
type Service struct {
	Name string `json:"name"`
	// Containers are the service's (not one-off) containers, by number.
	Containers []string     `json:"containers"`
	DependsOn  []Dependency `json:"depends_on,omitempty"`
}

// Dependency is one entry of a compose service's depends_on.
type Dependency struct {
	Service string `json:"service"`
	// Condition is service_started, service_healthy or
	// service_completed_successfully.
	Condition string `json:"condition"`
	// Restart says whether compose restarts this service when the
	// dependency is updated.
	Restart bool `json:"restart,omitempty"`
}

// Container returns the container with the given name (with or without the
// leading "/"), full ID or unique ID prefix. It fails with a
// [*NotFoundError] that suggests a near name.
func (inv *Inventory) Container(nameOrID string) (*Container, error) {
	name := strings.TrimPrefix(nameOrID, "/")
	for i := range inv.Containers {
		if inv.Containers[i].Name == name || inv.Containers[i].ID == name {
			return &inv.Containers[i], nil
		}
	}
	found := -1
	if name != "" && isHex(name) {
		for i := range inv.Containers {
			if strings.HasPrefix(inv.Containers[i].ID, name) {
				if found >= 0 {
					return nil, &NotFoundError{Kind: "container", Name: nameOrID, Ambiguous: true}
				}
				found = i
			}
		}
	}
	if found >= 0 {
		return &inv.Containers[found], nil
	}
	names := make([]string, len(inv.Containers))
	for i, c := range inv.Containers {
		names[i] = c.Name
	}
	return nil, notFound("container", nameOrID, names)
}

// Volume returns the volume called name.
func (inv *Inventory) Volume(name string) (*Volume, error) {
	names := make([]string, len(inv.Volumes))
	for i := range inv.Volumes {
		if inv.Volumes[i].Name == name {
			return &inv.Volumes[i], nil
		}
		names[i] = inv.Volumes[i].Name
	}
	return nil, notFound("volume", name, names)
}

// Network returns the network with the given name or ID.
func (inv *Inventory) Network(nameOrID string) (*Network, error) {
	names := make([]string, len(inv.Networks))
	for i := range inv.Networks {
		if inv.Networks[i].Name == nameOrID || inv.Networks[i].ID == nameOrID {
			return &inv.Networks[i], nil
		}
		names[i] = inv.Networks[i].Name
	}
	return nil, notFound("network", nameOrID, names)
}

// Image returns the image with the given ID (with or without "sha256:") or
// repo tag.
func (inv *Inventory) Image(idOrTag string) (*Image, error) {
	var names []string
	for i := range inv.Images {
		im := &inv.Images[i]
		if im.ID == idOrTag || strings.TrimPrefix(im.ID, "sha256:") == idOrTag || slices.Contains(im.RepoTags, idOrTag) {
			return im, nil
		}
		names = append(names, im.RepoTags...)
	}
	return nil, notFound("image", idOrTag, names)
}

// Project returns the compose project called name.
func (inv *Inventory) Project(name string) (*Project, error) {
	names := make([]string, len(inv.Projects))
	for i := range inv.Projects {
		if inv.Projects[i].Name == name {
			return &inv.Projects[i], nil
		}
		names[i] = inv.Projects[i].Name
	}
	return nil, notFound("project", name, names)
}

// BindMount returns the bind mount of host path source, or nil.
func (inv *Inventory) BindMount(source string) *BindMount {
	for i := range inv.BindMounts {
		if inv.BindMounts[i].Source == source {
			return &inv.BindMounts[i]
		}
	}
	return nil
}
