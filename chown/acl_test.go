package chown

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

func TestUnmarshalACLFixtures(t *testing.T) {
	const u = ACLUndefinedID
	tests := []struct {
		file string
		want []ACLEntry
	}{
		{"acl-access-u33rwx-g70r.bin", []ACLEntry{
			{ACLUserObj, 6, u}, {ACLUser, 7, 33}, {ACLGroupObj, 4, u}, {ACLGroup, 4, 70}, {ACLMask, 7, u}, {ACLOther, 4, u},
		}},
		{"acl-default-u1000-g1000-u65534.bin", []ACLEntry{
			{ACLUserObj, 7, u}, {ACLUser, 5, 1000}, {ACLUser, 4, 65534}, {ACLGroupObj, 5, u}, {ACLGroup, 7, 1000}, {ACLMask, 7, u}, {ACLOther, 5, u},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b := fixture(t, tt.file)
			a, err := UnmarshalACL(b)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(a.Entries, tt.want) {
				t.Errorf("entries = %v, want %v", a.Entries, tt.want)
			}
			if got := a.Marshal(); !bytes.Equal(got, b) {
				t.Errorf("Marshal = %x, want %x", got, b)
			}
		})
	}
}

func TestUnmarshalACLMalformed(t *testing.T) {
	valid := fixture(t, "acl-access-u33rwx-g70r.bin")
	with := func(off int, v ...byte) []byte {
		b := slices.Clone(valid)
		copy(b[off:], v)
		return b
	}
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"short header", []byte{2, 0, 0}},
		{"truncated entry", valid[:len(valid)-1]},
		{"extra byte", append(slices.Clone(valid), 0)},
		{"version 1", with(0, 1)},
		{"version 3", with(0, 3)},
		{"big-endian version", with(0, 0, 0, 0, 2)},
		{"unknown tag", with(4+8, 0x40)},
		{"zero tag", with(4+8, 0)},
		{"two tag bits", with(4+8, ACLUser|ACLGroup)},
		{"perm beyond rwx", with(4+2, 8)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := UnmarshalACL(tt.in)
			if !errors.Is(err, ErrMalformedXattr) {
				t.Errorf("UnmarshalACL(%x) = %v, %v; want ErrMalformedXattr", tt.in, a, err)
			}
		})
	}
}

func TestUnmarshalACLHeaderOnly(t *testing.T) {
	a, err := UnmarshalACL([]byte{2, 0, 0, 0})
	if err != nil || len(a.Entries) != 0 {
		t.Fatalf("UnmarshalACL(header) = %v, %v", a, err)
	}
	if got := a.Marshal(); !bytes.Equal(got, []byte{2, 0, 0, 0}) {
		t.Errorf("Marshal = %x", got)
	}
}

func TestACLShift(t *testing.T) {
	m := rigMap(t)
	a, err := UnmarshalACL(fixture(t, "acl-default-u1000-g1000-u65534.bin"))
	if err != nil {
		t.Fatal(err)
	}
	orig := slices.Clone(a.Entries)
	s, err := a.Shift(m.HostUID, m.HostGID)
	if err != nil {
		t.Fatal(err)
	}
	const u = ACLUndefinedID
	want := []ACLEntry{
		{ACLUserObj, 7, u}, {ACLUser, 5, 231072 + 999}, {ACLUser, 4, 231072 + 65533}, {ACLGroupObj, 5, u},
		{ACLGroup, 7, 231072 + 999}, {ACLMask, 7, u}, {ACLOther, 5, u},
	}
	if !slices.Equal(s.Entries, want) {
		t.Errorf("shifted = %v, want %v", s.Entries, want)
	}
	if !slices.Equal(a.Entries, orig) {
		t.Errorf("Shift changed its receiver: %v", a.Entries)
	}
	back, err := s.Shift(m.ContainerUID, m.ContainerGID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(back.Entries, orig) {
		t.Errorf("reverse shift = %v, want %v", back.Entries, orig)
	}
}

func TestACLShiftUnmappable(t *testing.T) {
	m := rigMap(t)
	tests := []struct {
		name    string
		entries []ACLEntry
		kind    string
		id      uint32
	}{
		{"user", []ACLEntry{{ACLUser, 7, 1000}, {ACLUser, 7, 70000}, {ACLUser, 7, 80000}}, "uid", 70000},
		{"group", []ACLEntry{{ACLUser, 7, 1000}, {ACLGroup, 7, 65537}}, "gid", 65537},
		{"undefined id of a user entry", []ACLEntry{{ACLUser, 7, ACLUndefinedID}}, "uid", ACLUndefinedID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := ACL{Entries: tt.entries}
			orig := slices.Clone(a.Entries)
			s, err := a.Shift(m.HostUID, m.HostGID)
			var ue *UnmappableError
			if !errors.As(err, &ue) || ue.Kind != tt.kind || ue.ID != tt.id {
				t.Fatalf("Shift = %v, %v; want UnmappableError{%s %d}", s, err, tt.kind, tt.id)
			}
			if !slices.Equal(a.Entries, orig) {
				t.Errorf("Shift changed its receiver on error: %v", a.Entries)
			}
		})
	}
}

func TestACLShiftLeavesObjEntries(t *testing.T) {
	// USER_OBJ and friends carry no id: a map that knows no id must not be asked.
	a, err := UnmarshalACL([]byte{2, 0, 0, 0, 1, 0, 6, 0, 0xff, 0xff, 0xff, 0xff, 0x20, 0, 4, 0, 0xff, 0xff, 0xff, 0xff})
	if err != nil {
		t.Fatal(err)
	}
	none := func(uint32) (uint32, bool) { return 0, false }
	if _, err := a.Shift(none, none); err != nil {
		t.Errorf("Shift of an ACL without named entries: %v", err)
	}
	if a.HasIDs() {
		t.Error("HasIDs = true for an ACL without named entries")
	}
}

func FuzzUnmarshalACL(f *testing.F) {
	for _, name := range []string{"acl-access-u33rwx-g70r.bin", "acl-default-u1000-g1000-u65534.bin"} {
		f.Add(fixture(f, name))
	}
	f.Add([]byte{2, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := UnmarshalACL(b)
		if err != nil {
			if !errors.Is(err, ErrMalformedXattr) {
				t.Fatalf("error %v does not wrap ErrMalformedXattr", err)
			}
			return
		}
		if got := a.Marshal(); !bytes.Equal(got, b) {
			t.Fatalf("Marshal(Unmarshal(%x)) = %x", b, got)
		}
		// Shifting by the identity changes nothing; a shift there and back is
		// the identity whenever every id maps.
		id := func(x uint32) (uint32, bool) { return x, true }
		s, err := a.Shift(id, id)
		if err != nil || !bytes.Equal(s.Marshal(), b) {
			t.Fatalf("identity shift = %x, %v", s.Marshal(), err)
		}
		m := IDMap{UIDs: []Range{{0, 1000, 1 << 20}}, GIDs: []Range{{0, 5000, 1 << 20}}}
		if s, err := a.Shift(m.HostUID, m.HostGID); err == nil {
			back, err := s.Shift(m.ContainerUID, m.ContainerGID)
			if err != nil || !bytes.Equal(back.Marshal(), b) {
				t.Fatalf("shift there and back = %x, %v; want %x", back.Marshal(), err, b)
			}
		}
	})
}
