package migrate

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// --volumes move renames a directory from the rootful data root into the
// rootless one. rename(2) works within one vfsmount only, but what it needs
// is one filesystem (superblock): dockerd bind-mounts /var/lib/docker onto
// itself, so on an ordinary host the two data roots are one ext4 seen
// through two mounts and a plain rename fails with EXDEV. The rename then
// goes through a detached, non-recursive clone of a mount of that
// filesystem whose root holds both directories (open_tree(2)
// OPEN_TREE_CLONE): in the clone the self-bind is absent, the underlying
// directories are visible, and both ends are on one vfsmount. The clone is
// freed when its last fd closes.

// Mount is one line of /proc/self/mountinfo, as far as a move needs it.
type Mount struct {
	// ID is the mount ID (statx STATX_MNT_ID).
	ID int
	// Major and Minor are the filesystem's device numbers (st_dev).
	Major, Minor uint32
	// Root is the directory of the filesystem the mount shows at its mount
	// point ("/" unless it is a bind mount of a subdirectory).
	Root string
	// MountPoint is where it is mounted, relative to the process's root.
	MountPoint string
	// ReadOnly is set for a mount with the per-mount "ro" option.
	ReadOnly bool
	FSType   string
}

// ParseMountInfo reads the /proc/PID/mountinfo format (proc(5)).
func ParseMountInfo(r io.Reader) ([]Mount, error) {
	var out []Mount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" {
			continue
		}
		m, err := parseMountLine(line)
		if err != nil {
			return nil, fmt.Errorf("mountinfo line %d: %w", n, err)
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("mountinfo: %w", err)
	}
	return out, nil
}

// ParseMountInfoFile reads a mountinfo file, normally /proc/self/mountinfo.
func ParseMountInfoFile(path string) ([]Mount, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseMountInfo(f)
}

// parseMountLine parses "ID PARENT MAJ:MIN ROOT POINT OPTS [TAGS...] - TYPE SRC SUPEROPTS".
func parseMountLine(line string) (Mount, error) {
	f := strings.Fields(line)
	sep := -1
	for i := 6; i < len(f); i++ {
		if f[i] == "-" {
			sep = i
			break
		}
	}
	if len(f) < 7 || sep < 0 || sep+1 >= len(f) {
		return Mount{}, fmt.Errorf("malformed: %q", line)
	}
	var m Mount
	var err error
	if m.ID, err = strconv.Atoi(f[0]); err != nil {
		return Mount{}, fmt.Errorf("mount id %q: %w", f[0], err)
	}
	maj, min, ok := strings.Cut(f[2], ":")
	if !ok {
		return Mount{}, fmt.Errorf("device %q", f[2])
	}
	a, err1 := strconv.ParseUint(maj, 10, 32)
	b, err2 := strconv.ParseUint(min, 10, 32)
	if err1 != nil || err2 != nil {
		return Mount{}, fmt.Errorf("device %q", f[2])
	}
	m.Major, m.Minor = uint32(a), uint32(b)
	m.Root, m.MountPoint = unescapeMount(f[3]), unescapeMount(f[4])
	// A root need not be a path ("net:[4026531833]" of an nsfs mount):
	// such a mount is never a candidate for a clone.
	if m.Root == "" || m.MountPoint == "" {
		return Mount{}, fmt.Errorf("empty root or mount point: %q", line)
	}
	for _, o := range strings.Split(f[5], ",") {
		if o == "ro" {
			m.ReadOnly = true
		}
	}
	m.FSType = f[sep+1]
	return m, nil
}

// unescapeMount undoes the kernel's octal escapes (\040 space, \011 tab,
// \012 newline, \134 backslash) of mountinfo paths.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// fsPath is the location of dir within its filesystem: the root of the
// mount that contains it followed by the path below that mount's point.
func fsPath(m Mount, dir string) (string, bool) {
	if !filepath.IsAbs(m.Root) || !filepath.IsAbs(m.MountPoint) {
		return "", false
	}
	rel, err := filepath.Rel(m.MountPoint, dir)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", false
	}
	return filepath.Join(m.Root, rel), true
}

// below returns p relative to root when root is p or an ancestor of it.
func below(root, p string) (string, bool) {
	if !filepath.IsAbs(root) || !filepath.IsAbs(p) {
		return "", false
	}
	rel, err := filepath.Rel(root, p)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", false
	}
	return rel, true
}

// cloneCandidate is a mount through whose clone two fs-relative
// directories can be reached, and their paths below its root.
type cloneCandidate struct {
	Mount          Mount
	SrcRel, DstRel string
}

// cloneCandidates picks the mounts of the filesystem major:minor whose
// root is an ancestor of (or equal to) both fs-relative paths, writable
// first and then the deepest root (the least of the filesystem exposed).
func cloneCandidates(mounts []Mount, major, minor uint32, srcFS, dstFS string) []cloneCandidate {
	var out []cloneCandidate
	for _, m := range mounts {
		if m.Major != major || m.Minor != minor {
			continue
		}
		s, ok1 := below(m.Root, srcFS)
		d, ok2 := below(m.Root, dstFS)
		if ok1 && ok2 {
			out = append(out, cloneCandidate{m, s, d})
		}
	}
	better := func(a, b cloneCandidate) bool {
		if a.Mount.ReadOnly != b.Mount.ReadOnly {
			return !a.Mount.ReadOnly
		}
		return len(a.Mount.Root) > len(b.Mount.Root)
	}
	// insertion sort: stable, and the lists are short
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && better(out[j], out[j-1]); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// CrossFilesystemError says why an entry cannot be renamed from one
// directory into another.
type CrossFilesystemError struct {
	Source, TargetDir string
	Reason            string
}

func (e *CrossFilesystemError) Error() string {
	return fmt.Sprintf("%s cannot be renamed into %s: %s", e.Source, e.TargetDir, e.Reason)
}

// ErrNoOpenTree is wrapped when two paths share a filesystem but not a
// mount and the kernel cannot clone a mount (open_tree(2), Linux 5.2).
var ErrNoOpenTree = errors.New("this kernel lacks open_tree(2), needed to rename across two mounts of one filesystem")

// mountInfoPath is read by [openRename]; tests point it elsewhere.
var mountInfoPath = "/proc/self/mountinfo"

// renamer holds open the two directories of a rename, reached without
// following any symlink: directly when both are on one mount, else below a
// detached clone of a mount holding both.
type renamer struct {
	src, dst int    // directory fds
	name     string // the entry's name in src
	tree     int    // the clone's fd, or -1
	// Via is the mount whose clone holds both directories (nil: direct).
	Via *Mount
}

// Close closes the directories and frees the clone.
func (r *renamer) Close() error {
	for _, fd := range []int{r.src, r.dst, r.tree} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	r.src, r.dst, r.tree = -1, -1, -1
	return nil
}

// openRename prepares renaming the entry src (a directory, not a symlink,
// not a mount point) into the existing directory dstDir. It is the one test
// of whether a move can be done: the plan calls it and closes, apply calls
// it and renames. A *CrossFilesystemError says the two are not on one
// filesystem, or no mount of it can be cloned to hold both.
func openRename(src, dstDir string) (*renamer, error) {
	src, dstDir = filepath.Clean(src), filepath.Clean(dstDir)
	if !filepath.IsAbs(src) || !filepath.IsAbs(dstDir) || src == "/" {
		return nil, fmt.Errorf("rename %s into %s: absolute paths needed", src, dstDir)
	}
	srcDir, name := filepath.Dir(src), filepath.Base(src)
	r := &renamer{src: -1, dst: -1, tree: -1, name: name}
	ok := false
	defer func() {
		if !ok {
			r.Close()
		}
	}()
	var err error
	if r.src, err = openDirNoSymlinks(unix.AT_FDCWD, srcDir, false); err != nil {
		return nil, fmt.Errorf("open %s: %w", srcDir, err)
	}
	if r.dst, err = openDirNoSymlinks(unix.AT_FDCWD, dstDir, false); err != nil {
		return nil, fmt.Errorf("open %s: %w", dstDir, err)
	}
	sd, err := statFd(r.src, "")
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", srcDir, err)
	}
	dd, err := statFd(r.dst, "")
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", dstDir, err)
	}
	ent, err := statFd(r.src, name)
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", src, err)
	}
	if ent.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil, fmt.Errorf("%s is not a directory (a symlink is never followed)", src)
	}
	xdev := func(reason string, args ...any) error {
		return &CrossFilesystemError{Source: src, TargetDir: dstDir, Reason: fmt.Sprintf(reason, args...)}
	}
	if ent.dev() != dd.dev() {
		return nil, xdev("they are on different filesystems (devices %s and %s)", ent.devString(), dd.devString())
	}
	if ent.dev() != sd.dev() || ent.mnt != sd.mnt {
		return nil, xdev("%s is a mount point", src)
	}
	if sd.mnt == dd.mnt {
		ok = true
		return r, nil
	}

	// One filesystem, two mounts: find a mount of it whose root holds both.
	mounts, err := ParseMountInfoFile(mountInfoPath)
	if err != nil {
		return nil, err
	}
	var ms, md *Mount
	for i := range mounts {
		switch mounts[i].ID {
		case sd.mnt:
			ms = &mounts[i]
		case dd.mnt:
			md = &mounts[i]
		}
	}
	if ms == nil || md == nil {
		return nil, xdev("their mounts (ids %d and %d) are not in %s", sd.mnt, dd.mnt, mountInfoPath)
	}
	srcFS, ok1 := fsPath(*ms, srcDir)
	dstFS, ok2 := fsPath(*md, dstDir)
	if !ok1 || !ok2 {
		return nil, xdev("their paths are not below their mount points %s and %s", ms.MountPoint, md.MountPoint)
	}
	// Mounts are matched by mountinfo's device, the superblock's: on btrfs
	// st_dev is the subvolume's and differs from it.
	if ms.Major != md.Major || ms.Minor != md.Minor {
		return nil, xdev("their mounts are of different filesystems (%d:%d and %d:%d)", ms.Major, ms.Minor, md.Major, md.Minor)
	}
	cands := cloneCandidates(mounts, ms.Major, ms.Minor, srcFS, dstFS)
	if len(cands) == 0 {
		return nil, xdev("they are on one filesystem (%d:%d) but no mount of it shows both %s and %s", ms.Major, ms.Minor, srcFS, dstFS)
	}
	var errs []error
	for _, c := range cands {
		tree, s, d, err := openInClone(c, sd, dd)
		if errors.Is(err, ErrNoOpenTree) {
			return nil, xdev("%v", err)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("through %s: %w", c.Mount.MountPoint, err))
			continue
		}
		unix.Close(r.src)
		unix.Close(r.dst)
		r.tree, r.src, r.dst = tree, s, d
		m := c.Mount
		r.Via = &m
		// the entry must be the one seen through the original path
		e2, err := statFd(r.src, name)
		if err != nil || e2.dev() != ent.dev() || e2.Ino != ent.Ino {
			return nil, xdev("%s in the clone of %s is not the same directory", src, m.MountPoint)
		}
		ok = true
		return r, nil
	}
	return nil, xdev("no mount of their filesystem could be cloned to hold both: %v", errors.Join(errs...))
}

// openInClone clones the mount c (non-recursive) and opens both
// directories below it, checking each is the directory the original path
// names (same device and inode).
func openInClone(c cloneCandidate, sd, dd statInfo) (tree, src, dst int, err error) {
	tree, src, dst = -1, -1, -1
	defer func() {
		if err != nil {
			for _, fd := range []int{tree, src, dst} {
				if fd >= 0 {
					unix.Close(fd)
				}
			}
			tree, src, dst = -1, -1, -1
		}
	}()
	// The mount point is opened without following a symlink and must be
	// the root of that very mount, or another mount stacked there or a
	// swapped component would be cloned instead.
	mp, err := openDirNoSymlinks(unix.AT_FDCWD, c.Mount.MountPoint, true)
	if err != nil {
		return
	}
	mst, err := statFd(mp, "")
	if err == nil && (mst.mnt != c.Mount.ID || mst.Attributes&unix.STATX_ATTR_MOUNT_ROOT == 0 && mst.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT != 0) {
		err = fmt.Errorf("%s is not the root of mount %d", c.Mount.MountPoint, c.Mount.ID)
	}
	if err != nil {
		unix.Close(mp)
		return
	}
	tree, err = unix.OpenTree(mp, "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH)
	unix.Close(mp)
	if errors.Is(err, unix.ENOSYS) {
		err = ErrNoOpenTree
	}
	if err != nil {
		err = fmt.Errorf("open_tree: %w", err)
		return
	}
	for _, x := range []struct {
		rel  string
		want statInfo
		fd   *int
	}{{c.SrcRel, sd, &src}, {c.DstRel, dd, &dst}} {
		if *x.fd, err = openDirNoSymlinks(tree, x.rel, false); err != nil {
			err = fmt.Errorf("open %s in the clone: %w", x.rel, err)
			return
		}
		var got statInfo
		if got, err = statFd(*x.fd, ""); err != nil {
			return
		}
		if got.dev() != x.want.dev() || got.Ino != x.want.Ino {
			err = fmt.Errorf("%s in the clone is not the same directory", x.rel)
			return
		}
	}
	return
}

// rename renames the entry to name in the target directory, never over an
// existing entry, and syncs both directories.
func (r *renamer) rename(name string) error {
	err := unix.Renameat2(r.src, r.name, r.dst, name, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		// a filesystem without RENAME_NOREPLACE: check, then rename
		var st unix.Stat_t
		if e := unix.Fstatat(r.dst, name, &st, unix.AT_SYMLINK_NOFOLLOW); !errors.Is(e, unix.ENOENT) {
			return fmt.Errorf("rename: %s exists (%v)", name, e)
		}
		err = unix.Renameat(r.src, r.name, r.dst, name)
	}
	if err != nil {
		return fmt.Errorf("rename: %w", err)
	}
	_ = unix.Fsync(r.dst)
	_ = unix.Fsync(r.src)
	return nil
}

// RenameDir renames the directory src to dst (whose parent must exist and
// which must not exist), also when the two lie on different mounts of one
// filesystem. It never follows a symlink and never replaces an entry.
func RenameDir(src, dst string) error {
	r, err := openRename(src, filepath.Dir(dst))
	if err != nil {
		return err
	}
	defer r.Close()
	return r.rename(filepath.Base(dst))
}

// CheckRenameDir reports whether [RenameDir] could rename the directory src
// into the existing directory dstDir: the same test, nothing renamed.
func CheckRenameDir(src, dstDir string) error {
	r, err := openRename(src, dstDir)
	if err != nil {
		return err
	}
	return r.Close()
}

// openDirNoSymlinks opens the directory path relative to dirfd (beneath
// it unless dirfd is AT_FDCWD) with no symlink followed on the way.
// pathOnly opens it O_PATH. Without openat2 (Linux < 5.6) it walks the
// components with O_NOFOLLOW.
func openDirNoSymlinks(dirfd int, path string, pathOnly bool) (int, error) {
	flags := unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	if pathOnly {
		flags |= unix.O_PATH
	} else {
		flags |= unix.O_RDONLY
	}
	how := unix.OpenHow{Flags: uint64(flags), Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS}
	if dirfd != unix.AT_FDCWD {
		how.Resolve |= unix.RESOLVE_BENEATH | unix.RESOLVE_NO_XDEV
	}
	for {
		fd, err := unix.Openat2(dirfd, path, &how)
		if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
			continue
		}
		if errors.Is(err, unix.ENOSYS) {
			return walkNoSymlinks(dirfd, path, flags)
		}
		return fd, err
	}
}

// walkNoSymlinks opens path one component at a time with O_NOFOLLOW,
// refusing "..", so nothing outside dirfd (or "/") is reached.
func walkNoSymlinks(dirfd int, path string, flags int) (int, error) {
	cur := dirfd
	if filepath.IsAbs(path) {
		if dirfd != unix.AT_FDCWD {
			return -1, unix.EXDEV
		}
		fd, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, err
		}
		cur = fd
	}
	parts := strings.FieldsFunc(path, func(r rune) bool { return r == '/' })
	if len(parts) == 0 {
		parts = []string{"."}
	}
	for i, p := range parts {
		if p == ".." {
			if cur != dirfd {
				unix.Close(cur)
			}
			return -1, unix.EXDEV
		}
		fl := unix.O_PATH | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
		if i == len(parts)-1 {
			fl = flags
		}
		fd, err := unix.Openat(cur, p, fl, 0)
		if cur != dirfd {
			unix.Close(cur)
		}
		if err != nil {
			return -1, err
		}
		cur = fd
	}
	return cur, nil
}

// statInfo is a statx result with the mount id.
type statInfo struct {
	unix.Statx_t
	mnt int
}

func (s statInfo) dev() uint64 { return unix.Mkdev(s.Dev_major, s.Dev_minor) }

func (s statInfo) devString() string { return fmt.Sprintf("%d:%d", s.Dev_major, s.Dev_minor) }

// statFd statxes name relative to fd (fd itself when name is ""), never
// following a symlink, with the mount id from statx or, before Linux 5.8,
// from /proc/self/fdinfo.
func statFd(fd int, name string) (statInfo, error) {
	var s statInfo
	flags := unix.AT_SYMLINK_NOFOLLOW
	if name == "" {
		flags |= unix.AT_EMPTY_PATH
	}
	if err := unix.Statx(fd, name, flags, unix.STATX_BASIC_STATS|unix.STATX_MNT_ID, &s.Statx_t); err != nil {
		return s, err
	}
	if s.Mask&unix.STATX_MNT_ID != 0 {
		s.mnt = int(s.Mnt_id)
		return s, nil
	}
	target := fd
	if name != "" {
		f, err := unix.Openat(fd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return s, err
		}
		defer unix.Close(f)
		target = f
	}
	b, err := os.ReadFile("/proc/self/fdinfo/" + strconv.Itoa(target))
	if err != nil {
		return s, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "mnt_id:"); ok {
			s.mnt, err = strconv.Atoi(strings.TrimSpace(v))
			return s, err
		}
	}
	return s, errors.New("no mount id in fdinfo")
}
