package migrate

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/unroot/unroot/inventory"
)

// moveSetup is the afSetup of a db service with its volume in move mode,
// plus the state a killed run left: the target volume exists and the
// state file records the move as far as killed got.
type moveSetup struct {
	*afSetup
	dst string // the target volume's _data
	vs  *VolumeState
}

func newMoveSetup(t *testing.T) *moveSetup {
	t.Helper()
	s := &moveSetup{afSetup: newAFSetup(t)}
	s.plan.Services = s.plan.Services[:1]
	s.plan.VolumesMode = VolumesMove
	s.dst = filepath.Join(s.tgt.volRoot, "dbdata", "_data")
	if err := os.MkdirAll(s.dst, 0o755); err != nil {
		t.Fatal(err)
	}
	s.tgt.volumes["dbdata"] = s.dst
	s.vs = &VolumeState{Name: "dbdata", Mode: VolumesMove, SourcePath: s.srcVol, TargetPath: s.dst, Created: true,
		JournalDir: JournalDir(s.st.Dir(), "volume", "dbdata")}
	s.st.Volumes["dbdata"] = s.vs
	s.src.containers["db"].State.Running = false
	s.st.Services["db"] = &ServiceState{Container: "db", SourceID: "id-db", Phase: PhaseSourceStopped, SourceWasRunning: true,
		RestartPolicy: inventory.RestartPolicy{Name: "always"}, Volumes: []string{"dbdata"}, Image: "busybox:latest",
		StoppedAt: time.Now().Add(-time.Second)}
	return s
}

// renamed puts the source data where a rename into the target leaves it.
func (s *moveSetup) renamed(t *testing.T) {
	t.Helper()
	if err := os.Remove(s.dst); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(s.srcVol, s.dst); err != nil {
		t.Fatal(err)
	}
}

func (s *moveSetup) dataIn(t *testing.T, dir string) {
	t.Helper()
	if b, err := os.ReadFile(filepath.Join(dir, "table")); err != nil || string(b) != "rows" {
		t.Errorf("%s/table: %q, %v", dir, b, err)
	}
}

func (s *moveSetup) emptyDir(t *testing.T, dir string) {
	t.Helper()
	if empty, err := dirEmpty(dir); err != nil || !empty {
		t.Errorf("%s: empty=%v %v", dir, empty, err)
	}
	if fi, err := os.Lstat(dir); err == nil && fi.Mode().Perm() != 0o755 {
		t.Errorf("%s: mode %v, want 0755", dir, fi.Mode())
	}
}

// TestRollbackMoveKilled rolls back a move killed at each step: the data
// ends in the source, the target volume's _data is there and empty, and
// the shift is reversed only when one was journaled.
func TestRollbackMoveKilled(t *testing.T) {
	tests := []struct {
		name        string
		moved       bool
		synced      bool
		prepare     func(s *moveSetup, t *testing.T)
		wantReverse bool
	}{
		{"journal recorded, nothing renamed", false, false, func(*moveSetup, *testing.T) {}, false},
		{"empty target removed, not renamed", false, false, func(s *moveSetup, t *testing.T) {
			if err := os.Remove(s.dst); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"renamed, state not saved", false, false, (*moveSetup).renamed, false},
		{"renamed and shifted", true, true, (*moveSetup).renamed, true},
		{"renamed back, target not recreated", true, false, func(s *moveSetup, t *testing.T) {
			if err := os.Remove(s.dst); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"renamed back, target recreated", true, false, func(*moveSetup, *testing.T) {}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newMoveSetup(t)
			s.vs.Moved, s.vs.Synced = tt.moved, tt.synced
			tt.prepare(s, t)
			if err := s.st.Save(); err != nil {
				t.Fatal(err)
			}
			_, err := Rollback(context.Background(), RollbackOptions{Source: s.src, Target: s.tgt, Files: s.files, State: s.st, Containers: []string{"db"}})
			if err != nil {
				t.Fatalf("rollback: %v\n%s", err, strings.Join(s.log, "\n"))
			}
			s.dataIn(t, s.srcVol)
			s.emptyDir(t, s.dst)
			reversed := slices.ContainsFunc(s.log, func(l string) bool { return strings.HasPrefix(l, "reverse ") })
			if reversed != tt.wantReverse {
				t.Errorf("reverse called: %v, want %v\n%s", reversed, tt.wantReverse, strings.Join(s.log, "\n"))
			}
			if vs := s.st.Volumes["dbdata"]; vs.Moved || vs.Synced || s.st.VolumeMoveStarted("dbdata") {
				t.Errorf("volume state after rollback: %+v", vs)
			}
			if ph := s.st.Service("db").Phase; ph != PhaseRolledBack {
				t.Errorf("phase %s", ph)
			}
		})
	}
}

// TestRollbackMoveRefusesBothHoldData: the data in both places is not
// guessed at.
func TestRollbackMoveRefusesBothHoldData(t *testing.T) {
	s := newMoveSetup(t)
	s.vs.Moved = true
	if err := os.WriteFile(filepath.Join(s.dst, "other"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Rollback(context.Background(), RollbackOptions{Source: s.src, Target: s.tgt, Files: s.files, State: s.st, Containers: []string{"db"}})
	if err == nil || !strings.Contains(err.Error(), "both") {
		t.Fatalf("err = %v", err)
	}
	s.dataIn(t, s.srcVol)
}

// TestApplyResumesKilledMove re-runs a migration whose move was killed
// before the state recorded the rename: the data is renamed once and
// shifted.
func TestApplyResumesKilledMove(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(s *moveSetup, t *testing.T)
	}{
		{"journal recorded, nothing renamed", func(*moveSetup, *testing.T) {}},
		{"empty target removed, not renamed", func(s *moveSetup, t *testing.T) {
			if err := os.Remove(s.dst); err != nil {
				t.Fatal(err)
			}
		}},
		{"renamed, state not saved", (*moveSetup).renamed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newMoveSetup(t)
			tt.prepare(s, t)
			if err := s.st.Save(); err != nil {
				t.Fatal(err)
			}
			if _, err := Apply(context.Background(), s.plan, s.options()); err != nil {
				t.Fatalf("resume: %v\n%s", err, strings.Join(s.log, "\n"))
			}
			s.dataIn(t, s.dst)
			if _, err := os.Lstat(s.srcVol); !os.IsNotExist(err) {
				t.Errorf("source after the move: %v", err)
			}
			s.indexOf(t, "shift "+s.dst)
			if vs := s.st.Volumes["dbdata"]; !vs.Moved || !vs.Synced {
				t.Errorf("volume state %+v", vs)
			}
		})
	}
}

// TestEmptyTargetDirRefusesSymlinkedParent: the empty target directory is
// made through its parent reached without following a symlink, so a user
// who swapped a component of their data root for a symlink gets no
// directory (and no chown) elsewhere; the plain path gets 0755 and the
// container root's owner.
func TestEmptyTargetDirRefusesSymlinkedParent(t *testing.T) {
	base := t.TempDir()
	elsewhere := filepath.Join(base, "elsewhere")
	if err := os.Mkdir(elsewhere, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, filepath.Join(base, "vol")); err != nil {
		t.Fatal(err)
	}
	m := testMap
	if err := emptyTargetDir(filepath.Join(base, "vol", "_data"), m); err == nil {
		t.Error("emptyTargetDir followed a symlinked parent")
	}
	if _, err := os.Lstat(filepath.Join(elsewhere, "_data")); !os.IsNotExist(err) {
		t.Errorf("a directory was made behind the symlink: %v", err)
	}
	plain := filepath.Join(base, "plain")
	if err := os.Mkdir(plain, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(plain, "_data")
	if err := emptyTargetDir(p, m); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := m.HostUID(0)
	if st := fi.Sys().(*syscall.Stat_t); !fi.IsDir() || fi.Mode().Perm() != 0o755 || st.Uid != uid {
		t.Errorf("%s: dir %v mode %o uid %d, want a 0755 directory of %d", p, fi.IsDir(), fi.Mode().Perm(), st.Uid, uid)
	}
}
