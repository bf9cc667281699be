package e2e

import (
	"bytes"
	"crypto/sha256"
	bin "encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/unroot/unroot/chown"
	"github.com/unroot/unroot/migrate"
)

// The crash campaign of a whole migration (issue 6 part 3): 'unroot
// migrate' and 'unroot rollback' are killed with SIGKILL at every phase
// boundary and at random points, re-run, and the end state is compared with
// an uninterrupted run's.

// crashPhases are the phase boundaries of a cutover, in the order
// migrate/state.go records them.
var crashPhases = []migrate.Phase{
	migrate.PhaseImageTransferred, migrate.PhasePresynced, migrate.PhaseSourceStopped, migrate.PhaseSynced,
	migrate.PhaseCreating, migrate.PhaseTargetStarted, migrate.PhaseDone,
}

// crashSvc is one service of the campaign: a busybox httpd with a named
// volume at /data and a bind mount at /bind, both holding crashTree.
type crashSvc struct {
	*migEnv
	ctr, vol, bind string
	srcVol         string // host path of the source volume's data
}

// newCrashSvc creates and starts the service name in the source daemon.
// vol is false for a service with only the bind; extra adds that many
// small files to the volume (or to the bind when there is no volume).
// publish is an optional -p argument.
func newCrashSvc(t *testing.T, name string, vol bool, extra int, publish string) *crashSvc {
	t.Helper()
	s := &crashSvc{ctr: name, bind: filepath.Join("/srv", name)}
	var vols []string
	if vol {
		s.vol = name + "-vol"
		vols = []string{s.vol}
	}
	s.migEnv = newMigEnv(t, []string{name}, vols, nil)
	_ = os.RemoveAll(s.bind)
	t.Cleanup(func() { os.RemoveAll(s.bind) })
	if err := os.MkdirAll(s.bind, 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{"run", "-d", "--name", name, "--init", "--restart", "always", "-v", s.bind + ":/bind"}
	if vol {
		s.Docker(t, false, "volume", "create", s.vol)
		s.srcVol = s.inspectVolume(false, s.vol)
		crashTree(t, s.srcVol, extra)
		crashTree(t, s.bind, 0)
		args = append(args, "-v", s.vol+":/data")
	} else {
		crashTree(t, s.bind, extra)
	}
	if publish != "" {
		args = append(args, "-p", publish)
	}
	s.Docker(t, false, append(args, s.Image, "httpd", "-f", "-p", "80", "-h", "/bind")...)
	return s
}

// drop removes the service from both daemons now (t.Cleanup does it too).
func (s *crashSvc) drop() {
	for _, target := range []bool{true, false} {
		_, _ = s.DockerErr(target, "rm", "-f", s.ctr)
		if s.vol != "" {
			_, _ = s.DockerErr(target, "volume", "rm", "-f", s.vol)
		}
	}
	_ = os.RemoveAll(s.bind)
}

// mounts are the container paths the views cover.
func (s *crashSvc) mounts() []string {
	if s.vol == "" {
		return []string{"/bind"}
	}
	return []string{"/data", "/bind"}
}

// crashTree fills dir with an awkward tree: owners 0, 33, 999 and 1000, a
// setuid file, a setgid directory, an ACL naming uid 33 and gid 999, a file
// capability, a hardlink pair, a symlink to /etc/shadow, and extra small
// files of rotating owners under many/.
func crashTree(t *testing.T, dir string, extra int) {
	t.Helper()
	type ent struct {
		path     string
		dir      bool
		uid, gid int
		mode     os.FileMode
	}
	ents := []ent{
		{"root.txt", false, 0, 0, 0o600},
		{"www", true, 33, 33, 0o750},
		{"www/index.html", false, 33, 33, 0o644},
		{"db", true, 999, 999, 0o700},
		{"db/data", false, 999, 999, 0o600},
		{"home", true, 1000, 1000, 0o755},
		{"home/file", false, 1000, 1000, 0o644},
		{"suid", false, 0, 0, 0o755 | os.ModeSetuid},
		{"sgid", true, 1000, 33, 0o775 | os.ModeSetgid},
		{"acl", false, 1000, 1000, 0o640},
		{"capbin", false, 0, 0, 0o755},
		{"hl1", false, 1000, 1000, 0o644},
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.path)
		if e.dir {
			if err := os.Mkdir(p, 0o700); err != nil {
				t.Fatal(err)
			}
		} else if err := os.WriteFile(p, []byte("crash "+e.path+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(p, e.uid, e.gid); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, e.mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(filepath.Join(dir, "hl1"), filepath.Join(dir, "hl2")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/shadow", filepath.Join(dir, "shadow")); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(filepath.Join(dir, "shadow"), 33, 33); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][]string{
		{"setfacl", "-m", "u:33:rw,g:999:r", filepath.Join(dir, "acl")},
		{"setcap", "cap_net_bind_service=+ep", filepath.Join(dir, "capbin")},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(c, " "), err, out)
		}
	}
	owners := []int{0, 33, 999, 1000}
	buf := make([]byte, 16<<10)
	for i := range extra {
		d := filepath.Join(dir, "many", fmt.Sprintf("d%02d", i%40))
		if i < 40 {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for j := range buf {
			buf[j] = byte(i*31 + j)
		}
		p := filepath.Join(d, fmt.Sprintf("f%05d", i))
		if err := os.WriteFile(p, buf, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(p, owners[i%4], owners[(i/4)%4]); err != nil {
			t.Fatal(err)
		}
	}
}

// crashSnapshot is safetySnapshot plus each regular file's sha256 and each
// symlink's target.
func crashSnapshot(t *testing.T, root string, noCtime bool) map[string]string {
	t.Helper()
	snap := safetySnapshot(t, root, noCtime)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case d.Type().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			h := sha256.New()
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return err
			}
			snap[rel] += " sha256=" + hex.EncodeToString(h.Sum(nil))
		case d.Type()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			snap[rel] += " -> " + l
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// sameSnapshot fails when want and got differ in any line or path.
func sameSnapshot(t *testing.T, what string, want, got map[string]string) {
	t.Helper()
	diffSafety(t, what, want, got)
	n := 0
	for k := range want {
		if _, ok := got[k]; !ok {
			if n++; n <= 5 {
				t.Errorf("%s: %s is missing", what, k)
			}
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			if n++; n <= 5 {
				t.Errorf("%s: %s is extra", what, k)
			}
		}
	}
}

// view is what the service's container sees of its mounts: every path's
// name (and symlink target), uid:gid, mode, link count, type and size, and
// every regular file's sha256.
func (s *crashSvc) view(target bool) string {
	s.t.Helper()
	m := strings.Join(s.mounts(), " ")
	out := s.exec(target, s.ctr, "sh", "-c",
		"find "+m+" -exec stat -c '%N %u:%g %a %h %F %s' {} + && find "+m+" -type f -exec sha256sum {} +")
	lines := strings.Split(out, "\n")
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// crashBefore is what a service looked like before its migration.
type crashBefore struct {
	view      string            // inside the source container
	srcVol    map[string]string // crashSnapshot of the source volume, ctime included
	bindOwner map[string]string // hostOwners of the bind
	bind      map[string]string // crashSnapshot of the bind, no ctime
	ports     string
}

func (s *crashSvc) before() crashBefore {
	s.t.Helper()
	b := crashBefore{
		view:      s.view(false),
		bindOwner: hostOwners(s.t, s.bind),
		bind:      crashSnapshot(s.t, s.bind, true),
		ports:     s.inspect(false, s.ctr, "{{json .HostConfig.PortBindings}}"),
	}
	if s.vol != "" {
		b.srcVol = crashSnapshot(s.t, s.srcVol, false)
	}
	return b
}

// crashAfter is the end state of a finished migration that clean and
// crashed runs must share.
type crashAfter struct {
	view string
	host map[string]string // target volume and bind on the host, no ctime
}

// checkMigrated checks a finished migration against the service's state
// before it and returns the end state to compare with other runs: the
// target sees exactly what the source saw, ACL and capability xattrs are
// mapped, the bind was shifted exactly once, the source volume is
// unchanged, there is one target container, the source is stopped with
// restart policy "no" and the state says done.
func (s *crashSvc) checkMigrated(b crashBefore) crashAfter {
	t := s.t
	t.Helper()
	a := crashAfter{view: s.view(true), host: map[string]string{}}
	if a.view != b.view {
		t.Errorf("%s: the target container sees\n%s\nthe source saw\n%s", s.ctr, a.view, b.view)
	}
	trees := map[string]string{"bind": s.bind}
	if s.vol != "" {
		trees["vol"] = s.inspectVolume(true, s.vol)
	}
	for k, dir := range trees {
		for rel, line := range crashSnapshot(t, dir, true) {
			a.host[k+"/"+rel] = line
		}
		checkMappedXattrs(t, s.Rig, dir)
	}
	// the bind: every owner mapped exactly once
	after := hostOwners(t, s.bind)
	for p, was := range b.bindOwner {
		var uid, gid uint32
		var mode string
		if _, err := fmt.Sscanf(was, "%d:%d %s", &uid, &gid, &mode); err != nil {
			t.Fatalf("parse %q: %v", was, err)
		}
		want := fmt.Sprintf("%d:%d %s", s.mapID(uid, uint32(s.UID), s.SubUIDStart), s.mapID(gid, uint32(s.GID), s.SubGIDStart), mode)
		if after[p] != want {
			t.Errorf("%s: bind %s is %s, want %s (was %s)", s.ctr, p, after[p], want, was)
		}
	}
	if s.vol != "" {
		sameSnapshot(t, s.ctr+": source volume", b.srcVol, crashSnapshot(t, s.srcVol, false))
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

// same fails unless two finished migrations ended the same.
func (a crashAfter) same(t *testing.T, what string, ref crashAfter) {
	t.Helper()
	if a.view != ref.view {
		t.Errorf("%s: the target container's view differs from a clean run's:\n%s\nclean:\n%s", what, a.view, ref.view)
	}
	sameSnapshot(t, what+" vs a clean run (host side)", ref.host, a.host)
}

// mapID sends a container id through the rig's map.
func (s *crashSvc) mapID(id, own, start uint32) uint32 {
	if id == 0 {
		return own
	}
	return start + id - 1
}

// checkMappedXattrs checks the host-side bytes of the tree's ACL (uid 33
// and gid 999 shifted into the subordinate range) and capability (v3 with
// the user's uid as root id).
func checkMappedXattrs(t *testing.T, r *Rig, dir string) {
	t.Helper()
	buf := make([]byte, 256)
	n, err := unix.Lgetxattr(filepath.Join(dir, "acl"), "system.posix_acl_access", buf)
	if err != nil {
		t.Errorf("%s/acl: %v", dir, err)
	} else {
		var users, groups []uint32
		for off := 4; off+8 <= n; off += 8 {
			tag, id := bin.LittleEndian.Uint16(buf[off:]), bin.LittleEndian.Uint32(buf[off+4:])
			switch tag {
			case 0x02: // ACL_USER
				users = append(users, id)
			case 0x08: // ACL_GROUP
				groups = append(groups, id)
			}
		}
		if fmt.Sprint(users) != fmt.Sprint([]uint32{r.SubUIDStart + 32}) || fmt.Sprint(groups) != fmt.Sprint([]uint32{r.SubGIDStart + 998}) {
			t.Errorf("%s/acl: ACL users %v groups %v, want [%d] [%d]", dir, users, groups, r.SubUIDStart+32, r.SubGIDStart+998)
		}
	}
	n, err = unix.Lgetxattr(filepath.Join(dir, "capbin"), "security.capability", buf)
	switch {
	case err != nil:
		t.Errorf("%s/capbin: %v", dir, err)
	case n != 24 || bin.LittleEndian.Uint32(buf)&0xff000000 != 0x03000000:
		t.Errorf("%s/capbin: capability %x is not v3", dir, buf[:n])
	case bin.LittleEndian.Uint32(buf[20:]) != uint32(r.UID):
		t.Errorf("%s/capbin: capability root id %d, want %d", dir, bin.LittleEndian.Uint32(buf[20:]), r.UID)
	}
}

// crashRun is how one run of unroot under a signal ended.
type crashRun struct {
	Landed migrate.Phase // the service's phase in the state file after the run
	State  *migrate.State
	Killed bool // the signal was sent and ended the process (SIGINT: with a non-zero exit)
	Code   int  // exit code when it exited by itself
	Stderr string
}

// signalRun runs 'unroot VERB ARGS' and sends sig as soon as when returns
// true. when is called with the service's record in the state file (nil
// before there is one), whether the file changed since the start, and the
// time since the start; it is called after every change of the state
// directory (inotify) and at least every 2 ms. Bounded: 60 s to the signal,
// 2 min to the exit after it.
func (e *migEnv) signalRun(ctr string, sig syscall.Signal, when func(ss *migrate.ServiceState, changed bool, since time.Duration) bool, verb string, args ...string) crashRun {
	t := e.t
	t.Helper()
	dir := filepath.Join(e.stateDir, e.User)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, migrate.StateFile)
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_MOVED_TO|unix.IN_CLOSE_WRITE); err != nil {
		t.Fatal(err)
	}
	initial, _ := os.ReadFile(path)
	cmd := exec.Command(e.Bin, e.args(verb, args...)...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	start := time.Now()
	buf := make([]byte, 4096)
	sent := false
	var werr error
	exited := false
	for !exited && time.Since(start) < 60*time.Second {
		select {
		case werr = <-done:
			exited = true
			continue
		default:
		}
		if !sent {
			var ss *migrate.ServiceState
			b, err := os.ReadFile(path)
			changed := err == nil && !bytes.Equal(b, initial)
			if err == nil {
				var st migrate.State
				if json.Unmarshal(b, &st) == nil {
					ss = st.Services[ctr]
				}
			}
			if when(ss, changed, time.Since(start)) {
				_ = cmd.Process.Signal(sig)
				sent = true
			}
		}
		_, _ = unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 2)
		for {
			if n, _ := unix.Read(fd, buf); n <= 0 {
				break
			}
		}
	}
	if !exited {
		if !sent {
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("unroot %s: the signal point was not reached within 60s\n%s", verb, errb.String())
		}
		select {
		case werr = <-done:
		case <-time.After(2 * time.Minute):
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("unroot %s did not exit within 2 minutes of %v", verb, sig)
		}
	}
	r := crashRun{Stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case werr == nil:
	case errors.As(werr, &ee):
		r.Code = ee.ExitCode()
		ws, _ := ee.Sys().(syscall.WaitStatus)
		// SIGKILL must be what ended it; SIGINT ends it with an exit code
		r.Killed = sent && (ws.Signaled() && ws.Signal() == sig || sig != syscall.SIGKILL && r.Code != 0)
	default:
		t.Fatalf("unroot %s: %v", verb, werr)
	}
	st, err := migrate.LoadState(dir)
	if err != nil {
		t.Fatalf("state after the run: %v", err)
	}
	r.State = st
	if ss := st.Service(ctr); ss != nil {
		r.Landed = ss.Phase
	}
	return r
}

// crashClean is the end state of an uninterrupted migration of the small
// awkward service, shared by the tests that compare with it.
var crashClean *crashAfter

// cleanRun migrates a fresh small service without interruption (once per
// test process) and returns its end state.
func cleanRun(t *testing.T) crashAfter {
	t.Helper()
	if crashClean != nil {
		return *crashClean
	}
	s := newCrashSvc(t, "e2e-crash-clean", true, 0, "")
	b := s.before()
	s.mustMigrate("--settle", "1s", s.ctr)
	a := s.checkMigrated(b)
	if t.Failed() {
		t.FailNow()
	}
	s.drop()
	crashClean = &a
	return a
}

// TestCrashMigrateEveryPhase kills 'unroot migrate' with SIGKILL as soon
// as the service's phase reaches each boundary, runs it again and compares
// the end state with a clean run's. A kill that lands past its boundary is
// counted where it landed and the boundary is tried again with a fresh
// service (at most four times); every boundary must be hit at least once.
func TestCrashMigrateEveryPhase(t *testing.T) {
	Load(t)
	ref := cleanRun(t)
	landed := map[migrate.Phase]int{}
	for i, want := range crashPhases {
		for attempt := 0; attempt < 4 && landed[want] == 0; attempt++ {
			s := newCrashSvc(t, fmt.Sprintf("e2e-crash-p%d-%d", i, attempt), true, 0, "")
			b := s.before()
			r := s.signalRun(s.ctr, syscall.SIGKILL, func(ss *migrate.ServiceState, _ bool, _ time.Duration) bool {
				return ss != nil && ss.Phase.AtLeast(want)
			}, "migrate", "--yes", "--settle", "1s", s.ctr)
			t.Logf("kill at %s (attempt %d): killed %v, landed at %s", want, attempt, r.Killed, r.Landed)
			if r.Killed {
				landed[r.Landed]++
			} else if r.Code != 0 {
				t.Errorf("%s: run exited %d before the kill:\n%s", s.ctr, r.Code, r.Stderr)
			}
			res := s.mustMigrate("--settle", "1s", s.ctr)
			if r.Landed == migrate.PhaseDone && !strings.Contains(res.Stdout+res.Stderr, "already") {
				t.Errorf("%s: re-run after a kill at done does not say already migrated", s.ctr)
			}
			s.checkMigrated(b).same(t, s.ctr, ref)
			s.drop()
		}
	}
	t.Logf("kills landed per phase: %v", landed)
	for _, p := range crashPhases {
		if landed[p] == 0 {
			t.Errorf("no kill landed at phase %s", p)
		}
	}
}

// TestCrashMigrateVolumeCopy kills 'unroot migrate' at random points of
// the pre-sync and the final sync of a volume of a few thousand files (and
// the bind's shift), re-runs until a run completes, and compares with a
// clean run of the same tree; at least 20 kills must land inside a copy or
// shift, as the killed run's own progress lines show. Bounded: 60 kills,
// about three minutes.
func TestCrashMigrateVolumeCopy(t *testing.T) {
	Load(t)
	if testing.Short() {
		t.Skip("copies several volumes of 3000 files")
	}
	const files = 3000
	// the clean run, observed to learn when its copies run
	c := newCrashSvc(t, "e2e-crash-copy-clean", true, files, "")
	cb := c.before()
	seen := map[migrate.Phase]time.Duration{}
	var first time.Duration
	r := c.signalRun(c.ctr, syscall.SIGKILL, func(ss *migrate.ServiceState, changed bool, since time.Duration) bool {
		if changed && first == 0 {
			first = since
		}
		if ss != nil {
			if _, ok := seen[ss.Phase]; !ok {
				seen[ss.Phase] = since - first
			}
		}
		return false
	}, "migrate", "--yes", "--settle", "1s", c.ctr)
	if r.Code != 0 || r.Landed != migrate.PhaseDone {
		t.Fatalf("clean run: exit %d, phase %s\n%s", r.Code, r.Landed, r.Stderr)
	}
	ref := c.checkMigrated(cb)
	c.drop()
	// the pre-sync runs from image-transferred to presynced after the
	// first save, the final sync and its verification from source-stopped
	// to synced
	pre := [2]time.Duration{seen[migrate.PhaseImageTransferred], seen[migrate.PhasePresynced]}
	end, ok := seen[migrate.PhaseSynced]
	if !ok { // synced is followed by creating within a save
		end = seen[migrate.PhaseCreating]
	}
	fin := end - seen[migrate.PhaseSourceStopped]
	t.Logf("clean run: phases seen at %v after the first save", seen)
	if pre[1] <= pre[0] || fin <= 0 {
		t.Fatalf("the clean run's phases were not seen in order: %v", seen)
	}

	where := map[string]int{}
	inCopy, attempts := 0, 0
	deadline := time.Now().Add(3 * time.Minute)
	for cycle := 0; attempts < 60 && inCopy < 20 && time.Now().Before(deadline); cycle++ {
		s := newCrashSvc(t, fmt.Sprintf("e2e-crash-copy-%d", cycle), true, files, "")
		b := s.before()
		finished := false
		// up to three kills inside the pre-sync, then kills inside the final
		// sync until it is recorded; a run that gets past the copy ends the
		// cycle
		for k := 0; k < 8 && attempts < 60 && !finished; k++ {
			st, err := migrate.LoadState(filepath.Join(s.stateDir, s.User))
			if err != nil {
				t.Fatal(err)
			}
			var ph migrate.Phase
			if ss := st.Service(s.ctr); ss != nil {
				ph = ss.Phase
			}
			if ph.AtLeast(migrate.PhaseSynced) {
				break
			}
			attempts++
			var when func(*migrate.ServiceState, bool, time.Duration) bool
			var delay, first time.Duration
			if !ph.AtLeast(migrate.PhasePresynced) && k < 3 {
				// a resumed pre-sync only copies what is missing
				left := pre[1] - pre[0]
				if n := copiedFiles(s); n > 0 {
					left = max(left*time.Duration(files-min(n, files))/files, 10*time.Millisecond)
				}
				delay = pre[0] + rand.N(left)
				when = func(_ *migrate.ServiceState, changed bool, since time.Duration) bool {
					if changed && first == 0 {
						first = since
					}
					return first > 0 && since-first >= delay
				}
			} else {
				// the clock starts at the stop, or at the first save of a
				// run resumed after it, which does a delta pre-sync first
				delay = rand.N(fin)
				if ph.AtLeast(migrate.PhaseSourceStopped) {
					delay = rand.N(2 * fin)
				}
				when = func(ss *migrate.ServiceState, changed bool, since time.Duration) bool {
					if changed && ss != nil && ss.Phase.AtLeast(migrate.PhaseSourceStopped) && first == 0 {
						first = since
					}
					return first > 0 && since-first >= delay
				}
			}
			r := s.signalRun(s.ctr, syscall.SIGKILL, when, "migrate", "--yes", "--settle", "1s", s.ctr)
			if !r.Killed {
				if r.Code != 0 {
					t.Errorf("%s: run exited %d before the kill:\n%s", s.ctr, r.Code, r.Stderr)
				}
				finished = true
				break
			}
			w := copyKillPoint(r)
			where[w]++
			if !strings.HasPrefix(w, "outside") {
				inCopy++
			}
			t.Logf("%s: kill %d, delay %v (state before the run: %q): %s", s.ctr, attempts, delay, ph, w)
		}
		if !finished {
			s.mustMigrate("--settle", "1s", s.ctr)
		}
		s.checkMigrated(b).same(t, s.ctr, ref)
		s.drop()
	}
	t.Logf("%d kills: %v", attempts, where)
	if inCopy < 20 {
		t.Errorf("%d kills landed inside a copy (of %d), want ≥ 20", inCopy, attempts)
	}
}

// copiedFiles counts the regular files in the service's target volume
// (0 when there is none yet).
func copiedFiles(s *crashSvc) int {
	dst, err := s.DockerErr(true, "volume", "inspect", "-f", "{{.Mountpoint}}", s.vol)
	if err != nil {
		return 0
	}
	n := 0
	_ = filepath.WalkDir(dst, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return nil
	})
	return n
}

// copyKillPoint says where a kill landed, from the progress lines the
// killed run printed: inside the pre-sync copy (started, not done), inside
// the final sync or its verification (started, not verified), inside the
// bind's in-place shift, or elsewhere (then named by the recorded phase).
func copyKillPoint(r crashRun) string {
	e := r.Stderr
	switch {
	case strings.Contains(e, "(pre-sync): started") && !strings.Contains(e, "(pre-sync): done"):
		return "presync"
	case strings.Contains(e, "(final sync): started") && !strings.Contains(e, "verified"):
		return "final sync"
	case strings.Contains(e, "(shift in place): started") && !strings.Contains(e, "(shift in place): done"):
		return "bind shift"
	}
	return "outside the copy, at " + string(r.Landed)
}

// TestCrashRollback kills 'unroot rollback' at random points, re-runs it
// until it completes, and checks the rootful service is back exactly:
// running, restart policy restored, the bind's owners, modes, xattrs and
// contents as before the migration, the same published port serving, the
// target container gone. The service is migrated again for each cycle; at
// least 10 kills must land before a rollback finished. Bounded: 40 kills,
// ten cycles, about three minutes.
func TestCrashRollback(t *testing.T) {
	Load(t)
	s := newCrashSvc(t, "e2e-crash-rb", false, 2000, "127.0.0.1:94:80")
	b := s.before()
	page := httpGet(t, 94, "/www/index.html")
	checkBack := func(what string) {
		t.Helper()
		s.checkRolledBack(what, b)
		if got := httpGet(t, 94, "/www/index.html"); got != page {
			t.Errorf("%s: port 94 serves %q, served %q", what, got, page)
		}
	}
	migrateOnce := func() {
		t.Helper()
		s.mustMigrate("--settle", "1s", s.ctr)
		if got := httpGet(t, 8094, "/www/index.html"); got != page {
			t.Fatalf("target on port 8094 serves %q", got)
		}
	}

	// a clean rollback first, to learn how long one takes
	migrateOnce()
	start := time.Now()
	r := s.signalRun(s.ctr, syscall.SIGKILL, func(*migrate.ServiceState, bool, time.Duration) bool { return false }, "rollback", s.ctr)
	if r.Code != 0 {
		t.Fatalf("clean rollback: exit %d\n%s", r.Code, r.Stderr)
	}
	// the range of the random kill delays, bounded below
	span := max(time.Since(start), 300*time.Millisecond)
	t.Logf("a clean rollback took %v", time.Since(start))
	checkBack("clean rollback")
	if t.Failed() {
		t.FailNow()
	}

	where := map[string]int{}
	killed, attempts := 0, 0
	deadline := time.Now().Add(3 * time.Minute)
	for cycle := 1; cycle <= 10 && attempts < 40 && killed < 10 && time.Now().Before(deadline); cycle++ {
		migrateOnce()
		finished := false
		// a re-run has less left to do: each kill of a cycle comes no later
		// than the one before
		limit := span
		for k := 0; k < 6 && attempts < 40 && !finished; k++ {
			attempts++
			delay := 10*time.Millisecond + rand.N(limit)
			limit = max(delay, 50*time.Millisecond)
			r := s.signalRun(s.ctr, syscall.SIGKILL, func(_ *migrate.ServiceState, _ bool, since time.Duration) bool {
				return since >= delay
			}, "rollback", s.ctr)
			if !r.Killed {
				if r.Code != 0 {
					t.Errorf("rollback exited %d:\n%s", r.Code, r.Stderr)
				}
				finished = true
				break
			}
			killed++
			w := rollbackKillPoint(s, r)
			where[w]++
			t.Logf("rollback kill %d after %v: %s", attempts, delay, w)
		}
		if !finished {
			if _, errOut, code := s.Unroot(t, s.args("rollback", s.ctr)...); code != 0 {
				t.Fatalf("rollback after the kills: exit %d\n%s", code, errOut)
			}
		}
		checkBack(fmt.Sprintf("cycle %d", cycle))
		if t.Failed() {
			t.FailNow()
		}
	}
	t.Logf("%d rollback kills landed of %d: %v", killed, attempts, where)
	if killed < 10 {
		t.Errorf("%d rollback kills landed before the rollback finished, want ≥ 10", killed)
	}
}

// checkRolledBack checks the rootful service is back as it was before
// its migration: running with restart policy "always" and the same port
// bindings, the bind's owners, modes, xattrs and contents as before, the
// source volume untouched, no target container, and the state says
// rolled-back.
func (s *crashSvc) checkRolledBack(what string, b crashBefore) {
	t := s.t
	t.Helper()
	if got := s.inspect(false, s.ctr, "{{.HostConfig.RestartPolicy.Name}} {{.State.Running}}"); got != "always true" {
		t.Errorf("%s: source %q, want \"always true\"", what, got)
	}
	if got := s.inspect(false, s.ctr, "{{json .HostConfig.PortBindings}}"); got != b.ports {
		t.Errorf("%s: source ports %s, were %s", what, got, b.ports)
	}
	sameSnapshot(t, what+": bind", b.bind, crashSnapshot(t, s.bind, true))
	if s.vol != "" {
		sameSnapshot(t, what+": source volume", b.srcVol, crashSnapshot(t, s.srcVol, false))
	}
	if _, err := s.DockerErr(true, "inspect", s.ctr); err == nil {
		t.Errorf("%s: the target container is still there", what)
	}
	if ph := s.status().Services[s.ctr].Phase; ph != string(migrate.PhaseRolledBack) {
		t.Errorf("%s: phase %q, want rolled-back", what, ph)
	}
}

// TestCrashMigrateKilledThenRolledBack kills 'unroot migrate' at each
// phase boundary and, instead of resuming, runs 'unroot rollback': the
// rootful service must be back exactly (at most three tries per boundary;
// every boundary must be hit at least once).
func TestCrashMigrateKilledThenRolledBack(t *testing.T) {
	Load(t)
	landed := map[migrate.Phase]int{}
	for i, want := range crashPhases {
		for attempt := 0; attempt < 3 && landed[want] == 0; attempt++ {
			s := newCrashSvc(t, fmt.Sprintf("e2e-crash-rbp%d-%d", i, attempt), true, 0, "")
			b := s.before()
			r := s.signalRun(s.ctr, syscall.SIGKILL, func(ss *migrate.ServiceState, _ bool, _ time.Duration) bool {
				return ss != nil && ss.Phase.AtLeast(want)
			}, "migrate", "--yes", "--settle", "1s", s.ctr)
			t.Logf("kill at %s (attempt %d): killed %v, landed at %s", want, attempt, r.Killed, r.Landed)
			if r.Killed {
				landed[r.Landed]++
			}
			if _, errOut, code := s.Unroot(t, s.args("rollback", s.ctr)...); code != 0 {
				t.Errorf("rollback after a kill at %s: exit %d\n%s", r.Landed, code, errOut)
			}
			s.checkRolledBack(fmt.Sprintf("rollback after a kill at %s", r.Landed), b)
			s.drop()
		}
	}
	t.Logf("kills landed per phase: %v", landed)
	for _, p := range crashPhases {
		if landed[p] == 0 {
			t.Errorf("no kill landed at phase %s", p)
		}
	}
}

// TestCrashMigrateKilledInBindShift kills 'unroot migrate' inside the
// in-place shift of a bind of 3000 files once its journal holds records
// (from the first record, delays stepped by 3 ms, at most eight tries per
// mode),
// then either resumes the migration, which must end as an uninterrupted one
// (the target sees what the source saw, every owner mapped exactly once), or
// rolls it back, which must find the
// half-shifted bind and restore it exactly.
func TestCrashMigrateKilledInBindShift(t *testing.T) {
	Load(t)
	for _, mode := range []string{"resume", "rollback"} {
		halfShifted := false
		for attempt := 0; attempt < 8 && !halfShifted; attempt++ {
			s := newCrashSvc(t, fmt.Sprintf("e2e-crash-shift-%s-%d", mode, attempt), false, 3000, "")
			b := s.before()
			jdir := migrate.JournalDir(filepath.Join(s.stateDir, s.User), "bind", s.bind)
			// journaled reports whether the shift's journal holds records:
			// more than its header, "unroot-chown-journal 1\n".
			journaled := func() bool {
				fi, err := os.Stat(filepath.Join(jdir, "journal"))
				return err == nil && fi.Size() > int64(len("unroot-chown-journal 1\n"))
			}
			// The shift of 3000 entries takes some 25 ms: aim at it from the
			// first journal record (polled every 2 ms), later each try.
			delay := time.Duration(attempt) * 3 * time.Millisecond
			var first time.Duration
			r := s.signalRun(s.ctr, syscall.SIGKILL, func(ss *migrate.ServiceState, _ bool, since time.Duration) bool {
				if first == 0 && ss != nil && ss.Phase.AtLeast(migrate.PhaseSourceStopped) && journaled() {
					first = since
				}
				return first > 0 && since-first >= delay
			}, "migrate", "--yes", "--settle", "1s", s.ctr)
			w := copyKillPoint(r)
			journal, err := chown.JournalStatus(jdir)
			if err != nil {
				t.Fatal(err)
			}
			halfShifted = w == "bind shift" && journal == "started" && journaled()
			what := fmt.Sprintf("%s after a kill %v after the bind's first journal record (%s, journal %s)", mode, delay, w, journal)
			t.Log(what)
			if mode == "resume" {
				s.mustMigrate("--settle", "1s", s.ctr)
				s.checkMigrated(b)
			} else {
				out, errOut, code := s.Unroot(t, s.args("rollback", s.ctr)...)
				t.Logf("rollback:\n%s%s", out, errOut)
				if code != 0 {
					t.Errorf("%s: exit %d", what, code)
				}
				s.checkRolledBack(what, b)
			}
			s.drop()
		}
		if !halfShifted {
			t.Errorf("%s: no kill landed inside the bind's shift after it journaled inodes, in eight tries", mode)
		}
	}
}

// rollbackKillPoint says how far a killed rollback run got, from the
// steps it reported, and what it left for the re-run.
func rollbackKillPoint(s *crashSvc, r crashRun) string {
	ran := "no step done"
	switch {
	case strings.Contains(r.Stderr, "source started again"):
		ran = "source started"
	case strings.Contains(r.Stderr, "owners restored"):
		ran = "bind restored"
	case strings.Contains(r.Stderr, "target container removed"):
		ran = "target removed"
	}
	left := "target still there"
	if _, err := s.DockerErr(true, "inspect", s.ctr); err != nil {
		left = "target gone"
		if bs := r.State.Binds[s.bind]; bs != nil && bs.Reversed {
			left = "bind reversed"
		}
	}
	return ran + ", " + left
}

// TestCrashMigrateInterrupt sends SIGINT to 'unroot migrate' once the
// source stopped: it exits non-zero, says how to resume, rolls the unit
// back (the source runs again, the bind has its owners back, no target
// container), and a re-run completes with the end state of a clean run.
func TestCrashMigrateInterrupt(t *testing.T) {
	Load(t)
	ref := cleanRun(t)
	for attempt := 0; attempt < 3; attempt++ {
		s := newCrashSvc(t, fmt.Sprintf("e2e-crash-int-%d", attempt), true, 0, "")
		b := s.before()
		r := s.signalRun(s.ctr, syscall.SIGINT, func(ss *migrate.ServiceState, _ bool, _ time.Duration) bool {
			return ss != nil && ss.Phase.AtLeast(migrate.PhaseSourceStopped)
		}, "migrate", "--yes", "--settle", "1s", s.ctr)
		if !r.Killed {
			t.Logf("attempt %d: the run finished (exit %d) before SIGINT landed; again", attempt, r.Code)
			s.drop()
			continue
		}
		t.Logf("SIGINT: exit %d, phase %s\n%s", r.Code, r.Landed, r.Stderr)
		// the cutover rolled the unit back: the hint says so and how to
		// migrate it again, not that a half-done run waits to be resumed
		if !strings.Contains(r.Stderr, "hint: interrupted; the unit was rolled back") || !strings.Contains(r.Stderr, "run the same command again") ||
			strings.Contains(r.Stderr, "resume where it stopped") {
			t.Errorf("SIGINT: stderr does not say the unit was rolled back and how to migrate it again:\n%s", r.Stderr)
		}
		if got := s.inspect(false, s.ctr, "{{.HostConfig.RestartPolicy.Name}} {{.State.Running}}"); got != "always true" {
			t.Errorf("after SIGINT the source is %q, want \"always true\" (rolled back)", got)
		}
		if _, err := s.DockerErr(true, "inspect", s.ctr); err == nil {
			t.Error("after SIGINT a target container is left")
		}
		sameSnapshot(t, "bind after SIGINT", b.bind, crashSnapshot(t, s.bind, true))
		s.mustMigrate("--settle", "1s", s.ctr)
		s.checkMigrated(b).same(t, s.ctr, ref)
		return
	}
	t.Error("SIGINT never landed before the run finished (3 attempts)")
}
