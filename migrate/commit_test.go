package migrate

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/client"

	"github.com/unroot/unroot/inventory"
)

// commitSource is an afDaemon whose images carry a comment and a creation
// time, as committed images do.
type commitSource struct {
	*afDaemon
	meta map[string]image.InspectResponse // by reference
}

func (d *commitSource) ContainerCommit(ctx context.Context, id string, o client.ContainerCommitOptions) (client.ContainerCommitResult, error) {
	d.meta[o.Reference] = image.InspectResponse{Comment: o.Comment, Created: time.Now().UTC().Format(time.RFC3339Nano)}
	return d.afDaemon.ContainerCommit(ctx, id, o)
}

func (d *commitSource) ImageInspect(ctx context.Context, id string, o ...client.ImageInspectOption) (client.ImageInspectResult, error) {
	res, err := d.afDaemon.ImageInspect(ctx, id, o...)
	if m, ok := d.meta[id]; ok && err == nil {
		res.Comment, res.Created = m.Comment, m.Created
	}
	return res, err
}

// TestApplyResumeReusesCommittedImage resumes a cutover whose run was
// killed after it committed the stopped source's writable layer and before
// it recorded the commit (during the image's transfer): the resumed run
// transfers that image rather than committing a second one, which left the
// first behind untagged. An image of the same name committed before this
// cutover started (an earlier, rolled-back one) is committed anew.
func TestApplyResumeReusesCommittedImage(t *testing.T) {
	for _, tc := range []struct {
		name   string
		age    time.Duration // of the committed image, against the cutover's start
		commit bool
	}{
		{"committed by the killed run", time.Second, false},
		{"committed by an earlier cutover", -time.Hour, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newAFSetup(t)
			s.plan.Services = s.plan.Services[:1]
			s.plan.Services[0].CommitWritableLayer = true
			src := &commitSource{afDaemon: s.src, meta: map[string]image.InspectResponse{}}
			ref := CommitRepo + ":db"
			started := time.Now().UTC().Add(-time.Minute)
			s.src.containers["db"].State.Running = false
			s.src.images["sha256:committed"] = []string{ref}
			src.meta[ref] = image.InspectResponse{Comment: commitComment("db"), Created: started.Add(tc.age).Format(time.RFC3339Nano)}
			s.st.Services["db"] = &ServiceState{Container: "db", SourceID: "id-db", Phase: PhaseSourceStopped, SourceWasRunning: true,
				RestartPolicy: inventory.RestartPolicy{Name: "always"}, Volumes: []string{"dbdata"}, Image: "busybox:latest",
				Started: started, StoppedAt: started.Add(time.Millisecond)}
			o := s.options()
			o.Source = src
			if _, err := Apply(context.Background(), s.plan, o); err != nil {
				t.Fatalf("resume: %v\n%s", err, strings.Join(s.log, "\n"))
			}
			log := strings.Join(s.log, "\n")
			if got := strings.Contains(log, "src commit "+ref); got != tc.commit {
				t.Errorf("committed again: %v, want %v\n%s", got, tc.commit, log)
			}
			if got := s.st.Service("db"); got.Phase != PhaseDone || got.CommittedImage != ref {
				t.Errorf("state %+v", got)
			}
			if got := s.tgt.containers["db"].Config.Image; got != ref {
				t.Errorf("target created from %q, want %q", got, ref)
			}
			if tags := s.tgt.images["sha256:committed"]; len(tags) != 1 || tags[0] != ref {
				t.Errorf("target images %v, want the committed image", s.tgt.images)
			}
		})
	}
}

// TestRollbackDropsCommittedImage rolls back a cutover that committed the
// source's writable layer: the committed image goes from both daemons (the
// source container keeps its layer; a later migration commits afresh, which
// otherwise left the earlier image behind untagged), and the state no
// longer names it.
func TestRollbackDropsCommittedImage(t *testing.T) {
	s := newAFSetup(t)
	s.plan.Services = s.plan.Services[:1]
	s.plan.Services[0].CommitWritableLayer = true
	ref := CommitRepo + ":db"
	if _, err := Apply(context.Background(), s.plan, s.options()); err != nil {
		t.Fatalf("apply: %v\n%s", err, strings.Join(s.log, "\n"))
	}
	if got := s.st.Service("db").CommittedImage; got != ref {
		t.Fatalf("committed image %q, want %q", got, ref)
	}
	o := s.options()
	if _, err := Rollback(context.Background(), RollbackOptions{Source: o.Source, Target: o.Target, Files: o.Files, State: s.st,
		Map: o.Map, Containers: []string{"db"}, Progress: o.Progress}); err != nil {
		t.Fatalf("rollback: %v\n%s", err, strings.Join(s.log, "\n"))
	}
	log := strings.Join(s.log, "\n")
	for _, want := range []string{"tgt rmi " + ref, "src rmi " + ref} {
		if !strings.Contains(log, want) {
			t.Errorf("rollback did not %q:\n%s", want, log)
		}
	}
	for name, d := range map[string]*afDaemon{"source": s.src, "target": s.tgt} {
		if _, ok := d.images["sha256:committed"]; ok {
			t.Errorf("the %s still has the committed image: %v", name, d.images)
		}
	}
	if ss := s.st.Service("db"); ss.Phase != PhaseRolledBack || ss.CommittedImage != "" {
		t.Errorf("state after rollback: phase %s, committed image %q", ss.Phase, ss.CommittedImage)
	}
}

// TestRollbackDropsUnrecordedCommit rolls back a cutover killed after it
// committed the writable layer and before it recorded the commit: the image
// is found by name, unroot's comment and its creation time, and removed; one
// committed before the cutover started is left alone.
func TestRollbackDropsUnrecordedCommit(t *testing.T) {
	for _, tc := range []struct {
		name    string
		age     time.Duration
		removed bool
	}{
		{"committed by the killed run", time.Second, true},
		{"committed before this cutover", -time.Hour, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newAFSetup(t)
			src := &commitSource{afDaemon: s.src, meta: map[string]image.InspectResponse{}}
			ref := CommitRepo + ":db"
			started := time.Now().UTC().Add(-time.Minute)
			s.src.containers["db"].State.Running = false
			s.src.images["sha256:committed"] = []string{ref}
			src.meta[ref] = image.InspectResponse{Comment: commitComment("db"), Created: started.Add(tc.age).Format(time.RFC3339Nano)}
			s.st.Services["db"] = &ServiceState{Container: "db", SourceID: "id-db", Phase: PhaseSourceStopped, SourceWasRunning: true,
				RestartPolicy: inventory.RestartPolicy{Name: "always"}, Image: "busybox:latest", Started: started}
			o := s.options()
			if _, err := Rollback(context.Background(), RollbackOptions{Source: src, Target: o.Target, Files: o.Files, State: s.st,
				Map: o.Map, Containers: []string{"db"}, Progress: o.Progress}); err != nil {
				t.Fatalf("rollback: %v\n%s", err, strings.Join(s.log, "\n"))
			}
			_, kept := s.src.images["sha256:committed"]
			if kept == tc.removed {
				t.Errorf("committed image kept = %v, want removed = %v\n%s", kept, tc.removed, strings.Join(s.log, "\n"))
			}
		})
	}
}
