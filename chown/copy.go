package chown

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Copy copies the tree at src to dst, writing the owners, ACL ids and
// capability root ids shifted by opts.Map (as [Shift] would) and keeping
// content, modes (setuid and setgid included), access and modification
// times (directories' after their children), other xattrs, holes of sparse
// files, hardlinks within the tree and symlinks (recreated, never
// followed). FIFOs are recreated; sockets are skipped (they are meaningless
// without their server); device nodes are skipped when opts.AllowDevices is
// set and refused otherwise. Mount points below src are not entered. src is
// never changed, nor are its access times.
//
// dst must be an empty directory or not exist (its parent must), unless
// opts.Update is set: then Copy is a delta sync into an existing dst that
// rewrites only files whose size, mtime, mode or owner differ and removes
// dst entries that src no longer has. A migration runs it once while the
// containers run and once more after they stop.
//
// Copy walks src once. Inodes with more than one link are copied only
// after the walk has seen the whole tree, and only when every link lies
// inside it, so the content of a file hardlinked from outside src never
// reaches dst. When the walk meets something opts do not allow (an
// unmappable id, a malformed ACL or capability, a device node, a hardlink
// to a file outside src), it stops writing, finishes the census, and
// returns the whole audit with a [*BlockedError]; a dst Copy created or
// found empty is emptied again, while a refused Update leaves dst as far as
// it got (the caller's previous copy, partly refreshed). [Audit] tells the
// same without writing anything.
func Copy(ctx context.Context, src, dst string, opts Options) (*Report, error) {
	c := &copier{}
	w, err := newWalker(ctx, src, &opts, modeCopy, c)
	if err != nil {
		return nil, err
	}
	defer w.close()
	parent, err := unix.Open(filepath.Dir(filepath.Clean(dst)), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("copy to %s: %w", dst, err)
	}
	nested := inside(w.rootFd, parent)
	unix.Close(parent)
	if nested {
		return nil, fmt.Errorf("copy %s to %s: the destination lies inside the source", src, dst)
	}
	c.dstRoot, err = openDst(dst, opts.Update)
	if err != nil {
		return nil, err
	}
	defer unix.Close(c.dstRoot)
	if inside(w.rootFd, c.dstRoot) || inside(c.dstRoot, w.rootFd) {
		return nil, fmt.Errorf("copy %s to %s: one lies inside the other", src, dst)
	}
	if err := w.run(); err != nil {
		return nil, fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	w.ctx = ctx // the walk's group context ended with the walk
	rep := w.rep.report(src)
	if b := rep.Blocking(opts); b != nil {
		if !opts.Update {
			if err := emptyDir(w, c.dstRoot); err != nil {
				return nil, fmt.Errorf("copy %s to %s: refused (%v), and emptying %s failed: %w", src, dst, b, dst, err)
			}
			rep.Changed = 0 // what it wrote is gone again
		}
		return rep, b
	}
	if err := c.finishLinks(ctx, w); err != nil {
		return nil, fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	rep.Changed = w.rep.changed.Load()
	rep.Unchanged = w.rep.unchanged.Load()
	return rep, nil
}

// emptyDir removes everything in the directory open as fd.
func emptyDir(w *walker, fd int) error {
	names, err := readNames(fd)
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := removeAt(w, fd, n); err != nil {
			return err
		}
	}
	return nil
}

// deferredLink is an entry of an inode with several links, copied or linked
// once the walk has seen every link: in is the directory it is in.
type deferredLink struct {
	e  *entry
	in *entry
}

// finishLinks copies the first link of each multi-link inode and links the
// others to it, then gives their directories back their metadata (adding an
// entry moved their mtime). Directories are reached again below the roots
// without following a symlink or crossing a mount; a source file is read
// only if it still is the inode the walk saw.
func (c *copier) finishLinks(ctx context.Context, w *walker) error {
	if len(c.deferred) == 0 {
		return nil
	}
	// first links before further ones, each group in path order
	slices.SortFunc(c.deferred, func(a, b deferredLink) int {
		if a.e.dup != b.e.dup {
			if a.e.dup {
				return 1
			}
			return -1
		}
		return strings.Compare(a.e.rel, b.e.rel)
	})
	dirs := map[string]*entry{}
	// path order keeps a directory's files together: one open of it (in
	// src and in dst) serves them all
	srcDirs, dstDirs := dirCache{root: w.rootFd, fd: -1}, dirCache{root: c.dstRoot, fd: -1}
	defer srcDirs.close()
	defer dstDirs.close()
	for _, dl := range c.deferred {
		if err := ctx.Err(); err != nil {
			return err
		}
		e := dl.e
		dir := strings.TrimSuffix(path.Dir(e.rel), "/")
		if dir == "." {
			dir = ""
		}
		d := &dirState{fd: -1, dstFd: -1, self: dl.in}
		var err error
		if d.fd, err = srcDirs.open(dir); err == nil {
			d.dstFd, err = dstDirs.open(dir)
		}
		if err == nil {
			if e.dup {
				err = c.link(w, d, e)
			} else {
				li := w.links.get(e)
				err = c.one(w, d, e)
				if li != nil {
					c.finish(li, err == nil)
				}
			}
		}
		if err != nil {
			return fmt.Errorf("copy %s: %w", e.rel, err)
		}
		dirs[dir] = dl.in
	}
	for dir, de := range dirs {
		fd, err := dstDirs.open(dir)
		if err != nil {
			return fmt.Errorf("open %s in dst: %w", de.rel, err)
		}
		if err := c.meta(w, fd, "", de); err != nil {
			return fmt.Errorf("copy %s: %w", de.rel, err)
		}
	}
	return nil
}

// openDst opens (creating it when missing) the destination root and checks
// that it is empty unless update.
func openDst(dst string, update bool) (int, error) {
	if err := os.Mkdir(dst, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return -1, fmt.Errorf("create %s: %w", dst, err)
	}
	fd, err := openRoot(dst)
	if err != nil {
		return -1, err
	}
	if update {
		return fd, nil
	}
	names, err := readNames(fd)
	if err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("read %s: %w", dst, err)
	}
	if len(names) > 0 {
		unix.Close(fd)
		return -1, fmt.Errorf("copy to %s: %w", dst, ErrNotEmpty)
	}
	return fd, nil
}

// readNames lists the directory open as fd through a fresh open file
// description, leaving fd's offset alone.
func readNames(fd int) ([]string, error) {
	dfd, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(dfd)
	buf := make([]byte, direntBuf)
	var names []string
	for {
		n, err := unix.Getdents(dfd, buf)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
}

// inside reports whether the directory open as b lies at or below the one
// open as a, by climbing from b through ".." to the root.
func inside(a, b int) bool {
	var as, cs unix.Stat_t
	if unix.Fstat(a, &as) != nil {
		return false
	}
	cur, err := unix.Dup(b)
	if err != nil {
		return false
	}
	defer func() { unix.Close(cur) }()
	for range 4096 {
		if unix.Fstat(cur, &cs) != nil {
			return false
		}
		if cs.Dev == as.Dev && cs.Ino == as.Ino {
			return true
		}
		up, err := unix.Openat(cur, "..", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return false
		}
		var us unix.Stat_t
		if unix.Fstat(up, &us) != nil || us.Dev == cs.Dev && us.Ino == cs.Ino {
			unix.Close(up)
			return false // reached "/"
		}
		unix.Close(cur)
		cur = up
	}
	return false
}

// copier writes each entry into dst as it is walked in src.
type copier struct {
	dstRoot int
	once    sync.Map // *linkInfo → struct{}: first links finished
	blocked atomic.Bool

	mu       sync.Mutex
	deferred []deferredLink
}

func (c *copier) enterDir(w *walker, d *dirState) error {
	if w.opts.Update {
		d.srcNames = make(map[string]struct{})
	}
	if d.parent == nil {
		fd, err := unix.Dup(c.dstRoot)
		d.dstFd = fd
		return err
	}
	name, pfd := d.self.name, d.parent.dstFd
	err := unix.Mkdirat(pfd, name, 0o700)
	if errors.Is(err, unix.EEXIST) {
		var st unix.Stat_t
		if err = unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			if err = removeAt(w, pfd, name); err == nil {
				err = unix.Mkdirat(pfd, name, 0o700)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("create %s: %w", d.self.rel, err)
	}
	fd, err := openBeneath(pfd, name)
	if err != nil {
		return fmt.Errorf("open %s in dst: %w", d.self.rel, err)
	}
	d.dstFd = fd
	return nil
}

func (c *copier) closeDir(d *dirState) {
	if d.dstFd >= 0 {
		unix.Close(d.dstFd)
		d.dstFd = -1
	}
}

// listed removes, in Update mode, what dst has and src no longer has.
func (c *copier) listed(w *walker, d *dirState) error {
	if !w.opts.Update {
		return nil
	}
	names, err := readNames(d.dstFd)
	if err != nil {
		return fmt.Errorf("read %s in dst: %w", d.self.rel, err)
	}
	for _, n := range names {
		if _, ok := d.srcNames[n]; ok {
			continue
		}
		if err := removeAt(w, d.dstFd, n); err != nil {
			return fmt.Errorf("remove %s from dst: %w", join(d.self.rel, n), err)
		}
		w.rep.removed.Add(1)
	}
	d.srcNames = nil
	return nil
}

// leaveDir gives a dst directory its metadata once everything below it is
// written, so that its mtime stays the source's.
func (c *copier) leaveDir(w *walker, d *dirState) error {
	e := d.self
	if err := c.meta(w, d.dstFd, "", e); err != nil {
		return fmt.Errorf("copy %s: %w", e.rel, err)
	}
	w.rep.changed.Add(1)
	return nil
}

func (c *copier) entries(w *walker, d *dirState, es []*entry) error {
	for _, e := range es {
		if e == d.self {
			continue
		}
		if w.blockedBy(e) != nil {
			c.blocked.Store(true)
			continue
		}
		if c.blocked.Load() {
			continue // refused: the walk only counts from here on
		}
		if e.nlink > 1 && e.typ != unix.S_IFDIR {
			// its other links may lie outside the tree: copied at the end
			cp := *e
			c.mu.Lock()
			c.deferred = append(c.deferred, deferredLink{e: &cp, in: d.self})
			c.mu.Unlock()
			continue
		}
		if err := c.one(w, d, e); err != nil {
			return fmt.Errorf("copy %s: %w", e.rel, err)
		}
	}
	return nil
}

// finish marks a first link done (once), waking the goroutines that wait
// to link to it.
func (c *copier) finish(li *linkInfo, ok bool) {
	if _, loaded := c.once.LoadOrStore(li, struct{}{}); loaded {
		return
	}
	li.ok = ok
	close(li.done)
}

// one copies a non-directory entry.
func (c *copier) one(w *walker, d *dirState, e *entry) error {
	switch e.typ {
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFSOCK:
		return nil // reported, never copied
	}
	dfd, name := d.dstFd, e.name
	if w.opts.Update {
		same, err := c.unchanged(w, dfd, e)
		if err != nil || same {
			return err
		}
	}
	switch e.typ {
	case unix.S_IFREG:
		if err := c.file(w, d, e); err != nil {
			return err
		}
	case unix.S_IFLNK:
		if err := unix.Symlinkat(e.target, dfd, name); err != nil {
			return err
		}
		if err := c.meta(w, dfd, name, e); err != nil {
			return err
		}
	case unix.S_IFIFO:
		if err := unix.Mknodat(dfd, name, unix.S_IFIFO|0o600, 0); err != nil {
			return err
		}
		if err := c.meta(w, dfd, name, e); err != nil {
			return err
		}
	}
	w.rep.changed.Add(1)
	return nil
}

// unchanged reports, in Update mode, whether dst already has e as it would
// write it; otherwise it removes what is in the way.
func (c *copier) unchanged(w *walker, dfd int, e *entry) (bool, error) {
	var st unix.Stat_t
	err := unix.Fstatat(dfd, e.name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if st.Mode == e.mode && st.Uid == e.newUID && st.Gid == e.newGID {
		switch e.typ {
		case unix.S_IFREG:
			if st.Size == e.size && st.Mtim == e.mtime {
				w.rep.unchanged.Add(1)
				return true, nil
			}
		case unix.S_IFLNK:
			if t, err := readlinkat(dfd, e.name); err == nil && t == e.target {
				w.rep.unchanged.Add(1)
				return true, nil
			}
		case unix.S_IFIFO:
			w.rep.unchanged.Add(1)
			return true, nil
		}
	}
	return false, removeAt(w, dfd, e.name)
}

// file copies a regular file's content, holes kept, then its metadata.
func (c *copier) file(w *walker, d *dirState, e *entry) error {
	rfd, err := openRegular(d.fd, e)
	if err != nil {
		return err
	}
	defer unix.Close(rfd)
	wfd, err := unix.Openat(d.dstFd, e.name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	defer unix.Close(wfd)
	if err := copyData(rfd, wfd, e.size, e.blocks); err != nil {
		return err
	}
	return c.metaFd(w, wfd, e)
}

// openRegular opens a source file for reading only after checking, through
// an O_PATH fd, that it still is the regular file the walker statted: an
// open of a FIFO or device node swapped in would block or have side effects.
func openRegular(dirfd int, e *entry) (int, error) {
	pfd, err := unix.Openat(dirfd, e.name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstat(pfd, &st); err != nil {
		return -1, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Ino != e.ino {
		return -1, errors.New("changed while it was copied")
	}
	p := procPath(pfd, "")
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NOATIME|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.EPERM) {
		fd, err = unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	}
	return fd, err
}

// copyData copies size bytes from rfd to wfd (copy_file_range where the
// kernel can, read/write where it cannot). A file whose allocated blocks
// cover its size is copied as one range; otherwise only the data segments
// SEEK_DATA/SEEK_HOLE find are copied, so holes stay holes. (A hole in a
// file whose metadata blocks make up for it is copied as zeros: the same
// content, less sparse.) dst is truncated to size only when the copy ended
// short of it: a trailing hole, or a file that shrank since it was statted.
func copyData(rfd, wfd int, size, blocks int64) error {
	var end int64
	if blocks*512 >= size {
		n, err := copyRange(rfd, wfd, 0, size)
		if err != nil {
			return err
		}
		end = n
	} else {
		var off int64
		for off < size {
			data, err := unix.Seek(rfd, off, unix.SEEK_DATA)
			if errors.Is(err, unix.ENXIO) {
				break // only a hole is left
			}
			hole := size
			if err != nil {
				data = off // no SEEK_DATA support: copy everything
			} else if h, err := unix.Seek(rfd, data, unix.SEEK_HOLE); err == nil {
				hole = min(h, size)
			}
			n, err := copyRange(rfd, wfd, data, hole-data)
			if err != nil {
				return err
			}
			end = max(end, n)
			off = hole
		}
	}
	if end < size {
		return unix.Ftruncate(wfd, size)
	}
	return nil
}

// copyRange copies n bytes at off and returns the offset it reached.
func copyRange(rfd, wfd int, off, n int64) (int64, error) {
	for n > 0 {
		roff, woff := off, off
		c, err := unix.CopyFileRange(rfd, &roff, wfd, &woff, int(min(n, 1<<30)), 0)
		if err != nil {
			if errors.Is(err, unix.EXDEV) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL) ||
				errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EIO) {
				return copyRangeRW(rfd, wfd, off, n)
			}
			return off, err
		}
		if c == 0 {
			return off, nil // the file shrank
		}
		off += int64(c)
		n -= int64(c)
	}
	return off, nil
}

func copyRangeRW(rfd, wfd int, off, n int64) (int64, error) {
	buf := make([]byte, min(n, 1<<20))
	for n > 0 {
		r, err := unix.Pread(rfd, buf[:min(n, int64(len(buf)))], off)
		if err != nil {
			return off, err
		}
		if r == 0 {
			return off, nil
		}
		if _, err := unix.Pwrite(wfd, buf[:r], off); err != nil {
			return off, err
		}
		off += int64(r)
		n -= int64(r)
	}
	return off, nil
}

// metaFd gives an open dst file its owner, xattrs, mode and times, in the
// order that keeps them (see [setAttrs]).
func (c *copier) metaFd(w *walker, fd int, e *entry) error {
	if err := unix.Fchown(fd, int(e.newUID), int(e.newGID)); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	set := func(n string, v []byte) error { return FSetXattr(fd, n, v) }
	if err := c.xattrs(w, set, e); err != nil {
		return err
	}
	if err := unix.Fchmod(fd, e.mode&0o7777); err != nil {
		return err
	}
	return unix.UtimesNanoAt(fd, "", []unix.Timespec{e.atime, e.mtime}, unix.AT_EMPTY_PATH)
}

// meta is metaFd for name in dirfd (dirfd itself when name is ""), never
// following a symlink.
func (c *copier) meta(w *walker, dirfd int, name string, e *entry) error {
	if name == "" {
		return c.metaFd(w, dirfd, e)
	}
	if err := unix.Fchownat(dirfd, name, int(e.newUID), int(e.newGID), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	p := procPath(dirfd, name)
	set := func(n string, v []byte) error { return SetXattr(p, n, v) }
	if err := c.xattrs(w, set, e); err != nil {
		if e.typ != unix.S_IFLNK {
			return err
		}
		w.rep.dropped.Add(1)
	}
	if e.typ != unix.S_IFLNK {
		if err := chmodNoFollow(dirfd, name, e.mode&0o7777); err != nil {
			return err
		}
	}
	return unix.UtimesNanoAt(dirfd, name, []unix.Timespec{e.atime, e.mtime}, unix.AT_SYMLINK_NOFOLLOW)
}

// xattrs writes e's xattrs: ACLs and the capability shifted, the others as
// they were. Others the destination refuses are counted, not fatal.
func (c *copier) xattrs(w *walker, set func(string, []byte) error, e *entry) error {
	pick := func(shifted, orig []byte) []byte {
		if shifted != nil {
			return shifted
		}
		return orig
	}
	for _, x := range []xattr{{XattrACLAccess, pick(e.newACLAccess, e.aclAccess)},
		{XattrACLDefault, pick(e.newACLDefault, e.aclDefault)}, {XattrCapability, e.newCaps}} {
		if x.value != nil {
			if err := set(x.name, x.value); err != nil {
				return err
			}
		}
	}
	for _, x := range e.others {
		if err := set(x.name, x.value); err != nil {
			if errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) {
				w.rep.dropped.Add(1)
				continue
			}
			return err
		}
	}
	return nil
}

// link makes e a further link, in dst, of the first link of its inode.
func (c *copier) link(w *walker, d *dirState, e *entry) error {
	li := w.links.get(e)
	if li == nil {
		return errors.New("hardlink set lost")
	}
	select {
	case <-li.done:
	case <-w.ctx.Done():
		return w.ctx.Err()
	}
	if !li.ok {
		return fmt.Errorf("its first link %s was not copied", li.rel)
	}
	dir, base := path.Split(li.rel)
	pfd := c.dstRoot
	if dir = strings.TrimSuffix(dir, "/"); dir != "" {
		fd, err := openBeneath(c.dstRoot, dir)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		pfd = fd
	}
	if w.opts.Update {
		var a, b unix.Stat_t
		err := unix.Fstatat(d.dstFd, e.name, &a, unix.AT_SYMLINK_NOFOLLOW)
		if err == nil {
			if unix.Fstatat(pfd, base, &b, unix.AT_SYMLINK_NOFOLLOW) == nil && a.Dev == b.Dev && a.Ino == b.Ino {
				w.rep.unchanged.Add(1)
				return nil
			}
			if err := removeAt(w, d.dstFd, e.name); err != nil {
				return err
			}
		}
	}
	if err := unix.Linkat(pfd, base, d.dstFd, e.name, 0); err != nil {
		return err
	}
	w.rep.changed.Add(1)
	return nil
}

// removeAt removes name from dirfd, recursively for a directory, never
// following a symlink nor crossing into another filesystem.
func removeAt(w *walker, dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EPERM) {
		return err
	}
	var ps, st unix.Stat_t
	if err := unix.Fstat(dirfd, &ps); err != nil {
		return err
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Dev != ps.Dev {
		return fmt.Errorf("%s is a mount point", name)
	}
	names, err := readNames(fd)
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		if err := removeAt(w, fd, n); err != nil {
			return err
		}
	}
	return unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
}
