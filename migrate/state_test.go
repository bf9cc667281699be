package migrate

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestStateRoundTrip(t *testing.T) {
	dir := t.TempDir()
	st, err := LoadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Services) != 0 {
		t.Fatalf("fresh state has services: %v", st.Services)
	}
	st.User = "alice"
	st.Services["web"] = &ServiceState{Container: "web", Phase: PhaseDone, DowntimeMS: 1500, Ports: []PortPlan{{OldHostPort: "80", NewHostPort: "8080"}}}
	st.Volumes["v"] = &VolumeState{Name: "v", Synced: true}
	if err := st.Save(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, StateFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
	}
	back, err := LoadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := back.Service("web")
	if s == nil || s.Phase != PhaseDone || s.Downtime() != 1500*time.Millisecond || s.Ports[0].NewHostPort != "8080" || !back.Volumes["v"].Synced {
		t.Errorf("round trip lost data: %+v", s)
	}
	if !back.Owned("web") || back.Owned("nope") {
		t.Error("Owned is wrong")
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, ".*tmp*"))
	if len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

func TestLoadStateCorrupt(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, StateFile), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadState(dir); err == nil {
		t.Fatal("want an error for a corrupt state file")
	}
}

func TestPhaseAtLeast(t *testing.T) {
	tests := []struct {
		p, q Phase
		want bool
	}{
		{PhaseDone, PhaseCreating, true},
		{PhaseCreating, PhaseCreating, true},
		{PhaseSynced, PhaseCreating, false},
		{PhaseRolledBack, PhasePlanned, false},
		{PhaseFailed, PhasePlanned, false},
	}
	for _, tt := range tests {
		if got := tt.p.AtLeast(tt.q); got != tt.want {
			t.Errorf("%s.AtLeast(%s) = %v", tt.p, tt.q, got)
		}
	}
}

// TestAcquireLockHeld takes the lock twice in this process (flock locks
// belong to the open file, so a second open conflicts) and then from another
// process, the case the lock exists for.
func TestAcquireLockHeld(t *testing.T) {
	dir := t.TempDir()
	l, err := AcquireLock(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = AcquireLock(dir)
	var le *LockedError
	if !errors.As(err, &le) || !errors.Is(err, ErrLocked) {
		t.Fatalf("second lock: %v, want a LockedError", err)
	}
	if le.PID != os.Getpid() {
		t.Errorf("pid = %d, want %d", le.PID, os.Getpid())
	}
	if le.Hint() == "" {
		t.Error("no hint")
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	l2, err := AcquireLock(dir)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	l2.Release()
	// flock conflicts across processes too: hold it with flock(1) if present.
	if _, err := exec.LookPath("flock"); err != nil {
		return
	}
	// flock waits (bounded) for the file and says when it holds it: a
	// non-blocking flock raced the loop below and gave up while it held l3.
	cmd := exec.Command("flock", "-w", "10", filepath.Join(dir, lockFile), "sh", "-c", "echo locked; exec sleep 10")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	line := make(chan string, 1)
	go func() {
		b := make([]byte, 16)
		n, _ := out.Read(b)
		line <- string(b[:n])
	}()
	select {
	case l := <-line:
		if strings.TrimSpace(l) != "locked" {
			t.Fatalf("flock(1) did not take the lock: %q", l)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("flock(1) did not take the lock in 15s")
	}
	_, err = AcquireLock(dir)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("lock held by pid %s: got %v", strconv.Itoa(cmd.Process.Pid), err)
	}
}

// TestWriteFileAtomicRemovesStaleTemp: a run killed between creating its
// temporary file and renaming it leaves the file behind; the next write of
// the same path removes it (and nothing else), and sets mode and owner.
func TestWriteFileAtomicRemovesStaleTemp(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "compose.rootless.yaml")
	stale := filepath.Join(dir, ".compose.rootless.yaml.tmp-123456")
	other := filepath.Join(dir, ".state.json.tmp-1")
	for _, p := range []string{stale, other} {
		if err := os.WriteFile(p, []byte("half"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := writeFileAtomic(path, []byte("whole\n"), 0o640, 1234, 5678); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "whole\n" {
		t.Fatalf("content %q, %v", b, err)
	}
	if _, err := os.Lstat(stale); !os.IsNotExist(err) {
		t.Errorf("the stale temporary file is still there: %v", err)
	}
	if _, err := os.Lstat(other); err != nil {
		t.Errorf("another file's temporary file was removed: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Perm() != 0o640 || st.Uid != 1234 || st.Gid != 5678 {
		t.Errorf("mode %o owner %d:%d, want 640 1234:5678", fi.Mode().Perm(), st.Uid, st.Gid)
	}
	names, _ := os.ReadDir(dir)
	if len(names) != 2 {
		t.Errorf("dir holds %d entries, want the file and the other temp", len(names))
	}
}
