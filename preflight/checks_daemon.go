package preflight

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/moby/client"
)

// targetStartFix is the command that brings the rootless daemon up: start
// the systemd user unit when it is installed, install it otherwise.
func (r *runner) targetStartFix() string {
	u := r.o.User
	if _, err := os.Stat(filepath.Join(u.Home, ".config/systemd/user/docker.service")); err == nil {
		return fmt.Sprintf("systemctl --user -M %s@ start docker", u.Name)
	}
	return fmt.Sprintf("sudo -iu %s env XDG_RUNTIME_DIR=%s DBUS_SESSION_BUS_ADDRESS=unix:path=%s/bus dockerd-rootless-setuptool.sh install",
		u.Name, r.runtimeDir(), r.runtimeDir())
}

// restartTargetFix restarts the rootless daemon after a configuration change.
func (r *runner) restartTargetFix() string {
	return fmt.Sprintf("systemctl --user -M %s@ restart docker", r.o.User.Name)
}

// notChecked is the finding of a check that needs a daemon that does not
// answer; the daemon's own check carries the fix.
func notChecked(role string) Check {
	return warn("", "not checked: the %s daemon does not answer (see %s-daemon)", role, role)
}

// daemonFound words a dial or info error as a finding, without saying twice
// that the daemon does not answer and without the client's advice, which
// the fix replaces.
func daemonFound(role string, err error) string {
	msg := strings.Replace(oneLine(err), "; check if the path is correct and if the daemon is running", "", 1)
	if strings.Contains(msg, "does not answer") {
		return msg
	}
	return fmt.Sprintf("the %s daemon does not answer: %s", role, msg)
}

func (r *runner) checkTargetDaemon() Check {
	info, err := r.targetInfo()
	if err != nil {
		return fail(r.targetStartFix(), "%s", daemonFound("target", err))
	}
	return ok("docker %s answers at %s", info.Info.ServerVersion, r.o.TargetHost)
}

func (r *runner) checkTargetRootless() Check {
	info, err := r.targetInfo()
	if err != nil {
		return notChecked("target")
	}
	if !hasSecurityOption(info, "rootless") {
		return fail(r.targetStartFix(), "the daemon at %s is not rootless (security options: %s)",
			r.o.TargetHost, strings.Join(info.Info.SecurityOptions, ", "))
	}
	return ok("the daemon at %s runs rootless", r.o.TargetHost)
}

func (r *runner) checkStorageDriver() Check {
	info, err := r.targetInfo()
	if err != nil {
		return notChecked("target")
	}
	d := info.Info.Driver
	r.facts.TargetStorageDriver = d
	switch d {
	case "overlay2", "fuse-overlayfs", "btrfs", "zfs", "overlayfs", "stargz":
		return ok("storage driver %s", d)
	case "vfs":
		return warn("apt-get install -y fuse-overlayfs && "+r.restartTargetFix(),
			"storage driver vfs: every layer is a full copy, slow and space hungry")
	default:
		return warn("", "storage driver %q is not one rootless docker is known to run well on", d)
	}
}

func (r *runner) checkCgroupDriver() Check {
	info, err := r.targetInfo()
	if err != nil {
		return notChecked("target")
	}
	d := info.Info.CgroupDriver
	r.facts.TargetCgroupDriver = d
	if d == "none" || d == "" {
		return warn(r.cgroupFix(),
			"cgroup driver %q: --memory, --cpus and --pids-limit are not enforced", d)
	}
	return ok("cgroup driver %s", d)
}

func (r *runner) checkSourceDaemon() Check {
	info, err := r.sourceInfo()
	if err != nil {
		return fail("systemctl start docker", "%s", daemonFound("source", err))
	}
	if hasSecurityOption(info, "rootless") {
		return fail("", "the daemon at %s is itself rootless: unroot migrates from a rootful daemon", r.o.SourceHost)
	}
	return ok("docker %s answers at %s", info.Info.ServerVersion, r.o.SourceHost)
}

func (r *runner) checkSourceUsernsRemap() Check {
	info, err := r.sourceInfo()
	if err != nil {
		return notChecked("source")
	}
	if hasSecurityOption(info, "userns") {
		return fail("",
			"the source daemon runs with userns-remap: its files are already shifted (start+n), and unroot does not support migrating from it")
	}
	return ok("the source daemon runs without userns-remap")
}

func hasSecurityOption(info client.SystemInfoResult, name string) bool {
	return slices.ContainsFunc(info.Info.SecurityOptions, func(s string) bool {
		return s == "name="+name || strings.HasPrefix(s, "name="+name+",")
	})
}

// hostPort is a host port a source container publishes.
type hostPort struct {
	port      int
	container string
}

// publishedPorts lists the host ports the source daemon's containers
// publish: for running containers from the list, for the others from their
// port bindings, which only an inspect shows.
func publishedPorts(ctx context.Context, c SourceClient) ([]hostPort, error) {
	res, err := c.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	var out []hostPort
	for _, s := range res.Items {
		name := s.ID
		if len(s.Names) > 0 {
			name = strings.TrimPrefix(s.Names[0], "/")
		}
		if s.State == "running" {
			for _, p := range s.Ports {
				if p.PublicPort != 0 {
					out = append(out, hostPort{int(p.PublicPort), name})
				}
			}
			continue
		}
		in, err := c.ContainerInspect(ctx, s.ID, client.ContainerInspectOptions{})
		if err != nil {
			return nil, fmt.Errorf("inspect container %s: %w", name, err)
		}
		if in.Container.HostConfig == nil {
			continue
		}
		for _, bs := range in.Container.HostConfig.PortBindings {
			for _, b := range bs {
				lo, hi, ok := parsePortRange(b.HostPort)
				for p := lo; ok && p <= hi; p++ {
					out = append(out, hostPort{p, name})
				}
			}
		}
	}
	return out, nil
}

// parsePortRange parses a binding's HostPort: "80", "8000-8010", or "" (a
// port the daemon picks, never privileged).
func parsePortRange(s string) (lo, hi int, ok bool) {
	a, b, isRange := strings.Cut(s, "-")
	lo, err := strconv.Atoi(a)
	if err != nil || lo <= 0 || lo > 65535 {
		return 0, 0, false
	}
	hi = lo
	if isRange {
		if hi, err = strconv.Atoi(b); err != nil || hi < lo || hi > 65535 {
			return 0, 0, false
		}
	}
	return lo, hi, true
}

func (r *runner) checkUnprivilegedPorts() Check {
	start, err := ParseSysctlFile(r.proc("sys/net/ipv4/ip_unprivileged_port_start"))
	if err != nil {
		return warn("", "cannot read net.ipv4.ip_unprivileged_port_start: %v", err)
	}
	r.facts.UnprivilegedPortStart = int(start)
	_, _ = r.sourceInfo()
	fixTo := func(p int) string {
		return fmt.Sprintf("sysctl -w net.ipv4.ip_unprivileged_port_start=%d && echo net.ipv4.ip_unprivileged_port_start=%d > /etc/sysctl.d/90-unroot-ports.conf", p, p)
	}
	const proxy = "; or keep it and publish them on ports >= %d behind a reverse proxy that listens on the low ones"
	if r.portsErr != nil {
		if start > 80 {
			return warn(fixTo(80), "unprivileged ports start at %d, so the rootless daemon cannot publish ports below it; the source's published ports are unknown (%s)"+proxy,
				start, oneLine(r.portsErr), start)
		}
		return ok("unprivileged ports start at %d", start)
	}
	low := map[int][]string{}
	for _, p := range r.sourcePorts {
		if p.port < int(start) && !slices.Contains(low[p.port], p.container) {
			low[p.port] = append(low[p.port], p.container)
		}
	}
	if len(low) == 0 {
		return ok("unprivileged ports start at %d and no source container publishes a host port below it", start)
	}
	ports := make([]int, 0, len(low))
	for p := range low {
		ports = append(ports, p)
	}
	slices.Sort(ports)
	r.facts.PrivilegedHostPorts = ports
	var shown []string
	for _, p := range ports {
		shown = append(shown, fmt.Sprintf("%d (%s)", p, strings.Join(low[p], ", ")))
	}
	return warn(fixTo(ports[0]),
		"unprivileged ports start at %d; host ports %s need rewriting or a lower start"+proxy,
		start, strings.Join(shown, ", "), start)
}

// oneLine flattens an error for a one-line finding.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
