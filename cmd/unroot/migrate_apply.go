package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/unroot/unroot/migrate"
)

// planState is the part of the state file the plan consults.
type planState struct{ st *migrate.State }

// openState reads the user's state file under --state-dir without creating
// anything (a dry run changes nothing).
func openState(g *globalOptions, u targetUser) (*planState, error) {
	st, err := migrate.LoadState(stateDir(g, u))
	if err != nil {
		return nil, failErr(err, stateHint(err))
	}
	return &planState{st: st}, nil
}

// stateDir is where the user's migration state and journals live.
func stateDir(g *globalOptions, u targetUser) string { return filepath.Join(g.stateDir, u.Name) }

// migrated reports whether the state says container name's cutover is done.
func (p *planState) migrated(name string) bool {
	s := p.st.Service(name)
	return s != nil && s.Phase == migrate.PhaseDone
}

// owned reports whether a target container called name is unroot's.
func (p *planState) owned(name string) bool { return p.st.Owned(name) }

// runApply executes the plan Build returned: it refuses while the plan has
// blockers, asks on a terminal (or needs --yes without one), takes the state
// lock and runs the cutover of each service.
func runApply(ctx context.Context, g *globalOptions, u targetUser, opts *migrateOptions, plan *migrate.Plan, env *planEnv) error {
	if bl := plan.Blockers(); len(bl) > 0 {
		fmt.Fprintf(opts.stderr, "unroot: the plan has %d blockers; nothing was changed:\n", len(bl))
		for _, f := range bl {
			who := f.Container
			if who == "" {
				who = f.Subject
			}
			fmt.Fprintf(opts.stderr, "  [%s] %s: %s\n", f.Code, who, f.Message)
			if f.Hint != "" {
				fmt.Fprintf(opts.stderr, "    hint: %s\n", f.Hint)
			}
		}
		fmt.Fprintln(opts.stderr, "hint: 'unroot migrate --dry-run' with the same arguments shows the whole plan")
		return silentExit(exitFailed)
	}
	interactive := isTerminal(opts.stdin)
	todo := 0
	for _, s := range plan.Services {
		if !s.AlreadyMigrated {
			todo++
		}
	}
	if todo > 0 && !opts.yes {
		if !interactive {
			return usageErr("review it with --dry-run, then run again with --yes", "refusing to migrate without confirmation: stdin is not a terminal")
		}
		if err := migrate.WriteText(opts.stderr, plan); err != nil {
			return err
		}
		fmt.Fprintf(opts.stderr, "\nmigrate %d services to the rootless daemon of %s? [y/N] ", todo, u.Name)
		line, _ := bufio.NewReader(opts.stdin).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
			fmt.Fprintln(opts.stderr, "unroot: nothing changed")
			return silentExit(exitFailed)
		}
	}
	src, ok1 := env.source.(migrate.SourceAPI)
	tgt, ok2 := env.target.(migrate.TargetAPI)
	if !ok1 || !ok2 {
		return errors.New("internal: daemon clients lack the apply API")
	}
	dir := stateDir(g, u)
	lock, err := migrate.AcquireLock(dir)
	if err != nil {
		return lockError(err)
	}
	defer lock.Release()
	// Re-read under the lock: another run may have finished in between.
	st, err := migrate.LoadState(dir)
	if err != nil {
		return failErr(err, stateHint(err))
	}
	prog, closeProg := newProgress(opts)
	res, err := migrate.Apply(ctx, plan, migrate.ApplyOptions{
		Source: src, Target: tgt, Files: migrate.ChownFiles{}, State: st,
		Map: env.idmap.Map, MapUnmappableToOverflow: opts.mapUnmappable, SkipDevices: opts.skipDevices,
		NoCommit: opts.noCommit, Settle: opts.settle,
		TargetSocket: u.runtimeDir() + "/docker.sock",
		Limits:       plan.Target.CgroupVersion == "2" && plan.Target.CgroupDriver != "none",
		Progress:     prog,
	})
	closeProg()
	if res != nil {
		if werr := writeApplyResult(opts, res); werr != nil && err == nil {
			err = werr
		}
	}
	if err == nil {
		err = writeComposeFiles(opts, plan, dir, st)
	}
	return err
}

// newProgress picks bars on a terminal, plain lines elsewhere, nothing with
// --quiet.
func newProgress(opts *migrateOptions) (migrate.Progress, func()) {
	switch {
	case opts.quiet:
		return migrate.NoProgress{}, func() {}
	case hasWidth(opts.stderr):
		b := migrate.NewBarProgress(opts.stderr)
		return b, b.Close
	default:
		return &migrate.LogProgress{W: opts.stderr}, func() {}
	}
}

// writeApplyResult prints one line per service (or the JSON result).
func writeApplyResult(opts *migrateOptions, res *migrate.Result) error {
	if opts.format == "json" {
		enc := json.NewEncoder(opts.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	tw := tabwriter.NewWriter(opts.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "CONTAINER\tOUTCOME\tDOWNTIME\tPORTS\n")
	for _, s := range res.Services {
		down := "-"
		if s.Outcome == migrate.OutcomeMigrated || s.Outcome == migrate.OutcomeAlreadyMigrated {
			down = s.Downtime.Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Container, s.Outcome, down, portChanges(s.Ports))
	}
	return tw.Flush()
}

// portChanges formats published ports as "127.0.0.1:80→8080/tcp".
func portChanges(ps []migrate.PortPlan) string {
	var parts []string
	for _, p := range ps {
		host := p.OldHostPort
		if host == "" {
			host = "(any)"
		}
		if p.HostIP != "" {
			host = p.HostIP + ":" + host
		}
		if p.NewHostPort != p.OldHostPort {
			host += "→" + p.NewHostPort
		}
		parts = append(parts, host+"/"+p.Proto)
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ",")
}

// hasWidth reports whether v is a terminal with a known width, which bars
// need (a pty without a size, e.g. under script(1), draws nothing).
func hasWidth(v any) bool {
	f, ok := v.(*os.File)
	if !ok || !isTerminal(f) {
		return false
	}
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	return err == nil && ws.Col > 0
}

// isTerminal reports whether v is an *os.File on a terminal.
func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
