package inventory

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/network"
)

func TestParseDependsOn(t *testing.T) {
	tests := []struct {
		name    string
		label   string
		want    []Dependency
		wantErr bool
	}{
		{name: "Empty", label: "", want: nil},
		{name: "Current", label: "db:service_healthy:true", want: []Dependency{{Service: "db", Condition: ConditionHealthy, Restart: true}}},
		{name: "SortedByService", label: "web:service_started:false,cache:service_completed_successfully:false",
			want: []Dependency{{Service: "cache", Condition: ConditionCompleted}, {Service: "web", Condition: ConditionStarted}}},
		{name: "PreRestartFormat", label: "db:service_healthy", want: []Dependency{{Service: "db", Condition: ConditionHealthy}}},
		{name: "NameOnly", label: "db", want: []Dependency{{Service: "db", Condition: ConditionStarted}}},
		{name: "EmptyCondition", label: "db::true", want: []Dependency{{Service: "db", Condition: ConditionStarted, Restart: true}}},
		{name: "Spaces", label: " db : service_healthy : false , ", want: []Dependency{{Service: "db", Condition: ConditionHealthy}}},
		{name: "ExtraFieldsIgnored", label: "db:service_started:true:required", want: []Dependency{{Service: "db", Condition: ConditionStarted, Restart: true}}},
		{name: "EmptyEntries", label: ",,db,,", want: []Dependency{{Service: "db", Condition: ConditionStarted}}},
		{name: "NoService", label: ":service_started:false", wantErr: true},
		{name: "BadRestart", label: "db:service_started:maybe", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDependsOn(tt.label)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseDependsOn(%q) error = %v, wantErr %v", tt.label, err, tt.wantErr)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseDependsOn(%q) = %#v, want %#v", tt.label, got, tt.want)
			}
		})
	}
}

func TestFormatDependsOnRoundTrip(t *testing.T) {
	deps := []Dependency{{Service: "cache", Condition: ConditionStarted}, {Service: "db", Condition: ConditionHealthy, Restart: true}}
	s := FormatDependsOn(deps)
	if s != "cache:service_started:false,db:service_healthy:true" {
		t.Errorf("FormatDependsOn = %q", s)
	}
	back, err := ParseDependsOn(s)
	if err != nil || !reflect.DeepEqual(back, deps) {
		t.Errorf("ParseDependsOn(FormatDependsOn(x)) = %v, %v; want %v", back, err, deps)
	}
}

// dependsOnSeeds returns the depends_on labels of every fixture container.
func dependsOnSeeds(t testing.TB) []string {
	var seeds []string
	files, _ := filepath.Glob("../testdata/inventory/*/container-*.json")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var c struct {
			Config struct{ Labels map[string]string }
		}
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if v, ok := c.Config.Labels[LabelDependsOn]; ok {
			seeds = append(seeds, v)
		}
	}
	if len(seeds) < 3 {
		t.Fatalf("found %d depends_on seeds in testdata, want at least 3", len(seeds))
	}
	return seeds
}

func FuzzParseDependsOn(f *testing.F) {
	for _, s := range dependsOnSeeds(f) {
		f.Add(s)
	}
	f.Add("db:service_healthy")
	f.Add("a,b:c:1,:x")
	f.Fuzz(func(t *testing.T, label string) {
		deps, err := ParseDependsOn(label)
		if err != nil {
			return
		}
		for _, d := range deps {
			if d.Service == "" || d.Condition == "" || strings.ContainsAny(d.Service+d.Condition, ",:") {
				t.Fatalf("ParseDependsOn(%q) gave malformed %+v", label, d)
			}
		}
		// The canonical form must parse back to the same dependencies.
		back, err := ParseDependsOn(FormatDependsOn(deps))
		if err != nil {
			t.Fatalf("reparse of %q: %v", FormatDependsOn(deps), err)
		}
		if len(deps) == 0 {
			deps = nil
		}
		if !reflect.DeepEqual(back, deps) {
			t.Fatalf("round trip of %q: %v != %v", label, back, deps)
		}
	})
}

func TestNormalizeHostPort(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"8080", "8080"},
		{"08080", "8080"},
		{" 443 ", "443"},
		{"8000-8010", "8000-8010"},
		{"8000-8000", "8000"},
		{"8010-8000", "8010-8000"}, // not a range docker accepts; left alone
		{"http", "http"},
		{"70000", "70000"},
	}
	for _, tt := range tests {
		if got := NormalizeHostPort(tt.in); got != tt.want {
			t.Errorf("NormalizeHostPort(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestPortsOf(t *testing.T) {
	p := network.MustParsePort
	lo := netip.MustParseAddr("127.0.0.1")
	any4 := netip.MustParseAddr("0.0.0.0")
	any6 := netip.MustParseAddr("::")
	tests := []struct {
		name       string
		exposed    network.PortSet
		bindings   network.PortMap
		current    network.PortMap
		publishAll bool
		want       []Port
	}{
		{name: "Nothing"},
		{
			name:    "ExposedOnly",
			exposed: network.PortSet{p("80"): {}, p("53/udp"): {}},
			want:    []Port{{ContainerPort: 53, Proto: "udp"}, {ContainerPort: 80, Proto: "tcp"}},
		},
		{
			name:     "BoundOnLoopback",
			exposed:  network.PortSet{p("80/tcp"): {}},
			bindings: network.PortMap{p("80/tcp"): {{HostIP: lo, HostPort: "8080"}}},
			current:  network.PortMap{p("80/tcp"): {{HostIP: lo, HostPort: "8080"}}},
			want:     []Port{{ContainerPort: 80, Proto: "tcp", Published: true, HostIP: "127.0.0.1", HostPort: "8080", BoundHostPort: 8080}},
		},
		{
			name:     "AllAddressesMatchesFirstCurrent",
			bindings: network.PortMap{p("443/tcp"): {{HostPort: "8443"}}},
			current:  network.PortMap{p("443/tcp"): {{HostIP: any4, HostPort: "8443"}, {HostIP: any6, HostPort: "8443"}}},
			want:     []Port{{ContainerPort: 443, Proto: "tcp", Published: true, HostPort: "8443", BoundHostPort: 8443}},
		},
		{
			name:     "EphemeralStopped",
			bindings: network.PortMap{p("9000/udp"): {{HostIP: lo}}},
			want:     []Port{{ContainerPort: 9000, Proto: "udp", Published: true, HostIP: "127.0.0.1"}},
		},
		{
			name:     "EmptyBindingList",
			bindings: network.PortMap{p("80/tcp"): nil},
			want:     []Port{{ContainerPort: 80, Proto: "tcp", Published: true}},
		},
		{
			name:     "ExplicitIPv4AnyKept",
			bindings: network.PortMap{p("80/tcp"): {{HostIP: any4, HostPort: "0080"}}},
			want:     []Port{{ContainerPort: 80, Proto: "tcp", Published: true, HostIP: "0.0.0.0", HostPort: "80"}},
		},
		{
			name:     "RangeBoundPortFromCurrent",
			bindings: network.PortMap{p("53/udp"): {{HostIP: lo, HostPort: "5300-5310"}}},
			current:  network.PortMap{p("53/udp"): {{HostIP: lo, HostPort: "5302"}}},
			want:     []Port{{ContainerPort: 53, Proto: "udp", Published: true, HostIP: "127.0.0.1", HostPort: "5300-5310", BoundHostPort: 5302}},
		},
		{
			name:       "PublishAll",
			exposed:    network.PortSet{p("80/tcp"): {}, p("81/tcp"): {}},
			bindings:   network.PortMap{p("81/tcp"): {{HostPort: "8181"}}},
			current:    network.PortMap{p("80/tcp"): {{HostIP: any4, HostPort: "32768"}}, p("81/tcp"): {{HostIP: any4, HostPort: "8181"}}},
			publishAll: true,
			want: []Port{
				{ContainerPort: 80, Proto: "tcp", Published: true, BoundHostPort: 32768},
				{ContainerPort: 81, Proto: "tcp", Published: true, HostPort: "8181", BoundHostPort: 8181},
			},
		},
		{
			name:     "TwoBindingsOneExposed",
			exposed:  network.PortSet{p("80/tcp"): {}},
			bindings: network.PortMap{p("80/tcp"): {{HostIP: any6, HostPort: "80"}, {HostIP: lo, HostPort: "80"}}},
			want: []Port{
				{ContainerPort: 80, Proto: "tcp", Published: true, HostIP: "127.0.0.1", HostPort: "80"},
				{ContainerPort: 80, Proto: "tcp", Published: true, HostIP: "::", HostPort: "80"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := portsOf(tt.exposed, tt.bindings, tt.current, tt.publishAll)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("portsOf = %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

func TestPortString(t *testing.T) {
	tests := []struct {
		p    Port
		want string
	}{
		{Port{ContainerPort: 80, Proto: "tcp"}, "80/tcp"},
		{Port{ContainerPort: 80, Proto: "tcp", Published: true, HostIP: "127.0.0.1", HostPort: "8080"}, "127.0.0.1:8080->80/tcp"},
		{Port{ContainerPort: 53, Proto: "udp", Published: true, HostIP: "::1", HostPort: "53"}, "[::1]:53->53/udp"},
		{Port{ContainerPort: 80, Proto: "tcp", Published: true, BoundHostPort: 32768}, "32768->80/tcp"},
		{Port{ContainerPort: 80, Proto: "tcp", Published: true, HostIP: "127.0.0.1"}, "127.0.0.1:*->80/tcp"},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.p, got, tt.want)
		}
	}
}

func TestSuggest(t *testing.T) {
	have := []string{"fxshop-web-1", "fxshop-db-1", "nextcloud", "nextcloud-db", "a"}
	tests := []struct{ name, want string }{
		{"fxshop-wbe-1", "fxshop-web-1"}, // transposition
		{"fxshop-web-2", "fxshop-web-1"},
		{"/fxshop-db-1x", "fxshop-db-1"},
		{"NEXTCLOUD", "nextcloud"},
		{"nextclud-db", "nextcloud-db"},
		{"next", "nextcloud"}, // prefix
		{"postgres", ""},
		{"b", "a"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := Suggest(tt.name, have); got != tt.want {
			t.Errorf("Suggest(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"abc", "", 3}, {"", "abc", 3}, {"web", "web", 0},
		{"web", "wbe", 1}, {"kitten", "sitting", 3}, {"ca", "abc", 3}, {"ünï", "uni", 2},
	}
	for _, tt := range tests {
		if got := EditDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("EditDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := EditDistance(tt.b, tt.a); got != tt.want {
			t.Errorf("EditDistance(%q, %q) = %d, want %d (symmetry)", tt.b, tt.a, got, tt.want)
		}
	}
}

func TestInventoryContainer(t *testing.T) {
	inv := &Inventory{Containers: []Container{
		{ID: "abc123aaaa", Name: "web"},
		{ID: "abc456bbbb", Name: "db"},
		{ID: "ffff000000", Name: "cache"},
	}}
	tests := []struct {
		in, want  string
		ambiguous bool
		suggest   string
	}{
		{in: "web", want: "web"},
		{in: "/db", want: "db"},
		{in: "abc456bbbb", want: "db"},
		{in: "ffff", want: "cache"},
		{in: "abc", ambiguous: true},
		{in: "cahce", suggest: "cache"},
		{in: "zzzzzz"},
	}
	for _, tt := range tests {
		c, err := inv.Container(tt.in)
		if tt.want != "" {
			if err != nil || c.Name != tt.want {
				t.Errorf("Container(%q) = %v, %v; want %s", tt.in, c, err, tt.want)
			}
			continue
		}
		nf, ok := err.(*NotFoundError)
		if !ok {
			t.Errorf("Container(%q) error = %v, want *NotFoundError", tt.in, err)
			continue
		}
		if nf.Ambiguous != tt.ambiguous || nf.Suggestion != tt.suggest {
			t.Errorf("Container(%q) error = %+v, want ambiguous %t suggestion %q", tt.in, nf, tt.ambiguous, tt.suggest)
		}
	}
}

func TestInventoryLookupsNotFound(t *testing.T) {
	inv := &Inventory{
		Volumes:  []Volume{{Name: "pgdata"}},
		Networks: []Network{{Name: "backend", ID: "n1"}},
		Images:   []Image{{ID: "sha256:beef", RepoTags: []string{"nginx:1.25"}}},
		Projects: []Project{{Name: "shop"}},
	}
	if _, err := inv.Volume("pgdata"); err != nil {
		t.Error(err)
	}
	if _, err := inv.Network("n1"); err != nil {
		t.Error(err)
	}
	if _, err := inv.Image("beef"); err != nil {
		t.Error(err)
	}
	if _, err := inv.Image("nginx:1.25"); err != nil {
		t.Error(err)
	}
	for _, err := range []error{
		func() error { _, err := inv.Volume("pgdta"); return err }(),
		func() error { _, err := inv.Network("backnd"); return err }(),
		func() error { _, err := inv.Image("nginx:1.26"); return err }(),
		func() error { _, err := inv.Project("shp"); return err }(),
	} {
		nf, ok := err.(*NotFoundError)
		if !ok || nf.Suggestion == "" || nf.Hint() == "" {
			t.Errorf("lookup error = %#v, want a *NotFoundError with suggestion and hint", err)
		}
	}
}

func TestResourcesLimited(t *testing.T) {
	if (Resources{}).Limited() {
		t.Error("zero Resources reported as limited")
	}
	if !(Resources{PidsLimit: 10}).Limited() {
		t.Error("pids limit not reported as limited")
	}
}
