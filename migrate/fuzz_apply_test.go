package migrate

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadLoadResponse: the load response reader never panics and gives the
// same answer for the same stream.
func FuzzReadLoadResponse(f *testing.F) {
	paths, err := filepath.Glob(filepath.Join(testdataDir, "load-response", "*.json"))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no seeds: %v", err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e1 := readLoadResponse(bytes.NewReader(data))
		e2 := readLoadResponse(bytes.NewReader(data))
		if (e1 == nil) != (e2 == nil) {
			t.Errorf("%q: %v then %v", data, e1, e2)
		}
	})
}

// FuzzParseTmpfsOptions: tmpfs option strings never panic and never yield
// a negative size or a mode beyond the permission and special bits.
func FuzzParseTmpfsOptions(f *testing.F) {
	fh, err := os.Open(filepath.Join(testdataDir, "tmpfs-options.txt"))
	if err != nil {
		f.Fatal(err)
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		f.Add(sc.Text())
	}
	f.Fuzz(func(t *testing.T, s string) {
		o := parseTmpfsOptions(s)
		if o == nil {
			return
		}
		if o.SizeBytes < 0 {
			t.Errorf("%q: negative size %d", s, o.SizeBytes)
		}
		if o.Mode&^0o7777 != 0 {
			t.Errorf("%q: mode %o has bits beyond 07777", s, o.Mode)
		}
	})
}
