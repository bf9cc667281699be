package inventory

import (
	"cmp"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/network"
)

// portsOf merges a container's exposed ports, configured bindings
// (HostConfig.PortBindings) and current bindings (NetworkSettings.Ports) into
// one sorted list. A port with bindings yields one published Port per
// binding; an exposed port without bindings yields one unpublished Port,
// unless publishAll bound it to a port of the daemon's choosing.
func portsOf(exposed network.PortSet, bindings, current network.PortMap, publishAll bool) []Port {
	var out []Port
	seen := map[network.Port]bool{}
	for p, bs := range bindings {
		if !p.IsValid() {
			continue
		}
		seen[p] = true
		if len(bs) == 0 {
			// "-p 80" without a host part is stored as an empty list on
			// some daemons: a binding to a daemon-chosen port.
			bs = []network.PortBinding{{}}
		}
		for _, b := range bs {
			hostIP := normalizeHostIP(b.HostIP)
			out = append(out, Port{
				ContainerPort: p.Num(),
				Proto:         string(p.Proto()),
				Published:     true,
				HostIP:        hostIP,
				HostPort:      NormalizeHostPort(b.HostPort),
				BoundHostPort: boundPort(current[p], hostIP),
			})
		}
	}
	extra := make([]network.Port, 0, len(exposed)+len(current))
	for p := range exposed {
		extra = append(extra, p)
	}
	if publishAll {
		for p := range current {
			extra = append(extra, p)
		}
	}
	for _, p := range extra {
		if !p.IsValid() || seen[p] {
			continue
		}
		seen[p] = true
		port := Port{ContainerPort: p.Num(), Proto: string(p.Proto())}
		if publishAll {
			port.Published = true
			port.BoundHostPort = boundPort(current[p], "")
		}
		out = append(out, port)
	}
	slices.SortFunc(out, comparePorts)
	return out
}

func comparePorts(a, b Port) int {
	return cmp.Or(
		cmp.Compare(a.ContainerPort, b.ContainerPort),
		cmp.Compare(a.Proto, b.Proto),
		cmp.Compare(a.HostIP, b.HostIP),
		cmp.Compare(a.HostPort, b.HostPort),
	)
}

// normalizeHostIP renders a binding's host address; the zero address (an
// empty HostIp) means all addresses and becomes "".
func normalizeHostIP(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// NormalizeHostPort canonicalises a binding's host port: "08080" becomes
// "8080", "8000-8000" becomes "8000" and "" stays "" (the daemon chooses).
// A value it cannot read is returned trimmed but otherwise unchanged.
func NormalizeHostPort(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	lo, hi, isRange := strings.Cut(s, "-")
	a, err := strconv.ParseUint(lo, 10, 16)
	if err != nil {
		return s
	}
	if !isRange {
		return strconv.FormatUint(a, 10)
	}
	b, err := strconv.ParseUint(hi, 10, 16)
	if err != nil || b < a {
		return s
	}
	if a == b {
		return strconv.FormatUint(a, 10)
	}
	return strconv.FormatUint(a, 10) + "-" + strconv.FormatUint(b, 10)
}

// boundPort finds the host port a running container got for a binding to
// hostIP ("" matches any address).
func boundPort(current []network.PortBinding, hostIP string) uint16 {
	for _, b := range current {
		if hostIP != "" && normalizeHostIP(b.HostIP) != hostIP {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSpace(b.HostPort), 10, 16); err == nil {
			return uint16(n)
		}
	}
	return 0
}

func formatPortProto(port uint16, proto string) string {
	if proto == "" {
		proto = "tcp"
	}
	return formatUint(port) + "/" + proto
}

func formatUint(n uint16) string { return strconv.FormatUint(uint64(n), 10) }
