package preflight

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func sampleReport() Report {
	cs := []Check{
		{ID: "userns", Title: "unprivileged user namespaces", Status: StatusOK, Found: "unprivileged user namespaces are allowed (user.max_user_namespaces 63408)"},
		{ID: "cgroup", Title: "cgroup v2 and delegation", Status: StatusWarn, Found: "cgroup v1: limits are not enforced", Fix: "loginctl enable-linger alice"},
		{ID: "subuid", Title: "subordinate uids", Status: StatusFail, Found: "/etc/subuid has no entry for alice", Fix: "usermod --add-subuids 131072-196607 alice"},
	}
	return Report{
		User:    User{Name: "alice", UID: 1000, GID: 1000, Home: "/home/alice"},
		Checks:  cs,
		Summary: summarize(cs),
		Facts:   Facts{SubUIDs: []IDRange{{231072, 65536}}, CgroupVersion: 1, UnprivilegedPortStart: 1024, PrivilegedHostPorts: []int{80}},
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join(testdata, name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s:\n%s\nwant:\n%s", p, got, want)
	}
}

func TestReportWriteTextGolden(t *testing.T) {
	var b bytes.Buffer
	if err := sampleReport().WriteText(&b); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.txt.golden", b.Bytes())
}

func TestReportWriteJSONGolden(t *testing.T) {
	var b bytes.Buffer
	if err := sampleReport().WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.json.golden", b.Bytes())
}

// TestReportJSONKeysSnakeCase decodes the JSON generically so a key added
// without a tag shows up.
func TestReportJSONKeysSnakeCase(t *testing.T) {
	var b bytes.Buffer
	if err := sampleReport().WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	snake := regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if !snake.MatchString(k) {
					t.Errorf("key %q is not snake_case", k)
				}
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
}

func TestReportFailedSummary(t *testing.T) {
	r := sampleReport()
	if r.Summary != (Summary{OK: 1, Warn: 1, Fail: 1}) || !r.Failed() {
		t.Fatalf("summary %+v, failed %v", r.Summary, r.Failed())
	}
	r.Checks = r.Checks[:2]
	r.Summary = summarize(r.Checks)
	if r.Failed() {
		t.Fatalf("failed without a failing check: %+v", r.Summary)
	}
}

// TestDocsListEveryCheck keeps docs/check.md in step with the checks.
func TestDocsListEveryCheck(t *testing.T) {
	b, err := os.ReadFile("../docs/check.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range IDs() {
		if !strings.Contains(string(b), "`"+id+"`") {
			t.Errorf("docs/check.md does not describe check `%s`", id)
		}
	}
}

func TestIDsKebabCaseUnique(t *testing.T) {
	kebab := regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
	seen := map[string]bool{}
	for _, id := range IDs() {
		if !kebab.MatchString(id) || seen[id] {
			t.Errorf("id %q is not kebab-case or is repeated", id)
		}
		seen[id] = true
	}
}
