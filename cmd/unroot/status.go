package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/unroot/unroot/migrate"
)

// statusOptions are the flags of 'unroot status'.
type statusOptions struct {
	format         string
	stdout, stderr io.Writer
}

func newStatusCmd(g *globalOptions) *cobra.Command {
	opts := &statusOptions{}
	c := &cobra.Command{
		Use:   "status --user NAME [--format text|json]",
		Short: "Show how far each service's migration got",
		Long: `status reads the migration state of --user (under --state-dir) and shows,
per service, its phase (planned, image-transferred, presynced, source-stopped,
synced, creating, target-started, done, rolled-back, failed), its published
ports before and after, and the downtime of its cutover. It changes nothing
and talks to no daemon.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.stdout, opts.stderr = cmd.OutOrStdout(), cmd.ErrOrStderr()
			return runStatus(cmd.Context(), g, opts)
		},
	}
	addFormatFlag(c, &opts.format, "text", "json")
	return c
}

// statusJSON is what 'status --format json' prints: the state file's fields
// and, under "compose", the rootless compose files migrate wrote.
type statusJSON struct {
	*migrate.State
	Compose []migrate.ComposeRecord `json:"compose,omitempty"`
}

func runStatus(_ context.Context, g *globalOptions, opts *statusOptions) error {
	u, err := g.requireUser()
	if err != nil {
		return err
	}
	st, err := migrate.LoadState(stateDir(g, u))
	if err != nil {
		return failErr(err, stateHint(err))
	}
	recs, err := migrate.LoadComposeRecords(stateDir(g, u))
	if err != nil {
		return failErr(err, "move the damaged file aside")
	}
	if opts.format == "json" {
		enc := json.NewEncoder(opts.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(statusJSON{State: st, Compose: recs})
	}
	if len(st.Services) == 0 {
		fmt.Fprintf(opts.stdout, "no migration recorded for %s\n", u.Name)
		return nil
	}
	names := make([]string, 0, len(st.Services))
	for n := range st.Services {
		names = append(names, n)
	}
	slices.Sort(names)
	tw := tabwriter.NewWriter(opts.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "CONTAINER\tPHASE\tPORTS\tDOWNTIME\tNOTE\n")
	for _, n := range names {
		s := st.Services[n]
		down := "-"
		if s.DowntimeMS > 0 {
			down = s.Downtime().Round(time.Millisecond).String()
		}
		note := s.Error
		if note == "" && s.CommittedImage != "" {
			note = "writable layer kept as " + s.CommittedImage
		}
		if len(note) > 80 {
			note = note[:77] + "..."
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", n, s.Phase, portChanges(s.Ports), down, strings.ReplaceAll(note, "\n", " "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	printComposeRecords(opts.stdout, recs)
	return nil
}
