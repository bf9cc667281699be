package main

import (
	"context"
	"errors"
	"path/filepath"

	"github.com/unroot/unroot/migrate"
)

// planState is the part of the state file the plan consults.
type planState struct{ st *migrate.State }

// openState reads the user's state file under --state-dir without creating
// anything (a dry run changes nothing).
func openState(g *globalOptions, u targetUser) (*planState, error) {
	st, err := migrate.LoadState(stateDir(g, u))
	if err != nil {
		return nil, failErr(err, "move the damaged file aside and run 'unroot status' to see what the daemons say")
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

// runApply executes the plan. The apply engine is being wired in; until then
// a real run refuses with a clear message so no half-migration can start.
func runApply(ctx context.Context, g *globalOptions, u targetUser, opts *migrateOptions, plan *migrate.Plan, env *planEnv) error {
	return failErr(errors.New("applying a plan is not available in this build"), "run with --dry-run to see the plan")
}
