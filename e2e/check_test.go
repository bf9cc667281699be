package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/unroot/unroot/preflight"
	"golang.org/x/sys/unix"
)

// runCheck runs 'unroot check' against the rig as JSON and decodes it,
// checking that the exit code agrees with the failures reported.
func runCheck(t *testing.T, r *Rig) preflight.Report {
	t.Helper()
	stdout, stderr, code := r.Unroot(t, append(r.Hosts(), "check", "--format", "json")...)
	var rep preflight.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("stdout is not a JSON report: %v\nstdout: %s\nstderr: %s", err, stdout, stderr)
	}
	wantCode := 0
	if rep.Summary.Fail > 0 {
		wantCode = 1
	}
	if code != wantCode {
		t.Fatalf("exit %d with %d failing checks, want %d; stderr %q", code, rep.Summary.Fail, wantCode, stderr)
	}
	if stderr != "" {
		t.Errorf("stderr is not empty: %q", stderr)
	}
	return rep
}

func mustCheck(t *testing.T, rep preflight.Report, id string) preflight.Check {
	t.Helper()
	c, ok := rep.Check(id)
	if !ok {
		t.Fatalf("no check %q in the report", id)
	}
	return c
}

func TestCheckReportsTheRig(t *testing.T) {
	r := Load(t)
	rep := runCheck(t, r)

	seen := map[string]int{}
	for _, c := range rep.Checks {
		seen[c.ID]++
		switch c.Status {
		case preflight.StatusOK:
			if c.Fix != "" {
				t.Errorf("%s is ok but has fix %q", c.ID, c.Fix)
			}
		case preflight.StatusWarn, preflight.StatusFail:
		default:
			t.Errorf("%s has status %q", c.ID, c.Status)
		}
	}
	for _, id := range preflight.IDs() {
		if seen[id] != 1 {
			t.Errorf("check %q appears %d times, want once", id, seen[id])
		}
	}
	if len(rep.Checks) != len(preflight.IDs()) {
		t.Errorf("%d checks, want %d", len(rep.Checks), len(preflight.IDs()))
	}
	if rep.User.Name != r.User || rep.User.UID != r.UID || rep.User.GID != r.GID {
		t.Errorf("user %+v, want %s %d:%d", rep.User, r.User, r.UID, r.GID)
	}

	// The rig's daemons answer; the target is rootless, the source is not
	// remapped.
	for _, id := range []string{"target-daemon", "target-rootless", "source-daemon", "source-userns-remap", "user", "runtime-dir"} {
		if c := mustCheck(t, rep, id); c.Status != preflight.StatusOK {
			t.Errorf("%s: %s %q, want ok", id, c.Status, c.Found)
		}
	}

	// The subordinate ranges are exactly the rig's.
	wantUID := []preflight.IDRange{{Start: r.SubUIDStart, Count: r.SubUIDCount}}
	wantGID := []preflight.IDRange{{Start: r.SubGIDStart, Count: r.SubGIDCount}}
	if fmt.Sprint(rep.Facts.SubUIDs) != fmt.Sprint(wantUID) || fmt.Sprint(rep.Facts.SubGIDs) != fmt.Sprint(wantGID) {
		t.Errorf("subuids %v subgids %v, want %v and %v", rep.Facts.SubUIDs, rep.Facts.SubGIDs, wantUID, wantGID)
	}
	if c := mustCheck(t, rep, "subuid"); c.Status != preflight.StatusOK ||
		!strings.Contains(c.Found, fmt.Sprintf("%d:%d", r.SubUIDStart, r.SubUIDCount)) {
		t.Errorf("subuid: %s %q", c.Status, c.Found)
	}

	// cgroup version from statfs, not assumed.
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil {
		t.Fatal(err)
	}
	cg := mustCheck(t, rep, "cgroup")
	switch st.Type {
	case unix.CGROUP2_SUPER_MAGIC:
		if rep.Facts.CgroupVersion != 2 {
			t.Errorf("cgroup version %d on a cgroup2 host", rep.Facts.CgroupVersion)
		}
	case unix.TMPFS_MAGIC:
		if rep.Facts.CgroupVersion != 1 || cg.Status != preflight.StatusWarn || !strings.Contains(cg.Found, "cgroup v1") ||
			!strings.Contains(cg.Fix, "systemd.unified_cgroup_hierarchy=1") {
			t.Errorf("cgroup on a v1 host: version %d, %s %q fix %q", rep.Facts.CgroupVersion, cg.Status, cg.Found, cg.Fix)
		}
	default:
		t.Logf("/sys/fs/cgroup has magic %#x; not asserting the version", st.Type)
	}

	// The target's drivers as docker info reports them.
	driver := r.Docker(t, true, "info", "--format", "{{.Driver}}")
	cgroupDriver := r.Docker(t, true, "info", "--format", "{{.CgroupDriver}}")
	if rep.Facts.TargetStorageDriver != driver || rep.Facts.TargetCgroupDriver != cgroupDriver {
		t.Errorf("drivers %q %q, docker info says %q %q", rep.Facts.TargetStorageDriver, rep.Facts.TargetCgroupDriver, driver, cgroupDriver)
	}
	cd := mustCheck(t, rep, "cgroup-driver")
	if (cgroupDriver == "none") != (cd.Status == preflight.StatusWarn) {
		t.Errorf("cgroup-driver %s %q for driver %q", cd.Status, cd.Found, cgroupDriver)
	}
	if st.Type == unix.TMPFS_MAGIC && cgroupDriver != "none" {
		t.Errorf("a rootless daemon on cgroup v1 reports cgroup driver %q, want none", cgroupDriver)
	}
	if sd := mustCheck(t, rep, "storage-driver"); (driver == "vfs") != (sd.Status == preflight.StatusWarn) {
		t.Errorf("storage-driver %s %q for driver %q", sd.Status, sd.Found, driver)
	}

	// The sysctl as the kernel has it.
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start")
	if err != nil {
		t.Fatal(err)
	}
	if start, _ := strconv.Atoi(strings.TrimSpace(string(b))); rep.Facts.UnprivilegedPortStart != start {
		t.Errorf("unprivileged port start %d, /proc says %d", rep.Facts.UnprivilegedPortStart, start)
	}

	// The rootless daemon runs, so the limits come from its /proc/PID/limits.
	if c := mustCheck(t, rep, "ulimit-nofile"); !strings.Contains(c.Found, "running rootless daemon") {
		t.Errorf("ulimit-nofile: %q does not say it read the running daemon", c.Found)
	}
}

// TestCheckListsLowPortOfStoppedContainer publishes a port below the
// unprivileged start on a created (never started) source container: only its
// port bindings show it.
func TestCheckListsLowPortOfStoppedContainer(t *testing.T) {
	r := Load(t)
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start")
	if err != nil {
		t.Fatal(err)
	}
	start, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if start <= 1 {
		Skip(t, "ip_unprivileged_port_start is %d: no port is privileged", start)
	}
	port := start - 1
	name := fmt.Sprintf("e2e-check-lowport-%d", os.Getpid())
	r.Docker(t, false, "create", "--name", name, "-p", fmt.Sprintf("127.0.0.1:%d:80", port), r.Image, "true")
	t.Cleanup(func() { _, _ = r.DockerErr(false, "rm", "-f", name) })

	rep := runCheck(t, r)
	c := mustCheck(t, rep, "unprivileged-ports")
	if c.Status != preflight.StatusWarn || !strings.Contains(c.Found, fmt.Sprintf("%d (", port)) || !strings.Contains(c.Found, name) {
		t.Errorf("unprivileged-ports: %s %q, want a warning naming port %d of %s", c.Status, c.Found, port, name)
	}
	found := false
	for _, p := range rep.Facts.PrivilegedHostPorts {
		found = found || p == port
	}
	if !found {
		t.Errorf("privileged_host_ports %v lacks %d", rep.Facts.PrivilegedHostPorts, port)
	}
	if !strings.Contains(c.Fix, "net.ipv4.ip_unprivileged_port_start=") {
		t.Errorf("fix %q does not lower the start", c.Fix)
	}
}

func TestCheckTextFormat(t *testing.T) {
	r := Load(t)
	stdout, stderr, code := r.Unroot(t, append(r.Hosts(), "check")...)
	if code != 0 && code != 1 {
		t.Fatalf("exit %d; stderr %q", code, stderr)
	}
	for _, id := range preflight.IDs() {
		if !strings.Contains(stdout, " "+id+" ") {
			t.Errorf("text output lacks check %s:\n%s", id, stdout)
		}
	}
	if !strings.Contains(stdout, "ok, ") || !strings.Contains(stdout, " fail;") {
		t.Errorf("text output lacks the summary line:\n%s", stdout)
	}
}

func TestCheckUnknownUser(t *testing.T) {
	r := Load(t)
	stdout, stderr, code := r.Unroot(t, "check", "--user", "nosuchuser", "--format", "json")
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if stdout != "" {
		t.Errorf("stdout %q, want nothing", stdout)
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if len(lines) < 2 || !strings.Contains(lines[0], `user "nosuchuser" not found`) || !strings.HasPrefix(lines[len(lines)-1], "hint: ") {
		t.Errorf("stderr %q, want a message and a hint line", stderr)
	}
}
