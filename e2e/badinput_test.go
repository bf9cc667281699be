package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The bad-input catalogue (docs/security.md): every case runs the real
// binary against the rig's daemons with something wrong and checks the exit
// code, an "unroot: <lowercase message>" line, a "hint:" line, and that
// nothing changed: the source containers, both daemons' objects, the files
// involved and the state directory.

// badCase is one refused command line.
type badCase struct {
	name string
	args []string // complete command line; nil args use withArgs
	code int
	msg  string // in stderr
	hint string // in a hint line ("" means any hint)
}

// unprivilegedPortStart reads net.ipv4.ip_unprivileged_port_start.
func unprivilegedPortStart(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start")
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestBadInputUsage: command lines that are wrong in themselves exit 2 with
// a hint, before touching anything.
func TestBadInputUsage(t *testing.T) {
	const ctr = badPrefix + "usage"
	e := newMigEnv(t, []string{ctr}, nil, nil)
	e.quickContainer(ctr, "--restart", "always")
	start := unprivilegedPortStart(t)
	if start < 2 {
		t.Fatalf("net.ipv4.ip_unprivileged_port_start is %d: every port is unprivileged", start)
	}
	low := strconv.Itoa(start - 1)
	noUser := []string{"--source-host", e.SourceHost, "--target-host", e.TargetHost, "--state-dir", e.stateDir}
	tests := []badCase{
		{"unknown format", e.args("migrate", "--dry-run", "--format", "yaml", ctr), 2, `unknown --format "yaml"`, "text, json, markdown"},
		{"unknown status format", e.args("status", "--format", "xml"), 2, `unknown --format "xml"`, "text, json"},
		{"missing user", append(noUser, "migrate", "--dry-run", ctr), 2, "--user is required", "--user"},
		{"missing user for chown", append(noUser, "chown", "--dry-run", e.stateDir), 2, "--user is required", "--user"},
		{"all with a name", e.args("migrate", "--dry-run", "--all", ctr), 2, "select exactly one of --all", ""},
		{"project with a name", e.args("migrate", "--dry-run", "--project", "p", ctr), 2, "select exactly one of --all", ""},
		{"nothing selected", e.args("migrate", "--dry-run"), 2, "select exactly one of --all", ""},
		{"unknown verb", e.args("frobnicate"), 2, `unknown command "frobnicate"`, "--help"},
		{"unknown flag", e.args("migrate", "--frobnicate", ctr), 2, "unknown flag: --frobnicate", "--help"},
		{"port map without new port", e.args("migrate", "--dry-run", "--port-map", "80", ctr), 2, "want OLD:NEW", "--port-map OLD:NEW"},
		{"port map not numbers", e.args("migrate", "--dry-run", "--port-map", "a:b", ctr), 2, "ports are numbers", "--port-map OLD:NEW"},
		{"port map to a privileged port", e.args("migrate", "--dry-run", "--port-map", "80:"+low, ctr), 2, "new port " + low + " is below " + strconv.Itoa(start), "ip_unprivileged_port_start"},
		{"port map used twice", e.args("migrate", "--dry-run", "--port-map", "80:8180", "--port-map", "443:8180", ctr), 2, "8180", "--port-map OLD:NEW"},
		{"unknown volumes mode", e.args("migrate", "--dry-run", "--volumes", "zap", ctr), 2, `unknown --volumes "zap"`, "--volumes copy"},
		{"unknown proxy", e.args("migrate", "--dry-run", "--proxy", "apache", ctr), 2, `unknown --proxy "apache"`, "nginx"},
		{"bad settle duration", e.args("migrate", "--dry-run", "--settle", "soon", ctr), 2, `invalid argument "soon"`, "--help"},
		{"no confirmation off a terminal", e.args("migrate", ctr), 2, "stdin is not a terminal", "--yes"},
		{"rollback of nothing named", e.args("rollback"), 2, "name containers or pass --all", ""},
		{"rollback all with a name", e.args("rollback", "--all", ctr), 2, "name containers or pass --all", ""},
		{"status with an argument", e.args("status", ctr), 2, "unknown command", "--help"},
		{"chown without a path", e.args("chown"), 2, "name at least one tree to shift", "unroot chown --user alice"},
		{"chown dry run and reverse", e.args("chown", "--dry-run", "--reverse", e.stateDir), 2, "--dry-run and --reverse exclude each other", "--reverse"},
		{"chown of /", e.args("chown", "/"), 2, "refusing to shift /: a system directory", "_data"},
		{"chown of /etc", e.args("chown", "--reverse", "/etc"), 2, "refusing to shift /etc", "_data"},
		{"chown of the user's home", e.args("chown", e.Home), 2, "refusing to shift " + e.Home, "_data"},
		{"chown of the home's parent by a relative path", e.args("chown", e.Home+"/.."), 2, "refusing to shift", "_data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.snap(t, []string{ctr}, e.stateDir, shallowPrefix+e.Home, shallowPrefix+"/etc")
			res := e.UnrootEnv(t, nil, tt.args...)
			wantRefusal(t, tt.name, res, tt.code, tt.msg, tt.hint)
			if res.Stdout != "" {
				t.Errorf("stdout is not empty: %q", res.Stdout)
			}
			e.unchanged(t, tt.name, before)
		})
	}
}

// TestBadInputFailures: well-formed command lines that cannot be carried
// out exit 1 with a hint and change nothing.
func TestBadInputFailures(t *testing.T) {
	const ctr = badPrefix + "fail"
	e := newMigEnv(t, []string{ctr}, nil, nil)
	e.quickContainer(ctr, "--restart", "unless-stopped")
	missing := filepath.Join(e.stateDir, "no-such-tree")
	tree := t.TempDir()
	file := filepath.Join(tree, "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []badCase{
		{"unknown user", []string{"--user", badPrefix + "nouser", "--source-host", e.SourceHost, "--target-host", e.TargetHost, "--state-dir", e.stateDir, "migrate", "--dry-run", ctr},
			1, `user "` + badPrefix + `nouser" not found`, "useradd"},
		{"unknown uid", []string{"--user", "4000000", "--state-dir", e.stateDir, "chown", "--dry-run", e.stateDir}, 1, `user "4000000" not found`, "useradd"},
		{"target daemon down", []string{"--user", e.User, "--source-host", e.SourceHost, "--target-host", "unix:///nonexistent.sock", "--state-dir", e.stateDir, "migrate", "--dry-run", ctr},
			1, "target daemon at unix:///nonexistent.sock does not answer", "--target-host"},
		{"source daemon down", []string{"--user", e.User, "--source-host", "unix:///nonexistent.sock", "--target-host", e.TargetHost, "--state-dir", e.stateDir, "migrate", "--dry-run", ctr},
			1, "source daemon at unix:///nonexistent.sock does not answer", "--source-host"},
		{"source daemon down for rollback", []string{"--user", e.User, "--source-host", "unix:///nonexistent.sock", "--target-host", e.TargetHost, "--state-dir", e.stateDir, "rollback", ctr},
			1, "source daemon at unix:///nonexistent.sock does not answer", "--source-host"},
		{"target daemon down for apply", []string{"--user", e.User, "--source-host", e.SourceHost, "--target-host", "unix:///nonexistent.sock", "--state-dir", e.stateDir, "migrate", "--yes", ctr},
			1, "target daemon at unix:///nonexistent.sock does not answer", "--target-host"},
		{"container name typo", e.args("migrate", "--dry-run", ctr+"x"), 1, `no container named "` + ctr + `x"; did you mean "` + ctr + `"?`, "docker ps -a"},
		{"container name typo on apply", e.args("migrate", "--yes", ctr[:len(ctr)-1]), 1, `did you mean "` + ctr + `"?`, "docker ps -a"},
		{"unknown project", e.args("migrate", "--dry-run", "--project", badPrefix+"noproject"), 1, `no project named "` + badPrefix + `noproject"`, "docker compose ls"},
		{"rollback of a never-migrated container", e.args("rollback", ctr), 1, ctr + ": no migration recorded", "unroot status"},
		{"chown of a missing path", e.args("chown", missing), 1, missing, "existing directory"},
		{"chown of a file", e.args("chown", file), 1, file + " is not a directory", "existing directory"},
		{"chown reverse of a tree never shifted", e.args("chown", "--reverse", tree), 1, "nothing to reverse: no shift of " + tree, "same --state-dir"},
		{"unknown docker context", append([]string{"--user", e.User, "--target-host", e.TargetHost, "--state-dir", e.stateDir}, "migrate", "--dry-run", ctr),
			1, `docker context "` + badPrefix + `noctx" not found`, "docker context ls"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.snap(t, []string{ctr}, e.stateDir, tree)
			var env []string
			if tt.name == "unknown docker context" {
				env = []string{"DOCKER_HOST=", "DOCKER_CONTEXT=" + badPrefix + "noctx"}
			}
			res := e.UnrootEnv(t, env, tt.args...)
			wantRefusal(t, tt.name, res, tt.code, tt.msg, tt.hint)
			e.unchanged(t, tt.name, before)
		})
	}

	// status without any state is not an error: it says so.
	before := e.snap(t, []string{ctr}, e.stateDir)
	out, errOut, code := e.Unroot(t, e.args("status")...)
	if code != 0 || !strings.Contains(out, "no migration recorded for "+e.User) || errOut != "" {
		t.Errorf("status with no state: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	e.unchanged(t, "status with no state", before)
}

// TestBadInputStateDir: a damaged state file, a state directory that is a
// file, and a state directory locked by another run: every verb that reads
// the state exits 1 with a hint and leaves it as it was.
func TestBadInputStateDir(t *testing.T) {
	const ctr = badPrefix + "state"
	e := newMigEnv(t, []string{ctr}, nil, nil)
	e.quickContainer(ctr, "--restart", "always")
	verbs := [][]string{
		{"migrate", "--dry-run", ctr},
		{"migrate", "--yes", ctr},
		{"status"},
		{"rollback", ctr},
	}
	userDir := filepath.Join(e.stateDir, e.User)

	t.Run("corrupt state file", func(t *testing.T) {
		if err := os.MkdirAll(userDir, 0o700); err != nil {
			t.Fatal(err)
		}
		stateFile := filepath.Join(userDir, "migrate-state.json")
		if err := os.WriteFile(stateFile, []byte("{\"version\":1,\"services\":{\x00garbage"), 0o600); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(stateFile)
		for _, v := range verbs {
			before := e.snap(t, []string{ctr}, e.stateDir)
			res := e.UnrootEnv(t, nil, e.args(v[0], v[1:]...)...)
			wantRefusal(t, strings.Join(v, " "), res, 1, "read state "+stateFile, "move the damaged")
			e.unchanged(t, strings.Join(v, " "), before)
		}
	})

	t.Run("future state version", func(t *testing.T) {
		if err := os.MkdirAll(userDir, 0o700); err != nil {
			t.Fatal(err)
		}
		stateFile := filepath.Join(userDir, "migrate-state.json")
		if err := os.WriteFile(stateFile, []byte(`{"version":99,"services":{}}`), 0o600); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(stateFile)
		before := e.snap(t, []string{ctr}, e.stateDir)
		res := e.UnrootEnv(t, nil, e.args("status")...)
		wantRefusal(t, "status", res, 1, "has version 99", "")
		e.unchanged(t, "future version", before)
	})

	t.Run("state dir is a file", func(t *testing.T) {
		file := filepath.Join(e.stateDir, "not-a-dir")
		if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(file)
		for _, v := range verbs {
			before := e.snap(t, []string{ctr}, e.stateDir)
			args := append([]string{}, e.Hosts()...)
			args = append(append(args, "--state-dir", file), v...)
			res := e.UnrootEnv(t, nil, args...)
			wantRefusal(t, strings.Join(v, " "), res, 1, "not a directory", "--state-dir")
			e.unchanged(t, strings.Join(v, " "), before)
		}
	})

	t.Run("locked by another run", func(t *testing.T) {
		if err := os.MkdirAll(userDir, 0o700); err != nil {
			t.Fatal(err)
		}
		lock, err := os.OpenFile(filepath.Join(userDir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer lock.Close()
		if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			t.Fatal(err)
		}
		pid := strconv.Itoa(os.Getpid())
		if _, err := lock.WriteAt([]byte(pid+"\n"), 0); err != nil {
			t.Fatal(err)
		}
		for _, v := range [][]string{{"migrate", "--yes", ctr}, {"rollback", ctr}} {
			before := e.snap(t, []string{ctr}, e.stateDir)
			res := e.UnrootEnv(t, nil, e.args(v[0], v[1:]...)...)
			wantRefusal(t, strings.Join(v, " "), res, 1, "another unroot run (pid "+pid+") is working in "+userDir, "ps -p "+pid)
			e.unchanged(t, strings.Join(v, " "), before)
		}
		// A dry run takes no lock: it still works while another run holds it.
		res := e.UnrootEnv(t, nil, e.args("migrate", "--dry-run", ctr)...)
		if res.Code != 0 {
			t.Errorf("dry run under a held lock: exit %d: %s", res.Code, res.Stderr)
		}
	})
}

// TestBadInputSubIDs: users without a usable subordinate id range. The
// throwaway users and their /etc/subuid and /etc/subgid lines are removed
// again, and the files restored byte for byte.
func TestBadInputSubIDs(t *testing.T) {
	const ctr = badPrefix + "subid"
	e := newMigEnv(t, []string{ctr}, nil, nil)
	e.quickContainer(ctr)

	nosub := addThrowawayUser(t, badPrefix+"nosub", "")
	// Far above the rig user's range, and the overlap is with the small
	// range, not with the rig user's: tests that check the rig user's
	// ranges may run at the same time.
	smallStart := e.SubUIDStart + e.SubUIDCount + 1000000
	small := addThrowawayUser(t, badPrefix+"small", fmt.Sprintf("%d:1000", smallStart))
	overlap := addThrowawayUser(t, badPrefix+"overlap", fmt.Sprintf("%d:65536", smallStart+500))

	as := func(user string, verb ...string) []string {
		return append([]string{"--user", user, "--source-host", e.SourceHost, "--target-host", e.TargetHost, "--state-dir", e.stateDir}, verb...)
	}
	// migrate and chown need a map: without a range there is none.
	for _, v := range [][]string{{"migrate", "--dry-run", ctr}, {"chown", "--dry-run", e.stateDir}} {
		before := e.snap(t, []string{ctr}, e.stateDir)
		res := e.UnrootEnv(t, nil, as(nosub, v...)...)
		wantRefusal(t, "no subids: "+v[0], res, 1, "no id map for "+nosub, "usermod --add-subuids")
		e.unchanged(t, "no subids: "+v[0], before)
	}
	// check names each problem with a fix and exits 1.
	checks := []struct {
		user, line, fix string
	}{
		{nosub, "/etc/subuid has no entry for " + nosub, "usermod --add-subuids"},
		{small, "fewer than 65536", "usermod --add-subuids"},
		{overlap, "overlaps " + small + "'s", "usermod --del-subuids"},
	}
	for _, c := range checks {
		before := e.snap(t, []string{ctr}, e.stateDir)
		res := e.UnrootEnv(t, nil, as(c.user, "check")...)
		if res.Code != 1 || !strings.Contains(res.Stdout, c.line) || !strings.Contains(res.Stdout, "fix: "+c.fix) {
			t.Errorf("check --user %s: exit %d, want 1 with %q and a fix %q:\n%s%s", c.user, res.Code, c.line, c.fix, res.Stdout, res.Stderr)
		}
		e.unchanged(t, "check "+c.user, before)
	}
}

// addThrowawayUser creates a user without a home and, when rng is not
// empty, appends "name:rng" to /etc/subuid and /etc/subgid. Cleanup removes
// the lines and the user and checks the files are byte for byte as before.
// Other tests read the files at the same time, so the edits are single
// appended lines and the restore is an atomic rename.
func addThrowawayUser(t *testing.T, name, rng string) string {
	t.Helper()
	files := []string{"/etc/subuid", "/etc/subgid"}
	orig := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), name+":") {
			t.Fatalf("%s already has a line for %s (left over from a killed run? remove it)", f, name)
		}
		orig[f] = b
	}
	_, _ = runCmdOut("userdel", name) // left over from a killed run
	if out, err := runCmdOut("useradd", "-M", "-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0", name); err != nil {
		t.Fatalf("useradd %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Errorf("restore %s: %v", f, err)
				continue
			}
			var keep []string
			for _, l := range strings.SplitAfter(string(b), "\n") {
				if !strings.HasPrefix(l, name+":") {
					keep = append(keep, l)
				}
			}
			now := strings.Join(keep, "")
			if now != string(b) {
				tmp := f + ".e2e-bad-tmp"
				if err := os.WriteFile(tmp, []byte(now), 0o644); err != nil {
					t.Errorf("restore %s: %v", f, err)
					continue
				}
				if err := os.Rename(tmp, f); err != nil {
					t.Errorf("restore %s: %v", f, err)
				}
			}
			if now != string(orig[f]) {
				t.Errorf("%s is not as before the test:\nbefore %q\nafter  %q", f, orig[f], now)
			}
		}
		if out, err := runCmdOut("userdel", name); err != nil {
			t.Errorf("userdel %s: %v: %s", name, err, out)
		}
	})
	if rng != "" {
		for _, f := range files {
			fh, err := os.OpenFile(f, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			_, err = fh.WriteString(name + ":" + rng + "\n")
			fh.Close()
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	return name
}

// TestBadInputNotRoot: the unprivileged user itself runs unroot. It cannot
// reach the rootful daemon; the refusal says so and changes nothing.
func TestBadInputNotRoot(t *testing.T) {
	const ctr = badPrefix + "notroot"
	e := newMigEnv(t, []string{ctr}, nil, nil)
	e.quickContainer(ctr)
	bin := unprivilegedCopy(t, e.Bin)
	before := e.snap(t, []string{ctr}, e.stateDir)
	args := append([]string{"-u", e.User, "--", bin}, e.args("migrate", "--dry-run", ctr)...)
	res := runAs(t, args...)
	wantRefusal(t, "migrate as "+e.User, res, 1, "unroot migrate must run as root", "sudo unroot migrate")
	if res.Stdout != "" {
		t.Errorf("stdout is not empty: %q", res.Stdout)
	}
	// chown as the user: refused before it looks at the tree.
	dir := t.TempDir()
	res = runAs(t, append([]string{"-u", e.User, "--", bin}, e.args("chown", dir)...)...)
	wantRefusal(t, "chown as "+e.User, res, 1, "unroot chown must run as root", "sudo unroot chown")
	e.unchanged(t, "not root", before)
}

// unprivilegedCopy copies the binary where any user can run it.
func unprivilegedCopy(t *testing.T, bin string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", badPrefix+"bin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "unroot")
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestBadInputBlockers: plans with a blocker. The dry run reports the
// finding and exits 1; the real run refuses with the finding and a hint,
// exits 1 and changes nothing, not even the files it would have shifted.
func TestBadInputBlockers(t *testing.T) {
	const (
		unmap      = badPrefix + "unmap"
		unmapVol   = badPrefix + "unmap-vol"
		dev        = badPrefix + "dev"
		devVol     = badPrefix + "dev-vol"
		etc        = badPrefix + "etc"
		listen     = badPrefix + "listen"
		pa         = badPrefix + "port-a"
		pb         = badPrefix + "port-b"
		move       = badPrefix + "move"
		moveVol    = badPrefix + "move-vol"
		dockerBind = badPrefix + "docker-bind"
	)
	e := newMigEnv(t, []string{unmap, dev, etc, listen, pa, pb, move, dockerBind}, []string{unmapVol, devVol, moveVol}, nil)
	prep := func(vol, script string) {
		e.Docker(t, false, "volume", "create", vol)
		e.Docker(t, false, "run", "--rm", "-v", vol+":/d", e.Image, "sh", "-c", script)
	}
	overflowID := strconv.Itoa(int(e.SubUIDCount) + 1000) // no container id the range can map
	prep(unmapVol, "echo x > /d/f && chown "+overflowID+":"+overflowID+" /d/f")
	e.quickContainer(unmap, "--restart", "always", "-v", unmapVol+":/d")
	prep(devVol, "mknod /d/null c 1 3 && echo x > /d/f")
	e.quickContainer(dev, "-v", devVol+":/d")
	e.quickContainer(etc, "--restart", "on-failure:3", "-v", "/etc:/host-etc:ro")

	// A host process listens on a port; --port-map sends a service there.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lport := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	e.quickContainer(listen, "-p", "127.0.0.1:188:80")
	// 187 becomes 8187 by default, which the other container publishes.
	e.quickContainer(pa, "--restart", "always", "-p", "127.0.0.1:187:80")
	e.quickContainer(pb, "--restart", "always", "-p", "127.0.0.1:8187:80")

	// The move case needs a real second filesystem: the rig's
	// /var/lib/docker and /home are one, and a move across two mounts of
	// one filesystem works. A small tmpfs on the source volume's _data
	// (mounted before anything is written to it) is that filesystem.
	e.Docker(t, false, "volume", "create", moveVol)
	moveData := e.volumeDir(moveVol)
	if err := unix.Mount("tmpfs", moveData, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=1m,mode=0755"); err != nil {
		t.Fatalf("mount a tmpfs on %s: %v", moveData, err)
	}
	// runs before newMigEnv's cleanup removes the volume
	t.Cleanup(func() {
		if err := unix.Unmount(moveData, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", moveData, err)
		}
	})
	e.Docker(t, false, "run", "--rm", "-v", moveVol+":/d", e.Image, "sh", "-c", "echo x > /d/f")
	e.quickContainer(move, "-v", moveVol+":/d")

	dockerDir := filepath.Join("/var/lib/docker", badPrefix+"bind")
	if err := os.MkdirAll(dockerDir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dockerDir) })
	e.quickContainer(dockerBind, "-v", dockerDir+":/x")

	if unprivilegedPortStart(t) <= 188 {
		Skip(t, "ports 187/188 are unprivileged on this host: nothing would be rewritten")
	}
	tests := []struct {
		name       string
		args       []string
		containers []string
		paths      []string
		code       string // finding code in the dry run
		msg, hint  string // of the real run
	}{
		{"unmappable uid in a volume", []string{unmap}, []string{unmap}, []string{filepath.Dir(e.volumeDir(unmapVol))},
			"unmappable-ids", "owned by uid " + overflowID, "--map-unmappable-to-overflow"},
		{"device node in a volume", []string{dev}, []string{dev}, []string{filepath.Dir(e.volumeDir(devVol))},
			"device-nodes", "holds 1 device nodes", "--skip-devices"},
		{"bind of /etc", []string{etc}, []string{etc}, []string{"/etc/subuid", "/etc/passwd", "/etc/hostname"},
			"system-bind", "system path /etc", "bind a dedicated directory"},
		{"port-map onto a host listener", []string{"--port-map", "188:" + lport, listen}, []string{listen}, nil,
			"port-conflict", "host port " + lport + "/tcp is also wanted by a process listening on 127.0.0.1:" + lport, "--port-map OLD:NEW"},
		{"two containers on one port", []string{pa, pb}, []string{pa, pb}, nil,
			"port-conflict", "host port 8187/tcp", "--port-map OLD:NEW"},
		{"bind of a directory under /var/lib/docker", []string{dockerBind}, []string{dockerBind}, []string{dockerDir},
			"system-bind", "system path " + dockerDir, "bind a dedicated directory"},
		{"target is the rootful daemon", []string{"--target-host", e.SourceHost, etc}, []string{etc}, nil,
			"target-not-rootless", "the target daemon is not rootless", "--target-host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			paths := append([]string{e.stateDir}, tt.paths...)
			before := e.snap(t, tt.containers, paths...)
			dry := e.UnrootEnv(t, nil, e.args("migrate", append([]string{"--dry-run", "--format", "json"}, tt.args...)...)...)
			if dry.Code != 1 {
				t.Errorf("dry run: exit %d, want 1: %s", dry.Code, dry.Stderr)
			}
			if f := findFinding(t, dry, tt.code); f == nil || f.Severity != "blocker" || f.Hint == "" {
				t.Errorf("dry run: finding %s = %+v, want a blocker with a hint", tt.code, f)
			}
			res := e.UnrootEnv(t, nil, e.args("migrate", append([]string{"--yes"}, tt.args...)...)...)
			wantRefusal(t, tt.name, res, 1, "nothing was changed", tt.hint)
			if !strings.Contains(res.Stderr, "["+tt.code+"]") || !strings.Contains(res.Stderr, tt.msg) {
				t.Errorf("stderr lacks [%s] and %q:\n%s", tt.code, tt.msg, res.Stderr)
			}
			e.unchanged(t, tt.name, before)
		})
	}

	// --volumes move needs the source volume's data and the target data
	// root on one filesystem (two mounts of it are fine: the rename goes
	// through a clone of a mount holding both). Here the data is on its own
	// tmpfs: the run refuses before any change, naming the two devices.
	vdir := filepath.Dir(moveData)
	t.Run("volumes move across filesystems", func(t *testing.T) {
		before := e.snap(t, []string{move}, e.stateDir, vdir)
		dry := e.UnrootEnv(t, nil, e.args("migrate", "--dry-run", "--format", "json", "--volumes", "move", move)...)
		if f := findFinding(t, dry, "move-cross-filesystem"); dry.Code != 1 || f == nil || f.Severity != "blocker" || !strings.Contains(f.Message, "different filesystems") {
			t.Errorf("dry run: exit %d, finding %+v; want 1 and a blocker naming different filesystems", dry.Code, f)
		}
		res := e.UnrootEnv(t, nil, e.args("migrate", "--yes", "--volumes", "move", move)...)
		wantRefusal(t, "move", res, 1, "cannot be moved", "--volumes copy")
		if !strings.Contains(res.Stderr, "different filesystems") {
			t.Errorf("the refusal does not say why:\n%s", res.Stderr)
		}
		e.unchanged(t, "volumes move", before)
		if b, err := os.ReadFile(filepath.Join(moveData, "f")); err != nil || string(b) != "x\n" {
			t.Errorf("the source data after a refused move: %q %v", b, err)
		}
	})
}

// planFinding is the part of a plan finding the tests read.
type planFinding struct {
	Code, Severity, Container, Subject, Message, Hint string
}

// findFinding returns the first finding with code in the JSON plan a dry
// run printed.
func findFinding(t *testing.T, res Result, code string) *planFinding {
	t.Helper()
	planJSON := res.Stdout
	var p struct {
		Findings []planFinding `json:"findings"`
		Summary  struct {
			Applicable bool `json:"applicable"`
		} `json:"summary"`
	}
	if err := json.Unmarshal([]byte(planJSON), &p); err != nil {
		t.Fatalf("plan json: %v\nstdout: %s\nstderr: %s", err, planJSON, res.Stderr)
	}
	for i := range p.Findings {
		if p.Findings[i].Code == code {
			return &p.Findings[i]
		}
	}
	t.Logf("no finding %s in %s", code, planJSON)
	return nil
}

// TestBadInputWarnings: inputs unroot accepts with a finding. The dry run
// exits 0 and names them; nothing changes.
func TestBadInputWarnings(t *testing.T) {
	const (
		sock   = badPrefix + "sock"
		priv   = badPrefix + "priv"
		tmpfs  = badPrefix + "tmpfs"
		tmpVol = badPrefix + "tmpfs-vol"
	)
	e := newMigEnv(t, []string{sock, priv, tmpfs}, []string{tmpVol}, nil)
	e.quickContainer(sock, "--restart", "always", "-v", "/var/run/docker.sock:/var/run/docker.sock")
	// Created, not started: the rootful daemon of the rig cannot start
	// privileged containers; the plan reads the configuration either way.
	e.Docker(t, false, "create", "--name", priv, "--privileged", e.Image, "sleep", "1000")
	e.Docker(t, false, "volume", "create", "-d", "local", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=1m", tmpVol)
	e.quickContainer(tmpfs, "-v", tmpVol+":/d")

	tests := []struct {
		name, ctr, code, severity, msg string
	}{
		{"bind of the docker socket", sock, "docker-socket", "info", fmt.Sprintf("rewritten to /run/user/%d/docker.sock", e.UID)},
		{"privileged container", priv, "privileged", "warning", "privileged"},
		{"local volume with mount options", tmpfs, "volume-driver", "warning", "no data is copied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.snap(t, []string{tt.ctr}, e.stateDir, "/var/run/docker.sock")
			res := e.UnrootEnv(t, nil, e.args("migrate", "--dry-run", "--format", "json", tt.ctr)...)
			if res.Code != 0 {
				t.Errorf("exit %d, want 0: %s", res.Code, res.Stderr)
			}
			f := findFinding(t, res, tt.code)
			if f == nil || f.Severity != tt.severity || !strings.Contains(f.Message, tt.msg) || f.Hint == "" {
				t.Errorf("finding %s = %+v, want %s with %q and a hint", tt.code, f, tt.severity, tt.msg)
			}
			e.unchanged(t, tt.name, before)
		})
	}
}

// TestBadInputAlreadyMigrated: migrating a migrated container again is a
// no-op that says so, exits 0 and touches neither daemon nor the state.
func TestBadInputAlreadyMigrated(t *testing.T) {
	const ctr = badPrefix + "done"
	e := newMigEnv(t, []string{ctr}, nil, nil)
	e.quickContainer(ctr, "--restart", "unless-stopped")
	e.mustMigrate("--quiet", "--settle", "1s", ctr)
	target := e.inspect(true, ctr, "{{.Id}} {{.State.Status}} {{.State.StartedAt}} {{.RestartCount}}")
	stateFile := filepath.Join(e.stateDir, e.User, "migrate-state.json")
	state, err := os.ReadFile(stateFile)
	if err != nil {
		t.Fatal(err)
	}
	before := e.snap(t, []string{ctr}, e.stateDir)
	for _, args := range [][]string{{"--yes", ctr}, {"--dry-run", ctr}} {
		res := e.UnrootEnv(t, nil, e.args("migrate", args...)...)
		if res.Code != 0 || !strings.Contains(res.Stdout+res.Stderr, "already") {
			t.Errorf("migrate %v again: exit %d, want 0 saying it is already migrated:\n%s%s", args, res.Code, res.Stdout, res.Stderr)
		}
	}
	e.unchanged(t, "already migrated", before)
	if got := e.inspect(true, ctr, "{{.Id}} {{.State.Status}} {{.State.StartedAt}} {{.RestartCount}}"); got != target {
		t.Errorf("target container changed: %q → %q", target, got)
	}
	if now, err := os.ReadFile(stateFile); err != nil || string(now) != string(state) {
		t.Errorf("state file changed (%v)", err)
	}
}

// runAs runs runuser with args, bounded in time.
func runAs(t *testing.T, args ...string) Result {
	t.Helper()
	out, errOut, code, err := runBounded(2*time.Minute, "runuser", args...)
	if err != nil {
		t.Fatalf("runuser %v: %v", args, err)
	}
	return Result{Stdout: out, Stderr: errOut, Code: code}
}
