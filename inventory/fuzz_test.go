package inventory

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/moby/client"
)

// FuzzContainerFromInspect feeds inspect JSON (seeded with every recorded
// and hand-written fixture) through the client's decoding and the
// conversion: whatever a daemon sends must not panic it.
func FuzzContainerFromInspect(f *testing.F) {
	files, _ := filepath.Glob("../testdata/inventory/*/container-*.json")
	if len(files) == 0 {
		f.Fatal("no container fixtures")
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var res client.ContainerInspectResult
		if json.Unmarshal(b, &res.Container) != nil {
			return
		}
		res.Raw = b
		c, _ := containerFromInspect(res)
		if strings.HasPrefix(c.Name, "/") {
			t.Fatalf("name %q keeps its slash", c.Name)
		}
		for _, p := range c.Ports {
			if p.Proto == "" {
				t.Fatalf("port without protocol: %+v", p)
			}
		}
	})
}

// FuzzNormalizeHostPort checks that normalising is idempotent.
func FuzzNormalizeHostPort(f *testing.F) {
	for _, s := range []string{"", "80", "0080", "8000-8010", "9-9", " 1 ", "x-1", "65536"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		once := NormalizeHostPort(s)
		if twice := NormalizeHostPort(once); twice != once {
			t.Fatalf("NormalizeHostPort(%q) = %q, then %q", s, once, twice)
		}
	})
}
