package migrate

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/unroot/unroot/chown"
)

// movePlanSetup is a source daemon with one container using volume "v",
// whose data and the user's rootless data root are temporary directories.
type movePlanSetup struct {
	src, tgt *fakeDaemon
	opts     Options
	data     string // the source volume's _data
	audited  []string
}

func newMovePlanSetup(t *testing.T) *movePlanSetup {
	t.Helper()
	dir := t.TempDir()
	s := &movePlanSetup{src: newFakeDaemon(false), tgt: newFakeDaemon(true)}
	s.src.info.DockerRootDir = filepath.Join(dir, "docker")
	s.src.addVolume("v", "local", nil)
	s.src.addContainer("app", volumeMount("v", "/data"))
	s.data = s.src.volume("v").Mountpoint
	home := filepath.Join(dir, "home")
	mkdirs(t, s.data, filepath.Join(home, ".local/share/docker/volumes"))
	s.tgt.info.DockerRootDir = filepath.Join(home, ".local/share/docker")
	s.opts = testOptions(s.src, s.tgt)
	s.opts.User.Home = home
	s.opts.Volumes = VolumesMove
	s.opts.Audit = func(_ context.Context, root string) (*chown.Report, error) {
		s.audited = append(s.audited, root)
		return &chown.Report{Root: root}, nil
	}
	return s
}

func TestBuildMoveOneFilesystem(t *testing.T) {
	s := newMovePlanSetup(t)
	p := mustBuild(t, s.opts)
	if f := findings(p, CodeMoveCrossFS); len(f) != 0 {
		t.Errorf("a move within one filesystem is refused: %+v", f)
	}
	if !slices.Contains(s.audited, s.data) {
		t.Errorf("the volume was not audited: %v", s.audited)
	}
}

// TestBuildMoveResumed: an earlier run moved the volume (its source is
// gone); the plan of the re-run neither audits nor checks the source and
// says the move resumes. With the source still there, it is planned as
// usual.
func TestBuildMoveResumed(t *testing.T) {
	s := newMovePlanSetup(t)
	s.opts.MovedVolume = func(name string) bool { return name == "v" }
	if err := os.Remove(s.data); err != nil {
		t.Fatal(err)
	}
	p := mustBuild(t, s.opts)
	if len(s.audited) != 0 || len(findings(p, CodeMoveCrossFS)) != 0 {
		t.Errorf("audited %v, findings %+v", s.audited, p.Findings)
	}
	if f := findings(p, CodeResume); len(f) != 1 || f[0].Subject != "v" || !strings.Contains(f[0].Message, "move resumes") {
		t.Errorf("resume findings %+v", f)
	}

	mkdirs(t, s.data)
	s.audited = nil
	p = mustBuild(t, s.opts)
	if !slices.Contains(s.audited, s.data) || len(findings(p, CodeResume)) != 0 {
		t.Errorf("with the source there: audited %v, resume findings %+v", s.audited, findings(p, CodeResume))
	}
}

// TestBuildMoveCrossFilesystem: the source volume's data on its own tmpfs
// is a blocker naming the two devices; apply's check says the same.
func TestBuildMoveCrossFilesystem(t *testing.T) {
	requireMounts(t)
	s := newMovePlanSetup(t)
	mountT(t, "tmpfs", s.data, "tmpfs")
	p := mustBuild(t, s.opts)
	f := findings(p, CodeMoveCrossFS)
	if len(f) != 1 || f[0].Severity != Blocker || !strings.Contains(f[0].Message, "different filesystems") || f[0].Hint == "" {
		t.Fatalf("findings %+v", f)
	}
	err := checkVolumeMove("v", s.data, moveTargetDir("", s.opts.User.Home))
	if sfe, ok := err.(*SameFilesystemError); !ok || !strings.Contains(sfe.Reason, "different filesystems") || !strings.Contains(sfe.Hint(), "--volumes copy") {
		t.Errorf("apply's check: %v", err)
	}
}
