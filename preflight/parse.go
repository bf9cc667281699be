package preflight

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

// Unlimited is the value of a resource limit that is not limited
// ("unlimited", "infinity" or -1 in limits.conf, "unlimited" in
// /proc/PID/limits).
const Unlimited int64 = -1

// maxLine bounds the lines the parsers accept, so a corrupt file cannot make
// them buffer without end.
const maxLine = 64 * 1024

func newScanner(r io.Reader) *bufio.Scanner {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 0, 4096), maxLine)
	return s
}

// openParse opens path and runs parse on it, naming path in errors.
func openParse[T any](path string, parse func(io.Reader) (T, error)) (T, error) {
	f, err := os.Open(path)
	if err != nil {
		var zero T
		return zero, err
	}
	defer f.Close()
	v, err := parse(f)
	if err != nil {
		return v, fmt.Errorf("parse %s: %w", path, err)
	}
	return v, nil
}

// ParseSysctl parses the value of a numeric /proc/sys file, such as
// /proc/sys/user/max_user_namespaces: one integer, surrounding blanks
// allowed.
func ParseSysctl(r io.Reader) (int64, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxLine))
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("sysctl value %q is not an integer", truncate(s))
	}
	return n, nil
}

// ParseSysctlFile is [ParseSysctl] on the file at path.
func ParseSysctlFile(path string) (int64, error) { return openParse(path, ParseSysctl) }

// SubIDEntry is one line of /etc/subuid or /etc/subgid: Count subordinate ids
// starting at Start for Owner, a user name or a numeric uid.
type SubIDEntry struct {
	Owner        string
	Start, Count uint32
	Line         int // 1-based line number in the file
}

// End is one past the last id of e.
func (e SubIDEntry) End() uint64 { return uint64(e.Start) + uint64(e.Count) }

// ParseSubIDEntries parses every "owner:start:count" line of an /etc/subuid
// or /etc/subgid file, in file order; blank lines and '#' comments are
// skipped. Unlike github.com/moby/sys/user.ParseSubID it does not read a bad
// number as 0: a malformed line is left out and named in the returned error,
// which joins one error per bad line, while the good lines are still
// returned.
func ParseSubIDEntries(r io.Reader) ([]SubIDEntry, error) {
	var out []SubIDEntry
	var errs []error
	s := newScanner(r)
	for n := 1; s.Scan(); n++ {
		line := strings.TrimSpace(s.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		e, err := parseSubIDLine(line)
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w", n, err))
			continue
		}
		e.Line = n
		out = append(out, e)
	}
	if err := s.Err(); err != nil {
		errs = append(errs, err)
	}
	return out, errors.Join(errs...)
}

func parseSubIDLine(line string) (SubIDEntry, error) {
	f := strings.Split(line, ":")
	if len(f) != 3 {
		return SubIDEntry{}, fmt.Errorf("want owner:start:count, got %q", truncate(line))
	}
	if f[0] == "" {
		return SubIDEntry{}, fmt.Errorf("empty owner in %q", truncate(line))
	}
	start, err := strconv.ParseUint(f[1], 10, 32)
	if err != nil {
		return SubIDEntry{}, fmt.Errorf("start %q is not a 32-bit id", truncate(f[1]))
	}
	count, err := strconv.ParseUint(f[2], 10, 32)
	if err != nil {
		return SubIDEntry{}, fmt.Errorf("count %q is not a 32-bit number", truncate(f[2]))
	}
	if count == 0 {
		return SubIDEntry{}, fmt.Errorf("count is zero in %q", truncate(line))
	}
	if start+count > math.MaxUint32+1 {
		return SubIDEntry{}, fmt.Errorf("range %q runs past the largest 32-bit id", truncate(line))
	}
	return SubIDEntry{Owner: f[0], Start: uint32(start), Count: uint32(count)}, nil
}

// ParseSubIDEntriesFile is [ParseSubIDEntries] on the file at path.
func ParseSubIDEntriesFile(path string) ([]SubIDEntry, error) {
	return openParse(path, ParseSubIDEntries)
}

// LimitRule is one line of limits.conf(5): "domain type item value".
type LimitRule struct {
	Domain string // a user name, "@group", "*", "%group", or a uid/gid range
	Type   string // "soft", "hard" or "-" (both)
	Item   string // e.g. "nofile", "nproc"
	Value  int64  // Unlimited for "unlimited", "infinity" or -1
	Line   int    // 1-based line number in the file
}

// ParseLimitsConf parses a pam_limits configuration file
// (/etc/security/limits.conf or a file in /etc/security/limits.d). Comments
// ('#' to the end of the line) and blank lines are skipped. Like pam_limits,
// it skips a malformed line rather than giving up; each one is named in the
// returned error (one joined error per bad line), while the good rules are
// still returned.
func ParseLimitsConf(r io.Reader) ([]LimitRule, error) {
	var out []LimitRule
	var errs []error
	s := newScanner(r)
	for n := 1; s.Scan(); n++ {
		line := s.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 4 {
			errs = append(errs, fmt.Errorf("line %d: want 'domain type item value', got %q", n, truncate(strings.TrimSpace(line))))
			continue
		}
		rule := LimitRule{Domain: f[0], Type: strings.ToLower(f[1]), Item: strings.ToLower(f[2]), Line: n}
		switch rule.Type {
		case "soft", "hard", "-":
		default:
			errs = append(errs, fmt.Errorf("line %d: type %q is not soft, hard or -", n, truncate(f[1])))
			continue
		}
		v, err := parseLimitValue(f[3])
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w", n, err))
			continue
		}
		rule.Value = v
		out = append(out, rule)
	}
	if err := s.Err(); err != nil {
		errs = append(errs, err)
	}
	return out, errors.Join(errs...)
}

func parseLimitValue(s string) (int64, error) {
	switch strings.ToLower(s) {
	case "unlimited", "infinity", "-1":
		return Unlimited, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("value %q is not a number, unlimited or infinity", truncate(s))
	}
	return n, nil
}

// ParseLimitsConfFile is [ParseLimitsConf] on the file at path.
func ParseLimitsConfFile(path string) ([]LimitRule, error) {
	return openParse(path, ParseLimitsConf)
}

// ProcLimit is one row of /proc/PID/limits.
type ProcLimit struct {
	Name       string // e.g. "Max open files"
	Soft, Hard int64  // Unlimited when "unlimited"
	Units      string
}

// Names of the /proc/PID/limits rows the checks read.
const (
	ProcLimitNofile = "Max open files"
	ProcLimitNproc  = "Max processes"
)

// ParseProcLimits parses /proc/PID/limits. The kernel prints it as fixed
// columns under a header ("Limit", "Soft Limit", "Hard Limit", "Units"); the
// limit names contain blanks and some rows have no units, so the columns are
// found from the header rather than by splitting on blanks.
func ParseProcLimits(r io.Reader) ([]ProcLimit, error) {
	s := newScanner(r)
	if !s.Scan() {
		if err := s.Err(); err != nil {
			return nil, err
		}
		return nil, errors.New("empty limits file")
	}
	header := s.Text()
	soft, hard, units := strings.Index(header, "Soft Limit"), strings.Index(header, "Hard Limit"), strings.Index(header, "Units")
	if !strings.HasPrefix(header, "Limit") || soft <= 0 || hard <= soft || units <= hard {
		return nil, fmt.Errorf("unexpected header %q", truncate(header))
	}
	var out []ProcLimit
	for n := 2; s.Scan(); n++ {
		line := s.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		if len(line) < hard {
			return nil, fmt.Errorf("line %d: too short: %q", n, truncate(line))
		}
		col := func(from, to int) string {
			if to > len(line) {
				to = len(line)
			}
			if from > to {
				return ""
			}
			return strings.TrimSpace(line[from:to])
		}
		l := ProcLimit{Name: col(0, soft), Units: col(units, len(line))}
		var err error
		if l.Soft, err = parseProcLimitValue(col(soft, hard)); err != nil {
			return nil, fmt.Errorf("line %d: soft limit: %w", n, err)
		}
		if l.Hard, err = parseProcLimitValue(col(hard, units)); err != nil {
			return nil, fmt.Errorf("line %d: hard limit: %w", n, err)
		}
		if l.Name == "" {
			return nil, fmt.Errorf("line %d: no limit name", n)
		}
		out = append(out, l)
	}
	return out, s.Err()
}

func parseProcLimitValue(s string) (int64, error) {
	if s == "unlimited" {
		return Unlimited, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number or unlimited", truncate(s))
	}
	if n > math.MaxInt64 {
		return Unlimited, nil
	}
	return int64(n), nil
}

// ParseProcLimitsFile is [ParseProcLimits] on the file at path.
func ParseProcLimitsFile(path string) ([]ProcLimit, error) {
	return openParse(path, ParseProcLimits)
}

// ParseCgroupControllers parses a cgroup v2 cgroup.controllers (or
// cgroup.subtree_control) file: controller names separated by blanks, on one
// line. An empty file means no controllers.
func ParseCgroupControllers(r io.Reader) ([]string, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxLine+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxLine {
		return nil, errors.New("controllers file too long")
	}
	f := strings.Fields(string(b))
	for _, c := range f {
		for _, ch := range c {
			if !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '_') {
				return nil, fmt.Errorf("controller name %q has a character other than a-z, 0-9 and _", truncate(c))
			}
		}
	}
	return f, nil
}

// ParseCgroupControllersFile is [ParseCgroupControllers] on the file at path.
func ParseCgroupControllersFile(path string) ([]string, error) {
	return openParse(path, ParseCgroupControllers)
}

// truncate shortens s for an error message.
func truncate(s string) string {
	const n = 60
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
