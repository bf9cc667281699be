// Command unroot moves a host's Docker workloads from the rootful daemon to a
// rootless Docker daemon run by an unprivileged user.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/unroot/unroot/migrate"
)

// Exit codes, the one place they are decided.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(pluginSocketContext(ctx), pluginArgs(os.Args[0], os.Args[1:]), os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the CLI with args and returns the process exit code. It is the
// single place where errors become exit codes and messages.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd(stdout, stderr)
	addPluginMetadataCmd(root, args)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	return reportError(stderr, err)
}

// reportError prints err for a person and returns the exit code it maps to.
func reportError(stderr io.Writer, err error) int {
	var ex *exitError
	if errors.As(err, &ex) && ex.silent {
		return ex.code
	}
	fmt.Fprintf(stderr, "unroot: %v\n", err)
	var h interface{ Hint() string }
	if errors.As(err, &h) && h.Hint() != "" {
		fmt.Fprintf(stderr, "hint: %s\n", h.Hint())
	}
	if errors.Is(err, context.Canceled) {
		var ce *migrate.CutoverError
		if errors.As(err, &ce) && ce.RolledBack {
			fmt.Fprintln(stderr, "hint: interrupted; the unit was rolled back and its source runs as before: run the same command again to migrate it")
		} else {
			fmt.Fprintln(stderr, "hint: interrupted; run the same command again to resume where it stopped")
		}
	}
	switch {
	case errors.As(err, &ex):
		return ex.code
	case isUsageError(err):
		return exitUsage
	default:
		return exitFailed
	}
}

// exitError carries an exit code and an optional hint through cobra.
type exitError struct {
	code   int
	err    error
	hint   string
	silent bool // the verb has already told the user; print nothing more
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }
func (e *exitError) Hint() string  { return e.hint }

// usageErr returns an error that exits with the usage code.
func usageErr(hint, format string, a ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, a...), hint: hint}
}

// failErr returns an error that exits 1 with a hint.
func failErr(err error, hint string) error {
	return &exitError{code: exitFailed, err: err, hint: hint}
}

// silentExit makes the process exit with code without printing anything more.
func silentExit(code int) error { return &exitError{code: code, silent: true} }

// flagError marks cobra's own flag-parsing errors as usage errors.
type flagError struct{ err error }

func (e flagError) Error() string { return e.err.Error() }
func (e flagError) Unwrap() error { return e.err }
func (e flagError) Hint() string  { return "see 'unroot --help' or 'unroot COMMAND --help'" }

func isUsageError(err error) bool {
	var fe flagError
	return errors.As(err, &fe)
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	g := &globalOptions{}
	root := &cobra.Command{
		Use:   "unroot",
		Short: "Move Docker workloads from the rootful daemon to a rootless one",
		Long: `unroot moves a host's Docker workloads (containers, images, volumes, bind
mounts, networks, compose projects) from the rootful Docker daemon to the
rootless Docker daemon of an unprivileged user, shifting file ownership to the
user's subordinate id range on the way.

Start with 'unroot check --user NAME' to see whether the user is ready.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmd.Help()
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return flagError{err} })
	g.register(root)
	adaptForPlugin(root, os.Args[0])

	root.AddCommand(
		newVersionCmd(),
		newMigrateCmd(g),
		newCompletionCmd(),
		newGenManCmd(),
		newCheckCmd(g),
		newInventoryCmd(g),
		newChownCmd(g),
		newStatusCmd(g),
		newRollbackCmd(g),
	)
	wrapArgs(root)
	return root
}

// wrapArgs makes argument-count errors usage errors, recursively.
func wrapArgs(c *cobra.Command) {
	if c.Args != nil {
		orig := c.Args
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := orig(cmd, args); err != nil {
				var ex *exitError
				if errors.As(err, &ex) { // the verb's own message and hint
					return err
				}
				return flagError{err}
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		wrapArgs(sub)
	}
}
