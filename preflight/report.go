package preflight

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Status is the outcome of a [Check].
type Status string

// The statuses of a check. Only [StatusFail] makes a host not ready.
const (
	StatusOK   Status = "ok"
	StatusWarn Status = "warn"
	StatusFail Status = "fail"
)

// symbol is the one-character mark of s in text output.
func (s Status) symbol() string {
	switch s {
	case StatusOK:
		return "✓"
	case StatusWarn:
		return "!"
	default:
		return "✗"
	}
}

// Check is the result of one check.
type Check struct {
	// ID is stable and kebab-case, e.g. "subuid"; docs/check.md lists them.
	ID string `json:"id"`
	// Title says what is checked, for people.
	Title  string `json:"title"`
	Status Status `json:"status"`
	// Found is a short lowercase sentence saying what was found.
	Found string `json:"found"`
	// Fix is the exact shell command that fixes a warn or fail; empty when
	// the status is ok.
	Fix string `json:"fix"`
}

// User is the rootless target user the checks are about.
type User struct {
	Name string `json:"name"`
	UID  int    `json:"uid"`
	GID  int    `json:"gid"`
	Home string `json:"home"`
}

// Summary counts the checks by status.
type Summary struct {
	OK   int `json:"ok"`
	Warn int `json:"warn"`
	Fail int `json:"fail"`
}

// IDRange is a subordinate id range of the user.
type IDRange struct {
	Start uint32 `json:"start"`
	Count uint32 `json:"count"`
}

// Facts are the values the checks found that a caller (a migration plan, a
// runbook) may build on. A field is zero when it could not be determined.
type Facts struct {
	// SubUIDs and SubGIDs are the user's ranges in file order (by name or
	// by uid).
	SubUIDs []IDRange `json:"subuids"`
	SubGIDs []IDRange `json:"subgids"`
	// CgroupVersion is 1 or 2.
	CgroupVersion int `json:"cgroup_version"`
	// DelegatedControllers are the cgroup v2 controllers delegated to the
	// user's systemd instance.
	DelegatedControllers []string `json:"delegated_controllers"`
	// UnprivilegedPortStart is net.ipv4.ip_unprivileged_port_start; -1 when
	// unknown.
	UnprivilegedPortStart int `json:"unprivileged_port_start"`
	// PrivilegedHostPorts are host ports published on the source daemon
	// below UnprivilegedPortStart: they need rewriting or a lower start.
	PrivilegedHostPorts []int `json:"privileged_host_ports"`
	// TargetStorageDriver and TargetCgroupDriver are from the rootless
	// daemon's info.
	TargetStorageDriver string `json:"target_storage_driver"`
	TargetCgroupDriver  string `json:"target_cgroup_driver"`
}

// Report is the result of [Run].
type Report struct {
	User    User    `json:"user"`
	Checks  []Check `json:"checks"`
	Summary Summary `json:"summary"`
	Facts   Facts   `json:"facts"`
}

// Failed reports whether any check failed.
func (r Report) Failed() bool { return r.Summary.Fail > 0 }

// Check returns the check with id, if the report has it.
func (r Report) Check(id string) (Check, bool) {
	for _, c := range r.Checks {
		if c.ID == id {
			return c, true
		}
	}
	return Check{}, false
}

func summarize(cs []Check) Summary {
	var s Summary
	for _, c := range cs {
		switch c.Status {
		case StatusOK:
			s.OK++
		case StatusWarn:
			s.Warn++
		default:
			s.Fail++
		}
	}
	return s
}

// WriteJSON writes r as indented JSON with snake_case keys; docs/check.md
// describes the schema.
func (r Report) WriteJSON(w io.Writer) error {
	// Empty lists are [] rather than null, so consumers need not tell the
	// two apart.
	f := &r.Facts
	for _, p := range []*[]IDRange{&f.SubUIDs, &f.SubGIDs} {
		if *p == nil {
			*p = []IDRange{}
		}
	}
	if f.DelegatedControllers == nil {
		f.DelegatedControllers = []string{}
	}
	if f.PrivilegedHostPorts == nil {
		f.PrivilegedHostPorts = []int{}
	}
	if r.Checks == nil {
		r.Checks = []Check{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes r for people: one aligned row per check with a status
// mark, its id and what was found, the fix indented below it, and a summary
// line.
func (r Report) WriteText(w io.Writer) error {
	if _, err := fmt.Fprintf(w, "checks for user %s (uid %d)\n\n", r.User.Name, r.User.UID); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range r.Checks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Status.symbol(), c.ID, c.Status, c.Found)
		if c.Fix != "" {
			// A fix can be several lines; keep each one indented under the
			// check and out of the table's columns.
			for _, l := range strings.Split(c.Fix, "\n") {
				fmt.Fprintf(tw, "\t\t\t  fix: %s\n", l)
			}
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	verdict := "ready: nothing fails"
	if r.Failed() {
		verdict = "not ready: fix the failing checks first"
	}
	_, err := fmt.Fprintf(w, "\n%d ok, %d warn, %d fail; %s\n", r.Summary.OK, r.Summary.Warn, r.Summary.Fail, verdict)
	return err
}
