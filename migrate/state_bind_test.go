package migrate

import (
	"os"
	"path/filepath"
	"testing"
)

// TestStateBindShifted: a bind counts as shifted by an earlier run while
// its journal (under the state directory, recorded or not) says the shift
// started or finished, and not before it began or after a reverse.
func TestStateBindShifted(t *testing.T) {
	const src = "/srv/www"
	cases := []struct {
		name   string
		files  []string // journal files present
		record bool     // the state records the bind
		want   bool
	}{
		{"no journal", nil, false, false},
		{"journal directory only", []string{}, true, false},
		{"started, not recorded", []string{"meta.json"}, false, true},
		{"started", []string{"meta.json"}, true, true},
		{"done", []string{"meta.json", "done"}, true, true},
		{"reversed", []string{"meta.json", "done", "reversed"}, true, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			st, err := LoadState(dir)
			if err != nil {
				t.Fatal(err)
			}
			jd := JournalDir(dir, "bind", src)
			if c.files != nil {
				if err := os.MkdirAll(jd, 0o700); err != nil {
					t.Fatal(err)
				}
			}
			for _, f := range c.files {
				if err := os.WriteFile(filepath.Join(jd, f), []byte("{}"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if c.record {
				st.Binds[src] = &BindState{Source: src, JournalDir: jd}
			}
			if got := st.BindShifted(src); got != c.want {
				t.Errorf("BindShifted = %v, want %v", got, c.want)
			}
		})
	}
}
