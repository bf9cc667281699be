package chown

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const fixtures = "../testdata/chown"

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtures, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rigMap is the map of the test rig's rootless user: uid 1001, 231072:65536.
func rigMap(t testing.TB) IDMap {
	t.Helper()
	subs := []SubRange{{Start: 231072, Count: 65536}}
	m, err := RootlessMap(1001, 1001, subs, subs)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

type mapCase struct {
	container uint32
	host      uint32
	ok        bool
}

func checkMap(t *testing.T, m IDMap, cases []mapCase) {
	t.Helper()
	for _, c := range cases {
		for _, kind := range []string{"uid", "gid"} {
			to, back := m.HostUID, m.ContainerUID
			if kind == "gid" {
				to, back = m.HostGID, m.ContainerGID
			}
			h, ok := to(c.container)
			if ok != c.ok || (ok && h != c.host) {
				t.Errorf("host %s of container %d = %d, %v; want %d, %v", kind, c.container, h, ok, c.host, c.ok)
			}
			if !c.ok {
				continue
			}
			if got, ok := back(c.host); !ok || got != c.container {
				t.Errorf("container %s of host %d = %d, %v; want %d, true", kind, c.host, got, ok, c.container)
			}
		}
	}
}

func TestRootlessMapSingleRange(t *testing.T) {
	subs, err := ParseSubIDsFile(filepath.Join(fixtures, "subuid-single"), "unroot-e2e", 1001)
	if err != nil {
		t.Fatal(err)
	}
	m, err := RootlessMap(1001, 1002, subs, subs)
	if err != nil {
		t.Fatal(err)
	}
	checkMap(t, IDMap{UIDs: m.UIDs, GIDs: m.UIDs}, []mapCase{
		{0, 1001, true},
		{1, 231072, true},
		{2, 231073, true},
		{1000, 232071, true},
		{65534, 296605, true},
		{65535, 296606, true},
		{65536, 296607, true},
		{65537, 0, false},
		{1 << 31, 0, false},
		{1<<32 - 1, 0, false},
	})
	if h, ok := m.HostGID(0); !ok || h != 1002 {
		t.Errorf("host gid of container 0 = %d, %v; want 1002 (the user's gid, not its uid)", h, ok)
	}
}

func TestRootlessMapMultiRange(t *testing.T) {
	subs, err := ParseSubIDsFile(filepath.Join(fixtures, "subuid-multi"), "unroot-e2e", 1001)
	if err != nil {
		t.Fatal(err)
	}
	want := []SubRange{{231072, 65536}, {400000, 1000}, {500000, 65536}}
	if !slices.Equal(subs, want) {
		t.Fatalf("ranges = %v, want %v (file order, the uid-numbered line included)", subs, want)
	}
	m, err := RootlessMap(1001, 1001, subs, subs)
	if err != nil {
		t.Fatal(err)
	}
	checkMap(t, m, []mapCase{
		{0, 1001, true},
		{1, 231072, true},
		{65536, 296607, true},
		{65537, 400000, true},
		{66536, 400999, true},
		{66537, 500000, true},
		{132072, 565535, true},
		{132073, 0, false},
	})
}

func TestContainerUIDUnmappableHost(t *testing.T) {
	m := rigMap(t)
	for _, h := range []uint32{0, 1000, 1002, 231071, 296608, Overflow, 1<<32 - 1} {
		if c, ok := m.ContainerUID(h); ok {
			t.Errorf("host uid %d maps back to container %d; want unmappable", h, c)
		}
	}
}

func TestIDMapRoundTrip(t *testing.T) {
	m := rigMap(t)
	for c := uint32(0); c <= 65537; c++ {
		h, ok := m.HostUID(c)
		if !ok {
			if c <= 65536 {
				t.Fatalf("container uid %d unmappable", c)
			}
			continue
		}
		if back, ok := m.ContainerUID(h); !ok || back != c {
			t.Fatalf("container %d → host %d → container %d, %v", c, h, back, ok)
		}
	}
}

func TestRootlessMapErrors(t *testing.T) {
	tests := []struct {
		name       string
		uid        uint32
		subs       []SubRange
		wantNoSubs bool
		want       string
	}{
		{name: "no ranges", uid: 1001, wantNoSubs: true},
		{name: "own uid inside range", uid: 231100, subs: []SubRange{{231072, 65536}}, want: "overlap on the host side"},
		{name: "duplicate range", uid: 1001, subs: []SubRange{{231072, 65536}, {231072, 65536}}, want: "overlap on the host side"},
		{name: "empty range", uid: 1001, subs: []SubRange{{231072, 0}}, want: "empty"},
		{name: "too many ids", uid: 1001, subs: []SubRange{{0, 1<<32 - 1}}, want: "more ids than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			good := []SubRange{{231072, 65536}}
			_, err := RootlessMap(tt.uid, 1001, tt.subs, good)
			if err == nil {
				t.Fatal("no error")
			}
			if tt.wantNoSubs != errors.Is(err, ErrNoSubIDs) {
				t.Errorf("errors.Is(%v, ErrNoSubIDs) = %v", err, !tt.wantNoSubs)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		uids []Range
		want string // "" = valid
	}{
		{name: "rootless", uids: []Range{{0, 1001, 1}, {1, 231072, 65536}}},
		{name: "initial namespace", uids: []Range{{0, 0, 1<<32 - 1}}},
		{name: "maps the invalid id", uids: []Range{{0, 0, 1<<32 - 1}, {1<<32 - 1, 1<<32 - 1, 1}}, want: "overflow 32 bits"},
		{name: "ends at last valid id", uids: []Range{{1<<32 - 3, 5, 2}}},
		{name: "adjacent", uids: []Range{{0, 10, 5}, {5, 15, 5}}},
		{name: "empty", uids: nil},
		{name: "zero size", uids: []Range{{0, 1001, 0}}, want: "size is zero"},
		{name: "container overflow", uids: []Range{{1<<32 - 2, 5, 2}}, want: "container ids overflow"},
		{name: "host overflow", uids: []Range{{0, 1<<32 - 1, 2}}, want: "host ids overflow"},
		{name: "container overlap", uids: []Range{{0, 1001, 10}, {9, 231072, 10}}, want: "overlap on the container side"},
		{name: "host overlap", uids: []Range{{0, 231072, 10}, {10, 231081, 10}}, want: "overlap on the host side"},
		{name: "overlap off by one apart", uids: []Range{{0, 231072, 10}, {10, 231082, 10}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, m := range []IDMap{{UIDs: tt.uids}, {GIDs: tt.uids}} {
				err := m.Validate()
				if tt.want == "" {
					if err != nil {
						t.Errorf("Validate(%v) = %v", m, err)
					}
					continue
				}
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("Validate(%v) = %v, want error containing %q", m, err, tt.want)
				}
			}
		})
	}
}

func TestParseSubIDs(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		user  string
		uid   int
		want  []SubRange
		error string // substring; "" = no error
	}{
		{name: "by name", in: "a:1:2\nb:3:4\n", user: "b", uid: 7, want: []SubRange{{3, 4}}},
		{name: "by uid", in: "a:1:2\n7:3:4\n", user: "b", uid: 7, want: []SubRange{{3, 4}}},
		{name: "uid not matched when negative", in: "7:3:4\n", user: "b", uid: -1},
		{name: "name and uid in file order", in: "7:5:6\nb:3:4\n", user: "b", uid: 7, want: []SubRange{{5, 6}, {3, 4}}},
		{name: "other users only", in: "a:1:2\n", user: "b", uid: 7},
		{name: "comments and blanks", in: "# x\n\n  \n  b:3:4  \n#b:9:9\n", user: "b", uid: 7, want: []SubRange{{3, 4}}},
		{name: "no trailing newline", in: "b:3:4", user: "b", uid: 7, want: []SubRange{{3, 4}}},
		{name: "crlf", in: "b:3:4\r\n", user: "b", uid: 7, want: []SubRange{{3, 4}}},
		{name: "largest range", in: "b:0:4294967295\n", user: "b", uid: 7, want: []SubRange{{0, 1<<32 - 1}}},
		{name: "two fields", in: "a:1:2\nb:3\n", user: "b", uid: 7, error: "line 2: want name:start:count"},
		{name: "four fields", in: "b:3:4:5\n", user: "b", uid: 7, error: "line 1: want name:start:count"},
		{name: "malformed line of another user", in: "a:x:2\nb:3:4\n", user: "b", uid: 7, error: "line 1: start"},
		{name: "bad count", in: "\n\nb:3:four\n", user: "b", uid: 7, error: "line 3: count"},
		{name: "negative start", in: "b:-3:4\n", user: "b", uid: 7, error: "line 1: start"},
		{name: "start too big", in: "b:4294967296:4\n", user: "b", uid: 7, error: "line 1: start"},
		{name: "zero count", in: "b:3:0\n", user: "b", uid: 7, error: "line 1: count is zero"},
		{name: "past last id", in: "b:4294967295:2\n", user: "b", uid: 7, error: "line 1: range"},
		{name: "empty name", in: ":3:4\n", user: "b", uid: 7, error: "line 1: empty user name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSubIDs(strings.NewReader(tt.in), tt.user, tt.uid)
			if tt.error != "" {
				if err == nil || !strings.Contains(err.Error(), tt.error) {
					t.Fatalf("error = %v, want one containing %q", err, tt.error)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseSubIDsFileMissing(t *testing.T) {
	_, err := ParseSubIDsFile(filepath.Join(t.TempDir(), "subuid"), "b", 7)
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error = %v, want one wrapping os.ErrNotExist", err)
	}
}

func TestParseIDMap(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		want  []Range
		error string
	}{
		{name: "rootless dockerd", in: "         0       1001          1\n         1     231072      65536\n",
			want: []Range{{0, 1001, 1}, {1, 231072, 65536}}},
		{name: "initial namespace", in: "         0          0 4294967295\n", want: []Range{{0, 0, 1<<32 - 1}}},
		{name: "tabs and blank lines", in: "\n0\t1001\t1\n\n", want: []Range{{0, 1001, 1}}},
		{name: "empty", in: ""},
		{name: "two fields", in: "0 1001 1\n1 231072\n", error: "line 2: want 3 fields, got 2"},
		{name: "four fields", in: "0 1001 1 1\n", error: "line 1: want 3 fields, got 4"},
		{name: "not a number", in: "0 1001 x\n", error: `line 1: field 3 "x"`},
		{name: "negative", in: "-1 1001 1\n", error: "line 1: field 1"},
		{name: "too big", in: "0 4294967296 1\n", error: "line 1: field 2"},
		{name: "zero size", in: "0 1001 0\n", error: "size is zero"},
		{name: "overlap", in: "0 1001 1\n0 231072 65536\n", error: "overlap on the container side"},
		{name: "overflow", in: "1 4294967295 2\n", error: "host ids overflow"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseIDMap(strings.NewReader(tt.in))
			if tt.error != "" {
				if err == nil || !strings.Contains(err.Error(), tt.error) {
					t.Fatalf("error = %v, want one containing %q", err, tt.error)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseIDMapTooManyLines(t *testing.T) {
	var b strings.Builder
	for i := range maxMapLines + 1 {
		b.WriteString(strconv.Itoa(i) + " " + strconv.Itoa(100000+i) + " 1\n")
	}
	_, err := ParseIDMap(strings.NewReader(b.String()))
	if err == nil || !strings.Contains(err.Error(), "line 341: more than 340") {
		t.Errorf("error = %v", err)
	}
}

// fakeProc lays out runtimeDir/docker.pid and procRoot/PID/{uid,gid}_map.
func fakeProc(t *testing.T, pid string, uidMap, gidMap []byte) (runtimeDir, procRoot string) {
	t.Helper()
	runtimeDir, procRoot = t.TempDir(), t.TempDir()
	if pid != "" {
		if err := os.WriteFile(filepath.Join(runtimeDir, "docker.pid"), []byte(pid), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if uidMap != nil {
		dir := filepath.Join(procRoot, "4242")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range map[string][]byte{"uid_map": uidMap, "gid_map": gidMap} {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return runtimeDir, procRoot
}

func TestLiveMap(t *testing.T) {
	rootless := fixture(t, "uid_map-rootless")
	gids := []byte("0 1002 1\n1 300000 1000\n")
	initial := fixture(t, "uid_map-initial")
	tests := []struct {
		name           string
		pid            string
		uidMap, gidMap []byte
		want           IDMap
		wantErr        error
		errText        string
	}{
		{name: "rootless", pid: "4242\n", uidMap: rootless, gidMap: gids,
			want: IDMap{UIDs: []Range{{0, 1001, 1}, {1, 231072, 65536}}, GIDs: []Range{{0, 1002, 1}, {1, 300000, 1000}}}},
		{name: "no pid file", wantErr: ErrDaemonNotRunning},
		{name: "stale pid", pid: "4243", uidMap: rootless, gidMap: rootless, wantErr: ErrDaemonNotRunning},
		{name: "garbage pid", pid: "dockerd\n", errText: `"dockerd" is not a pid`},
		{name: "zero pid", pid: "0", errText: `"0" is not a pid`},
		{name: "initial namespace", pid: "4242", uidMap: initial, gidMap: initial, wantErr: ErrNotUserNamespace},
		{name: "map not written yet", pid: "4242", uidMap: []byte{}, gidMap: []byte{}, errText: "empty"},
		{name: "bad gid_map", pid: "4242", uidMap: rootless, gidMap: []byte("0 1\n"), errText: "gid_map: line 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rd, proc := fakeProc(t, tt.pid, tt.uidMap, tt.gidMap)
			m, pid, err := LiveMap(rd, proc)
			if tt.wantErr != nil || tt.errText != "" {
				if err == nil {
					t.Fatalf("no error; map %v", m)
				}
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Errorf("error %v does not wrap %v", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.errText) {
					t.Errorf("error %q does not contain %q", err, tt.errText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if pid != 4242 {
				t.Errorf("pid = %d", pid)
			}
			if !slices.Equal(m.UIDs, tt.want.UIDs) || !slices.Equal(m.GIDs, tt.want.GIDs) {
				t.Errorf("map = %v, want %v", m, tt.want)
			}
		})
	}
}

// TestLiveMapRealProcInitialNamespace points LiveMap at this test's own pid in
// the real /proc: it runs in the initial user namespace, so it is refused.
func TestLiveMapRealProcInitialNamespace(t *testing.T) {
	self, err := ParseIDMapFile("/proc/self/uid_map")
	if err != nil {
		t.Fatal(err)
	}
	if !isInitialMap(self) {
		t.Skip("the test itself runs in a user namespace")
	}
	rd := t.TempDir()
	if err := os.WriteFile(filepath.Join(rd, "docker.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		t.Fatal(err)
	}
	_, pid, err := LiveMap(rd, "/proc")
	if !errors.Is(err, ErrNotUserNamespace) || pid != os.Getpid() {
		t.Errorf("LiveMap = pid %d, %v; want pid %d, ErrNotUserNamespace", pid, err, os.Getpid())
	}
}

func TestDiffMaps(t *testing.T) {
	files := IDMap{
		UIDs: []Range{{0, 1001, 1}, {1, 231072, 65536}},
		GIDs: []Range{{0, 1001, 1}, {1, 231072, 65536}},
	}
	tests := []struct {
		name string
		live IDMap
		want []string // substrings, one per sentence
	}{
		{name: "equal", live: files},
		{name: "same mapping, other spelling", live: IDMap{
			UIDs: []Range{{1, 231072, 100}, {0, 1001, 1}, {101, 231172, 65436}},
			GIDs: files.GIDs,
		}},
		{name: "userns-remap style offset", live: IDMap{
			UIDs: []Range{{0, 1001, 1}, {1, 231073, 65535}},
			GIDs: files.GIDs,
		}, want: []string{"uid range 2 differs: the live map has container 1-65535 → host 231073-296607, the subordinate id files give container 1-65536 → host 231072-296607"}},
		{name: "extra live gid range", live: IDMap{
			UIDs: files.UIDs,
			GIDs: []Range{{0, 1001, 1}, {1, 231072, 65536}, {65537, 400000, 10}},
		}, want: []string{"gid range container 65537-65546 → host 400000-400009 is in the live map but not in the subordinate id files"}},
		{name: "missing live ranges", live: IDMap{UIDs: []Range{{0, 1001, 1}}},
			want: []string{
				"uid range container 1-65536 → host 231072-296607 is in the subordinate id files but not in the live map",
				"gid range container 0 → host 1001 is in the subordinate id files but not in the live map",
				"gid range container 1-65536",
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := DiffMaps(tt.live, files)
			if len(got) != len(tt.want) {
				t.Fatalf("DiffMaps = %q, want %d sentences", got, len(tt.want))
			}
			for i := range got {
				if !strings.Contains(got[i], tt.want[i]) {
					t.Errorf("sentence %d = %q, want it to contain %q", i, got[i], tt.want[i])
				}
				if got[i] != strings.ToLower(got[i][:1])+got[i][1:] {
					t.Errorf("sentence %q is not lowercase", got[i])
				}
			}
		})
	}
}

func TestDiffMapsDoesNotReorderInput(t *testing.T) {
	live := IDMap{UIDs: []Range{{1, 231072, 65536}, {0, 1001, 1}}}
	before := slices.Clone(live.UIDs)
	DiffMaps(live, IDMap{})
	if !slices.Equal(before, live.UIDs) {
		t.Errorf("DiffMaps changed its input: %v", live.UIDs)
	}
}

func TestParseSubIDsLongLine(t *testing.T) {
	in := "b:1:2\n" + strings.Repeat("x", 70000) + "\n"
	if _, err := ParseSubIDs(strings.NewReader(in), "b", 7); err == nil || !strings.HasPrefix(err.Error(), "line 2: ") {
		t.Errorf("error = %v, want one naming line 2", err)
	}
}

func TestUnmappableError(t *testing.T) {
	var err error = &UnmappableError{Kind: "gid", ID: 70000}
	if got := err.Error(); got != "gid 70000 cannot be mapped" {
		t.Errorf("Error() = %q", got)
	}
	h, ok := err.(interface{ Hint() string })
	if !ok || !strings.Contains(h.Hint(), "/etc/subgid") || !strings.Contains(h.Hint(), "gid 70000") {
		t.Errorf("hint missing or not about /etc/subgid")
	}
	if h := (&UnmappableError{Kind: "uid", ID: 1}).Hint(); !strings.Contains(h, "/etc/subuid") {
		t.Errorf("uid hint %q not about /etc/subuid", h)
	}
}
