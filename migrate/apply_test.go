package migrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/volume"
	"github.com/moby/moby/client"

	"github.com/unroot/unroot/chown"
	"github.com/unroot/unroot/inventory"
)

// afDaemon is a fake Docker daemon for apply tests: it keeps containers,
// images and volumes in maps and logs every mutating call.
type afDaemon struct {
	name       string
	mu         sync.Mutex
	log        *[]string
	containers map[string]*container.InspectResponse // by name
	images     map[string][]string
	volumes    map[string]string // name → mountpoint
	networks   map[string]bool
	fail       map[string]error // call ("start e2e") → error
	volRoot    string
}

func newAFDaemon(name string, log *[]string, volRoot string) *afDaemon {
	return &afDaemon{name: name, log: log, containers: map[string]*container.InspectResponse{}, images: map[string][]string{},
		volumes: map[string]string{}, networks: map[string]bool{}, fail: map[string]error{}, volRoot: volRoot}
}

func (d *afDaemon) record(call string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	*d.log = append(*d.log, d.name+" "+call)
	return d.fail[call]
}

func (d *afDaemon) addContainer(name string, running bool) {
	d.containers[name] = &container.InspectResponse{ID: "id-" + name, Name: "/" + name,
		State: &container.State{Running: running}, Config: &container.Config{}}
}

func (d *afDaemon) find(ref string) *container.InspectResponse {
	for n, c := range d.containers {
		if n == ref || c.ID == ref {
			return c
		}
	}
	return nil
}

func (d *afDaemon) ImageSave(_ context.Context, ids []string, _ ...client.ImageSaveOption) (client.ImageSaveResult, error) {
	return io.NopCloser(strings.NewReader("tar:" + strings.Join(ids, ","))), d.record("save " + strings.Join(ids, ","))
}

func (d *afDaemon) ImageLoad(_ context.Context, r io.Reader, _ ...client.ImageLoadOption) (client.ImageLoadResult, error) {
	b, _ := io.ReadAll(r)
	for _, n := range strings.Split(strings.TrimPrefix(string(b), "tar:"), ",") {
		id := "sha256:img"
		if strings.HasPrefix(n, CommitRepo) {
			id = "sha256:committed"
		}
		if !slices.Contains(d.images[id], n) {
			d.images[id] = append(d.images[id], n)
		}
	}
	return io.NopCloser(strings.NewReader("")), d.record("load")
}

func (d *afDaemon) ImageInspect(_ context.Context, id string, _ ...client.ImageInspectOption) (client.ImageInspectResult, error) {
	for k, tags := range d.images {
		if k == id || slices.Contains(tags, id) {
			return client.ImageInspectResult{InspectResponse: image.InspectResponse{ID: k, RepoTags: tags}}, nil
		}
	}
	return client.ImageInspectResult{}, fakeNotFound{"image " + id}
}

func (d *afDaemon) ImageTag(_ context.Context, o client.ImageTagOptions) (client.ImageTagResult, error) {
	d.images[o.Source] = append(d.images[o.Source], o.Target)
	return client.ImageTagResult{}, nil
}

func (d *afDaemon) NetworkInspect(_ context.Context, id string, _ client.NetworkInspectOptions) (client.NetworkInspectResult, error) {
	if d.networks[id] {
		var r client.NetworkInspectResult
		r.Network.Name = id
		return r, nil
	}
	return client.NetworkInspectResult{}, fakeNotFound{"network " + id}
}

func (d *afDaemon) NetworkCreate(_ context.Context, name string, _ client.NetworkCreateOptions) (client.NetworkCreateResult, error) {
	d.networks[name] = true
	return client.NetworkCreateResult{ID: name}, d.record("network create " + name)
}

func (d *afDaemon) NetworkConnect(_ context.Context, n string, o client.NetworkConnectOptions) (client.NetworkConnectResult, error) {
	return client.NetworkConnectResult{}, d.record("connect " + n)
}

func (d *afDaemon) VolumeCreate(_ context.Context, o client.VolumeCreateOptions) (client.VolumeCreateResult, error) {
	mp := filepath.Join(d.volRoot, o.Name, "_data")
	if err := os.MkdirAll(mp, 0o755); err != nil {
		return client.VolumeCreateResult{}, err
	}
	d.volumes[o.Name] = mp
	return client.VolumeCreateResult{Volume: volume.Volume{Name: o.Name, Mountpoint: mp}}, d.record("volume create " + o.Name)
}

func (d *afDaemon) VolumeInspect(_ context.Context, name string, _ client.VolumeInspectOptions) (client.VolumeInspectResult, error) {
	if mp, ok := d.volumes[name]; ok {
		return client.VolumeInspectResult{Volume: volume.Volume{Name: name, Mountpoint: mp}}, nil
	}
	return client.VolumeInspectResult{}, fakeNotFound{"volume " + name}
}

func (d *afDaemon) VolumeRemove(_ context.Context, name string, _ client.VolumeRemoveOptions) (client.VolumeRemoveResult, error) {
	delete(d.volumes, name)
	return client.VolumeRemoveResult{}, d.record("volume rm " + name)
}

func (d *afDaemon) ContainerInspect(_ context.Context, ref string, _ client.ContainerInspectOptions) (client.ContainerInspectResult, error) {
	if c := d.find(ref); c != nil {
		cp := *c
		st := *c.State
		cp.State = &st
		return client.ContainerInspectResult{Container: cp}, nil
	}
	return client.ContainerInspectResult{}, fakeNotFound{"container " + ref}
}

func (d *afDaemon) ContainerCreate(_ context.Context, o client.ContainerCreateOptions) (client.ContainerCreateResult, error) {
	if err := d.record("create " + o.Name); err != nil {
		return client.ContainerCreateResult{}, err
	}
	d.addContainer(o.Name, false)
	d.containers[o.Name].Config = o.Config
	d.containers[o.Name].HostConfig = o.HostConfig
	return client.ContainerCreateResult{ID: "id-" + o.Name}, nil
}

func (d *afDaemon) ContainerStart(_ context.Context, id string, _ client.ContainerStartOptions) (client.ContainerStartResult, error) {
	c := d.find(id)
	if err := d.record("start " + strings.TrimPrefix(c.Name, "/")); err != nil {
		return client.ContainerStartResult{}, err
	}
	c.State.Running = true
	return client.ContainerStartResult{}, nil
}

func (d *afDaemon) ContainerStop(_ context.Context, id string, o client.ContainerStopOptions) (client.ContainerStopResult, error) {
	c := d.find(id)
	t := -1
	if o.Timeout != nil {
		t = *o.Timeout
	}
	if err := d.record(fmt.Sprintf("stop %s t=%d", strings.TrimPrefix(c.Name, "/"), t)); err != nil {
		return client.ContainerStopResult{}, err
	}
	c.State.Running = false
	return client.ContainerStopResult{}, nil
}

func (d *afDaemon) ContainerRemove(_ context.Context, id string, _ client.ContainerRemoveOptions) (client.ContainerRemoveResult, error) {
	c := d.find(id)
	delete(d.containers, strings.TrimPrefix(c.Name, "/"))
	return client.ContainerRemoveResult{}, d.record("rm " + strings.TrimPrefix(c.Name, "/"))
}

func (d *afDaemon) ContainerCommit(_ context.Context, id string, o client.ContainerCommitOptions) (client.ContainerCommitResult, error) {
	d.images["sha256:committed"] = []string{o.Reference}
	return client.ContainerCommitResult{ID: "sha256:committed"}, d.record("commit " + o.Reference)
}

func (d *afDaemon) ImageRemove(_ context.Context, ref string, _ client.ImageRemoveOptions) (client.ImageRemoveResult, error) {
	for id, tags := range d.images {
		if id == ref || slices.Contains(tags, ref) {
			delete(d.images, id)
			return client.ImageRemoveResult{}, d.record("rmi " + ref)
		}
	}
	return client.ImageRemoveResult{}, fakeNotFound{"image " + ref}
}

func (d *afDaemon) ContainerUpdate(_ context.Context, id string, o client.ContainerUpdateOptions) (client.ContainerUpdateResult, error) {
	c := d.find(id)
	return client.ContainerUpdateResult{}, d.record(fmt.Sprintf("update %s restart=%s", strings.TrimPrefix(c.Name, "/"), o.RestartPolicy.Name))
}

// afFiles is a fake FileOps: Copy really copies (flat files only) so the
// verification sees what was copied; the others log.
type afFiles struct {
	log  *[]string
	fail map[string]error
}

func (f *afFiles) Audit(_ context.Context, root string, _ chown.Options) (*chown.Report, error) {
	r := &chown.Report{Root: root, Dirs: 1}
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		fi, _ := e.Info()
		r.Files++
		r.Bytes += fi.Size()
	}
	return r, nil
}

func (f *afFiles) Copy(_ context.Context, src, dst string, o chown.Options) (*chown.Report, error) {
	*f.log = append(*f.log, "copy "+filepath.Base(filepath.Dir(src)))
	if err := f.fail["copy"]; err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			return nil, err
		}
	}
	if o.Progress != nil {
		o.Progress(int64(len(ents)), 1)
	}
	// the census of src, as the real Copy's walk reports it
	return f.Audit(context.Background(), src, o)
}

func (f *afFiles) Shift(_ context.Context, root string, o chown.Options) (*chown.Report, error) {
	*f.log = append(*f.log, "shift "+root)
	if o.JournalDir == "" {
		return nil, errors.New("no journal")
	}
	return &chown.Report{}, os.MkdirAll(o.JournalDir, 0o700)
}

func (f *afFiles) Reverse(_ context.Context, root string, o chown.Options) (*chown.Report, error) {
	*f.log = append(*f.log, "reverse "+root)
	return &chown.Report{}, nil
}

// afSetup builds a plan with a db (volume "dbdata", running) and a web
// service (bind dir, port 80→8080, depends on db) and the fakes around it.
type afSetup struct {
	plan     *Plan
	src, tgt *afDaemon
	files    *afFiles
	st       *State
	log      []string
	bind     string
	srcVol   string
}

func newAFSetup(t *testing.T) *afSetup {
	t.Helper()
	dir := t.TempDir()
	s := &afSetup{}
	home := filepath.Join(dir, "home")
	s.src = newAFDaemon("src", &s.log, filepath.Join(dir, "src"))
	s.tgt = newAFDaemon("tgt", &s.log, filepath.Join(home, ".local/share/docker/volumes"))
	s.files = &afFiles{log: &s.log, fail: map[string]error{}}
	s.srcVol = filepath.Join(dir, "src", "dbdata", "_data")
	if err := os.MkdirAll(s.srcVol, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.srcVol, "table"), []byte("rows"), 0o644); err != nil {
		t.Fatal(err)
	}
	s.bind = filepath.Join(dir, "www")
	if err := os.MkdirAll(s.bind, 0o755); err != nil {
		t.Fatal(err)
	}
	s.src.addContainer("db", true)
	s.src.addContainer("web", true)
	s.src.images["sha256:img"] = []string{"busybox:latest"}
	var err error
	if s.st, err = LoadState(filepath.Join(dir, "state")); err != nil {
		t.Fatal(err)
	}
	inv := &inventory.Inventory{
		Containers: []inventory.Container{
			{ID: "id-db", Name: "db", Image: "busybox:latest", ImageID: "sha256:img", Running: true, User: "999",
				RestartPolicy: inventory.RestartPolicy{Name: "always"}, NetworkMode: "net1",
				Networks: []inventory.NetworkAttachment{{Name: "net1", Aliases: []string{"db"}}},
				Mounts:   []inventory.Mount{{Type: "volume", Name: "dbdata", Source: s.srcVol, Destination: "/var/lib/db", RW: true}}},
			{ID: "id-web", Name: "web", Image: "busybox:latest", ImageID: "sha256:img", Running: true,
				RestartPolicy: inventory.RestartPolicy{Name: "unless-stopped"}, NetworkMode: "net1",
				Networks: []inventory.NetworkAttachment{{Name: "net1"}},
				Ports:    []inventory.Port{{ContainerPort: 80, Proto: "tcp", Published: true, HostIP: "127.0.0.1", HostPort: "80"}},
				Mounts:   []inventory.Mount{{Type: "bind", Source: s.bind, Destination: "/www", RW: true}}},
		},
		Networks: []inventory.Network{{Name: "net1", Driver: "bridge"}},
	}
	s.plan = &Plan{
		User:        User{Name: "alice", UID: 1001, GID: 1001, Home: home},
		VolumesMode: VolumesCopy,
		Services: []*Service{
			{Order: 1, Container: "db", ID: "id-db", Image: "busybox:latest", ImageID: "sha256:img", Running: true, Volumes: []string{"dbdata"}, Networks: []string{"net1"}, StopTimeout: 10},
			{Order: 2, Container: "web", ID: "id-web", Image: "busybox:latest", ImageID: "sha256:img", Running: true, Binds: []string{s.bind}, Networks: []string{"net1"}, DependsOn: []string{"db"}, StopTimeout: 7,
				Ports: []PortPlan{{Container: "web", ContainerPort: 80, Proto: "tcp", HostIP: "127.0.0.1", OldHostPort: "80", NewHostPort: "8080", Rewritten: true}}},
		},
		Images:   []ImagePlan{{ID: "sha256:img", Tags: []string{"busybox:latest"}, Size: 100}},
		Networks: []NetworkPlan{{Name: "net1", Driver: "bridge"}},
		Volumes:  []VolumePlan{{Name: "dbdata", Driver: "local", SourcePath: s.srcVol, CopyData: true}},
		Binds:    []BindPlan{{Source: s.bind, Action: "shift"}},
		inv:      inv,
	}
	return s
}

func (s *afSetup) options() ApplyOptions {
	return ApplyOptions{Source: s.src, Target: s.tgt, Files: s.files, State: s.st, Settle: time.Millisecond, HealthTimeout: time.Second}
}

// indexOf returns the position of the first log entry with prefix p.
func (s *afSetup) indexOf(t *testing.T, p string) int {
	t.Helper()
	for i, l := range s.log {
		if strings.HasPrefix(l, p) {
			return i
		}
	}
	t.Fatalf("no %q in the call log:\n%s", p, strings.Join(s.log, "\n"))
	return -1
}

func TestApplyCutoverSequence(t *testing.T) {
	s := newAFSetup(t)
	// web publishes 127.0.0.1:8080: serve it for the health gate.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { time.Sleep(2 * time.Second); c.Close() }()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	s.plan.Services[1].Ports[0].NewHostPort = fmt.Sprint(port)

	res, err := Apply(context.Background(), s.plan, s.options())
	if err != nil {
		t.Fatalf("apply: %v\n%s", err, strings.Join(s.log, "\n"))
	}
	order := []string{
		"tgt network create net1", "src save busybox:latest", "tgt load", "tgt volume create dbdata", "copy dbdata",
		"src stop db t=10", "tgt create db", "tgt start db", "src update db restart=no",
		"src stop web t=7", "shift " + s.bind, "tgt create web", "tgt start web", "src update web restart=no",
	}
	last := -1
	for _, step := range order {
		i := s.indexOf(t, step)
		if i < last {
			t.Errorf("%q happened out of order:\n%s", step, strings.Join(s.log, "\n"))
		}
		last = i
	}
	if n := strings.Count(strings.Join(s.log, "\n"), "copy dbdata"); n != 2 {
		t.Errorf("volume copied %d times, want a pre-sync and a final sync", n)
	}
	if b, err := os.ReadFile(filepath.Join(s.tgt.volumes["dbdata"], "table")); err != nil || string(b) != "rows" {
		t.Errorf("target volume content %q, %v", b, err)
	}
	for _, r := range res.Services {
		if r.Outcome != OutcomeMigrated || r.Downtime <= 0 {
			t.Errorf("result %+v", r)
		}
	}
	web := s.st.Service("web")
	if web.Phase != PhaseDone || !web.RestartPolicyChanged || web.RestartPolicy.Name != "unless-stopped" || web.DowntimeMS < 0 {
		t.Errorf("web state %+v", web)
	}
	if !s.st.Binds[s.bind].Shifted || !s.st.Volumes["dbdata"].Synced {
		t.Errorf("mount state: bind %+v volume %+v", s.st.Binds[s.bind], s.st.Volumes["dbdata"])
	}
	hc := s.tgt.containers["web"].HostConfig
	if len(hc.Binds) != 1 || !strings.HasPrefix(hc.Binds[0], s.bind+":/www") {
		t.Errorf("target binds %q", hc.Binds)
	}
	back, err := LoadState(s.st.Dir())
	if err != nil || back.Service("db").Phase != PhaseDone {
		t.Errorf("state on disk: %v %+v", err, back)
	}

	// A second run with the services marked already migrated changes nothing.
	s.log = nil
	for _, sv := range s.plan.Services {
		sv.AlreadyMigrated = true
	}
	res, err = Apply(context.Background(), s.plan, s.options())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res.Services {
		if r.Outcome != OutcomeAlreadyMigrated {
			t.Errorf("second run: %+v", r)
		}
	}
	for _, l := range s.log {
		if !strings.HasPrefix(l, "tgt network") {
			t.Errorf("second run changed something: %s", l)
		}
	}
}

func TestApplyFailureRollsBackUnit(t *testing.T) {
	s := newAFSetup(t)
	s.plan.Services = s.plan.Services[1:] // web only
	s.plan.Volumes = nil
	s.tgt.fail["start web"] = errors.New("port is already allocated")
	_, err := Apply(context.Background(), s.plan, s.options())
	var ce *CutoverError
	if !errors.As(err, &ce) || !ce.RolledBack || ce.Step != "start target" {
		t.Fatalf("err = %v, want a rolled-back CutoverError at start target", err)
	}
	for _, want := range []string{"tgt rm web", "reverse " + s.bind, "src start web"} {
		s.indexOf(t, want)
	}
	if s.indexOf(t, "tgt rm web") > s.indexOf(t, "reverse "+s.bind) || s.indexOf(t, "reverse "+s.bind) > s.indexOf(t, "src start web") {
		t.Errorf("rollback order wrong:\n%s", strings.Join(s.log, "\n"))
	}
	if slices.ContainsFunc(s.log, func(l string) bool { return strings.HasPrefix(l, "src update") }) {
		t.Error("restart policy touched although the cutover never finished")
	}
	if got := s.st.Service("web"); got.Phase != PhaseRolledBack || got.Error == "" {
		t.Errorf("state %+v", got)
	}
	if !s.src.containers["web"].State.Running {
		t.Error("source not running after rollback")
	}
}

func TestApplyResumeReusesTargetAndSkipsShiftedBind(t *testing.T) {
	s := newAFSetup(t)
	s.plan.Services = s.plan.Services[1:]
	s.plan.Volumes = nil
	s.plan.Services[0].Ports = nil
	// An earlier run stopped the source, shifted the bind and created the
	// target, then died.
	s.src.containers["web"].State.Running = false
	s.tgt.addContainer("web", false)
	s.st.Services["web"] = &ServiceState{Container: "web", SourceID: "id-web", Phase: PhaseCreating, SourceWasRunning: true,
		RestartPolicy: inventory.RestartPolicy{Name: "unless-stopped"}, Binds: []string{s.bind}, Image: "busybox:latest",
		StoppedAt: time.Now().Add(-time.Second)}
	s.st.Binds[s.bind] = &BindState{Source: s.bind, JournalDir: filepath.Join(t.TempDir(), "j"), Shifted: true}
	if _, err := Apply(context.Background(), s.plan, s.options()); err != nil {
		t.Fatalf("resume: %v\n%s", err, strings.Join(s.log, "\n"))
	}
	for _, l := range s.log {
		if strings.HasPrefix(l, "tgt create") || strings.HasPrefix(l, "shift") || strings.HasPrefix(l, "src stop") {
			t.Errorf("resume repeated a finished step: %s", l)
		}
	}
	s.indexOf(t, "tgt start web")
	if got := s.st.Service("web"); got.Phase != PhaseDone || got.TargetID != "id-web" || got.DowntimeMS < 1000 {
		t.Errorf("state %+v", got)
	}
}

func TestApplyRefusesBlockers(t *testing.T) {
	s := newAFSetup(t)
	s.plan.Findings = []Finding{{Code: CodeHostNetwork, Severity: Blocker}}
	if _, err := Apply(context.Background(), s.plan, s.options()); !errors.Is(err, ErrBlocked) {
		t.Fatalf("err = %v, want ErrBlocked", err)
	}
	if len(s.log) != 0 {
		t.Errorf("a blocked plan did: %q", s.log)
	}
}

func TestApplyMoveVolumeAndRollback(t *testing.T) {
	s := newAFSetup(t)
	s.plan.Services = s.plan.Services[:1] // db only
	s.plan.VolumesMode = VolumesMove
	if err := os.MkdirAll(s.tgt.volRoot, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := CheckRenameDir(s.srcVol, s.tgt.volRoot); err != nil {
		t.Skipf("temporary directories are not on one filesystem (%v)", err)
	}
	if _, err := Apply(context.Background(), s.plan, s.options()); err != nil {
		t.Fatalf("apply: %v\n%s", err, strings.Join(s.log, "\n"))
	}
	dst := s.tgt.volumes["dbdata"]
	if b, err := os.ReadFile(filepath.Join(dst, "table")); err != nil || string(b) != "rows" {
		t.Fatalf("moved data: %q, %v", b, err)
	}
	if _, err := os.Stat(s.srcVol); !os.IsNotExist(err) {
		t.Errorf("source data still there after a move: %v", err)
	}
	s.indexOf(t, "shift "+dst)
	vs := s.st.Volumes["dbdata"]
	if !vs.Moved || !vs.Synced || vs.JournalDir == "" {
		t.Errorf("volume state %+v", vs)
	}

	names, err := Rollback(context.Background(), RollbackOptions{Source: s.src, Target: s.tgt, Files: s.files, State: s.st, Containers: []string{"db"}})
	if err != nil || !slices.Equal(names, []string{"db"}) {
		t.Fatalf("rollback: %v %v", names, err)
	}
	if b, err := os.ReadFile(filepath.Join(s.srcVol, "table")); err != nil || string(b) != "rows" {
		t.Errorf("data not moved back: %q, %v", b, err)
	}
	if empty, err := dirEmpty(dst); err != nil || !empty {
		t.Errorf("target volume after rollback: empty=%v %v", empty, err)
	}
	s.indexOf(t, "reverse "+dst)
	s.indexOf(t, "src update db restart=always")
	if !s.src.containers["db"].State.Running {
		t.Error("source not started again")
	}
}

func TestRollbackUnknownContainer(t *testing.T) {
	s := newAFSetup(t)
	_, err := Rollback(context.Background(), RollbackOptions{Source: s.src, Target: s.tgt, Files: s.files, State: s.st, Containers: []string{"nope"}})
	if !errors.Is(err, ErrNotMigrated) {
		t.Fatalf("err = %v", err)
	}
}

func TestApplyUnitsShareMounts(t *testing.T) {
	tests := []struct {
		name     string
		services []*Service
		want     [][]string
	}{
		{"independent", []*Service{{Container: "a", Volumes: []string{"v1"}}, {Container: "b", Volumes: []string{"v2"}}}, [][]string{{"a"}, {"b"}}},
		{"shared volume", []*Service{{Container: "a", Volumes: []string{"v"}}, {Container: "b"}, {Container: "c", Volumes: []string{"v"}}}, [][]string{{"a", "c"}, {"b"}}},
		{"chain via bind", []*Service{{Container: "a", Volumes: []string{"v"}}, {Container: "b", Volumes: []string{"v"}, Binds: []string{"/srv/x"}}, {Container: "c", Binds: []string{"/srv/x"}}}, [][]string{{"a", "b", "c"}}},
		{"docker socket not shared", []*Service{{Container: "a", Binds: []string{"/var/run/docker.sock"}}, {Container: "b", Binds: []string{"/var/run/docker.sock"}}}, [][]string{{"a"}, {"b"}}},
		{"already migrated left out", []*Service{{Container: "a", AlreadyMigrated: true}, {Container: "b"}}, [][]string{{"b"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &applier{plan: &Plan{Services: tt.services}}
			var got [][]string
			for _, u := range a.units() {
				var names []string
				for _, s := range u {
					names = append(names, s.Container)
				}
				got = append(got, names)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("units = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCommitTag(t *testing.T) {
	tests := map[string]string{"web": "web", "shop-web-1": "shop-web-1", "-x": "_x", "a b/c": "a_b_c", strings.Repeat("x", 200): strings.Repeat("x", 128)}
	for in, want := range tests {
		if got := commitTag(in); got != want {
			t.Errorf("commitTag(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHealthTimeout(t *testing.T) {
	tests := []struct {
		name string
		cfg  *container.Config
		want time.Duration
	}{
		{"none", &container.Config{}, time.Minute},
		{"defaults", &container.Config{Healthcheck: &container.HealthConfig{Test: []string{"CMD", "true"}}}, 4 * time.Minute},
		{"short", &container.Config{Healthcheck: &container.HealthConfig{Interval: time.Second, Timeout: time.Second, Retries: 2}}, time.Minute},
		{"capped", &container.Config{Healthcheck: &container.HealthConfig{Interval: time.Hour}}, 10 * time.Minute},
		{"start period", &container.Config{Healthcheck: &container.HealthConfig{Interval: time.Second, Timeout: time.Second, Retries: 1, StartPeriod: 2 * time.Minute}}, 2*time.Minute + 4*time.Second},
	}
	for _, tt := range tests {
		if got := healthTimeout(tt.cfg); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestProbeTCP(t *testing.T) {
	serve := func(closeAtOnce bool) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				if closeAtOnce {
					c.Close()
				} else {
					go func() { time.Sleep(2 * time.Second); c.Close() }()
				}
			}
		}()
		return ln.Addr().String()
	}
	if err := probeTCP(context.Background(), serve(false)); err != nil {
		t.Errorf("a listening service: %v", err)
	}
	if err := probeTCP(context.Background(), serve(true)); err == nil {
		t.Error("a forwarder that closes at once counted as answering")
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	if err := probeTCP(context.Background(), addr); err == nil {
		t.Error("a closed port counted as answering")
	}
}

func TestApplyRefusesUnsafeTargetPath(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, s *afSetup)
	}{
		{"daemon reports a path outside the home", func(t *testing.T, s *afSetup) {
			s.tgt.volumes["dbdata"] = t.TempDir()
		}},
		{"symlinked volume directory", func(t *testing.T, s *afSetup) {
			elsewhere := t.TempDir()
			if err := os.MkdirAll(filepath.Join(elsewhere, "_data"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(s.tgt.volRoot, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(elsewhere, filepath.Join(s.tgt.volRoot, "dbdata")); err != nil {
				t.Fatal(err)
			}
			s.tgt.volumes["dbdata"] = filepath.Join(s.tgt.volRoot, "dbdata", "_data")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newAFSetup(t)
			s.plan.Services = s.plan.Services[:1]
			tt.setup(t, s)
			_, err := Apply(context.Background(), s.plan, s.options())
			var ue *UnsafeTargetError
			if !errors.As(err, &ue) {
				t.Fatalf("err = %v, want an UnsafeTargetError", err)
			}
			for _, l := range s.log {
				if strings.HasPrefix(l, "copy") || strings.HasPrefix(l, "src stop") {
					t.Errorf("went ahead with %q", l)
				}
			}
		})
	}
}

func TestApplyUnitsShareNamespaces(t *testing.T) {
	inv := &inventory.Inventory{Containers: []inventory.Container{
		{ID: "aaaa", Name: "db"}, {ID: "bbbb", Name: "sidecar", NetworkMode: "container:aaaa"}, {ID: "cccc", Name: "other"},
	}}
	a := &applier{inv: inv, plan: &Plan{Services: []*Service{{Container: "db"}, {Container: "other"}, {Container: "sidecar"}}}}
	var got [][]string
	for _, u := range a.units() {
		var names []string
		for _, s := range u {
			names = append(names, s.Container)
		}
		got = append(got, names)
	}
	if fmt.Sprint(got) != "[[db sidecar] [other]]" {
		t.Errorf("units = %v", got)
	}
}

func TestApplySkipsUnitDoneSincePlanned(t *testing.T) {
	s := newAFSetup(t)
	s.plan.Services = s.plan.Services[:1]
	s.st.Services["db"] = &ServiceState{Container: "db", Phase: PhaseDone, DowntimeMS: 42}
	res, err := Apply(context.Background(), s.plan, s.options())
	if err != nil {
		t.Fatal(err)
	}
	if r := res.Services[0]; r.Outcome != OutcomeAlreadyMigrated || r.Downtime != 42*time.Millisecond {
		t.Errorf("result %+v", r)
	}
	for _, l := range s.log {
		if strings.HasPrefix(l, "src stop") || strings.HasPrefix(l, "tgt create") || strings.HasPrefix(l, "copy") {
			t.Errorf("a finished unit was cut over again: %s", l)
		}
	}
}

// TestApplyResumeConnectsMissingNetworks: a run killed between the create and
// the network connects left the target on its first network; the resumed
// run connects the rest and leaves the first alone.
func TestApplyResumeConnectsMissingNetworks(t *testing.T) {
	s := newAFSetup(t)
	s.plan.Services = s.plan.Services[1:]
	s.plan.Volumes = nil
	s.plan.Services[0].Ports = nil
	s.plan.Services[0].Networks = []string{"net1", "net2"}
	s.plan.Networks = append(s.plan.Networks, NetworkPlan{Name: "net2", Driver: "bridge"})
	web := &s.plan.inv.Containers[1]
	web.Networks = append(web.Networks, inventory.NetworkAttachment{Name: "net2", Aliases: []string{"www"}})
	s.plan.inv.Networks = append(s.plan.inv.Networks, inventory.Network{Name: "net2", Driver: "bridge"})
	s.src.containers["web"].State.Running = false
	s.tgt.addContainer("web", false)
	s.tgt.containers["web"].NetworkSettings = &container.NetworkSettings{Networks: map[string]*network.EndpointSettings{"net1": {}}}
	s.st.Services["web"] = &ServiceState{Container: "web", SourceID: "id-web", Phase: PhaseCreating, SourceWasRunning: true,
		RestartPolicy: inventory.RestartPolicy{Name: "unless-stopped"}, Binds: []string{s.bind}, Image: "busybox:latest",
		StoppedAt: time.Now().Add(-time.Second)}
	s.st.Binds[s.bind] = &BindState{Source: s.bind, JournalDir: filepath.Join(t.TempDir(), "j"), Shifted: true}
	if _, err := Apply(context.Background(), s.plan, s.options()); err != nil {
		t.Fatalf("resume: %v\n%s", err, strings.Join(s.log, "\n"))
	}
	connects := 0
	for _, l := range s.log {
		if strings.HasPrefix(l, "tgt connect") {
			connects++
			if l != "tgt connect net2" {
				t.Errorf("resume connected %q; only net2 was missing", l)
			}
		}
	}
	if connects != 1 {
		t.Errorf("%d connects, want 1 (net2):\n%s", connects, strings.Join(s.log, "\n"))
	}
	if i, j := s.indexOf(t, "tgt connect net2"), s.indexOf(t, "tgt start web"); i > j {
		t.Errorf("net2 connected after the start")
	}
}

// expectRecorder is a Progress that keeps every total an overall bar was
// given.
type expectRecorder struct {
	NoProgress
	totals []int64
}

func (e *expectRecorder) Expect(b int64) { e.totals = append(e.totals, b) }

// TestApplyExpectDropsImageFoundInTarget: an image the plan meant to
// transfer that the target holds by the time of the transfer moves no
// bytes, and the overall total loses its size once, though both services
// (cut over one after the other) use it.
func TestApplyExpectDropsImageFoundInTarget(t *testing.T) {
	s := newAFSetup(t)
	s.plan.Services[1].Ports[0].Rewritten, s.plan.Services[1].Ports = false, nil // no health probe
	s.tgt.images["sha256:img"] = []string{"busybox:latest"}                      // loaded after the plan
	rec := &expectRecorder{}
	o := s.options()
	o.Progress = rec
	if _, err := Apply(context.Background(), s.plan, o); err != nil {
		t.Fatalf("apply: %v\n%s", err, strings.Join(s.log, "\n"))
	}
	if slices.ContainsFunc(s.log, func(l string) bool { return strings.HasPrefix(l, "tgt load") }) {
		t.Errorf("the image was loaded although the target had it:\n%s", strings.Join(s.log, "\n"))
	}
	if len(rec.totals) != 2 || rec.totals[1] != rec.totals[0]-100 {
		t.Errorf("overall totals %v; want the first, then once 100 B (the image) less", rec.totals)
	}
}
