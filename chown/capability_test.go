package chown

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

// Capability bits used by the fixtures (include/uapi/linux/capability.h).
const (
	capChown             = 1 << 0
	capNetBindService    = 1 << 10
	capNetRaw            = 1 << 13
	capSysAdmin          = 1 << 21
	capBPFHigh           = 1 << (39 - 32)
	capCheckpointRestore = 1 << (40 - 32)
)

func TestUnmarshalCapabilityFixtures(t *testing.T) {
	tests := []struct {
		file string
		want Capability
	}{
		{"cap-v2-net-bind-service-ep.bin", Capability{Version: 2, Effective: true, Permitted: [2]uint32{capNetBindService, 0}}},
		{"cap-v2-eip-net-raw-sys-admin-chown.bin", Capability{
			Version: 2, Effective: true,
			Permitted:   [2]uint32{capChown | capNetRaw | capSysAdmin, 0},
			Inheritable: [2]uint32{capChown | capNetRaw | capSysAdmin, 0},
		}},
		{"cap-v2-p-high-word.bin", Capability{Version: 2, Permitted: [2]uint32{capNetBindService, capBPFHigh | capCheckpointRestore}}},
		{"cap-v3-rootid1001-net-bind-service-ep.bin", Capability{Version: 3, Effective: true, Permitted: [2]uint32{capNetBindService, 0}, RootID: 1001}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b := fixture(t, tt.file)
			c, err := UnmarshalCapability(b)
			if err != nil {
				t.Fatal(err)
			}
			if c != tt.want {
				t.Errorf("got %+v, want %+v", c, tt.want)
			}
			if got := c.Marshal(); !bytes.Equal(got, b) {
				t.Errorf("Marshal = %x, want %x", got, b)
			}
		})
	}
}

// TestWithRootIDMatchesSetcap checks the v2 → v3 conversion against what
// `setcap -n 1001` wrote for the same capability set.
func TestWithRootIDMatchesSetcap(t *testing.T) {
	c, err := UnmarshalCapability(fixture(t, "cap-v2-net-bind-service-ep.bin"))
	if err != nil {
		t.Fatal(err)
	}
	got := c.WithRootID(1001).Marshal()
	if want := fixture(t, "cap-v3-rootid1001-net-bind-service-ep.bin"); !bytes.Equal(got, want) {
		t.Errorf("v3 form = %x, setcap -n 1001 wrote %x", got, want)
	}
	if c.Version != 2 || c.RootID != 0 {
		t.Errorf("WithRootID changed its receiver: %+v", c)
	}
}

func TestWithRootID(t *testing.T) {
	v3, err := UnmarshalCapability(fixture(t, "cap-v3-rootid1001-net-bind-service-ep.bin"))
	if err != nil {
		t.Fatal(err)
	}
	v1 := Capability{Version: 1, Effective: true, Permitted: [2]uint32{capNetRaw, 0}, Inheritable: [2]uint32{capChown, 0}}
	tests := []struct {
		name string
		in   Capability
		root uint32
	}{
		{"v3 re-rooted", v3, 231072},
		{"v1 converted", v1, 1001},
		{"v2 high word kept", Capability{Version: 2, Permitted: [2]uint32{0, capBPFHigh}}, 1001},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := tt.in.WithRootID(tt.root)
			b := out.Marshal()
			if len(b) != 24 {
				t.Fatalf("v3 form is %d bytes, want 24", len(b))
			}
			back, err := UnmarshalCapability(b)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.in
			want.Version, want.RootID = 3, tt.root
			if back != want {
				t.Errorf("got %+v, want %+v", back, want)
			}
		})
	}
}

func TestCapabilityV1RoundTrip(t *testing.T) {
	// Hand-made: setcap writes v2 since Linux 2.6.25, but old images may carry v1.
	b := []byte{1, 0, 0, 1, 0x00, 0x04, 0, 0, 0x01, 0, 0, 0}
	c, err := UnmarshalCapability(b)
	if err != nil {
		t.Fatal(err)
	}
	want := Capability{Version: 1, Effective: true, Permitted: [2]uint32{capNetBindService, 0}, Inheritable: [2]uint32{capChown, 0}}
	if c != want {
		t.Errorf("got %+v, want %+v", c, want)
	}
	if got := c.Marshal(); !bytes.Equal(got, b) {
		t.Errorf("Marshal = %x, want %x", got, b)
	}
}

func TestUnmarshalCapabilityMalformed(t *testing.T) {
	v2 := fixture(t, "cap-v2-net-bind-service-ep.bin")
	v3 := fixture(t, "cap-v3-rootid1001-net-bind-service-ep.bin")
	with := func(b []byte, off int, v ...byte) []byte {
		b = slices.Clone(b)
		copy(b[off:], v)
		return b
	}
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"short magic", []byte{0, 0, 0}},
		{"magic only", v2[:4]},
		{"v2 truncated", v2[:19]},
		{"v2 with rootid", append(slices.Clone(v2), 0xe9, 3, 0, 0)},
		{"v3 truncated", v3[:20]},
		{"v3 too long", append(slices.Clone(v3), 0)},
		{"v1 of v2 size", with(v2, 3, 1)},
		{"revision 0", with(v2, 3, 0)},
		{"revision 4", with(v2, 3, 4)},
		{"unknown flag", with(v2, 0, 3)},
		{"flag in middle byte", with(v2, 1, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := UnmarshalCapability(tt.in)
			if !errors.Is(err, ErrMalformedXattr) {
				t.Errorf("UnmarshalCapability(%x) = %+v, %v; want ErrMalformedXattr", tt.in, c, err)
			}
		})
	}
}

func TestCapabilityMarshalDefaultsToV2(t *testing.T) {
	c := Capability{Permitted: [2]uint32{capNetBindService, 0}, Effective: true}
	if got, want := c.Marshal(), fixture(t, "cap-v2-net-bind-service-ep.bin"); !bytes.Equal(got, want) {
		t.Errorf("Marshal of version 0 = %x, want the v2 form %x", got, want)
	}
}

func FuzzUnmarshalCapability(f *testing.F) {
	for _, name := range []string{
		"cap-v2-net-bind-service-ep.bin", "cap-v2-eip-net-raw-sys-admin-chown.bin",
		"cap-v2-p-high-word.bin", "cap-v3-rootid1001-net-bind-service-ep.bin",
	} {
		f.Add(fixture(f, name))
	}
	f.Add([]byte{1, 0, 0, 1, 0x00, 0x04, 0, 0, 0x01, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := UnmarshalCapability(b)
		if err != nil {
			if !errors.Is(err, ErrMalformedXattr) {
				t.Fatalf("error %v does not wrap ErrMalformedXattr", err)
			}
			return
		}
		if got := c.Marshal(); !bytes.Equal(got, b) {
			t.Fatalf("Marshal(Unmarshal(%x)) = %x", b, got)
		}
		r := c.WithRootID(4242)
		back, err := UnmarshalCapability(r.Marshal())
		if err != nil || back != r {
			t.Fatalf("v3 form %+v does not round-trip: %+v, %v", r, back, err)
		}
	})
}
