package chown

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Shift changes the owners of the tree at root in place from the ids in it
// to opts.Map's, and with them the ids in POSIX ACLs and the root id of file
// capabilities (rewritten as v3), keeping setuid and setgid bits that chown
// clears. Each inode is changed once, hardlinks included. Symlinks get their
// own owner changed and are never followed; device nodes are never changed;
// mount points below root are not entered.
//
// Shift walks the tree once: each entry is statted, its xattrs listed, and
// it is journaled and changed in the same visit, so an entry costs three
// syscalls (statx, listxattrat, fchownat). Inodes with more than one link
// are the exception: they are changed only after the whole tree has been
// seen, once every link of theirs has been found inside it, so a file
// hardlinked from outside the tree is never given away, not even for a
// moment. When the walk meets something opts do not allow (an unmappable
// id, a malformed ACL or capability, a device node, a hardlink to a file
// outside the tree), it stops changing entries, finishes the census, puts
// back from the journal every inode it had changed (owner, mode, ACLs and
// capability bytes exactly; only their ctimes moved), and returns the
// whole audit with a [*BlockedError]. [Audit] tells the same without
// changing anything.
//
// Every change is journaled in opts.JournalDir first, so an interrupted Shift
// resumes where it stopped when run again (no inode shifted twice), a
// completed one is a no-op that says so (Report.AlreadyDone), and [Reverse]
// undoes it. Nothing else may write the tree while Shift runs: stop every
// container that uses it.
func Shift(ctx context.Context, root string, opts Options) (*Report, error) {
	if opts.JournalDir == "" {
		return nil, errors.New("shift: a journal directory is required")
	}
	if err := os.MkdirAll(opts.JournalDir, 0o700); err != nil {
		return nil, fmt.Errorf("shift: %w", err)
	}
	st, err := loadJournalState(opts.JournalDir)
	if err != nil {
		return nil, fmt.Errorf("shift: journal: %w", err)
	}
	if st.reversed != nil {
		if err := st.archive(); err != nil {
			return nil, fmt.Errorf("shift: archive reversed journal: %w", err)
		}
		st.meta, st.done, st.reversed = nil, nil, nil
	}
	if st.done != nil {
		r := st.done
		r.AlreadyDone = true
		return r, nil
	}
	sh := &shifter{}
	w, err := newWalker(ctx, root, &opts, modeShift, sh)
	if err != nil {
		return nil, err
	}
	defer w.close()
	jpath := filepath.Join(opts.JournalDir, journalFile)
	if st.meta != nil {
		if err := st.meta.matches(w, &opts); err != nil {
			return nil, fmt.Errorf("shift %s: %w", root, err)
		}
		f, err := os.OpenFile(jpath, os.O_RDWR, 0)
		if errors.Is(err, os.ErrNotExist) {
			f, err = createJournal(jpath)
		}
		if err != nil {
			return nil, fmt.Errorf("shift: journal: %w", err)
		}
		defer f.Close()
		ix, valid, err := loadIndex(f)
		if err != nil {
			return nil, fmt.Errorf("shift: journal %s: %w", jpath, err)
		}
		if valid < int64(len(journalMagic)) {
			// A journal torn before its header was whole: start it afresh.
			if err := f.Truncate(0); err != nil {
				return nil, fmt.Errorf("shift: journal: %w", err)
			}
			if _, err := f.WriteAt([]byte(journalMagic), 0); err != nil {
				return nil, fmt.Errorf("shift: journal: %w", err)
			}
			valid = int64(len(journalMagic))
		}
		if err := f.Truncate(valid); err != nil {
			return nil, fmt.Errorf("shift: journal: %w", err)
		}
		if _, err := f.Seek(valid, io.SeekStart); err != nil {
			return nil, fmt.Errorf("shift: journal: %w", err)
		}
		w.resume = ix
		sh.j = &journalWriter{f: f}
	} else {
		meta := &journalMeta{Root: root, Dev: w.rootSt.dev, Ino: w.rootSt.ino, Map: opts.Map,
			MapUnmappableToOverflow: opts.MapUnmappableToOverflow, Started: time.Now().UTC()}
		if err := writeJSON(filepath.Join(opts.JournalDir, metaFile), meta); err != nil {
			return nil, fmt.Errorf("shift: journal: %w", err)
		}
		f, err := createJournal(jpath)
		if err != nil {
			return nil, fmt.Errorf("shift: journal: %w", err)
		}
		defer f.Close()
		sh.j = &journalWriter{f: f}
	}
	if err := w.run(); err != nil {
		return nil, fmt.Errorf("shift %s: %w", root, err)
	}
	rep := w.rep.report(root)
	rep.Resumed = w.resume != nil
	if b := rep.Blocking(opts); b != nil {
		// Put back what was changed before the blocker was met: the tree
		// is as it was, and the journal, marked reversed, starts afresh
		// next time.
		rev, err := Reverse(ctx, root, opts)
		if err != nil {
			return nil, fmt.Errorf("shift %s: refused (%v), and putting back the %d inodes changed before that failed: %w", root, b, rep.Changed, err)
		}
		rep.Changed, rep.Undone = 0, rev.Changed
		return rep, b
	}
	w.ctx = ctx // the walk's group context ended with the walk
	if w.opts.beforeLinks != nil {
		w.opts.beforeLinks()
	}
	if err := sh.finishLinks(ctx, w); err != nil {
		return nil, fmt.Errorf("shift %s: %w", root, err)
	}
	rep.Changed = w.rep.changed.Load()
	if err := writeJSON(filepath.Join(opts.JournalDir, doneFile), rep); err != nil {
		return nil, fmt.Errorf("shift: journal: %w", err)
	}
	return rep, nil
}

func createJournal(p string) (*os.File, error) {
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	if _, err := f.Write([]byte(journalMagic)); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	return f, syncDir(filepath.Dir(p))
}

// matches refuses to resume a journal of another tree or another map.
func (m *journalMeta) matches(w *walker, opts *Options) error {
	if m.Dev != w.rootSt.dev || m.Ino != w.rootSt.ino {
		return fmt.Errorf("the journal in %s belongs to %s, another directory", opts.JournalDir, m.Root)
	}
	if d := DiffMaps(m.Map, opts.Map); len(d) > 0 {
		return fmt.Errorf("the interrupted shift used another id map (%s); resume it with the same map or reverse it first", strings.Join(d, "; "))
	}
	if m.MapUnmappableToOverflow != opts.MapUnmappableToOverflow {
		return errors.New("the interrupted shift used another setting for unmappable ids; resume it with the same options")
	}
	return nil
}

// resumeFrom replaces what the walker saw of e with its journaled original
// state when an interrupted run journaled it.
func (w *walker) resumeFrom(e *entry) error {
	if w.resume == nil || e.dup || e.typ == unix.S_IFCHR || e.typ == unix.S_IFBLK {
		return nil
	}
	r, ok, err := w.resume.lookup(e.dev, e.ino)
	if err != nil || !ok {
		return err
	}
	e.uid, e.gid, e.mode = r.UID, r.GID, r.Mode
	e.aclAccess, e.aclDefault, e.caps = r.ACLAccess, r.ACLDefault, r.Caps
	e.resumed = true
	return nil
}

// shifter journals then applies each batch. Once an entry that blocks is
// met it changes nothing more (the walk goes on counting). First links of
// inodes with several links wait in deferred until the walk has seen the
// whole tree.
type shifter struct {
	j       *journalWriter
	blocked atomic.Bool

	mu       sync.Mutex
	deferred []*entry
}

func (s *shifter) entries(w *walker, d *dirState, es []*entry) error {
	todo := make([]*entry, 0, len(es))
	for _, e := range es {
		if e.dup {
			continue
		}
		if w.blockedBy(e) != nil {
			s.blocked.Store(true)
			continue
		}
		if e.typ == unix.S_IFCHR || e.typ == unix.S_IFBLK {
			continue
		}
		if !e.changes || s.blocked.Load() {
			continue
		}
		if e.nlink > 1 && e.typ != unix.S_IFDIR {
			// its other links may lie outside the tree: decided at the end
			c := *e
			s.mu.Lock()
			s.deferred = append(s.deferred, &c)
			s.mu.Unlock()
			continue
		}
		todo = append(todo, e)
	}
	if err := s.journal(todo); err != nil {
		return err
	}
	for _, e := range todo {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		name := e.name
		if e == d.self {
			name = ""
		}
		if err := s.apply(w, d.fd, name, e); err != nil {
			return err
		}
	}
	return nil
}

// journal records the original attributes of es (those a resumed run has
// not recorded already) in one commit, before any of them changes.
func (s *shifter) journal(es []*entry) error {
	var buf []byte
	for _, e := range es {
		if !e.resumed {
			buf = appendRecord(buf, &record{Dev: e.dev, Ino: e.ino, Rel: e.rel, UID: e.uid, GID: e.gid,
				Mode: e.mode, ACLAccess: e.aclAccess, ACLDefault: e.aclDefault, Caps: e.caps})
		}
	}
	if len(buf) == 0 {
		return nil
	}
	return s.j.commit(buf)
}

// apply gives e (name in dirfd, "" for dirfd itself) its shifted
// attributes and counts it.
func (s *shifter) apply(w *walker, dirfd int, name string, e *entry) error {
	if err := setAttrs(dirfd, name, e.typ, e.newUID, e.newGID, e.mode, e.newACLAccess, e.newACLDefault, e.newCaps); err != nil {
		return fmt.Errorf("shift %s: %w", e.rel, err)
	}
	w.rep.changed.Add(1)
	if w.opts.afterApply != nil {
		return w.opts.afterApply()
	}
	return nil
}

// finishLinks shifts the deferred inodes once the walk found every link of
// each inside the tree (the caller checked that none lies outside). Each is
// reached again below the root without following a symlink or crossing a
// mount, and changed only if its path still names the inode the walk saw.
func (s *shifter) finishLinks(ctx context.Context, w *walker) error {
	if len(s.deferred) == 0 {
		return nil
	}
	slices.SortFunc(s.deferred, func(a, b *entry) int { return strings.Compare(a.rel, b.rel) })
	if err := s.journal(s.deferred); err != nil {
		return err
	}
	cache := dirCache{root: w.rootFd, fd: -1}
	defer cache.close()
	for _, e := range s.deferred {
		if err := ctx.Err(); err != nil {
			return err
		}
		dir, name := path.Split(e.rel)
		fd, err := cache.open(strings.TrimSuffix(dir, "/"))
		if err != nil {
			return fmt.Errorf("open the directory of %s: %w", e.rel, err)
		}
		var now entry
		if err := w.statAt(fd, name, 0, &now); err != nil || now.dev != e.dev || now.ino != e.ino {
			return &TreeChangedError{Path: e.rel, What: "the file was replaced or removed"}
		}
		if now.nlink != e.nlink {
			// a link was made or removed since the walk counted them: one may
			// now lie outside the tree
			return &TreeChangedError{Path: e.rel, What: fmt.Sprintf("its link count changed from %d to %d", e.nlink, now.nlink)}
		}
		if err := s.apply(w, fd, name, e); err != nil {
			return err
		}
	}
	return nil
}

func (s *shifter) enterDir(*walker, *dirState) error { return nil }
func (s *shifter) listed(*walker, *dirState) error   { return nil }
func (s *shifter) leaveDir(*walker, *dirState) error { return nil }
func (s *shifter) closeDir(*dirState)                {}

// setAttrs sets owner, id-carrying xattrs and the setuid/setgid bits of name
// in dirfd (of dirfd itself when name is ""), in the order that keeps them:
// chown first (it clears setuid, setgid and security.capability), then the
// ACLs, then the capability, then the mode. Nil xattrs are left alone.
func setAttrs(dirfd int, name string, typ, uid, gid, mode uint32, aclAccess, aclDefault, caps []byte) error {
	if name == "" {
		if err := fchownat(dirfd, "", uid, gid, unix.AT_EMPTY_PATH); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	} else if err := fchownat(dirfd, name, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	if typ == unix.S_IFLNK {
		return nil
	}
	set := func(x string, v []byte) error {
		if v == nil {
			return nil
		}
		if name == "" {
			return FSetXattr(dirfd, x, v)
		}
		return SetXattr(procPath(dirfd, name), x, v)
	}
	if err := set(XattrACLAccess, aclAccess); err != nil {
		return err
	}
	if err := set(XattrACLDefault, aclDefault); err != nil {
		return err
	}
	if err := set(XattrCapability, caps); err != nil {
		return err
	}
	if mode&(unix.S_ISUID|unix.S_ISGID) != 0 {
		if name == "" {
			return unix.Fchmod(dirfd, mode&0o7777)
		}
		return chmodNoFollow(dirfd, name, mode&0o7777)
	}
	return nil
}

// chmodNoFollow sets the mode of name in dirfd, never following a symlink:
// fchmodat2 with AT_SYMLINK_NOFOLLOW where the kernel has it (6.6+), else
// through an O_PATH fd whose /proc/self/fd link names the inode itself.
func chmodNoFollow(dirfd int, name string, mode uint32) error {
	err := unix.Fchmodat(dirfd, name, mode, unix.AT_SYMLINK_NOFOLLOW)
	if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.ENOSYS) {
		return err
	}
	fd, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return nil // symlink modes mean nothing
	}
	return unix.Chmod(procPath(fd, ""), mode)
}

// Reverse undoes the Shift journaled in opts.JournalDir for the tree at
// root: it walks the journal, not the tree, and gives each recorded inode
// back its original owner, mode, ACLs and capability bytes exactly. A path
// that no longer names the recorded inode (checked by dev and ino, never
// following a symlink) is skipped and counted in Report.Mismatched. It also
// undoes the journaled part of an interrupted Shift. opts.Map is not needed.
func Reverse(ctx context.Context, root string, opts Options) (*Report, error) {
	if opts.JournalDir == "" {
		return nil, errors.New("reverse: a journal directory is required")
	}
	st, err := loadJournalState(opts.JournalDir)
	if err != nil {
		return nil, fmt.Errorf("reverse: journal: %w", err)
	}
	if st.meta == nil {
		return nil, fmt.Errorf("reverse %s: no shift journaled in %s", root, opts.JournalDir)
	}
	if st.reversed != nil {
		r := st.reversed
		r.AlreadyDone = true
		return r, nil
	}
	rootFd, err := openRoot(root)
	if err != nil {
		return nil, err
	}
	defer unix.Close(rootFd)
	var rs unix.Stat_t
	if err := unix.Fstat(rootFd, &rs); err != nil {
		return nil, err
	}
	if uint64(rs.Dev) != st.meta.Dev || rs.Ino != st.meta.Ino {
		return nil, fmt.Errorf("reverse %s: the journal in %s belongs to %s, another directory", root, opts.JournalDir, st.meta.Root)
	}
	f, err := os.Open(filepath.Join(opts.JournalDir, journalFile))
	if err != nil {
		return nil, fmt.Errorf("reverse: journal: %w", err)
	}
	defer f.Close()

	c := newCollector()
	cache := dirCache{root: rootFd, fd: -1}
	defer cache.close()
	_, err = readJournal(f, func(_ int64, r record) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return reverseOne(&cache, c, r)
	})
	if err != nil {
		return nil, fmt.Errorf("reverse %s: %w", root, err)
	}
	rep := c.report(root)
	if err := writeJSON(filepath.Join(opts.JournalDir, reversedFile), rep); err != nil {
		return nil, fmt.Errorf("reverse: journal: %w", err)
	}
	if err := os.Remove(filepath.Join(opts.JournalDir, doneFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("reverse: journal: %w", err)
	}
	return rep, nil
}

func reverseOne(cache *dirCache, c *collector, r record) error {
	dir, name := path.Split(r.Rel)
	dir = strings.TrimSuffix(dir, "/")
	var dirfd int
	if r.Rel == "." {
		dirfd, name = cache.root, ""
	} else {
		fd, err := cache.open(dir)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EXDEV) {
			c.mismatched.Add(1)
			c.example("mismatched", r.Rel)
			return nil
		}
		if err != nil {
			return fmt.Errorf("open %s: %w", dir, err)
		}
		dirfd = fd
	}
	var st unix.Stat_t
	flags := unix.AT_SYMLINK_NOFOLLOW
	if name == "" {
		flags |= unix.AT_EMPTY_PATH
	}
	if err := unix.Fstatat(dirfd, name, &st, flags); err != nil || uint64(st.Dev) != r.Dev || st.Ino != r.Ino {
		c.mismatched.Add(1)
		c.example("mismatched", r.Rel)
		return nil
	}
	typ := st.Mode & unix.S_IFMT
	if err := setAttrs(dirfd, name, typ, r.UID, r.GID, r.Mode, r.ACLAccess, r.ACLDefault, r.Caps); err != nil {
		return fmt.Errorf("reverse %s: %w", r.Rel, err)
	}
	switch typ {
	case unix.S_IFREG:
		c.files.Add(1)
	case unix.S_IFDIR:
		c.dirs.Add(1)
	case unix.S_IFLNK:
		c.symlinks.Add(1)
	case unix.S_IFIFO:
		c.fifos.Add(1)
	case unix.S_IFSOCK:
		c.sockets.Add(1)
	}
	c.changed.Add(1)
	return nil
}

// dirCache keeps the directory of the last journal record open: records of
// one directory are written together, so most lookups hit.
type dirCache struct {
	root int
	rel  string
	fd   int
}

func (c *dirCache) open(rel string) (int, error) {
	if rel == "" {
		return c.root, nil
	}
	if c.fd >= 0 && c.rel == rel {
		return c.fd, nil
	}
	c.close()
	fd, err := openBeneath(c.root, rel)
	if err != nil {
		return -1, err
	}
	c.fd, c.rel = fd, rel
	return fd, nil
}

func (c *dirCache) close() {
	if c.fd >= 0 {
		unix.Close(c.fd)
		c.fd = -1
	}
}

// openBeneath opens the directory rel below rootFd following no symlink and
// crossing no mount: openat2 with RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|
// RESOLVE_NO_XDEV, or one O_NOFOLLOW openat per component on kernels
// without it.
func openBeneath(rootFd int, rel string) (int, error) {
	flags := unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	how := unix.OpenHow{Flags: uint64(flags),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_XDEV | unix.RESOLVE_NO_MAGICLINKS}
	fd, err := unix.Openat2(rootFd, rel, &how)
	if !errors.Is(err, unix.ENOSYS) {
		return fd, err
	}
	var rs unix.Stat_t
	if err := unix.Fstat(rootFd, &rs); err != nil {
		return -1, err
	}
	cur, err := unix.Dup(rootFd)
	if err != nil {
		return -1, err
	}
	for _, c := range strings.Split(rel, "/") {
		if c == "" || c == "." || c == ".." {
			unix.Close(cur)
			return -1, fmt.Errorf("path component %q: %w", c, unix.EXDEV)
		}
		next, err := unix.Openat(cur, c, flags, 0)
		unix.Close(cur)
		if err != nil {
			return -1, err
		}
		var st unix.Stat_t
		if err := unix.Fstat(next, &st); err != nil || st.Dev != rs.Dev {
			unix.Close(next)
			return -1, unix.EXDEV
		}
		cur = next
	}
	return cur, nil
}
