package e2e

import (
	"strings"
	"testing"
)

// TestMigrateDeltaSyncKeepsWritesUpToTheStop runs a writer that appends a
// line every 50ms and writes a marker when it gets SIGTERM: everything it
// wrote until it stopped (after the pre-sync) must be in the target volume.
func TestMigrateDeltaSyncKeepsWritesUpToTheStop(t *testing.T) {
	const (
		ctr = "e2e-mig-writer"
		vol = "e2e-mig-writer-data"
	)
	e := newMigEnv(t, []string{ctr}, []string{vol}, nil)
	script := `if [ -e /data/stopped ]; then exec sleep 100000; fi
trap 'echo "stopped after $i" > /data/stopped; exit 0' TERM
i=0
while :; do i=$((i+1)); echo "$i" >> /data/log; sleep 0.05; done`
	e.Docker(t, false, "run", "-d", "--name", ctr, "-v", vol+":/data", "--stop-timeout", "5", e.Image, "sh", "-c", script)

	e.mustMigrate(ctr)

	src := e.inspectVolume(false, vol)
	srcLog := hostRun(t, "cat", src+"/log")
	srcStopped := hostRun(t, "cat", src+"/stopped")
	if !strings.HasPrefix(srcStopped, "stopped after ") {
		t.Fatalf("source marker = %q", srcStopped)
	}
	tgtLog := e.exec(true, ctr, "cat", "/data/log")
	tgtStopped := e.exec(true, ctr, "cat", "/data/stopped")
	if tgtLog != srcLog {
		n := strings.Count(srcLog, "\n") + 1
		m := strings.Count(tgtLog, "\n") + 1
		t.Errorf("target log has %d lines, source wrote %d until it stopped", m, n)
	}
	if tgtStopped != srcStopped {
		t.Errorf("target marker = %q, want %q (written at the stop, after the pre-sync)", tgtStopped, srcStopped)
	}
	if got := e.exec(true, ctr, "stat", "-c", "%u:%g", "/data/log"); got != "0:0" {
		t.Errorf("log owned by %s inside the target", got)
	}
}
