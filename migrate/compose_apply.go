package migrate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// ComposeStateFile is the file under the state directory that records the
// rootless compose files apply wrote, for 'unroot status'.
const ComposeStateFile = "compose.json"

// ComposeRecord says which rootless compose files were written for a
// project and how to use them.
type ComposeRecord struct {
	Project  string    `json:"project"`
	Files    []string  `json:"files"`
	Command  string    `json:"command"`
	Recreate []string  `json:"recreate_on_up,omitempty"`
	Written  time.Time `json:"written"`
}

// ErrComposeFileExists is returned when a rootless compose file's path is
// taken by a file unroot did not write.
var ErrComposeFileExists = errors.New("exists and was not written by unroot")

// WriteComposeFiles writes the rootless compose files of the plan's
// projects, each next to its original with the original's owner and mode,
// and records them in stateDir. migrated reports whether a container's
// cutover is done; a project is written only when all its planned
// containers are. It never touches the originals nor a file it did not
// write, and it is a no-op for a plan without compose files.
func WriteComposeFiles(plan *Plan, stateDir string, migrated func(container string) bool) ([]ComposeRecord, error) {
	var out []ComposeRecord
	for _, cp := range plan.Compose {
		if len(cp.Files) == 0 || !projectMigrated(plan, cp, migrated) {
			continue
		}
		rec := ComposeRecord{Project: cp.Project, Command: cp.Command, Recreate: cp.Recreate, Written: time.Now().UTC()}
		for _, f := range cp.Files {
			if err := writeComposeFile(f); err != nil {
				return out, err
			}
			rec.Files = append(rec.Files, f.Rootless)
		}
		out = append(out, rec)
	}
	if len(out) == 0 {
		return nil, nil
	}
	recs, err := LoadComposeRecords(stateDir)
	if err != nil {
		return out, err
	}
	for _, r := range out {
		recs = slices.DeleteFunc(recs, func(o ComposeRecord) bool { return o.Project == r.Project })
		recs = append(recs, r)
	}
	slices.SortFunc(recs, func(a, b ComposeRecord) int { return strings.Compare(a.Project, b.Project) })
	b, err := json.MarshalIndent(recs, "", "  ")
	if err != nil {
		return out, err
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return out, fmt.Errorf("record compose files: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(stateDir, ComposeStateFile), append(b, '\n'), 0o600, -1, -1); err != nil {
		return out, fmt.Errorf("record compose files: %w", err)
	}
	return out, nil
}

// projectMigrated reports whether every planned container of the project
// is migrated.
func projectMigrated(plan *Plan, cp ComposePlan, migrated func(string) bool) bool {
	for _, s := range plan.Services {
		if s.Project == cp.Project && !s.AlreadyMigrated && (migrated == nil || !migrated(s.Container)) {
			return false
		}
	}
	return true
}

// writeComposeFile writes one rootless file, refusing a path that holds a
// file unroot did not write.
func writeComposeFile(f ComposeFile) error {
	if f.Rootless == f.Original {
		return fmt.Errorf("%s: %w", f.Rootless, ErrComposeFileExists)
	}
	if old, err := os.ReadFile(f.Rootless); err == nil {
		if !bytes.Contains(firstLine(old), []byte(composeHeaderMark)) {
			return fmt.Errorf("%s: %w", f.Rootless, ErrComposeFileExists)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("write %s: %w", f.Rootless, err)
	}
	mode, uid, gid := os.FileMode(0o644), -1, -1
	if st, err := os.Stat(f.Original); err == nil {
		mode = st.Mode().Perm()
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			uid, gid = int(sys.Uid), int(sys.Gid)
		}
	}
	if err := writeFileAtomic(f.Rootless, f.content, mode, uid, gid); err != nil {
		return err
	}
	return nil
}

// LoadComposeRecords reads the compose records under stateDir; none is
// not an error.
func LoadComposeRecords(stateDir string) ([]ComposeRecord, error) {
	b, err := os.ReadFile(filepath.Join(stateDir, ComposeStateFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var recs []ComposeRecord
	if err := json.Unmarshal(b, &recs); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(stateDir, ComposeStateFile), err)
	}
	return recs, nil
}
