package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/unroot/unroot/migrate"
)

// The crash campaign of issue 6 part 3 for the migration shapes beyond a
// single container: a unit of two services that share a volume and a
// network, a Compose 1.29 project, and a container whose writable layer is
// committed. Each shape is migrated once without interruption; then a run
// is killed with SIGKILL at each kill point in turn (every phase boundary of
// every service, and for the commit around the commit), each killed run's
// state being what the next run resumes from, and a last run completes: its
// end state must equal the clean run's. Then a few runs killed at chosen
// points are rolled back instead, which must put the rootful services back.
// Everything this file creates is named e2e-cu-*, and publishes host ports
// 127.0.0.1:121–123 (8121–8123 in the target).

// cuPoint is a place to kill 'unroot migrate': the first state save after
// which cond holds for the service's record.
type cuPoint struct {
	svc   string
	phase migrate.Phase
	// name is the point in the report ("svc@phase" when empty).
	name string
	// cond is when to kill; nil means the phase reached phase. A point whose
	// cond (or passed) holds before a run starts is passed over.
	cond   func(ss *migrate.ServiceState) bool
	passed func(ss *migrate.ServiceState) bool
}

func (p cuPoint) String() string {
	if p.name != "" {
		return p.svc + "@" + p.name
	}
	return p.svc + "@" + string(p.phase)
}

func (p cuPoint) holds(ss *migrate.ServiceState) bool {
	if ss == nil {
		return false
	}
	if p.cond != nil {
		return p.cond(ss)
	}
	return ss.Phase.AtLeast(p.phase)
}

// landed reports whether a killed run stopped at the point: the state
// records the point's phase and its condition.
func (p cuPoint) landed(ss *migrate.ServiceState) bool {
	return ss != nil && ss.Phase == p.phase && p.holds(ss)
}

// phasePoints are the phase boundaries of each service, in cutover order.
func phasePoints(svcs []string) []cuPoint {
	var ps []cuPoint
	for _, ph := range crashPhases {
		for _, s := range svcs {
			ps = append(ps, cuPoint{svc: s, phase: ph})
		}
	}
	return ps
}

// cuRound is one fresh copy of a shape in the source daemon (created with
// the same names each round, in a fresh state directory).
type cuRound interface {
	env() *migEnv
	// args are the migrate arguments after --yes.
	args() []string
	// migrated checks a finished migration and returns its end state; ref
	// is the clean run's (nil for the clean run itself).
	migrated(what string, ref map[string]string) map[string]string
	// rolledBack checks the rootful services are back as before.
	rolledBack(what string)
}

// planOrder is the cutover order 'unroot migrate --dry-run' gives args.
func planOrder(e *migEnv, args []string) []string {
	e.t.Helper()
	out, errOut, code := e.Unroot(e.t, e.args("migrate", append([]string{"--dry-run", "--format", "json"}, args...)...)...)
	if code != 0 {
		e.t.Fatalf("dry run: exit %d\n%s", code, errOut)
	}
	var plan struct {
		Services []struct{ Container string } `json:"services"`
	}
	if err := json.Unmarshal([]byte(out), &plan); err != nil {
		e.t.Fatalf("dry-run JSON: %v", err)
	}
	var order []string
	for _, s := range plan.Services {
		order = append(order, s.Container)
	}
	return order
}

// sameEnd fails for every key of ref whose value differs in got.
func sameEnd(t *testing.T, what string, ref, got map[string]string) {
	t.Helper()
	n := 0
	for _, k := range slices.Sorted(maps.Keys(ref)) {
		if got[k] != ref[k] {
			if n++; n <= 10 {
				t.Errorf("%s: %s differs from a clean run's:\n  got   %s\n  clean %s", what, k, got[k], ref[k])
			}
		}
	}
	for k := range got {
		if _, ok := ref[k]; !ok {
			if n++; n <= 10 {
				t.Errorf("%s: %s is extra: %s", what, k, got[k])
			}
		}
	}
}

// cuCampaign runs a shape's campaign: a clean run, kill chains until every
// point of points (computed from the clean round) landed once (at most
// three rounds, about 100 s), then a killed run rolled back for each point
// rollbackAt names (at most two tries each). points and rollbackAt are given
// the clean round's cutover order.
func cuCampaign(t *testing.T, newRound func() cuRound, points func(order []string) []cuPoint, rollbackAt func(order []string) []string) {
	start := time.Now()
	clean := newRound()
	order := planOrder(clean.env(), clean.args())
	pts := points(order)
	clean.env().mustMigrate(clean.args()...)
	ref := clean.migrated("clean run", nil)
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("clean run of %v done after %v", order, time.Since(start).Round(time.Millisecond))

	landed := map[string]int{}
	kills := 0
	deadline := time.Now().Add(100 * time.Second)
	for round := 0; round < 3 && time.Now().Before(deadline); round++ {
		var todo []cuPoint
		for _, p := range pts {
			if landed[p.String()] == 0 {
				todo = append(todo, p)
			}
		}
		if len(todo) == 0 {
			break
		}
		s := newRound()
		e := s.env()
		dir := filepath.Join(e.stateDir, e.User)
		finished, allDone := false, false
		for _, p := range todo {
			st, err := migrate.LoadState(dir)
			if err != nil {
				t.Fatal(err)
			}
			if ss := st.Service(p.svc); p.holds(ss) || p.passed != nil && ss != nil && p.passed(ss) {
				t.Logf("round %d: %s passed already (phase %s)", round, p, ss.Phase)
				continue
			}
			r := e.signalRun(p.svc, syscall.SIGKILL, func(ss *migrate.ServiceState, changed bool, _ time.Duration) bool {
				return changed && p.holds(ss)
			}, "migrate", append([]string{"--yes"}, s.args()...)...)
			if !r.Killed {
				if r.Code != 0 {
					t.Fatalf("round %d: the run aimed at %s exited %d before the kill:\n%s", round, p, r.Code, r.Stderr)
				}
				t.Logf("round %d: the run aimed at %s finished before the kill", round, p)
				finished = true
				break
			}
			kills++
			var phases []string
			allDone = true
			for _, n := range order {
				ph := migrate.Phase("-")
				if ss := r.State.Service(n); ss != nil {
					ph = ss.Phase
				}
				phases = append(phases, n+"="+string(ph))
				allDone = allDone && ph == migrate.PhaseDone
			}
			if p.landed(r.State.Service(p.svc)) {
				// services of a unit pass most boundaries in one save: the
				// kill landed at each that the state shows at this one
				var at []string
				for _, q := range pts {
					if q.phase == p.phase && q.landed(r.State.Service(q.svc)) {
						landed[q.String()]++
						at = append(at, q.String())
					}
				}
				note := ""
				if n, ok := s.(interface{ note() string }); ok {
					note = "; " + n.note()
				}
				t.Logf("round %d: kill at %s landed (%s%s)", round, strings.Join(at, ", "), strings.Join(phases, " "), note)
			} else {
				t.Logf("round %d: kill aimed at %s landed later (%s)", round, p, strings.Join(phases, " "))
			}
		}
		if !finished {
			res := e.mustMigrate(s.args()...)
			if allDone && !strings.Contains(res.Stdout+res.Stderr, "already") {
				t.Errorf("round %d: the re-run after a kill with every service done does not say already migrated", round)
			}
		}
		s.migrated(fmt.Sprintf("round %d", round), ref)
		if t.Failed() {
			t.FailNow()
		}
	}
	var missed []string
	for _, p := range pts {
		if landed[p.String()] == 0 {
			missed = append(missed, p.String())
		}
	}
	t.Logf("%d kills; landed per point: %v; kill chains took %v", kills, landed, time.Since(start).Round(time.Millisecond))

	for _, name := range rollbackAt(order) {
		i := slices.IndexFunc(pts, func(p cuPoint) bool { return p.String() == name })
		if i < 0 {
			t.Fatalf("no kill point %s in %v", name, pts)
		}
		p := pts[i]
		ok := false
		for attempt := 0; attempt < 2 && !ok; attempt++ {
			s := newRound()
			e := s.env()
			r := e.signalRun(p.svc, syscall.SIGKILL, func(ss *migrate.ServiceState, changed bool, _ time.Duration) bool {
				return changed && p.holds(ss)
			}, "migrate", append([]string{"--yes"}, s.args()...)...)
			ok = r.Killed && p.landed(r.State.Service(p.svc))
			t.Logf("rollback after a kill at %s (attempt %d): killed %v, landed %v", p, attempt, r.Killed, ok)
			if _, errOut, code := e.Unroot(t, e.args("rollback", "--all")...); code != 0 {
				t.Errorf("rollback after a kill at %s: exit %d\n%s", p, code, errOut)
			}
			s.rolledBack("rollback after a kill at " + p.String())
			if t.Failed() {
				t.FailNow()
			}
		}
		if !ok {
			t.Errorf("no kill landed at %s before a rollback (2 tries)", p)
		}
	}
	if len(missed) > 0 {
		t.Errorf("no kill landed at %v", missed)
	}
	t.Logf("campaign took %v", time.Since(start).Round(time.Millisecond))
}

// ctrConfig is the part of a container's configuration a migration carries
// over, with its id, and each of replace, replaced by placeholders.
func ctrConfig(e *migEnv, target bool, name string, replace ...string) string {
	e.t.Helper()
	out := e.inspect(target, name, `{{.Id}}
image {{json .Config.Image}}
cmd {{json .Config.Cmd}} {{json .Config.Entrypoint}}
env {{json .Config.Env}}
user {{json .Config.User}} {{json .Config.WorkingDir}}
labels {{json .Config.Labels}}
restart {{json .HostConfig.RestartPolicy}} init {{json .HostConfig.Init}}
ports {{json .HostConfig.PortBindings}}
mounts {{range .Mounts}}{{.Type}}|{{.Source}}|{{.Destination}}|{{.RW}};{{end}}
networks {{range $k, $v := .NetworkSettings.Networks}}{{$k}}={{json $v.Aliases}};{{end}}
running {{.State.Running}} restarts {{.RestartCount}}`)
	id, rest, _ := strings.Cut(out, "\n")
	// the daemon lists mounts in no particular order
	lines := strings.Split(rest, "\n")
	for i, l := range lines {
		if m, ok := strings.CutPrefix(l, "mounts "); ok {
			ms := strings.Split(m, ";")
			slices.Sort(ms)
			lines[i] = "mounts " + strings.Join(ms, ";")
		}
	}
	rest = strings.Join(lines, "\n")
	rest = strings.ReplaceAll(rest, id, "<id>")
	rest = strings.ReplaceAll(rest, id[:12], "<id>")
	for i, r := range replace {
		rest = strings.ReplaceAll(rest, r, fmt.Sprintf("<%d>", i))
	}
	return rest
}

// flatten adds a crashAfter to an end state under prefix.
func flatten(end map[string]string, prefix string, a crashAfter) {
	end[prefix+" view"] = a.view
	for k, v := range a.host {
		end[prefix+" host "+k] = v
	}
}

// ncGet fetches path from host:80 inside container with busybox nc.
func ncGet(e *migEnv, target bool, container, host, path string) string {
	e.t.Helper()
	out, err := e.DockerErr(target, "exec", container, "sh", "-c",
		`printf 'GET `+path+` HTTP/1.0\r\n\r\n' | nc -w 5 `+host+` 80`)
	if err != nil {
		e.t.Errorf("%s: GET %s:80%s: %v", container, host, path, err)
	}
	return out
}

// ---- a unit of two services sharing a volume and a network ----

const (
	cuUnitA   = "e2e-cu-unit-a"
	cuUnitB   = "e2e-cu-unit-b"
	cuUnitVol = "e2e-cu-unit-vol"
	cuUnitNet = "e2e-cu-unit-net"
)

// cuUnit is a web front a (127.0.0.1:121) and a backend b that a reaches as
// "backend" on a user-defined network; both mount the named volume (which
// makes them one cutover unit) and a bind each, all holding crashTree.
type cuUnit struct {
	e      *migEnv
	a, b   *crashSvc
	before map[string]crashBefore
	page   string
}

func newCuUnit(t *testing.T) cuRound {
	t.Helper()
	e := newMigEnv(t, []string{cuUnitA, cuUnitB}, []string{cuUnitVol}, []string{cuUnitNet})
	e.Docker(t, false, "network", "create", cuUnitNet)
	e.Docker(t, false, "volume", "create", cuUnitVol)
	srcVol := e.inspectVolume(false, cuUnitVol)
	crashTree(t, srcVol, 0)
	u := &cuUnit{e: e, before: map[string]crashBefore{}}
	for _, name := range []string{cuUnitB, cuUnitA} {
		s := &crashSvc{migEnv: e, ctr: name, vol: cuUnitVol, bind: filepath.Join("/srv", name), srcVol: srcVol}
		_ = os.RemoveAll(s.bind)
		t.Cleanup(func() { os.RemoveAll(s.bind) })
		if err := os.MkdirAll(s.bind, 0o755); err != nil {
			t.Fatal(err)
		}
		crashTree(t, s.bind, 0)
		args := []string{"run", "-d", "--name", name, "--init", "--restart", "always", "--network", cuUnitNet,
			"-v", s.bind + ":/bind", "-v", cuUnitVol + ":/data"}
		if name == cuUnitB {
			args = append(args, "--network-alias", "backend")
			u.b = s
		} else {
			args = append(args, "-p", "127.0.0.1:121:80")
			u.a = s
		}
		e.Docker(t, false, append(args, e.Image, "httpd", "-f", "-p", "80", "-h", "/bind")...)
	}
	for _, s := range []*crashSvc{u.a, u.b} {
		u.before[s.ctr] = s.before()
	}
	u.page = httpGet(t, 121, "/www/index.html")
	if got := ncGet(e, false, cuUnitA, "backend", "/www/index.html"); !strings.Contains(got, "crash www/index.html") {
		t.Fatalf("a does not reach backend in the source: %q", got)
	}
	return u
}

func (u *cuUnit) env() *migEnv   { return u.e }
func (u *cuUnit) args() []string { return []string{"--settle", "1s", cuUnitA, cuUnitB} }

// migrated: both services as crashSvc.checkMigrated checks them, their
// configuration, the page on 8121, and a still reaching backend.
func (u *cuUnit) migrated(what string, ref map[string]string) map[string]string {
	t := u.e.t
	t.Helper()
	end := map[string]string{}
	for _, s := range []*crashSvc{u.a, u.b} {
		flatten(end, s.ctr, s.checkMigrated(u.before[s.ctr]))
		end[s.ctr+" config"] = ctrConfig(u.e, true, s.ctr)
	}
	if got := httpGet(t, 8121, "/www/index.html"); got != u.page {
		t.Errorf("%s: 127.0.0.1:8121 serves %q, the source served %q", what, got, u.page)
	}
	if got := ncGet(u.e, true, cuUnitA, "backend", "/www/index.html"); !strings.Contains(got, "crash www/index.html") {
		t.Errorf("%s: a does not reach backend in the target: %q", what, got)
	}
	if ref != nil {
		sameEnd(t, what, ref, end)
	}
	return end
}

func (u *cuUnit) rolledBack(what string) {
	u.e.t.Helper()
	for _, s := range []*crashSvc{u.a, u.b} {
		s.checkRolledBack(what+": "+s.ctr, u.before[s.ctr])
	}
	if got := httpGet(u.e.t, 121, "/www/index.html"); got != u.page {
		u.e.t.Errorf("%s: 127.0.0.1:121 serves %q, served %q", what, got, u.page)
	}
	if got := ncGet(u.e, false, cuUnitA, "backend", "/www/index.html"); !strings.Contains(got, "crash www/index.html") {
		u.e.t.Errorf("%s: a does not reach backend in the source: %q", what, got)
	}
}

// TestCrashUnitEveryPhase kills 'unroot migrate A B' of a two-service unit
// (a shared volume and a user-defined network with an alias) at each phase
// boundary of each service (both pass most boundaries in one state save;
// creating and done are each service's own), each re-run resuming from
// the killed one's state; the end state equals a clean run's. Runs killed
// while only the first service was created, and while only the first was
// done, are rolled back: both sources are back exactly.
func TestCrashUnitEveryPhase(t *testing.T) {
	Load(t)
	cuCampaign(t, func() cuRound { return newCuUnit(t) }, phasePoints, func(order []string) []string {
		return []string{order[1] + "@" + string(migrate.PhaseCreating), order[0] + "@" + string(migrate.PhaseDone)}
	})
}

// ---- a compose project ----

const cuProj = "e2e-cu-proj"

// cuCompose is a Compose 1.29 project: db serves its named volume on the
// project network; web serves another on 127.0.0.1:122 and depends on db.
type cuCompose struct {
	p       *cmpProject
	e       *migEnv
	db, web string
	orig    []byte
	srcVols map[string]string            // volume → host path in the source
	volSnap map[string]map[string]string // crashSnapshot of each source volume, ctime included
	views   map[string]string            // what each service saw of its volume
	page    string
	ports   string
}

// cuComposeMounts is where each service of the project mounts its volume.
var cuComposeMounts = map[string]string{cuProj + "_db_1": "/data", cuProj + "_web_1": "/www"}

const cuComposeYml = `# e2e-cu: a compose project killed mid-migration
version: "3.7"
services:
  db:
    image: IMAGE
    init: true
    restart: always
    command: ["httpd", "-f", "-p", "80", "-h", "/data"]
    volumes:
      - data:/data
  web:
    image: IMAGE
    init: true
    restart: always
    command: ["httpd", "-f", "-p", "80", "-h", "/www"]
    volumes:
      - static:/www
    depends_on: ["db"]
    ports:
      - "127.0.0.1:122:80" # the public port
volumes:
  data: {}
  static: {}
`

func newCuCompose(t *testing.T) cuRound {
	t.Helper()
	db, web := cuProj+"_db_1", cuProj+"_web_1"
	data, static := cuProj+"_data", cuProj+"_static"
	bin, err := exec.LookPath("docker-compose")
	if err != nil {
		unavailable(t, "docker-compose is not installed (scripts/testenv.sh up installs it)")
	}
	// newMigEnv removes the project's objects from both daemons (no
	// 'docker-compose down' per round: a few seconds each)
	c := &cuCompose{db: db, web: web, srcVols: map[string]string{}, volSnap: map[string]map[string]string{}, views: map[string]string{}}
	c.e = newMigEnv(t, []string{db, web}, []string{data, static}, []string{cuProj + "_default"})
	c.p = &cmpProject{e: c.e, bin: bin, name: cuProj, dir: t.TempDir(), timeout: 3 * time.Minute}
	if err := os.WriteFile(filepath.Join(c.p.dir, "docker-compose.yml"), []byte(strings.ReplaceAll(cuComposeYml, "IMAGE", c.e.Image)), 0o644); err != nil {
		t.Fatal(err)
	}
	c.p.mustRun(t, c.e.SourceHost, "up", "-d")
	// the volumes' data, written once: the services only read it
	c.e.Docker(t, false, "run", "--rm", "-v", data+":/data", "-v", static+":/www", c.e.Image, "sh", "-c",
		"echo db-state > /data/state && mkdir /data/d && echo db-row > /data/d/row && chown -R 999:999 /data/d && chown 33:33 /data/state && chmod 640 /data/state && "+
			"echo compose-web > /www/index.html && chown 33:33 /www/index.html")
	for _, v := range []string{data, static} {
		c.srcVols[v] = c.e.inspectVolume(false, v)
		c.volSnap[v] = crashSnapshot(t, c.srcVols[v], false)
	}
	for _, n := range []string{db, web} {
		c.views[n] = c.view(false, n)
	}
	if c.orig, err = os.ReadFile(filepath.Join(c.p.dir, "docker-compose.yml")); err != nil {
		t.Fatal(err)
	}
	c.page = httpGet(t, 122, "/index.html")
	c.ports = c.e.inspect(false, web, "{{json .HostConfig.PortBindings}}")
	if got := ncGet(c.e, false, web, "db", "/state"); !strings.Contains(got, "db-state") {
		t.Fatalf("web does not reach db in the source: %q", got)
	}
	return c
}

func (c *cuCompose) env() *migEnv   { return c.e }
func (c *cuCompose) args() []string { return []string{"--settle", "1s", "--project", cuProj} }

// note says whether the rootless compose file is there yet.
func (c *cuCompose) note() string {
	if _, err := os.Stat(filepath.Join(c.p.dir, "compose.rootless.yaml")); err != nil {
		return "no compose.rootless.yaml yet"
	}
	return "compose.rootless.yaml written"
}

// view is what a service sees of its volume.
func (c *cuCompose) view(target bool, name string) string {
	m := cuComposeMounts[name]
	out := c.e.exec(target, name, "sh", "-c", "find "+m+" -exec stat -c '%N %u:%g %a %h %F %s' {} + && find "+m+" -type f -exec sha256sum {} +")
	lines := strings.Split(out, "\n")
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// migrated: both services run in the target with their compose labels
// and the configuration of a clean run, each sees its volume as before, web
// reaches db and serves on 8122, compose.rootless.yaml is the only file
// written beside the untouched original, compose validates it and lists the
// project, the record names it once, and the source volumes are unchanged.
func (c *cuCompose) migrated(what string, ref map[string]string) map[string]string {
	t, e := c.e.t, c.e
	t.Helper()
	end := map[string]string{}
	for svc, name := range map[string]string{"db": c.db, "web": c.web} {
		end[name+" config"] = ctrConfig(e, true, name, c.p.dir)
		if got := e.inspect(true, name, `{{index .Config.Labels "com.docker.compose.project"}}/{{index .Config.Labels "com.docker.compose.service"}} {{.State.Running}}`); got != cuProj+"/"+svc+" true" {
			t.Errorf("%s: %s in the target: %q, want compose labels %s/%s and running", what, name, got, cuProj, svc)
		}
		if got := e.inspect(false, name, "{{.HostConfig.RestartPolicy.Name}} {{.State.Running}}"); got != "no false" {
			t.Errorf("%s: source %s: %q, want \"no false\"", what, name, got)
		}
		if n := e.Docker(t, true, "ps", "-a", "--filter", "name=^"+name+"$", "--format", "{{.ID}}"); n == "" || strings.Contains(n, "\n") {
			t.Errorf("%s: target containers named %s: %q, want exactly one", what, name, n)
		}
		if ph := e.status().Services[name].Phase; ph != string(migrate.PhaseDone) {
			t.Errorf("%s: %s phase %q, want done", what, name, ph)
		}
	}
	for n, was := range c.views {
		end[n+" view"] = c.view(true, n)
		if end[n+" view"] != was {
			t.Errorf("%s: %s in the target sees\n%s\nthe source saw\n%s", what, n, end[n+" view"], was)
		}
	}
	for v, dir := range c.srcVols {
		sameSnapshot(t, what+": source volume "+v, c.volSnap[v], crashSnapshot(t, dir, false))
	}
	if got := httpGet(t, 8122, "/index.html"); got != c.page {
		t.Errorf("%s: 127.0.0.1:8122 serves %q, the source served %q", what, got, c.page)
	}
	if got := ncGet(e, true, c.web, "db", "/state"); !strings.Contains(got, "db-state") {
		t.Errorf("%s: web does not reach db in the target: %q", what, got)
	}
	// the files beside the original: it, untouched, and the rootless one
	if now, _ := os.ReadFile(filepath.Join(c.p.dir, "docker-compose.yml")); string(now) != string(c.orig) {
		t.Errorf("%s: the original compose file changed:\n%s", what, now)
	}
	ents, err := os.ReadDir(c.p.dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range ents {
		names = append(names, d.Name())
	}
	if !slices.Equal(names, []string{"compose.rootless.yaml", "docker-compose.yml"}) {
		t.Errorf("%s: the project directory holds %v, want the original and compose.rootless.yaml", what, names)
	}
	b, err := os.ReadFile(filepath.Join(c.p.dir, "compose.rootless.yaml"))
	if err != nil {
		t.Errorf("%s: no rootless compose file: %v", what, err)
	}
	end["rootless file"] = strings.ReplaceAll(string(b), c.p.dir, "<dir>")
	if !strings.Contains(string(b), "127.0.0.1:8122:80") {
		t.Errorf("%s: the rootless file does not publish 8122:\n%s", what, b)
	}
	c.p.mustRun(t, e.TargetHost, "-f", "compose.rootless.yaml", "config", "-q")
	if ps := c.p.mustRun(t, e.TargetHost, "-f", "compose.rootless.yaml", "ps", "-q"); len(strings.Fields(ps)) != 2 {
		t.Errorf("%s: docker-compose ps against the rootless daemon lists %q, want 2 containers", what, ps)
	}
	recs, err := migrate.LoadComposeRecords(filepath.Join(e.stateDir, e.User))
	if err != nil || len(recs) != 1 || recs[0].Project != cuProj || len(recs[0].Files) != 1 {
		t.Errorf("%s: compose records %+v (%v), want one for %s", what, recs, err, cuProj)
	}
	if ref != nil {
		sameEnd(t, what, ref, end)
	}
	return end
}

// rolledBack: both sources run with their restart policy, web's ports and
// page, the volumes untouched, no target containers, the original file
// untouched, and the state says rolled-back.
func (c *cuCompose) rolledBack(what string) {
	t, e := c.e.t, c.e
	t.Helper()
	st := e.status()
	for _, name := range []string{c.db, c.web} {
		if got := e.inspect(false, name, "{{.HostConfig.RestartPolicy.Name}} {{.State.Running}}"); got != "always true" {
			t.Errorf("%s: source %s %q, want \"always true\"", what, name, got)
		}
		if _, err := e.DockerErr(true, "inspect", name); err == nil {
			t.Errorf("%s: the target container %s is still there", what, name)
		}
		if ss, ok := st.Services[name]; ok && ss.Phase != string(migrate.PhaseRolledBack) {
			t.Errorf("%s: %s phase %q, want rolled-back", what, name, ss.Phase)
		}
	}
	if got := e.inspect(false, c.web, "{{json .HostConfig.PortBindings}}"); got != c.ports {
		t.Errorf("%s: web's ports %s, were %s", what, got, c.ports)
	}
	for v, dir := range c.srcVols {
		sameSnapshot(t, what+": source volume "+v, c.volSnap[v], crashSnapshot(t, dir, false))
	}
	for n, was := range c.views {
		if got := c.view(false, n); got != was {
			t.Errorf("%s: %s in the source sees\n%s\nit saw\n%s", what, n, got, was)
		}
	}
	if got := httpGet(t, 122, "/index.html"); got != c.page {
		t.Errorf("%s: 127.0.0.1:122 serves %q, served %q", what, got, c.page)
	}
	if got := ncGet(e, false, c.web, "db", "/state"); !strings.Contains(got, "db-state") {
		t.Errorf("%s: web does not reach db in the source: %q", what, got)
	}
	if now, _ := os.ReadFile(filepath.Join(c.p.dir, "docker-compose.yml")); string(now) != string(c.orig) {
		t.Errorf("%s: the original compose file changed", what)
	}
}

// TestCrashComposeEveryPhase kills 'unroot migrate --project' of a Compose
// 1.29 project (db, then web that depends on it; two cutover units) at each
// phase boundary of each service, each re-run resuming from the killed
// one's state; the end state equals a clean run's, including the
// compose.rootless.yaml written once beside the untouched original and
// valid for docker-compose. Runs killed with db done and web not started,
// and with web synced, are rolled back.
func TestCrashComposeEveryPhase(t *testing.T) {
	Load(t)
	db, web := cuProj+"_db_1", cuProj+"_web_1"
	cuCampaign(t, func() cuRound { return newCuCompose(t) }, func(order []string) []cuPoint {
		if !slices.Equal(order, []string{db, web}) {
			t.Fatalf("cutover order %v, want db before web", order)
		}
		var ps []cuPoint
		for _, s := range order {
			for _, ph := range crashPhases {
				ps = append(ps, cuPoint{svc: s, phase: ph})
			}
		}
		return ps
	}, func([]string) []string {
		return []string{db + "@" + string(migrate.PhaseDone), web + "@" + string(migrate.PhaseSynced)}
	})
}

// ---- a committed writable layer ----

const cuWL = "e2e-cu-wl"

// cuCommit is a crashSvc (bind only, 127.0.0.1:123) that wrote
// /opt/wl/file in its writable layer, so migrate commits it.
type cuCommit struct {
	*crashSvc
	b     crashBefore
	page  string
	wl    string // owner, mode and content of /opt/wl/file in the source
	token string
}

// commitComment is what migrate writes into a committed image of name.
func commitComment(name string) string { return "unroot: writable layer of " + name }

// commitImages lists the ids of the images of a daemon committed by unroot
// from name, tagged or not.
func commitImages(e *migEnv, target bool, name string) []string {
	e.t.Helper()
	all := strings.Fields(e.Docker(e.t, target, "images", "-a", "-q", "--no-trunc"))
	if len(all) == 0 {
		return nil
	}
	slices.Sort(all)
	all = slices.Compact(all)
	// an image removed meanwhile (by another test) is an error, the others print
	out, _ := e.DockerErr(target, append([]string{"image", "inspect", "-f", "{{.Id}} {{.Comment}}"}, all...)...)
	var ids []string
	for _, l := range strings.Split(out, "\n") {
		if id, c, _ := strings.Cut(l, " "); c == commitComment(name) {
			ids = append(ids, id)
		}
	}
	return ids
}

func dropCommitImages(e *migEnv) {
	for _, target := range []bool{true, false} {
		for _, id := range commitImages(e, target, cuWL) {
			_, _ = e.DockerErr(target, "rmi", "-f", id)
		}
	}
}

func newCuCommit(t *testing.T) cuRound {
	t.Helper()
	s := newCrashSvc(t, cuWL, true, 0, "127.0.0.1:123:80")
	dropCommitImages(s.migEnv)
	t.Cleanup(func() { dropCommitImages(s.migEnv) })
	// the same content every round: the end states are compared
	c := &cuCommit{crashSvc: s, token: "written in the writable layer of " + cuWL}
	s.exec(false, cuWL, "sh", "-c", "mkdir -p /opt/wl && echo '"+c.token+"' > /opt/wl/file && chown 33:999 /opt/wl/file && chmod 640 /opt/wl/file")
	c.wl = c.wlFile(false)
	c.b = s.before()
	c.page = httpGet(t, 123, "/www/index.html")
	return c
}

func (c *cuCommit) env() *migEnv   { return c.migEnv }
func (c *cuCommit) args() []string { return []string{"--settle", "1s", cuWL} }

func (c *cuCommit) wlFile(target bool) string {
	return c.exec(target, cuWL, "sh", "-c", "stat -c '%u:%g %a' /opt/wl/file && cat /opt/wl/file")
}

// sourceFile is /opt/wl/file of the (possibly stopped) source container.
func (c *cuCommit) sourceFile() string {
	c.t.Helper()
	p := filepath.Join(c.t.TempDir(), "file")
	c.Docker(c.t, false, "cp", cuWL+":/opt/wl/file", p)
	b, err := os.ReadFile(p)
	if err != nil {
		c.t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// migrated: checkMigrated's checks of the bind, the configuration (created
// from the committed image), the file of the writable layer with its owner,
// mode and content, the page on 8123, the source's writable layer intact,
// and exactly one committed image in each daemon.
func (c *cuCommit) migrated(what string, ref map[string]string) map[string]string {
	t := c.t
	t.Helper()
	end := map[string]string{}
	flatten(end, cuWL, c.checkMigrated(c.b))
	end["config"] = ctrConfig(c.migEnv, true, cuWL)
	if img := c.inspect(true, cuWL, "{{.Config.Image}}"); img != migrate.CommitRepo+":"+cuWL {
		t.Errorf("%s: the target runs %s, want the committed image", what, img)
	}
	end["writable file"] = c.wlFile(true)
	if end["writable file"] != c.wl {
		t.Errorf("%s: /opt/wl/file in the target is %q, in the source it was %q", what, end["writable file"], c.wl)
	}
	if got := c.sourceFile(); got != c.token {
		t.Errorf("%s: the source's /opt/wl/file holds %q, want %q", what, got, c.token)
	}
	if got := httpGet(t, 8123, "/www/index.html"); got != c.page {
		t.Errorf("%s: 127.0.0.1:8123 serves %q, the source served %q", what, got, c.page)
	}
	for _, target := range []bool{false, true} {
		if ids := commitImages(c.migEnv, target, cuWL); len(ids) != 1 {
			t.Errorf("%s: %d images committed from %s in the %s daemon, want 1: %v", what, len(ids), cuWL, map[bool]string{true: "target", false: "source"}[target], ids)
		}
	}
	if ref != nil {
		sameEnd(t, what, ref, end)
	}
	return end
}

// rolledBack: checkRolledBack, the page on 123, and the source still holds
// its writable layer, and no committed image is left in either daemon.
func (c *cuCommit) rolledBack(what string) {
	c.t.Helper()
	c.checkRolledBack(what, c.b)
	if got := httpGet(c.t, 123, "/www/index.html"); got != c.page {
		c.t.Errorf("%s: 127.0.0.1:123 serves %q, served %q", what, got, c.page)
	}
	if got := c.wlFile(false); got != c.wl {
		c.t.Errorf("%s: the source's /opt/wl/file is %q, was %q", what, got, c.wl)
	}
	// the rollback drops the committed image from both daemons: a later
	// migration commits afresh, and the old one would linger untagged
	for _, target := range []bool{false, true} {
		if ids := commitImages(c.migEnv, target, cuWL); len(ids) != 0 {
			c.t.Errorf("%s: %d images committed from %s left in the %s daemon after the rollback: %v", what, len(ids), cuWL, map[bool]string{true: "target", false: "source"}[target], ids)
		}
	}
}

// TestCrashCommitEveryPhase kills 'unroot migrate' of a container with
// writable-layer changes at each phase boundary and around the commit:
// after the commit ran but before the state recorded it (the committed
// image exists in the source; its transfer runs), and once it is recorded.
// Each re-run resumes from the killed one's state; the end state equals a
// clean run's, the file written in the writable layer is in the target with
// its owner, mode and content, and each daemon holds exactly one image
// committed from the container. Runs killed inside the commit and after the
// sync are rolled back.
func TestCrashCommitEveryPhase(t *testing.T) {
	Load(t)
	var e *migEnv // the round's, for the point that looks at the source daemon
	newRound := func() cuRound {
		c := newCuCommit(t)
		e = c.env()
		return c
	}
	ref := migrate.CommitRepo + ":" + cuWL
	stopped := func(ss *migrate.ServiceState) bool {
		return ss.Phase == migrate.PhaseSourceStopped
	}
	cuCampaign(t, newRound, func([]string) []cuPoint {
		var ps []cuPoint
		for _, ph := range crashPhases {
			ps = append(ps, cuPoint{svc: cuWL, phase: ph})
			if ph != migrate.PhaseSourceStopped {
				continue
			}
			ps = append(ps, cuPoint{
				svc: cuWL, phase: ph, name: "committed-unrecorded",
				cond: func(ss *migrate.ServiceState) bool {
					if !stopped(ss) || ss.CommittedImage != "" {
						return false
					}
					_, err := e.DockerErr(false, "image", "inspect", "-f", "{{.Id}}", ref)
					return err == nil
				},
				passed: func(ss *migrate.ServiceState) bool {
					return ss.CommittedImage != "" || ss.Phase.AtLeast(migrate.PhaseSynced)
				},
			}, cuPoint{
				svc: cuWL, phase: ph, name: "committed",
				cond: func(ss *migrate.ServiceState) bool {
					return ss.Phase.AtLeast(migrate.PhaseSourceStopped) && ss.CommittedImage != ""
				},
			})
		}
		return ps
	}, func([]string) []string {
		return []string{cuWL + "@committed-unrecorded", cuWL + "@" + string(migrate.PhaseSynced)}
	})
}
