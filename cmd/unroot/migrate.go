package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/spf13/cobra"
	"github.com/unroot/unroot/chown"
	"github.com/unroot/unroot/inventory"
	"github.com/unroot/unroot/migrate"
	"github.com/unroot/unroot/preflight"
)

// migrateOptions are the flags of 'unroot migrate'.
type migrateOptions struct {
	all            bool
	project        string
	containers     []string
	dryRun         bool
	format         string
	proxy          string
	portMaps       []string
	volumes        string
	mapUnmappable  bool
	skipDevices    bool
	noCommit       bool
	yes            bool
	quiet          bool
	settle         time.Duration
	stdout, stderr io.Writer
	stdin          io.Reader
}

func newMigrateCmd(g *globalOptions) *cobra.Command {
	opts := &migrateOptions{}
	c := &cobra.Command{
		Use:   "migrate --user NAME (--all | --project P | CONTAINER...) [--dry-run]",
		Short: "Plan or execute the move of containers to the rootless daemon",
		Long: `migrate moves containers, their images, volumes, bind mounts and networks
from the rootful daemon to the rootless daemon of --user, one service at a
time, in dependency order.

With --dry-run it only prints the plan: images to transfer, networks to
create, each volume and bind mount with the owner changes the id map implies,
ports that will be rewritten, and every incompatibility with a code and a hint.
A dry run changes nothing: no file, no xattr, no object in either daemon. The
real run executes exactly the plan the dry run prints, and refuses to start
while it has blockers.

Host ports below net.ipv4.ip_unprivileged_port_start (usually 1024) become
port+8000 (80 → 8080, 443 → 8443) unless --port-map says otherwise.

Run it as root: it reads the rootful daemon's volumes and changes file
ownership. --user must be an unprivileged user, never root.

Exit status: 0 when the plan can be applied (or was), 1 when it has blockers
or the migration failed, 2 on usage errors.`,
		Example: `  unroot migrate --user alice --all --dry-run
  unroot migrate --user alice --project shop --dry-run --format markdown > runbook.md
  unroot migrate --user alice web --port-map 80:8081 --yes`,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.containers = args
			opts.stdout, opts.stderr, opts.stdin = cmd.OutOrStdout(), cmd.ErrOrStderr(), cmd.InOrStdin()
			return runMigrate(cmd.Context(), g, opts)
		},
	}
	f := c.Flags()
	f.BoolVar(&opts.all, "all", false, "migrate every container of the source daemon")
	f.StringVar(&opts.project, "project", "", "migrate every service of compose project `P`")
	f.BoolVar(&opts.dryRun, "dry-run", false, "print the plan and change nothing")
	f.StringVar(&opts.proxy, "proxy", "nginx", "reverse proxy for the runbook's snippet: nginx|caddy|haproxy")
	f.StringArrayVar(&opts.portMaps, "port-map", nil, "rewrite host port `OLD:NEW` (repeatable); overrides the +8000 default")
	f.StringVar(&opts.volumes, "volumes", migrate.VolumesCopy, "copy (source kept) or move (same filesystem only, journaled)")
	f.BoolVar(&opts.mapUnmappable, "map-unmappable-to-overflow", false, "write ids the user's range cannot map as 65534 instead of refusing")
	f.BoolVar(&opts.skipDevices, "skip-devices", false, "leave device nodes in volumes and binds out instead of refusing")
	f.BoolVar(&opts.noCommit, "no-commit", false, "do not keep writable-layer changes (no commit of the stopped container)")
	f.BoolVar(&opts.yes, "yes", false, "do not ask for confirmation (required without a terminal)")
	f.BoolVar(&opts.quiet, "quiet", false, "print no progress")
	f.DurationVar(&opts.settle, "settle", 3*time.Second, "health gate for services without a healthcheck: running this long and ports answering")
	addFormatFlag(c, &opts.format, "text", "json", "markdown")
	return c
}

func runMigrate(ctx context.Context, g *globalOptions, opts *migrateOptions) error {
	if !slices.Contains(migrate.Proxies, opts.proxy) {
		return usageErr("use one of: nginx, caddy, haproxy", "unknown --proxy %q", opts.proxy)
	}
	if opts.volumes != migrate.VolumesCopy && opts.volumes != migrate.VolumesMove {
		return usageErr("use --volumes copy or --volumes move", "unknown --volumes %q", opts.volumes)
	}
	n := len(opts.containers)
	if opts.all {
		n++
	}
	if opts.project != "" {
		n++
	}
	if n == 0 || (opts.all && opts.project != "") || ((opts.all || opts.project != "") && len(opts.containers) > 0) {
		return usageErr("e.g. 'unroot migrate --user alice --all --dry-run'", "select exactly one of --all, --project P or container names")
	}
	if err := requireRoot("migrate"); err != nil {
		return err
	}
	u, err := g.requireTargetUser()
	if err != nil {
		return err
	}
	portStart, err := migrate.ReadUnprivilegedPortStart("/proc")
	if err != nil {
		return err
	}
	pm, err := migrate.ParsePortMap(opts.portMaps, portStart)
	if err != nil {
		return &exitError{code: exitUsage, err: err, hint: (&migrate.PortMapError{}).Hint()}
	}
	plan, env, err := buildPlan(ctx, g, u, opts, pm, portStart)
	if err != nil {
		return err
	}
	defer env.close()
	if opts.dryRun {
		if err := writePlan(opts.stdout, plan, opts); err != nil {
			return err
		}
		if !plan.Summary.Applicable {
			return silentExit(exitFailed)
		}
		return nil
	}
	return runApply(ctx, g, u, opts, plan, env)
}

// planEnv holds what building the plan opened and apply reuses.
type planEnv struct {
	source, target interface{ Close() error }
	sourceAPI      inventory.API
	targetAPI      inventory.API
	idmap          resolvedMap
}

func (e *planEnv) close() {
	if e.source != nil {
		e.source.Close()
	}
	if e.target != nil {
		e.target.Close()
	}
}

// buildPlan connects to both daemons, resolves the id map and computes the
// plan. Apply and the dry run both start here.
func buildPlan(ctx context.Context, g *globalOptions, u targetUser, opts *migrateOptions, pm migrate.PortMap, portStart int) (*migrate.Plan, *planEnv, error) {
	env := &planEnv{}
	srcHost, tgtHost := g.source(), g.target(u)
	src, err := inventory.Dial(ctx, "source", srcHost)
	if err != nil {
		return nil, nil, err
	}
	env.source, env.sourceAPI = src, src
	tgt, err := inventory.Dial(ctx, "target", tgtHost)
	if err != nil {
		env.close()
		return nil, nil, err
	}
	env.target, env.targetAPI = tgt, tgt
	if env.idmap, err = resolveMap(u); err != nil {
		env.close()
		return nil, nil, err
	}
	listeners, err := migrate.HostListeners("/proc")
	if err != nil {
		env.close()
		return nil, nil, fmt.Errorf("read listening sockets: %w", err)
	}
	st, err := openState(g, u)
	if err != nil {
		env.close()
		return nil, nil, err
	}
	// The checklist goes into the plan: a failed check is a blocker there.
	rep := preflight.Run(ctx, preflight.Options{
		User:       preflight.User{Name: u.Name, UID: u.UID, GID: u.GID, Home: u.Home},
		SourceHost: srcHost, TargetHost: tgtHost,
		DialSource: func(ctx context.Context) (preflight.SourceClient, error) {
			return inventory.Dial(ctx, "source", srcHost)
		},
		DialTarget: func(ctx context.Context) (preflight.InfoClient, error) { return inventory.Dial(ctx, "target", tgtHost) },
	})
	var prereqs []migrate.Prerequisite
	for _, c := range rep.Checks {
		prereqs = append(prereqs, migrate.Prerequisite{ID: c.ID, Status: string(c.Status), Found: c.Found, Fix: c.Fix})
	}
	auditOpts := chown.Options{Map: env.idmap.Map, MapUnmappableToOverflow: opts.mapUnmappable, AllowDevices: opts.skipDevices}
	plan, err := migrate.Build(ctx, migrate.Options{
		Source: env.sourceAPI, Target: env.targetAPI,
		SourceHost: srcHost, TargetHost: tgtHost,
		User: migrate.User{Name: u.Name, UID: u.UID, GID: u.GID, Home: u.Home},
		Map:  env.idmap.Map, MapSource: env.idmap.Source, MapDiffs: env.idmap.Diffs,
		All: opts.all, Project: opts.project, Containers: opts.containers,
		PortMap: pm, UnprivilegedPortStart: portStart, Listeners: listeners,
		Volumes: opts.volumes, MapUnmappableToOverflow: opts.mapUnmappable, SkipDevices: opts.skipDevices,
		NoCommit:     opts.noCommit,
		TargetSocket: u.runtimeDir() + "/docker.sock",
		Audit: func(ctx context.Context, root string) (*chown.Report, error) {
			return chown.Audit(ctx, root, auditOpts)
		},
		Migrated:      st.migrated,
		Owned:         st.owned,
		ShiftedBind:   st.st.BindShifted,
		MovedVolume:   st.st.VolumeMoveStarted,
		ComposeHash:   composeHasher(srcHost),
		Prerequisites: prereqs,
	})
	if err != nil {
		env.close()
		return nil, nil, err
	}
	return plan, env, nil
}

func writePlan(w io.Writer, plan *migrate.Plan, opts *migrateOptions) error {
	switch opts.format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(plan)
	case "markdown":
		if err := migrate.WriteMarkdown(w, plan, migrate.MarkdownOptions{Proxy: opts.proxy}); err != nil {
			return err
		}
		return migrate.WriteComposeText(w, plan, true)
	default:
		if err := migrate.WriteText(w, plan); err != nil {
			return err
		}
		return migrate.WriteComposeText(w, plan, false)
	}
}
