package migrate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/unroot/unroot/chown"
	"github.com/unroot/unroot/inventory"
)

// SchemaVersion is the version of the plan's JSON form (docs/plan-schema.md).
const SchemaVersion = 1

// Volume modes.
const (
	VolumesCopy = "copy"
	VolumesMove = "move"
)

// User is the rootless target user.
type User struct {
	Name string `json:"name"`
	UID  int    `json:"uid"`
	GID  int    `json:"gid"`
	Home string `json:"home"`
}

// Options say what to plan. Source, User and Map are required; the zero
// value of every other field is the default behaviour.
type Options struct {
	// Source reads the rootful daemon; Target reads the rootless one.
	Source, Target inventory.API
	// SourceHost and TargetHost are shown in the plan.
	SourceHost, TargetHost string
	User                   User
	// Map is the rootless id map; MapSource says where it came from ("live"
	// or "subid") and MapDiffs how the live map differs from /etc/sub[ug]id.
	Map       chown.IDMap
	MapSource string
	MapDiffs  []string

	// Selection: All, a compose Project, or container names/IDs.
	All        bool
	Project    string
	Containers []string

	// PortMap overrides the default port rewrite; UnprivilegedPortStart is
	// the host's net.ipv4.ip_unprivileged_port_start (0 means 1024).
	PortMap               PortMap
	UnprivilegedPortStart int
	// Listeners are the host's listening sockets, for conflict checks.
	Listeners []Listener

	// Volumes is VolumesCopy (default) or VolumesMove.
	Volumes                 string
	MapUnmappableToOverflow bool
	SkipDevices             bool
	// NoCommit opts out of keeping writable-layer changes.
	NoCommit bool
	// TargetSocket is the rootless docker socket path that binds of the
	// rootful socket are rewritten to.
	TargetSocket string

	// Audit walks a tree and reports its ownership; nil skips the walk (the
	// plan then has no file counts).
	Audit func(ctx context.Context, root string) (*chown.Report, error)
	// Prerequisites are the results of 'unroot check'; a failed one is a
	// blocker. Nil means the checklist was not run.
	Prerequisites []Prerequisite

	// Migrated reports whether the state file says a container was already
	// migrated; nil means none was.
	Migrated func(container string) bool
	// Owned reports whether a target container of that name was created by
	// an earlier, unfinished run (apply resumes it); nil means none was.
	Owned func(container string) bool
	// ShiftedBind reports whether an earlier, unfinished run shifted (or
	// began to shift) the bind source src in place; its owners are then
	// not reported unmappable (they are the shifted ones) and apply resumes
	// the shift from its journal. Nil means none was.
	ShiftedBind func(src string) bool
	// MovedVolume reports whether an earlier, unfinished run began to move
	// the volume name (--volumes move, [State.VolumeMoveStarted]); when its
	// source data is gone the move resumes and the source is not audited.
	// Nil means none did.
	MovedVolume func(name string) bool
	// ComposeHash asks compose for the config hash of each service of a
	// project (compose.go); nil, or an error, means compose recreates the
	// services whose file entries the rewrite changes.
	ComposeHash func(ctx context.Context, req ComposeHashRequest) (map[string]string, error)
}

// Plan is what a migration will do. The dry run prints it; apply executes it.
type Plan struct {
	SchemaVersion int           `json:"schema_version"`
	User          User          `json:"user"`
	Source        Daemon        `json:"source"`
	Target        Daemon        `json:"target"`
	IDMap         MapInfo       `json:"id_map"`
	VolumesMode   string        `json:"volumes_mode"`
	PortStart     int           `json:"unprivileged_port_start"`
	Services      []*Service    `json:"services"`
	Images        []ImagePlan   `json:"images"`
	Networks      []NetworkPlan `json:"networks"`
	Volumes       []VolumePlan  `json:"volumes"`
	Binds         []BindPlan    `json:"binds"`
	Findings      []Finding     `json:"findings"`
	Summary       Summary       `json:"summary"`
	// Compose lists the compose projects of the selected containers, with
	// the rootless compose files apply writes (compose.go).
	Compose []ComposePlan `json:"compose,omitempty"`
	// Prerequisites are the results of 'unroot check', when the caller ran it.
	Prerequisites []Prerequisite `json:"prerequisites,omitempty"`

	// inv is the source inventory the plan was built from; apply needs the
	// full container configs.
	inv *inventory.Inventory
}

// Inventory returns the source inventory the plan was built from.
func (p *Plan) Inventory() *inventory.Inventory { return p.inv }

// Prerequisite is one 'unroot check' result, carried into the runbook.
type Prerequisite struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Found  string `json:"found"`
	Fix    string `json:"fix,omitempty"`
}

// Daemon describes one side of the migration.
type Daemon struct {
	Host          string `json:"host"`
	Version       string `json:"version,omitempty"`
	APIVersion    string `json:"api_version,omitempty"`
	Rootless      bool   `json:"rootless"`
	StorageDriver string `json:"storage_driver,omitempty"`
	CgroupDriver  string `json:"cgroup_driver,omitempty"`
	CgroupVersion string `json:"cgroup_version,omitempty"`
	DataRoot      string `json:"data_root,omitempty"`
}

// MapInfo is the id map the plan shifts ownership with.
type MapInfo struct {
	Source string        `json:"source"` // "live" or "subid"
	UIDs   []chown.Range `json:"uids"`
	GIDs   []chown.Range `json:"gids"`
	Diffs  []string      `json:"diffs,omitempty"`
}

// Service is one container's migration, in cutover order.
type Service struct {
	Order     int      `json:"order"`
	Container string   `json:"container"`
	ID        string   `json:"id"`
	Image     string   `json:"image"`
	ImageID   string   `json:"image_id"`
	Running   bool     `json:"running"`
	Project   string   `json:"project,omitempty"`
	Service   string   `json:"service,omitempty"`
	DependsOn []string `json:"depends_on,omitempty"`
	// AlreadyMigrated services are skipped: the state says they are done.
	AlreadyMigrated bool       `json:"already_migrated,omitempty"`
	Ports           []PortPlan `json:"ports,omitempty"`
	Volumes         []string   `json:"volumes,omitempty"`
	Binds           []string   `json:"binds,omitempty"`
	Networks        []string   `json:"networks,omitempty"`
	// WritableChanges counts changes in the writable layer outside mounts;
	// CommitWritableLayer says they will be kept by committing the container.
	WritableChanges     int  `json:"writable_changes"`
	CommitWritableLayer bool `json:"commit_writable_layer"`
	// StopTimeout is how long the source gets to stop, in seconds.
	StopTimeout int `json:"stop_timeout"`
}

// PortPlan is one published port before and after.
type PortPlan struct {
	Container     string `json:"container"`
	ContainerPort uint16 `json:"container_port"`
	Proto         string `json:"proto"`
	HostIP        string `json:"host_ip,omitempty"`
	// OldHostPort and NewHostPort are as configured: a number, a range
	// "A-B", or "" when the daemon picks one.
	OldHostPort string `json:"old_host_port"`
	NewHostPort string `json:"new_host_port"`
	Rewritten   bool   `json:"rewritten"`
	Reason      string `json:"reason,omitempty"`
}

// ImagePlan is one image to transfer.
type ImagePlan struct {
	ID       string   `json:"id"`
	Tags     []string `json:"tags,omitempty"`
	Size     int64    `json:"size"`
	InTarget bool     `json:"in_target"`
	UsedBy   []string `json:"used_by"`
}

// NetworkPlan is one user-defined network to recreate.
type NetworkPlan struct {
	Name       string            `json:"name"`
	Driver     string            `json:"driver"`
	Internal   bool              `json:"internal,omitempty"`
	Attachable bool              `json:"attachable,omitempty"`
	IPv6       bool              `json:"ipv6,omitempty"`
	Subnets    []string          `json:"subnets,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	InTarget   bool              `json:"in_target"`
	UsedBy     []string          `json:"used_by"`
}

// VolumePlan is one named volume to create and fill.
type VolumePlan struct {
	Name       string            `json:"name"`
	Driver     string            `json:"driver"`
	Options    map[string]string `json:"options,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	SourcePath string            `json:"source_path"`
	// CopyData is false for non-local drivers: the volume is recreated with
	// its options and no data is copied.
	CopyData bool          `json:"copy_data"`
	InTarget bool          `json:"in_target"`
	UsedBy   []string      `json:"used_by"`
	Audit    *chown.Report `json:"audit,omitempty"`
}

// BindPlan is one host path bind-mounted by selected containers.
type BindPlan struct {
	Source string   `json:"source"`
	UsedBy []string `json:"used_by"`
	// Action is "shift" (in place, journaled), "rewrite-socket" (the docker
	// socket becomes the rootless one), "refuse" (a system path) or "skip"
	// (missing source).
	Action string        `json:"action"`
	Audit  *chown.Report `json:"audit,omitempty"`
}

// Summary totals the plan.
type Summary struct {
	Services       int   `json:"services"`
	Skipped        int   `json:"already_migrated"`
	Images         int   `json:"images"`
	ImageBytes     int64 `json:"image_bytes"`
	Volumes        int   `json:"volumes"`
	Binds          int   `json:"binds"`
	Networks       int   `json:"networks"`
	Files          int64 `json:"files"`
	Bytes          int64 `json:"bytes"`
	OwnerChanges   int64 `json:"owner_changes"`
	PortsRewritten int   `json:"ports_rewritten"`
	Blockers       int   `json:"blockers"`
	Warnings       int   `json:"warnings"`
	// Applicable is true when nothing blocks the migration.
	Applicable bool `json:"applicable"`
}

// ErrNothingSelected is returned when the selection names no container.
var ErrNothingSelected = errors.New("no container selected")

// SelectionError explains an empty or invalid selection.
type SelectionError struct{ Msg, HintText string }

func (e *SelectionError) Error() string { return e.Msg }

// Hint says how to select.
func (e *SelectionError) Hint() string { return e.HintText }

// Is matches [ErrNothingSelected].
func (e *SelectionError) Is(t error) bool { return t == ErrNothingSelected }

// Build computes the plan. It reads both daemons and walks the selected
// volumes and bind mounts, and changes nothing anywhere.
func Build(ctx context.Context, opts Options) (*Plan, error) {
	if opts.Volumes == "" {
		opts.Volumes = VolumesCopy
	}
	if opts.Volumes != VolumesCopy && opts.Volumes != VolumesMove {
		return nil, fmt.Errorf("unknown volume mode %q (want copy or move)", opts.Volumes)
	}
	if opts.UnprivilegedPortStart == 0 {
		opts.UnprivilegedPortStart = PrivilegedPortStart
	}
	full, err := inventory.Read(ctx, opts.Source, inventory.Options{All: true})
	if err != nil {
		return nil, fmt.Errorf("read source daemon: %w", err)
	}
	names, err := selectContainers(full, opts)
	if err != nil {
		return nil, err
	}
	// The diff is read even with NoCommit: the plan must warn what is lost.
	inv, err := inventory.Read(ctx, opts.Source, inventory.Options{All: true, Containers: names, Diff: true})
	if err != nil {
		return nil, fmt.Errorf("read source containers: %w", err)
	}
	var tgt *inventory.Inventory
	if opts.Target != nil {
		if tgt, err = inventory.Read(ctx, opts.Target, inventory.Options{All: true}); err != nil {
			return nil, fmt.Errorf("read target daemon: %w", err)
		}
	}
	p := &Plan{
		SchemaVersion: SchemaVersion,
		User:          opts.User,
		Source:        daemonOf(opts.SourceHost, full.Daemon),
		IDMap:         MapInfo{Source: opts.MapSource, UIDs: opts.Map.UIDs, GIDs: opts.Map.GIDs, Diffs: opts.MapDiffs},
		VolumesMode:   opts.Volumes,
		PortStart:     opts.UnprivilegedPortStart,
		inv:           inv,
	}
	if tgt != nil {
		p.Target = daemonOf(opts.TargetHost, tgt.Daemon)
	} else {
		p.Target = Daemon{Host: opts.TargetHost}
	}
	p.Prerequisites = opts.Prerequisites
	b := &builder{opts: opts, p: p, full: full, inv: inv, tgt: tgt}
	b.global()
	b.loadCompose(ctx)
	b.services()
	b.ports()
	b.compose(ctx)
	b.images()
	b.networks()
	if err := b.mounts(ctx); err != nil {
		return nil, err
	}
	b.summarize()
	return p, nil
}

func daemonOf(host string, d inventory.Daemon) Daemon {
	return Daemon{
		Host: host, Version: d.ServerVersion, APIVersion: d.APIVersion, Rootless: d.Rootless,
		StorageDriver: d.StorageDriver, CgroupDriver: d.CgroupDriver, CgroupVersion: d.CgroupVersion,
		DataRoot: d.DockerRootDir,
	}
}

// selectContainers turns the selection options into container names.
func selectContainers(full *inventory.Inventory, opts Options) ([]string, error) {
	n := 0
	if opts.All {
		n++
	}
	if opts.Project != "" {
		n++
	}
	if len(opts.Containers) > 0 {
		n++
	}
	if n != 1 {
		return nil, &SelectionError{"select exactly one of --all, --project or container names", "e.g. 'unroot migrate --user alice --dry-run --all'"}
	}
	var names []string
	switch {
	case opts.All:
		for _, c := range full.Containers {
			if c.Compose != nil && c.Compose.OneOff {
				continue
			}
			names = append(names, c.Name)
		}
		if len(names) == 0 {
			return nil, &SelectionError{"the source daemon has no containers", "nothing to migrate; check --source-host"}
		}
	case opts.Project != "":
		proj, err := full.Project(opts.Project)
		if err != nil {
			return nil, err
		}
		for _, s := range proj.Services {
			names = append(names, s.Containers...)
		}
	default:
		for _, c := range opts.Containers {
			ct, err := full.Container(c)
			if err != nil {
				return nil, err
			}
			if !slices.Contains(names, ct.Name) {
				names = append(names, ct.Name)
			}
		}
	}
	return names, nil
}

type builder struct {
	opts           Options
	p              *Plan
	full, inv, tgt *inventory.Inventory
	byName         map[string]*Service
	// composeProjects are the loaded compose files by project (compose.go).
	composeProjects map[string]*composeProject
}

func (b *builder) selected(name string) bool { _, ok := b.byName[name]; return ok }

// global adds findings about the host, the daemons and the id map.
func (b *builder) global() {
	for _, c := range b.opts.Prerequisites {
		if c.Status == "fail" {
			b.p.addf(CodePrerequisite, Blocker, "", c.ID, c.Fix, "'unroot check' fails %s: %s", c.ID, c.Found)
		}
	}
	for _, so := range b.full.Daemon.SecurityOptions {
		if strings.Contains(so, "name=userns") {
			b.p.addf(CodeUsernsRemap, Blocker, "", "", "run the rootful daemon without userns-remap, or migrate by hand",
				"the source daemon runs with userns-remap: its data is already shifted and unroot's map would shift it twice")
		}
	}
	if b.tgt == nil {
		return
	}
	if !b.tgt.Daemon.Rootless {
		b.p.addf(CodeTargetNotRootless, Blocker, "", b.opts.TargetHost, "point --target-host at the user's rootless daemon",
			"the target daemon is not rootless")
	}
	if b.opts.MapSource == "subid" {
		b.p.addf(CodeMapFromFiles, Info, "", "", "", "the id map comes from /etc/subuid and /etc/subgid; the rootless daemon's live map was not available")
	}
	for _, d := range b.opts.MapDiffs {
		b.p.addf(CodeMapMismatch, Warning, "", "", "restart the rootless daemon so it picks up /etc/subuid and /etc/subgid; unroot uses the live map", "%s", d)
	}
}

// services builds one Service per selected container, in cutover order.
func (b *builder) services() {
	b.byName = map[string]*Service{}
	for i := range b.inv.Containers {
		c := &b.inv.Containers[i]
		s := &Service{Container: c.Name, ID: c.ID, Image: c.Image, ImageID: c.ImageID, Running: c.Running, StopTimeout: 10}
		if c.StopTimeout != nil {
			s.StopTimeout = *c.StopTimeout
		}
		if c.Compose != nil {
			s.Project, s.Service = c.Compose.Project, c.Compose.Service
		}
		for _, m := range c.Mounts {
			switch m.Type {
			case inventory.MountVolume:
				s.Volumes = append(s.Volumes, m.Name)
			case inventory.MountBind:
				s.Binds = append(s.Binds, m.Source)
			}
		}
		for _, n := range c.Networks {
			s.Networks = append(s.Networks, n.Name)
		}
		b.byName[c.Name] = s
		b.p.Services = append(b.p.Services, s)
	}
	for i := range b.inv.Containers {
		c := &b.inv.Containers[i]
		s := b.byName[c.Name]
		s.DependsOn = b.dependencies(c)
		b.containerFindings(c, s)
	}
	b.p.Services = cutoverOrder(b.p.Services)
	for i, s := range b.p.Services {
		s.Order = i + 1
	}
}

// dependencies are the selected containers c must start after.
func (b *builder) dependencies(c *inventory.Container) []string {
	var deps []string
	add := func(name string) {
		name = strings.TrimPrefix(name, "/")
		if name != c.Name && b.selected(name) && !slices.Contains(deps, name) {
			deps = append(deps, name)
		}
	}
	if c.Compose != nil {
		cdeps := c.Compose.DependsOn
		if len(cdeps) == 0 {
			cdeps = b.composeDependsOn(c.Compose) // Compose v1 writes no depends_on label
		}
		for _, d := range cdeps {
			for _, o := range b.inv.Containers {
				if o.Compose != nil && o.Compose.Project == c.Compose.Project && o.Compose.Service == d.Service {
					add(o.Name)
				}
			}
		}
	}
	for _, l := range c.Links {
		name, _, _ := strings.Cut(strings.TrimPrefix(l, "/"), ":")
		add(name)
	}
	for _, v := range c.VolumesFrom {
		name, _, _ := strings.Cut(v, ":")
		add(name)
	}
	if name, ok := strings.CutPrefix(c.NetworkMode, "container:"); ok {
		add(b.containerName(name))
	}
	sort.Strings(deps)
	return deps
}

// containerName resolves an ID or name of the source inventory to a name.
func (b *builder) containerName(ref string) string {
	if c, err := b.full.Container(ref); err == nil {
		return c.Name
	}
	return ref
}

// cutoverOrder sorts services so dependencies come first (Kahn's algorithm,
// ties by name; a cycle keeps the remaining services in name order).
func cutoverOrder(ss []*Service) []*Service {
	slices.SortFunc(ss, func(a, b *Service) int { return strings.Compare(a.Container, b.Container) })
	done := map[string]bool{}
	var out []*Service
	for len(out) < len(ss) {
		progress := false
		for _, s := range ss {
			if done[s.Container] {
				continue
			}
			ready := true
			for _, d := range s.DependsOn {
				if !done[d] {
					ready = false
					break
				}
			}
			if ready {
				done[s.Container] = true
				out = append(out, s)
				progress = true
			}
		}
		if !progress {
			for _, s := range ss {
				if !done[s.Container] {
					done[s.Container] = true
					out = append(out, s)
				}
			}
		}
	}
	return out
}

// containerFindings checks one container's configuration against what a
// rootless daemon can do.
func (b *builder) containerFindings(c *inventory.Container, s *Service) {
	p, n := b.p, c.Name
	if b.tgt != nil {
		if t, err := b.tgt.Container(n); err == nil && t.Name == n {
			switch {
			case b.opts.Migrated != nil && b.opts.Migrated(n):
				s.AlreadyMigrated = true
				p.addf(CodeAlreadyMigrated, Info, n, "", "'unroot status' shows it; 'unroot rollback' undoes it", "already migrated: it will be left as it is")
			case b.opts.Owned != nil && b.opts.Owned(n):
				p.addf(CodeResume, Info, n, "", "", "an earlier run stopped midway; the migration resumes where it stopped")
			default:
				p.addf(CodeTargetNameTaken, Blocker, n, n, "remove or rename the target's container, e.g. 'docker -H "+b.opts.TargetHost+" rm "+n+"'",
					"the target daemon already has a container named %s that unroot did not create", n)
			}
		}
	}
	if c.Privileged {
		p.addf(CodePrivileged, Warning, n, "", "drop --privileged where the service does not need it",
			"privileged in rootless mode adds no host devices and no host capabilities")
	}
	if len(c.Devices) > 0 {
		var devs []string
		for _, d := range c.Devices {
			devs = append(devs, d.PathOnHost)
		}
		p.addf(CodeDevices, Warning, n, strings.Join(devs, ","), "make the devices readable by "+b.opts.User.Name+" (group membership or udev rule)",
			"host devices are passed only when the rootless user can open them")
	}
	if len(c.DeviceRequests) > 0 {
		p.addf(CodeDeviceRequests, Warning, n, "", "check the device driver supports rootless (e.g. nvidia-container-toolkit's no-cgroups mode)",
			"device requests (e.g. --gpus) need driver support for rootless")
	}
	switch {
	case c.NetworkMode == "host":
		p.addf(CodeHostNetwork, Blocker, n, "", "use a bridge network with published ports; --net=host in rootless is RootlessKit's namespace, not the host's",
			"host networking does not reach the host's network in rootless mode")
	case strings.HasPrefix(c.NetworkMode, "container:"):
		other := b.containerName(strings.TrimPrefix(c.NetworkMode, "container:"))
		if !b.selected(other) {
			p.addf(CodeContainerNetwork, Blocker, n, other, "migrate "+other+" in the same run",
				"shares the network namespace of %s, which is not selected", other)
		}
	}
	for _, m := range []struct{ mode, code string }{{c.PidMode, CodeHostPID}, {c.IpcMode, CodeHostIPC}, {c.UTSMode, CodeHostUTS}, {c.UsernsMode, CodeHostUserns}} {
		if m.mode == "host" {
			p.addf(m.code, Warning, n, "", "the namespace will be the rootless daemon's, not the host's",
				"%s mode host does not share the host's namespace in rootless mode", strings.TrimPrefix(m.code, "host-"))
		}
	}
	for _, capName := range c.CapAdd {
		if isHostOnlyCap(capName) {
			p.addf(CodeHostCapability, Warning, n, normCap(capName), "drop the capability if the service works without it",
				"capability %s only acts on the host's kernel; inside a user namespace it grants little or nothing", normCap(capName))
		}
	}
	if c.Resources.Limited() && b.tgt != nil && (b.tgt.Daemon.CgroupDriver == "none" || b.tgt.Daemon.CgroupVersion == "1") {
		p.addf(CodeLimitsIgnored, Warning, n, "", "boot with cgroup v2 (systemd.unified_cgroup_hierarchy=1) and delegate cpu, memory, pids to the user",
			"memory/cpu/pids limits will not be enforced: the rootless daemon runs with cgroup driver %q on cgroup v%s",
			b.tgt.Daemon.CgroupDriver, b.tgt.Daemon.CgroupVersion)
	}
	if c.Domainname != "" {
		p.addf(CodeDomainname, Warning, n, c.Domainname, "set the domain in the service's own configuration, or drop --domainname",
			"--domainname %s is dropped: a rootless container cannot set its NIS domain name", c.Domainname)
	}
	if c.Resources.OomKillDisable {
		p.addf(CodeOomKillDisable, Warning, n, "", "", "oom-kill-disable is ignored in rootless mode")
	}
	if c.CgroupParent != "" {
		p.addf(CodeCgroupParent, Warning, n, c.CgroupParent, "", "cgroup-parent %s is dropped: the rootless daemon manages its own cgroups", c.CgroupParent)
	}
	for _, so := range c.SecurityOpt {
		switch {
		case strings.HasPrefix(so, "apparmor"):
			p.addf(CodeAppArmor, Warning, n, so, "", "AppArmor is not supported in rootless mode; %s is dropped", so)
		case strings.HasPrefix(so, "label"):
			p.addf(CodeSELinux, Warning, n, so, "", "SELinux labels behave differently in rootless mode; %s is dropped", so)
		case strings.HasPrefix(so, "seccomp") && !strings.HasSuffix(so, "unconfined"):
			p.addf(CodeSeccomp, Warning, n, so, "make the profile readable by the rootless user", "custom seccomp profile %s must be readable by the rootless daemon", so)
		}
	}
	if slices.Contains(hostLogDrivers, c.LogConfig.Type) {
		p.addf(CodeLogDriver, Warning, n, c.LogConfig.Type, "check the log endpoint is reachable from the user's namespace, or switch to json-file/local",
			"log driver %s needs a host service that the rootless daemon may not reach", c.LogConfig.Type)
	}
	for k := range c.Sysctls {
		if !strings.HasPrefix(k, "net.") {
			p.addf(CodeSysctl, Blocker, n, k, "remove the sysctl or set it on the host", "sysctl %s is not namespaced for an unprivileged user: the container would not start", k)
		}
	}
	if len(c.Links) > 0 {
		p.addf(CodeLinks, Warning, n, strings.Join(c.Links, ","), "use a user-defined network and service names instead", "legacy links are recreated only between migrated containers")
	}
	for _, v := range c.VolumesFrom {
		name, _, _ := strings.Cut(v, ":")
		if !b.selected(b.containerName(name)) {
			p.addf(CodeVolumesFrom, Blocker, n, name, "migrate "+name+" in the same run", "takes volumes from %s, which is not selected", name)
		}
	}
	if c.Runtime != "" && c.Runtime != "runc" && c.Runtime != "io.containerd.runc.v2" {
		p.addf(CodeRuntime, Warning, n, c.Runtime, "register the runtime in the rootless daemon's daemon.json", "runtime %s must also be configured in the rootless daemon", c.Runtime)
	}
	if img, err := b.full.Image(c.ImageID); err != nil || img.Missing {
		p.addf(CodeImageMissing, Blocker, n, c.Image, "pull or rebuild the image on the source daemon", "the source daemon no longer has image %s", c.Image)
	}
	s.WritableChanges = writableChanges(c)
	if s.WritableChanges > 0 {
		if b.opts.NoCommit {
			p.addf(CodeWritableLayer, Warning, n, "", "drop --no-commit to keep them", "%d changes in the writable layer will be lost (--no-commit)", s.WritableChanges)
		} else {
			s.CommitWritableLayer = true
			p.addf(CodeWritableLayer, Info, n, "", "", "%d changes in the writable layer will be kept by committing the stopped container", s.WritableChanges)
		}
	}
	for _, m := range c.Mounts {
		if m.Type == inventory.MountVolume && m.Anonymous {
			p.addf(CodeAnonymousVolume, Info, n, m.Name, "", "anonymous volume %s (at %s) is recreated under the same name", shortName(m.Name), m.Destination)
		}
	}
}

func shortName(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// writableChanges counts writable-layer changes outside the container's
// mounts; paths daemons create for every container do not count.
func writableChanges(c *inventory.Container) int {
	n := 0
	for _, ch := range c.Changes {
		if ephemeralPath(ch.Path) || underMount(c, ch.Path) {
			continue
		}
		// A changed directory is reported with its changed entries; count leaves.
		if hasChild(c.Changes, ch.Path) {
			continue
		}
		n++
	}
	return n
}

func ephemeralPath(p string) bool {
	// /sbin/docker-init is the --init binary the daemon mounts into every
	// such container; it is not the container's own change.
	for _, e := range []string{"/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/dev", "/proc", "/sys", "/run", "/tmp", "/sbin/docker-init"} {
		if p == e || strings.HasPrefix(p, e+"/") {
			return true
		}
	}
	return false
}

func underMount(c *inventory.Container, p string) bool {
	for _, m := range c.Mounts {
		if p == m.Destination || strings.HasPrefix(p, strings.TrimSuffix(m.Destination, "/")+"/") {
			return true
		}
	}
	for t := range c.Tmpfs {
		if p == t || strings.HasPrefix(p, t+"/") {
			return true
		}
	}
	return false
}

func hasChild(cs []inventory.Change, dir string) bool {
	for _, c := range cs {
		if strings.HasPrefix(c.Path, dir+"/") {
			return true
		}
	}
	return false
}

// claim is a host port range someone holds or wants.
type claim struct {
	owner, proto, ip string
	lo, hi           int
}

// ports rewrites published ports and finds conflicts.
func (b *builder) ports() {
	var claims []claim
	// Ports that stay bound while the services move: unselected source
	// containers and the target daemon's containers.
	var fixed []claim
	for _, c := range b.full.Containers {
		if b.selected(c.Name) {
			continue
		}
		for _, pt := range c.PublishedPorts() {
			if lo, hi, ok := portRange(pt); ok {
				fixed = append(fixed, claim{"source container " + c.Name, pt.Proto, pt.HostIP, lo, hi})
			}
		}
	}
	// Old ports of selected containers: held by the rootful daemon until
	// each service is cut over. A selected service's own container in the
	// target (migrated already, or left by an interrupted run) holds its new
	// ports: neither conflicts with the service itself.
	var old []claim
	if b.tgt != nil {
		for _, c := range b.tgt.Containers {
			s, selected := b.byName[c.Name]
			mine := selected && (s.AlreadyMigrated || (b.opts.Owned != nil && b.opts.Owned(c.Name)))
			for _, pt := range c.PublishedPorts() {
				if lo, hi, ok := portRange(pt); ok {
					cl := claim{"target container " + c.Name, pt.Proto, pt.HostIP, lo, hi}
					if mine {
						cl.owner = c.Name
						old = append(old, cl)
					} else {
						fixed = append(fixed, cl)
					}
				}
			}
		}
	}
	for _, s := range b.p.Services {
		c, _ := b.inv.Container(s.Container)
		for _, pt := range c.PublishedPorts() {
			if lo, hi, ok := portRange(pt); ok {
				old = append(old, claim{s.Container, pt.Proto, pt.HostIP, lo, hi})
			}
		}
	}
	for _, s := range b.p.Services {
		c, _ := b.inv.Container(s.Container)
		for _, pt := range c.PublishedPorts() {
			pp := PortPlan{Container: c.Name, ContainerPort: pt.ContainerPort, Proto: pt.Proto, HostIP: pt.HostIP, OldHostPort: pt.HostPort, NewHostPort: pt.HostPort}
			if pt.Proto == "sctp" {
				b.p.addf(CodeSCTPPort, Blocker, c.Name, pt.String(), "publish it as tcp or udp", "SCTP ports cannot be published by a rootless daemon")
			}
			lo, hi, ok := portRange(pt)
			if ok {
				nlo, why := RewritePort(uint16(lo), b.opts.UnprivilegedPortStart, b.opts.PortMap)
				if int(nlo) != lo {
					nhi := int(nlo) + (hi - lo)
					if hi != lo && b.opts.PortMap[uint16(lo)] != 0 {
						b.p.addf(CodePortRange, Warning, c.Name, pt.HostPort, "", "the range %s moves as a whole to start at %d", pt.HostPort, nlo)
					}
					if nhi > 65535 {
						b.p.addf(CodePortConflict, Blocker, c.Name, pt.HostPort, "use --port-map to pick a lower port", "rewritten range %d-%d runs past 65535", nlo, nhi)
					}
					pp.Rewritten, pp.Reason = true, why
					lo, hi = int(nlo), nhi
					pp.NewHostPort = formatRange(lo, hi)
					b.p.addf(CodePortRewritten, Info, c.Name, pt.String(), "keep serving the old port with a reverse proxy or 'sysctl net.ipv4.ip_unprivileged_port_start="+strconv.Itoa(int(portLo(pt.HostPort)))+"' (see the runbook)",
						"host port %s becomes %s (%s)", pt.HostPort, pp.NewHostPort, why)
				}
				if !s.AlreadyMigrated { // it stays where it is: nothing to check
					b.portConflicts(c.Name, pt.Proto, pt.HostIP, lo, hi, claims, fixed, old)
				}
				claims = append(claims, claim{c.Name, pt.Proto, pt.HostIP, lo, hi})
			}
			s.Ports = append(s.Ports, pp)
		}
	}
}

// portConflicts records a blocker for every holder of the new range.
func (b *builder) portConflicts(name, proto, ip string, lo, hi int, claims, fixed, old []claim) {
	hit := func(owner string) {
		b.p.addf(CodePortConflict, Blocker, name, fmt.Sprintf("%s/%s", formatRange(lo, hi), proto),
			"pick another port with --port-map OLD:NEW", "host port %s/%s is also wanted by %s", formatRange(lo, hi), proto, owner)
	}
	for _, cl := range claims {
		if cl.proto == proto && hostIPsOverlap(cl.ip, ip) && cl.lo <= hi && lo <= cl.hi {
			hit("migrated container " + cl.owner)
		}
	}
	for _, cl := range fixed {
		if cl.proto == proto && hostIPsOverlap(cl.ip, ip) && cl.lo <= hi && lo <= cl.hi {
			hit(cl.owner)
		}
	}
	explained := false
	for _, cl := range old {
		if cl.proto == proto && hostIPsOverlap(cl.ip, ip) && cl.lo <= hi && lo <= cl.hi {
			if cl.owner == name {
				explained = true // its own old port, free once it stops
				continue
			}
			explained = true
			hit("the running source container " + cl.owner + " until it is cut over")
		}
	}
	for _, cl := range fixed {
		if cl.proto == proto && cl.lo <= hi && lo <= cl.hi {
			explained = true
		}
	}
	if explained {
		return
	}
	for _, l := range b.opts.Listeners {
		if l.Proto == proto && int(l.Port) >= lo && int(l.Port) <= hi && hostIPsOverlap(l.Addr, ip) {
			hit(fmt.Sprintf("a process listening on %s:%d", l.Addr, l.Port))
			return
		}
	}
}

func portLo(s string) uint16 {
	lo, _, _ := strings.Cut(s, "-")
	n, _ := strconv.Atoi(lo)
	return uint16(n)
}

// portRange parses a published port's host port; false when the daemon
// picks it (then nothing is rewritten or checked).
func portRange(pt inventory.Port) (int, int, bool) {
	if pt.HostPort == "" || pt.HostPort == "0" {
		return 0, 0, false
	}
	a, b, isRange := strings.Cut(pt.HostPort, "-")
	lo, err := strconv.Atoi(a)
	if err != nil {
		return 0, 0, false
	}
	hi := lo
	if isRange {
		if hi, err = strconv.Atoi(b); err != nil {
			return 0, 0, false
		}
	}
	return lo, hi, true
}

func formatRange(lo, hi int) string {
	if lo == hi {
		return strconv.Itoa(lo)
	}
	return fmt.Sprintf("%d-%d", lo, hi)
}

// images lists the images to transfer.
func (b *builder) images() {
	byID := map[string]*ImagePlan{}
	for _, s := range b.p.Services {
		if s.AlreadyMigrated {
			continue
		}
		ip, ok := byID[s.ImageID]
		if !ok {
			ip = &ImagePlan{ID: s.ImageID}
			if img, err := b.full.Image(s.ImageID); err == nil {
				ip.Tags, ip.Size = img.RepoTags, img.Size
			}
			if b.tgt != nil {
				if _, err := b.tgt.Image(s.ImageID); err == nil {
					ip.InTarget = true
				}
			}
			byID[s.ImageID] = ip
		}
		ip.UsedBy = append(ip.UsedBy, s.Container)
	}
	for _, ip := range byID {
		b.p.Images = append(b.p.Images, *ip)
	}
	slices.SortFunc(b.p.Images, func(a, c ImagePlan) int { return strings.Compare(a.ID, c.ID) })
}

// networks lists the user-defined networks to recreate.
func (b *builder) networks() {
	byName := map[string]*NetworkPlan{}
	for _, s := range b.p.Services {
		for _, name := range s.Networks {
			nw, err := b.full.Network(name)
			if err != nil || nw.Builtin {
				continue
			}
			np, ok := byName[name]
			if !ok {
				np = &NetworkPlan{Name: nw.Name, Driver: nw.Driver, Internal: nw.Internal, Attachable: nw.Attachable, IPv6: nw.IPv6, Labels: nw.Labels}
				for _, sn := range nw.IPAM {
					if sn.Subnet != "" {
						np.Subnets = append(np.Subnets, sn.Subnet)
					}
				}
				if b.tgt != nil {
					if _, err := b.tgt.Network(name); err == nil {
						np.InTarget = true
					}
				}
				if nw.Driver != "bridge" {
					b.p.addf(CodeNetworkDriver, Blocker, "", name, "use a bridge network; rootless supports no macvlan, ipvlan or overlay",
						"network %s uses driver %s, which a rootless daemon cannot create", name, nw.Driver)
				}
				byName[name] = np
			}
			np.UsedBy = append(np.UsedBy, s.Container)
		}
	}
	for _, np := range byName {
		b.p.Networks = append(b.p.Networks, *np)
	}
	slices.SortFunc(b.p.Networks, func(a, c NetworkPlan) int { return strings.Compare(a.Name, c.Name) })
}

// mounts plans volumes and bind mounts and audits their ownership.
func (b *builder) mounts(ctx context.Context) error {
	vols := map[string]*VolumePlan{}
	binds := map[string]*BindPlan{}
	var volOrder, bindOrder []string
	for _, s := range b.p.Services {
		if s.AlreadyMigrated {
			continue
		}
		for _, name := range s.Volumes {
			vp, ok := vols[name]
			if !ok {
				v, err := b.full.Volume(name)
				if err != nil {
					return fmt.Errorf("volume %s of %s: %w", name, s.Container, err)
				}
				vp = &VolumePlan{Name: v.Name, Driver: v.Driver, Options: v.Options, Labels: v.Labels, SourcePath: v.Mountpoint, CopyData: v.Driver == "local" && len(v.Options) == 0}
				if v.Driver != "local" {
					b.p.addf(CodeVolumeDriver, Warning, "", name, "install the volume plugin for the rootless daemon",
						"volume %s uses driver %s: it is recreated with its options, no data is copied", name, v.Driver)
				} else if len(v.Options) > 0 {
					b.p.addf(CodeVolumeDriver, Warning, "", name, "check the rootless user may mount it (e.g. NFS)",
						"volume %s is a local volume with mount options %v: it is recreated with them, no data is copied", name, v.Options)
				}
				if b.tgt != nil {
					if _, err := b.tgt.Volume(name); err == nil {
						vp.InTarget = true
					}
				}
				for _, u := range v.UsedBy {
					if !b.selected(u.Container) {
						b.p.addf(CodeSharedBind, Warning, u.Container, name, "migrate "+u.Container+" too, or accept that it keeps the old copy",
							"volume %s is also used by %s, which is not selected: the two copies will diverge", name, u.Container)
					}
				}
				vols[name] = vp
				volOrder = append(volOrder, name)
			}
			vp.UsedBy = append(vp.UsedBy, s.Container)
		}
		for _, src := range s.Binds {
			bp, ok := binds[src]
			if !ok {
				bp = &BindPlan{Source: src, Action: "shift"}
				clean := filepath.Clean(src)
				switch {
				case isDockerSocket(clean):
					bp.Action = "rewrite-socket"
					b.p.addf(CodeDockerSocket, Info, s.Container, src, "the rootless daemon's API gives the same power over the user's containers, not over the host's",
						"bind of the docker socket is rewritten to %s", b.opts.TargetSocket)
				case IsSystemPath(clean):
					bp.Action = "refuse"
					b.p.addf(CodeSystemBind, Blocker, s.Container, src, "bind a dedicated directory instead, e.g. /srv/"+s.Container,
						"bind mount of system path %s: unroot will not give it to the rootless user", src)
				}
				if bm := b.full.BindMount(src); bm != nil {
					for _, u := range bm.UsedBy {
						if !b.selected(u.Container) && bp.Action == "shift" {
							b.p.addf(CodeBindOutsideSelect, Blocker, u.Container, src, "migrate "+u.Container+" in the same run, or stop sharing the path",
								"bind %s is also used by %s, which is not selected: shifting it would take its files away", src, u.Container)
						}
					}
				}
				binds[src] = bp
				bindOrder = append(bindOrder, src)
			}
			bp.UsedBy = append(bp.UsedBy, s.Container)
		}
	}
	for _, name := range volOrder {
		vp := vols[name]
		resumed := vp.CopyData && b.moveResumed(name, vp.SourcePath)
		if vp.CopyData && b.opts.Audit != nil && !resumed {
			r, err := b.opts.Audit(ctx, vp.SourcePath)
			if err != nil {
				return fmt.Errorf("audit volume %s: %w", name, err)
			}
			vp.Audit = r
			b.ownershipFindings("volume "+name, r)
		}
		if vp.CopyData && b.opts.Volumes == VolumesMove && !resumed {
			b.checkSameFS(name, vp.SourcePath)
		}
		b.p.Volumes = append(b.p.Volumes, *vp)
	}
	for _, src := range bindOrder {
		bp := binds[src]
		if bp.Action == "shift" {
			st, err := os.Lstat(src)
			switch {
			case errors.Is(err, os.ErrNotExist):
				bp.Action = "skip"
				b.p.addf(CodeBindMissing, Warning, strings.Join(bp.UsedBy, ","), src, "create it before migrating if the service needs it",
					"bind source %s does not exist; the rootless daemon will create it owned by %s", src, b.opts.User.Name)
			case err != nil:
				return fmt.Errorf("bind %s: %w", src, err)
			case st.Mode()&os.ModeSymlink != 0:
				bp.Action = "refuse"
				b.p.addf(CodeSystemBind, Blocker, strings.Join(bp.UsedBy, ","), src, "bind the real path instead", "bind source %s is a symlink; unroot does not follow it", src)
			case b.opts.Audit != nil:
				r, err := b.auditBind(ctx, src, st)
				if err != nil {
					return fmt.Errorf("audit bind %s: %w", src, err)
				}
				bp.Audit = r
				if b.opts.ShiftedBind != nil && b.opts.ShiftedBind(src) && len(r.Unmappable) > 0 {
					b.p.addf(CodeResume, Info, strings.Join(bp.UsedBy, ","), src, "",
						"bind %s was shifted by an earlier run; its shift resumes from the journal", src)
					shifted := *r
					shifted.Unmappable = nil
					r = &shifted
				}
				b.ownershipFindings("bind "+src, r)
			}
		}
		b.p.Binds = append(b.p.Binds, *bp)
	}
	return nil
}

// auditBind audits a directory bind with the walker, a file bind directly.
func (b *builder) auditBind(ctx context.Context, src string, st os.FileInfo) (*chown.Report, error) {
	if st.IsDir() {
		return b.opts.Audit(ctx, src)
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return nil, fmt.Errorf("no owner information for %s", src)
	}
	return auditFile(src, sys, b.opts.Map), nil
}

// auditFile reports a single bind-mounted file: its owner change, or the
// ids the map cannot send anywhere.
func auditFile(src string, st *syscall.Stat_t, m chown.IDMap) *chown.Report {
	r := &chown.Report{Root: src, Files: 1, Bytes: st.Size}
	toU, okU := m.HostUID(st.Uid)
	toG, okG := m.HostGID(st.Gid)
	if !okU {
		r.Unmappable = append(r.Unmappable, chown.UnmappableID{Kind: "uid", ID: st.Uid, Count: 1, Examples: []string{src}})
	}
	if !okG {
		r.Unmappable = append(r.Unmappable, chown.UnmappableID{Kind: "gid", ID: st.Gid, Count: 1, Examples: []string{src}})
	}
	if okU && okG {
		r.Owners = []chown.OwnerChange{{FromUID: st.Uid, FromGID: st.Gid, ToUID: toU, ToGID: toG, Count: 1}}
	} else {
		r.UnmappableEntries = 1
	}
	if st.Mode&syscall.S_ISUID != 0 {
		r.Setuid = 1
	}
	if st.Mode&syscall.S_ISGID != 0 {
		r.Setgid = 1
	}
	return r
}

// checkSameFS refuses --volumes move when a volume's data cannot be renamed
// into the target's data root: the test apply makes (checkVolumeMove), so a
// dry run and a real run agree. One filesystem is enough: where the two are
// different mounts of it (dockerd bind-mounts /var/lib/docker onto itself)
// the rename goes through a clone of a mount holding both.
func (b *builder) checkSameFS(name, src string) {
	dst := moveTargetDir(b.p.Target.DataRoot, b.opts.User.Home)
	err := checkVolumeMove(name, src, dst)
	var xfs *SameFilesystemError
	switch {
	case errors.As(err, &xfs):
		b.p.addf(CodeMoveCrossFS, Blocker, "", name, "use --volumes copy",
			"volume %s cannot be moved into the target's data root %s: %s", name, dst, xfs.Reason)
	case err != nil:
		b.p.addf(CodeMoveCrossFS, Blocker, "", name, "use --volumes copy",
			"volume %s cannot be checked for a move into %s: %v", name, dst, err)
	}
}

// moveResumed reports (and notes in the plan) a volume whose move an
// earlier, unfinished run began and whose source data is gone: apply
// resumes the move, so the source is neither audited nor checked.
func (b *builder) moveResumed(name, src string) bool {
	if b.opts.Volumes != VolumesMove || b.opts.MovedVolume == nil || !b.opts.MovedVolume(name) {
		return false
	}
	if _, err := os.Lstat(src); !errors.Is(err, os.ErrNotExist) {
		return false
	}
	b.p.addf(CodeResume, Info, "", name, "", "volume %s was moved into the target by an earlier run; the move resumes", name)
	return true
}

// ownershipFindings turns an audit into findings.
func (b *builder) ownershipFindings(what string, r *chown.Report) {
	if r == nil {
		return
	}
	if len(r.Unmappable) > 0 {
		sev, hint := Blocker, "widen the user's /etc/subuid and /etc/subgid range, or pass --map-unmappable-to-overflow"
		if b.opts.MapUnmappableToOverflow {
			sev, hint = Warning, ""
		}
		for _, u := range r.Unmappable {
			b.p.addf(CodeUnmappable, sev, "", what, hint, "%s: %d files owned by %s %d, which the user's range cannot map (e.g. %s)",
				what, u.Count, u.Kind, u.ID, strings.Join(u.Examples, ", "))
		}
	}
	if r.Devices > 0 {
		sev, hint := Blocker, "remove them, or pass --skip-devices to leave them out"
		if b.opts.SkipDevices {
			sev, hint = Warning, ""
		}
		b.p.addf(CodeDeviceNodes, sev, "", what, hint, "%s holds %d device nodes; a rootless container cannot create or use them", what, r.Devices)
	}
	for _, m := range r.Mounts {
		b.p.addf(CodeNestedMount, Warning, "", m, "migrate the nested filesystem on its own", "%s has a mount point at %s; unroot does not descend into it", what, m)
	}
	if r.ExternalHardlinks > 0 {
		b.p.addf(CodeExternalHardlink, Blocker, "", what, "remove the extra links (find -links +1) or copy the files so they stop sharing an inode with files outside",
			"%s has %d files hardlinked to paths outside it; shifting them would give those outside files away (e.g. %s)", what, r.ExternalHardlinks, strings.Join(r.Examples["external_hardlinks"], ", "))
	}
	if r.MalformedXattrs > 0 {
		b.p.addf(CodeMalformedXattr, Blocker, "", what, "inspect them with 'getfattr -d -m - -e hex PATH'",
			"%s has %d files whose ACL or capability xattr does not decode (e.g. %s)", what, r.MalformedXattrs, strings.Join(r.Examples["malformed_xattrs"], ", "))
	}
	if r.EscapingSymlinks > 0 {
		b.p.addf(CodeEscapingSymlinks, Info, "", what, "", "%s has %d symlinks pointing outside it; they are kept as symlinks and never followed", what, r.EscapingSymlinks)
	}
}

func (b *builder) summarize() {
	p := b.p
	sortFindings(p.Findings)
	s := &p.Summary
	for _, sv := range p.Services {
		if sv.AlreadyMigrated {
			s.Skipped++
			continue
		}
		s.Services++
		for _, pt := range sv.Ports {
			if pt.Rewritten {
				s.PortsRewritten++
			}
		}
	}
	for _, im := range p.Images {
		if !im.InTarget {
			s.Images++
			s.ImageBytes += im.Size
		}
	}
	s.Volumes, s.Binds, s.Networks = len(p.Volumes), 0, 0
	for _, n := range p.Networks {
		if !n.InTarget {
			s.Networks++
		}
	}
	add := func(r *chown.Report) {
		if r == nil {
			return
		}
		s.Files += r.Files
		s.Bytes += r.Bytes
		for _, o := range r.Owners {
			s.OwnerChanges += o.Count
		}
	}
	for _, v := range p.Volumes {
		add(v.Audit)
	}
	for _, bd := range p.Binds {
		if bd.Action == "shift" {
			s.Binds++
		}
		add(bd.Audit)
	}
	for _, f := range p.Findings {
		switch f.Severity {
		case Blocker:
			s.Blockers++
		case Warning:
			s.Warnings++
		}
	}
	s.Applicable = s.Blockers == 0
}
