package preflight

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// testdata is the shared test data folder of this package.
const testdata = "../testdata/preflight"

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testdata, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseSysctl(t *testing.T) {
	tests := []struct {
		name, in string
		want     int64
		wantErr  bool
	}{
		{"newline", "1024\n", 1024, false},
		{"blanks", "  0 \n", 0, false},
		{"negative", "-1\n", -1, false},
		{"empty", "", 0, true},
		{"word", "yes\n", 0, true},
		{"two values", "1 2\n", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSysctl(strings.NewReader(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
		})
	}
}

func TestParseSysctlFileTestdata(t *testing.T) {
	got, err := ParseSysctlFile(filepath.Join(testdata, "ip_unprivileged_port_start"))
	if err != nil || got != 1024 {
		t.Fatalf("got %d, %v; want 1024", got, err)
	}
	if _, err := ParseSysctlFile(filepath.Join(testdata, "no-such-file")); !os.IsNotExist(err) {
		t.Fatalf("missing file: err = %v, want not-exist", err)
	}
}

func TestParseSubIDEntries(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []SubIDEntry
		wantErr string
	}{
		{
			name: "testdata",
			in:   string(readTestdata(t, "subuid")),
			want: []SubIDEntry{
				{"alice", 231072, 65536, 1},
				{"bob", 296608, 65536, 2},
				{"1000", 362144, 65536, 3},
			},
		},
		{
			name: "comments and blanks",
			in:   "# c\n\n  carol:100000:65536  \n",
			want: []SubIDEntry{{"carol", 100000, 65536, 3}},
		},
		{
			name:    "bad lines kept out, good ones kept",
			in:      "a:1:x\nb:10:10\nc:1\n:1:1\nd:1:0\ne:4294967295:2\n",
			want:    []SubIDEntry{{"b", 10, 10, 2}},
			wantErr: "line 1",
		},
		{
			name: "range up to the last id",
			in:   "f:4294967295:1\n",
			want: []SubIDEntry{{"f", 4294967295, 1, 1}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSubIDEntries(strings.NewReader(tt.in))
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseSubIDEntriesBadLinesNamed(t *testing.T) {
	_, err := ParseSubIDEntries(strings.NewReader("a:1:x\nb:10:10\nc:1\n"))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"line 1", "line 3"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if strings.Contains(err.Error(), "line 2") {
		t.Errorf("error %q names the good line 2", err)
	}
}

func TestParseLimitsConf(t *testing.T) {
	got, err := ParseLimitsConf(strings.NewReader(string(readTestdata(t, "limits.conf"))))
	if err != nil {
		t.Fatal(err)
	}
	want := []LimitRule{
		{"*", "soft", "nofile", 4096, 3},
		{"*", "hard", "nofile", 8192, 4},
		{"@docker", "soft", "nofile", 32768, 5},
		{"alice", "soft", "nofile", 1048576, 6},
		{"alice", "hard", "nofile", Unlimited, 7},
		{"@docker", "-", "nproc", 2048, 8},
		{"1000:1999", "soft", "core", 0, 9},
		{"@100:200", "hard", "nproc", Unlimited, 10},
		{"root", "-", "nofile", Unlimited, 11},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%+v\nwant\n%+v", got, want)
	}
}

func TestParseLimitsConfMalformed(t *testing.T) {
	in := "alice soft nofile\nalice maybe nofile 10\nalice soft nofile lots\nbob hard nproc 10 # ok\nalice soft nofile -5\n"
	got, err := ParseLimitsConf(strings.NewReader(in))
	want := []LimitRule{{"bob", "hard", "nproc", 10, 4}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if err == nil {
		t.Fatal("no error for malformed lines")
	}
	for _, l := range []string{"line 1", "line 2", "line 3", "line 5"} {
		if !strings.Contains(err.Error(), l) {
			t.Errorf("error %q does not name %s", err, l)
		}
	}
}

func TestParseProcLimitsTestdata(t *testing.T) {
	ls, err := ParseProcLimitsFile(filepath.Join(testdata, "proc-limits"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 16 {
		t.Errorf("got %d rows, want the kernel's 16", len(ls))
	}
	byName := map[string]ProcLimit{}
	for _, l := range ls {
		byName[l.Name] = l
	}
	for _, name := range []string{ProcLimitNofile, ProcLimitNproc, "Max nice priority", "Max realtime timeout"} {
		if _, ok := byName[name]; !ok {
			t.Errorf("row %q missing; have %v", name, byName)
		}
	}
	if l := byName["Max cpu time"]; l.Soft != Unlimited || l.Hard != Unlimited || l.Units != "seconds" {
		t.Errorf("Max cpu time = %+v", l)
	}
	if l := byName["Max nice priority"]; l.Units != "" {
		t.Errorf("Max nice priority has units %q, want none", l.Units)
	}
}

func TestParseProcLimits(t *testing.T) {
	const header = "Limit                     Soft Limit           Hard Limit           Units     \n"
	tests := []struct {
		name    string
		in      string
		want    []ProcLimit
		wantErr bool
	}{
		{
			name: "numbers and unlimited",
			in: header +
				"Max open files            1024                 524288               files     \n" +
				"Max processes             unlimited            unlimited            processes \n",
			want: []ProcLimit{
				{ProcLimitNofile, 1024, 524288, "files"},
				{ProcLimitNproc, Unlimited, Unlimited, "processes"},
			},
		},
		{name: "empty", in: "", wantErr: true},
		{name: "no header", in: "Max open files 1 2 files\n", wantErr: true},
		{name: "bad number", in: header + "Max open files            many                 524288               files     \n", wantErr: true},
		{name: "short line", in: header + "Max open files\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseProcLimits(strings.NewReader(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if !tt.wantErr && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseCgroupControllers(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string
		wantErr bool
	}{
		{"testdata", string(readTestdata(t, "cgroup.controllers")), []string{"cpuset", "cpu", "io", "memory", "pids"}, false},
		{"empty", "", []string{}, false},
		{"newline only", "\n", []string{}, false},
		{"junk", "memory pids/../x\n", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCgroupControllers(strings.NewReader(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if !tt.wantErr && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDecodeFileCaps(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		want    FileCaps
		wantErr bool
	}{
		{
			// setcap cap_setuid+ep: v2, effective, bit 7 permitted.
			name: "v2 cap_setuid+ep",
			in:   []byte{0x01, 0, 0, 0x02, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
			want: FileCaps{Version: 2, Effective: true, Permitted: 1 << 7},
		},
		{
			name: "v3 with rootid 1001",
			in:   []byte{0x01, 0, 0, 0x03, 0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xe9, 0x03, 0, 0},
			want: FileCaps{Version: 3, Effective: true, Permitted: 1 << 6, RootID: 1001},
		},
		{name: "short", in: []byte{1, 2}, wantErr: true},
		{name: "v2 size of v3", in: append([]byte{0, 0, 0, 0x02}, make([]byte, 20)...), wantErr: true},
		{name: "unknown revision", in: []byte{0, 0, 0, 0x07, 0, 0, 0, 0, 0, 0, 0, 0}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeFileCaps(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
