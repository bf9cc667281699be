package main

import (
	"context"
	"io"

	"github.com/spf13/cobra"
	"github.com/unroot/unroot/inventory"
)

// inventoryOptions are the flags and arguments of 'unroot inventory'.
type inventoryOptions struct {
	all        bool
	diff       bool
	format     string
	containers []string
	out        io.Writer
}

func newInventoryCmd(g *globalOptions) *cobra.Command {
	opts := &inventoryOptions{}
	c := &cobra.Command{
		Use:   "inventory [--all] [--diff] [--format text|json] [CONTAINER...]",
		Short: "List what the rootful daemon runs: containers, images, volumes, binds, networks, projects",
		Long: `inventory reads the source (rootful) daemon and lists the containers with
their full configuration, and the images, named volumes, bind mounts,
networks and compose projects they use. It changes nothing.

Without CONTAINER arguments it lists the running containers (all of them
with --all) and every volume and network of the daemon. With arguments it
lists those containers, running or not, and only what they use.

--diff also lists each container's writable-layer changes; it can be slow.
--format json prints the inventory the migration planner works from.`,
		Example: `  unroot inventory
  unroot inventory --all --format json > inventory.json
  unroot inventory --diff nextcloud nextcloud-db`,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.containers = args
			opts.out = cmd.OutOrStdout()
			return runInventory(cmd.Context(), g, opts)
		},
	}
	f := c.Flags()
	f.BoolVarP(&opts.all, "all", "a", false, "include stopped containers")
	f.BoolVar(&opts.diff, "diff", false, "also list each container's writable-layer changes (slow)")
	addFormatFlag(c, &opts.format, "text", "json")
	return c
}

func runInventory(ctx context.Context, g *globalOptions, opts *inventoryOptions) error {
	api, err := inventory.Dial(ctx, "source", g.source())
	if err != nil {
		return err
	}
	defer api.Close()
	inv, err := inventory.Read(ctx, api, inventory.Options{
		Containers: opts.containers,
		All:        opts.all,
		Diff:       opts.diff,
	})
	if err != nil {
		return err
	}
	if opts.format == "json" {
		return inv.WriteJSON(opts.out)
	}
	return inv.WriteText(opts.out)
}
