package migrate

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/unroot/unroot/chown"
	"github.com/unroot/unroot/inventory"
)

// StateVersion is the version of the state file's JSON form.
const StateVersion = 1

// StateFile is the name of the state file under the state directory.
const StateFile = "migrate-state.json"

// lockFile is the name of the lock under the state directory.
const lockFile = "lock"

// Phase is how far one service's cutover got. Phases only move forward,
// except to [PhaseRolledBack] and [PhaseFailed].
type Phase string

// The phases of a cutover, in order.
const (
	PhasePlanned          Phase = "planned"
	PhaseImageTransferred Phase = "image-transferred"
	PhasePresynced        Phase = "presynced"
	PhaseSourceStopped    Phase = "source-stopped"
	PhaseSynced           Phase = "synced"
	// PhaseCreating is recorded before the target container is created, so
	// a crash between the create and the next write is recognised: the
	// container with the service's name in the target is unroot's.
	PhaseCreating      Phase = "creating"
	PhaseTargetStarted Phase = "target-started"
	PhaseDone          Phase = "done"
	PhaseRolledBack    Phase = "rolled-back"
	// PhaseFailed means the cutover failed and the automatic rollback did
	// not complete either; Error says why. 'unroot rollback' retries it.
	PhaseFailed Phase = "failed"
)

var phaseOrder = []Phase{PhasePlanned, PhaseImageTransferred, PhasePresynced, PhaseSourceStopped, PhaseSynced, PhaseCreating, PhaseTargetStarted, PhaseDone}

// AtLeast reports whether p is at or past q in the cutover order; rolled-back
// and failed are past nothing.
func (p Phase) AtLeast(q Phase) bool {
	i, j := slices.Index(phaseOrder, p), slices.Index(phaseOrder, q)
	return i >= 0 && j >= 0 && i >= j
}

// State is what the state file records: per service, how far its migration
// got and what is needed to finish or undo it.
type State struct {
	Version int    `json:"version"`
	User    string `json:"user"`
	// Services by source container name.
	Services map[string]*ServiceState `json:"services"`
	// Volumes by name: a volume can be shared by several services.
	Volumes map[string]*VolumeState `json:"volumes"`
	// Binds by host path.
	Binds map[string]*BindState `json:"binds"`
	// Networks the migration created in the target.
	Networks []string  `json:"networks,omitempty"`
	Updated  time.Time `json:"updated"`

	path string
}

// ServiceState is one service's migration record.
type ServiceState struct {
	Container string `json:"container"`
	SourceID  string `json:"source_id"`
	Phase     Phase  `json:"phase"`
	// SourceWasRunning says whether the source ran when the migration
	// started; rollback starts it again only then.
	SourceWasRunning bool `json:"source_was_running"`
	// Image is the reference the target container was created from;
	// CommittedImage is set when the writable layer was committed.
	Image          string     `json:"image,omitempty"`
	CommittedImage string     `json:"committed_image,omitempty"`
	TargetID       string     `json:"target_id,omitempty"`
	Ports          []PortPlan `json:"ports,omitempty"`
	// RestartPolicy is the source's policy before the cutover set it to
	// "no"; RestartPolicyChanged says the cutover did.
	RestartPolicy        inventory.RestartPolicy `json:"restart_policy"`
	RestartPolicyChanged bool                    `json:"restart_policy_changed,omitempty"`
	Volumes              []string                `json:"volumes,omitempty"`
	Binds                []string                `json:"binds,omitempty"`
	StoppedAt            time.Time               `json:"stopped_at,omitzero"`
	HealthyAt            time.Time               `json:"healthy_at,omitzero"`
	// DowntimeMS is the time from source stopped to target healthy.
	DowntimeMS int64     `json:"downtime_ms,omitempty"`
	Started    time.Time `json:"started,omitzero"`
	Finished   time.Time `json:"finished,omitzero"`
	Error      string    `json:"error,omitempty"`
	Warnings   []string  `json:"warnings,omitempty"`
}

// Downtime returns the recorded downtime.
func (s *ServiceState) Downtime() time.Duration {
	return time.Duration(s.DowntimeMS) * time.Millisecond
}

// VolumeState is one volume's copy or move.
type VolumeState struct {
	Name       string `json:"name"`
	Mode       string `json:"mode"` // VolumesCopy or VolumesMove
	SourcePath string `json:"source_path"`
	TargetPath string `json:"target_path,omitempty"`
	Created    bool   `json:"created,omitempty"` // unroot created it in the target
	Presynced  bool   `json:"presynced,omitempty"`
	// Synced is set after the final sync (copy) or shift (move) and the
	// verification; a resumed run does not copy it again.
	Synced bool `json:"synced,omitempty"`
	// Moved is set once the data was renamed into the target (move mode).
	Moved      bool   `json:"moved,omitempty"`
	JournalDir string `json:"journal_dir,omitempty"`
	Files      int64  `json:"files,omitempty"`
	Bytes      int64  `json:"bytes,omitempty"`
}

// BindState is one bind-mounted host path shifted in place.
type BindState struct {
	Source     string `json:"source"`
	JournalDir string `json:"journal_dir"`
	Shifted    bool   `json:"shifted,omitempty"`
	Reversed   bool   `json:"reversed,omitempty"`
}

// LoadState reads the state file under dir, or returns an empty state when
// there is none.
func LoadState(dir string) (*State, error) {
	st := &State{Version: StateVersion, path: filepath.Join(dir, StateFile)}
	b, err := os.ReadFile(st.path)
	if errors.Is(err, os.ErrNotExist) {
		st.init()
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("read state %s: %w", st.path, err)
	}
	if st.Version != StateVersion {
		return nil, fmt.Errorf("state %s has version %d, this unroot reads %d", st.path, st.Version, StateVersion)
	}
	st.init()
	return st, nil
}

func (st *State) init() {
	if st.Services == nil {
		st.Services = map[string]*ServiceState{}
	}
	if st.Volumes == nil {
		st.Volumes = map[string]*VolumeState{}
	}
	if st.Binds == nil {
		st.Binds = map[string]*BindState{}
	}
}

// Dir is the state directory.
func (st *State) Dir() string { return filepath.Dir(st.path) }

// Service returns the record of container name, or nil.
func (st *State) Service(name string) *ServiceState { return st.Services[name] }

// Owned reports whether a target container called name was created by
// unroot: its service got to [PhaseCreating] or beyond. The plan uses it to
// tell unroot's own containers from foreign ones.
func (st *State) Owned(name string) bool {
	s := st.Services[name]
	return s != nil && s.Phase.AtLeast(PhaseCreating)
}

// BindShifted reports whether a run shifted the bind source src in place,
// or began to, and did not reverse it: its journal says started or done.
func (st *State) BindShifted(src string) bool {
	dir := JournalDir(st.Dir(), "bind", src)
	if bs := st.Binds[src]; bs != nil && bs.JournalDir != "" {
		dir = bs.JournalDir
	}
	s, err := chown.JournalStatus(dir)
	return err == nil && (s == "started" || s == "done")
}

// Save writes the state atomically: a temporary file in the same directory,
// fsync, rename over the old one, fsync of the directory. The file is mode
// 0600: it names paths and ports of the host.
func (st *State) Save() error {
	st.Updated = time.Now().UTC()
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(st.path, append(b, '\n'), 0o600, -1, -1)
}

// writeFileAtomic replaces path with data (mode, and owner uid:gid unless
// uid < 0) through a temporary file beside it, so that a reader or a crash
// sees either the old or the new content. A temporary file that a killed
// run left beside path is removed first: every caller writes under the
// migration lock, so no other writer of path is running.
func writeFileAtomic(path string, data []byte, mode os.FileMode, uid, gid int) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	pattern := "." + filepath.Base(path) + ".tmp-*"
	if stale, err := filepath.Glob(filepath.Join(dir, pattern)); err == nil {
		for _, s := range stale {
			if fi, err := os.Lstat(s); err == nil && fi.Mode().IsRegular() {
				_ = os.Remove(s)
			}
		}
	}
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op after the rename
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if uid >= 0 {
		if err := f.Chown(uid, gid); err != nil {
			f.Close()
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("write %s: sync dir: %w", path, err)
	}
	return nil
}

// ErrLocked is matched by the error of [Lock] when another run holds the
// lock.
var ErrLocked = errors.New("state directory is locked")

// LockedError says another unroot run holds the state directory.
type LockedError struct {
	Dir string
	PID int // 0 when unknown
}

func (e *LockedError) Error() string {
	if e.PID > 0 {
		return fmt.Sprintf("another unroot run (pid %d) is working in %s", e.PID, e.Dir)
	}
	return fmt.Sprintf("another unroot run is working in %s", e.Dir)
}

// Is matches [ErrLocked].
func (e *LockedError) Is(t error) bool { return t == ErrLocked }

// Hint says how to proceed.
func (e *LockedError) Hint() string {
	if e.PID > 0 {
		return fmt.Sprintf("wait for it to finish (see 'ps -p %d'); if it is gone the lock frees itself", e.PID)
	}
	return "wait for the other run to finish"
}

// Lock is an exclusive flock on the state directory's lock file; it ends
// with the process, so a crashed run never leaves it behind.
type Lock struct{ f *os.File }

// AcquireLock takes the lock under dir without waiting, recording the pid
// for a run that finds it taken.
func AcquireLock(dir string) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			b := make([]byte, 32)
			n, _ := f.ReadAt(b, 0)
			pid, _ := strconv.Atoi(strings.TrimSpace(string(b[:n])))
			return nil, &LockedError{Dir: dir, PID: pid}
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return &Lock{f: f}, nil
}

// Release frees the lock.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	_ = l.f.Truncate(0)
	err := l.f.Close()
	l.f = nil
	return err
}
