package chown

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// Options configure [Audit], [Shift], [Reverse] and [Copy].
type Options struct {
	// Map sends the ids found in the tree (container ids of the rootful
	// source, which are host ids there) to the ids to write. Required.
	Map IDMap
	// MapUnmappableToOverflow writes [Overflow] (65534) for ids Map has no
	// range for. Without it such ids make Shift and Copy fail with
	// [ErrUnmappable].
	MapUnmappableToOverflow bool
	// AllowDevices makes Shift and Copy skip device nodes (they are never
	// shifted nor copied, only reported). Without it a device node makes them
	// fail with [ErrDeviceNode].
	AllowDevices bool
	// Workers bounds the directories walked in parallel; 0 means
	// 4 × runtime.NumCPU(): more directories in flight than cores lets
	// one worker's journal sync or disk read overlap the others' work and
	// lets one journal sync cover several directories' records.
	Workers int
	// JournalDir is where Shift keeps the journal that makes it resumable and
	// [Reverse] able to undo it. Required for Shift and Reverse; one directory
	// per tree.
	JournalDir string
	// Update makes Copy a delta sync into an existing dst: files whose size,
	// mtime, mode and (shifted) owner already match are not rewritten, and
	// dst entries that no longer exist in src are removed.
	Update bool
	// Progress, when set, is called from the workers with running totals of
	// the entries (files, directories and symlinks) and bytes walked. It
	// must be cheap and safe for concurrent use.
	Progress func(entries, bytes int64)

	// beforeLinks, when set, runs once between Shift's walk and its deferred
	// pass over multi-link inodes; tests use it to change the tree there.
	beforeLinks func()

	// afterApply, when set, runs (concurrently, from the workers) after each
	// inode a Shift changes; tests use it to simulate a crash midway.
	afterApply func() error
}

// Errors a caller branches on. The error of a blocked run wraps one or more.
var (
	// ErrUnmappable means the tree holds ids (owners, ACL entries, the root
	// id of v3 capabilities) that the map cannot send anywhere, and
	// [Options.MapUnmappableToOverflow] is not set.
	ErrUnmappable = errors.New("ids without a mapping")
	// ErrDeviceNode means the tree holds device nodes and
	// [Options.AllowDevices] is not set.
	ErrDeviceNode = errors.New("device nodes in the tree")
	// ErrExternalHardlinks means the tree holds files with hardlinks outside
	// it: shifting them would give the outside files away, copying them would
	// hand their content to the target user. There is no option to allow it.
	ErrExternalHardlinks = errors.New("files hardlinked to paths outside the tree")
	// ErrNotEmpty means Copy's destination exists and is not empty, and
	// [Options.Update] is not set.
	ErrNotEmpty = errors.New("destination is not empty")
)

// BlockedError is returned, with the census of the refused walk, when a
// tree holds entries that the options do not allow to shift or copy. It
// wraps [ErrUnmappable], [ErrDeviceNode] and [ErrExternalHardlinks] as they
// apply.
type BlockedError struct {
	Root              string
	Unmappable        int64 // entries with at least one unmappable id
	Devices           int64
	ExternalHardlinks int64 // inodes with links outside the tree
}

// Error implements error.
func (e *BlockedError) Error() string {
	var parts []string
	if e.Unmappable > 0 {
		parts = append(parts, fmt.Sprintf("%d entries with unmappable ids", e.Unmappable))
	}
	if e.Devices > 0 {
		parts = append(parts, fmt.Sprintf("%d device nodes", e.Devices))
	}
	if e.ExternalHardlinks > 0 {
		parts = append(parts, fmt.Sprintf("%d files hardlinked to paths outside it", e.ExternalHardlinks))
	}
	return e.Root + ": " + strings.Join(parts, " and ")
}

// Unwrap lets errors.Is find [ErrUnmappable], [ErrDeviceNode] and
// [ErrExternalHardlinks].
func (e *BlockedError) Unwrap() []error {
	var errs []error
	if e.Unmappable > 0 {
		errs = append(errs, ErrUnmappable)
	}
	if e.Devices > 0 {
		errs = append(errs, ErrDeviceNode)
	}
	if e.ExternalHardlinks > 0 {
		errs = append(errs, ErrExternalHardlinks)
	}
	return errs
}

// Hint says how to get past the error.
func (e *BlockedError) Hint() string {
	var hints []string
	if e.Unmappable > 0 {
		hints = append(hints, "widen the user's subordinate id range (/etc/subuid, /etc/subgid) or opt in to mapping unmappable ids to 65534")
	}
	if e.Devices > 0 {
		hints = append(hints, "remove the device nodes (a rootless daemon cannot use them) or opt in to skipping them")
	}
	if e.ExternalHardlinks > 0 {
		hints = append(hints, "remove the extra links (find PATH -type f -links +1) or replace them with copies, so that no file shares an inode with a file outside the tree")
	}
	return strings.Join(hints, "; ")
}

// TreeChangedError means something else wrote the tree while Shift ran: a
// multi-link file, changed only after the whole tree was seen, is no longer
// the inode the walk counted. Shift stops before changing it; the journal
// keeps what was changed, so running Shift again resumes (and re-counts the
// links), and [Reverse] puts it back.
type TreeChangedError struct {
	Path string // relative to the root
	What string
}

// Error implements error.
func (e *TreeChangedError) Error() string {
	return e.Path + ": " + e.What + " while the tree was walked"
}

// Hint says how to get past the error.
func (e *TreeChangedError) Hint() string {
	return "something writes the tree: stop every container and process that uses it, then run the same command again (it resumes from the journal), or reverse what was changed"
}

// mode is what a walk does to the entries it meets.
type mode int

const (
	modeAudit mode = iota
	modeShift
	modeCopy
)

// entry is one directory entry as the walker saw it, with what will be
// written for it.
type entry struct {
	name string // "" for the directory a dirState walks
	rel  string // path below the root, "." for the root

	typ          uint32 // S_IFMT bits
	mode         uint32 // st_mode
	uid, gid     uint32
	nlink        uint32
	dev, ino     uint64
	mnt          uint64
	size, blocks int64
	atime, mtime unix.Timespec

	dup    bool   // a further link to an inode met before
	target string // symlink target

	// xattrs that carry ids, nil when absent
	aclAccess, aclDefault, caps []byte
	// every other xattr, read only when copying
	others []xattr

	// what to write
	newUID, newGID                       uint32
	newACLAccess, newACLDefault, newCaps []byte
	blocked                              bool // an unmappable id and no overflow
	changes                              bool // the inode needs writing
	resumed                              bool // taken from the journal of an interrupted shift
}

type xattr struct {
	name  string
	value []byte
}

func (e *entry) isDir() bool { return e.typ == unix.S_IFDIR }

// dirState is one directory being walked: its fd, its own entry and the
// count of work (itself, its subdirectories) still pending below it.
type dirState struct {
	fd      int
	self    *entry
	parent  *dirState
	pending atomic.Int64

	dstFd    int                 // Copy: the directory in dst
	srcNames map[string]struct{} // Copy with Update: names met in src
}

// handler is what a mode does with what the walker classified.
type handler interface {
	// entries handles a batch of d's entries, subdirectories excluded;
	// d.self is in the first batch of every directory.
	entries(w *walker, d *dirState, es []*entry) error
	// enterDir runs before d's entries are read (Copy creates dst dirs).
	enterDir(w *walker, d *dirState) error
	// listed runs when all of d's entries have been handled, before its
	// subdirectories are walked.
	listed(w *walker, d *dirState) error
	// leaveDir runs once d and everything below it is done.
	leaveDir(w *walker, d *dirState) error
	// closeDir releases what enterDir acquired; it runs even after errors.
	closeDir(d *dirState)
}

// walker walks one tree by file descriptor.
type walker struct {
	ctx    context.Context
	opts   *Options
	mode   mode
	h      handler
	root   string
	rootFd int
	rootSt entry
	g      *errgroup.Group
	failed atomic.Bool

	rep   *collector
	links *linkSet

	allXattrs bool          // read every xattr (Copy)
	resume    *journalIndex // Shift: the journal of an interrupted run
	noOpenat2 atomic.Bool
}

const (
	// workersPerCPU × runtime.NumCPU() is the default of Options.Workers:
	// on ext4 a shift of a 20k-file tree took 0.27 s with 2 workers, 0.15 s
	// with 8 (journal syncs overlap); on tmpfs 8 are as fast as 2 or faster.
	workersPerCPU = 4
	batchMax      = 256
	direntBuf     = 32 << 10
	maxExamples   = 10
)

var direntPool = sync.Pool{New: func() any { b := make([]byte, direntBuf); return &b }}

// openRoot opens the root of a walk: a real directory, not a symlink, with
// O_NOATIME so that reading it leaves no trace.
func openRoot(root string) (int, error) {
	flags := unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Open(root, flags|unix.O_NOATIME, 0)
	if errors.Is(err, unix.EPERM) {
		fd, err = unix.Open(root, flags, 0)
	}
	switch {
	case errors.Is(err, unix.ELOOP):
		return -1, fmt.Errorf("open %s: is a symlink; give the real directory", root)
	case errors.Is(err, unix.ENOTDIR):
		return -1, fmt.Errorf("open %s: not a directory", root)
	case err != nil:
		return -1, fmt.Errorf("open %s: %w", root, err)
	}
	return fd, nil
}

func newWalker(ctx context.Context, root string, opts *Options, m mode, h handler) (*walker, error) {
	if len(opts.Map.UIDs) == 0 || len(opts.Map.GIDs) == 0 {
		return nil, errors.New("chown: options carry no id map")
	}
	if err := unix.Stat("/proc/self/fd", &unix.Stat_t{}); err != nil {
		return nil, fmt.Errorf("chown needs /proc mounted: %w", err)
	}
	fd, err := openRoot(root)
	if err != nil {
		return nil, err
	}
	w := &walker{ctx: ctx, opts: opts, mode: m, h: h, root: root, rootFd: fd,
		rep: newCollector(), links: newLinkSet(), allXattrs: m == modeCopy}
	if err := w.statAt(fd, "", unix.AT_EMPTY_PATH, &w.rootSt); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("stat %s: %w", root, err)
	}
	w.rootSt.rel = "."
	return w, nil
}

func (w *walker) close() { unix.Close(w.rootFd) }

// statAt fills e from statx(dirfd, name) without following a symlink.
func (w *walker) statAt(dirfd int, name string, flags int, e *entry) error {
	var st unix.Statx_t
	mask := unix.STATX_BASIC_STATS | unix.STATX_MNT_ID
	if err := statx(dirfd, name, flags|unix.AT_SYMLINK_NOFOLLOW|unix.AT_STATX_DONT_SYNC, mask, &st); err != nil {
		return err
	}
	e.typ = uint32(st.Mode) & unix.S_IFMT
	e.mode = uint32(st.Mode)
	e.uid, e.gid, e.nlink = st.Uid, st.Gid, st.Nlink
	e.dev = unix.Mkdev(st.Dev_major, st.Dev_minor)
	e.ino = st.Ino
	if st.Mask&unix.STATX_MNT_ID != 0 {
		e.mnt = st.Mnt_id
	}
	e.size, e.blocks = int64(st.Size), int64(st.Blocks)
	e.atime = unix.Timespec{Sec: st.Atime.Sec, Nsec: int64(st.Atime.Nsec)}
	e.mtime = unix.Timespec{Sec: st.Mtime.Sec, Nsec: int64(st.Mtime.Nsec)}
	if st.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT != 0 && st.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0 && flags&unix.AT_EMPTY_PATH == 0 {
		e.mnt = ^uint64(0) // a mount root below the tree, whatever its id
	}
	return nil
}

// isMount reports whether e (statted through its parent) lies on another
// mount than the root: a mount point, a bind-mounted file or directory.
func (w *walker) isMount(e *entry) bool {
	return e.dev != w.rootSt.dev || (e.mnt != 0 && w.rootSt.mnt != 0 && e.mnt != w.rootSt.mnt)
}

// openDir opens the subdirectory name of dirfd without following symlinks
// and without crossing a mount; errMount when name is a mount point.
func (w *walker) openDir(dirfd int, name string) (int, error) {
	flags := uint64(unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC)
	if !w.noOpenat2.Load() {
		how := unix.OpenHow{Flags: flags | unix.O_NOATIME,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_XDEV | unix.RESOLVE_NO_MAGICLINKS}
		fd, err := unix.Openat2(dirfd, name, &how)
		if errors.Is(err, unix.EPERM) {
			how.Flags = flags
			fd, err = unix.Openat2(dirfd, name, &how)
		}
		switch {
		case err == nil:
			return fd, nil
		case errors.Is(err, unix.EXDEV):
			return -1, errMount
		case errors.Is(err, unix.ENOSYS):
			w.noOpenat2.Store(true)
		default:
			return -1, err
		}
	}
	fd, err := unix.Openat(dirfd, name, int(flags)|unix.O_NOATIME, 0)
	if errors.Is(err, unix.EPERM) {
		fd, err = unix.Openat(dirfd, name, int(flags), 0)
	}
	return fd, err
}

var errMount = errors.New("mount point")

// procPath names name in the directory open as dirfd through /proc, so that
// path-based syscalls (the l*xattr family) resolve no component but the last,
// which they do not follow.
func procPath(dirfd int, name string) string {
	if name == "" {
		return "/proc/self/fd/" + strconv.Itoa(dirfd)
	}
	return "/proc/self/fd/" + strconv.Itoa(dirfd) + "/" + name
}

// readXattrs fills e's xattrs from name in the directory open as fd, or from
// the directory itself when name is "".
func (w *walker) readXattrs(fd int, name string, e *entry) error {
	var names []string
	var err error
	if name == "" {
		names, err = FListXattrs(fd)
	} else if ns, ok, aerr := listXattrsAt(fd, name); ok {
		names, err = ns, aerr
		if err != nil {
			err = &fs.PathError{Op: "listxattrat", Path: name, Err: err}
		}
	} else {
		names, err = ListXattrs(procPath(fd, name))
	}
	if err != nil || len(names) == 0 {
		return err
	}
	for _, n := range names {
		interesting := n == XattrACLAccess || n == XattrACLDefault || n == XattrCapability
		if !interesting && !w.allXattrs {
			continue
		}
		var v []byte
		if name == "" {
			v, err = FGetXattr(fd, n)
		} else if av, ok, aerr := getXattrAt(fd, name, n); ok {
			v, err = av, aerr
			if err != nil {
				err = &fs.PathError{Op: "getxattrat " + n, Path: name, Err: err}
			}
		} else {
			v, err = GetXattr(procPath(fd, name), n)
		}
		if errors.Is(err, ErrNoXattr) {
			continue // removed between list and get
		}
		if err != nil {
			return err
		}
		switch n {
		case XattrACLAccess:
			e.aclAccess = v
		case XattrACLDefault:
			e.aclDefault = v
		case XattrCapability:
			e.caps = v
		default:
			e.others = append(e.others, xattr{n, v})
		}
	}
	return nil
}

// classify stats name in d into the zeroed e and reads what the walk needs
// of it; false for an entry gone since readdir and for a mount point
// (reported, not entered).
func (w *walker) classify(d *dirState, name string, e *entry) (bool, error) {
	e.name, e.rel = name, join(d.self.rel, name)
	if err := w.statAt(d.fd, name, 0, e); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil // gone since readdir
		}
		return false, fmt.Errorf("stat %s: %w", e.rel, err)
	}
	if w.isMount(e) {
		w.rep.mount(e.rel)
		return false, nil
	}
	switch e.typ {
	case unix.S_IFDIR:
		return true, nil // its xattrs are read through its own fd
	case unix.S_IFLNK:
		t, err := readlinkat(d.fd, name)
		if err != nil {
			return false, fmt.Errorf("readlink %s: %w", e.rel, err)
		}
		e.target = t
	case unix.S_IFCHR, unix.S_IFBLK:
		return true, nil // never touched beyond stat
	}
	if e.nlink > 1 {
		e.dup = w.links.seen(e)
	}
	if !e.dup {
		if err := w.readXattrs(d.fd, name, e); err != nil {
			return false, fmt.Errorf("xattrs of %s: %w", e.rel, err)
		}
	}
	return true, nil
}

// entrySlab holds the entries of one batch. The handlers keep no pointer to
// an entry once its batch is flushed, so a directory's batches reuse one
// slab and the walk allocates no entry per file (subdirectories excepted:
// they outlive the batch).
type entrySlab struct {
	es   [batchMax]entry
	n    int // slots in the current batch
	used int // slots written since the slab left the pool
}

var slabPool = sync.Pool{New: func() any { return new(entrySlab) }}

// next returns a zeroed slot, not yet part of the batch.
func (s *entrySlab) next() *entry {
	e := &s.es[s.n]
	*e = entry{}
	s.used = max(s.used, s.n+1)
	return e
}

// release drops what the slab's entries reference and pools it.
func (s *entrySlab) release() {
	clear(s.es[:s.used])
	s.n, s.used = 0, 0
	slabPool.Put(s)
}

func readlinkat(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

func join(dir, name string) string {
	if dir == "." {
		return name
	}
	return dir + "/" + name
}

// escapes reports whether a symlink at rel with target t points outside the
// tree: absolute, or relative with enough ".." to climb above the root.
func escapes(rel, t string) bool {
	if path.IsAbs(t) {
		return true
	}
	p := path.Join(path.Dir(rel), t)
	return p == ".." || len(p) > 2 && p[:3] == "../"
}

// plan decides what to write for e and accounts for it in the report.
func (w *walker) plan(e *entry) error {
	if err := w.resumeFrom(e); err != nil {
		return fmt.Errorf("journal lookup for %s: %w", e.rel, err)
	}
	if e.dup || e.typ == unix.S_IFCHR || e.typ == unix.S_IFBLK {
		w.rep.add(e, w) // device nodes are never shifted: no ids to map
		return nil
	}
	m, overflow := w.opts.Map, w.opts.MapUnmappableToOverflow
	var unm []UnmappableError
	mapID := func(kind string, f func(uint32) (uint32, bool)) func(uint32) (uint32, bool) {
		return func(id uint32) (uint32, bool) {
			if h, ok := f(id); ok {
				return h, true
			}
			unm = append(unm, UnmappableError{Kind: kind, ID: id})
			return Overflow, true
		}
	}
	uid, gid := mapID("uid", m.HostUID), mapID("gid", m.HostGID)
	e.newUID, _ = uid(e.uid)
	e.newGID, _ = gid(e.gid)
	e.changes = e.newUID != e.uid || e.newGID != e.gid
	var malformed bool
	shiftACL := func(v []byte) []byte {
		if v == nil {
			return nil
		}
		a, err := UnmarshalACL(v)
		if err != nil {
			malformed = true
			return nil
		}
		if !a.HasIDs() {
			return nil // chown leaves ACLs alone: nothing to rewrite
		}
		s, _ := a.Shift(uid, gid)
		out := s.Marshal()
		e.changes = true
		return out
	}
	e.newACLAccess = shiftACL(e.aclAccess)
	e.newACLDefault = shiftACL(e.aclDefault)
	if e.caps != nil {
		c, err := UnmarshalCapability(e.caps)
		if err != nil {
			malformed = true
		} else {
			var root uint32 // v1 and v2 apply to every namespace: the source's root
			if c.Version == 3 {
				root = c.RootID
			}
			h, _ := mapID("cap_rootid", m.HostUID)(root)
			e.newCaps = c.WithRootID(h).Marshal()
			e.changes = true // chown drops the xattr: it is always rewritten
		}
	}
	if len(unm) > 0 && !overflow {
		e.blocked = true
	}
	if malformed {
		e.blocked = true
	}
	w.rep.add(e, w)
	w.rep.unmappable(e.rel, unm)
	if malformed {
		w.rep.example("malformed_xattrs", e.rel)
		w.rep.malformed.Add(1)
	}
	return nil
}

// blockedBy returns the error an apply mode stops with for e, or nil.
func (w *walker) blockedBy(e *entry) error {
	if (e.typ == unix.S_IFCHR || e.typ == unix.S_IFBLK) && !w.opts.AllowDevices {
		return fmt.Errorf("%s: %w", e.rel, ErrDeviceNode)
	}
	if e.blocked {
		return fmt.Errorf("%s: %w", e.rel, ErrUnmappable)
	}
	return nil
}

// run walks the whole tree.
func (w *walker) run() error {
	workers := w.opts.Workers
	if workers <= 0 {
		workers = workersPerCPU * runtime.NumCPU()
	}
	g, ctx := errgroup.WithContext(w.ctx)
	g.SetLimit(workers)
	w.g, w.ctx = g, ctx

	fd, err := unix.Dup(w.rootFd)
	if err != nil {
		return err
	}
	self := w.rootSt
	d := &dirState{fd: fd, self: &self, dstFd: -1}
	g.Go(func() error { return w.dir(d) })
	err = g.Wait()
	if err == nil {
		w.links.external(w.rep)
	}
	return err
}

func (w *walker) fail() { w.failed.Store(true) }

// release drops one pending unit of d; the last one finishes d and then
// releases its parent.
func (w *walker) release(d *dirState) error {
	var err error
	for ; d != nil; d = d.parent {
		if d.pending.Add(-1) != 0 {
			return err
		}
		if err == nil && !w.failed.Load() {
			if err = w.h.leaveDir(w, d); err != nil {
				w.fail()
			}
		}
		w.h.closeDir(d)
		unix.Close(d.fd)
	}
	return err
}

// dir walks the directory d: its own entry and its entries in batches, then
// its subdirectories, in parallel where the group has room.
func (w *walker) dir(d *dirState) (err error) {
	d.pending.Add(1)
	defer func() {
		if err != nil {
			w.fail()
		}
		if rerr := w.release(d); err == nil {
			err = rerr
		}
	}()
	if err := w.ctx.Err(); err != nil {
		return err
	}
	if err := w.readXattrs(d.fd, "", d.self); err != nil {
		return fmt.Errorf("xattrs of %s: %w", d.self.rel, err)
	}
	if err := w.h.enterDir(w, d); err != nil {
		return err
	}
	if err := w.plan(d.self); err != nil {
		return err
	}
	batch := make([]*entry, 0, batchMax)
	batch = append(batch, d.self)
	slab := slabPool.Get().(*entrySlab)
	defer slab.release()
	var subdirs []*entry
	bufp := direntPool.Get().(*[]byte)
	defer direntPool.Put(bufp)
	var names []string
	for {
		n, err := unix.Getdents(d.fd, *bufp)
		if err != nil {
			return fmt.Errorf("read dir %s: %w", d.self.rel, err)
		}
		if n == 0 {
			break
		}
		_, _, names = unix.ParseDirent((*bufp)[:n], -1, names[:0])
		for _, name := range names {
			if d.srcNames != nil {
				d.srcNames[name] = struct{}{}
			}
			e := slab.next()
			ok, err := w.classify(d, name, e)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			if e.isDir() {
				sub := new(entry)
				*sub = *e
				subdirs = append(subdirs, sub)
				continue
			}
			if err := w.plan(e); err != nil {
				return err
			}
			slab.n++
			batch = append(batch, e)
			if len(batch) == batchMax {
				if err := w.flush(d, batch); err != nil {
					return err
				}
				batch = batch[:0]
				slab.n = 0 // the flushed entries are done with
			}
		}
	}
	if err := w.flush(d, batch); err != nil {
		return err
	}
	if err := w.h.listed(w, d); err != nil {
		return err
	}
	for _, e := range subdirs {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		fd, err := w.openDir(d.fd, e.name)
		if errors.Is(err, errMount) {
			w.rep.mount(e.rel)
			continue
		}
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if err != nil {
			return fmt.Errorf("open %s: %w", e.rel, err)
		}
		var check entry
		if err := w.statAt(fd, "", unix.AT_EMPTY_PATH, &check); err != nil || check.dev != e.dev || check.ino != e.ino {
			unix.Close(fd)
			return fmt.Errorf("open %s: the directory changed while it was walked", e.rel)
		}
		child := &dirState{fd: fd, self: e, parent: d, dstFd: -1}
		d.pending.Add(1)
		if !w.g.TryGo(func() error { return w.dir(child) }) {
			if err := w.dir(child); err != nil {
				return err
			}
		}
	}
	return nil
}

// flush hands a batch to the mode and reports progress.
func (w *walker) flush(d *dirState, batch []*entry) error {
	if len(batch) == 0 {
		return nil
	}
	if err := w.h.entries(w, d, batch); err != nil {
		return err
	}
	if w.opts.Progress != nil {
		w.opts.Progress(w.rep.files.Load()+w.rep.dirs.Load()+w.rep.symlinks.Load(), w.rep.bytes.Load())
	}
	return nil
}

// linkSet remembers inodes with more than one link, and only those, so that
// memory grows with the hardlinked inodes of a tree, not with its size.
type linkSet struct {
	mu sync.Mutex
	m  map[devIno]*linkInfo
}

type devIno struct{ dev, ino uint64 }

type linkInfo struct {
	nlink, seenN uint32
	rel          string        // the first link met
	done         chan struct{} // Copy: closed once the first link is in dst
	ok           bool          // Copy: the first link was copied
}

func newLinkSet() *linkSet { return &linkSet{m: make(map[devIno]*linkInfo)} }

// seen records a link of e and reports whether its inode was met before.
func (s *linkSet) seen(e *entry) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := devIno{e.dev, e.ino}
	if li, ok := s.m[k]; ok {
		li.seenN++
		return true
	}
	s.m[k] = &linkInfo{nlink: e.nlink, seenN: 1, rel: e.rel, done: make(chan struct{})}
	return false
}

func (s *linkSet) get(e *entry) *linkInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[devIno{e.dev, e.ino}]
}

// external reports inodes some of whose links lie outside the tree: changing
// their owner changes a file elsewhere too.
func (s *linkSet) external(r *collector) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, li := range s.m {
		if li.seenN < li.nlink {
			r.externalLinks.Add(1)
			r.example("external_hardlinks", li.rel)
		}
	}
}
