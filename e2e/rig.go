// Package e2e holds unroot's end-to-end tests and the rig they share: a real
// rootful dockerd and a real rootless dockerd brought up by
// scripts/testenv.sh. Tests exec the freshly built unroot binary against them.
//
// Outside CI a missing rig skips the tests; with CI=true it fails them, so a
// daemon that did not come up can never pass silently.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// DefaultEnvFile is where scripts/testenv.sh writes the rig's description.
const DefaultEnvFile = "/var/lib/unroot-e2e/env"

// Rig describes the two daemons and the rootless user of the test rig.
type Rig struct {
	User                     string
	UID, GID                 int
	Home                     string
	SubUIDStart, SubUIDCount uint32
	SubGIDStart, SubGIDCount uint32
	SourceHost, TargetHost   string
	Image                    string
	// Bin is the unroot binary under test.
	Bin string
}

var (
	buildOnce sync.Once
	buildBin  string
	buildErr  error
)

// inCI reports whether skipping is forbidden.
func inCI() bool { return os.Getenv("CI") == "true" }

// unavailable skips the test, or fails it under CI.
func unavailable(t testing.TB, format string, a ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, a...) + " (bring the rig up with 'make testenv')"
	if inCI() {
		t.Fatalf("end-to-end rig unavailable under CI: %s", msg)
	}
	t.Skip(msg)
}

// Skip skips a test whose premise this host does not meet. Under CI a skip
// would hide a test that never ran, so it fails the test instead.
func Skip(t testing.TB, format string, a ...any) {
	t.Helper()
	if inCI() {
		t.Fatalf("cannot skip under CI: "+format, a...)
	}
	t.Skipf(format, a...)
}

// Load reads the rig's env file ($UNROOT_E2E_ENV or [DefaultEnvFile]),
// checks that both daemons answer and builds the unroot binary once.
func Load(t testing.TB) *Rig {
	t.Helper()
	if os.Geteuid() != 0 {
		unavailable(t, "end-to-end tests run as root")
	}
	path := os.Getenv("UNROOT_E2E_ENV")
	if path == "" {
		path = DefaultEnvFile
	}
	kv, err := readEnv(path)
	if err != nil {
		unavailable(t, "read %s: %v", path, err)
	}
	r := &Rig{
		User: kv["UNROOT_E2E_USER"], Home: kv["UNROOT_E2E_HOME"],
		SourceHost: kv["UNROOT_E2E_SOURCE_HOST"], TargetHost: kv["UNROOT_E2E_TARGET_HOST"],
		Image: kv["UNROOT_E2E_IMAGE"],
	}
	ints := []struct {
		key string
		dst *int
	}{{"UNROOT_E2E_UID", &r.UID}, {"UNROOT_E2E_GID", &r.GID}}
	for _, f := range ints {
		if *f.dst, err = strconv.Atoi(kv[f.key]); err != nil {
			t.Fatalf("rig env %s: %s=%q is not a number", path, f.key, kv[f.key])
		}
	}
	u32 := []struct {
		key string
		dst *uint32
	}{
		{"UNROOT_E2E_SUBUID_START", &r.SubUIDStart}, {"UNROOT_E2E_SUBUID_COUNT", &r.SubUIDCount},
		{"UNROOT_E2E_SUBGID_START", &r.SubGIDStart}, {"UNROOT_E2E_SUBGID_COUNT", &r.SubGIDCount},
	}
	for _, f := range u32 {
		n, err := strconv.ParseUint(kv[f.key], 10, 32)
		if err != nil {
			t.Fatalf("rig env %s: %s=%q is not a number", path, f.key, kv[f.key])
		}
		*f.dst = uint32(n)
	}
	for _, h := range []string{r.SourceHost, r.TargetHost} {
		if err := ping(h); err != nil {
			unavailable(t, "daemon %s does not answer: %v", h, err)
		}
	}
	r.Bin = binary(t)
	return r
}

func readEnv(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	kv := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if ok && !strings.HasPrefix(k, "#") {
			kv[k] = v
		}
	}
	return kv, sc.Err()
}

// ping does a GET /_ping over the daemon's unix socket.
func ping(host string) error {
	sock, ok := strings.CutPrefix(host, "unix://")
	if !ok {
		return fmt.Errorf("only unix:// hosts are supported by the rig, got %q", host)
	}
	c, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.Contains(line, " 200 ") {
		return errors.New(strings.TrimSpace(line))
	}
	return nil
}

// repoRoot finds the module root from this file's location.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

// binary builds cmd/unroot once per test process. UNROOT_BIN overrides it.
func binary(t testing.TB) string {
	t.Helper()
	if b := os.Getenv("UNROOT_BIN"); b != "" {
		return b
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "unroot-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildBin = filepath.Join(dir, "unroot")
		cmd := exec.Command("go", "build", "-o", buildBin, "./cmd/unroot")
		cmd.Dir = repoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build unroot: %v", buildErr)
	}
	return buildBin
}

// Result is what one run of the unroot binary produced.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// Unroot runs the unroot binary with args (the rig's source and target hosts
// are not added: pass them when the verb needs them) and returns its output
// and exit code. It is bounded to 10 minutes.
func (r *Rig) Unroot(t testing.TB, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	res := r.UnrootEnv(t, nil, args...)
	return res.Stdout, res.Stderr, res.Code
}

// UnrootEnv is [Rig.Unroot] with extra environment variables.
func (r *Rig) UnrootEnv(t testing.TB, env []string, args ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.Bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("run unroot %s: %v", strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	t.Logf("unroot %s → exit %d", strings.Join(args, " "), code)
	return Result{Stdout: out.String(), Stderr: errb.String(), Code: code}
}

// Docker runs the docker CLI against the target (true) or source (false)
// daemon and fails the test when it fails. It returns trimmed stdout.
func (r *Rig) Docker(t testing.TB, target bool, args ...string) string {
	t.Helper()
	out, err := r.DockerErr(target, args...)
	if err != nil {
		t.Fatalf("docker %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// DockerErr is [Rig.Docker] returning the error instead of failing.
func (r *Rig) DockerErr(target bool, args ...string) (string, error) {
	host := r.SourceHost
	if target {
		host = r.TargetHost
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", append([]string{"-H", host}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return strings.TrimSpace(out.String()), fmt.Errorf("%v: %s", err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// Hosts returns the global flags that point unroot at the rig.
func (r *Rig) Hosts() []string {
	return []string{"--user", r.User, "--source-host", r.SourceHost, "--target-host", r.TargetHost}
}
