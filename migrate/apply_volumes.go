package migrate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/moby/moby/client"
	"golang.org/x/sys/unix"

	"github.com/unroot/unroot/chown"
	"github.com/unroot/unroot/inventory"
)

// ChownFiles is the production [FileOps]: the chown package's walker.
type ChownFiles struct{}

// Audit walks root and counts.
func (ChownFiles) Audit(ctx context.Context, root string, o chown.Options) (*chown.Report, error) {
	return chown.Audit(ctx, root, o)
}

// Copy copies src to dst shifting owners.
func (ChownFiles) Copy(ctx context.Context, src, dst string, o chown.Options) (*chown.Report, error) {
	return chown.Copy(ctx, src, dst, o)
}

// Shift shifts root in place, journaled.
func (ChownFiles) Shift(ctx context.Context, root string, o chown.Options) (*chown.Report, error) {
	return chown.Shift(ctx, root, o)
}

// Reverse undoes a Shift from its journal.
func (ChownFiles) Reverse(ctx context.Context, root string, o chown.Options) (*chown.Report, error) {
	return chown.Reverse(ctx, root, o)
}

// VolumeVerifyError says a copied volume does not match its source.
type VolumeVerifyError struct {
	Volume string
	What   string
}

func (e *VolumeVerifyError) Error() string {
	return fmt.Sprintf("volume %s: copy does not match the source: %s", e.Volume, e.What)
}

// Hint says the source is intact.
func (e *VolumeVerifyError) Hint() string {
	return "the source volume is untouched; check free space and errors in the target user's home, then run again"
}

// SameFilesystemError refuses --volumes move when the source volume's data
// cannot be renamed into the target: different filesystems, or one
// filesystem with no mount of it that holds both (see [RenameDir]).
type SameFilesystemError struct {
	Volume, Source, Target string
	// Reason says why, from [CrossFilesystemError].
	Reason string
}

func (e *SameFilesystemError) Error() string {
	return fmt.Sprintf("volume %s: --volumes move cannot rename %s into %s: %s", e.Volume, e.Source, e.Target, e.Reason)
}

// Hint suggests copy mode.
func (e *SameFilesystemError) Hint() string {
	return "use --volumes copy (the default), which works across filesystems and keeps the source"
}

// journalDir is where the journal of an in-place shift of kind ("volume" or
// "bind") and key lives.
func (a *applier) journalDir(kind, key string) string {
	return JournalDir(a.st.Dir(), kind, key)
}

// JournalDir is the journal directory under the state directory for an
// in-place shift of a volume or bind path.
func JournalDir(stateDir, kind, key string) string {
	h := sha256.Sum256([]byte(key))
	base := filepath.Base(key)
	if len(base) > 40 {
		base = base[:40]
	}
	return filepath.Join(stateDir, "journals", kind+"-"+base+"-"+hex.EncodeToString(h[:6]))
}

func (a *applier) chownOptions() chown.Options {
	return chown.Options{Map: a.o.Map, MapUnmappableToOverflow: a.o.MapUnmappableToOverflow, AllowDevices: a.o.SkipDevices, Workers: a.o.Workers}
}

// walkTotals is what the plan's audit expects a walk of the tree to pass:
// entries in the unit of [chown.Options.Progress], and bytes.
func walkTotals(r *chown.Report) (entries, bytes int64) {
	if r == nil {
		return 0, 0
	}
	return r.Files + r.Dirs + r.Symlinks, r.Bytes
}

// volumeTotals is [walkTotals] of the plan's audit of volume name.
func (a *applier) volumeTotals(name string) (entries, bytes int64) {
	if vp := a.volumePlan(name); vp != nil {
		return walkTotals(vp.Audit)
	}
	return 0, 0
}

func (a *applier) volumePlan(name string) *VolumePlan {
	for i := range a.plan.Volumes {
		if a.plan.Volumes[i].Name == name {
			return &a.plan.Volumes[i]
		}
	}
	return nil
}

func (a *applier) bindPlan(src string) *BindPlan {
	for i := range a.plan.Binds {
		if a.plan.Binds[i].Source == src {
			return &a.plan.Binds[i]
		}
	}
	return nil
}

// ensureVolume creates the volume in the target (same name, driver, options,
// labels) and records where its data lives.
func (a *applier) ensureVolume(ctx context.Context, name string) (*VolumeState, error) {
	vp := a.volumePlan(name)
	if vp == nil {
		return nil, fmt.Errorf("volume %s is not in the plan", name)
	}
	vs := a.st.Volumes[name]
	if vs == nil {
		vs = &VolumeState{Name: name, Mode: a.plan.VolumesMode, SourcePath: vp.SourcePath}
		a.st.Volumes[name] = vs
	}
	if vs.TargetPath != "" {
		return vs, nil
	}
	existed := false
	if res, err := a.o.Target.VolumeInspect(ctx, name, client.VolumeInspectOptions{}); err == nil {
		existed = true
		vs.TargetPath = res.Volume.Mountpoint
	} else if !inventory.IsNotFound(err) {
		return nil, fmt.Errorf("inspect volume %s in target: %w", name, err)
	}
	if !existed {
		res, err := a.o.Target.VolumeCreate(ctx, client.VolumeCreateOptions{Name: name, Driver: vp.Driver, DriverOpts: cloneMap(vp.Options), Labels: cloneMap(vp.Labels)})
		if err != nil {
			return nil, fmt.Errorf("create volume %s in target: %w", name, err)
		}
		vs.Created = true
		vs.TargetPath = res.Volume.Mountpoint
		a.logf("volume %s: created in target", name)
	} else if vp.CopyData && !vs.Created {
		// A volume the target had before unroot: copying with delete would
		// wipe its data.
		empty, err := dirEmpty(vs.TargetPath)
		if err != nil {
			return nil, fmt.Errorf("volume %s in target: %w", name, err)
		}
		if !empty {
			return nil, fmt.Errorf("volume %s already exists in the target and holds data; unroot will not overwrite it", name)
		}
	}
	if vs.TargetPath == "" {
		return nil, fmt.Errorf("volume %s: the target reports no mountpoint", name)
	}
	if err := a.checkTargetPath(vs); err != nil {
		return nil, err
	}
	return vs, a.save()
}

// UnsafeTargetError refuses a target volume path that unroot, running as
// root, must not write to: the rootless daemon that reports it runs as the
// user, so its answer is not trusted.
type UnsafeTargetError struct {
	Volume, Path, Reason string
}

func (e *UnsafeTargetError) Error() string {
	return fmt.Sprintf("volume %s: refusing target path %s: %s", e.Volume, e.Path, e.Reason)
}

// Hint names the expected layout.
func (e *UnsafeTargetError) Hint() string {
	return "the rootless daemon must keep its data under the user's ~/.local/share/docker, with no symlinks on the way"
}

// checkTargetPath makes sure a target volume path is where a rootless
// daemon of this user keeps volumes (~/.local/share/docker/volumes/NAME/_data,
// from the passwd home, not from the daemon) and that no component of it is
// a symlink, so a copy, delta sync (which deletes) or rename as root cannot
// be steered elsewhere. It runs right before each use.
func (a *applier) checkTargetPath(vs *VolumeState) error {
	home := a.plan.User.Home
	if home == "" {
		return &UnsafeTargetError{vs.Name, vs.TargetPath, "the user's home directory is unknown"}
	}
	want := filepath.Join(home, ".local/share/docker/volumes", vs.Name, "_data")
	if filepath.Clean(vs.TargetPath) != want {
		return &UnsafeTargetError{vs.Name, vs.TargetPath, "it is not " + want}
	}
	return noSymlinks(vs.Name, want)
}

// noSymlinks checks every component of path (absolute) is a real
// directory.
func noSymlinks(name, path string) error {
	cur := "/"
	for _, part := range strings.Split(strings.TrimPrefix(path, "/"), "/") {
		cur = filepath.Join(cur, part)
		fi, err := os.Lstat(cur)
		if errors.Is(err, os.ErrNotExist) && cur == path {
			return nil // a move renames the data here
		}
		if err != nil {
			return fmt.Errorf("volume %s: %w", name, err)
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			return &UnsafeTargetError{name, path, cur + " is a symlink"}
		}
		if !fi.IsDir() {
			return &UnsafeTargetError{name, path, cur + " is not a directory"}
		}
	}
	return nil
}

func dirEmpty(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	_, err = f.Readdirnames(1)
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	return false, err
}

// checkVolumeMove is the one test of whether a volume's data directory src
// can be renamed into the directory dstDir: the plan's finding
// (move-cross-filesystem) and apply's refusals all come from it. It is
// [CheckRenameDir]: one filesystem (st_dev) is needed, not one mount.
func checkVolumeMove(name, src, dstDir string) error {
	err := CheckRenameDir(src, dstDir)
	var xfs *CrossFilesystemError
	if errors.As(err, &xfs) {
		return &SameFilesystemError{Volume: name, Source: src, Target: dstDir, Reason: xfs.Reason}
	}
	if err != nil {
		return fmt.Errorf("volume %s: %w", name, err)
	}
	return nil
}

// moveTargetDir is the directory a plan checks a move against before the
// target volume exists: the rootless data root's volumes directory, or the
// data root itself while it has none.
func moveTargetDir(dataRoot, home string) string {
	if dataRoot == "" {
		dataRoot = filepath.Join(home, ".local/share/docker")
	}
	dst := filepath.Join(dataRoot, "volumes")
	if _, err := os.Lstat(dst); err != nil {
		return dataRoot
	}
	return dst
}

// VolumeMoveStarted reports whether a run began to move the volume name
// (it saves the journal directory before it renames anything) and the
// move was not rolled back: its source data may then be gone already.
func (st *State) VolumeMoveStarted(name string) bool {
	vs := st.Volumes[name]
	return vs != nil && vs.Mode == VolumesMove && (vs.Moved || vs.JournalDir != "")
}

// moveResumes reports whether a volume's move was begun by an earlier run
// and its source is gone: the rename happened (or the data sits in the
// target), so the source is not checked again and moveVolume resumes.
func moveResumes(st *State, name, src string) bool {
	if !st.VolumeMoveStarted(name) {
		return false
	}
	_, err := os.Lstat(src)
	return errors.Is(err, os.ErrNotExist)
}

// checkMove refuses --volumes move before anything changes when the
// volume's data cannot be renamed into the target volume's directory.
func (a *applier) checkMove(vs *VolumeState) error {
	if vs.Mode != VolumesMove || vs.Moved || moveResumes(a.st, vs.Name, vs.SourcePath) {
		return nil
	}
	return checkVolumeMove(vs.Name, vs.SourcePath, filepath.Dir(vs.TargetPath))
}

// checkMoves refuses a move-mode plan whose volumes cannot be renamed into
// the target's data root, before Apply changes anything.
func (a *applier) checkMoves() error {
	if a.plan.VolumesMode != VolumesMove {
		return nil
	}
	dst := moveTargetDir(a.plan.Target.DataRoot, a.plan.User.Home)
	for _, vp := range a.plan.Volumes {
		if !vp.CopyData || moveResumes(a.st, vp.Name, vp.SourcePath) {
			continue
		}
		if vs := a.st.Volumes[vp.Name]; vs != nil && vs.Moved {
			continue
		}
		if err := checkVolumeMove(vp.Name, vp.SourcePath, dst); err != nil {
			return err
		}
	}
	return nil
}

// presync copies a volume while the source still runs, so the final sync
// after the stop only carries what changed since.
func (a *applier) presync(ctx context.Context, vs *VolumeState) error {
	vp := a.volumePlan(vs.Name)
	if vs.Mode != VolumesCopy || vs.Synced || vp == nil || !vp.CopyData {
		return nil
	}
	if _, err := a.copyVolume(ctx, vs, "pre-sync"); err != nil {
		return err
	}
	vs.Presynced = true
	return a.save()
}

func (a *applier) copyVolume(ctx context.Context, vs *VolumeState, what string) (*chown.Report, error) {
	entries, bytes := a.volumeTotals(vs.Name)
	if err := a.checkTargetPath(vs); err != nil {
		return nil, err
	}
	task := a.o.Progress.Begin("volume", vs.Name+" ("+what+")", bytes, entries)
	o := a.chownOptions()
	o.Update = true
	o.Progress = progressFunc(task)
	rep, err := a.o.Files.Copy(ctx, vs.SourcePath, vs.TargetPath, o)
	task.Done(err)
	if err != nil {
		return nil, fmt.Errorf("copy volume %s: %w", vs.Name, err)
	}
	return rep, nil
}

// finalSync brings a volume up to date with its stopped source: a delta
// copy and a verification (copy mode), or a rename and an in-place shift
// (move mode).
func (a *applier) finalSync(ctx context.Context, vs *VolumeState) error {
	vp := a.volumePlan(vs.Name)
	if vs.Synced || vp == nil || !vp.CopyData {
		return nil
	}
	if vs.Mode == VolumesMove {
		return a.moveVolume(ctx, vs)
	}
	rep, err := a.copyVolume(ctx, vs, "final sync")
	if err != nil {
		return err
	}
	if err := a.verifyCopy(ctx, vs, rep); err != nil {
		return err
	}
	vs.Synced = true
	return a.save()
}

// verifyCopy audits the copy and compares its counts, bytes and owners
// with the source's: the source's owners sent through the map must be the
// copy's. src is the census the final sync's walk of the stopped source
// made (the same walker as an audit's); the source is audited again only
// when there is none. One walk fewer inside the downtime: a service with a
// 100k-file volume (ext4) was down 0.74 s instead of 0.85 s (medians of 3
// alternated runs).
func (a *applier) verifyCopy(ctx context.Context, vs *VolumeState, src *chown.Report) error {
	o := a.chownOptions()
	if src == nil {
		var err error
		if src, err = a.o.Files.Audit(ctx, vs.SourcePath, o); err != nil {
			return fmt.Errorf("verify volume %s: audit source: %w", vs.Name, err)
		}
	}
	dst, err := a.o.Files.Audit(ctx, vs.TargetPath, o)
	if err != nil {
		return fmt.Errorf("verify volume %s: audit copy: %w", vs.Name, err)
	}
	counts := []struct {
		what     string
		src, dst int64
	}{
		{"files", src.Files, dst.Files}, {"directories", src.Dirs, dst.Dirs}, {"symlinks", src.Symlinks, dst.Symlinks},
		{"hardlinks", src.Hardlinks, dst.Hardlinks}, {"bytes", src.Bytes, dst.Bytes},
	}
	for _, c := range counts {
		if c.src != c.dst {
			return &VolumeVerifyError{Volume: vs.Name, What: fmt.Sprintf("%d %s in the source, %d in the copy", c.src, c.what, c.dst)}
		}
	}
	if !a.o.MapUnmappableToOverflow && !src.OwnersTruncated && !dst.OwnersTruncated {
		want, got := map[[2]uint32]int64{}, map[[2]uint32]int64{}
		for _, oc := range src.Owners {
			want[[2]uint32{oc.ToUID, oc.ToGID}] += oc.Count
		}
		for _, oc := range dst.Owners {
			got[[2]uint32{oc.FromUID, oc.FromGID}] += oc.Count
		}
		for k, n := range want {
			if got[k] != n {
				return &VolumeVerifyError{Volume: vs.Name, What: fmt.Sprintf("%d entries should be owned by %d:%d, %d are", n, k[0], k[1], got[k])}
			}
		}
	}
	vs.Files, vs.Bytes = src.Files, src.Bytes
	a.logf("volume %s: verified %d files, %s, owners mapped", vs.Name, src.Files, chown.HumanBytes(src.Bytes))
	return nil
}

// moveVolume renames the source data into the target volume and shifts it
// in place with a journal. Each step can be killed and resumed: the
// journal directory is recorded before the rename, which never replaces an
// entry, and the shift resumes from its journal.
func (a *applier) moveVolume(ctx context.Context, vs *VolumeState) error {
	if vs.JournalDir == "" {
		vs.JournalDir = a.journalDir("volume", vs.Name)
		// saved before anything is renamed: a rollback after a crash in
		// between then looks for the data in the target
		if err := a.save(); err != nil {
			return err
		}
	}
	if !vs.Moved {
		if err := a.renameIntoTarget(vs); err != nil {
			return err
		}
		vs.Moved = true
		if err := a.save(); err != nil {
			return err
		}
	}
	if err := a.checkTargetPath(vs); err != nil {
		return err
	}
	o := a.chownOptions()
	o.JournalDir = vs.JournalDir
	entries, bytes := a.volumeTotals(vs.Name)
	task := a.o.Progress.Begin("volume", vs.Name+" (shift in place)", bytes, entries)
	o.Progress = progressFunc(task)
	rep, err := a.o.Files.Shift(ctx, vs.TargetPath, o)
	task.Done(err)
	if err != nil {
		return fmt.Errorf("shift volume %s: %w", vs.Name, err)
	}
	vs.Synced, vs.Files, vs.Bytes = true, rep.Files, rep.Bytes
	return a.save()
}

// renameIntoTarget replaces the empty directory the rootless daemon made
// for the volume with the source's data directory. A run killed after the
// rename finds the source gone and the data in the target; one killed
// after removing the empty target finds no target and renames.
func (a *applier) renameIntoTarget(vs *VolumeState) error {
	if err := a.checkTargetPath(vs); err != nil {
		return err
	}
	_, srcErr := os.Lstat(vs.SourcePath)
	empty, tgtErr := dirEmpty(vs.TargetPath)
	switch {
	case errors.Is(srcErr, os.ErrNotExist):
		if tgtErr != nil {
			return fmt.Errorf("move volume %s: neither %s nor %s exists", vs.Name, vs.SourcePath, vs.TargetPath)
		}
		return nil // renamed by a run killed before it saved the state
	case srcErr != nil:
		return fmt.Errorf("move volume %s: %w", vs.Name, srcErr)
	}
	if err := a.checkMove(vs); err != nil {
		return err
	}
	switch {
	case tgtErr == nil && !empty:
		return fmt.Errorf("move volume %s: target %s is not empty", vs.Name, vs.TargetPath)
	case tgtErr == nil:
		if err := os.Remove(vs.TargetPath); err != nil {
			return fmt.Errorf("move volume %s: %w", vs.Name, err)
		}
	case !errors.Is(tgtErr, os.ErrNotExist): // else removed by a killed run
		return fmt.Errorf("move volume %s: %w", vs.Name, tgtErr)
	}
	if err := RenameDir(vs.SourcePath, vs.TargetPath); err != nil {
		if rerr := emptyTargetDir(vs.TargetPath, a.o.Map); rerr != nil {
			err = errors.Join(err, rerr)
		}
		var xfs *CrossFilesystemError
		if errors.As(err, &xfs) {
			return &SameFilesystemError{Volume: vs.Name, Source: vs.SourcePath, Target: filepath.Dir(vs.TargetPath), Reason: xfs.Reason}
		}
		return fmt.Errorf("move volume %s: %w", vs.Name, err)
	}
	a.logf("volume %s: renamed into %s", vs.Name, vs.TargetPath)
	return nil
}

// emptyTargetDir (re)creates the empty _data directory of a target volume
// as the rootless daemon makes it: mode 0755, owned by the user (the
// container's root). An existing empty directory is only given that owner.
// Every step goes through the parent's fd, reached without following a
// symlink anywhere on the way: the user owns the parent and could swap a
// component for a symlink between a check and the mkdir.
func emptyTargetDir(path string, m chown.IDMap) error {
	pfd, err := openDirNoSymlinks(unix.AT_FDCWD, filepath.Dir(path), false)
	if err != nil {
		return fmt.Errorf("open %s: %w", filepath.Dir(path), err)
	}
	defer unix.Close(pfd)
	name := filepath.Base(path)
	if err := unix.Mkdirat(pfd, name, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("recreate %s: %w", path, err)
	}
	fd, err := unix.Openat(pfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer unix.Close(fd)
	if uid, ok := m.HostUID(0); ok {
		gid, _ := m.HostGID(0)
		if err := unix.Fchown(fd, int(uid), int(gid)); err != nil {
			return fmt.Errorf("chown %s: %w", path, err)
		}
	}
	if err := unix.Fchmod(fd, 0o755); err != nil {
		return fmt.Errorf("chmod %s: %w", path, err)
	}
	return nil
}

// shiftBind shifts a bind-mounted host path in place with a journal.
func (a *applier) shiftBind(ctx context.Context, src string) error {
	bp := a.bindPlan(src)
	if bp == nil || bp.Action != "shift" {
		return nil
	}
	bs := a.st.Binds[src]
	if bs == nil {
		bs = &BindState{Source: src, JournalDir: a.journalDir("bind", src)}
		a.st.Binds[src] = bs
		// recorded before the shift begins, so a rollback after a crash
		// mid-shift finds the journal
		if err := a.save(); err != nil {
			return err
		}
	}
	if bs.Shifted {
		return nil
	}
	o := a.chownOptions()
	o.JournalDir = bs.JournalDir
	entries, bytes := walkTotals(bp.Audit)
	task := a.o.Progress.Begin("bind", src+" (shift in place)", bytes, entries)
	o.Progress = progressFunc(task)
	_, err := a.o.Files.Shift(ctx, src, o)
	task.Done(err)
	if err != nil {
		return fmt.Errorf("shift bind %s: %w", src, err)
	}
	bs.Shifted, bs.Reversed = true, false
	return a.save()
}

// unitVolumes lists the volumes and binds of a unit, each once.
func unitMounts(unit []*Service) (vols, binds []string) {
	for _, s := range unit {
		for _, v := range s.Volumes {
			if !slices.Contains(vols, v) {
				vols = append(vols, v)
			}
		}
		for _, b := range s.Binds {
			if !slices.Contains(binds, b) {
				binds = append(binds, b)
			}
		}
	}
	return vols, binds
}
