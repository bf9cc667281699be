package preflight

import (
	"bytes"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func FuzzParseSysctl(f *testing.F) {
	f.Add(readTestdata(f, "ip_unprivileged_port_start"))
	f.Add([]byte("0"))
	f.Add([]byte("-1\n"))
	f.Add([]byte(" 9223372036854775807 "))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := ParseSysctl(bytes.NewReader(b))
		if err != nil {
			return
		}
		again, err := ParseSysctl(strings.NewReader(strconv.FormatInt(n, 10) + "\n"))
		if err != nil || again != n {
			t.Fatalf("%d does not round-trip: %d, %v", n, again, err)
		}
	})
}

func FuzzParseSubIDEntries(f *testing.F) {
	f.Add(readTestdata(f, "subuid"))
	f.Add([]byte("a:0:4294967296\n#x\nb:1:1"))
	f.Add([]byte("a::1\n:::\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		es, _ := ParseSubIDEntries(bytes.NewReader(b))
		var out strings.Builder
		for _, e := range es {
			if e.Count == 0 || e.End() > 1<<32 || e.Line < 1 || e.Owner == "" {
				t.Fatalf("invalid entry %+v", e)
			}
			fmt.Fprintf(&out, "%s:%d:%d\n", e.Owner, e.Start, e.Count)
		}
		again, err := ParseSubIDEntries(strings.NewReader(out.String()))
		if err != nil || len(again) != len(es) {
			t.Fatalf("entries %+v do not round-trip: %+v, %v", es, again, err)
		}
		for i := range es {
			a, e := again[i], es[i]
			a.Line, e.Line = 0, 0
			if a != e {
				t.Fatalf("entry %d: %+v became %+v", i, e, a)
			}
		}
	})
}

func FuzzParseLimitsConf(f *testing.F) {
	f.Add(readTestdata(f, "limits.conf"))
	f.Add([]byte("a - nofile infinity#c\n\t@g\thard\tnproc\t-1"))
	f.Add([]byte("a soft nofile 99999999999999999999\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		rules, _ := ParseLimitsConf(bytes.NewReader(b))
		var out strings.Builder
		for _, r := range rules {
			if r.Type != "soft" && r.Type != "hard" && r.Type != "-" || r.Value < Unlimited || r.Line < 1 {
				t.Fatalf("invalid rule %+v", r)
			}
			fmt.Fprintf(&out, "%s %s %s %s\n", r.Domain, r.Type, r.Item, showLimit(r.Value))
		}
		again, err := ParseLimitsConf(strings.NewReader(out.String()))
		if err != nil || len(again) != len(rules) {
			t.Fatalf("rules %+v do not round-trip: %+v, %v", rules, again, err)
		}
		for i := range rules {
			a, r := again[i], rules[i]
			a.Line, r.Line = 0, 0
			if a != r {
				t.Fatalf("rule %d: %+v became %+v", i, r, a)
			}
		}
	})
}

func FuzzParseProcLimits(f *testing.F) {
	f.Add(readTestdata(f, "proc-limits"))
	f.Add([]byte("Limit Soft Limit Hard Limit Units\nx 1 2 3\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ls, err := ParseProcLimits(bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, l := range ls {
			if l.Name == "" || l.Soft < Unlimited || l.Hard < Unlimited {
				t.Fatalf("invalid row %+v", l)
			}
		}
	})
}

func FuzzParseCgroupControllers(f *testing.F) {
	f.Add(readTestdata(f, "cgroup.controllers"))
	f.Add([]byte(""))
	f.Add([]byte("memory\tpids\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cs, err := ParseCgroupControllers(bytes.NewReader(b))
		if err != nil {
			return
		}
		again, err := ParseCgroupControllers(strings.NewReader(strings.Join(cs, " ")))
		if err != nil || !reflect.DeepEqual(again, cs) {
			t.Fatalf("%q does not round-trip: %q, %v", cs, again, err)
		}
	})
}

func FuzzDecodeFileCaps(f *testing.F) {
	f.Add([]byte{0x01, 0, 0, 0x02, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0x01, 0, 0, 0x03, 0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xe9, 0x03, 0, 0})
	f.Add([]byte{0, 0, 0, 0x01, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeFileCaps(b)
		if err != nil {
			return
		}
		if want := map[int]int{1: 12, 2: 20, 3: 24}[c.Version]; want != len(b) {
			t.Fatalf("v%d decoded from %d bytes", c.Version, len(b))
		}
		if c.Version != 3 && c.RootID != 0 {
			t.Fatalf("v%d with rootid %d", c.Version, c.RootID)
		}
	})
}
