package inventory

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/inventory")

func TestWriteTextGolden(t *testing.T) {
	for _, tt := range []struct{ dir, golden string }{
		{dir141, "text-api1.41.golden"},
		{dir152, "text-api1.52.golden"},
	} {
		t.Run(tt.golden, func(t *testing.T) {
			inv := mustRead(t, loadFake(t, tt.dir, filepath.Base(tt.dir)[3:]), Options{All: true, Diff: true})
			var buf bytes.Buffer
			if err := inv.WriteText(&buf); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("../testdata/inventory", tt.golden)
			if *update {
				if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Errorf("WriteText differs from %s (go test -update rewrites it):\n%s", path, buf.String())
			}
		})
	}
}

type failingWriter struct{ n int }

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.n == 0 {
		return 0, os.ErrClosed
	}
	f.n--
	return len(p), nil
}

func TestWriteTextReportsWriteError(t *testing.T) {
	inv := mustRead(t, loadFake(t, dir141, "1.41"), Options{All: true})
	if err := inv.WriteText(&failingWriter{n: 3}); err == nil {
		t.Error("WriteText ignored a write error")
	}
	if err := inv.WriteJSON(&failingWriter{}); err == nil {
		t.Error("WriteJSON ignored a write error")
	}
}
