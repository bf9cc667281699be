package chown

import (
	"context"
	"slices"
	"testing"
)

func TestAuditCounts(t *testing.T) {
	f := buildFixture(t)
	rep, err := Audit(context.Background(), f.root, Options{Map: testMap(t), Workers: 4})
	if err != nil {
		t.Fatal(err)
	}
	files, dirs, symlinks, hardlinks, fifos, sockets, devices, bytes := independentCount(t, f.root)
	for _, c := range []struct {
		name      string
		got, want int64
	}{
		{"files", rep.Files, files}, {"dirs", rep.Dirs, dirs}, {"symlinks", rep.Symlinks, symlinks},
		{"hardlinks", rep.Hardlinks, hardlinks}, {"fifos", rep.FIFOs, fifos}, {"sockets", rep.Sockets, sockets},
		{"devices", rep.Devices, devices}, {"bytes", rep.Bytes, bytes},
		{"setuid", rep.Setuid, 1}, {"setgid", rep.Setgid, 1}, {"caps", rep.Caps, 2}, {"acls", rep.ACLs, 3 /* acl/dir/user-xattr inherits the default ACL */},
		{"escaping symlinks", rep.EscapingSymlinks, 2}, {"unmappable entries", rep.UnmappableEntries, 1},
		{"external hardlinks", rep.ExternalHardlinks, 0}, {"changed", rep.Changed, 0},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
	if hardlinks != 1 || devices != 1 || fifos != 1 || sockets != 1 {
		t.Errorf("fixture: hardlinks %d devices %d fifos %d sockets %d, want 1 each", hardlinks, devices, fifos, sockets)
	}
	if f.mounted && !slices.Equal(rep.Mounts, []string{"mnt"}) {
		t.Errorf("mounts = %q, want [mnt]", rep.Mounts)
	}
	wantUnm := []UnmappableID{{Kind: "gid", ID: 70000, Count: 1, Examples: []string{"big-id"}},
		{Kind: "uid", ID: 70000, Count: 1, Examples: []string{"big-id"}}}
	if !slices.EqualFunc(rep.Unmappable, wantUnm, func(a, b UnmappableID) bool {
		return a.Kind == b.Kind && a.ID == b.ID && a.Count == b.Count && slices.Equal(a.Examples, b.Examples)
	}) {
		t.Errorf("unmappable = %+v, want %+v", rep.Unmappable, wantUnm)
	}
	if got := rep.Examples["escaping_symlinks"]; !slices.Equal(got, []string{"links/escape", "shadow"}) {
		t.Errorf("escaping examples = %q", got)
	}
	if got := rep.Examples["devices"]; !slices.Equal(got, []string{"null"}) {
		t.Errorf("device examples = %q", got)
	}
	var root *OwnerChange
	var total int64
	for i, o := range rep.Owners {
		total += o.Count
		if o.FromUID == 0 && o.FromGID == 0 {
			root = &rep.Owners[i]
		}
	}
	if root == nil || root.ToUID != 1500 || root.ToGID != 1500 {
		t.Errorf("owner change of 0:0 = %+v, want to 1500:1500", root)
	}
	// every inode but the device node has an owner change entry
	if want := files + dirs + symlinks + fifos + sockets; total != want {
		t.Errorf("owner changes cover %d inodes, want %d", total, want)
	}
	if b := rep.Blocking(Options{}); b == nil || b.Unmappable != 1 || b.Devices != 1 {
		t.Errorf("Blocking = %+v, want 1 unmappable and 1 device", b)
	}
	if b := rep.Blocking(Options{MapUnmappableToOverflow: true, AllowDevices: true}); b != nil {
		t.Errorf("Blocking with overflow and devices allowed = %v, want nil", b)
	}
}

func TestAuditChangesNothing(t *testing.T) {
	f := buildFixture(t)
	shadow := shadowStat(t)
	before := snapshot(t, f.root)
	for range 2 {
		if _, err := Audit(context.Background(), f.root, Options{Map: testMap(t)}); err != nil {
			t.Fatal(err)
		}
	}
	if d := diffSnaps(before, snapshot(t, f.root), exactlySame); len(d) > 0 {
		t.Errorf("audit changed the tree: %q", d)
	}
	if after := shadowStat(t); after != shadow {
		t.Error("audit changed /etc/shadow")
	}
}

func TestAuditRootRefused(t *testing.T) {
	requireRoot(t)
	f := buildFixture(t)
	for _, c := range []struct{ name, root string }{
		{"symlink", f.root + "/inner"},
		{"file", f.root + "/owners/f0"},
		{"missing", f.root + "/nope"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := Audit(context.Background(), c.root, Options{Map: testMap(t)}); err == nil {
				t.Errorf("Audit(%s) succeeded", c.root)
			}
		})
	}
	if _, err := Audit(context.Background(), f.root, Options{}); err == nil {
		t.Error("Audit without a map succeeded")
	}
}
