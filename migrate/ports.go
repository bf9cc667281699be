package migrate

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// DefaultPortOffset is added to a host port that rootless cannot bind
// (80 → 8080, 443 → 8443) unless --port-map says otherwise.
const DefaultPortOffset = 8000

// PrivilegedPortStart is the kernel's default for
// net.ipv4.ip_unprivileged_port_start.
const PrivilegedPortStart = 1024

// PortMap holds the user's --port-map overrides: old host port → new host port.
type PortMap map[uint16]uint16

// ErrBadPortMap is matched by every --port-map parse error.
var ErrBadPortMap = errors.New("bad port map")

// PortMapError is a --port-map value that cannot be used; it carries a hint.
type PortMapError struct {
	Value  string
	Reason string
}

func (e *PortMapError) Error() string {
	return fmt.Sprintf("--port-map %q: %s", e.Value, e.Reason)
}

// Hint shows the accepted form.
func (e *PortMapError) Hint() string {
	return "use --port-map OLD:NEW with NEW at or above net.ipv4.ip_unprivileged_port_start, e.g. --port-map 80:8081"
}

// Is makes errors.Is(err, ErrBadPortMap) true.
func (e *PortMapError) Is(target error) bool { return target == ErrBadPortMap }

// ParsePortMap parses "OLD:NEW" values into a [PortMap]. unprivStart is the
// target's net.ipv4.ip_unprivileged_port_start: NEW must not be below it.
func ParsePortMap(values []string, unprivStart int) (PortMap, error) {
	pm := PortMap{}
	seenNew := map[uint16]string{}
	for _, v := range values {
		a, b, ok := strings.Cut(v, ":")
		if !ok {
			return nil, &PortMapError{v, "want OLD:NEW"}
		}
		oldP, err1 := parsePort(a)
		newP, err2 := parsePort(b)
		if err1 != nil || err2 != nil {
			return nil, &PortMapError{v, "ports are numbers from 1 to 65535"}
		}
		if int(newP) < unprivStart {
			return nil, &PortMapError{v, fmt.Sprintf("new port %d is below %d, which the rootless daemon cannot bind", newP, unprivStart)}
		}
		if _, dup := pm[oldP]; dup {
			return nil, &PortMapError{v, fmt.Sprintf("port %d is mapped twice", oldP)}
		}
		if prev, dup := seenNew[newP]; dup {
			return nil, &PortMapError{v, fmt.Sprintf("new port %d is also the target of %q", newP, prev)}
		}
		pm[oldP] = newP
		seenNew[newP] = v
	}
	return pm, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("bad port %q", s)
	}
	return uint16(n), nil
}

// RewritePort returns the host port the rootless daemon will publish for
// host port p, and why. Ports the target can bind stay as they are unless the
// user mapped them explicitly.
func RewritePort(p uint16, unprivStart int, pm PortMap) (uint16, string) {
	if n, ok := pm[p]; ok {
		return n, "--port-map"
	}
	if int(p) >= unprivStart || p == 0 {
		return p, ""
	}
	n := uint32(p) + DefaultPortOffset
	if n > 65535 {
		return p, ""
	}
	return uint16(n), fmt.Sprintf("below %d: +%d", unprivStart, DefaultPortOffset)
}

// Listener is a TCP or UDP socket listening on the host.
type Listener struct {
	Proto string // "tcp" or "udp"
	Addr  string // local address, e.g. "0.0.0.0", "127.0.0.1", "::"
	Port  uint16
}

// ParseProcNet parses /proc/net/{tcp,tcp6,udp,udp6}: it returns the sockets in
// state LISTEN (tcp) or unconnected (udp, state 07).
func ParseProcNet(r io.Reader, proto string) ([]Listener, error) {
	var out []Listener
	sc := bufio.NewScanner(r)
	first := true
	for sc.Scan() {
		if first {
			first = false
			continue // header
		}
		f := strings.Fields(sc.Text())
		if len(f) < 4 {
			continue
		}
		want := "0A"
		if strings.HasPrefix(proto, "udp") {
			want = "07"
		}
		if f[3] != want {
			continue
		}
		hexAddr, hexPort, ok := strings.Cut(f[1], ":")
		if !ok {
			return nil, fmt.Errorf("parse %s line %q: bad local address", proto, sc.Text())
		}
		port, err := strconv.ParseUint(hexPort, 16, 16)
		if err != nil {
			return nil, fmt.Errorf("parse %s line %q: %w", proto, sc.Text(), err)
		}
		out = append(out, Listener{Proto: strings.TrimSuffix(proto, "6"), Addr: decodeProcAddr(hexAddr), Port: uint16(port)})
	}
	return out, sc.Err()
}

// decodeProcAddr turns /proc/net's little-endian hex address into text; it
// only needs to tell wildcard and loopback apart from the rest.
func decodeProcAddr(h string) string {
	switch h {
	case "00000000":
		return "0.0.0.0"
	case "00000000000000000000000000000000":
		return "::"
	case "0100007F":
		return "127.0.0.1"
	case "00000000000000000000000001000000":
		return "::1"
	}
	if len(h) == 8 {
		b := make([]byte, 4)
		for i := 0; i < 4; i++ {
			v, _ := strconv.ParseUint(h[2*i:2*i+2], 16, 8)
			b[3-i] = byte(v)
		}
		return fmt.Sprintf("%d.%d.%d.%d", b[0], b[1], b[2], b[3])
	}
	return h
}

// HostListeners reads every listening socket on the host from procRoot
// ("/proc" in production).
func HostListeners(procRoot string) ([]Listener, error) {
	var all []Listener
	for _, proto := range []string{"tcp", "tcp6", "udp", "udp6"} {
		f, err := os.Open(procRoot + "/net/" + proto)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		ls, err := ParseProcNet(f, proto)
		f.Close()
		if err != nil {
			return nil, err
		}
		all = append(all, ls...)
	}
	return all, nil
}

// ReadUnprivilegedPortStart reads net.ipv4.ip_unprivileged_port_start under
// procRoot; a kernel without the sysctl behaves as 1024.
func ReadUnprivilegedPortStart(procRoot string) (int, error) {
	b, err := os.ReadFile(procRoot + "/sys/net/ipv4/ip_unprivileged_port_start")
	if errors.Is(err, os.ErrNotExist) {
		return PrivilegedPortStart, nil
	}
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("parse ip_unprivileged_port_start: %w", err)
	}
	return n, nil
}

// hostIPsOverlap reports whether two bind addresses can collide: a wildcard
// collides with everything of its family, otherwise only equal addresses.
func hostIPsOverlap(a, b string) bool {
	wild := func(s string) bool { return s == "" || s == "0.0.0.0" || s == "::" }
	if wild(a) || wild(b) {
		return true
	}
	return a == b
}
