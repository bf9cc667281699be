package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/unroot/unroot/migrate"
)

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
