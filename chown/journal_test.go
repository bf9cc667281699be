package chown

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

var updateJournalSeeds = flag.Bool("update-journal-seeds", false, "rewrite testdata/chown/walk-journal-*.bin")

// sampleRecords are journal records as a shift of the fixture writes them.
func sampleRecords() []record {
	return []record{
		{Dev: 2049, Ino: 131073, Rel: ".", UID: 0, GID: 0, Mode: 0o40755},
		{Dev: 2049, Ino: 131080, Rel: "bin/capv2", UID: 0, GID: 0, Mode: 0o100755, Caps: capBytes(2, 1<<10, 0)},
		{Dev: 2049, Ino: 131090, Rel: "acl/dir", UID: 999, GID: 999, Mode: 0o40775,
			ACLAccess: aclBytes([]uint32{999}, nil), ACLDefault: aclBytes([]uint32{999, 70}, []uint32{70})},
		{Dev: 2049, Ino: 131100, Rel: "bin/setuid", UID: 0, GID: 0, Mode: 0o104755},
		{Dev: 2049, Ino: 131101, Rel: "name with\nnewline and ünïcode", UID: 70000, GID: 70000, Mode: 0o100644},
	}
}

func encodeJournal(recs []record) []byte {
	b := []byte(journalMagic)
	for i := range recs {
		b = appendRecord(b, &recs[i])
	}
	return b
}

func readAll(t testing.TB, b []byte) ([]record, int64, error) {
	t.Helper()
	var got []record
	valid, err := readJournal(bytes.NewReader(b), func(_ int64, r record) error {
		got = append(got, r)
		return nil
	})
	return got, valid, err
}

func TestReadJournalRoundTrip(t *testing.T) {
	want := sampleRecords()
	b := encodeJournal(want)
	got, valid, err := readAll(t, b)
	if err != nil {
		t.Fatal(err)
	}
	if valid != int64(len(b)) {
		t.Errorf("valid prefix %d, want %d", valid, len(b))
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

func TestReadJournalTornTail(t *testing.T) {
	recs := sampleRecords()
	b := encodeJournal(recs)
	ends := []int{len(journalMagic)}
	for i := range recs {
		ends = append(ends, len(appendRecord(nil, &recs[i]))+ends[len(ends)-1])
	}
	for cut := 0; cut < len(b); cut++ {
		got, valid, err := readAll(t, b[:cut])
		if err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		n := 0
		for n+1 < len(ends) && ends[n+1] <= cut {
			n++
		}
		if len(got) != n || (cut >= len(journalMagic) && valid != int64(ends[n])) {
			t.Fatalf("cut at %d: %d records valid to %d, want %d to %d", cut, len(got), valid, n, ends[n])
		}
	}
	// A tail of zeros (a file extended, never written) is torn too.
	got, _, err := readAll(t, append(bytes.Clone(b), make([]byte, 100)...))
	if err != nil || len(got) != len(recs) {
		t.Errorf("zero tail: %d records, %v", len(got), err)
	}
}

func TestReadJournalCorrupt(t *testing.T) {
	b := encodeJournal(sampleRecords())
	for _, c := range []struct {
		name string
		mod  func([]byte)
	}{
		{"payload byte of the first record", func(b []byte) { b[len(journalMagic)+20] ^= 1 }},
		{"magic", func(b []byte) { b[0] = 'x' }},
		{"length of the first record", func(b []byte) { b[len(journalMagic)+3] = 0x7f }},
	} {
		t.Run(c.name, func(t *testing.T) {
			bad := bytes.Clone(b)
			c.mod(bad)
			if _, _, err := readAll(t, bad); !errors.Is(err, ErrCorruptJournal) {
				t.Errorf("err = %v, want ErrCorruptJournal", err)
			}
		})
	}
}

func journalSeeds(t testing.TB) map[string][]byte {
	recs := sampleRecords()
	full := encodeJournal(recs)
	return map[string][]byte{
		"walk-journal-full.bin":  full,
		"walk-journal-torn.bin":  full[:len(full)-7],
		"walk-journal-empty.bin": []byte(journalMagic),
	}
}

func TestJournalSeedsCurrent(t *testing.T) {
	dir := filepath.Join("..", "testdata", "chown")
	for name, b := range journalSeeds(t) {
		p := filepath.Join(dir, name)
		if *updateJournalSeeds {
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("%s is stale (%v); run go test ./chown -run JournalSeeds -update-journal-seeds", p, err)
		}
	}
}

// FuzzReadJournal: no input panics, and every record read back re-encodes
// to exactly the bytes it was read from.
func FuzzReadJournal(f *testing.F) {
	matches, _ := filepath.Glob(filepath.Join("..", "testdata", "chown", "walk-journal-*.bin"))
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = readJournal(bytes.NewReader(b), func(off int64, r record) error {
			enc := appendRecord(nil, &r)
			if off+int64(len(enc)) > int64(len(b)) || !bytes.Equal(b[off:off+int64(len(enc))], enc) {
				t.Fatalf("record at %d does not re-encode to its bytes", off)
			}
			return nil
		})
	})
}
