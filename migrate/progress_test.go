package migrate

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/unroot/unroot/chown"
)

// TestWalkTotalsMatchProgress: the totals a task starts with (from the
// plan's audit) are in the unit the walk reports, so a finished copy's
// progress equals them and a bar never shows more done than expected.
func TestWalkTotalsMatchProgress(t *testing.T) {
	src := t.TempDir()
	for _, d := range []string{"a", "a/b", "c"} {
		if err := os.Mkdir(filepath.Join(src, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for i, f := range []string{"f", "a/g", "a/b/h", "c/i"} {
		if err := os.WriteFile(filepath.Join(src, f), bytes.Repeat([]byte{'x'}, 10*(i+1)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("../f", filepath.Join(src, "a/link")); err != nil {
		t.Fatal(err)
	}
	audit, err := chown.Audit(context.Background(), src, chown.Options{Map: testMap})
	if err != nil {
		t.Fatal(err)
	}
	wantEntries, wantBytes := walkTotals(audit)
	if wantEntries != 9 || wantBytes != 100 { // root + 3 dirs + 4 files + 1 symlink
		t.Fatalf("walkTotals = %d entries, %d bytes; want 9, 100", wantEntries, wantBytes)
	}
	var out strings.Builder
	task := (&LogProgress{W: &out}).Begin("volume", "v (pre-sync)", wantBytes, wantEntries)
	var lastEntries, lastBytes atomic.Int64
	o := chown.Options{Map: testMap, Progress: func(entries, b int64) {
		lastEntries.Store(max(lastEntries.Load(), entries))
		lastBytes.Store(max(lastBytes.Load(), b))
	}}
	if _, err := chown.Copy(context.Background(), src, filepath.Join(t.TempDir(), "dst"), o); err != nil {
		t.Fatal(err)
	}
	task.Add(lastBytes.Load(), lastEntries.Load())
	task.Done(nil)
	if lastEntries.Load() != wantEntries || lastBytes.Load() != wantBytes {
		t.Errorf("copy progress ended at %d entries, %d bytes; the audit expected %d, %d",
			lastEntries.Load(), lastBytes.Load(), wantEntries, wantBytes)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.HasSuffix(lines[0], "started (100 B, 9 entries)") ||
		!strings.Contains(lines[1], "done, 100 B, 9 entries in ") {
		t.Errorf("log lines %q", lines)
	}
	if e, b := walkTotals(nil); e != 0 || b != 0 {
		t.Errorf("walkTotals(nil) = %d, %d; want 0, 0 (no audit: totals unknown)", e, b)
	}
}
