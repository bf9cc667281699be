package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/unroot/unroot/inventory"
	"github.com/unroot/unroot/migrate"
)

// rollbackOptions are the flags of 'unroot rollback'.
type rollbackOptions struct {
	all            bool
	purge          bool
	quiet          bool
	containers     []string
	stdout, stderr io.Writer
}

func newRollbackCmd(g *globalOptions) *cobra.Command {
	opts := &rollbackOptions{}
	c := &cobra.Command{
		Use:   "rollback --user NAME (--all | CONTAINER...) [--purge]",
		Short: "Put migrated services back on the rootful daemon",
		Long: `(Run as root.) rollback undoes the migration of the named services (or --all): the target
container is stopped and removed, bind mounts and moved volumes get their
original owners back from the journal (moved volumes are renamed back), the
source container's restart policy is restored and the source is started again
if it was running before the migration.

Volumes copied into the target are kept (the source copy was never touched)
unless --purge removes them. Data the service wrote in the rootless daemon
after the cutover is not copied back.`,
		Example: `  unroot rollback --user alice web
  unroot rollback --user alice --all --purge`,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.containers = args
			opts.stdout, opts.stderr = cmd.OutOrStdout(), cmd.ErrOrStderr()
			return runRollback(cmd.Context(), g, opts)
		},
	}
	f := c.Flags()
	f.BoolVar(&opts.all, "all", false, "roll back every service with a migration record")
	f.BoolVar(&opts.purge, "purge", false, "also remove the volumes unroot created in the target")
	f.BoolVar(&opts.quiet, "quiet", false, "print no progress")
	return c
}

func runRollback(ctx context.Context, g *globalOptions, opts *rollbackOptions) error {
	if opts.all == (len(opts.containers) > 0) {
		return usageErr("e.g. 'unroot rollback --user alice web' or 'unroot rollback --user alice --all'", "name containers or pass --all (not both)")
	}
	if err := requireRoot("rollback"); err != nil {
		return err
	}
	u, err := g.requireTargetUser()
	if err != nil {
		return err
	}
	src, err := inventory.Dial(ctx, "source", g.source())
	if err != nil {
		return err
	}
	defer src.Close()
	tgt, err := inventory.Dial(ctx, "target", g.target(u))
	if err != nil {
		return err
	}
	defer tgt.Close()
	m, err := resolveMap(u)
	if err != nil {
		return err
	}
	dir := stateDir(g, u)
	lock, err := migrate.AcquireLock(dir)
	if err != nil {
		return lockError(err)
	}
	defer lock.Release()
	st, err := migrate.LoadState(dir)
	if err != nil {
		return failErr(err, stateHint(err))
	}
	var prog migrate.Progress = &migrate.LogProgress{W: opts.stderr}
	if opts.quiet {
		prog = migrate.NoProgress{}
	}
	names, err := migrate.Rollback(ctx, migrate.RollbackOptions{
		Source: src, Target: tgt, Files: migrate.ChownFiles{}, State: st, Map: m.Map,
		All: opts.all, Containers: opts.containers, Purge: opts.purge, Progress: prog,
	})
	if err != nil {
		return err
	}
	if len(names) == 0 {
		fmt.Fprintln(opts.stdout, "nothing to roll back")
	}
	for _, n := range names {
		fmt.Fprintf(opts.stdout, "%s: rolled back\n", n)
	}
	return nil
}
