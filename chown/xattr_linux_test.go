package chown

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// xattrFile creates an empty file in a fresh directory and skips the test
// when it cannot hold ACLs and capabilities.
func xattrFile(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("setting security.capability needs root")
	}
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lsetxattr(p, XattrACLAccess, fixture(t, "acl-access-u33rwx-g70r.bin"), 0); errors.Is(err, unix.ENOTSUP) {
		t.Skipf("the filesystem of %s has no POSIX ACLs", p)
	} else if err != nil {
		t.Fatal(err)
	}
	if err := unix.Lremovexattr(p, XattrACLAccess); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestXattrRoundTrip(t *testing.T) {
	p := xattrFile(t)
	if names, err := ListXattrs(p); err != nil || names != nil {
		t.Fatalf("ListXattrs of a new file = %q, %v; want nil, nil", names, err)
	}
	acl := fixture(t, "acl-access-u33rwx-g70r.bin")
	capV3 := fixture(t, "cap-v3-rootid1001-net-bind-service-ep.bin")
	if err := SetXattr(p, XattrACLAccess, acl); err != nil {
		t.Fatal(err)
	}
	if err := SetXattr(p, XattrCapability, capV3); err != nil {
		t.Fatal(err)
	}
	names, err := ListXattrs(p)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	if want := []string{XattrCapability, XattrACLAccess}; !slices.Equal(names, want) {
		t.Errorf("ListXattrs = %q, want %q", names, want)
	}
	for name, want := range map[string][]byte{XattrACLAccess: acl, XattrCapability: capV3} {
		got, err := GetXattr(p, name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("GetXattr %s = %x, want %x", name, got, want)
		}
	}
	// The kernel applies the ACL: the file's group class is the ACL mask.
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&0o070 != 0o070 {
		t.Errorf("mode %o: group bits are not the ACL mask rwx", st.Mode&0o777)
	}
}

func TestXattrShiftedValuesAccepted(t *testing.T) {
	p := xattrFile(t)
	m := rigMap(t)
	a, err := UnmarshalACL(fixture(t, "acl-default-u1000-g1000-u65534.bin"))
	if err != nil {
		t.Fatal(err)
	}
	// A default ACL belongs on a directory.
	dir := filepath.Dir(p)
	s, err := a.Shift(m.HostUID, m.HostGID)
	if err != nil {
		t.Fatal(err)
	}
	if err := SetXattr(dir, XattrACLDefault, s.Marshal()); err != nil {
		t.Fatal(err)
	}
	got, err := GetXattr(dir, XattrACLDefault)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, s.Marshal()) {
		t.Errorf("default ACL read back = %x, want %x", got, s.Marshal())
	}
	c, err := UnmarshalCapability(fixture(t, "cap-v2-eip-net-raw-sys-admin-chown.bin"))
	if err != nil {
		t.Fatal(err)
	}
	want := c.WithRootID(1001).Marshal()
	if err := SetXattr(p, XattrCapability, want); err != nil {
		t.Fatal(err)
	}
	if got, err := GetXattr(p, XattrCapability); err != nil || !bytes.Equal(got, want) {
		t.Errorf("capability read back = %x, %v; want %x", got, err, want)
	}
}

func TestGetXattrMissing(t *testing.T) {
	p := xattrFile(t)
	_, err := GetXattr(p, XattrCapability)
	if !errors.Is(err, ErrNoXattr) {
		t.Errorf("GetXattr of a missing attribute = %v, want ErrNoXattr", err)
	}
	if !strings.Contains(err.Error(), p) {
		t.Errorf("error %q does not name the path", err)
	}
	if _, err := ListXattrs(filepath.Join(p, "nope")); !errors.Is(err, unix.ENOTDIR) {
		t.Errorf("ListXattrs under a file = %v, want ENOTDIR", err)
	}
	if _, err := GetXattr("bad\x00path", XattrCapability); !errors.Is(err, unix.EINVAL) {
		t.Errorf("GetXattr of a path with NUL = %v, want EINVAL", err)
	}
}

func TestListXattrsSymlinkNotFollowed(t *testing.T) {
	p := xattrFile(t)
	if err := SetXattr(p, XattrACLAccess, fixture(t, "acl-access-u33rwx-g70r.bin")); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(filepath.Dir(p), "link")
	if err := os.Symlink(p, link); err != nil {
		t.Fatal(err)
	}
	if names, err := ListXattrs(link); err != nil || names != nil {
		t.Errorf("ListXattrs(symlink) = %q, %v; want the link's own (none)", names, err)
	}
	// Symlinks hold no ACL: ENODATA or, on ext4 and tmpfs, EOPNOTSUPP.
	if v, err := GetXattr(link, XattrACLAccess); !errors.Is(err, ErrNoXattr) && !errors.Is(err, unix.ENOTSUP) {
		t.Errorf("GetXattr(symlink) = %x, %v; want no value, not the target's ACL", v, err)
	}
	fd, err := unix.Open(link, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if names, err := FListXattrs(fd); err != nil || names != nil {
		t.Errorf("FListXattrs(O_PATH symlink) = %q, %v; want the link's own (none)", names, err)
	}
}

func TestFXattr(t *testing.T) {
	p := xattrFile(t)
	acl := fixture(t, "acl-access-u33rwx-g70r.bin")
	capV2 := fixture(t, "cap-v2-net-bind-service-ep.bin")
	for _, flags := range []int{unix.O_RDONLY, unix.O_PATH} {
		name := map[int]string{unix.O_RDONLY: "O_RDONLY", unix.O_PATH: "O_PATH"}[flags]
		t.Run(name, func(t *testing.T) {
			for _, x := range []string{XattrACLAccess, XattrCapability} {
				if err := unix.Lremovexattr(p, x); err != nil && !errors.Is(err, unix.ENODATA) {
					t.Fatal(err)
				}
			}
			fd, err := unix.Open(p, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fd)
			if names, err := FListXattrs(fd); err != nil || names != nil {
				t.Fatalf("FListXattrs = %q, %v; want nil, nil", names, err)
			}
			if _, err := FGetXattr(fd, XattrACLAccess); !errors.Is(err, ErrNoXattr) {
				t.Errorf("FGetXattr missing = %v", err)
			}
			if err := FSetXattr(fd, XattrACLAccess, acl); err != nil {
				t.Fatal(err)
			}
			if err := FSetXattr(fd, XattrCapability, capV2); err != nil {
				t.Fatal(err)
			}
			names, err := FListXattrs(fd)
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(names)
			if want := []string{XattrCapability, XattrACLAccess}; !slices.Equal(names, want) {
				t.Errorf("FListXattrs = %q, want %q", names, want)
			}
			if got, err := FGetXattr(fd, XattrCapability); err != nil || !bytes.Equal(got, capV2) {
				t.Errorf("FGetXattr = %x, %v; want %x", got, err, capV2)
			}
			// What the fd saw is what the path holds.
			if got, err := GetXattr(p, XattrACLAccess); err != nil || !bytes.Equal(got, acl) {
				t.Errorf("GetXattr after FSetXattr = %x, %v", got, err)
			}
		})
	}
	if _, err := FListXattrs(-1); !errors.Is(err, unix.EBADF) {
		t.Errorf("FListXattrs(-1) = %v, want EBADF", err)
	}
}

// TestXattrLarge goes past the stack buffers, through the ERANGE retry, while
// staying within ext4's one block of xattrs per inode.
func TestXattrLarge(t *testing.T) {
	p := xattrFile(t)
	var want []string
	for i := range 8 {
		n := "user." + strings.Repeat("n", 40) + string(rune('a'+i))
		if err := SetXattr(p, n, nil); errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EPERM) {
			t.Skipf("no user xattrs here: %v", err)
		} else if err != nil {
			t.Fatal(err)
		}
		want = append(want, n)
	}
	big := bytes.Repeat([]byte("v"), 1500)
	if err := SetXattr(p, want[0], big); err != nil {
		t.Fatal(err)
	}
	names, err := ListXattrs(p)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	if !slices.Equal(names, want) {
		t.Errorf("ListXattrs = %q, want %q", names, want)
	}
	if got, err := GetXattr(p, want[0]); err != nil || !bytes.Equal(got, big) {
		t.Errorf("GetXattr of %d bytes = %d bytes, %v", len(big), len(got), err)
	}
	if got, err := GetXattr(p, want[1]); err != nil || len(got) != 0 {
		t.Errorf("GetXattr of an empty value = %x, %v", got, err)
	}
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if names, err := FListXattrs(fd); err != nil || len(names) != len(want) {
		t.Errorf("FListXattrs = %d names, %v", len(names), err)
	}
	if got, err := FGetXattr(fd, want[0]); err != nil || !bytes.Equal(got, big) {
		t.Errorf("FGetXattr of %d bytes = %d bytes, %v", len(big), len(got), err)
	}
}

func TestListXattrsNoAllocation(t *testing.T) {
	p := xattrFile(t)
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	opath, err := unix.Open(p, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(opath)
	var names []string
	if n := testing.AllocsPerRun(100, func() { names, err = ListXattrs(p) }); n != 0 || err != nil || names != nil {
		t.Errorf("ListXattrs of a file without xattrs: %v allocations, %q, %v", n, names, err)
	}
	if n := testing.AllocsPerRun(100, func() { names, err = FListXattrs(fd) }); n != 0 || err != nil || names != nil {
		t.Errorf("FListXattrs of a file without xattrs: %v allocations, %q, %v", n, names, err)
	}
	if n := testing.AllocsPerRun(100, func() { names, err = FListXattrs(opath) }); n != 0 || err != nil || names != nil {
		t.Errorf("FListXattrs(O_PATH) of a file without xattrs: %v allocations, %q, %v", n, names, err)
	}
}

// withoutXattrAt makes the walker take the /proc path fallback of kernels
// without the *xattrat syscalls for the rest of the test.
func withoutXattrAt(t *testing.T) {
	t.Helper()
	was := noXattrAt.Load()
	noXattrAt.Store(true)
	t.Cleanup(func() { noXattrAt.Store(was) })
}

func TestListXattrsAtMatchesPathCalls(t *testing.T) {
	p := xattrFile(t)
	dir, name := filepath.Split(p)
	acl := fixture(t, "acl-access-u33rwx-g70r.bin")
	capV3 := fixture(t, "cap-v3-rootid1001-net-bind-service-ep.bin")
	if err := SetXattr(p, XattrACLAccess, acl); err != nil {
		t.Fatal(err)
	}
	if err := SetXattr(p, XattrCapability, capV3); err != nil {
		t.Fatal(err)
	}
	long := bytes.Repeat([]byte("v"), 3*valueBufSize) // past the first buffer
	if err := SetXattr(p, "user.long", long); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(name, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dfd)
	got, ok, err := listXattrsAt(dfd, name)
	if !ok {
		t.Skip("the kernel has no listxattrat (6.13+)")
	}
	if err != nil {
		t.Fatal(err)
	}
	want, err := ListXattrs(p)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) || len(got) != 3 {
		t.Errorf("listXattrsAt = %q, ListXattrs = %q; want the same 3 names", got, want)
	}
	for x, v := range map[string][]byte{XattrACLAccess: acl, XattrCapability: capV3, "user.long": long} {
		g, ok, err := getXattrAt(dfd, name, x)
		if !ok || err != nil || !bytes.Equal(g, v) {
			t.Errorf("getXattrAt %s = %x, %v, %v; want %x", x, g, ok, err, v)
		}
	}
	if _, _, err := getXattrAt(dfd, name, "user.absent"); !errors.Is(err, ErrNoXattr) {
		t.Errorf("getXattrAt of a missing xattr: %v, want ErrNoXattr", err)
	}
	// The symlink itself is listed, never its target.
	if names, _, err := listXattrsAt(dfd, "link"); err != nil || len(names) != 0 {
		t.Errorf("listXattrsAt of a symlink = %q, %v; want none (not followed)", names, err)
	}
	if _, _, err := getXattrAt(dfd, "link", XattrACLAccess); err == nil {
		t.Error("getXattrAt through a symlink read its target's ACL")
	}
	if _, _, err := listXattrsAt(dfd, "missing"); !errors.Is(err, unix.ENOENT) {
		t.Errorf("listXattrsAt of a missing file: %v, want ENOENT", err)
	}
}

// TestAuditSameWithoutXattrAt: the /proc path fallback finds what the
// *xattrat calls find.
func TestAuditSameWithoutXattrAt(t *testing.T) {
	f := buildFixture(t)
	opts := Options{Map: testMap(t)}
	at, err := Audit(context.Background(), f.root, opts)
	if err != nil {
		t.Fatal(err)
	}
	withoutXattrAt(t)
	proc, err := Audit(context.Background(), f.root, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(at, proc) {
		t.Errorf("audit with *xattrat:\n%+v\nwith the /proc fallback:\n%+v", at, proc)
	}
	if proc.ACLs == 0 || proc.Caps == 0 {
		t.Errorf("fallback audit found %d ACLs and %d caps, want some", proc.ACLs, proc.Caps)
	}
}
