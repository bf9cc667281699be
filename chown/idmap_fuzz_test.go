package chown

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func FuzzParseSubIDs(f *testing.F) {
	for _, name := range []string{"subuid-single", "subuid-multi"} {
		f.Add(string(fixture(f, name)), "unroot-e2e", 1001)
	}
	f.Add("b:1:2\n#c\n\n7:3:4", "b", 7)
	f.Add("b:4294967295:1\n", "b", -1)
	f.Fuzz(func(t *testing.T, in, name string, uid int) {
		got, err := ParseSubIDs(strings.NewReader(in), name, uid)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "line ") {
				t.Fatalf("error %q names no line", err)
			}
			return
		}
		for _, r := range got {
			if r.Count == 0 || uint64(r.Start)+uint64(r.Count) > maxIDs {
				t.Fatalf("accepted range %+v", r)
			}
		}
		// The ranges written back out under the same name parse to the same.
		if name == "" || strings.ContainsAny(name, ":\n\r#") || strings.TrimSpace(name) != name {
			return
		}
		var b strings.Builder
		for _, r := range got {
			fmt.Fprintf(&b, "%s:%d:%d\n", name, r.Start, r.Count)
		}
		again, err := ParseSubIDs(strings.NewReader(b.String()), name, -1)
		if err != nil || !slices.Equal(again, got) {
			t.Fatalf("reparse of %q = %v, %v; want %v", b.String(), again, err, got)
		}
	})
}

func FuzzParseIDMap(f *testing.F) {
	for _, name := range []string{"uid_map-rootless", "gid_map-rootless", "uid_map-initial"} {
		f.Add(fixture(f, name))
	}
	f.Add([]byte("0 1001 1\n1 231072 65536\n65537 400000 1000\n"))
	f.Add([]byte("0 1001 1\n0 1002 1\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := ParseIDMap(bytes.NewReader(in))
		if err != nil {
			return
		}
		m := IDMap{UIDs: got, GIDs: got}
		if err := m.Validate(); err != nil {
			t.Fatalf("ParseIDMap accepted an invalid map: %v", err)
		}
		for _, r := range got {
			for _, c := range []uint32{r.Container, r.Container + r.Size - 1} {
				h, ok := m.HostUID(c)
				if !ok || h != r.Host+(c-r.Container) {
					t.Fatalf("HostUID(%d) = %d, %v in %v", c, h, ok, got)
				}
				if back, ok := m.ContainerUID(h); !ok || back != c {
					t.Fatalf("ContainerUID(%d) = %d, %v; want %d", h, back, ok, c)
				}
			}
		}
		var b strings.Builder
		for _, r := range got {
			fmt.Fprintf(&b, "%10d %10d %10d\n", r.Container, r.Host, r.Size)
		}
		again, err := ParseIDMap(strings.NewReader(b.String()))
		if err != nil || !slices.Equal(again, got) {
			t.Fatalf("reparse = %v, %v; want %v", again, err, got)
		}
		if d := DiffMaps(m, IDMap{UIDs: again, GIDs: again}); d != nil {
			t.Fatalf("DiffMaps of equal maps = %q", d)
		}
	})
}
