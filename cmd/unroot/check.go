package main

import (
	"context"
	"io"

	"github.com/spf13/cobra"
	"github.com/unroot/unroot/inventory"
	"github.com/unroot/unroot/preflight"
)

// checkOptions are the flags of 'unroot check'.
type checkOptions struct {
	format string
	out    io.Writer
}

func newCheckCmd(g *globalOptions) *cobra.Command {
	opts := &checkOptions{}
	c := &cobra.Command{
		Use:   "check --user NAME",
		Short: "Check that the host and the user are ready for rootless Docker",
		Long: `check runs the pre-production checklist for the rootless target user:
user namespaces, subordinate id ranges, newuidmap/newgidmap, rootlesskit and
its network driver, /dev/net/tun, cgroup delegation, linger, the runtime
directory, the rootless and the rootful daemons, resource limits and
unprivileged ports. Each check says what it found and the command that fixes
it. It changes nothing.

Exit status: 0 when no check fails (warnings allowed), 1 when one fails.`,
		Example: `  unroot check --user alice
  unroot check --user alice --format json | jq '.checks[] | select(.status != "ok")'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.out = cmd.OutOrStdout()
			return runCheck(cmd.Context(), g, opts)
		},
	}
	addFormatFlag(c, &opts.format, "text", "json")
	return c
}

func runCheck(ctx context.Context, g *globalOptions, opts *checkOptions) error {
	u, err := g.requireUser()
	if err != nil {
		return err
	}
	source, target := g.source(), g.target(u)
	rep := preflight.Run(ctx, preflight.Options{
		User:       preflight.User{Name: u.Name, UID: u.UID, GID: u.GID, Home: u.Home},
		SourceHost: source,
		TargetHost: target,
		DialSource: func(ctx context.Context) (preflight.SourceClient, error) {
			return inventory.Dial(ctx, "source", source)
		},
		DialTarget: func(ctx context.Context) (preflight.InfoClient, error) {
			return inventory.Dial(ctx, "target", target)
		},
	})
	if err := ctx.Err(); err != nil {
		return err
	}
	if opts.format == "json" {
		err = rep.WriteJSON(opts.out)
	} else {
		err = rep.WriteText(opts.out)
	}
	if err != nil {
		return err
	}
	if rep.Failed() {
		return silentExit(exitFailed)
	}
	return nil
}
