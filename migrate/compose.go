package migrate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/unroot/unroot/inventory"
)

// RootlessComposeFile is the name of the rewritten compose file apply
// writes next to the project's first compose file.
const RootlessComposeFile = "compose.rootless.yaml"

// composeHeaderMark starts the header of every file unroot writes; a file
// that exists without it is the admin's and is never overwritten.
const composeHeaderMark = "written by unroot"

// ComposePlan is one compose project the plan touches: its services in
// cutover order, the one-off containers it leaves, and the rootless compose
// files apply writes.
type ComposePlan struct {
	Project string `json:"project"`
	// ComposeVersion is the com.docker.compose.version label: the compose
	// that created the containers (1.x is docker-compose, 2.x 'docker compose').
	ComposeVersion string   `json:"compose_version,omitempty"`
	WorkingDir     string   `json:"working_dir,omitempty"`
	ConfigFiles    []string `json:"config_files"`
	// DependsOnFrom says where the dependency order came from: "label"
	// (com.docker.compose.depends_on), "files" (the compose files, when the
	// label is absent as with Compose v1) or "none".
	DependsOnFrom string           `json:"depends_on_from"`
	Services      []ComposeService `json:"services"`
	// OneOff lists the project's one-off containers ('compose run'): they
	// are not migrated.
	OneOff []string `json:"one_off,omitempty"`
	// Files are the rootless compose files apply writes; empty when the
	// originals cannot be read or not the whole project is migrated.
	Files []ComposeFile `json:"files,omitempty"`
	// Command runs the project from the rewritten files against the
	// rootless daemon.
	Command string `json:"command,omitempty"`
	// Recreate lists the services whose configuration the rewrite changed:
	// compose recreates their containers on its next 'up -d' (named
	// volumes keep their data). The others are kept as migrated.
	Recreate []string `json:"recreate_on_up,omitempty"`
	// ConfigHashes are, by service, the com.docker.compose.config-hash
	// labels the migrated containers get: the hash compose computes for
	// the rewritten files, so its next 'up -d' keeps them. Only set when
	// compose, asked the same way about the original files, reproduces the
	// hash the source containers carry.
	ConfigHashes map[string]string `json:"config_hashes,omitempty"`
}

// LabelConfigHash is the label compose compares with the hash of a
// service's configuration to decide whether 'up' recreates its container.
const LabelConfigHash = "com.docker.compose.config-hash"

// ComposeHashRequest asks compose for the config hash of each service of
// a project given the contents of its compose files.
type ComposeHashRequest struct {
	Project    string
	WorkingDir string
	// Version is the compose version that created the project (its label).
	Version string
	// Files are the compose files' contents, in order; Names are the
	// original paths, for their base names.
	Files [][]byte
	Names []string
}

// ComposeService is one service of a project, in cutover order.
type ComposeService struct {
	Name string `json:"name"`
	// Containers are its replicas, all migrated together.
	Containers []string `json:"containers"`
	DependsOn  []string `json:"depends_on,omitempty"`
}

// ComposeFile is one rootless compose file: the original it is made from,
// where it is written and what differs.
type ComposeFile struct {
	Original string          `json:"original"`
	Rootless string          `json:"rootless"`
	Changes  []ComposeChange `json:"changes"`
	// Manual lists what the rewrite could not do and the admin must check.
	Manual []string `json:"manual,omitempty"`

	content []byte
}

// composeProject is a project's compose files as compose-go loaded them.
type composeProject struct {
	info  inventory.Project
	model *types.Project
	err   error
}

// loadCompose loads the compose files of every project a selected container
// belongs to. A project whose files cannot be read keeps the error; the
// plan reports it and falls back to the labels.
func (b *builder) loadCompose(ctx context.Context) {
	b.composeProjects = map[string]*composeProject{}
	for _, c := range b.inv.Containers {
		if c.Compose == nil || b.composeProjects[c.Compose.Project] != nil {
			continue
		}
		info, err := b.full.Project(c.Compose.Project)
		if err != nil {
			continue
		}
		cp := &composeProject{info: *info}
		// Compose v1 writes the files as they were found, which can be
		// relative to the project directory.
		cp.info.ConfigFiles = nil
		for _, f := range info.ConfigFiles {
			if !filepath.IsAbs(f) && info.WorkingDir != "" {
				f = filepath.Join(info.WorkingDir, f)
			}
			cp.info.ConfigFiles = append(cp.info.ConfigFiles, f)
		}
		cp.model, cp.err = loadComposeProject(ctx, cp.info.Name, cp.info.WorkingDir, cp.info.ConfigFiles, nil)
		b.composeProjects[c.Compose.Project] = cp
	}
}

// loadComposeProject loads files (contents, when given, replace what is on
// disk) the way compose would, with the project's .env and every profile.
func loadComposeProject(ctx context.Context, name, workingDir string, files []string, contents [][]byte) (*types.Project, error) {
	if len(files) == 0 {
		return nil, errors.New("the containers do not name their compose files")
	}
	if workingDir == "" {
		workingDir = filepath.Dir(files[0])
	}
	env := types.Mapping{}
	if dot := filepath.Join(workingDir, ".env"); fileExists(dot) {
		m, err := dotenv.GetEnvFromFile(map[string]string{}, []string{dot})
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", dot, err)
		}
		env = types.Mapping(m)
	}
	details := types.ConfigDetails{WorkingDir: workingDir, Environment: env}
	for i, f := range files {
		cf := types.ConfigFile{Filename: f}
		if i < len(contents) {
			cf.Content = contents[i]
		} else {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			cf.Content = b
		}
		details.ConfigFiles = append(details.ConfigFiles, cf)
	}
	p, err := loader.LoadWithContext(ctx, details, func(o *loader.Options) {
		o.SetProjectName(name, true)
		o.Profiles = []string{"*"}
	})
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", strings.Join(files, ", "), err)
	}
	return p, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// composeDependsOn returns the depends_on of a service from its project's
// compose files, for containers whose labels do not carry it.
func (b *builder) composeDependsOn(ci *inventory.ComposeInfo) []inventory.Dependency {
	cp := b.composeProjects[ci.Project]
	if cp == nil || cp.model == nil {
		return nil
	}
	svc, err := cp.model.GetService(ci.Service)
	if err != nil {
		return nil
	}
	var deps []inventory.Dependency
	for name, d := range svc.DependsOn {
		deps = append(deps, inventory.Dependency{Service: name, Condition: d.Condition, Restart: d.Restart})
	}
	slices.SortFunc(deps, func(a, c inventory.Dependency) int { return strings.Compare(a.Service, c.Service) })
	return deps
}

// compose builds the plan's compose projects: services in cutover order,
// one-off containers, replica checks and the rewritten files.
func (b *builder) compose(ctx context.Context) {
	var names []string
	for name := range b.composeProjects {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		cp := b.composeProjects[name]
		b.p.Compose = append(b.p.Compose, b.composePlan(ctx, cp))
	}
}

func (b *builder) composePlan(ctx context.Context, cp *composeProject) ComposePlan {
	info := cp.info
	pl := ComposePlan{Project: info.Name, WorkingDir: info.WorkingDir, ConfigFiles: info.ConfigFiles, DependsOnFrom: "none", OneOff: info.OneOff}
	for _, c := range b.full.Containers {
		if c.Compose != nil && c.Compose.Project == info.Name && pl.ComposeVersion == "" {
			pl.ComposeVersion = c.Compose.Version
		}
	}
	for _, svc := range info.Services {
		if len(svc.DependsOn) > 0 {
			pl.DependsOnFrom = "label"
		}
	}
	if pl.DependsOnFrom == "none" && cp.model != nil {
		for _, s := range cp.model.Services {
			if len(s.DependsOn) > 0 {
				pl.DependsOnFrom = "files"
			}
		}
	}
	// Services in the order of their first container's cutover.
	seen := map[string]bool{}
	for _, s := range b.p.Services {
		if s.Project != info.Name || seen[s.Service] {
			continue
		}
		if c, err := b.inv.Container(s.Container); err == nil && c.Compose != nil && c.Compose.OneOff {
			continue // named on the command line: it moves alone
		}
		seen[s.Service] = true
		cs := ComposeService{Name: s.Service}
		if is := info.Service(s.Service); is != nil {
			cs.Containers = is.Containers
		}
		for _, d := range s.DependsOn {
			if o := b.byName[d]; o != nil && o.Project == info.Name && o.Service != s.Service && !slices.Contains(cs.DependsOn, o.Service) {
				cs.DependsOn = append(cs.DependsOn, o.Service)
			}
		}
		pl.Services = append(pl.Services, cs)
		for _, r := range cs.Containers {
			if !b.selected(r) {
				b.p.addf(CodeComposeReplica, Blocker, s.Container, r, "name every replica, or use --project "+info.Name,
					"%s is a replica of service %s/%s, like %s, which is not selected: the replicas of a service move together", r, info.Name, s.Service, s.Container)
			}
		}
	}
	for _, o := range info.OneOff {
		b.p.addf(CodeComposeOneOff, Info, o, info.Name, "", "one-off container of project %s ('compose run'): it is not migrated", info.Name)
	}
	var missing []string
	for _, svc := range info.Services {
		if !seen[svc.Name] {
			missing = append(missing, svc.Name)
		}
	}
	if cp.err != nil {
		b.p.addf(CodeComposeUnreadable, Warning, "", info.Name, "rewrite the ports and the docker socket by hand (docs/compose.md)",
			"the compose files of project %s cannot be loaded, so no rootless compose file is written: %v", info.Name, cp.err)
		return pl
	}
	if len(missing) > 0 {
		b.p.addf(CodeComposePartial, Info, "", info.Name, "migrate the rest with --project "+info.Name,
			"services %s of project %s are not selected: its rootless compose file is written when the whole project moves", strings.Join(missing, ", "), info.Name)
		return pl
	}
	b.composeFiles(ctx, cp, &pl)
	return pl
}

// composeFiles rewrites the project's compose files, checks the result
// loads, and fills the plan's files, command and recreate list.
func (b *builder) composeFiles(ctx context.Context, cp *composeProject, pl *ComposePlan) {
	info := cp.info
	ports := b.composePorts(info.Name)
	rw := ComposeRewrite{
		Port:   ports,
		Socket: b.opts.TargetSocket,
	}
	var (
		files    []ComposeFile
		contents [][]byte
		rootless []string
		manual   = map[string]bool{}
	)
	for i, orig := range info.ConfigFiles {
		rw.Header = composeHeader(orig, info.Name)
		res, err := RewriteComposeFile(orig, rw)
		if err != nil {
			b.p.addf(CodeComposeUnreadable, Warning, "", orig, "rewrite the ports and the docker socket by hand (docs/compose.md)",
				"compose file %s of project %s cannot be rewritten: %v", orig, info.Name, err)
			return
		}
		path := rootlessPath(orig, i, info.WorkingDir)
		if slices.Contains(info.ConfigFiles, path) {
			b.p.addf(CodeComposeFileExists, Blocker, "", path, "rename the project's compose file", "%s is one of the project's own compose files; unroot never overwrites it", path)
			return
		}
		if existing, err := os.ReadFile(path); err == nil && !bytes.Contains(firstLine(existing), []byte(composeHeaderMark)) {
			b.p.addf(CodeComposeFileExists, Blocker, "", path, "move it aside, then run again", "%s exists and was not written by unroot; unroot does not overwrite it", path)
			return
		}
		maps.Copy(manual, res.manualServices)
		files = append(files, ComposeFile{Original: orig, Rootless: path, Changes: res.Changes, Manual: res.Manual, content: res.Content})
		contents = append(contents, res.Content)
		rootless = append(rootless, path)
	}
	// The rewritten files must load as the originals do, paths resolved
	// against the same project directory.
	model, err := loadComposeProject(ctx, info.Name, info.WorkingDir, info.ConfigFiles, contents)
	if err != nil {
		b.p.addf(CodeComposeUnreadable, Warning, "", info.Name, "rewrite the ports and the docker socket by hand (docs/compose.md)",
			"the rewritten compose files of project %s do not load: %v", info.Name, err)
		return
	}
	b.checkRewrittenPorts(info.Name, model, files, manual)
	changed := map[string]bool{}
	for _, f := range files {
		for _, c := range f.Changes {
			changed[c.Service] = true
		}
		for _, m := range f.Manual {
			b.p.addf(CodeComposeManual, Warning, "", f.Original, "edit "+f.Rootless+" after the migration", "%s", m)
		}
	}
	pl.Files = files
	b.carryConfigHashes(ctx, cp, pl, contents, changed)
	pl.Command = composeCommand(b.p.User.UID, b.opts.TargetHost, pl.ComposeVersion, info.Name, info.WorkingDir, rootless)
	b.p.addf(CodeComposeFile, Info, "", info.Name, pl.Command,
		"project %s: a rootless compose file is written to %s", info.Name, strings.Join(rootless, ", "))
}

// composePorts looks a published port of a project's service up in the
// plan's port rewrites. A range written as a whole in the file may have
// been planned port by port; it is rewritten when the new ports are
// contiguous again.
func (b *builder) composePorts(project string) func(service, proto, hostIP, published string) (string, bool) {
	type key struct{ service, proto, ip, old string }
	m := map[key]string{}
	for _, s := range b.p.Services {
		if s.Project != project {
			continue
		}
		for _, pp := range s.Ports {
			m[key{s.Service, pp.Proto, anyIP(pp.HostIP), pp.OldHostPort}] = pp.NewHostPort
		}
	}
	return func(service, proto, hostIP, published string) (string, bool) {
		k := key{service, proto, anyIP(hostIP), published}
		if n, ok := m[k]; ok {
			return n, true
		}
		lo, hi, ok := portRange(inventory.Port{HostPort: published})
		if !ok || hi == lo {
			return "", false
		}
		first, apart := -1, false
		for p := lo; p <= hi; p++ {
			k.old = strconv.Itoa(p)
			n, ok := m[k]
			if !ok {
				return "", false
			}
			np, err := strconv.Atoi(n)
			if err != nil {
				return "", false
			}
			if p == lo {
				first = np
			} else if np != first+(p-lo) {
				apart = true
			}
		}
		if apart {
			return "", true // the plan moved the range's ports apart
		}
		return formatRange(first, first+hi-lo), true
	}
}

// anyIP folds the spellings of "every address" together.
func anyIP(ip string) string {
	switch ip {
	case "", "0.0.0.0", "::", "[::]":
		return ""
	}
	return ip
}

// rootlessPath is where the rootless twin of the i-th compose file goes:
// compose.rootless.yaml in the project directory for the first, and
// NAME.rootless.EXT beside each further one.
func rootlessPath(orig string, i int, workingDir string) string {
	if i == 0 {
		dir := workingDir
		if dir == "" || !isDir(dir) {
			dir = filepath.Dir(orig)
		}
		return filepath.Join(dir, RootlessComposeFile)
	}
	ext := filepath.Ext(orig)
	return strings.TrimSuffix(orig, ext) + ".rootless" + ext
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

func firstLine(b []byte) []byte {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return b[:i]
	}
	return b
}

// composeHeader says at the top of a rewritten file what it is.
func composeHeader(orig, project string) string {
	return composeHeaderMark + " from " + orig + " for the rootless daemon (project " + project + ").\n" +
		"Host ports below the unprivileged port start are rewritten as the migration plan says, and a bind of the\n" +
		"rootful docker socket points at the rootless one; everything else is as in the original, which is unchanged.\n" +
		"Use it with the rootless daemon only; see 'unroot status' for the command."
}

// composeCommand is the command line that runs the project from the
// rewritten files against the rootless daemon.
func composeCommand(uid int, targetHost, version, project, workingDir string, files []string) string {
	host := targetHost
	if host == "" {
		host = "unix:///run/user/" + strconv.Itoa(uid) + "/docker.sock"
	}
	bin := "docker compose"
	if strings.HasPrefix(version, "1.") {
		bin = "docker-compose"
	}
	var b strings.Builder
	b.WriteString("DOCKER_HOST=" + host + " " + bin)
	for _, f := range files {
		b.WriteString(" -f " + shellQuote(f))
	}
	if workingDir != "" && len(files) > 0 && filepath.Dir(files[0]) != filepath.Clean(workingDir) {
		b.WriteString(" --project-directory " + shellQuote(workingDir))
	}
	b.WriteString(" -p " + shellQuote(project) + " up -d")
	return b.String()
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+=:,@", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// carryConfigHashes sets, on the containers of every changed service, the
// config hash compose will compute for the rewritten files, so that 'up -d'
// with them keeps the migrated containers instead of recreating them. It
// only trusts compose's answer when the same question about the original
// files returns the hash the source containers already carry; otherwise the
// service is listed in Recreate.
func (b *builder) carryConfigHashes(ctx context.Context, cp *composeProject, pl *ComposePlan, rewritten [][]byte, changed map[string]bool) {
	var trusted, fresh map[string]string
	if b.opts.ComposeHash != nil && len(changed) > 0 {
		req := ComposeHashRequest{Project: cp.info.Name, WorkingDir: cp.info.WorkingDir, Version: pl.ComposeVersion, Names: cp.info.ConfigFiles}
		for _, f := range cp.info.ConfigFiles {
			c, err := os.ReadFile(f)
			if err != nil {
				req.Files = nil
				break
			}
			req.Files = append(req.Files, c)
		}
		if req.Files != nil {
			if h, err := b.opts.ComposeHash(ctx, req); err == nil {
				trusted = h
				req.Files = rewritten
				if h, err := b.opts.ComposeHash(ctx, req); err == nil {
					fresh = h
				}
			}
		}
	}
	for _, s := range pl.Services {
		if !changed[s.Name] {
			continue
		}
		if b.setConfigHash(cp.info.Name, s, trusted[s.Name], fresh[s.Name]) {
			if pl.ConfigHashes == nil {
				pl.ConfigHashes = map[string]string{}
			}
			pl.ConfigHashes[s.Name] = fresh[s.Name]
			continue
		}
		pl.Recreate = append(pl.Recreate, s.Name)
	}
}

// setConfigHash gives the service's containers the new hash when every one
// of them carries the old; false leaves all of them alone.
func (b *builder) setConfigHash(project string, s ComposeService, old, new string) bool {
	if old == "" || new == "" {
		return false
	}
	var cs []*inventory.Container
	for _, name := range s.Containers {
		sv := b.byName[name]
		if sv == nil {
			return false
		}
		if sv.AlreadyMigrated {
			// An earlier run carried it, or it did not.
			if b.tgt == nil {
				return false
			}
			if tc, err := b.tgt.Container(name); err != nil || tc.Labels[LabelConfigHash] != new {
				return false
			}
			continue
		}
		c, err := b.inv.Container(name)
		if err != nil || c.Labels[LabelConfigHash] != old {
			return false
		}
		cs = append(cs, c)
	}
	// The plan's inventory is what apply creates the target containers
	// from; the source containers keep their labels.
	for _, c := range cs {
		c.Labels = maps.Clone(c.Labels)
		c.Labels[LabelConfigHash] = new
	}
	return true
}

// checkRewrittenPorts compares the host ports of the rewritten project, as
// compose loads it, with the plan's: a port defined where the rewrite does
// not reach (a file pulled in by extends or include, an override file the
// containers do not name) still has its old number, and is listed for a
// manual edit. Services the rewrite already listed are not checked again.
func (b *builder) checkRewrittenPorts(project string, model *types.Project, files []ComposeFile, manual map[string]bool) {
	for _, s := range b.p.Services {
		if s.Project != project || manual[s.Service] {
			continue
		}
		svc, err := model.GetService(s.Service)
		if err != nil {
			continue
		}
		for _, pp := range s.Ports {
			if !pp.Rewritten {
				continue
			}
			var found, stale bool
			for _, sp := range svc.Ports {
				if sp.Target != uint32(pp.ContainerPort) || !strings.EqualFold(cmpOr(sp.Protocol, "tcp"), pp.Proto) || anyIP(sp.HostIP) != anyIP(pp.HostIP) {
					continue
				}
				switch sp.Published {
				case pp.NewHostPort:
					found = true
				case pp.OldHostPort:
					stale = true
				}
			}
			if stale && !found {
				msg := fmt.Sprintf("service %s: host port %s/%s is still %s in the rewritten files (it is defined where unroot does not rewrite, e.g. a file pulled in by extends or include); the migrated container publishes %s",
					s.Service, pp.OldHostPort, pp.Proto, pp.OldHostPort, pp.NewHostPort)
				if len(files) > 0 && !slices.Contains(files[0].Manual, msg) {
					files[0].Manual = append(files[0].Manual, msg)
				}
			}
		}
	}
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
