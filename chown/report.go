package chown

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Report is what a walk found and, for Shift, Reverse and Copy, did. Counts
// are of inodes except Hardlinks (further links to an inode already counted)
// and the Examples, which are relative paths, at most 10 per category. It
// holds aggregates only, so its size does not grow with the tree.
type Report struct {
	Root string `json:"root"`

	Files            int64 `json:"files"`
	Dirs             int64 `json:"dirs"`
	Symlinks         int64 `json:"symlinks"`
	Hardlinks        int64 `json:"hardlinks"`
	Bytes            int64 `json:"bytes"`
	Setuid           int64 `json:"setuid"`
	Setgid           int64 `json:"setgid"`
	Caps             int64 `json:"caps"`
	ACLs             int64 `json:"acls"`
	Devices          int64 `json:"devices"`
	FIFOs            int64 `json:"fifos"`
	Sockets          int64 `json:"sockets"`
	EscapingSymlinks int64 `json:"escaping_symlinks"`
	// ExternalHardlinks counts inodes with links outside the tree: shifting
	// them changes the owner seen through those links too.
	ExternalHardlinks int64 `json:"external_hardlinks"`
	// MalformedXattrs counts inodes whose ACL or capability xattr does not
	// decode; they block Shift and Copy.
	MalformedXattrs int64 `json:"malformed_xattrs"`
	// UnmappableEntries counts inodes with at least one id in Unmappable.
	UnmappableEntries int64 `json:"unmappable_entries"`
	// Mounts lists mount points below the root (relative paths, at most
	// 100); the walk does not enter them.
	Mounts []string `json:"mounts"`
	// Owners aggregates the owner changes the map implies, sorted.
	Owners []OwnerChange `json:"owners"`
	// OwnersTruncated is set when the tree has more distinct owners than the
	// report keeps; the rest are not listed.
	OwnersTruncated bool `json:"owners_truncated,omitempty"`
	// Unmappable lists the ids the map has no range for, sorted by kind and
	// id.
	Unmappable []UnmappableID `json:"unmappable"`
	// Examples holds up to 10 relative paths per category: setuid, setgid,
	// caps, acls, devices, fifos, sockets, escaping_symlinks, hardlinks,
	// external_hardlinks, malformed_xattrs, and for Reverse mismatched.
	Examples map[string][]string `json:"examples"`

	// Changed counts the inodes Shift, Reverse or Copy wrote.
	Changed int64 `json:"changed"`
	// Undone counts the inodes a refused Shift had changed before it met
	// what blocks it, and put back.
	Undone int64 `json:"undone,omitempty"`
	// Unchanged counts the files Copy with Update left as they were.
	Unchanged int64 `json:"unchanged,omitempty"`
	// Removed counts the dst entries Copy with Update removed.
	Removed int64 `json:"removed,omitempty"`
	// Mismatched counts journal records Reverse skipped because the path no
	// longer names the inode that was shifted.
	Mismatched int64 `json:"mismatched,omitempty"`
	// DroppedXattrs counts xattrs (other than ACLs and capabilities) that the
	// destination filesystem refused during Copy.
	DroppedXattrs int64 `json:"dropped_xattrs,omitempty"`
	// Resumed is set when Shift continued an interrupted run.
	Resumed bool `json:"resumed,omitempty"`
	// AlreadyDone is set when Shift found the tree shifted (or Reverse found
	// it reversed) by an earlier run and did nothing.
	AlreadyDone bool `json:"already_done,omitempty"`
}

// OwnerChange is Count inodes owned by FromUID:FromGID that are written as
// ToUID:ToGID.
type OwnerChange struct {
	FromUID uint32 `json:"from_uid"`
	FromGID uint32 `json:"from_gid"`
	ToUID   uint32 `json:"to_uid"`
	ToGID   uint32 `json:"to_gid"`
	Count   int64  `json:"count"`
}

// UnmappableID is an id of Kind "uid", "gid" (owners and ACL entries) or
// "cap_rootid" (the root id of a v3 capability) that the map cannot send
// anywhere, met Count times, with up to 10 example paths.
type UnmappableID struct {
	Kind     string   `json:"kind"`
	ID       uint32   `json:"id"`
	Count    int64    `json:"count"`
	Examples []string `json:"examples"`
}

// Limits that keep a report small whatever the tree.
const (
	maxOwners     = 4096
	maxUnmappable = 1024
	maxMounts     = 100
)

// Blocking counts the entries that stop Shift and Copy under opts: entries
// with unmappable ids (unless mapped to the overflow id), malformed xattrs,
// device nodes (unless skipped) and files hardlinked outside the tree
// (always). Nil when nothing blocks.
func (r *Report) Blocking(opts Options) *BlockedError {
	var unm int64
	if !opts.MapUnmappableToOverflow {
		unm = r.UnmappableEntries
	}
	unm += r.MalformedXattrs
	var dev int64
	if !opts.AllowDevices {
		dev = r.Devices
	}
	if unm == 0 && dev == 0 && r.ExternalHardlinks == 0 {
		return nil
	}
	return &BlockedError{Root: r.Root, Unmappable: unm, Devices: dev, ExternalHardlinks: r.ExternalHardlinks}
}

// collector gathers a report from concurrent workers: counters are atomic,
// the aggregates sit behind one mutex taken once per entry that has any.
type collector struct {
	files, dirs, symlinks, hardlinks, bytes atomic.Int64
	setuid, setgid, caps, acls              atomic.Int64
	devices, fifos, sockets, escaping       atomic.Int64
	externalLinks, malformed                atomic.Int64
	changed, unchanged, removed, mismatched atomic.Int64
	dropped, unmEntries                     atomic.Int64

	mu        sync.Mutex
	owners    map[[4]uint32]int64
	truncated bool
	unm       map[unmKey]*UnmappableID
	examples  map[string][]string
	mounts    []string
}

type unmKey struct {
	kind string
	id   uint32
}

func newCollector() *collector {
	return &collector{owners: make(map[[4]uint32]int64), unm: make(map[unmKey]*UnmappableID),
		examples: make(map[string][]string)}
}

func (c *collector) example(cat, rel string) {
	c.mu.Lock()
	c.exampleLocked(cat, rel)
	c.mu.Unlock()
}

func (c *collector) exampleLocked(cat, rel string) {
	if len(c.examples[cat]) < maxExamples {
		c.examples[cat] = append(c.examples[cat], rel)
	}
}

func (c *collector) mount(rel string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.mounts) < maxMounts {
		c.mounts = append(c.mounts, rel)
	}
}

// add counts e by type and accounts for its owner change.
func (c *collector) add(e *entry, w *walker) {
	if e.dup {
		c.hardlinks.Add(1)
		c.example("hardlinks", e.rel)
		return
	}
	var cats []string
	switch e.typ {
	case unix.S_IFREG:
		c.files.Add(1)
		c.bytes.Add(e.size)
	case unix.S_IFDIR:
		c.dirs.Add(1)
	case unix.S_IFLNK:
		c.symlinks.Add(1)
		if escapes(e.rel, e.target) {
			c.escaping.Add(1)
			cats = append(cats, "escaping_symlinks")
		}
	case unix.S_IFCHR, unix.S_IFBLK:
		c.devices.Add(1)
		c.example("devices", e.rel)
		return // never shifted: no owner change to report
	case unix.S_IFIFO:
		c.fifos.Add(1)
		cats = append(cats, "fifos")
	case unix.S_IFSOCK:
		c.sockets.Add(1)
		cats = append(cats, "sockets")
	}
	if e.typ != unix.S_IFDIR && e.typ != unix.S_IFLNK {
		if e.mode&unix.S_ISUID != 0 {
			c.setuid.Add(1)
			cats = append(cats, "setuid")
		}
		if e.mode&unix.S_ISGID != 0 {
			c.setgid.Add(1)
			cats = append(cats, "setgid")
		}
	}
	if e.caps != nil {
		c.caps.Add(1)
		cats = append(cats, "caps")
	}
	if e.aclAccess != nil || e.aclDefault != nil {
		c.acls.Add(1)
		cats = append(cats, "acls")
	}
	k := [4]uint32{e.uid, e.gid, e.newUID, e.newGID}
	c.mu.Lock()
	if _, ok := c.owners[k]; ok || len(c.owners) < maxOwners {
		c.owners[k]++
	} else {
		c.truncated = true
	}
	for _, cat := range cats {
		c.exampleLocked(cat, e.rel)
	}
	c.mu.Unlock()
}

func (c *collector) unmappable(rel string, ids []UnmappableError) {
	if len(ids) == 0 {
		return
	}
	c.unmEntries.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, u := range ids {
		k := unmKey{u.Kind, u.ID}
		x, ok := c.unm[k]
		if !ok {
			if len(c.unm) >= maxUnmappable {
				continue
			}
			x = &UnmappableID{Kind: u.Kind, ID: u.ID}
			c.unm[k] = x
		}
		x.Count++
		if len(x.Examples) < maxExamples && !slices.Contains(x.Examples, rel) {
			x.Examples = append(x.Examples, rel)
		}
	}
}

// report renders the collected state.
func (c *collector) report(root string) *Report {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := &Report{
		Root:  root,
		Files: c.files.Load(), Dirs: c.dirs.Load(), Symlinks: c.symlinks.Load(), Hardlinks: c.hardlinks.Load(),
		Bytes: c.bytes.Load(), Setuid: c.setuid.Load(), Setgid: c.setgid.Load(), Caps: c.caps.Load(),
		ACLs: c.acls.Load(), Devices: c.devices.Load(), FIFOs: c.fifos.Load(), Sockets: c.sockets.Load(),
		EscapingSymlinks: c.escaping.Load(), ExternalHardlinks: c.externalLinks.Load(),
		MalformedXattrs: c.malformed.Load(), Changed: c.changed.Load(), Unchanged: c.unchanged.Load(),
		Removed: c.removed.Load(), Mismatched: c.mismatched.Load(), DroppedXattrs: c.dropped.Load(),
		OwnersTruncated:   c.truncated,
		Mounts:            slices.Sorted(slices.Values(c.mounts)),
		Examples:          make(map[string][]string, len(c.examples)),
		Owners:            []OwnerChange{},
		Unmappable:        []UnmappableID{},
		UnmappableEntries: c.unmEntries.Load(),
	}
	if r.Mounts == nil {
		r.Mounts = []string{}
	}
	for k, v := range c.examples {
		s := slices.Clone(v)
		slices.Sort(s)
		r.Examples[k] = s
	}
	for k, n := range c.owners {
		r.Owners = append(r.Owners, OwnerChange{FromUID: k[0], FromGID: k[1], ToUID: k[2], ToGID: k[3], Count: n})
	}
	slices.SortFunc(r.Owners, func(a, b OwnerChange) int {
		return cmp.Or(cmp.Compare(a.FromUID, b.FromUID), cmp.Compare(a.FromGID, b.FromGID),
			cmp.Compare(a.ToUID, b.ToUID), cmp.Compare(a.ToGID, b.ToGID))
	})
	for _, x := range c.unm {
		u := *x
		u.Examples = slices.Sorted(slices.Values(x.Examples))
		r.Unmappable = append(r.Unmappable, u)
	}
	slices.SortFunc(r.Unmappable, func(a, b UnmappableID) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.ID, b.ID))
	})
	return r
}

// WriteText writes r for a person: counts, then what needs attention
// (device nodes, mount points, escaping symlinks, external hardlinks,
// unmappable ids) with example paths, then the owner changes.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("  %d files (%s), %d directories, %d symlinks, %d further hardlinks\n",
		r.Files, HumanBytes(r.Bytes), r.Dirs, r.Symlinks, r.Hardlinks)
	p("  %d setuid, %d setgid, %d with capabilities, %d with ACLs, %d fifos, %d sockets\n",
		r.Setuid, r.Setgid, r.Caps, r.ACLs, r.FIFOs, r.Sockets)
	ex := func(cat string) string {
		if len(r.Examples[cat]) == 0 {
			return ""
		}
		return ": " + strings.Join(quoteAll(r.Examples[cat]), ", ")
	}
	if r.Devices > 0 {
		p("  %d device nodes, never shifted%s\n", r.Devices, ex("devices"))
	}
	if len(r.Mounts) > 0 {
		p("  mount points below, not entered: %s\n", strings.Join(quoteAll(r.Mounts), ", "))
	}
	if r.EscapingSymlinks > 0 {
		p("  %d symlinks point outside the tree (kept, never followed)%s\n", r.EscapingSymlinks, ex("escaping_symlinks"))
	}
	if r.ExternalHardlinks > 0 {
		p("  %d files have hardlinks outside the tree, which change with them%s\n", r.ExternalHardlinks, ex("external_hardlinks"))
	}
	if r.MalformedXattrs > 0 {
		p("  %d malformed ACL or capability xattrs%s\n", r.MalformedXattrs, ex("malformed_xattrs"))
	}
	if len(r.Unmappable) > 0 {
		p("  %d entries with ids outside the map:\n", r.UnmappableEntries)
		for _, u := range r.Unmappable {
			p("    %s %d: %d, e.g. %s\n", u.Kind, u.ID, u.Count, strings.Join(quoteAll(u.Examples), ", "))
		}
	}
	if len(r.Owners) > 0 {
		p("  owners (from → to: entries):\n")
		for _, o := range r.Owners {
			p("    %d:%d → %d:%d: %d\n", o.FromUID, o.FromGID, o.ToUID, o.ToGID, o.Count)
		}
		if r.OwnersTruncated {
			p("    … more owners not listed\n")
		}
	}
	switch {
	case r.AlreadyDone:
		p("  already done by an earlier run; nothing changed\n")
	case r.Undone > 0:
		p("  refused: the %d entries changed before the blocker was met were put back\n", r.Undone)
	case r.Changed > 0 || r.Removed > 0 || r.Mismatched > 0:
		p("  changed %d", r.Changed)
		if r.Unchanged > 0 || r.Removed > 0 {
			p(", unchanged %d, removed %d", r.Unchanged, r.Removed)
		}
		if r.Mismatched > 0 {
			p(", skipped %d paths that no longer name the shifted inode%s", r.Mismatched, ex("mismatched"))
		}
		if r.Resumed {
			p(" (resumed an interrupted run)")
		}
		p("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func quoteAll(s []string) []string {
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = strconv.Quote(x)
	}
	return out
}

// HumanBytes formats n bytes with a binary unit, e.g. "1.5 MiB": the one
// formatter of the plan, the progress lines and the reports.
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
