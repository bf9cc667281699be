package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

// badPrefix starts the name of every object the bad-input tests create, so
// their snapshots can tell their own objects from those of tests running at
// the same time against the same daemons.
const badPrefix = "e2e-bad-"

// badSnapshot is what a refused command could have touched: the selected
// source containers, both daemons' objects and the files involved.
type badSnapshot struct {
	source map[string]string   // container → status, start time, restart policy
	lists  map[string][]string // "target containers" etc. → sorted names
	files  map[string]string   // path → owner, mode, size, ctime (or "absent")
}

// snap records the state of containers in the source daemon, the object
// lists of both daemons and every entry under paths (not following
// symlinks). The user's directory in the state directory and its "lock"
// file are left out: every run that takes the lock creates them and writes
// its pid there; the state file and the journals are what matter.
func (e *migEnv) snap(t *testing.T, containers []string, paths ...string) badSnapshot {
	t.Helper()
	s := badSnapshot{source: map[string]string{}, lists: map[string][]string{}, files: map[string]string{}}
	for _, c := range containers {
		s.source[c] = dockerRetry(t, e.Rig, false, "inspect", "-f", "{{.Id}} {{.State.Status}} {{.State.StartedAt}} {{.State.FinishedAt}} {{.RestartCount}} {{.HostConfig.RestartPolicy.Name}}", c)
	}
	lists := []struct {
		key    string
		target bool
		args   []string
	}{
		{"target containers", true, []string{"ps", "-a", "--format", "{{.Names}} {{.ID}} {{.State}}"}},
		{"target volumes", true, []string{"volume", "ls", "-q"}},
		{"target networks", true, []string{"network", "ls", "--format", "{{.Name}} {{.ID}}"}},
		{"target images", true, []string{"image", "ls", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"}},
		{"source containers", false, []string{"ps", "-a", "--format", "{{.Names}} {{.ID}}"}},
		{"source volumes", false, []string{"volume", "ls", "-q"}},
		{"source networks", false, []string{"network", "ls", "--format", "{{.Name}} {{.ID}}"}},
		{"source images", false, []string{"image", "ls", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"}},
	}
	for _, l := range lists {
		out := dockerRetry(t, e.Rig, l.target, l.args...)
		var names []string
		for _, line := range strings.Split(out, "\n") {
			if line = strings.TrimSpace(line); line != "" {
				names = append(names, line)
			}
		}
		slices.Sort(names)
		s.lists[l.key] = names
	}
	for _, p := range paths {
		p, shallow := strings.CutPrefix(p, shallowPrefix)
		err := filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) && path == p {
					s.files[path] = "absent"
					return nil
				}
				return err
			}
			userDir := filepath.Join(e.stateDir, e.User)
			if path == userDir || path == filepath.Join(userDir, "lock") {
				return nil
			}
			var st syscall.Stat_t
			if err := syscall.Lstat(path, &st); err != nil {
				return err
			}
			switch {
			case path == filepath.Clean(e.stateDir):
				// Creating the user's directory changes its times.
				s.files[path] = fmt.Sprintf("%d:%d %o", st.Uid, st.Gid, st.Mode)
			case shallow:
				s.files[shallowPrefix+path] = fmt.Sprintf("%d:%d %o", st.Uid, st.Gid, st.Mode)
				return filepath.SkipAll
			default:
				s.files[path] = fmt.Sprintf("%d:%d %o size %d ctime %d.%09d", st.Uid, st.Gid, st.Mode, st.Size, st.Ctim.Sec, st.Ctim.Nsec)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("snapshot %s: %v", p, err)
		}
	}
	return s
}

// shallowPrefix marks a path of [migEnv.snap] whose owner and mode alone
// are recorded, not its times and not what is below it: a directory others
// write to, like the rootless user's home.
const shallowPrefix = "shallow:"

// unchanged fails the test when anything of before changed. Objects of the
// daemons whose names do not start with [badPrefix] belong to other tests
// that may run at the same time; a change there is only logged.
func (e *migEnv) unchanged(t *testing.T, what string, before badSnapshot) {
	t.Helper()
	after := e.snap(t, mapKeys(before.source), mapKeys(before.roots())...)
	for c, v := range before.source {
		if after.source[c] != v {
			t.Errorf("%s: source container %s changed: %q → %q", what, c, v, after.source[c])
		}
	}
	for key, was := range before.lists {
		now := after.lists[key]
		for _, x := range symmetricDiff(was, now) {
			if strings.HasPrefix(x, badPrefix) || strings.HasPrefix(x, "unroot/commit:"+badPrefix) {
				t.Errorf("%s: %s changed: %q appeared or vanished", what, key, x)
			} else {
				t.Logf("%s: %s: %q changed (not this test's object)", what, key, x)
			}
		}
	}
	for p, v := range before.files {
		if after.files[p] != v {
			t.Errorf("%s: %s changed: %s → %s", what, p, v, after.files[p])
		}
	}
	for p, v := range after.files {
		if _, ok := before.files[p]; !ok {
			t.Errorf("%s: %s appeared (%s)", what, p, v)
		}
	}
}

// dockerRetry is [Rig.Docker] tried up to three times: listing objects
// can fail while another test removes one at the same moment.
func dockerRetry(t *testing.T, r *Rig, target bool, args ...string) string {
	t.Helper()
	var err error
	for i := 0; i < 3; i++ {
		var out string
		if out, err = r.DockerErr(target, args...); err == nil {
			return out
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Fatalf("docker %s: %v", strings.Join(args, " "), err)
	return ""
}

// roots are the paths a snapshot walked: those not below another one.
func (s badSnapshot) roots() map[string]bool {
	r := map[string]bool{}
	for p := range s.files {
		top := true
		for q := range s.files {
			if q != p && strings.HasPrefix(p, q+"/") {
				top = false
				break
			}
		}
		if top {
			r[p] = true
		}
	}
	return r
}

func mapKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// symmetricDiff returns the entries of exactly one of a and b.
func symmetricDiff(a, b []string) []string {
	var d []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			d = append(d, x)
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			d = append(d, x)
		}
	}
	return d
}

// wantRefusal checks a refused run: the exit code, a stderr line
// "unroot: <lowercase message>" (after any progress lines), msg in stderr, and a "hint:" line (with
// hint in it when hint is not empty).
func wantRefusal(t *testing.T, what string, res Result, code int, msg, hint string) {
	t.Helper()
	if res.Code != code {
		t.Errorf("%s: exit %d, want %d\nstderr: %s", what, res.Code, code, res.Stderr)
	}
	// Progress lines may come first; the error is the first "unroot: " line.
	var text string
	ok := false
	for _, l := range strings.Split(res.Stderr, "\n") {
		if text, ok = strings.CutPrefix(l, "unroot: "); ok {
			break
		}
	}
	if r, _ := utf8.DecodeRuneInString(text); !ok || text == "" || unicode.IsUpper(r) {
		t.Errorf("%s: stderr has no \"unroot: <lowercase message>\" line:\n%s", what, res.Stderr)
	}
	if !strings.Contains(res.Stderr, msg) {
		t.Errorf("%s: stderr lacks %q:\n%s", what, msg, res.Stderr)
	}
	hintLine := ""
	for _, l := range strings.Split(res.Stderr, "\n") {
		if h, ok := strings.CutPrefix(strings.TrimSpace(l), "hint: "); ok && strings.TrimSpace(h) != "" {
			if hint == "" || strings.Contains(h, hint) {
				hintLine = h
				break
			}
		}
	}
	if hintLine == "" {
		t.Errorf("%s: stderr has no hint line (containing %q):\n%s", what, hint, res.Stderr)
	}
}

// quickContainer starts a source container that stops at once on SIGTERM.
func (e *migEnv) quickContainer(name string, opts ...string) {
	e.t.Helper()
	args := append([]string{"run", "-d", "--name", name}, opts...)
	args = append(args, e.Image, "sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done")
	e.Docker(e.t, false, args...)
}

// volumeDir is the rootful daemon's directory of volume name.
func (e *migEnv) volumeDir(name string) string {
	return e.Docker(e.t, false, "volume", "inspect", "-f", "{{.Mountpoint}}", name)
}

// runBounded runs a command for at most d and returns its output and exit
// code; err is set only when it could not run or was killed at the bound.
func runBounded(d time.Duration, name string, args ...string) (stdout, stderr string, code int, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ctx.Err() == nil {
		code, err = ee.ExitCode(), nil
	}
	return out.String(), errb.String(), code, err
}

// runCmdOut runs a command (bounded to a minute) and returns its combined
// output; a non-zero exit is an error.
func runCmdOut(name string, args ...string) (string, error) {
	out, errOut, code, err := runBounded(time.Minute, name, args...)
	if err == nil && code != 0 {
		err = fmt.Errorf("exit %d", code)
	}
	return out + errOut, err
}

// fileExists reports whether path exists (not following a final symlink).
func fileExists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
