package e2e

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// awkwardTree fills dir with the cases a shift must get right: several
// owners, setuid/setgid, capabilities, ACLs, hardlinks, symlinks out of the
// tree, a FIFO, a socket and a sparse file. blockers adds a device node and
// a file owned by an id outside any 65536-id range.
func awkwardTree(t *testing.T, dir string, blockers bool) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	file := func(rel string, uid, gid int, mode os.FileMode, data string) string {
		p := filepath.Join(dir, rel)
		must(os.MkdirAll(filepath.Dir(p), 0o755))
		must(os.WriteFile(p, []byte(data), 0o644))
		must(os.Lchown(p, uid, gid))
		must(os.Chmod(p, mode))
		return p
	}
	file("root.txt", 0, 0, 0o644, "root\n")
	file("www/index.html", 33, 33, 0o644, "<h1>hi</h1>\n")
	file("db/data.bin", 999, 999, 0o600, strings.Repeat("d", 5000))
	file("home/u1000.txt", 1000, 1000, 0o640, "user\n")
	file("nobody.txt", 65534, 65534, 0o644, "nobody\n")
	p := file("bin/suid", 0, 0, 0o755, "#!/bin/sh\n")
	must(os.Chmod(p, 0o4755|os.ModeSetuid))
	must(unix.Chmod(p, 0o4755))
	must(unix.Chmod(file("bin/sgid", 0, 50, 0o755, "#!/bin/sh\n"), 0o2755))
	run(t, "setcap", "cap_net_bind_service+ep", file("bin/capped", 0, 0, 0o755, "#!/bin/sh\n"))
	run(t, "setfacl", "-m", "u:33:rwx,g:70:r", file("acl.txt", 0, 0, 0o644, "acl\n"))
	must(os.MkdirAll(filepath.Join(dir, "shared"), 0o775))
	run(t, "setfacl", "-d", "-m", "u:1000:rwx", filepath.Join(dir, "shared"))
	must(os.Lchown(filepath.Join(dir, "shared"), 1000, 1000))
	must(os.Link(file("hard-a", 70, 70, 0o644, "hard\n"), filepath.Join(dir, "hard-b")))
	must(os.Symlink("/etc/shadow", filepath.Join(dir, "shadow-link")))
	must(os.Symlink("../../../../etc/passwd", filepath.Join(dir, "www/escape")))
	must(os.Symlink("index.html", filepath.Join(dir, "www/relative")))
	must(unix.Mkfifo(filepath.Join(dir, "fifo"), 0o600))
	must(unix.Mknod(filepath.Join(dir, "sock"), unix.S_IFSOCK|0o600, 0))
	sp := file("sparse", 999, 999, 0o644, "")
	f, err := os.OpenFile(sp, os.O_WRONLY, 0)
	must(err)
	_, err = f.WriteAt([]byte("end"), 64<<20)
	must(err)
	must(f.Close())
	if blockers {
		must(unix.Mknod(filepath.Join(dir, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
		file("far.txt", 70000, 70000, 0o644, "far\n")
	}
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// snapshot records everything a dry run must not change: type, mode,
// owner, size, mtime, ctime (any chown, chmod or xattr write moves it) and
// every xattr's bytes, for each path under root.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	snap := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		line := fmt.Sprintf("%o %d:%d %d m%d.%d c%d.%d", st.Mode, st.Uid, st.Gid, st.Size,
			st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec)
		buf := make([]byte, 4096)
		n, _ := unix.Llistxattr(p, buf)
		names := strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00")
		sort.Strings(names)
		for _, name := range names {
			if name == "" {
				continue
			}
			v := make([]byte, 4096)
			m, err := unix.Lgetxattr(p, name, v)
			if err == nil {
				line += " " + name + "=" + hex.EncodeToString(v[:m])
			}
		}
		rel, _ := filepath.Rel(root, p)
		snap[rel] = line
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func diffSnap(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s: %s changed:\n  before %s\n  after  %s", what, k, v, after[k])
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			t.Errorf("%s: %s appeared", what, k)
		}
	}
}

// count is the test's own count of a tree, made without unroot's walker.
type count struct {
	files, dirs, symlinks, hardlinks, bytes, setuid, setgid, fifos, sockets, devices int64
	owners                                                                           map[string]int64
}

func independentCount(t *testing.T, r *Rig, root string) count {
	t.Helper()
	c := count{owners: map[string]int64{}}
	seen := map[uint64]bool{}
	host := func(id uint32, start uint32, own int) (uint32, bool) {
		if id == 0 {
			return uint32(own), true
		}
		if id <= 65536 {
			return start + id - 1, true
		}
		return 0, false
	}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		if st.Nlink > 1 && st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
			if seen[st.Ino] {
				c.hardlinks++
				return nil
			}
			seen[st.Ino] = true
		}
		switch st.Mode & syscall.S_IFMT {
		case syscall.S_IFREG:
			c.files++
			c.bytes += st.Size
		case syscall.S_IFDIR:
			c.dirs++
		case syscall.S_IFLNK:
			c.symlinks++
		case syscall.S_IFIFO:
			c.fifos++
		case syscall.S_IFSOCK:
			c.sockets++
		case syscall.S_IFCHR, syscall.S_IFBLK:
			c.devices++
			return nil
		}
		ft := st.Mode & syscall.S_IFMT
		if ft != syscall.S_IFDIR && ft != syscall.S_IFLNK {
			if st.Mode&syscall.S_ISUID != 0 {
				c.setuid++
			}
			if st.Mode&syscall.S_ISGID != 0 {
				c.setgid++
			}
		}
		u, ok1 := host(st.Uid, r.SubUIDStart, r.UID)
		g, ok2 := host(st.Gid, r.SubGIDStart, r.GID)
		if ok1 && ok2 {
			c.owners[fmt.Sprintf("%d:%d>%d:%d", st.Uid, st.Gid, u, g)]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// planJSON is the part of the plan JSON the test reads.
type planJSON struct {
	Services []struct {
		Container string
		Ports     []struct {
			OldHostPort string `json:"old_host_port"`
			NewHostPort string `json:"new_host_port"`
			Rewritten   bool
		}
	}
	Volumes []struct {
		Name  string
		Audit *auditJSON
	}
	Binds []struct {
		Source string
		Action string
		Audit  *auditJSON
	}
	Findings []struct{ Code, Severity, Container, Subject string }
	Summary  struct {
		Blockers   int
		Applicable bool
	}
}

type auditJSON struct {
	Files, Dirs, Symlinks, Hardlinks, Bytes, Setuid, Setgid, Caps, ACLs, Devices, FIFOs, Sockets int64
	EscapingSymlinks                                                                             int64 `json:"escaping_symlinks"`
	Owners                                                                                       []struct {
		FromUID uint32 `json:"from_uid"`
		FromGID uint32 `json:"from_gid"`
		ToUID   uint32 `json:"to_uid"`
		ToGID   uint32 `json:"to_gid"`
		Count   int64
	}
	Unmappable []struct {
		Kind  string
		ID    uint32
		Count int64
	}
}

func checkAudit(t *testing.T, what string, got *auditJSON, want count) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: plan has no audit", what)
	}
	pairs := []struct {
		name      string
		got, want int64
	}{
		{"files", got.Files, want.files}, {"dirs", got.Dirs, want.dirs}, {"symlinks", got.Symlinks, want.symlinks},
		{"hardlinks", got.Hardlinks, want.hardlinks}, {"bytes", got.Bytes, want.bytes}, {"setuid", got.Setuid, want.setuid},
		{"setgid", got.Setgid, want.setgid}, {"fifos", got.FIFOs, want.fifos}, {"sockets", got.Sockets, want.sockets},
		{"devices", got.Devices, want.devices},
	}
	for _, p := range pairs {
		if p.got != p.want {
			t.Errorf("%s: %s = %d, the test counted %d", what, p.name, p.got, p.want)
		}
	}
	owners := map[string]int64{}
	for _, o := range got.Owners {
		owners[fmt.Sprintf("%d:%d>%d:%d", o.FromUID, o.FromGID, o.ToUID, o.ToGID)] = o.Count
	}
	for k, v := range want.owners {
		if owners[k] != v {
			t.Errorf("%s: owner change %s ×%d, the test counted ×%d", what, k, owners[k], v)
		}
	}
	for k, v := range owners {
		if _, ok := want.owners[k]; !ok {
			t.Errorf("%s: unexpected owner change %s ×%d", what, k, v)
		}
	}
	if got.Caps != 1 || got.ACLs != 2 || got.EscapingSymlinks != 2 {
		t.Errorf("%s: caps %d acls %d escaping %d, want 1, 2, 2", what, got.Caps, got.ACLs, got.EscapingSymlinks)
	}
}

// targetObjects lists every object of the rootless daemon.
func targetObjects(t *testing.T, r *Rig) string {
	t.Helper()
	var out []string
	for _, args := range [][]string{{"ps", "-aq"}, {"volume", "ls", "-q"}, {"network", "ls", "-q"}, {"images", "-aq"}} {
		out = append(out, r.Docker(t, true, args...))
	}
	return strings.Join(out, "\n--\n")
}

func TestMigrateDryRunChangesNothingAndCountsExactly(t *testing.T) {
	r := Load(t)
	const name, vol = "e2e-dry-app", "e2e-dry-vol"
	bind := t.TempDir()
	cleanupSource(t, r, []string{name}, []string{vol})
	r.Docker(t, false, "volume", "create", vol)
	volPath := r.Docker(t, false, "volume", "inspect", "-f", "{{.Mountpoint}}", vol)
	awkwardTree(t, volPath, false)
	awkwardTree(t, bind, false)
	r.Docker(t, false, "run", "-d", "--name", name, "-p", "127.0.0.1:93:80", "-v", vol+":/data", "-v", bind+":/srv",
		r.Image, "sleep", "3600")

	beforeVol, beforeBind, beforeTarget := snapshot(t, volPath), snapshot(t, bind), targetObjects(t, r)
	out, errOut, code := r.Unroot(t, append(r.Hosts(), "migrate", "--dry-run", "--format", "json", name)...)
	if code != 0 {
		_, text, _ := r.Unroot(t, append(r.Hosts(), "migrate", "--dry-run", name)...)
		t.Fatalf("dry run exit %d, want 0\n%s\n%s", code, errOut, text)
	}
	var plan planJSON
	if err := json.Unmarshal([]byte(out), &plan); err != nil {
		t.Fatalf("plan JSON: %v\n%s", err, out)
	}
	diffSnap(t, "volume", beforeVol, snapshot(t, volPath))
	diffSnap(t, "bind", beforeBind, snapshot(t, bind))
	if after := targetObjects(t, r); after != beforeTarget {
		t.Errorf("dry run changed the target daemon:\nbefore %s\nafter %s", beforeTarget, after)
	}
	if len(plan.Volumes) != 1 || plan.Volumes[0].Name != vol {
		t.Fatalf("plan volumes %+v, want %s", plan.Volumes, vol)
	}
	checkAudit(t, "volume", plan.Volumes[0].Audit, independentCount(t, r, volPath))
	if len(plan.Binds) != 1 || plan.Binds[0].Source != bind || plan.Binds[0].Action != "shift" {
		t.Fatalf("plan binds %+v, want %s shift", plan.Binds, bind)
	}
	checkAudit(t, "bind", plan.Binds[0].Audit, independentCount(t, r, bind))
	if len(plan.Services) != 1 || len(plan.Services[0].Ports) != 1 {
		t.Fatalf("plan services %+v", plan.Services)
	}
	if p := plan.Services[0].Ports[0]; !p.Rewritten || p.OldHostPort != "93" || p.NewHostPort != "8093" {
		t.Errorf("port plan %+v, want 93 → 8093", p)
	}
	if !plan.Summary.Applicable || plan.Summary.Blockers != 0 {
		t.Errorf("summary %+v, want applicable", plan.Summary)
	}
}

func TestMigrateDryRunReportsBlockers(t *testing.T) {
	r := Load(t)
	const name, vol = "e2e-dry-blocked", "e2e-dry-blocked-vol"
	cleanupSource(t, r, []string{name}, []string{vol})
	r.Docker(t, false, "volume", "create", vol)
	volPath := r.Docker(t, false, "volume", "inspect", "-f", "{{.Mountpoint}}", vol)
	awkwardTree(t, volPath, true)
	r.Docker(t, false, "run", "-d", "--name", name, "-v", vol+":/data", "-v", "/etc:/host-etc:ro",
		"--sysctl", "kernel.msgmax=65536", r.Image, "sleep", "3600")
	before := snapshot(t, volPath)

	out, errOut, code := r.Unroot(t, append(r.Hosts(), "migrate", "--dry-run", "--format", "json", name)...)
	if code != 1 {
		t.Fatalf("dry run exit %d, want 1 (blocked)\n%s", code, errOut)
	}
	var plan planJSON
	if err := json.Unmarshal([]byte(out), &plan); err != nil {
		t.Fatalf("plan JSON: %v\n%s", err, out)
	}
	diffSnap(t, "volume", before, snapshot(t, volPath))
	var codes []string
	for _, f := range plan.Findings {
		if f.Severity == "blocker" {
			codes = append(codes, f.Code)
		}
	}
	for _, want := range []string{"device-nodes", "unmappable-ids", "system-bind", "sysctl"} {
		if !slices.Contains(codes, want) {
			t.Errorf("blockers %v lack %s", codes, want)
		}
	}
	a := plan.Volumes[0].Audit
	if a == nil || a.Devices != 1 {
		t.Fatalf("audit %+v, want 1 device", a)
	}
	found := false
	for _, u := range a.Unmappable {
		found = found || (u.Kind == "uid" && u.ID == 70000 && u.Count == 1)
	}
	if !found {
		t.Errorf("unmappable %+v lacks uid 70000 ×1", a.Unmappable)
	}
	// The text form names each blocker with a hint.
	_, textErr, code := r.Unroot(t, append(r.Hosts(), "migrate", "--dry-run", name)...)
	if code != 1 {
		t.Errorf("text dry run exit %d, want 1: %s", code, textErr)
	}
}

// cleanupSource removes leftovers of earlier runs now and after the test.
func cleanupSource(t *testing.T, r *Rig, containers, volumes []string) {
	t.Helper()
	clean := func() {
		for _, c := range containers {
			_, _ = r.DockerErr(false, "rm", "-f", c)
		}
		for _, v := range volumes {
			_, _ = r.DockerErr(false, "volume", "rm", "-f", v)
		}
	}
	clean()
	t.Cleanup(clean)
}
