package inventory

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
)

// WriteJSON writes inv as indented JSON, the form 'unroot inventory
// --format json' prints and [Inventory] decodes from.
func (inv *Inventory) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(inv)
}

// WriteText writes inv for a person: one section per kind of object.
func (inv *Inventory) WriteText(w io.Writer) error {
	ew := &errWriter{w: w}
	d := inv.Daemon
	mode := "rootful"
	if d.Rootless {
		mode = "rootless"
	}
	ew.printf("daemon %s: docker %s (API %s), %s, root dir %s\n", d.Name, d.ServerVersion, d.APIVersion, mode, d.DockerRootDir)

	ew.printf("\nCONTAINERS (%d)\n", len(inv.Containers))
	for i := range inv.Containers {
		writeContainer(ew, &inv.Containers[i])
	}

	ew.printf("\nIMAGES (%d)\n", len(inv.Images))
	for _, im := range inv.Images {
		name := strings.Join(im.RepoTags, ", ")
		if name == "" {
			name = "<untagged>"
		}
		if im.Missing {
			ew.printf("  %s  MISSING on the daemon  used by %s\n", shortID(im.ID), strings.Join(im.UsedBy, ", "))
			continue
		}
		ew.printf("  %s  %s  %s  created %s", shortID(im.ID), name, humanSize(im.Size), im.Created.Format("2006-01-02"))
		if len(im.UsedBy) > 0 {
			ew.printf("  used by %s", strings.Join(im.UsedBy, ", "))
		}
		ew.printf("\n")
	}

	ew.printf("\nVOLUMES (%d)\n", len(inv.Volumes))
	for _, v := range inv.Volumes {
		if v.Missing {
			ew.printf("  %s  MISSING on the daemon\n", v.Name)
			continue
		}
		ew.printf("  %s  driver %s", v.Name, v.Driver)
		if v.Anonymous {
			ew.printf("  anonymous")
		}
		if len(v.Options) > 0 {
			ew.printf("  options %s", formatMap(v.Options))
		}
		ew.printf("\n    %s\n", v.Mountpoint)
		if len(v.UsedBy) == 0 {
			ew.printf("    unused\n")
		}
		for _, u := range v.UsedBy {
			ew.printf("    %s:%s (%s)\n", u.Container, u.Destination, rwWord(u.RW))
		}
	}

	ew.printf("\nBIND MOUNTS (%d)\n", len(inv.BindMounts))
	for _, b := range inv.BindMounts {
		ew.printf("  %s\n", b.Source)
		for _, u := range b.UsedBy {
			ew.printf("    %s:%s (%s)\n", u.Container, u.Destination, rwWord(u.RW))
		}
	}

	ew.printf("\nNETWORKS (%d)\n", len(inv.Networks))
	for _, n := range inv.Networks {
		if n.Missing {
			ew.printf("  %s  MISSING on the daemon\n", n.Name)
			continue
		}
		ew.printf("  %s  driver %s", n.Name, n.Driver)
		var flags []string
		if n.Builtin {
			flags = append(flags, "builtin")
		}
		if n.Internal {
			flags = append(flags, "internal")
		}
		if n.Attachable {
			flags = append(flags, "attachable")
		}
		if n.IPv6 {
			flags = append(flags, "ipv6")
		}
		if !n.IPv4 {
			flags = append(flags, "no-ipv4")
		}
		if len(flags) > 0 {
			ew.printf("  %s", strings.Join(flags, ", "))
		}
		for _, s := range n.IPAM {
			ew.printf("  %s", s.Subnet)
			if s.Gateway != "" {
				ew.printf(" gw %s", s.Gateway)
			}
			if s.IPRange != "" {
				ew.printf(" range %s", s.IPRange)
			}
		}
		ew.printf("\n")
		for _, m := range n.Containers {
			ew.printf("    %s", m.Container)
			if len(m.Aliases) > 0 {
				ew.printf("  aliases %s", strings.Join(m.Aliases, ", "))
			}
			for _, ip := range []string{m.IPv4Address, m.IPv6Address} {
				if ip != "" {
					ew.printf("  ip %s", ip)
				}
			}
			ew.printf("\n")
		}
	}

	ew.printf("\nCOMPOSE PROJECTS (%d)\n", len(inv.Projects))
	for _, p := range inv.Projects {
		ew.printf("  %s", p.Name)
		if p.WorkingDir != "" {
			ew.printf("  in %s", p.WorkingDir)
		}
		if len(p.ConfigFiles) > 0 {
			ew.printf("  files %s", strings.Join(p.ConfigFiles, ", "))
		}
		ew.printf("\n")
		for _, s := range p.Services {
			ew.printf("    %s: %s", s.Name, strings.Join(s.Containers, ", "))
			if len(s.DependsOn) > 0 {
				deps := make([]string, len(s.DependsOn))
				for i, d := range s.DependsOn {
					deps[i] = d.Service + " (" + d.Condition + ")"
				}
				ew.printf("  depends on %s", strings.Join(deps, ", "))
			}
			ew.printf("\n")
		}
		if len(p.OneOff) > 0 {
			ew.printf("    one-off: %s\n", strings.Join(p.OneOff, ", "))
		}
	}

	if len(inv.Warnings) > 0 {
		ew.printf("\nWARNINGS (%d)\n", len(inv.Warnings))
		for _, m := range inv.Warnings {
			ew.printf("  %s\n", m)
		}
	}
	return ew.err
}

func writeContainer(ew *errWriter, c *Container) {
	state := c.State
	if c.Health != "" {
		state += " (" + c.Health + ")"
	}
	ew.printf("  %s  %s  %s (%s)\n", c.Name, state, c.Image, shortID(c.ImageID))
	if ci := c.Compose; ci != nil {
		kind := "service"
		if ci.OneOff {
			kind = "one-off of"
		}
		ew.printf("    compose:  project %s, %s %s\n", ci.Project, kind, ci.Service)
	}
	if c.User != "" {
		ew.printf("    user:     %s\n", c.User)
	}
	if len(c.Ports) > 0 {
		ps := make([]string, len(c.Ports))
		for i, p := range c.Ports {
			ps[i] = p.String()
		}
		ew.printf("    ports:    %s\n", strings.Join(ps, ", "))
	}
	for _, m := range c.Mounts {
		src := m.Source
		if m.Type == MountVolume && m.Name != "" {
			src = m.Name
		}
		if m.Type == MountTmpfs {
			src = m.Options
		}
		ew.printf("    mount:    %s %s -> %s (%s)\n", m.Type, src, m.Destination, rwWord(m.RW))
	}
	for _, n := range c.Networks {
		ew.printf("    network:  %s", n.Name)
		if len(n.Aliases) > 0 {
			ew.printf("  aliases %s", strings.Join(n.Aliases, ", "))
		}
		for _, ip := range []string{n.IPv4Address, n.IPv6Address} {
			if ip != "" {
				ew.printf("  ip %s", ip)
			}
		}
		ew.printf("\n")
	}
	if c.RestartPolicy.Name != "" && c.RestartPolicy.Name != "no" {
		ew.printf("    restart:  %s\n", c.RestartPolicy.Name)
	}
	if len(c.Changes) > 0 {
		ew.printf("    changes:  %d paths in the writable layer\n", len(c.Changes))
	}
}

func rwWord(rw bool) string {
	if rw {
		return "rw"
	}
	return "ro"
}

func formatMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ",")
}

// humanSize formats n bytes in SI units, as `docker images` shows sizes.
func humanSize(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}

// errWriter keeps the first write error so the text writer reads straight.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, a ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, a...)
	}
}
