package preflight

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/moby/sys/user"
	"golang.org/x/sys/unix"
)

func ok(format string, a ...any) Check {
	return Check{Status: StatusOK, Found: fmt.Sprintf(format, a...)}
}

func warn(fix, format string, a ...any) Check {
	return Check{Status: StatusWarn, Found: fmt.Sprintf(format, a...), Fix: fix}
}

func fail(fix, format string, a ...any) Check {
	return Check{Status: StatusFail, Found: fmt.Sprintf(format, a...), Fix: fix}
}

// minSubIDs is the smallest subordinate range that maps every id an image
// commonly uses (up to nobody, 65534) into the rootless namespace.
const minSubIDs = 65536

func (r *runner) checkUserns() Check {
	clone := r.proc("sys/kernel/unprivileged_userns_clone")
	v, err := ParseSysctlFile(clone)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// Only Debian-patched kernels have this knob; elsewhere
		// unprivileged user namespaces are allowed by default.
	case err != nil:
		return fail("", "cannot read kernel.unprivileged_userns_clone: %v", err)
	case v != 1:
		return fail("sysctl -w kernel.unprivileged_userns_clone=1 && echo kernel.unprivileged_userns_clone=1 > /etc/sysctl.d/90-unroot-userns.conf",
			"kernel.unprivileged_userns_clone is %d: unprivileged users cannot create user namespaces", v)
	}
	max, err := ParseSysctlFile(r.proc("sys/user/max_user_namespaces"))
	if err != nil {
		return fail("", "cannot read user.max_user_namespaces: %v", err)
	}
	if max <= 0 {
		return fail("sysctl -w user.max_user_namespaces=28633 && echo user.max_user_namespaces=28633 > /etc/sysctl.d/90-unroot-userns.conf",
			"user.max_user_namespaces is %d: no user namespace can be created", max)
	}
	found := fmt.Sprintf("unprivileged user namespaces are allowed (user.max_user_namespaces %d)", max)
	// Ubuntu 23.10+ lets AppArmor confine unprivileged user namespaces to
	// programs with a profile that allows them.
	restrict, err := ParseSysctlFile(r.proc("sys/kernel/apparmor_restrict_unprivileged_userns"))
	if err == nil && restrict == 1 {
		kit, err := r.o.LookPath("rootlesskit")
		if err != nil {
			kit = "/usr/bin/rootlesskit"
		}
		profile := strings.ReplaceAll(strings.TrimPrefix(kit, "/"), "/", ".")
		if _, err := os.Stat(r.etc(filepath.Join("apparmor.d", profile))); err != nil {
			return warn(fmt.Sprintf(`printf 'abi <abi/4.0>,\ninclude <tunables/global>\n\n"%s" flags=(unconfined) {\n  userns,\n\n  include if exists <local/%s>\n}\n' > /etc/apparmor.d/%s && systemctl restart apparmor.service`, kit, profile, profile),
				"%s, but kernel.apparmor_restrict_unprivileged_userns is 1 and /etc/apparmor.d/%s does not exist: rootlesskit will be denied", found, profile)
		}
		found += fmt.Sprintf("; apparmor restricts them, and /etc/apparmor.d/%s exists", profile)
	}
	return ok("%s", found)
}

func (r *runner) checkUser() Check {
	u := r.o.User
	if u.UID == 0 {
		return fail("useradd -m rootless && unroot check --user rootless",
			"%s is root: the target of a migration must be an unprivileged user", u.Name)
	}
	found := fmt.Sprintf("%s has uid %d, gid %d, home %s", u.Name, u.UID, u.GID, u.Home)
	fi, err := os.Stat(u.Home)
	if err != nil || !fi.IsDir() {
		return warn(fmt.Sprintf("install -d -m 700 -o %d -g %d %s", u.UID, u.GID, u.Home),
			"%s, which does not exist: rootless docker keeps its data in ~/.local/share/docker", found)
	}
	return ok("%s", found)
}

// subIDFile is a parsed /etc/subuid or /etc/subgid.
type subIDFile struct {
	path    string
	entries []SubIDEntry
	err     error // reading failed: nothing else is known
	bad     error // some lines were malformed and skipped
}

func (r *runner) subIDs(kind string) *subIDFile {
	p := &r.subuid
	if kind == "gid" {
		p = &r.subgid
	}
	if *p == nil {
		f := &subIDFile{path: "/etc/sub" + kind}
		if fh, err := os.Open(r.etc("sub" + kind)); err != nil {
			f.err = err
		} else {
			f.entries, f.bad = ParseSubIDEntries(fh)
			fh.Close()
		}
		*p = f
	}
	return *p
}

// own reports whether e belongs to the target user, by name or by uid.
func (r *runner) own(e SubIDEntry) bool {
	return e.Owner == r.o.User.Name || e.Owner == strconv.Itoa(r.o.User.UID)
}

func (r *runner) ownRanges(f *subIDFile) []SubIDEntry {
	var out []SubIDEntry
	for _, e := range f.entries {
		if r.own(e) {
			out = append(out, e)
		}
	}
	return out
}

// freeStart returns the lowest multiple of 65536, from 100000 rounded up,
// where count ids overlap none of entries.
func freeStart(entries []SubIDEntry, count uint64) uint64 {
	start := uint64(131072)
	for changed := true; changed; {
		changed = false
		for _, e := range entries {
			if start < e.End() && uint64(e.Start) < start+count {
				start = (e.End() + 65535) / 65536 * 65536
				changed = true
			}
		}
	}
	return start
}

func (r *runner) checkSubUID() Check { return r.checkSubIDs("uid") }
func (r *runner) checkSubGID() Check { return r.checkSubIDs("gid") }

func (r *runner) checkSubIDs(kind string) Check {
	f := r.subIDs(kind)
	name := r.o.User.Name
	flag := "--add-sub" + kind + "s"
	if f.err != nil && !errors.Is(f.err, fs.ErrNotExist) {
		return fail("", "cannot read %s: %v", f.path, f.err)
	}
	own := r.ownRanges(f)
	var total uint64
	var ranges []IDRange
	var shown []string
	for _, e := range own {
		total += uint64(e.Count)
		ranges = append(ranges, IDRange{Start: e.Start, Count: e.Count})
		shown = append(shown, fmt.Sprintf("%d:%d", e.Start, e.Count))
	}
	if kind == "uid" {
		r.facts.SubUIDs = ranges
	} else {
		r.facts.SubGIDs = ranges
	}
	badNote := ""
	if f.bad != nil {
		badNote = fmt.Sprintf("; malformed lines were skipped: %s", strings.ReplaceAll(f.bad.Error(), "\n", "; "))
	}
	if len(own) == 0 {
		what := "has no entry for " + name
		if errors.Is(f.err, fs.ErrNotExist) {
			what = "does not exist"
		}
		s := freeStart(f.entries, minSubIDs)
		return fail(fmt.Sprintf("usermod %s %d-%d %s", flag, s, s+minSubIDs-1, name),
			"%s %s%s", f.path, what, badNote)
	}
	found := fmt.Sprintf("%s has %s for %s (%d ids)", f.path, strings.Join(shown, ", "), name, total)
	if total < minSubIDs {
		need := minSubIDs - total
		s := freeStart(f.entries, need)
		return fail(fmt.Sprintf("usermod %s %d-%d %s", flag, s, s+need-1, name),
			"%s: fewer than %d, so container ids up to 65534 cannot all be mapped%s", found, minSubIDs, badNote)
	}
	if f.bad != nil {
		return warn("", "%s%s", found, badNote)
	}
	return ok("%s", found)
}

func (r *runner) checkSubIDOverlap() Check {
	var problems, fixes []string
	status := StatusOK
	for _, kind := range []string{"uid", "gid"} {
		f := r.subIDs(kind)
		own := r.ownRanges(f)
		// Deleting the later duplicate by line number works whether it
		// names the user or its uid, which usermod does not match.
		var dropLines []string
		for i, o := range own {
			// Two of the user's own lines (say one by name, one by uid)
			// covering the same ids make an id map the kernel refuses.
			for _, e := range own[i+1:] {
				if uint64(o.Start) < e.End() && uint64(e.Start) < o.End() {
					status = StatusFail
					problems = append(problems, fmt.Sprintf("%s lines %d and %d of %s overlap (%d:%d and %d:%d)",
						f.path, o.Line, e.Line, r.o.User.Name, o.Start, o.Count, e.Start, e.Count))
					dropLines = append(dropLines, fmt.Sprintf("-e '%dd'", e.Line))
				}
			}
			if kind == "uid" && uint64(o.Start) <= uint64(r.o.User.UID) && uint64(r.o.User.UID) < o.End() ||
				kind == "gid" && uint64(o.Start) <= uint64(r.o.User.GID) && uint64(r.o.User.GID) < o.End() {
				status = StatusFail
				problems = append(problems, fmt.Sprintf("%s line %d (%d:%d) contains the user's own %s", f.path, o.Line, o.Start, o.Count, kind))
			}
			for _, e := range f.entries {
				if r.own(e) || !(uint64(o.Start) < e.End() && uint64(e.Start) < o.End()) {
					continue
				}
				status = StatusFail
				problems = append(problems, fmt.Sprintf("%s line %d (%d:%d) overlaps %s's %d:%d on line %d",
					f.path, o.Line, o.Start, o.Count, e.Owner, e.Start, e.Count, e.Line))
				s := freeStart(f.entries, uint64(o.Count))
				fixes = append(fixes, fmt.Sprintf("usermod --del-sub%ss %d-%d --add-sub%ss %d-%d %s",
					kind, o.Start, o.End()-1, kind, s, s+uint64(o.Count)-1, r.o.User.Name))
			}
		}
		if dropLines = slices.Compact(dropLines); len(dropLines) > 0 {
			fixes = append(fixes, fmt.Sprintf("sed -i %s %s", strings.Join(dropLines, " "), f.path))
		}
		// Ids of real accounts inside the range would let container
		// processes act as those accounts on the host.
		if coll := r.accountsInRanges(kind, own); len(coll) > 0 {
			if status == StatusOK {
				status = StatusWarn
			}
			problems = append(problems, fmt.Sprintf("%s ranges of %s contain the host %ss of %s", f.path, r.o.User.Name, kind, strings.Join(coll, ", ")))
		}
	}
	fixes = slices.Compact(fixes)
	switch status {
	case StatusOK:
		return ok("the ranges of %s overlap no other user's ranges and no account's ids", r.o.User.Name)
	case StatusWarn:
		return warn(strings.Join(fixes, " && "), "%s", strings.Join(problems, "; "))
	default:
		return fail(strings.Join(fixes, " && "), "%s", strings.Join(problems, "; "))
	}
}

// accountsInRanges names the passwd users (kind "uid") or groups (kind
// "gid") whose ids lie in ranges, other than the target user's own.
func (r *runner) accountsInRanges(kind string, ranges []SubIDEntry) []string {
	in := func(id int) bool {
		for _, e := range ranges {
			if id >= 0 && uint64(e.Start) <= uint64(id) && uint64(id) < e.End() {
				return true
			}
		}
		return false
	}
	var out []string
	if kind == "uid" {
		users, _ := user.ParsePasswdFile(r.etc("passwd"))
		for _, u := range users {
			if u.Uid != r.o.User.UID && in(u.Uid) {
				out = append(out, fmt.Sprintf("%s (%d)", u.Name, u.Uid))
			}
		}
		return out
	}
	groups, _ := user.ParseGroupFile(r.etc("group"))
	for _, g := range groups {
		if g.Gid != r.o.User.GID && in(g.Gid) {
			out = append(out, fmt.Sprintf("%s (%d)", g.Name, g.Gid))
		}
	}
	return out
}

// Capability bits in the first permitted word (linux/capability.h).
const (
	capSetgid = 6
	capSetuid = 7
)

func (r *runner) checkNewuidmap() Check {
	var found []string
	status := StatusOK
	var fixes []string
	for _, h := range []struct {
		name string
		cap  uint
		capN string
	}{{"newuidmap", capSetuid, "cap_setuid"}, {"newgidmap", capSetgid, "cap_setgid"}} {
		p, err := r.o.LookPath(h.name)
		if err != nil {
			status = StatusFail
			found = append(found, h.name+" is not on the PATH")
			fixes = append(fixes, "apt-get install -y uidmap")
			continue
		}
		how, good := r.privileged(p, h.cap)
		if good {
			found = append(found, fmt.Sprintf("%s is %s", p, how))
			continue
		}
		status = StatusFail
		found = append(found, fmt.Sprintf("%s is %s: it cannot write the id maps", p, how))
		fixes = append(fixes, fmt.Sprintf("setcap %s+ep %s", h.capN, p))
	}
	fixes = slices.Compact(fixes)
	return Check{Status: status, Found: strings.Join(found, "; "), Fix: strings.Join(fixes, " && ")}
}

// privileged says how p gets the privilege to write id maps: setuid root,
// or capability bit capBit permitted and effective in its
// security.capability.
func (r *runner) privileged(p string, capBit uint) (string, bool) {
	fi, err := os.Stat(p)
	if err != nil {
		return fmt.Sprintf("unreadable (%v)", err), false
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	if fi.Mode()&fs.ModeSetuid != 0 && st != nil && st.Uid == 0 {
		return "setuid root", true
	}
	b, err := r.o.Getxattr(p, "security.capability")
	if err != nil || len(b) == 0 {
		return "neither setuid root nor given file capabilities", false
	}
	c, err := DecodeFileCaps(b)
	if err != nil {
		return fmt.Sprintf("not setuid root, and its security.capability is unreadable (%v)", err), false
	}
	name := map[uint]string{capSetuid: "cap_setuid", capSetgid: "cap_setgid"}[capBit]
	if c.Permitted&(1<<capBit) == 0 {
		return "not setuid root, and its file capabilities lack " + name, false
	}
	if !c.Effective {
		return "not setuid root, and its " + name + " file capability is not effective", false
	}
	if c.Version == 3 {
		return fmt.Sprintf("not setuid root, and its %s is only for the namespace of uid %d", name, c.RootID), c.RootID == 0
	}
	return "given " + name + "+ep", true
}

func (r *runner) checkRootlesskit() Check {
	p, err := r.o.LookPath("rootlesskit")
	if err != nil {
		return fail("apt-get install -y rootlesskit", "rootlesskit is not on the PATH")
	}
	return ok("%s", p)
}

func (r *runner) checkDockerdRootless() Check {
	if p, err := r.o.LookPath("dockerd-rootless.sh"); err == nil {
		return ok("%s", p)
	}
	for _, d := range []string{"share/docker.io/contrib", "bin", "local/bin"} {
		p := filepath.Join(r.usr(d), "dockerd-rootless.sh")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			host := filepath.Join("/usr", d)
			links := host + "/dockerd-rootless.sh"
			if _, err := os.Stat(filepath.Join(r.usr(d), "dockerd-rootless-setuptool.sh")); err == nil {
				links += " " + host + "/dockerd-rootless-setuptool.sh"
			}
			return warn("ln -s "+links+" /usr/local/bin/",
				"%s/dockerd-rootless.sh exists but is not on the PATH, where dockerd-rootless-setuptool.sh and the systemd unit look for it", host)
		}
	}
	return fail("apt-get install -y docker-ce-rootless-extras  # Docker's packages; Debian's docker.io ships it in /usr/share/docker.io/contrib",
		"dockerd-rootless.sh is neither on the PATH nor in /usr/share/docker.io/contrib, /usr/bin or /usr/local/bin")
}

func (r *runner) checkNetworkDriver() Check {
	var found []string
	for _, n := range []string{"slirp4netns", "pasta"} {
		if p, err := r.o.LookPath(n); err == nil {
			found = append(found, p)
		}
	}
	if len(found) == 0 {
		return fail("apt-get install -y slirp4netns", "neither slirp4netns nor pasta is on the PATH: the rootless daemon has no network")
	}
	return ok("%s", strings.Join(found, ", "))
}

func (r *runner) checkDevNetTun() Check {
	const fix = "mkdir -p /dev/net && mknod -m 666 /dev/net/tun c 10 200"
	p := r.dev("net/tun")
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return fail(fix+" && modprobe tun", "/dev/net/tun is missing: %v", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR {
		return fail("rm /dev/net/tun && "+fix, "/dev/net/tun is not a character device")
	}
	if maj, min := unix.Major(st.Rdev), unix.Minor(st.Rdev); maj != 10 || min != 200 {
		return fail("rm /dev/net/tun && "+fix, "/dev/net/tun is device %d,%d, not the tun device 10,200", maj, min)
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return fail("modprobe tun", "/dev/net/tun cannot be opened: %v", errors.Unwrap(err))
	}
	f.Close()
	_, gids := r.groups()
	byOwner := int(st.Uid) == r.o.User.UID && st.Mode&0o600 == 0o600
	byGroup := slices.Contains(gids, int(st.Gid)) && st.Mode&0o060 == 0o060
	if st.Mode&0o006 != 0o006 && !byOwner && !byGroup {
		return warn(fmt.Sprintf("chmod 666 %s", "/dev/net/tun"),
			"/dev/net/tun has mode %04o and owner %d: %s cannot open it for a slirp4netns or pasta tap device",
			st.Mode&0o7777, st.Uid, r.o.User.Name)
	}
	return ok("/dev/net/tun is the tun device 10,200 and opens")
}

// Filesystem magics (linux/magic.h).
const (
	cgroup2SuperMagic = 0x63677270
	tmpfsMagic        = 0x01021994
)

// delegateFix writes the systemd drop-in that delegates every controller
// docker needs to user sessions (RESEARCH.md, rootless docs).
const delegateFix = `mkdir -p /etc/systemd/system/user@.service.d && printf '[Service]\nDelegate=cpu cpuset io memory pids\n' > /etc/systemd/system/user@.service.d/delegate.conf && systemctl daemon-reload`

// v1Fix switches the host to the unified hierarchy on the next boot, with
// delegation in place.
const v1Fix = `sed -i 's/^GRUB_CMDLINE_LINUX="/&systemd.unified_cgroup_hierarchy=1 /' /etc/default/grub && update-grub && ` + delegateFix + ` && echo 'reboot to switch to cgroup v2'`

// wantControllers are the controllers without which docker run's --cpus,
// --memory and --pids-limit are not enforced.
var wantControllers = []string{"cpu", "memory", "pids"}

func (r *runner) cgroupFix() string {
	if r.facts.CgroupVersion == 2 {
		return delegateFix + fmt.Sprintf(" && systemctl restart user@%d.service", r.o.User.UID)
	}
	return v1Fix
}

func (r *runner) checkCgroup() Check {
	magic, err := r.o.FSType(r.sys("fs/cgroup"))
	if err != nil {
		return warn("", "cannot tell the cgroup version: statfs /sys/fs/cgroup: %v", err)
	}
	switch magic {
	case cgroup2SuperMagic:
		r.facts.CgroupVersion = 2
	case tmpfsMagic:
		r.facts.CgroupVersion = 1
		return warn(v1Fix, "cgroup v1: rootless containers get no cgroup, so --memory, --cpus and --pids-limit are not enforced; boot with systemd.unified_cgroup_hierarchy=1 and delegate controllers")
	default:
		return warn("", "/sys/fs/cgroup has filesystem magic %#x, neither cgroup2 nor tmpfs: limits may not be enforced", magic)
	}
	uid := r.o.User.UID
	p := r.sys(fmt.Sprintf("fs/cgroup/user.slice/user-%d.slice/user@%d.service/cgroup.controllers", uid, uid))
	ctrls, err := ParseCgroupControllersFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return warn(fmt.Sprintf("loginctl enable-linger %s", r.o.User.Name),
			"cgroup v2, but user@%d.service is not running, so what is delegated to %s cannot be seen", uid, r.o.User.Name)
	}
	if err != nil {
		return warn("", "cgroup v2, but the delegated controllers cannot be read: %v", err)
	}
	r.facts.DelegatedControllers = ctrls
	var missing []string
	for _, c := range wantControllers {
		if !slices.Contains(ctrls, c) {
			missing = append(missing, c)
		}
	}
	shown := strings.Join(ctrls, " ")
	if shown == "" {
		shown = "none"
	}
	if len(missing) > 0 {
		flags := map[string]string{"cpu": "--cpus", "memory": "--memory", "pids": "--pids-limit"}
		var fl []string
		for _, m := range missing {
			fl = append(fl, flags[m])
		}
		return warn(r.cgroupFix(), "cgroup v2, delegated controllers: %s; without %s, %s will not be enforced",
			shown, strings.Join(missing, ", "), strings.Join(fl, ", "))
	}
	return ok("cgroup v2, delegated controllers: %s", shown)
}

func (r *runner) checkLinger() Check {
	name := r.o.User.Name
	if _, err := os.Stat(r.vr(filepath.Join("lib/systemd/linger", name))); err != nil {
		return warn("loginctl enable-linger "+name,
			"linger is off for %s: the rootless daemon and its containers stop when the user's last session ends", name)
	}
	return ok("linger is on for %s", name)
}

func (r *runner) checkRuntimeDir() Check {
	dir := r.runtimeDir()
	u := r.o.User
	fi, err := os.Stat(r.run(strings.TrimPrefix(dir, "/run/")))
	if err != nil {
		return fail("loginctl enable-linger "+u.Name, "%s does not exist: systemd-logind creates it at login or with linger", dir)
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || st == nil || int(st.Uid) != u.UID {
		owner := -1
		if st != nil {
			owner = int(st.Uid)
		}
		return fail(fmt.Sprintf("chown %d:%d %s && chmod 700 %s", u.UID, u.GID, dir, dir),
			"%s is not a directory owned by %s (owner uid %d, mode %s)", dir, u.Name, owner, fi.Mode())
	}
	return ok("%s exists and is owned by %s", dir, u.Name)
}
