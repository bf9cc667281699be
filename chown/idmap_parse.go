package chown

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// maxMapLines is the kernel's limit on lines in a uid_map or gid_map
// (since Linux 4.15).
const maxMapLines = 340

// ParseSubIDs returns the ranges of the user called name with uid uid from an
// /etc/subuid or /etc/subgid file: lines "name:start:count" or
// "uid:start:count", in file order; a user may have several. Blank lines and
// lines starting with '#' are skipped. Pass a negative uid to match by name
// only. A malformed line fails the whole parse, naming the line number, since
// it may be the user's own.
func ParseSubIDs(r io.Reader, name string, uid int) ([]SubRange, error) {
	var uidStr string
	if uid >= 0 {
		uidStr = strconv.Itoa(uid)
	}
	var out []SubRange
	s := bufio.NewScanner(r)
	n := 1
	for ; s.Scan(); n++ {
		line := strings.TrimSpace(s.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		owner, rng, err := parseSubIDLine(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if (name != "" && owner == name) || (uidStr != "" && owner == uidStr) {
			out = append(out, rng)
		}
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", n, err)
	}
	return out, nil
}

func parseSubIDLine(line string) (string, SubRange, error) {
	f := strings.Split(line, ":")
	if len(f) != 3 {
		return "", SubRange{}, fmt.Errorf("want name:start:count, got %d fields in %q", len(f), line)
	}
	if f[0] == "" {
		return "", SubRange{}, fmt.Errorf("empty user name in %q", line)
	}
	start, err := strconv.ParseUint(f[1], 10, 32)
	if err != nil {
		return "", SubRange{}, fmt.Errorf("start %q is not a 32-bit id", f[1])
	}
	count, err := strconv.ParseUint(f[2], 10, 32)
	if err != nil {
		return "", SubRange{}, fmt.Errorf("count %q is not a 32-bit number", f[2])
	}
	if count == 0 {
		return "", SubRange{}, fmt.Errorf("count is zero in %q", line)
	}
	if start+count > maxIDs {
		return "", SubRange{}, fmt.Errorf("range %q runs past the largest 32-bit id", line)
	}
	return f[0], SubRange{Start: uint32(start), Count: uint32(count)}, nil
}

// ParseSubIDsFile is [ParseSubIDs] on the file at path.
func ParseSubIDsFile(path, name string, uid int) ([]SubRange, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rs, err := ParseSubIDs(f, name, uid)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	return rs, nil
}

// ParseIDMap parses the /proc/PID/uid_map (or gid_map) format: one range a
// line, "container host size" separated by blanks. It is strict, unlike
// github.com/moby/sys/user.ParseIDMap: every line must have exactly three
// 32-bit numbers, and the ranges must [IDMap.Validate]. An empty input is an
// empty map.
func ParseIDMap(r io.Reader) ([]Range, error) {
	var out []Range
	s := bufio.NewScanner(r)
	n := 1
	for ; s.Scan(); n++ {
		f := bytes.Fields(s.Bytes())
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("line %d: want 3 fields, got %d", n, len(f))
		}
		var v [3]uint32
		for i, b := range f {
			x, err := strconv.ParseUint(string(b), 10, 32)
			if err != nil {
				return nil, fmt.Errorf("line %d: field %d %q is not a 32-bit number", n, i+1, b)
			}
			v[i] = uint32(x)
		}
		if len(out) == maxMapLines {
			return nil, fmt.Errorf("line %d: more than %d ranges", n, maxMapLines)
		}
		out = append(out, Range{Container: v[0], Host: v[1], Size: v[2]})
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", n, err)
	}
	if err := validateRanges("id", out); err != nil {
		return nil, err
	}
	return out, nil
}

// ParseIDMapFile is [ParseIDMap] on the file at path.
func ParseIDMapFile(path string) ([]Range, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rs, err := ParseIDMap(f)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	return rs, nil
}

// ErrDaemonNotRunning means no rootless daemon is running: its pid file is
// missing or names a process that is gone.
var ErrDaemonNotRunning = errors.New("rootless daemon is not running")

// ErrNotUserNamespace means the process believed to be the rootless daemon
// runs in the initial user namespace, so it is not a rootless daemon (a stale
// pid file whose pid was reused, or a rootful dockerd).
var ErrNotUserNamespace = errors.New("process is not in a user namespace")

// LiveMap reads the id map of the running rootless daemon: its pid from
// <runtimeDir>/docker.pid, then <procRoot>/<pid>/uid_map and gid_map.
// procRoot is "/proc" in production. It fails with [ErrDaemonNotRunning] when
// the pid file or the process is missing and with [ErrNotUserNamespace] when
// the process maps ids one to one over the whole 32-bit space.
func LiveMap(runtimeDir, procRoot string) (IDMap, int, error) {
	pidFile := filepath.Join(runtimeDir, "docker.pid")
	b, err := os.ReadFile(pidFile)
	if errors.Is(err, fs.ErrNotExist) {
		return IDMap{}, 0, fmt.Errorf("read %s: %w", pidFile, ErrDaemonNotRunning)
	}
	if err != nil {
		return IDMap{}, 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return IDMap{}, 0, fmt.Errorf("read %s: %q is not a pid", pidFile, strings.TrimSpace(string(b)))
	}
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return IDMap{}, pid, fmt.Errorf("pid %d from %s: %w", pid, pidFile, ErrDaemonNotRunning)
	}
	uids, err := ParseIDMapFile(filepath.Join(dir, "uid_map"))
	if err != nil {
		return IDMap{}, pid, fmt.Errorf("live map of pid %d: %w", pid, err)
	}
	gids, err := ParseIDMapFile(filepath.Join(dir, "gid_map"))
	if err != nil {
		return IDMap{}, pid, fmt.Errorf("live map of pid %d: %w", pid, err)
	}
	if isInitialMap(uids) || isInitialMap(gids) {
		return IDMap{}, pid, fmt.Errorf("live map of pid %d: %w", pid, ErrNotUserNamespace)
	}
	m := IDMap{UIDs: uids, GIDs: gids}
	if len(uids) == 0 || len(gids) == 0 {
		return IDMap{}, pid, fmt.Errorf("live map of pid %d: uid_map or gid_map is empty", pid)
	}
	return m, pid, nil
}

// isInitialMap reports whether rs is the initial user namespace's map,
// "0 0 4294967295".
func isInitialMap(rs []Range) bool {
	return len(rs) == 1 && rs[0] == Range{Container: 0, Host: 0, Size: 1<<32 - 1}
}
