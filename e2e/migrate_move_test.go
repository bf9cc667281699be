package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unroot/unroot/migrate"
)

// TestMigrateVolumeMoveAndRollback moves a volume's data into the target
// (rename and in-place shift) and rolls back: the data returns to the
// source volume with its original owners.
func TestMigrateVolumeMoveAndRollback(t *testing.T) {
	const (
		ctr = "e2e-mig-mover"
		vol = "e2e-mig-mover-data"
	)
	e := newMigEnv(t, []string{ctr}, []string{vol}, nil)
	e.Docker(t, false, "volume", "create", vol)
	e.Docker(t, false, "run", "--rm", "-v", vol+":/data", e.Image, "sh", "-c",
		"echo moved > /data/f && chown 999:999 /data/f && mkdir /data/d && chown 5:6 /data/d")
	src := e.inspectVolume(false, vol)
	before := hostOwners(t, src)
	e.Docker(t, false, "run", "-d", "--name", ctr, "-v", vol+":/data", e.Image, "sleep", "100000")

	same, err := migrate.SameMount(filepath.Dir(filepath.Dir(src)), filepath.Join(e.Home, ".local/share/docker/volumes"))
	if err != nil {
		t.Fatal(err)
	}
	if !same {
		// This host keeps the two data roots on different mounts: move
		// must refuse before changing anything.
		res := e.migrate("--volumes", "move", ctr)
		if res.Code != 1 || !strings.Contains(res.Stderr, "--volumes copy") {
			t.Fatalf("move across mounts: exit %d, want 1 with a hint to copy\n%s", res.Code, res.Stderr)
		}
		if got := e.inspect(false, ctr, "{{.State.Running}}"); got != "true" {
			t.Errorf("source running = %s after a refused move", got)
		}
		if after := hostOwners(t, src); len(after) != len(before) || after["/f"] != before["/f"] {
			t.Errorf("source data changed by a refused move: %v → %v", before, after)
		}
		for _, obj := range [][]string{{"inspect", ctr}, {"volume", "inspect", vol}} {
			if _, err := e.DockerErr(true, obj...); err == nil {
				t.Errorf("a refused move created %v in the target", obj)
			}
		}
		return
	}

	e.mustMigrate("--volumes", "move", ctr)

	if _, err := os.Stat(filepath.Join(src, "f")); !os.IsNotExist(err) {
		t.Errorf("after a move the source still has the data (stat: %v)", err)
	}
	for p, want := range map[string]string{"/data/f": "999:999", "/data/d": "5:6"} {
		if got := e.exec(true, ctr, "stat", "-c", "%u:%g", p); got != want {
			t.Errorf("inside the target %s is %s, want %s", p, got, want)
		}
	}
	if got := e.exec(true, ctr, "cat", "/data/f"); got != "moved" {
		t.Errorf("content = %q", got)
	}

	out, errOut, code := e.Unroot(t, e.args("rollback", ctr)...)
	if code != 0 {
		t.Fatalf("rollback: exit %d\n%s\n%s", code, out, errOut)
	}
	after := hostOwners(t, src)
	for p, b := range before {
		if after[p] != b {
			t.Errorf("after rollback %s is %q, was %q", p, after[p], b)
		}
	}
	if got := e.exec(false, ctr, "cat", "/data/f"); got != "moved" {
		t.Errorf("source after rollback reads %q", got)
	}
}
