package migrate

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// addJSONSeeds adds every file of testdata/migrate/DIR to f's corpus.
func addJSONSeeds(f *testing.F, dir string) {
	f.Helper()
	paths, err := filepath.Glob(filepath.Join(testdataDir, dir, "*.json"))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no seeds in %s: %v", dir, err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// FuzzPlanJSONRoundTrip: any JSON the plan type accepts marshals to a form
// that unmarshals and marshals again to the same bytes, so a plan saved with
// --format json and read back (docs/plan-schema.md) loses nothing.
func FuzzPlanJSONRoundTrip(f *testing.F) {
	addJSONSeeds(f, "plan-json")
	f.Add([]byte(`{"services":[null],"findings":[{"code":"x","severity":"blocker"}]}`))
	f.Add([]byte(`{"schema_version":1,"summary":{"applicable":true}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var p1 Plan
		if err := json.Unmarshal(data, &p1); err != nil {
			return
		}
		b1, err := json.Marshal(&p1)
		if err != nil {
			t.Fatalf("marshal a plan that unmarshalled: %v", err)
		}
		var p2 Plan
		if err := json.Unmarshal(b1, &p2); err != nil {
			t.Fatalf("unmarshal our own output: %v\n%s", err, b1)
		}
		b2, err := json.Marshal(&p2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b1, b2) {
			t.Fatalf("round trip differs:\n%s\n%s", b1, b2)
		}
	})
}

// FuzzLoadState: LoadState never panics on a damaged state file, and a state
// it accepts is saved and loaded back unchanged.
func FuzzLoadState(f *testing.F) {
	addJSONSeeds(f, "state-json")
	f.Add([]byte(""))
	f.Add([]byte("\x00\xff garbage"))
	f.Add([]byte(`{"version":1,"services":{"a":null}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, StateFile), data, 0o600); err != nil {
			t.Fatal(err)
		}
		st, err := LoadState(dir)
		if err != nil {
			if st != nil {
				t.Fatalf("error %v with a state", err)
			}
			return
		}
		if st.Version != StateVersion || st.Services == nil || st.Volumes == nil || st.Binds == nil {
			t.Fatalf("accepted state not initialised: %+v", st)
		}
		for name := range st.Services {
			_ = st.Owned(name) // a null service record must not panic
		}
		if err := st.Save(); err != nil {
			t.Fatalf("save an accepted state: %v", err)
		}
		again, err := LoadState(dir)
		if err != nil {
			t.Fatalf("load what Save wrote: %v", err)
		}
		st.Updated, again.Updated = time.Time{}, time.Time{}
		b1, err1 := json.Marshal(st)
		b2, err2 := json.Marshal(again)
		if err1 != nil || err2 != nil || !bytes.Equal(b1, b2) {
			t.Fatalf("save/load changed the state (%v, %v):\n%s\n%s", err1, err2, b1, b2)
		}
	})
}
