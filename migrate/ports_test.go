package migrate

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/unroot/unroot/inventory"
)

const testdataDir = "../testdata/migrate"

func TestParsePortMapGood(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		start  int
		want   PortMap
	}{
		{"none", nil, 1024, PortMap{}},
		{"one", []string{"80:8081"}, 1024, PortMap{80: 8081}},
		{"several", []string{"80:8081", "443:8443", "25:2525"}, 1024, PortMap{80: 8081, 443: 8443, 25: 2525}},
		{"spaces trimmed", []string{" 80 : 8081 "}, 1024, PortMap{80: 8081}},
		{"new equal to start", []string{"80:1024"}, 1024, PortMap{80: 1024}},
		{"low start allows low new", []string{"80:81"}, 80, PortMap{80: 81}},
		{"unprivileged old remapped", []string{"8080:9090"}, 1024, PortMap{8080: 9090}},
		{"max port", []string{"65535:65535"}, 1024, PortMap{65535: 65535}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePortMap(tt.values, tt.start)
			if err != nil {
				t.Fatalf("ParsePortMap(%q, %d): %v", tt.values, tt.start, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParsePortMap(%q, %d) = %v, want %v", tt.values, tt.start, got, tt.want)
			}
		})
	}
}

func TestParsePortMapErrors(t *testing.T) {
	tests := []struct {
		name       string
		values     []string
		start      int
		wantReason string
		wantValue  string
	}{
		{"no colon", []string{"8080"}, 1024, "want OLD:NEW", "8080"},
		{"empty", []string{""}, 1024, "want OLD:NEW", ""},
		{"not a number", []string{"http:8080"}, 1024, "ports are numbers", "http:8080"},
		{"zero old", []string{"0:8080"}, 1024, "ports are numbers", "0:8080"},
		{"zero new", []string{"80:0"}, 1024, "ports are numbers", "80:0"},
		{"too big", []string{"80:65536"}, 1024, "ports are numbers", "80:65536"},
		{"negative", []string{"-80:8080"}, 1024, "ports are numbers", "-80:8080"},
		{"two colons", []string{"80:8080:1"}, 1024, "ports are numbers", "80:8080:1"},
		{"below start", []string{"80:81"}, 1024, "new port 81 is below 1024", "80:81"},
		{"below custom start", []string{"80:443"}, 500, "new port 443 is below 500", "80:443"},
		{"old twice", []string{"80:8081", "80:8082"}, 1024, "port 80 is mapped twice", "80:8082"},
		{"new twice", []string{"80:8081", "81:8081"}, 1024, `new port 8081 is also the target of "80:8081"`, "81:8081"},
		{"first bad of many", []string{"80:8081", "x", "443:8443"}, 1024, "want OLD:NEW", "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pm, err := ParsePortMap(tt.values, tt.start)
			if err == nil {
				t.Fatalf("ParsePortMap(%q) = %v, want an error", tt.values, pm)
			}
			if pm != nil {
				t.Errorf("ParsePortMap(%q) returned a map %v with the error", tt.values, pm)
			}
			if !errors.Is(err, ErrBadPortMap) {
				t.Errorf("errors.Is(%v, ErrBadPortMap) = false", err)
			}
			var pme *PortMapError
			if !errors.As(err, &pme) {
				t.Fatalf("error %T is not a *PortMapError", err)
			}
			if pme.Value != tt.wantValue {
				t.Errorf("Value = %q, want %q", pme.Value, tt.wantValue)
			}
			if !strings.Contains(pme.Reason, tt.wantReason) {
				t.Errorf("Reason = %q, want it to contain %q", pme.Reason, tt.wantReason)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("%q", tt.wantValue)) {
				t.Errorf("Error() = %q does not name the value", err.Error())
			}
			if !strings.Contains(pme.Hint(), "--port-map OLD:NEW") {
				t.Errorf("Hint() = %q", pme.Hint())
			}
		})
	}
}

func TestRewritePort(t *testing.T) {
	tests := []struct {
		name       string
		p          uint16
		start      int
		pm         PortMap
		want       uint16
		wantReason string
	}{
		{"http", 80, 1024, nil, 8080, "below 1024: +8000"},
		{"https", 443, 1024, nil, 8443, "below 1024: +8000"},
		{"first privileged", 1, 1024, nil, 8001, "below 1024: +8000"},
		{"last privileged", 1023, 1024, nil, 9023, "below 1024: +8000"},
		{"1024 kept", 1024, 1024, nil, 1024, ""},
		{"high kept", 65000, 1024, nil, 65000, ""},
		{"start 80 keeps 80", 80, 80, nil, 80, ""},
		{"start 80 rewrites 79", 79, 80, nil, 8079, "below 80: +8000"},
		{"start 0 keeps 80", 80, 0, nil, 80, ""},
		{"override", 80, 1024, PortMap{80: 8081}, 8081, "--port-map"},
		{"override of unprivileged port", 8080, 1024, PortMap{8080: 9090}, 9090, "--port-map"},
		{"override of another port ignored", 443, 1024, PortMap{80: 8081}, 8443, "below 1024: +8000"},
		{"zero means daemon picks", 0, 1024, nil, 0, ""},
		{"offset would overflow", 60000, 65535, nil, 60000, ""},
		{"offset just fits", 57535, 65535, nil, 65535, "below 65535: +8000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := RewritePort(tt.p, tt.start, tt.pm)
			if got != tt.want || why != tt.wantReason {
				t.Errorf("RewritePort(%d, %d, %v) = %d, %q; want %d, %q", tt.p, tt.start, tt.pm, got, why, tt.want, tt.wantReason)
			}
		})
	}
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testdataDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseProcNetFixtures(t *testing.T) {
	tests := []struct {
		file, proto string
		want        []Listener
	}{
		{"proc-net-tcp", "tcp", []Listener{
			{"tcp", "127.0.0.1", 80},
			{"tcp", "0.0.0.0", 2024},
			{"tcp", "192.168.1.1", 443},
			// row 3 is ESTABLISHED (01), row 4 TIME_WAIT (06): not listeners
		}},
		{"proc-net-tcp6", "tcp6", []Listener{
			{"tcp", "::", 22},
			{"tcp", "::1", 631},
		}},
		{"proc-net-udp", "udp", []Listener{
			{"udp", "127.0.0.53", 53},
			{"udp", "0.0.0.0", 68},
			// row 201 is a connected socket (01)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := ParseProcNet(bytes.NewReader(readTestdata(t, tt.file)), tt.proto)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseProcNet(%s) = %+v\nwant %+v", tt.file, got, tt.want)
			}
		})
	}
}

func TestParseProcNetCases(t *testing.T) {
	const hdr = "  sl  local_address rem_address   st\n"
	tests := []struct {
		name, text, proto string
		want              []Listener
		wantErr           string
	}{
		{"empty", "", "tcp", nil, ""},
		{"header only", hdr, "tcp", nil, ""},
		{"udp listening state is 07", hdr + " 0: 00000000:0035 00000000:0000 0A\n 1: 00000000:0036 00000000:0000 07\n", "udp", []Listener{{"udp", "0.0.0.0", 54}}, ""},
		{"tcp ignores 07", hdr + " 0: 00000000:0035 00000000:0000 07\n", "tcp", nil, ""},
		{"udp6 proto", hdr + " 0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 07\n", "udp6", []Listener{{"udp", "::", 8080}}, ""},
		{"short line skipped", hdr + " 0: 00000000:0050\n", "tcp", nil, ""},
		{"blank line skipped", hdr + "\n 0: 00000000:0050 00000000:0000 0A\n", "tcp", []Listener{{"tcp", "0.0.0.0", 80}}, ""},
		{"missing colon", hdr + " 0: 000000000050 00000000:0000 0A\n", "tcp", nil, "bad local address"},
		{"bad hex port", hdr + " 0: 00000000:ZZZZ 00000000:0000 0A\n", "tcp", nil, "invalid syntax"},
		{"port too big", hdr + " 0: 00000000:10000 00000000:0000 0A\n", "tcp", nil, "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseProcNet(strings.NewReader(tt.text), tt.proto)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				if !strings.HasPrefix(err.Error(), "parse "+tt.proto+" line") {
					t.Errorf("err = %q does not name the proto and line", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestHostListenersFakeProc(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "net"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"tcp", "tcp6", "udp"} { // no udp6: a kernel without IPv6
		if err := os.WriteFile(filepath.Join(root, "net", f), readTestdata(t, "proc-net-"+f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := HostListeners(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 7 {
		t.Fatalf("HostListeners found %d listeners, want 3 tcp + 2 tcp6 + 2 udp: %+v", len(got), got)
	}
	if got[0] != (Listener{"tcp", "127.0.0.1", 80}) || got[6] != (Listener{"udp", "0.0.0.0", 68}) {
		t.Errorf("order is not tcp, tcp6, udp: %+v", got)
	}
}

func TestReadUnprivilegedPortStart(t *testing.T) {
	tests := []struct {
		name    string
		content *string
		want    int
		wantErr bool
	}{
		{"missing means 1024", nil, 1024, false},
		{"zero", ptr("0\n"), 0, false},
		{"eighty", ptr("80\n"), 80, false},
		{"garbage", ptr("many\n"), 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			if tt.content != nil {
				dir := filepath.Join(root, "sys/net/ipv4")
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, "ip_unprivileged_port_start"), []byte(*tt.content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := ReadUnprivilegedPortStart(root)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("ReadUnprivilegedPortStart = %d, %v; want %d, err=%v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestDecodeProcAddr(t *testing.T) {
	tests := []struct{ in, want string }{
		{"00000000", "0.0.0.0"},
		{"0100007F", "127.0.0.1"},
		{"3500007F", "127.0.0.53"},
		{"0101A8C0", "192.168.1.1"},
		{"0F02000A", "10.0.2.15"},
		{"FFFFFFFF", "255.255.255.255"},
		{"00000000000000000000000000000000", "::"},
		{"00000000000000000000000001000000", "::1"},
		// Other IPv6 addresses stay hex: only wildcard and loopback matter.
		{"0000000000000000FFFF00000F02000A", "0000000000000000FFFF00000F02000A"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := decodeProcAddr(tt.in); got != tt.want {
			t.Errorf("decodeProcAddr(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestHostIPsOverlap(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"", "127.0.0.1", true},
		{"0.0.0.0", "10.0.0.1", true},
		{"::", "127.0.0.1", true},
		{"127.0.0.1", "127.0.0.1", true},
		{"127.0.0.1", "127.0.0.2", false},
		{"::1", "127.0.0.1", false},
	}
	for _, tt := range tests {
		if got := hostIPsOverlap(tt.a, tt.b); got != tt.want {
			t.Errorf("hostIPsOverlap(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
		if got := hostIPsOverlap(tt.b, tt.a); got != tt.want {
			t.Errorf("hostIPsOverlap(%q, %q) = %v, want %v (not symmetric)", tt.b, tt.a, got, tt.want)
		}
	}
}

func TestPortRange(t *testing.T) {
	tests := []struct {
		hostPort string
		lo, hi   int
		ok       bool
	}{
		{"", 0, 0, false},
		{"0", 0, 0, false},
		{"80", 80, 80, true},
		{"8000-8010", 8000, 8010, true},
		{"x", 0, 0, false},
		{"80-y", 0, 0, false},
	}
	for _, tt := range tests {
		lo, hi, ok := portRange(inventory.Port{HostPort: tt.hostPort})
		if lo != tt.lo || hi != tt.hi || ok != tt.ok {
			t.Errorf("portRange(%q) = %d, %d, %v; want %d, %d, %v", tt.hostPort, lo, hi, ok, tt.lo, tt.hi, tt.ok)
		}
	}
}

func TestFormatRange(t *testing.T) {
	tests := []struct {
		lo, hi int
		want   string
	}{
		{80, 80, "80"},
		{8080, 8090, "8080-8090"},
	}
	for _, tt := range tests {
		if got := formatRange(tt.lo, tt.hi); got != tt.want {
			t.Errorf("formatRange(%d, %d) = %q, want %q", tt.lo, tt.hi, got, tt.want)
		}
		lo, hi, ok := portRange(inventory.Port{HostPort: formatRange(tt.lo, tt.hi)})
		if !ok || lo != tt.lo || hi != tt.hi {
			t.Errorf("portRange(formatRange(%d, %d)) = %d, %d, %v", tt.lo, tt.hi, lo, hi, ok)
		}
	}
}

func FuzzParsePortMap(f *testing.F) {
	f.Add("80:8080,443:8443", 1024)
	f.Add("80:81", 80)
	f.Add("80:8081,80:8082", 1024)
	f.Add(" 1 : 65535 ", 0)
	f.Add("x:y", 1024)
	f.Add(string(readTestdata(f, "port-map-seeds")), 1024)
	f.Fuzz(func(t *testing.T, s string, start int) {
		values := strings.Split(s, ",")
		pm, err := ParsePortMap(values, start)
		if err != nil {
			if !errors.Is(err, ErrBadPortMap) {
				t.Fatalf("error %v does not match ErrBadPortMap", err)
			}
			return
		}
		if len(pm) != len(values) {
			t.Fatalf("%d values gave %d entries", len(values), len(pm))
		}
		seen := map[uint16]bool{}
		var again []string
		for o, n := range pm {
			if o == 0 || n == 0 || int(n) < start {
				t.Fatalf("entry %d:%d with start %d", o, n, start)
			}
			if seen[n] {
				t.Fatalf("new port %d used twice", n)
			}
			seen[n] = true
			if got, why := RewritePort(o, start, pm); got != n || why != "--port-map" {
				t.Fatalf("RewritePort(%d) = %d %q, want the override %d", o, got, why, n)
			}
			again = append(again, fmt.Sprintf("%d:%d", o, n))
		}
		pm2, err := ParsePortMap(again, start)
		if err != nil || !reflect.DeepEqual(pm, pm2) {
			t.Fatalf("re-parsing %q = %v, %v; want %v", again, pm2, err, pm)
		}
	})
}

func FuzzParseProcNet(f *testing.F) {
	for _, name := range []string{"proc-net-tcp", "proc-net-tcp6", "proc-net-udp"} {
		proto := strings.TrimPrefix(name, "proc-net-")
		f.Add(readTestdata(f, name), proto)
	}
	f.Add([]byte("hdr\n 0: 00000000:FFFF 00000000:0000 0A\n"), "tcp")
	f.Fuzz(func(t *testing.T, data []byte, proto string) {
		ls, err := ParseProcNet(bytes.NewReader(data), proto)
		if err != nil {
			return
		}
		want := "0A"
		if strings.HasPrefix(proto, "udp") {
			want = "07"
		}
		// Every listener comes from a distinct data line in the wanted state.
		lines := 0
		sc := bufio.NewScanner(bytes.NewReader(data))
		first := true
		for sc.Scan() {
			if first {
				first = false
				continue
			}
			if f := strings.Fields(sc.Text()); len(f) >= 4 && f[3] == want {
				lines++
			}
		}
		if len(ls) != lines {
			t.Fatalf("%d listeners from %d lines in state %s", len(ls), lines, want)
		}
		for _, l := range ls {
			if l.Proto != strings.TrimSuffix(proto, "6") {
				t.Fatalf("listener proto %q for %q", l.Proto, proto)
			}
		}
	})
}
