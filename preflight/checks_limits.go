package preflight

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/sys/user"
)

// Thresholds below which a rootless daemon with a few busy containers runs
// out: databases and proxies keep tens of thousands of files open, and
// RLIMIT_NPROC counts every process of the user's uid, which is also every
// process running as root in its containers.
const (
	minNofile = 65536
	minNproc  = 4096
)

// limitFound is an effective limit and where it came from.
type limitFound struct {
	value  int64
	source string
	daemon bool // from the running rootless daemon
}

func showLimit(v int64) string {
	if v == Unlimited {
		return "unlimited"
	}
	return strconv.FormatInt(v, 10)
}

// daemonLimit reads limit from /proc/PID/limits of the running rootless
// daemon, whose pid is in $XDG_RUNTIME_DIR/docker.pid. Containers inherit
// the daemon's limits, so when it runs its numbers are the ones that count.
func (r *runner) daemonLimit(name string) (limitFound, bool) {
	pidFile := r.run(fmt.Sprintf("user/%d/docker.pid", r.o.User.UID))
	pid, err := ParseSysctlFile(pidFile)
	if err != nil || pid <= 0 {
		return limitFound{}, false
	}
	ls, err := ParseProcLimitsFile(r.proc(filepath.Join(strconv.FormatInt(pid, 10), "limits")))
	if err != nil {
		return limitFound{}, false
	}
	for _, l := range ls {
		if l.Name == name {
			return limitFound{value: l.Soft, source: fmt.Sprintf("the running rootless daemon (pid %d, soft limit)", pid), daemon: true}, true
		}
	}
	return limitFound{}, false
}

// groups returns the names and gids of the target user's groups, primary
// and supplementary, from /etc/group.
func (r *runner) groups() (names []string, gids []int) {
	gs, _ := user.ParseGroupFile(r.etc("group"))
	for _, g := range gs {
		if g.Gid == r.o.User.GID || slices.Contains(g.List, r.o.User.Name) {
			names = append(names, g.Name)
			gids = append(gids, g.Gid)
		}
	}
	return names, gids
}

// Priorities of limits.conf domains, as pam_limits ranks them: a more
// specific domain is never overridden by a less specific one; among equals
// the later line wins.
const (
	prioUser = iota
	prioGroup
	prioDefault
	prioNone
)

// domainPriority says whether domain applies to the user and how
// specifically.
func domainPriority(domain, name string, uid int, groups []string, gids []int) int {
	inRange := func(spec string, id int) bool {
		lo, hi, _ := strings.Cut(spec, ":")
		l, h := 0, int(^uint32(0))
		var err error
		if lo != "" {
			if l, err = strconv.Atoi(lo); err != nil {
				return false
			}
		}
		if hi != "" {
			if h, err = strconv.Atoi(hi); err != nil {
				return false
			}
		}
		return l <= id && id <= h
	}
	switch {
	case domain == name:
		return prioUser
	case domain == "*":
		return prioDefault
	case strings.HasPrefix(domain, "@") && strings.Contains(domain, ":"):
		for _, g := range gids {
			if inRange(domain[1:], g) {
				return prioGroup
			}
		}
	case strings.HasPrefix(domain, "@"):
		if slices.Contains(groups, domain[1:]) {
			return prioGroup
		}
	case strings.Contains(domain, ":"):
		if inRange(domain, uid) {
			return prioUser
		}
	}
	return prioNone
}

// confLimit resolves item for the user from limits.conf and then the files
// in limits.d, in the order pam_limits reads them. bad names files with
// malformed lines.
func (r *runner) confLimit(item string) (limitFound, bool, []string) {
	files := []string{r.etc("security/limits.conf")}
	more, _ := filepath.Glob(r.etc("security/limits.d/*.conf"))
	slices.Sort(more)
	files = append(files, more...)
	names, gids := r.groups()
	type pick struct {
		prio   int
		value  int64
		source string
	}
	soft, hard := pick{prio: prioNone}, pick{prio: prioNone}
	var bad []string
	for _, f := range files {
		rules, err := ParseLimitsConfFile(f)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			bad = append(bad, "/etc/"+strings.TrimPrefix(strings.TrimPrefix(f, r.o.EtcRoot), "/etc/"))
		}
		for _, rule := range rules {
			if rule.Item != item {
				continue
			}
			p := domainPriority(rule.Domain, r.o.User.Name, r.o.User.UID, names, gids)
			if p == prioNone {
				continue
			}
			src := fmt.Sprintf("%s line %d ('%s %s %s %s')", "/etc/"+strings.TrimPrefix(strings.TrimPrefix(f, r.o.EtcRoot), "/etc/"),
				rule.Line, rule.Domain, rule.Type, rule.Item, showLimit(rule.Value))
			if (rule.Type == "soft" || rule.Type == "-") && p <= soft.prio {
				soft = pick{p, rule.Value, src}
			}
			if (rule.Type == "hard" || rule.Type == "-") && p <= hard.prio {
				hard = pick{p, rule.Value, src}
			}
		}
	}
	switch {
	case soft.prio != prioNone:
		return limitFound{value: soft.value, source: soft.source}, true, bad
	case hard.prio != prioNone:
		// No soft limit set: the soft limit cannot exceed the hard one.
		return limitFound{value: hard.value, source: hard.source + ", a hard limit"}, true, bad
	}
	return limitFound{}, false, bad
}

func (r *runner) checkUlimitNofile() Check {
	return r.checkUlimit("nofile", ProcLimitNofile, "LimitNOFILE", minNofile, 1048576)
}

func (r *runner) checkUlimitNproc() Check {
	return r.checkUlimit("nproc", ProcLimitNproc, "LimitNPROC", minNproc, 65536)
}

func (r *runner) checkUlimit(item, procName, unitKey string, min, want int64) Check {
	u := r.o.User
	confFix := fmt.Sprintf(`printf '%s soft %s %d\n%s hard %s %d\n' > /etc/security/limits.d/90-unroot-%s-%s.conf`,
		u.Name, item, want, u.Name, item, want, u.Name, item)
	dropIn := filepath.Join(u.Home, ".config/systemd/user/docker.service.d")
	unitFix := fmt.Sprintf(`sudo -u %s mkdir -p %s && printf '[Service]\n%s=%d\n' | sudo -u %s tee %s/90-unroot-%s.conf >/dev/null && systemctl --user -M %s@ daemon-reload && systemctl --user -M %s@ restart docker`,
		u.Name, dropIn, unitKey, want, u.Name, dropIn, item, u.Name, u.Name)

	lf, found := r.daemonLimit(procName)
	var bad []string
	fix := unitFix
	if !found {
		lf, found, bad = r.confLimit(item)
		fix = confFix
	}
	note := ""
	if len(bad) > 0 {
		note = "; malformed lines skipped in " + strings.Join(bad, ", ")
	}
	if !found && item == "nproc" {
		// Without a limits.conf entry, sessions inherit the kernel's
		// default, which is what pid 1 runs with.
		if ls, err := ParseProcLimitsFile(r.proc("1/limits")); err == nil {
			for _, l := range ls {
				if l.Name == procName {
					lf, found = limitFound{value: l.Soft, source: "pid 1, whose limit sessions inherit when limits.conf sets none"}, true
				}
			}
		}
	}
	if !found {
		return warn(confFix, "no %s limit for %s in /etc/security/limits.conf or limits.d and the rootless daemon is not running: login sessions get the system default soft limit (1024 on systemd hosts), below %d%s",
			item, u.Name, min, note)
	}
	if lf.value != Unlimited && lf.value < min {
		return warn(fix, "%s is %s from %s, below %d%s", item, showLimit(lf.value), lf.source, min, note)
	}
	if note != "" {
		return warn("", "%s is %s from %s%s", item, showLimit(lf.value), lf.source, note)
	}
	return ok("%s is %s from %s", item, showLimit(lf.value), lf.source)
}
