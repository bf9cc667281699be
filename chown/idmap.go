package chown

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
)

// Overflow is the kernel's overflow id (/proc/sys/kernel/overflowuid and
// overflowgid default to 65534). Callers map ids that fall outside an [IDMap]
// to it only when the user opts in; by default such ids are an
// [*UnmappableError].
const Overflow = 65534

// Range is one line of a uid_map or gid_map: Size ids starting at Container
// map to the ids starting at Host (container → host).
type Range struct {
	Container uint32 `json:"container"`
	Host      uint32 `json:"host"`
	Size      uint32 `json:"size"`
}

// String renders r as "container A-B → host C-D", the form used in messages.
func (r Range) String() string {
	if r.Size == 0 {
		return fmt.Sprintf("empty range at container %d → host %d", r.Container, r.Host)
	}
	if r.Size == 1 {
		return fmt.Sprintf("container %d → host %d", r.Container, r.Host)
	}
	return fmt.Sprintf("container %d-%d → host %d-%d",
		r.Container, uint64(r.Container)+uint64(r.Size)-1,
		r.Host, uint64(r.Host)+uint64(r.Size)-1)
}

// IDMap maps container ids to host ids for users (UIDs) and groups (GIDs),
// in the form of /proc/PID/uid_map and gid_map. The zero IDMap maps nothing.
type IDMap struct {
	UIDs, GIDs []Range
}

// HostUID returns the host uid of container uid c; false when m has no range
// for c.
func (m IDMap) HostUID(c uint32) (uint32, bool) { return toHost(m.UIDs, c) }

// HostGID returns the host gid of container gid c; false when m has no range
// for c.
func (m IDMap) HostGID(c uint32) (uint32, bool) { return toHost(m.GIDs, c) }

// ContainerUID returns the container uid that host uid h maps to, the inverse
// of [IDMap.HostUID]; false when no range of m covers h.
func (m IDMap) ContainerUID(h uint32) (uint32, bool) { return toContainer(m.UIDs, h) }

// ContainerGID returns the container gid that host gid h maps to, the inverse
// of [IDMap.HostGID]; false when no range of m covers h.
func (m IDMap) ContainerGID(h uint32) (uint32, bool) { return toContainer(m.GIDs, h) }

// Maps are at most 340 lines (the kernel's limit) and usually two, so a linear
// scan beats anything cleverer and allocates nothing.
func toHost(rs []Range, c uint32) (uint32, bool) {
	for _, r := range rs {
		if c >= r.Container && uint64(c-r.Container) < uint64(r.Size) {
			return r.Host + (c - r.Container), true
		}
	}
	return 0, false
}

func toContainer(rs []Range, h uint32) (uint32, bool) {
	for _, r := range rs {
		if h >= r.Host && uint64(h-r.Host) < uint64(r.Size) {
			return r.Container + (h - r.Host), true
		}
	}
	return 0, false
}

// Validate reports whether m is a map the kernel would accept: every range has
// a size above zero and does not run past the largest 32-bit id, and no two
// ranges of the same kind overlap on the container side or on the host side.
// It does not require any range to be present.
func (m IDMap) Validate() error {
	return errors.Join(validateRanges("uid", m.UIDs), validateRanges("gid", m.GIDs))
}

// maxIDs bounds the end (first+count) of a range: ids run from 0 to 2^32-2,
// since 2^32-1 is the invalid id (-1). The kernel refuses a range whose end
// wraps, so the initial namespace's "0 0 4294967295" is the widest map.
const maxIDs = 1<<32 - 1

func validateRanges(kind string, rs []Range) error {
	var errs []error
	for i, r := range rs {
		if r.Size == 0 {
			errs = append(errs, fmt.Errorf("%s range %d (%s): size is zero", kind, i+1, r))
			continue
		}
		if uint64(r.Container)+uint64(r.Size) > maxIDs {
			errs = append(errs, fmt.Errorf("%s range %d (%s): container ids overflow 32 bits", kind, i+1, r))
		}
		if uint64(r.Host)+uint64(r.Size) > maxIDs {
			errs = append(errs, fmt.Errorf("%s range %d (%s): host ids overflow 32 bits", kind, i+1, r))
		}
	}
	for i := range rs {
		for j := i + 1; j < len(rs); j++ {
			a, b := rs[i], rs[j]
			if a.Size == 0 || b.Size == 0 {
				continue
			}
			if overlaps(a.Container, a.Size, b.Container, b.Size) {
				errs = append(errs, fmt.Errorf("%s ranges %d (%s) and %d (%s) overlap on the container side", kind, i+1, a, j+1, b))
			}
			if overlaps(a.Host, a.Size, b.Host, b.Size) {
				errs = append(errs, fmt.Errorf("%s ranges %d (%s) and %d (%s) overlap on the host side", kind, i+1, a, j+1, b))
			}
		}
	}
	return errors.Join(errs...)
}

func overlaps(a, an, b, bn uint32) bool {
	return uint64(a) < uint64(b)+uint64(bn) && uint64(b) < uint64(a)+uint64(an)
}

// SubRange is one /etc/subuid or /etc/subgid range of a user: Count ids
// starting at Start.
type SubRange struct {
	Start, Count uint32
}

// ErrNoSubIDs means a user has no subordinate id range, so no rootless map
// beyond its own id can be built.
var ErrNoSubIDs = errors.New("no subordinate id range")

// RootlessMap returns the map a rootless dockerd of the user with host uid and
// gid runs under: container 0 maps to uid (gid), and container ids from 1 on
// map to the subordinate ranges concatenated in file order, the way
// rootlesskit calls newuidmap: the first range maps container 1..Count, the
// next continues right after it. This is not userns-remap's start+n.
//
// It fails with [ErrNoSubIDs] when subuids or subgids is empty and when the
// resulting map does not [IDMap.Validate] (for example when the user's own id
// lies inside one of its subordinate ranges).
func RootlessMap(uid, gid uint32, subuids, subgids []SubRange) (IDMap, error) {
	uids, err := rootlessRanges("uid", uid, subuids)
	if err != nil {
		return IDMap{}, err
	}
	gids, err := rootlessRanges("gid", gid, subgids)
	if err != nil {
		return IDMap{}, err
	}
	m := IDMap{UIDs: uids, GIDs: gids}
	if err := m.Validate(); err != nil {
		return IDMap{}, fmt.Errorf("rootless map: %w", err)
	}
	return m, nil
}

func rootlessRanges(kind string, own uint32, subs []SubRange) ([]Range, error) {
	if len(subs) == 0 {
		return nil, fmt.Errorf("rootless %s map: %w", kind, ErrNoSubIDs)
	}
	rs := make([]Range, 0, 1+len(subs))
	rs = append(rs, Range{Container: 0, Host: own, Size: 1})
	next := uint64(1)
	for i, s := range subs {
		if s.Count == 0 {
			return nil, fmt.Errorf("rootless %s map: subordinate range %d starting at %d is empty", kind, i+1, s.Start)
		}
		if next+uint64(s.Count) > maxIDs {
			return nil, fmt.Errorf("rootless %s map: subordinate ranges hold more ids than a 32-bit map can", kind)
		}
		rs = append(rs, Range{Container: uint32(next), Host: s.Start, Size: s.Count})
		next += uint64(s.Count)
	}
	return rs, nil
}

// DiffMaps describes how the map of the running daemon (live) differs from
// the one computed from /etc/subuid and /etc/subgid (fromFiles), one lowercase
// sentence per difference; it returns nil when both map every id the same
// way. Ranges are compared after sorting and merging adjacent ranges, so two
// spellings of the same mapping are equal.
func DiffMaps(live, fromFiles IDMap) []string {
	var out []string
	out = append(out, diffRanges("uid", live.UIDs, fromFiles.UIDs)...)
	out = append(out, diffRanges("gid", live.GIDs, fromFiles.GIDs)...)
	return out
}

func diffRanges(kind string, live, files []Range) []string {
	l, f := normalize(live), normalize(files)
	var out []string
	for i := 0; i < max(len(l), len(f)); i++ {
		switch {
		case i >= len(l):
			out = append(out, fmt.Sprintf("%s range %s is in the subordinate id files but not in the live map", kind, f[i]))
		case i >= len(f):
			out = append(out, fmt.Sprintf("%s range %s is in the live map but not in the subordinate id files", kind, l[i]))
		case l[i] != f[i]:
			out = append(out, fmt.Sprintf("%s range %d differs: the live map has %s, the subordinate id files give %s", kind, i+1, l[i], f[i]))
		}
	}
	return out
}

// normalize sorts rs by container id and merges ranges that continue each
// other on both sides, dropping empty ones.
func normalize(rs []Range) []Range {
	out := make([]Range, 0, len(rs))
	for _, r := range rs {
		if r.Size > 0 {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b Range) int { return cmp.Compare(a.Container, b.Container) })
	merged := out[:0]
	for _, r := range out {
		if n := len(merged); n > 0 {
			p := &merged[n-1]
			if uint64(p.Container)+uint64(p.Size) == uint64(r.Container) &&
				uint64(p.Host)+uint64(p.Size) == uint64(r.Host) &&
				uint64(p.Size)+uint64(r.Size) < maxIDs {
				p.Size += r.Size
				continue
			}
		}
		merged = append(merged, r)
	}
	return merged
}

// UnmappableError reports an id that has no mapping, for example a container
// uid beyond the user's subordinate range. Kind is "uid" or "gid".
type UnmappableError struct {
	Kind string
	ID   uint32
}

// Error implements error.
func (e *UnmappableError) Error() string {
	return fmt.Sprintf("%s %d cannot be mapped", e.Kind, e.ID)
}

// Hint says how to get past the error.
func (e *UnmappableError) Hint() string {
	file := "/etc/subuid"
	if e.Kind == "gid" {
		file = "/etc/subgid"
	}
	return fmt.Sprintf("widen the user's %s range so it covers %s %d, or opt in to mapping unmappable ids to the overflow id %d",
		file, e.Kind, e.ID, Overflow)
}
