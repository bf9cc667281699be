package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/unroot/unroot/migrate"
)

// The compose loader (compose-go) logs warnings through logrus's global
// logger, e.g. that a file's "version" is obsolete; they are about compose
// files unroot only reads and would mix with unroot's own output. What
// matters reaches the plan as findings.
func init() { logrus.SetOutput(io.Discard) }

// writeComposeFiles writes the rootless compose files of the projects the
// run migrated completely and says where they are: on stdout after the
// text result, on stderr with --format json (stdout holds only JSON).
func writeComposeFiles(opts *migrateOptions, plan *migrate.Plan, dir string, st *migrate.State) error {
	recs, err := migrate.WriteComposeFiles(plan, dir, func(name string) bool {
		s := st.Service(name)
		return s != nil && s.Phase == migrate.PhaseDone
	})
	w := opts.stdout
	if opts.format == "json" {
		w = opts.stderr
	}
	printComposeRecords(w, recs)
	if err != nil {
		return failErr(err, "the containers are migrated; move the file aside and run the same command again to write the compose file")
	}
	return nil
}

// printComposeRecords says where each project's rootless compose file is
// and how to use it.
func printComposeRecords(w io.Writer, recs []migrate.ComposeRecord) {
	for _, r := range recs {
		fmt.Fprintf(w, "\ncompose project %s: rootless compose file %s\n", r.Project, strings.Join(r.Files, ", "))
		fmt.Fprintf(w, "  use: %s\n", r.Command)
		if len(r.Recreate) > 0 {
			fmt.Fprintf(w, "  its first 'up -d' recreates %s (their config changed; named volumes keep their data)\n", strings.Join(r.Recreate, ", "))
		}
	}
}

// composeHashTimeout bounds one 'compose config --hash' run.
const composeHashTimeout = time.Minute

// composeHasher asks the compose that created a project (docker-compose for
// 1.x, 'docker compose' otherwise) for its services' config hashes, with
// the files copied to a temporary directory and the project directory
// given explicitly, so the rewritten files are hashed before they exist.
// Compose v1 reads the image IDs from the daemon: it is pointed at the
// source, whose images the target receives with the same IDs.
func composeHasher(sourceHost string) func(context.Context, migrate.ComposeHashRequest) (map[string]string, error) {
	return func(ctx context.Context, req migrate.ComposeHashRequest) (map[string]string, error) {
		var argv []string
		if strings.HasPrefix(req.Version, "1.") {
			bin, err := exec.LookPath("docker-compose")
			if err != nil {
				return nil, err
			}
			argv = []string{bin}
		} else {
			bin, err := exec.LookPath("docker")
			if err != nil {
				return nil, err
			}
			argv = []string{bin, "compose"}
		}
		what := strings.Join(argv, " ") + " config --hash"
		dir, err := os.MkdirTemp("", "unroot-compose-hash-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		for i, content := range req.Files {
			name := fmt.Sprintf("%d-compose.yaml", i)
			if i < len(req.Names) {
				name = fmt.Sprintf("%d-%s", i, filepath.Base(req.Names[i]))
			}
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, content, 0o600); err != nil {
				return nil, err
			}
			argv = append(argv, "-f", p)
		}
		argv = append(argv, "--project-directory", req.WorkingDir, "-p", req.Project, "config", "--hash=*")
		ctx, cancel := context.WithTimeout(ctx, composeHashTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Dir = req.WorkingDir
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+sourceHost)
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		hashes := map[string]string{}
		for line := range strings.SplitSeq(string(out), "\n") {
			if f := strings.Fields(line); len(f) == 2 {
				hashes[f[0]] = f[1]
			}
		}
		return hashes, nil
	}
}
