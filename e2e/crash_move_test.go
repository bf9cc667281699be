package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/unroot/unroot/chown"
	"github.com/unroot/unroot/migrate"
)

// The crash campaign of --volumes move: 'unroot migrate --volumes move'
// and the rollback of a move are killed with SIGKILL at every step
// boundary and at many points inside the rename and the in-place shift of
// a volume of moveFiles small files, re-run, and the end state compared
// with an uninterrupted run's. One service is migrated and rolled back
// over and over (a rollback restores the volume exactly), so the tree is
// written once.

// moveFiles is the number of small files added to the campaign's volume.
const moveFiles = 20000

// moveBefore is a move service before its migration.
type moveBefore struct {
	crashBefore
	srcVol    map[string]string // crashSnapshot of the source volume, no ctime
	srcOwners map[string]string // hostOwners of the source volume
	ino       uint64            // the source _data directory's inode
}

// newMoveSvc is newCrashSvc with moveFiles more files in the volume, under
// small/: rotating owners (0, 33, 999, 1000, 65534) and modes.
func newMoveSvc(t *testing.T, name string) *crashSvc {
	t.Helper()
	s := newCrashSvc(t, name, true, 0, "")
	owners := []int{0, 33, 999, 1000, 65534}
	modes := []os.FileMode{0o644, 0o600, 0o755, 0o640, 0o444}
	for i := range moveFiles {
		d := filepath.Join(s.srcVol, "small", fmt.Sprintf("d%03d", i%100))
		if i < 100 {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		p := filepath.Join(d, fmt.Sprintf("f%05d", i))
		if err := os.WriteFile(p, []byte(fmt.Sprintf("small file %d\n", i)), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(p, owners[i%5], owners[(i/5)%5]); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, modes[(i/25)%5]); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func (s *crashSvc) moveBefore() moveBefore {
	s.t.Helper()
	return moveBefore{
		crashBefore: s.before(),
		srcVol:      crashSnapshot(s.t, s.srcVol, true),
		srcOwners:   hostOwners(s.t, s.srcVol),
		ino:         inodeOf(s.t, s.srcVol),
	}
}

// moveArgs are the arguments of every migrate run of the campaign.
func (s *crashSvc) moveArgs() []string {
	return []string{"--yes", "--settle", "1s", "--volumes", "move", s.ctr}
}

// checkMoved checks a finished move against the service before it and
// returns the end state to compare with other runs: the source's _data is
// gone and its inode is the target's, every owner in the volume and the
// bind was mapped exactly once (an inode shifted twice would be off by the
// offset again), ACL and capability bytes are mapped, there is one target
// container, the source is stopped with restart policy "no" and the state
// says done. view also compares what the target container sees with what
// the source saw (slow for moveFiles files: once per campaign).
func (s *crashSvc) checkMoved(b moveBefore, view bool) crashAfter {
	t := s.t
	t.Helper()
	a := crashAfter{host: map[string]string{}}
	if view {
		a.view = s.view(true)
		if a.view != b.view {
			t.Errorf("%s: the target container sees\n%.2000s\nthe source saw\n%.2000s", s.ctr, a.view, b.view)
		}
	}
	if _, err := os.Lstat(s.srcVol); !os.IsNotExist(err) {
		t.Errorf("%s: the source _data is still there after the move (%v)", s.ctr, err)
	}
	dst := s.inspectVolume(true, s.vol)
	if got := inodeOf(t, dst); got != b.ino {
		t.Errorf("%s: the target _data is inode %d, the source's was %d", s.ctr, got, b.ino)
	}
	for k, dir := range map[string]string{"bind": s.bind, "vol": dst} {
		for rel, line := range crashSnapshot(t, dir, true) {
			a.host[k+"/"+rel] = line
		}
		checkMappedXattrs(t, s.Rig, dir)
	}
	for what, x := range map[string]struct {
		before map[string]string
		dir    string
	}{"bind": {b.bindOwner, s.bind}, "volume": {b.srcOwners, dst}} {
		after := hostOwners(t, x.dir)
		if len(after) != len(x.before) {
			t.Errorf("%s: %s holds %d entries, the source held %d", s.ctr, what, len(after), len(x.before))
		}
		bad := 0
		for p, was := range x.before {
			var uid, gid uint32
			var mode string
			if _, err := fmt.Sscanf(was, "%d:%d %s", &uid, &gid, &mode); err != nil {
				t.Fatalf("parse %q: %v", was, err)
			}
			want := fmt.Sprintf("%d:%d %s", s.mapID(uid, uint32(s.UID), s.SubUIDStart), s.mapID(gid, uint32(s.GID), s.SubGIDStart), mode)
			if after[p] != want {
				if bad++; bad <= 5 {
					t.Errorf("%s: %s %s is %s, want %s (was %s)", s.ctr, what, p, after[p], want, was)
				}
			}
		}
		if bad > 5 {
			t.Errorf("%s: %s: %d entries not mapped exactly once", s.ctr, what, bad)
		}
	}
	if n := s.Docker(t, true, "ps", "-a", "--filter", "name=^"+s.ctr+"$", "--format", "{{.ID}}"); n == "" || strings.Contains(n, "\n") {
		t.Errorf("%s: target containers %q, want exactly one", s.ctr, n)
	}
	if got := s.inspect(false, s.ctr, "{{.HostConfig.RestartPolicy.Name}} {{.State.Running}}"); got != "no false" {
		t.Errorf("%s: source after the migration: %q, want \"no false\"", s.ctr, got)
	}
	if ph := s.status().Services[s.ctr].Phase; ph != string(migrate.PhaseDone) {
		t.Errorf("%s: phase %q, want done", s.ctr, ph)
	}
	return a
}

// checkMoveRolledBack checks the rootful service is back as before its
// move: running with restart policy "always" and its port bindings, the
// source volume's _data the same inode with every file's content, owner,
// mode, ACL and capability as before, the bind likewise, the target
// container gone, the target volume's _data empty, the state rolled-back.
func (s *crashSvc) checkMoveRolledBack(what string, b moveBefore) {
	t := s.t
	t.Helper()
	if got := s.inspect(false, s.ctr, "{{.HostConfig.RestartPolicy.Name}} {{.State.Running}}"); got != "always true" {
		t.Errorf("%s: source %q, want \"always true\"", what, got)
	}
	if got := s.inspect(false, s.ctr, "{{json .HostConfig.PortBindings}}"); got != b.ports {
		t.Errorf("%s: source ports %s, were %s", what, got, b.ports)
	}
	sameSnapshot(t, what+": bind", b.bind, crashSnapshot(t, s.bind, true))
	sameSnapshot(t, what+": source volume", b.srcVol, crashSnapshot(t, s.srcVol, true))
	if got := inodeOf(t, s.srcVol); got != b.ino {
		t.Errorf("%s: the source _data is inode %d, was %d", what, got, b.ino)
	}
	if _, err := s.DockerErr(true, "inspect", s.ctr); err == nil {
		t.Errorf("%s: the target container is still there", what)
	}
	if dst, err := s.DockerErr(true, "volume", "inspect", "-f", "{{.Mountpoint}}", s.vol); err == nil {
		if ents, err := os.ReadDir(dst); err != nil || len(ents) != 0 {
			t.Errorf("%s: the target volume's _data: %d entries, %v", what, len(ents), err)
		}
	}
	if ph := s.status().Services[s.ctr].Phase; ph != string(migrate.PhaseRolledBack) {
		t.Errorf("%s: phase %q, want rolled-back", what, ph)
	}
}

// rollbackMove rolls the service back without interruption.
func (s *crashSvc) rollbackMove(what string) {
	s.t.Helper()
	if out, errOut, code := s.Unroot(s.t, s.args("rollback", s.ctr)...); code != 0 {
		s.t.Fatalf("%s: rollback: exit %d\n%s%s", what, code, out, errOut)
	}
}

// stateNow reads the state file as it is (nil when there is none or it is
// being replaced).
func (s *crashSvc) stateNow() *migrate.State {
	b, err := os.ReadFile(filepath.Join(s.stateDir, s.User, migrate.StateFile))
	if err != nil {
		return nil
	}
	var st migrate.State
	if json.Unmarshal(b, &st) != nil {
		return nil
	}
	return &st
}

// moveKillPoint says where a kill of a move landed, from the killed run's
// own lines, its state and the filesystem: inside the volume's in-place
// shift (started, not done); between the save that records the journal
// directory and the shift (before the rename, renamed but not recorded,
// renamed and recorded); or elsewhere, named by the recorded phase.
func (s *crashSvc) moveKillPoint(r crashRun) string {
	e := r.Stderr
	shift := "volume " + s.vol + " (shift in place): "
	if strings.Contains(e, shift+"started") && !strings.Contains(e, shift+"done") {
		return "inside the volume shift"
	}
	if vs := r.State.Volumes[s.vol]; vs != nil && vs.JournalDir != "" && !vs.Synced && !strings.Contains(e, shift+"started") {
		_, err := os.Lstat(s.srcVol)
		switch {
		case vs.Moved:
			return "renamed, before the shift"
		case os.IsNotExist(err):
			return "renamed, the rename not recorded"
		case err == nil:
			return "journal recorded, before the rename"
		}
	}
	return "outside the move, at " + string(r.Landed)
}

// moveBoundary is a step boundary of a move: the service's phases, and
// inside the final sync the journal directory recorded (before the
// rename) and the rename recorded (before the shift).
type moveBoundary struct {
	name string
	hit  func(st *migrate.State, ss *migrate.ServiceState, vol string) bool
}

// image-transferred is left out: the campaign migrates the same service
// again after each rollback, the volume's state is kept, and the state file
// then goes from planned to presynced in one save.
func moveBoundaries() []moveBoundary {
	var out []moveBoundary
	for _, p := range crashPhases {
		if p == migrate.PhaseImageTransferred {
			continue
		}
		out = append(out, moveBoundary{string(p), func(_ *migrate.State, ss *migrate.ServiceState, _ string) bool {
			return ss != nil && ss.Phase.AtLeast(p)
		}})
		if p == migrate.PhaseSourceStopped {
			out = append(out,
				moveBoundary{"journal recorded", func(st *migrate.State, _ *migrate.ServiceState, vol string) bool {
					vs := st.Volumes[vol]
					return vs != nil && vs.JournalDir != ""
				}},
				moveBoundary{"rename recorded", func(st *migrate.State, _ *migrate.ServiceState, vol string) bool {
					vs := st.Volumes[vol]
					return vs != nil && vs.Moved
				}})
		}
	}
	return out
}

// TestCrashMoveMigrate kills 'unroot migrate --volumes move' at every step
// boundary (each phase, the journal recorded, the rename recorded) and at
// random points of the move, timed from the save that records its journal
// directory and sized to a clean run's move; each cycle kills up to four times (a boundary, then
// kills of the resumed runs), completes the run, compares the end state
// with the clean run's and rolls back for the next cycle. At least 20
// kills must land inside the rename and shift. Bounded: 60 kills, about
// three minutes of cycles.
func TestCrashMoveMigrate(t *testing.T) {
	Load(t)
	s := newMoveSvc(t, "e2e-mv-crash")
	b := s.moveBefore()

	// the clean run, observed to learn when the move runs: from the save
	// that records the journal directory (right before the rename) to the
	// one that records the volume synced (its shift done)
	seen := map[migrate.Phase]time.Duration{}
	var journalAt, syncedAt time.Duration
	start := time.Now()
	r := s.signalRun(s.ctr, syscall.SIGKILL, func(ss *migrate.ServiceState, _ bool, since time.Duration) bool {
		if ss != nil {
			if _, ok := seen[ss.Phase]; !ok {
				seen[ss.Phase] = since
			}
		}
		if st := s.stateNow(); st != nil && st.Volumes[s.vol] != nil {
			if vs := st.Volumes[s.vol]; journalAt == 0 && vs.JournalDir != "" {
				journalAt = since
			} else if syncedAt == 0 && vs.Synced {
				syncedAt = since
			}
		}
		return false
	}, "migrate", s.moveArgs()...)
	if r.Code != 0 || r.Landed != migrate.PhaseDone {
		t.Fatalf("clean run: exit %d, phase %s\n%s", r.Code, r.Landed, r.Stderr)
	}
	window := syncedAt - journalAt
	t.Logf("clean run: %v; phases seen at %v; the move ran from %v to %v", time.Since(start), seen, journalAt, syncedAt)
	if journalAt == 0 || window <= 0 {
		t.Fatalf("the clean run's move was not seen in order: journal recorded at %v, synced at %v", journalAt, syncedAt)
	}
	ref := s.checkMoved(b, true)
	start = time.Now()
	s.rollbackMove("clean run")
	t.Logf("clean rollback: %v", time.Since(start))
	s.checkMoveRolledBack("clean rollback", b)
	if t.Failed() {
		t.FailNow()
	}

	bounds := moveBoundaries()
	hit := map[string]int{}
	tried := map[string]int{}
	where := map[string]int{}
	inMove, attempts := 0, 0
	deadline := time.Now().Add(3 * time.Minute)
	for cycle := 0; attempts < 60 && time.Now().Before(deadline); cycle++ {
		var bound *moveBoundary
		for i := range bounds {
			if hit[bounds[i].name] == 0 && tried[bounds[i].name] < 3 {
				bound = &bounds[i]
				break
			}
		}
		if bound == nil && inMove >= 20 {
			break
		}
		for k := 0; k < 4 && attempts < 60; k++ {
			st := s.stateNow()
			var ph migrate.Phase
			if st != nil {
				if ss := st.Service(s.ctr); ss != nil && ss.Phase != migrate.PhaseRolledBack {
					ph = ss.Phase
				}
			}
			if k > 0 && ph.AtLeast(migrate.PhaseSynced) {
				break // the move is over: nothing left to kill inside
			}
			attempts++
			var when func(*migrate.ServiceState, bool, time.Duration) bool
			what := ""
			if k == 0 && bound != nil {
				tried[bound.name]++
				bd := bound
				what = "at " + bd.name
				when = func(ss *migrate.ServiceState, _ bool, _ time.Duration) bool {
					st := s.stateNow()
					return st != nil && bd.hit(st, ss, s.vol)
				}
			} else {
				// the clock starts at the save that records the journal
				// directory, or at the first save of a run resumed after it
				delay := rand.N(window + window/4)
				what = fmt.Sprintf("%v into the move", delay.Round(time.Millisecond))
				var first time.Duration
				when = func(_ *migrate.ServiceState, changed bool, since time.Duration) bool {
					if changed && first == 0 {
						if st := s.stateNow(); st != nil && st.Volumes[s.vol] != nil && st.Volumes[s.vol].JournalDir != "" {
							first = since
						}
					}
					return first > 0 && since-first >= delay
				}
			}
			r := s.signalRun(s.ctr, syscall.SIGKILL, when, "migrate", s.moveArgs()...)
			if !r.Killed {
				if r.Code != 0 {
					t.Errorf("cycle %d: run exited %d before the kill:\n%s", cycle, r.Code, r.Stderr)
				}
				t.Logf("cycle %d: kill %s: the run finished first", cycle, what)
				break
			}
			w := s.moveKillPoint(r)
			where[w]++
			if !strings.HasPrefix(w, "outside") {
				inMove++
			}
			if k == 0 && bound != nil {
				st := s.stateNow()
				var ss *migrate.ServiceState
				if st != nil {
					ss = st.Service(s.ctr)
				}
				// a kill that landed past its boundary does not count for it
				if st != nil && bound.hit(st, ss, s.vol) && !nextHit(bounds, bound, st, ss, s.vol) {
					hit[bound.name]++
				}
			}
			t.Logf("cycle %d: kill %d %s: %s", cycle, attempts, what, w)
			if r.Landed == migrate.PhaseDone {
				break
			}
		}
		res := s.mustMigrate("--settle", "1s", "--volumes", "move", s.ctr)
		if strings.Contains(res.Stderr, "renamed into") && strings.Contains(res.Stderr, "resuming") {
			t.Logf("cycle %d: the resumed run renamed the volume itself", cycle)
		}
		sameSnapshot(t, fmt.Sprintf("cycle %d vs a clean run (host side)", cycle), ref.host, s.checkMoved(b, false).host)
		s.rollbackMove(fmt.Sprintf("cycle %d", cycle))
		s.checkMoveRolledBack(fmt.Sprintf("cycle %d, rolled back", cycle), b)
		if t.Failed() {
			t.FailNow()
		}
	}
	t.Logf("%d kills, %d inside the move; boundaries hit %v (tried %v); where: %v", attempts, inMove, hit, tried, where)
	for _, bd := range bounds {
		if hit[bd.name] == 0 {
			t.Errorf("no kill landed at the boundary %s", bd.name)
		}
	}
	if inMove < 20 {
		t.Errorf("%d kills landed inside the rename and shift (of %d), want ≥ 20", inMove, attempts)
	}
}

// nextHit reports whether the boundary after b was passed as well (the
// kill landed too late to count for b).
func nextHit(bounds []moveBoundary, b *moveBoundary, st *migrate.State, ss *migrate.ServiceState, vol string) bool {
	for i := range bounds {
		if &bounds[i] == b && i+1 < len(bounds) {
			return bounds[i+1].hit(st, ss, vol)
		}
	}
	return false
}

// moveRollbackPoint says how far a killed rollback of a move got, from the
// steps it reported: the volume's shift reversed and renamed back are the
// steps inside the move back.
func moveRollbackPoint(r crashRun, vol string) string {
	e := r.Stderr
	switch {
	case strings.Contains(e, "volume "+vol+": moved back"):
		return "outside the move back: after it"
	case strings.Contains(e, "volume "+vol+": owners restored"):
		return "reversed, before or in the rename back"
	case strings.Contains(e, "bind ") && strings.Contains(e, ": owners restored"):
		return "inside the volume's reverse shift"
	case strings.Contains(e, "target container removed"):
		return "outside the move back: in the bind's reverse"
	}
	return "outside the move back: before the target was removed"
}

// TestCrashMoveRollback migrates the service with --volumes move, then
// kills 'unroot rollback' at each of its step boundaries (the bind
// reversed, the volume's shift reversed, the volume moved back, rolled
// back) and at random points of
// the volume's move back (timed from the bind's reverse, sized to a clean
// rollback's), up to five kills per cycle, re-runs it until
// it completes and checks the rootful service and its volume are back
// exactly. At least 20 kills must land inside the volume's reverse shift
// or rename back. Bounded: 60 kills, about three minutes of cycles.
func TestCrashMoveRollback(t *testing.T) {
	Load(t)
	s := newMoveSvc(t, "e2e-mv-crashrb")
	b := s.moveBefore()
	s.mustMigrate("--settle", "1s", "--volumes", "move", s.ctr)

	bounds := []moveBoundary{
		{"bind reversed", func(st *migrate.State, _ *migrate.ServiceState, _ string) bool {
			bs := st.Binds[s.bind]
			return bs != nil && bs.Reversed
		}},
		// the journal says reversed: the rename back is next
		{"volume shift reversed", func(_ *migrate.State, _ *migrate.ServiceState, vol string) bool {
			status, err := chown.JournalStatus(migrate.JournalDir(filepath.Join(s.stateDir, s.User), "volume", vol))
			return err == nil && status == "reversed"
		}},
		{"volume moved back", func(st *migrate.State, _ *migrate.ServiceState, vol string) bool {
			vs := st.Volumes[vol]
			return vs != nil && !vs.Moved && vs.JournalDir == ""
		}},
		{"rolled back", func(_ *migrate.State, ss *migrate.ServiceState, _ string) bool {
			return ss != nil && ss.Phase == migrate.PhaseRolledBack
		}},
	}
	// a clean rollback, observed: the volume's move back runs from the save
	// that records the bind reversed to the one that records the volume
	// back
	var reversedAt, backAt time.Duration
	start := time.Now()
	r := s.signalRun(s.ctr, syscall.SIGKILL, func(ss *migrate.ServiceState, _ bool, since time.Duration) bool {
		if st := s.stateNow(); st != nil {
			if reversedAt == 0 && bounds[0].hit(st, ss, s.vol) {
				reversedAt = since
			}
			if backAt == 0 && bounds[2].hit(st, ss, s.vol) {
				backAt = since
			}
		}
		return false
	}, "rollback", s.ctr)
	if r.Code != 0 {
		t.Fatalf("clean rollback: exit %d\n%s", r.Code, r.Stderr)
	}
	window := backAt - reversedAt
	t.Logf("a clean rollback of the move took %v; the bind was reversed after %v, the volume back after %v", time.Since(start), reversedAt, backAt)
	if reversedAt == 0 || window <= 0 {
		t.Fatalf("the clean rollback's steps were not seen in order: bind reversed at %v, volume back at %v", reversedAt, backAt)
	}
	s.checkMoveRolledBack("clean rollback", b)
	if t.Failed() {
		t.FailNow()
	}

	hit, tried := map[string]int{}, map[string]int{}
	where := map[string]int{}
	inMove, attempts := 0, 0
	deadline := time.Now().Add(3 * time.Minute)
	for cycle := 0; attempts < 60 && time.Now().Before(deadline); cycle++ {
		var bound *moveBoundary
		for i := range bounds {
			if hit[bounds[i].name] == 0 && tried[bounds[i].name] < 3 {
				bound = &bounds[i]
				break
			}
		}
		if bound == nil && inMove >= 20 {
			break
		}
		s.mustMigrate("--settle", "1s", "--volumes", "move", s.ctr)
		finished := false
		for k := 0; k < 5 && attempts < 60 && !finished; k++ {
			attempts++
			var when func(*migrate.ServiceState, bool, time.Duration) bool
			what := ""
			if k == 0 && bound != nil {
				tried[bound.name]++
				bd := bound
				what = "at " + bd.name
				when = func(ss *migrate.ServiceState, _ bool, _ time.Duration) bool {
					st := s.stateNow()
					return st != nil && bd.hit(st, ss, s.vol)
				}
			} else {
				// the clock starts when the state shows the bind reversed
				// (at the start of a re-run that got that far)
				delay := rand.N(window + window/4)
				what = fmt.Sprintf("%v after the bind's reverse", delay.Round(time.Millisecond))
				var first time.Duration
				when = func(ss *migrate.ServiceState, _ bool, since time.Duration) bool {
					if first == 0 {
						if st := s.stateNow(); st != nil && bounds[0].hit(st, ss, s.vol) {
							first = since
						}
					}
					return first > 0 && since-first >= delay
				}
			}
			r := s.signalRun(s.ctr, syscall.SIGKILL, when, "rollback", s.ctr)
			if !r.Killed {
				if r.Code != 0 {
					t.Errorf("cycle %d: rollback exited %d:\n%s", cycle, r.Code, r.Stderr)
				}
				t.Logf("cycle %d: kill %s: the rollback finished first", cycle, what)
				finished = true
				break
			}
			w := moveRollbackPoint(r, s.vol)
			where[w]++
			if !strings.HasPrefix(w, "outside") {
				inMove++
			}
			if k == 0 && bound != nil {
				if st := s.stateNow(); st != nil && bound.hit(st, st.Service(s.ctr), s.vol) && !nextHit(bounds, bound, st, st.Service(s.ctr), s.vol) {
					hit[bound.name]++
				}
			}
			t.Logf("cycle %d: rollback kill %d %s: %s", cycle, attempts, what, w)
		}
		if !finished {
			s.rollbackMove(fmt.Sprintf("cycle %d", cycle))
		}
		s.checkMoveRolledBack(fmt.Sprintf("cycle %d", cycle), b)
		if t.Failed() {
			t.FailNow()
		}
	}
	t.Logf("%d rollback kills, %d inside the move back; boundaries hit %v (tried %v); where: %v", attempts, inMove, hit, tried, where)
	for _, bd := range bounds {
		if hit[bd.name] == 0 {
			t.Errorf("no rollback kill landed at the boundary %s", bd.name)
		}
	}
	if inMove < 20 {
		t.Errorf("%d rollback kills landed inside the reverse shift or rename back (of %d), want ≥ 20", inMove, attempts)
	}
}
