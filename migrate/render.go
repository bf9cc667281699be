package migrate

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/unroot/unroot/chown"
)

// Reverse proxies the runbook can write a snippet for.
var Proxies = []string{"nginx", "caddy", "haproxy"}

// WriteText prints the plan for a person.
func WriteText(w io.Writer, p *Plan) error {
	ew := &errWriter{w: w}
	s := p.Summary
	ew.printf("plan: migrate %d services to the rootless daemon of %s (uid %d)\n", s.Services, p.User.Name, p.User.UID)
	ew.printf("  source %s (docker %s)  →  target %s (docker %s, rootless=%v, cgroup driver %q)\n",
		p.Source.Host, p.Source.Version, p.Target.Host, p.Target.Version, p.Target.Rootless, p.Target.CgroupDriver)
	ew.printf("  id map (%s): uids %s; gids %s\n", p.IDMap.Source, ranges(p.IDMap.UIDs), ranges(p.IDMap.GIDs))
	ew.printf("  volumes: %s; unprivileged ports start at %d\n\n", p.VolumesMode, p.PortStart)

	if len(p.Services) > 0 {
		ew.printf("services, in cutover order:\n")
		tw := tabwriter.NewWriter(ew, 2, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "  #\tCONTAINER\tIMAGE\tSTATE\tPORTS\tVOLUMES\tBINDS\tNOTE\n")
		for _, sv := range p.Services {
			state := "stopped"
			if sv.Running {
				state = "running"
			}
			note := ""
			switch {
			case sv.AlreadyMigrated:
				note = "already migrated"
			case sv.CommitWritableLayer:
				note = fmt.Sprintf("commit %d layer changes", sv.WritableChanges)
			}
			if len(sv.DependsOn) > 0 {
				note = strings.TrimSpace(note + " after " + strings.Join(sv.DependsOn, ","))
			}
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", sv.Order, sv.Container, sv.Image, state, portsText(sv.Ports), len(sv.Volumes), len(sv.Binds), note)
		}
		tw.Flush()
		ew.printf("\n")
	}
	if len(p.Images) > 0 {
		ew.printf("images:\n")
		for _, im := range p.Images {
			where := "transfer"
			if im.InTarget {
				where = "already in target"
			}
			ew.printf("  %s %s  %s  %s\n", shortID(im.ID), strings.Join(im.Tags, ","), chown.HumanBytes(im.Size), where)
		}
		ew.printf("\n")
	}
	if len(p.Networks) > 0 {
		ew.printf("networks:\n")
		for _, n := range p.Networks {
			where := "create"
			if n.InTarget {
				where = "exists in target"
			}
			ew.printf("  %s (%s) %s  used by %s\n", n.Name, n.Driver, where, strings.Join(n.UsedBy, ", "))
		}
		ew.printf("\n")
	}
	for _, v := range p.Volumes {
		action := p.VolumesMode + " with shift"
		if !v.CopyData {
			action = "recreate only (driver " + v.Driver + ")"
		}
		ew.printf("volume %s: %s  (%s; used by %s)\n", v.Name, action, v.SourcePath, strings.Join(v.UsedBy, ", "))
		writeAudit(ew, v.Audit)
	}
	for _, b := range p.Binds {
		ew.printf("bind %s: %s  (used by %s)\n", b.Source, b.Action, strings.Join(b.UsedBy, ", "))
		writeAudit(ew, b.Audit)
	}
	if len(p.Volumes)+len(p.Binds) > 0 {
		ew.printf("\n")
	}
	if len(p.Findings) > 0 {
		ew.printf("findings:\n")
		for _, f := range p.Findings {
			who := f.Container
			if who != "" {
				who += ": "
			}
			ew.printf("  %-7s %-22s %s%s\n", f.Severity, f.Code, who, f.Message)
			if f.Hint != "" && f.Severity != Info {
				ew.printf("          hint: %s\n", f.Hint)
			}
		}
		ew.printf("\n")
	}
	ew.printf("summary: %d services (%d already migrated), %d images (%s), %d volumes, %d binds, %d networks, %d files (%s), %d owner changes, %d ports rewritten\n",
		s.Services, s.Skipped, s.Images, chown.HumanBytes(s.ImageBytes), s.Volumes, s.Binds, s.Networks, s.Files, chown.HumanBytes(s.Bytes), s.OwnerChanges, s.PortsRewritten)
	if s.Applicable {
		ew.printf("the plan can be applied: %d warnings\n", s.Warnings)
	} else {
		ew.printf("the plan is BLOCKED: %d blockers, %d warnings\n", s.Blockers, s.Warnings)
	}
	return ew.err
}

func writeAudit(ew *errWriter, r *chown.Report) {
	if r == nil {
		return
	}
	ew.printf("    %d files, %d dirs, %d symlinks, %d hardlinks, %s\n", r.Files, r.Dirs, r.Symlinks, r.Hardlinks, chown.HumanBytes(r.Bytes))
	for _, o := range r.Owners {
		ew.printf("    owner %d:%d → %d:%d  ×%d\n", o.FromUID, o.FromGID, o.ToUID, o.ToGID, o.Count)
	}
	special := []struct {
		n    int64
		what string
	}{{r.Setuid, "setuid"}, {r.Setgid, "setgid"}, {r.Caps, "with capabilities"}, {r.ACLs, "with ACLs"},
		{r.Devices, "device nodes"}, {r.FIFOs, "fifos"}, {r.Sockets, "sockets"}, {r.EscapingSymlinks, "symlinks pointing outside"},
		{r.ExternalHardlinks, "hardlinked outside"}, {r.UnmappableEntries, "with unmappable ids"}}
	var parts []string
	for _, sp := range special {
		if sp.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", sp.n, sp.what))
		}
	}
	if len(parts) > 0 {
		ew.printf("    %s\n", strings.Join(parts, ", "))
	}
}

func portsText(ps []PortPlan) string {
	var out []string
	for _, p := range ps {
		old := p.OldHostPort
		if old == "" {
			old = "*"
		}
		if p.Rewritten {
			out = append(out, fmt.Sprintf("%s→%s:%d/%s", old, p.NewHostPort, p.ContainerPort, p.Proto))
		} else {
			out = append(out, fmt.Sprintf("%s:%d/%s", old, p.ContainerPort, p.Proto))
		}
	}
	if len(out) == 0 {
		return "-"
	}
	return strings.Join(out, " ")
}

func ranges(rs []chown.Range) string {
	var out []string
	for _, r := range rs {
		out = append(out, r.String())
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(b []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(b)
	e.err = err
	return n, err
}

func (e *errWriter) printf(format string, a ...any) { fmt.Fprintf(e, format, a...) }

// MarkdownOptions shape the runbook.
type MarkdownOptions struct {
	// Proxy is "nginx" (default), "caddy" or "haproxy".
	Proxy string
	// Command is how the runbook tells the reader to invoke unroot, e.g.
	// "unroot --user alice"; the default is built from the plan.
	Command string
}

// WriteMarkdown prints the plan as a runbook a reviewer can approve:
// prerequisites, per-service steps in cutover order with expected downtime
// and rollback commands, and a reverse-proxy snippet for rewritten ports.
func WriteMarkdown(w io.Writer, p *Plan, mo MarkdownOptions) error {
	if mo.Proxy == "" {
		mo.Proxy = "nginx"
	}
	un := mo.Command
	if un == "" {
		un = "unroot --user " + p.User.Name
	}
	ew := &errWriter{w: w}
	s := p.Summary
	ew.printf("# Runbook: migrate to rootless Docker for %s\n\n", p.User.Name)
	ew.printf("| | |\n|---|---|\n")
	ew.printf("| source | `%s` (Docker %s) |\n| target | `%s` (Docker %s, rootless: %v, cgroup driver: %s) |\n",
		p.Source.Host, p.Source.Version, p.Target.Host, p.Target.Version, p.Target.Rootless, p.Target.CgroupDriver)
	ew.printf("| id map (%s) | uids %s; gids %s |\n", p.IDMap.Source, ranges(p.IDMap.UIDs), ranges(p.IDMap.GIDs))
	ew.printf("| volumes | %s |\n| services | %d (%d already migrated) |\n| data | %d files, %s, %d owner changes |\n| images | %d to transfer, %s |\n",
		p.VolumesMode, s.Services, s.Skipped, s.Files, chown.HumanBytes(s.Bytes), s.OwnerChanges, s.Images, chown.HumanBytes(s.ImageBytes))
	if s.Applicable {
		ew.printf("| status | **ready**: no blockers, %d warnings |\n\n", s.Warnings)
	} else {
		ew.printf("| status | **blocked**: %d blockers, %d warnings — resolve them first |\n\n", s.Blockers, s.Warnings)
	}

	ew.printf("## 1. Prerequisites\n\n")
	if len(p.Prerequisites) == 0 {
		ew.printf("Run `%s check` and resolve every `fail`.\n\n", un)
	} else {
		ew.printf("From `unroot check` at planning time:\n\n| check | status | found | fix |\n|---|---|---|---|\n")
		for _, c := range p.Prerequisites {
			ew.printf("| %s | %s | %s | %s |\n", c.ID, c.Status, mdCell(c.Found), mdCode(c.Fix))
		}
		ew.printf("\n")
	}
	if len(p.Findings) > 0 {
		ew.printf("## 2. Findings\n\n| severity | code | container | what | hint |\n|---|---|---|---|---|\n")
		for _, f := range p.Findings {
			ew.printf("| %s | `%s` | %s | %s | %s |\n", f.Severity, f.Code, f.Container, mdCell(f.Message), mdCell(f.Hint))
		}
		ew.printf("\n")
	}

	ew.printf("## 3. Cutover, one service at a time\n\n")
	ew.printf("Each step stops the rootful container, syncs its data, starts it in the rootless daemon and waits until it is healthy; on failure unroot rolls the service back by itself. Downtime per service is roughly its stop timeout plus the final delta sync and the health gate.\n\n")
	for _, sv := range p.Services {
		ew.printf("### %d. %s\n\n", sv.Order, sv.Container)
		if sv.AlreadyMigrated {
			ew.printf("Already migrated; nothing to do. `%s status` shows it.\n\n", un)
			continue
		}
		ew.printf("- image `%s`", sv.Image)
		if sv.CommitWritableLayer {
			ew.printf(" (plus a commit of %d writable-layer changes)", sv.WritableChanges)
		}
		ew.printf("\n")
		if len(sv.DependsOn) > 0 {
			ew.printf("- after: %s\n", strings.Join(sv.DependsOn, ", "))
		}
		for _, pt := range sv.Ports {
			if pt.Rewritten {
				ew.printf("- port %s/%s → **%s** (%s)\n", pt.OldHostPort, pt.Proto, pt.NewHostPort, pt.Reason)
			} else if pt.OldHostPort != "" {
				ew.printf("- port %s/%s unchanged\n", pt.OldHostPort, pt.Proto)
			}
		}
		if len(sv.Volumes) > 0 {
			ew.printf("- volumes: %s (%s)\n", strings.Join(sv.Volumes, ", "), p.VolumesMode)
		}
		if len(sv.Binds) > 0 {
			ew.printf("- binds shifted in place (journaled): %s\n", strings.Join(sv.Binds, ", "))
		}
		ew.printf("- expected downtime: about %ds stop timeout + final sync + health gate\n", sv.StopTimeout)
		ew.printf("\n```sh\n%s migrate %s --yes\n```\n\nRollback:\n\n```sh\n%s rollback %s\n```\n\n", un, sv.Container, un, sv.Container)
	}

	ew.printf("## 4. Keep serving the old ports\n\n")
	rewritten := rewrittenPorts(p)
	if len(rewritten) == 0 {
		ew.printf("No port is rewritten.\n\n")
	} else {
		ew.printf("Rootless Docker cannot bind ports below %d. Either run a reverse proxy on the host that listens on the old ports and forwards to the new ones (it keeps the client's address in headers), or let unprivileged processes bind low ports with `sysctl -w net.ipv4.ip_unprivileged_port_start=%d` (persist it in /etc/sysctl.d; every user can then bind those ports, and the services see the rootless gateway as the client address).\n\n", p.PortStart, lowestOld(rewritten))
		ew.printf("%s:\n\n```\n%s```\n\n", mo.Proxy, ProxySnippet(mo.Proxy, rewritten))
	}
	ew.printf("## 5. Finalize or roll back\n\n")
	ew.printf("- watch: `%s status`\n- roll everything back: `%s rollback --all` (rootful services come back, bind mounts are shifted back, target volumes are kept unless `--purge`)\n", un, un)
	return ew.err
}

func mdCell(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "|", "\\|"), "\n", " ") }

func mdCode(s string) string {
	if s == "" {
		return ""
	}
	return "`" + mdCell(strings.ReplaceAll(s, "`", "'")) + "`"
}

func rewrittenPorts(p *Plan) []PortPlan {
	var out []PortPlan
	for _, sv := range p.Services {
		if sv.AlreadyMigrated {
			continue
		}
		for _, pt := range sv.Ports {
			if pt.Rewritten && pt.Proto == "tcp" {
				out = append(out, pt)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return portLo(out[i].OldHostPort) < portLo(out[j].OldHostPort) })
	return out
}

func lowestOld(ps []PortPlan) int {
	lo := 1024
	for _, p := range ps {
		if n := int(portLo(p.OldHostPort)); n < lo {
			lo = n
		}
	}
	return lo
}

// ProxySnippet returns a reverse-proxy configuration that listens on each
// rewritten port's old number and forwards to the new one on loopback. TLS
// ports (443) are passed through at the TCP level so certificates stay with
// the service.
func ProxySnippet(proxy string, ports []PortPlan) string {
	var b strings.Builder
	switch proxy {
	case "caddy":
		for _, p := range ports {
			if portLo(p.OldHostPort) == 443 {
				fmt.Fprintf(&b, "# %s: port 443 needs TLS termination in Caddy; point it at the service's plain port instead\n", p.Container)
				continue
			}
			fmt.Fprintf(&b, ":%s {\n\treverse_proxy 127.0.0.1:%s\n}\n", p.OldHostPort, p.NewHostPort)
		}
	case "haproxy":
		for _, p := range ports {
			fmt.Fprintf(&b, "frontend %s_%s\n\tbind %s:%s\n\tmode tcp\n\tdefault_backend %s_%s\n", p.Container, p.OldHostPort, orAny(p.HostIP), p.OldHostPort, p.Container, p.NewHostPort)
			fmt.Fprintf(&b, "backend %s_%s\n\tmode tcp\n\tserver s1 127.0.0.1:%s\n", p.Container, p.NewHostPort, p.NewHostPort)
		}
	default:
		b.WriteString("# in /etc/nginx/nginx.conf, top level (needs the stream module)\nstream {\n")
		for _, p := range ports {
			fmt.Fprintf(&b, "\tserver {  # %s\n\t\tlisten %s%s;\n\t\tproxy_pass 127.0.0.1:%s;\n\t}\n", p.Container, hostPrefix(p.HostIP), p.OldHostPort, p.NewHostPort)
		}
		b.WriteString("}\n")
	}
	return b.String()
}

func orAny(ip string) string {
	if ip == "" {
		return "*"
	}
	return ip
}

func hostPrefix(ip string) string {
	if ip == "" || ip == "0.0.0.0" {
		return ""
	}
	return ip + ":"
}
