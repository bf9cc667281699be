package inventory

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Labels docker compose sets on the objects it creates.
const (
	LabelProject         = "com.docker.compose.project"
	LabelService         = "com.docker.compose.service"
	LabelContainerNumber = "com.docker.compose.container-number"
	LabelOneOff          = "com.docker.compose.oneoff"
	LabelConfigFiles     = "com.docker.compose.project.config_files"
	LabelWorkingDir      = "com.docker.compose.project.working_dir"
	LabelDependsOn       = "com.docker.compose.depends_on"
	LabelVersion         = "com.docker.compose.version"
	LabelNetwork         = "com.docker.compose.network"
	LabelVolume          = "com.docker.compose.volume"
)

// Dependency conditions of compose's depends_on.
const (
	ConditionStarted   = "service_started"
	ConditionHealthy   = "service_healthy"
	ConditionCompleted = "service_completed_successfully"
)

// ParseDependsOn parses the value of the com.docker.compose.depends_on label:
// comma-separated entries "service:condition:restart". Compose before 2.17
// wrote "service:condition" or only "service"; a missing condition means
// service_started and a missing restart means false. Fields after the third
// are ignored so that a newer compose does not break the reader. The result
// is sorted by service, since compose writes the entries in map order.
func ParseDependsOn(label string) ([]Dependency, error) {
	var deps []Dependency
	for entry := range strings.SplitSeq(label, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		parts := strings.Split(entry, ":")
		d := Dependency{Service: strings.TrimSpace(parts[0]), Condition: ConditionStarted}
		if d.Service == "" {
			return nil, fmt.Errorf("depends_on entry %q: no service name", entry)
		}
		if len(parts) > 1 {
			if c := strings.TrimSpace(parts[1]); c != "" {
				d.Condition = c
			}
		}
		if len(parts) > 2 {
			if r := strings.TrimSpace(parts[2]); r != "" {
				b, err := strconv.ParseBool(r)
				if err != nil {
					return nil, fmt.Errorf("depends_on entry %q: restart %q is not true or false", entry, r)
				}
				d.Restart = b
			}
		}
		deps = append(deps, d)
	}
	slices.SortStableFunc(deps, func(a, b Dependency) int { return cmp.Compare(a.Service, b.Service) })
	return deps, nil
}

// FormatDependsOn writes deps in the label format [ParseDependsOn] reads.
func FormatDependsOn(deps []Dependency) string {
	parts := make([]string, len(deps))
	for i, d := range deps {
		c := d.Condition
		if c == "" {
			c = ConditionStarted
		}
		parts[i] = fmt.Sprintf("%s:%s:%t", d.Service, c, d.Restart)
	}
	return strings.Join(parts, ",")
}

// composeInfo reads the compose labels; it returns nil when the container
// has no project label. When the depends_on label cannot be parsed it
// returns the rest with the error, for the caller to report as a warning.
func composeInfo(labels map[string]string) (*ComposeInfo, error) {
	project := labels[LabelProject]
	if project == "" {
		return nil, nil
	}
	ci := &ComposeInfo{
		Project:    project,
		Service:    labels[LabelService],
		WorkingDir: labels[LabelWorkingDir],
		Version:    labels[LabelVersion],
	}
	if n, err := strconv.Atoi(labels[LabelContainerNumber]); err == nil {
		ci.ContainerNumber = n
	}
	ci.OneOff = strings.EqualFold(labels[LabelOneOff], "true")
	for f := range strings.SplitSeq(labels[LabelConfigFiles], ",") {
		if f = strings.TrimSpace(f); f != "" {
			ci.ConfigFiles = append(ci.ConfigFiles, f)
		}
	}
	deps, err := ParseDependsOn(labels[LabelDependsOn])
	if err != nil {
		return ci, err
	}
	ci.DependsOn = deps
	return ci, nil
}

// groupProjects builds the compose projects of the containers, volumes and
// networks found.
func groupProjects(cs []Container, vols []Volume, nets []Network) []Project {
	byName := map[string]*Project{}
	get := func(name string) *Project {
		p, ok := byName[name]
		if !ok {
			p = &Project{Name: name, Services: []Service{}}
			byName[name] = p
		}
		return p
	}
	type member struct {
		num  int
		name string
	}
	svcMembers := map[[2]string][]member{}
	for _, c := range cs {
		ci := c.Compose
		if ci == nil {
			continue
		}
		p := get(ci.Project)
		if p.WorkingDir == "" {
			p.WorkingDir = ci.WorkingDir
		}
		for _, f := range ci.ConfigFiles {
			if !slices.Contains(p.ConfigFiles, f) {
				p.ConfigFiles = append(p.ConfigFiles, f)
			}
		}
		if ci.OneOff {
			p.OneOff = append(p.OneOff, c.Name)
			continue
		}
		s := p.Service(ci.Service)
		if s == nil {
			p.Services = append(p.Services, Service{Name: ci.Service, Containers: []string{}})
			s = &p.Services[len(p.Services)-1]
		}
		if s.DependsOn == nil {
			s.DependsOn = ci.DependsOn
		}
		key := [2]string{ci.Project, ci.Service}
		svcMembers[key] = append(svcMembers[key], member{ci.ContainerNumber, c.Name})
	}
	for _, v := range vols {
		if n := v.Labels[LabelProject]; n != "" {
			p := get(n)
			p.Volumes = append(p.Volumes, v.Name)
		}
	}
	for _, n := range nets {
		if pn := n.Labels[LabelProject]; pn != "" {
			p := get(pn)
			p.Networks = append(p.Networks, n.Name)
		}
	}
	out := make([]Project, 0, len(byName))
	for _, p := range byName {
		for i := range p.Services {
			ms := svcMembers[[2]string{p.Name, p.Services[i].Name}]
			slices.SortFunc(ms, func(a, b member) int {
				return cmp.Or(cmp.Compare(a.num, b.num), cmp.Compare(a.name, b.name))
			})
			for _, m := range ms {
				p.Services[i].Containers = append(p.Services[i].Containers, m.name)
			}
		}
		slices.SortFunc(p.Services, func(a, b Service) int { return cmp.Compare(a.Name, b.Name) })
		slices.Sort(p.OneOff)
		slices.Sort(p.Volumes)
		slices.Sort(p.Networks)
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b Project) int { return cmp.Compare(a.Name, b.Name) })
	return out
}
