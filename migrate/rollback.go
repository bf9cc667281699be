package migrate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/unroot/unroot/chown"
	"github.com/unroot/unroot/inventory"
)

// RollbackOptions say what to put back. Source, Target, Files, State and
// Map are required; the caller holds the state lock.
type RollbackOptions struct {
	Source SourceAPI
	Target TargetAPI
	Files  FileOps
	State  *State
	Map    chown.IDMap
	// All rolls back every service the state knows; else Containers.
	All        bool
	Containers []string
	// Purge also removes the target volumes unroot created for them.
	Purge    bool
	Progress Progress
}

// ErrNotMigrated is matched when a named container has no migration record.
var ErrNotMigrated = errors.New("no migration recorded")

// NotMigratedError names a container the state does not know.
type NotMigratedError struct{ Container string }

func (e *NotMigratedError) Error() string {
	return fmt.Sprintf("%s: no migration recorded in the state", e.Container)
}

// Is matches [ErrNotMigrated].
func (e *NotMigratedError) Is(t error) bool { return t == ErrNotMigrated }

// Hint points at status.
func (e *NotMigratedError) Hint() string { return "'unroot status' lists the services unroot migrated" }

// Rollback puts the rootful services back as they were before their
// migration: the target container is stopped and removed, bind mounts and
// moved volumes are shifted back from their journals (and moved volumes
// renamed back), the source's restart policy is restored and the source
// started again if it was running. Target volumes of copy mode are kept
// unless Purge. It returns the containers rolled back.
func Rollback(ctx context.Context, o RollbackOptions) ([]string, error) {
	var names []string
	if o.All {
		for n, ss := range o.State.Services {
			if ss.Phase != PhaseRolledBack {
				names = append(names, n)
			}
		}
		slices.Sort(names)
	} else {
		for _, n := range o.Containers {
			if o.State.Service(n) == nil {
				return nil, &NotMigratedError{Container: n}
			}
			names = append(names, n)
		}
	}
	if o.Progress == nil {
		o.Progress = NoProgress{}
	}
	env := &rollbackEnv{src: o.Source, tgt: o.Target, files: o.Files, st: o.State, m: o.Map, prog: o.Progress}
	return names, rollbackServices(ctx, env, names, o.Purge)
}

// rollbackEnv is what a rollback needs; apply's automatic rollback and the
// verb share it.
type rollbackEnv struct {
	src   SourceAPI
	tgt   TargetAPI
	files FileOps
	st    *State
	m     chown.IDMap
	unm   bool
	prog  Progress
}

func (a *applier) rollbackEnv() *rollbackEnv {
	return &rollbackEnv{src: a.o.Source, tgt: a.o.Target, files: a.o.Files, st: a.st, m: a.o.Map, unm: a.o.MapUnmappableToOverflow, prog: a.o.Progress}
}

// rollbackServices undoes names' migrations in reverse order. It goes on
// after an error so as much as possible is put back, and returns all errors.
func rollbackServices(ctx context.Context, e *rollbackEnv, names []string, purge bool) error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	var states []*ServiceState
	for _, n := range names {
		if ss := e.st.Service(n); ss != nil {
			states = append(states, ss)
		}
	}
	// 1. Target containers away, so nothing writes the shifted data.
	for i := len(states) - 1; i >= 0; i-- {
		add(e.removeTarget(ctx, states[i]))
	}
	// 2. Bind mounts and moved volumes back to their original owners.
	for _, b := range mountsOf(states, func(ss *ServiceState) []string { return ss.Binds }) {
		add(e.reverseBind(ctx, b, names))
	}
	for _, v := range mountsOf(states, func(ss *ServiceState) []string { return ss.Volumes }) {
		add(e.restoreVolume(ctx, v, names, purge))
	}
	// 3. The sources: restart policy, then start in order.
	for _, ss := range states {
		add(e.restoreSource(ctx, ss))
	}
	// 4. The images holding committed writable layers: the source container
	// still has its layer, and a later migration commits afresh.
	if len(errs) == 0 {
		for _, ss := range states {
			e.dropCommitted(ctx, ss)
		}
	}
	for _, ss := range states {
		if len(errs) == 0 {
			ss.Phase = PhaseRolledBack
			ss.Finished = time.Now().UTC()
			ss.TargetID = ""
		}
	}
	add(e.st.Save())
	return errors.Join(errs...)
}

// dropCommitted removes the image a cutover committed from the source
// container's writable layer, from both daemons. An image still in use (a
// container someone ran from it) or already gone is left as it is: it is
// never worth failing a rollback for.
func (e *rollbackEnv) dropCommitted(ctx context.Context, ss *ServiceState) {
	ref := ss.CommittedImage
	if ref == "" {
		// A run killed between the commit and its record: the image is
		// this cutover's if it carries unroot's comment and is no older.
		ref = CommitRepo + ":" + commitTag(ss.Container)
		if !committedSince(ctx, e.src, ss, ref) {
			return
		}
	}
	for _, d := range []struct {
		name string
		rm   func(context.Context, string, client.ImageRemoveOptions) (client.ImageRemoveResult, error)
	}{{"target", e.tgt.ImageRemove}, {"source", e.src.ImageRemove}} {
		_, err := d.rm(ctx, ref, client.ImageRemoveOptions{PruneChildren: true})
		switch {
		case err == nil:
			e.prog.Logf("%s: committed image %s removed from the %s", ss.Container, ref, d.name)
		case inventory.IsNotFound(err):
		default:
			e.prog.Logf("%s: committed image %s left in the %s: %v", ss.Container, ref, d.name, err)
		}
	}
	ss.CommittedImage = ""
}

func mountsOf(states []*ServiceState, f func(*ServiceState) []string) []string {
	var out []string
	for _, ss := range states {
		for _, m := range f(ss) {
			if !slices.Contains(out, m) {
				out = append(out, m)
			}
		}
	}
	return out
}

// usedElsewhere reports whether a service outside names whose migration is
// live (not rolled back) uses the mount.
func (e *rollbackEnv) usedElsewhere(names []string, uses func(*ServiceState) bool) string {
	for n, ss := range e.st.Services {
		if slices.Contains(names, n) || ss.Phase == PhaseRolledBack || !ss.Phase.AtLeast(PhaseSynced) && ss.Phase != PhaseFailed {
			continue
		}
		if uses(ss) {
			return n
		}
	}
	return ""
}

func (e *rollbackEnv) removeTarget(ctx context.Context, ss *ServiceState) error {
	ref := ss.TargetID
	if ref == "" {
		if !ss.Phase.AtLeast(PhaseCreating) && ss.Phase != PhaseFailed {
			return nil
		}
		ref = ss.Container
	}
	res, err := e.tgt.ContainerInspect(ctx, ref, client.ContainerInspectOptions{})
	if inventory.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("inspect target %s: %w", ss.Container, err)
	}
	if ss.TargetID == "" && ss.Phase == PhaseFailed && !ss.Phase.AtLeast(PhaseCreating) {
		// Failed before creating: a container of that name is not ours.
		return nil
	}
	if _, err := e.tgt.ContainerRemove(ctx, res.Container.ID, client.ContainerRemoveOptions{Force: true}); err != nil && !inventory.IsNotFound(err) {
		return fmt.Errorf("remove target %s: %w", ss.Container, err)
	}
	e.prog.Logf("%s: target container removed", ss.Container)
	return nil
}

func (e *rollbackEnv) reverseBind(ctx context.Context, src string, names []string) error {
	bs := e.st.Binds[src]
	if bs == nil || !bs.Shifted && !journalExists(bs.JournalDir) {
		return nil
	}
	if !bs.Shifted {
		// a run killed before its shift journaled anything changed nothing
		if s, err := chown.JournalStatus(bs.JournalDir); err == nil && s == "none" {
			return nil
		}
	}
	if other := e.usedElsewhere(names, func(ss *ServiceState) bool { return slices.Contains(ss.Binds, src) }); other != "" {
		return fmt.Errorf("bind %s is also used by migrated %s: roll both back together", src, other)
	}
	rep, err := e.files.Reverse(ctx, src, chown.Options{Map: e.m, MapUnmappableToOverflow: e.unm, JournalDir: bs.JournalDir})
	if err != nil {
		return fmt.Errorf("shift back bind %s: %w", src, err)
	}
	bs.Shifted, bs.Reversed = false, true
	e.prog.Logf("bind %s: owners restored (%d entries)", src, rep.Changed)
	return e.st.Save()
}

func journalExists(dir string) bool {
	if dir == "" {
		return false
	}
	_, err := os.Stat(dir)
	return err == nil
}

// restoreVolume moves a moved volume back (reverse shift, rename) and, with
// purge, removes the target volume unroot created.
func (e *rollbackEnv) restoreVolume(ctx context.Context, name string, names []string, purge bool) error {
	vs := e.st.Volumes[name]
	if vs == nil {
		return nil
	}
	if other := e.usedElsewhere(names, func(ss *ServiceState) bool { return slices.Contains(ss.Volumes, name) }); other != "" {
		if e.st.VolumeMoveStarted(name) {
			return fmt.Errorf("volume %s is also used by migrated %s: roll both back together", name, other)
		}
		return nil
	}
	if e.st.VolumeMoveStarted(name) {
		if err := e.moveBack(ctx, vs); err != nil {
			return err
		}
	}
	if purge && vs.Created {
		if _, err := e.tgt.VolumeRemove(ctx, name, client.VolumeRemoveOptions{}); err != nil && !inventory.IsNotFound(err) {
			return fmt.Errorf("remove target volume %s: %w", name, err)
		}
		delete(e.st.Volumes, name)
		e.prog.Logf("volume %s: removed from target", name)
	} else if !vs.Moved {
		// Kept; a new migration copies it again with a delta sync.
		vs.Synced = false
	}
	return e.st.Save()
}

// moveBack undoes a volume's move: the shift is reversed from its journal,
// the data renamed back to the source (through a clone of a mount when the
// two data roots are different mounts of one filesystem, as the move did)
// and an empty target directory recreated. Which steps are left is read
// from the filesystem, so a rollback killed anywhere, or one after a move
// killed anywhere, finishes the job when run again:
//
//	source gone, target holds the data     reverse, rename back, recreate
//	source back, target gone               recreate the empty target
//	source back, target empty              nothing but the state (done)
//	source there, no move recorded         nothing (the move never renamed)
func (e *rollbackEnv) moveBack(ctx context.Context, vs *VolumeState) error {
	name := vs.Name
	suffix := filepath.Join("/.local/share/docker/volumes", name, "_data")
	if !strings.HasSuffix(filepath.Clean(vs.TargetPath), suffix) {
		return &UnsafeTargetError{name, vs.TargetPath, "it does not end in " + suffix}
	}
	if err := noSymlinks(name, vs.TargetPath); err != nil {
		return err
	}
	_, srcErr := os.Lstat(vs.SourcePath)
	empty, tgtErr := dirEmpty(vs.TargetPath)
	if srcErr != nil && !errors.Is(srcErr, os.ErrNotExist) {
		return fmt.Errorf("move volume %s back: %w", name, srcErr)
	}
	if tgtErr != nil && !errors.Is(tgtErr, os.ErrNotExist) {
		return fmt.Errorf("move volume %s back: %w", name, tgtErr)
	}
	srcThere, tgtThere := srcErr == nil, tgtErr == nil
	switch {
	case !srcThere && !tgtThere:
		return fmt.Errorf("move volume %s back: neither %s nor %s exists", name, vs.SourcePath, vs.TargetPath)
	case !srcThere:
		status := "none"
		if vs.JournalDir != "" {
			var err error
			if status, err = chown.JournalStatus(vs.JournalDir); err != nil {
				return fmt.Errorf("shift back volume %s: %w", name, err)
			}
		}
		// "none": killed before the shift journaled anything, nothing changed
		if vs.Synced || status != "none" {
			rep, err := e.files.Reverse(ctx, vs.TargetPath, chown.Options{Map: e.m, MapUnmappableToOverflow: e.unm, JournalDir: vs.JournalDir})
			if err != nil {
				return fmt.Errorf("shift back volume %s: %w", name, err)
			}
			e.prog.Logf("volume %s: owners restored (%d entries)", name, rep.Changed)
		}
		if err := RenameDir(vs.TargetPath, vs.SourcePath); err != nil {
			return fmt.Errorf("move volume %s back: %w", name, err)
		}
		fallthrough
	case !tgtThere:
		if err := emptyTargetDir(vs.TargetPath, e.m); err != nil {
			return fmt.Errorf("volume %s: recreate empty target: %w", name, err)
		}
	case !empty:
		if !vs.Moved {
			// the move was recorded but its rename never happened
			return nil
		}
		return fmt.Errorf("move volume %s back: both %s and %s hold data; move one aside", name, vs.SourcePath, vs.TargetPath)
	default:
		// back already; the empty target may have missed its owner
		if err := emptyTargetDir(vs.TargetPath, e.m); err != nil {
			return fmt.Errorf("volume %s: recreate empty target: %w", name, err)
		}
	}
	vs.Moved, vs.Synced, vs.Presynced = false, false, false
	// The journal belongs to the shift just undone; a new move starts a
	// new one.
	if vs.JournalDir != "" {
		if err := os.RemoveAll(vs.JournalDir); err != nil {
			return fmt.Errorf("volume %s: remove journal: %w", name, err)
		}
		vs.JournalDir = ""
	}
	e.prog.Logf("volume %s: moved back to %s", name, vs.SourcePath)
	return e.st.Save()
}

// restoreSource puts back the restart policy and starts the source if it
// ran before the migration.
func (e *rollbackEnv) restoreSource(ctx context.Context, ss *ServiceState) error {
	if ss.RestartPolicyChanged {
		if _, err := e.src.ContainerUpdate(ctx, ss.SourceID, client.ContainerUpdateOptions{
			RestartPolicy: &container.RestartPolicy{Name: container.RestartPolicyMode(ss.RestartPolicy.Name), MaximumRetryCount: ss.RestartPolicy.MaximumRetryCount},
		}); err != nil {
			return fmt.Errorf("restore restart policy of %s: %w", ss.Container, err)
		}
		ss.RestartPolicyChanged = false
	}
	if !ss.SourceWasRunning {
		return nil
	}
	res, err := e.src.ContainerInspect(ctx, ss.SourceID, client.ContainerInspectOptions{})
	if err != nil {
		return fmt.Errorf("inspect source %s: %w", ss.Container, err)
	}
	if res.Container.State != nil && res.Container.State.Running {
		return nil
	}
	if _, err := e.src.ContainerStart(ctx, ss.SourceID, client.ContainerStartOptions{}); err != nil {
		return fmt.Errorf("start source %s: %w", ss.Container, err)
	}
	e.prog.Logf("%s: source started again", ss.Container)
	return nil
}
