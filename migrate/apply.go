package migrate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/client"

	"github.com/unroot/unroot/chown"
	"github.com/unroot/unroot/inventory"
)

// SourceAPI is the part of the rootful daemon's API that apply and rollback
// use; a *client.Client satisfies it.
type SourceAPI interface {
	ImageSaver
	ImageInspect(ctx context.Context, imageID string, inspectOpts ...client.ImageInspectOption) (client.ImageInspectResult, error)
	ContainerInspect(ctx context.Context, containerID string, options client.ContainerInspectOptions) (client.ContainerInspectResult, error)
	ContainerStop(ctx context.Context, containerID string, options client.ContainerStopOptions) (client.ContainerStopResult, error)
	ContainerStart(ctx context.Context, containerID string, options client.ContainerStartOptions) (client.ContainerStartResult, error)
	ContainerCommit(ctx context.Context, containerID string, options client.ContainerCommitOptions) (client.ContainerCommitResult, error)
	ContainerUpdate(ctx context.Context, containerID string, options client.ContainerUpdateOptions) (client.ContainerUpdateResult, error)
	ImageRemove(ctx context.Context, imageID string, options client.ImageRemoveOptions) (client.ImageRemoveResult, error)
}

// TargetAPI is the part of the rootless daemon's API that apply and rollback
// use; a *client.Client satisfies it.
type TargetAPI interface {
	ImageLoader
	NetworkCreator
	NetworkConnect(ctx context.Context, networkID string, options client.NetworkConnectOptions) (client.NetworkConnectResult, error)
	VolumeCreate(ctx context.Context, options client.VolumeCreateOptions) (client.VolumeCreateResult, error)
	VolumeInspect(ctx context.Context, volumeID string, options client.VolumeInspectOptions) (client.VolumeInspectResult, error)
	VolumeRemove(ctx context.Context, volumeID string, options client.VolumeRemoveOptions) (client.VolumeRemoveResult, error)
	ContainerInspect(ctx context.Context, containerID string, options client.ContainerInspectOptions) (client.ContainerInspectResult, error)
	ContainerCreate(ctx context.Context, options client.ContainerCreateOptions) (client.ContainerCreateResult, error)
	ContainerStart(ctx context.Context, containerID string, options client.ContainerStartOptions) (client.ContainerStartResult, error)
	ContainerStop(ctx context.Context, containerID string, options client.ContainerStopOptions) (client.ContainerStopResult, error)
	ContainerRemove(ctx context.Context, containerID string, options client.ContainerRemoveOptions) (client.ContainerRemoveResult, error)
	ImageRemove(ctx context.Context, imageID string, options client.ImageRemoveOptions) (client.ImageRemoveResult, error)
}

var (
	_ SourceAPI = (*client.Client)(nil)
	_ TargetAPI = (*client.Client)(nil)
)

// FileOps is the ownership engine apply uses: [ChownFiles] in production,
// a fake in unit tests.
type FileOps interface {
	Audit(ctx context.Context, root string, opts chown.Options) (*chown.Report, error)
	Copy(ctx context.Context, src, dst string, opts chown.Options) (*chown.Report, error)
	Shift(ctx context.Context, root string, opts chown.Options) (*chown.Report, error)
	Reverse(ctx context.Context, root string, opts chown.Options) (*chown.Report, error)
}

// ApplyOptions say how to execute a plan. Source, Target, Files, State and
// Map are required.
type ApplyOptions struct {
	Source SourceAPI
	Target TargetAPI
	Files  FileOps
	// State is the loaded state file; apply records every step in it. The
	// caller holds its lock ([AcquireLock]).
	State *State
	// Map is the rootless id map (the plan's).
	Map                     chown.IDMap
	MapUnmappableToOverflow bool
	SkipDevices             bool
	// Workers bounds the parallelism of each copy or shift; 0 = the chown default (4 directories per CPU).
	Workers int
	// NoCommit drops writable-layer changes instead of committing them.
	NoCommit bool
	// Settle is how long a service without a healthcheck must keep running
	// before its ports are tried; 0 means 3 seconds.
	Settle time.Duration
	// HealthTimeout bounds the wait for "healthy"; 0 derives it from the
	// healthcheck (start period plus retries × (interval + timeout)),
	// at least one and at most ten minutes.
	HealthTimeout time.Duration
	// TargetSocket is the rootless daemon's socket path; binds of the
	// rootful socket are rewritten to it.
	TargetSocket string
	// Limits carries cgroup limits over (only with cgroup v2 delegation).
	Limits bool
	// Progress receives transfer progress and status lines; nil is silent.
	Progress Progress
}

// Outcome is what happened to one service.
type Outcome string

// Outcomes of [Apply] per service.
const (
	OutcomeMigrated        Outcome = "migrated"
	OutcomeAlreadyMigrated Outcome = "already-migrated"
	OutcomeRolledBack      Outcome = "rolled-back"
	OutcomeFailed          Outcome = "failed"
	OutcomeNotRun          Outcome = "not-run"
)

// ServiceResult is one service's outcome.
type ServiceResult struct {
	Container string        `json:"container"`
	Outcome   Outcome       `json:"outcome"`
	Downtime  time.Duration `json:"downtime_ns"`
	Ports     []PortPlan    `json:"ports,omitempty"`
	Error     string        `json:"error,omitempty"`
}

// Result is what [Apply] did, in cutover order.
type Result struct {
	Services []ServiceResult `json:"services"`
}

// ErrBlocked is returned by [Apply] for a plan with blockers.
var ErrBlocked = errors.New("the plan has blockers")

// CutoverError says a service's cutover failed; RolledBack tells whether
// the automatic rollback put the source back.
type CutoverError struct {
	Container  string
	Step       string
	Err        error
	RolledBack bool
	// RollbackErr is the rollback's own error when it did not complete.
	RollbackErr error
}

func (e *CutoverError) Error() string {
	msg := fmt.Sprintf("cutover of %s failed at %s: %v", e.Container, e.Step, e.Err)
	if e.RolledBack {
		return msg + "; rolled back, the source runs again"
	}
	if e.RollbackErr != nil {
		return msg + fmt.Sprintf("; rollback failed too: %v", e.RollbackErr)
	}
	return msg
}

func (e *CutoverError) Unwrap() error { return e.Err }

// Hint says what to do next.
func (e *CutoverError) Hint() string {
	if e.RolledBack {
		return "fix the cause and run the same command again; 'unroot status' shows each service's phase"
	}
	return "run 'unroot rollback --user USER " + e.Container + "' to put the source back, then check 'unroot status'"
}

// Apply executes plan: networks first, then each cutover unit (a service, or
// services that share a volume or bind mount) in plan order. It refuses a
// plan with blockers, skips services the state records as done, resumes
// those an earlier run left midway, and stops at the first failed cutover
// (after its automatic rollback), leaving later services untouched.
func Apply(ctx context.Context, plan *Plan, o ApplyOptions) (*Result, error) {
	if n := len(plan.Blockers()); n > 0 {
		return nil, fmt.Errorf("%w: %d", ErrBlocked, n)
	}
	if o.Progress == nil {
		o.Progress = NoProgress{}
	}
	if o.Settle == 0 {
		o.Settle = 3 * time.Second
	}
	a := &applier{o: o, plan: plan, st: o.State, inv: plan.Inventory(), imageSeen: map[string]bool{}}
	if a.inv == nil {
		return nil, errors.New("apply: the plan has no inventory")
	}
	if a.st.User == "" {
		a.st.User = plan.User.Name
	}
	res := &Result{}
	for _, s := range plan.Services {
		res.Services = append(res.Services, ServiceResult{Container: s.Container, Outcome: OutcomeNotRun, Ports: s.Ports})
	}
	result := func(name string) *ServiceResult {
		for i := range res.Services {
			if res.Services[i].Container == name {
				return &res.Services[i]
			}
		}
		return nil
	}
	for _, s := range plan.Services {
		if s.AlreadyMigrated {
			r := result(s.Container)
			r.Outcome = OutcomeAlreadyMigrated
			if ss := a.st.Service(s.Container); ss != nil {
				r.Downtime, r.Ports = ss.Downtime(), ss.Ports
			}
			o.Progress.Logf("%s: already migrated, nothing to do", s.Container)
		}
	}
	a.expected = a.expectedBytes()
	a.expect()
	if err := a.checkMoves(); err != nil {
		return res, err
	}
	if err := a.networks(ctx); err != nil {
		return res, err
	}
	units := a.units()
	if len(units) > 0 {
		// Every image in one stream while all sources still run: layers
		// shared between services travel once. Each cutover then finds its
		// image present.
		var refs []ImageRef
		for _, ip := range a.plan.Images {
			refs = append(refs, ImageRef{ID: ip.ID, Tags: ip.Tags, Size: ip.Size})
		}
		if _, err := TransferImages(ctx, o.Source, o.Target, refs, o.Progress); err != nil {
			return res, err
		}
	}
	for _, unit := range units {
		if a.unitDone(unit) {
			// Another run finished it between our plan and our lock.
			for _, s := range unit {
				r := result(s.Container)
				r.Outcome, r.Downtime = OutcomeAlreadyMigrated, a.st.Service(s.Container).Downtime()
				o.Progress.Logf("%s: already migrated, nothing to do", s.Container)
			}
			continue
		}
		err := a.cutover(ctx, unit)
		for _, s := range unit {
			r, ss := result(s.Container), a.st.Service(s.Container)
			switch {
			case err == nil:
				r.Outcome, r.Downtime = OutcomeMigrated, ss.Downtime()
			case ss != nil && ss.Phase == PhaseRolledBack:
				r.Outcome, r.Error = OutcomeRolledBack, err.Error()
			default:
				r.Outcome, r.Error = OutcomeFailed, err.Error()
			}
		}
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

// applier carries one Apply run.
type applier struct {
	o    ApplyOptions
	plan *Plan
	st   *State
	inv  *inventory.Inventory
	// expected is the bytes the run expects to move (the overall bar's
	// total); imageSeen holds the images counted against it.
	expected  int64
	imageSeen map[string]bool
}

func (a *applier) save() error {
	if err := a.st.Save(); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	return nil
}

func (a *applier) logf(format string, args ...any) { a.o.Progress.Logf(format, args...) }

// networks creates the plan's user-defined networks the target lacks.
func (a *applier) networks(ctx context.Context) error {
	for _, np := range a.plan.Networks {
		n, err := a.inv.Network(np.Name)
		if err != nil {
			return err
		}
		created, err := EnsureNetwork(ctx, a.o.Target, n)
		if err != nil {
			return err
		}
		if created {
			a.logf("network %s: created", n.Name)
			if !slices.Contains(a.st.Networks, n.Name) {
				a.st.Networks = append(a.st.Networks, n.Name)
			}
			if err := a.save(); err != nil {
				return err
			}
		}
	}
	return nil
}

// units groups the services still to migrate into cutover units: services
// that share a volume or a bind mount are stopped, synced and started
// together, since copying a volume while another writer still runs would
// lose its writes. Units keep the plan's order of their first service.
func (a *applier) units() [][]*Service {
	var todo []*Service
	for _, s := range a.plan.Services {
		if !s.AlreadyMigrated {
			todo = append(todo, s)
		}
	}
	parent := make([]int, len(todo))
	for i := range parent {
		parent[i] = i
	}
	find := func(i int) int {
		for parent[i] != i {
			i = parent[i]
		}
		return i
	}
	owner := map[string]int{}
	for i, s := range todo {
		// A container and those sharing its namespaces stop and start
		// together: the sharers lose their network when it stops.
		keys := []string{"c:" + s.Container}
		if a.inv != nil {
			if c, err := a.inv.Container(s.Container); err == nil {
				for _, mode := range []string{c.NetworkMode, c.PidMode, c.IpcMode} {
					if ref, ok := strings.CutPrefix(mode, "container:"); ok {
						if other, err := a.inv.Container(ref); err == nil {
							keys = append(keys, "c:"+other.Name)
						}
					}
				}
			}
		}
		for _, v := range s.Volumes {
			keys = append(keys, "v:"+v)
		}
		for _, b := range s.Binds {
			if !isDockerSocket(b) {
				keys = append(keys, "b:"+b)
			}
		}
		for _, k := range keys {
			if j, ok := owner[k]; ok {
				ri, rj := find(i), find(j)
				if ri != rj {
					parent[max(ri, rj)] = min(ri, rj)
				}
			} else {
				owner[k] = i
			}
		}
	}
	var out [][]*Service
	idx := map[int]int{}
	for i, s := range todo {
		r := find(i)
		k, ok := idx[r]
		if !ok {
			k = len(out)
			idx[r] = k
			out = append(out, nil)
		}
		out[k] = append(out[k], s)
	}
	return out
}

// expect tells a progress that draws an overall bar how many bytes the
// run still expects to move.
func (a *applier) expect() {
	if e, ok := a.o.Progress.(interface{ Expect(bytes int64) }); ok {
		e.Expect(a.expected)
	}
}

// expectedBytes estimates the bytes the run will move or walk: images the
// target lacks, each copied volume twice (pre-sync and final sync), each
// moved volume and bind mount once (the in-place shift).
func (a *applier) expectedBytes() int64 {
	var n int64
	for _, ip := range a.plan.Images {
		if !ip.InTarget {
			n += ip.Size
		}
	}
	for _, vp := range a.plan.Volumes {
		if vs := a.st.Volumes[vp.Name]; vp.Audit == nil || !vp.CopyData || vs != nil && vs.Synced {
			continue
		}
		if a.plan.VolumesMode == VolumesMove {
			n += vp.Audit.Bytes
		} else {
			n += 2 * vp.Audit.Bytes
		}
	}
	for _, bp := range a.plan.Binds {
		if bp.Action == "shift" && bp.Audit != nil {
			n += bp.Audit.Bytes
		}
	}
	return n
}

// unitDone reports whether the state records every service of unit as done.
func (a *applier) unitDone(unit []*Service) bool {
	for _, s := range unit {
		if ss := a.st.Service(s.Container); ss == nil || ss.Phase != PhaseDone {
			return false
		}
	}
	return true
}

// progressFunc adapts chown's running totals to a task's increments.
func progressFunc(t Task) func(files, bytes int64) {
	var (
		mu           sync.Mutex
		lastF, lastB int64
	)
	return func(files, bytes int64) {
		mu.Lock()
		// Workers report running totals, possibly out of order: only
		// growth is progress.
		df, db := max(files-lastF, 0), max(bytes-lastB, 0)
		lastF, lastB = max(files, lastF), max(bytes, lastB)
		mu.Unlock()
		if df > 0 || db > 0 {
			t.Add(db, df)
		}
	}
}
