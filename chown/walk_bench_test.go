package chown

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// benchTree creates n small files in directories of 100, owned by a spread
// of container ids, some with an xattr.
func benchTree(b *testing.B, n int) string {
	b.Helper()
	requireRoot(b)
	root := filepath.Join(b.TempDir(), "tree")
	for i := range n {
		dir := filepath.Join(root, "d"+strconv.Itoa(i/1000), "e"+strconv.Itoa(i/100%10))
		if i%100 == 0 {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				b.Fatal(err)
			}
		}
		p := filepath.Join(dir, "f"+strconv.Itoa(i))
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			b.Fatal(err)
		}
		if err := os.Lchown(p, i%1000, i%1000); err != nil {
			b.Fatal(err)
		}
		if i%50 == 0 {
			if err := SetXattr(p, "user.bench", []byte("v")); err != nil {
				b.Fatal(err)
			}
		}
	}
	return root
}

func BenchmarkAudit(b *testing.B) {
	root := benchTree(b, 10000)
	opts := Options{Map: testMap(b)}
	b.ResetTimer()
	for b.Loop() {
		if _, err := Audit(context.Background(), root, opts); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(10000, "files/op")
}

// BenchmarkShift shifts the tree and reverses it each iteration, so every
// Shift does real work (journal syncs included).
func BenchmarkShift(b *testing.B) {
	root := benchTree(b, 10000)
	for b.Loop() {
		opts := Options{Map: testMap(b), JournalDir: b.TempDir()}
		if _, err := Shift(context.Background(), root, opts); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if _, err := Reverse(context.Background(), root, opts); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(10000, "files/op")
}
