package chown

import (
	"encoding/binary"
	"errors"
	"io/fs"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// testMap is the map of a rootless daemon for a user with uid and gid 1500
// and the subordinate range 231072:65536, the rig's range.
func testMap(t testing.TB) IDMap {
	t.Helper()
	m, err := RootlessMap(1500, 1500, []SubRange{{231072, 65536}}, []SubRange{{231072, 65536}})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the walker changes owners")
	}
}

// capBytes encodes a capability xattr by hand, independent of the codec.
func capBytes(version int, permitted uint32, rootid uint32) []byte {
	magic := uint32(version)<<24 | 1 // effective
	b := binary.LittleEndian.AppendUint32(nil, magic)
	b = binary.LittleEndian.AppendUint32(b, permitted)
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = binary.LittleEndian.AppendUint32(b, 0)
	if version == 3 {
		b = binary.LittleEndian.AppendUint32(b, rootid)
	}
	return b
}

// aclBytes encodes a POSIX ACL xattr by hand: user::rw-, the named users and
// groups, group::r--, mask::rwx, other::r--.
func aclBytes(users, groups []uint32) []byte {
	b := binary.LittleEndian.AppendUint32(nil, 2)
	ent := func(tag, perm uint16, id uint32) {
		b = binary.LittleEndian.AppendUint16(b, tag)
		b = binary.LittleEndian.AppendUint16(b, perm)
		b = binary.LittleEndian.AppendUint32(b, id)
	}
	ent(ACLUserObj, 6, ACLUndefinedID)
	for _, u := range users {
		ent(ACLUser, 6, u)
	}
	ent(ACLGroupObj, 4, ACLUndefinedID)
	for _, g := range groups {
		ent(ACLGroup, 5, g)
	}
	ent(ACLMask, 7, ACLUndefinedID)
	ent(ACLOther, 4, ACLUndefinedID)
	return b
}

const sparseSize = 64 << 20

// tree is a tree with every awkward case the walker must handle, as a
// rootful Docker volume could hold it.
type tree struct {
	root    string // the tree
	mounted bool   // mnt/ is a tmpfs mount point
}

// buildFixture creates the tree under a fresh temporary directory.
func buildFixture(t testing.TB) *tree {
	t.Helper()
	requireRoot(t)
	base := t.TempDir()
	root := filepath.Join(base, "tree")
	f := &tree{root: root}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	file := func(rel string, uid, gid int, mode os.FileMode, data string) {
		t.Helper()
		p := filepath.Join(root, rel)
		must(os.MkdirAll(filepath.Dir(p), 0o755))
		must(os.WriteFile(p, []byte(data), 0o644))
		must(os.Lchown(p, uid, gid))
		must(os.Chmod(p, mode))
	}
	dir := func(rel string, uid, gid int, mode os.FileMode) {
		t.Helper()
		p := filepath.Join(root, rel)
		must(os.MkdirAll(p, 0o755))
		must(os.Lchown(p, uid, gid))
		must(os.Chmod(p, mode))
	}
	dir(".", 0, 0, 0o755)
	for _, id := range []int{0, 33, 70, 999, 1000, 65534} {
		file(filepath.Join("owners", "f"+itoa(id)), id, id, 0o644, "owned by "+itoa(id))
	}
	dir("owners", 33, 33, 0o750)
	file("bin/setuid", 0, 0, 0o755|os.ModeSetuid, "#!/bin/true\n")
	file("bin/setgid", 0, 50, 0o755|os.ModeSetgid, "#!/bin/true\n")
	dir("shared", 1000, 1000, 0o775|os.ModeSetgid)
	file("shared/data", 1000, 1000, 0o664, "shared data")

	file("bin/capv2", 0, 0, 0o755, "caps v2")
	must(SetXattr(filepath.Join(root, "bin/capv2"), XattrCapability, capBytes(2, 1<<10, 0)))
	file("bin/capv3", 0, 0, 0o755, "caps v3")
	must(SetXattr(filepath.Join(root, "bin/capv3"), XattrCapability, capBytes(3, 1<<13, 1000)))

	file("acl/file", 0, 0, 0o664, "acl'd")
	must(SetXattr(filepath.Join(root, "acl/file"), XattrACLAccess, aclBytes([]uint32{1000}, []uint32{33})))
	dir("acl/dir", 999, 999, 0o775)
	must(SetXattr(filepath.Join(root, "acl/dir"), XattrACLAccess, aclBytes([]uint32{999}, nil)))
	must(SetXattr(filepath.Join(root, "acl/dir"), XattrACLDefault, aclBytes([]uint32{999, 70}, []uint32{70})))
	file("acl/dir/user-xattr", 70, 70, 0o644, "keeps its user xattr")
	must(SetXattr(filepath.Join(root, "acl/dir/user-xattr"), "user.note", []byte("kept")))

	file("links/a", 70, 70, 0o640, "hardlinked")
	dir("links/sub", 70, 70, 0o755)
	must(os.Link(filepath.Join(root, "links/a"), filepath.Join(root, "links/sub/b")))

	must(os.Symlink("/etc/shadow", filepath.Join(root, "shadow")))
	must(os.Symlink("owners/f0", filepath.Join(root, "inner")))
	must(os.Lchown(filepath.Join(root, "inner"), 33, 33))
	must(os.Symlink("../../etc/passwd", filepath.Join(root, "links/escape")))

	must(unix.Mkfifo(filepath.Join(root, "fifo"), 0o600))
	must(os.Lchown(filepath.Join(root, "fifo"), 999, 999))
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(root, "sock"), Net: "unix"})
	must(err)
	ln.SetUnlinkOnClose(false)
	must(ln.Close())
	must(os.Lchown(filepath.Join(root, "sock"), 33, 33))
	must(unix.Mknod(filepath.Join(root, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))

	sp := filepath.Join(root, "sparse")
	sf, err := os.Create(sp)
	must(err)
	must(sf.Truncate(sparseSize))
	_, err = sf.WriteAt([]byte(strings.Repeat("x", 4096)), sparseSize-4096)
	must(err)
	must(sf.Close())
	must(os.Chown(sp, 999, 999))

	file("big-id", 70000, 70000, 0o644, "beyond the subordinate range")
	file("a/b/c/d/e/deep", 1000, 1000, 0o600, "deep")
	for i := range 40 {
		file(filepath.Join("many", "d"+itoa(i%7), "f"+itoa(i)), i%3*1000, i%5, 0o644, "n")
	}

	dir("mnt", 0, 0, 0o755)
	if err := unix.Mount("tmpfs", filepath.Join(root, "mnt"), "tmpfs", 0, "size=1m"); err != nil {
		if !errors.Is(err, unix.EPERM) {
			t.Fatalf("mount tmpfs: %v", err)
		}
		t.Logf("no nested mount: %v", err)
	} else {
		f.mounted = true
		t.Cleanup(func() { unix.Unmount(filepath.Join(root, "mnt"), unix.MNT_DETACH) })
		file("mnt/inside", 0, 0, 0o644, "on another filesystem")
	}
	ageAtimes(t, root)
	return f
}

func itoa(i int) string { return strconv.Itoa(i) }

// snap is what the tests compare of one entry.
type snap struct {
	Ino, Nlink     uint64
	UID, GID, Mode uint32
	Size, Blocks   int64
	Mtime, Atime   unix.Timespec
	Ctime          unix.Timespec
	Target         string
	Xattrs         map[string]string
	Rdev           uint64
}

// snapshot records every entry below root (mounts included) with Lstat,
// independently of the walker. It reads directories with O_NOATIME so that
// taking it changes no access time.
func snapshot(t testing.TB, root string) map[string]snap {
	t.Helper()
	out := map[string]snap{}
	var walk func(rel string)
	walk = func(rel string) {
		p := filepath.Join(root, rel)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		s := snap{Ino: st.Ino, Nlink: uint64(st.Nlink), UID: st.Uid, GID: st.Gid, Mode: st.Mode, Size: st.Size,
			Blocks: st.Blocks, Mtime: st.Mtim, Atime: st.Atim, Ctime: st.Ctim, Rdev: uint64(st.Rdev), Xattrs: map[string]string{}}
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			s.Target, _ = os.Readlink(p)
			s.Atime = unix.Timespec{} // readlink touches it; Linux has no way around that
		}
		names, err := ListXattrs(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			v, err := GetXattr(p, n)
			if err != nil {
				t.Fatal(err)
			}
			s.Xattrs[n] = string(v)
		}
		out[rel] = s
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return
		}
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_NOATIME|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		d := os.NewFile(uintptr(fd), p)
		entries, err := d.Readdirnames(-1)
		d.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range entries {
			walk(filepath.Join(rel, n))
		}
	}
	walk(".")
	return out
}

// ageAtimes sets every access time below root an hour before its mtime, so
// that under relatime any read would update it.
func ageAtimes(t testing.TB, root string) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		ts := []unix.Timespec{{Sec: st.Mtim.Sec - 3600}, st.Mtim}
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// independentCount counts the tree the way Audit should, with WalkDir and
// Lstat, not entering other filesystems.
func independentCount(t testing.TB, root string) (files, dirs, symlinks, hardlinks, fifos, sockets, devices int64, bytes int64) {
	t.Helper()
	var rootSt unix.Stat_t
	if err := unix.Lstat(root, &rootSt); err != nil {
		t.Fatal(err)
	}
	seen := map[[2]uint64]bool{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		if st.Dev != rootSt.Dev {
			return fs.SkipDir
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR && st.Nlink > 1 {
			k := [2]uint64{st.Dev, st.Ino}
			if seen[k] {
				hardlinks++
				return nil
			}
			seen[k] = true
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			files++
			bytes += st.Size
		case unix.S_IFDIR:
			dirs++
		case unix.S_IFLNK:
			symlinks++
		case unix.S_IFIFO:
			fifos++
		case unix.S_IFSOCK:
			sockets++
		case unix.S_IFCHR, unix.S_IFBLK:
			devices++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return
}

// diffSnaps lists the differences between two snapshots, comparing what
// keep selects.
func diffSnaps(a, b map[string]snap, same func(x, y snap) bool) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(a)) {
		y, ok := b[k]
		if !ok {
			out = append(out, k+": missing after")
			continue
		}
		if !same(a[k], y) {
			out = append(out, k+": differs")
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, k+": new")
		}
	}
	return out
}

func exactlySame(x, y snap) bool {
	return x.Ino == y.Ino && x.UID == y.UID && x.GID == y.GID && x.Mode == y.Mode && x.Size == y.Size &&
		x.Mtime == y.Mtime && x.Atime == y.Atime && x.Ctime == y.Ctime && x.Target == y.Target &&
		maps.Equal(x.Xattrs, y.Xattrs)
}

// restored is exactlySame but for ctime, which a chown back must change.
func restored(x, y snap) bool {
	x.Ctime, y.Ctime = unix.Timespec{}, unix.Timespec{}
	return exactlySame(x, y)
}

// shadowStat is /etc/shadow's stat, which no walk may ever change.
func shadowStat(t testing.TB) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat("/etc/shadow", &st); err != nil {
		t.Skipf("no /etc/shadow: %v", err)
	}
	return st
}

func TestHumanBytes(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536, "1.5 KiB"}, {192 << 20, "192.0 MiB"}, {3 << 30, "3.0 GiB"},
	}
	for _, tt := range tests {
		if got := HumanBytes(tt.n); got != tt.want {
			t.Errorf("HumanBytes(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}
