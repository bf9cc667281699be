package migrate

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

const mountinfoDir = testdataDir + "/mountinfo"

func readMountInfo(t testing.TB, name string) []Mount {
	t.Helper()
	ms, err := ParseMountInfoFile(filepath.Join(mountinfoDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

func mountByID(t *testing.T, ms []Mount, id int) Mount {
	t.Helper()
	for _, m := range ms {
		if m.ID == id {
			return m
		}
	}
	t.Fatalf("no mount %d", id)
	return Mount{}
}

func TestParseMountInfoDockerSelfBind(t *testing.T) {
	ms := readMountInfo(t, "docker-selfbind")
	if len(ms) != 6 {
		t.Fatalf("%d mounts, want 6", len(ms))
	}
	want := Mount{ID: 45, Major: 254, Minor: 0, Root: "/var/lib/docker", MountPoint: "/var/lib/docker", FSType: "ext4"}
	if got := mountByID(t, ms, 45); got != want {
		t.Errorf("mount 45 = %+v, want %+v", got, want)
	}
	if got := mountByID(t, ms, 28); !got.ReadOnly || got.FSType != "tmpfs" || got.Major != 0 || got.Minor != 25 {
		t.Errorf("mount 28 = %+v, want a read-only tmpfs 0:25", got)
	}
}

func TestParseMountInfoEscaped(t *testing.T) {
	ms := readMountInfo(t, "escaped")
	if got := mountByID(t, ms, 46); got.Root != "/data/my docker" || got.MountPoint != "/var/lib/my docker" {
		t.Errorf("mount 46: root %q point %q", got.Root, got.MountPoint)
	}
	if got := mountByID(t, ms, 47); got.Root != `/back\slash` || got.MountPoint != "/mnt/tab\tx" {
		t.Errorf("mount 47: root %q point %q", got.Root, got.MountPoint)
	}
}

func TestParseMountInfoMalformed(t *testing.T) {
	if _, err := ParseMountInfoFile(filepath.Join(mountinfoDir, "malformed-no-separator")); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("err = %v, want one naming line 2", err)
	}
	for _, line := range []string{
		"x 1 254:0 / / rw - ext4 /dev/vda rw",
		"27 1 2540 / / rw - ext4 /dev/vda rw",
		"27 1 254:0 / / rw -",
	} {
		if _, err := ParseMountInfo(strings.NewReader(line + "\n")); err == nil {
			t.Errorf("%q parsed", line)
		}
	}
}

func TestFSPath(t *testing.T) {
	docker := mountByID(t, readMountInfo(t, "docker-selfbind"), 45)
	home := mountByID(t, readMountInfo(t, "btrfs-subvolumes"), 60)
	tests := []struct {
		m    Mount
		dir  string
		want string
		ok   bool
	}{
		{docker, "/var/lib/docker/volumes/v", "/var/lib/docker/volumes/v", true},
		{docker, "/var/lib/docker", "/var/lib/docker", true},
		{docker, "/var/lib/dockerX", "", false},
		{home, "/home/alice/.local/share/docker", "/@home/alice/.local/share/docker", true},
		{home, "/var", "", false},
	}
	for _, tt := range tests {
		got, ok := fsPath(tt.m, tt.dir)
		if got != tt.want || ok != tt.ok {
			t.Errorf("fsPath(%s, %s) = %q %v, want %q %v", tt.m.MountPoint, tt.dir, got, ok, tt.want, tt.ok)
		}
	}
}

func TestCloneCandidates(t *testing.T) {
	const (
		vol  = "/var/lib/docker/volumes/v"
		home = "/home/alice/.local/share/docker/volumes"
	)
	tests := []struct {
		name         string
		fixture      string
		major, minor uint32
		src, dst     string // fs-relative
		want         []int  // mount ids, best first
		wantRel      [2]string
	}{
		// the usual host: / and dockerd's self-bind of /var/lib/docker
		{"docker self-bind", "docker-selfbind", 254, 0, vol, home, []int{27}, [2]string{"var/lib/docker/volumes/v", "home/alice/.local/share/docker/volumes"}},
		// both below /var/lib/docker: the deeper root first
		{"deeper root first", "docker-selfbind", 254, 0, vol, "/var/lib/docker/tmp", []int{45, 27}, [2]string{"volumes/v", "tmp"}},
		// btrfs: / is subvolume @, dockerd binds @/var/lib/docker
		{"btrfs self-bind", "btrfs-subvolumes", 0, 31, "/@" + vol, "/@/home/alice", []int{25}, [2]string{"var/lib/docker/volumes/v", "home/alice"}},
		// subvolumes @ and @home (st_dev already tells them apart)
		{"btrfs subvolumes apart", "btrfs-subvolumes", 0, 31, "/@" + vol, "/@home/alice", nil, [2]string{}},
		// the top level also mounted twice: writable first, then the deepest root
		{"btrfs top level", "btrfs-toplevel", 0, 31, "/@" + vol, "/@/srv", []int{25, 71, 70}, [2]string{"var/lib/docker/volumes/v", "srv"}},
		// a namespace file's mount is no candidate
		{"nsfs", "docker-selfbind", 0, 4, vol, home, nil, [2]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := cloneCandidates(readMountInfo(t, tt.fixture), tt.major, tt.minor, tt.src, tt.dst)
			var ids []int
			for _, c := range got {
				ids = append(ids, c.Mount.ID)
			}
			if !slices.Equal(ids, tt.want) {
				t.Fatalf("candidates %v, want %v", ids, tt.want)
			}
			if len(got) > 0 && (got[0].SrcRel != tt.wantRel[0] || got[0].DstRel != tt.wantRel[1]) {
				t.Errorf("relative paths %q %q, want %q", got[0].SrcRel, got[0].DstRel, tt.wantRel)
			}
		})
	}
}

func FuzzParseMountInfo(f *testing.F) {
	ents, err := os.ReadDir(mountinfoDir)
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(mountinfoDir, e.Name()))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, err := ParseMountInfo(strings.NewReader(string(b)))
		if err != nil {
			return
		}
		for _, m := range ms {
			if m.Root == "" || m.MountPoint == "" || m.FSType == "" {
				t.Fatalf("parsed %+v", m)
			}
		}
	})
}

// The tests below mount: they need root. Every mount is detached by
// t.Cleanup.

func requireMounts(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
}

// mountT mounts (or binds, with fstype "") src on dst and detaches it at
// the end of the test.
func mountT(t *testing.T, src, dst, fstype string) {
	t.Helper()
	flags := uintptr(0)
	if fstype == "" {
		flags = unix.MS_BIND
	}
	if err := unix.Mount(src, dst, fstype, flags, ""); err != nil {
		t.Fatalf("mount %s on %s: %v", src, dst, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dst, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			t.Errorf("unmount %s: %v", dst, err)
		}
	})
}

func mkdirs(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// selfBindFS is a tmpfs with a/src (a file and a subdirectory) and b, b
// bind-mounted onto itself: one filesystem, two mounts, as dockerd does
// with /var/lib/docker.
func selfBindFS(t *testing.T) (root string) {
	t.Helper()
	root = filepath.Join(t.TempDir(), "fs")
	mkdirs(t, root)
	mountT(t, "tmpfs", root, "tmpfs")
	mkdirs(t, filepath.Join(root, "a/src/sub"), filepath.Join(root, "b"))
	if err := os.WriteFile(filepath.Join(root, "a/src/sub/f"), []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	mountT(t, filepath.Join(root, "b"), filepath.Join(root, "b"), "")
	return root
}

func TestRenameDirThroughClone(t *testing.T) {
	requireMounts(t)
	root := selfBindFS(t)
	src, dst := filepath.Join(root, "a/src"), filepath.Join(root, "b/dst")
	ino := inode(t, src)
	if err := os.Rename(src, dst); !errors.Is(err, unix.EXDEV) {
		t.Fatalf("plain rename across the self-bind: %v, want EXDEV (the case under test)", err)
	}
	r, err := openRename(src, filepath.Dir(dst))
	if err != nil {
		t.Fatal(err)
	}
	if r.Via == nil || r.Via.MountPoint != root || r.Via.Root != "/" {
		t.Errorf("route via %+v, want the tmpfs mount at %s", r.Via, root)
	}
	r.Close()

	if err := RenameDir(src, dst); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "sub/f")); err != nil || string(b) != "data" {
		t.Errorf("renamed data: %q %v", b, err)
	}
	if got := inode(t, dst); got != ino {
		t.Errorf("inode %d after the rename, was %d", got, ino)
	}
	if _, err := os.Lstat(src); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("source still there: %v", err)
	}
	// and back, as a rollback does
	if err := RenameDir(dst, src); err != nil {
		t.Fatal(err)
	}
	if got := inode(t, src); got != ino {
		t.Errorf("inode %d after renaming back, was %d", got, ino)
	}
}

func TestRenameDirSameMount(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "sub/dst")
	mkdirs(t, src, filepath.Dir(dst))
	r, err := openRename(src, filepath.Dir(dst))
	if err != nil {
		t.Fatal(err)
	}
	if r.Via != nil {
		t.Errorf("one mount routed through a clone of %s", r.Via.MountPoint)
	}
	r.Close()
	if err := RenameDir(src, dst); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dst); err != nil {
		t.Error(err)
	}
}

func TestRenameDirRefuses(t *testing.T) {
	requireMounts(t)
	root := selfBindFS(t)
	src := filepath.Join(root, "a/src")
	ino := inode(t, src)

	other := filepath.Join(t.TempDir(), "other")
	mkdirs(t, other)
	mountT(t, "tmpfs", other, "tmpfs")

	// a mount point of the same filesystem inside a/
	mp := filepath.Join(root, "a/mp")
	mkdirs(t, mp)
	mountT(t, mp, mp, "")

	// one filesystem whose only mounts show a/ and b/ apart
	split := filepath.Join(t.TempDir(), "split")
	d1, d2 := filepath.Join(t.TempDir(), "d1"), filepath.Join(t.TempDir(), "d2")
	mkdirs(t, split, d1, d2)
	mountT(t, "tmpfs", split, "tmpfs")
	mkdirs(t, filepath.Join(split, "a/src"), filepath.Join(split, "b"))
	mountT(t, filepath.Join(split, "a"), d1, "")
	mountT(t, filepath.Join(split, "b"), d2, "")
	if err := unix.Unmount(split, 0); err != nil {
		t.Fatal(err)
	}

	if err := os.Symlink(filepath.Join(root, "a"), filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("src", filepath.Join(root, "a/srclink")); err != nil {
		t.Fatal(err)
	}
	mkdirs(t, filepath.Join(root, "b/taken"))

	tests := []struct {
		name, src, dst string
		xfs            string // a *CrossFilesystemError with this reason, else any error
	}{
		{"other filesystem", src, filepath.Join(other, "x"), "different filesystems"},
		{"source is a mount point", mp, filepath.Join(root, "b/x"), "is a mount point"},
		{"no mount shows both", filepath.Join(d1, "src"), filepath.Join(d2, "x"), "no mount of it shows both"},
		{"symlink on the source path", filepath.Join(root, "link/src"), filepath.Join(root, "b/x"), ""},
		{"symlink on the target path", src, filepath.Join(root, "link/x"), ""},
		{"source is a symlink", filepath.Join(root, "a/srclink"), filepath.Join(root, "b/x"), ""},
		{"target exists", src, filepath.Join(root, "b/taken"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := RenameDir(tt.src, tt.dst)
			var xfs *CrossFilesystemError
			switch {
			case err == nil:
				t.Fatalf("renamed %s to %s", tt.src, tt.dst)
			case tt.xfs != "" && (!errors.As(err, &xfs) || !strings.Contains(xfs.Reason, tt.xfs)):
				t.Errorf("err = %v, want a cross-filesystem refusal saying %q", err, tt.xfs)
			case tt.xfs == "" && errors.As(err, &xfs):
				t.Errorf("err = %v, want no cross-filesystem refusal", err)
			}
			if tt.xfs != "" {
				// the plan's check says the same
				if cerr := CheckRenameDir(tt.src, filepath.Dir(tt.dst)); !errors.As(cerr, &xfs) {
					t.Errorf("CheckRenameDir = %v, RenameDir = %v", cerr, err)
				}
			}
			if got := inode(t, src); got != ino {
				t.Errorf("source changed: inode %d, was %d", got, ino)
			}
		})
	}
}
