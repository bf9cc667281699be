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

// SameFilesystemError refuses --volumes move across filesystems.
type SameFilesystemError struct{ Volume, Source, Target string }

func (e *SameFilesystemError) Error() string {
	return fmt.Sprintf("volume %s: --volumes move needs %s and %s on one mount (rename cannot cross filesystems or bind mounts)", e.Volume, e.Source, e.Target)
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
	} else if !isNotFound(err) {
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

// checkMove refuses --volumes move across filesystems before anything
// changes: the source volume's directory and the target's must be on one
// mount (a bind mount of the same device is another mount, and rename(2)
// across it fails with EXDEV).
func (a *applier) checkMove(vs *VolumeState) error {
	if vs.Mode != VolumesMove || vs.Moved {
		return nil
	}
	return checkSameMount(vs.Name, filepath.Dir(vs.SourcePath), filepath.Dir(vs.TargetPath))
}

func checkSameMount(name, src, dst string) error {
	same, err := SameMount(src, dst)
	if err != nil {
		return fmt.Errorf("volume %s: %w", name, err)
	}
	if !same {
		return &SameFilesystemError{Volume: name, Source: src, Target: dst}
	}
	return nil
}

// SameMount reports whether a and b are on one mount, so a rename between
// them works: same device and, where statx reports it, same mount ID.
func SameMount(a, b string) (bool, error) {
	var sa, sb unix.Statx_t
	mask := unix.STATX_BASIC_STATS | unix.STATX_MNT_ID
	if err := unix.Statx(unix.AT_FDCWD, a, 0, mask, &sa); err != nil {
		return false, fmt.Errorf("stat %s: %w", a, err)
	}
	if err := unix.Statx(unix.AT_FDCWD, b, 0, mask, &sb); err != nil {
		return false, fmt.Errorf("stat %s: %w", b, err)
	}
	if sa.Dev_major != sb.Dev_major || sa.Dev_minor != sb.Dev_minor {
		return false, nil
	}
	if sa.Mask&sb.Mask&unix.STATX_MNT_ID != 0 && sa.Mnt_id != sb.Mnt_id {
		return false, nil
	}
	return true, nil
}

// checkMoves refuses a move-mode plan whose volumes cannot be renamed into
// the target's data root, before Apply changes anything.
func (a *applier) checkMoves() error {
	if a.plan.VolumesMode != VolumesMove {
		return nil
	}
	root := a.plan.Target.DataRoot
	if root == "" {
		root = filepath.Join(a.plan.User.Home, ".local/share/docker")
	}
	dst := filepath.Join(root, "volumes")
	if _, err := os.Stat(dst); err != nil {
		dst = root
	}
	for _, vp := range a.plan.Volumes {
		if !vp.CopyData {
			continue
		}
		if vs := a.st.Volumes[vp.Name]; vs != nil && vs.Moved {
			continue
		}
		if err := checkSameMount(vp.Name, filepath.Dir(vp.SourcePath), dst); err != nil {
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
	var files, bytes int64
	if vp := a.volumePlan(vs.Name); vp != nil && vp.Audit != nil {
		files, bytes = vp.Audit.Files, vp.Audit.Bytes
	}
	if err := a.checkTargetPath(vs); err != nil {
		return nil, err
	}
	task := a.o.Progress.Begin("volume", vs.Name+" ("+what+")", bytes, files)
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
	if _, err := a.copyVolume(ctx, vs, "final sync"); err != nil {
		return err
	}
	if err := a.verifyCopy(ctx, vs); err != nil {
		return err
	}
	vs.Synced = true
	return a.save()
}

// verifyCopy audits source and copy and compares counts, bytes and the
// owners: the source's owners sent through the map must be the copy's.
func (a *applier) verifyCopy(ctx context.Context, vs *VolumeState) error {
	o := a.chownOptions()
	src, err := a.o.Files.Audit(ctx, vs.SourcePath, o)
	if err != nil {
		return fmt.Errorf("verify volume %s: audit source: %w", vs.Name, err)
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
	a.logf("volume %s: verified %d files, %s, owners mapped", vs.Name, src.Files, HumanBytes(src.Bytes))
	return nil
}

// moveVolume renames the source data into the target volume and shifts it
// in place with a journal.
func (a *applier) moveVolume(ctx context.Context, vs *VolumeState) error {
	if vs.JournalDir == "" {
		vs.JournalDir = a.journalDir("volume", vs.Name)
	}
	if !vs.Moved {
		if _, err := os.Lstat(vs.SourcePath); errors.Is(err, os.ErrNotExist) {
			// A crash after the rename and before the state was saved.
			if _, err := os.Lstat(vs.TargetPath); err != nil {
				return fmt.Errorf("move volume %s: neither %s nor %s exists", vs.Name, vs.SourcePath, vs.TargetPath)
			}
		} else {
			if err := a.checkMove(vs); err != nil {
				return err
			}
			if err := a.checkTargetPath(vs); err != nil {
				return err
			}
			empty, err := dirEmpty(vs.TargetPath)
			if err != nil {
				return fmt.Errorf("move volume %s: %w", vs.Name, err)
			}
			if !empty {
				return fmt.Errorf("move volume %s: target %s is not empty", vs.Name, vs.TargetPath)
			}
			if err := os.Remove(vs.TargetPath); err != nil {
				return fmt.Errorf("move volume %s: %w", vs.Name, err)
			}
			if err := os.Rename(vs.SourcePath, vs.TargetPath); err != nil {
				_ = os.Mkdir(vs.TargetPath, 0o755)
				return fmt.Errorf("move volume %s: %w", vs.Name, err)
			}
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
	task := a.o.Progress.Begin("volume", vs.Name+" (shift in place)", 0, 0)
	o.Progress = progressFunc(task)
	rep, err := a.o.Files.Shift(ctx, vs.TargetPath, o)
	task.Done(err)
	if err != nil {
		return fmt.Errorf("shift volume %s: %w", vs.Name, err)
	}
	vs.Synced, vs.Files, vs.Bytes = true, rep.Files, rep.Bytes
	return a.save()
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
	task := a.o.Progress.Begin("bind", src+" (shift in place)", 0, 0)
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
