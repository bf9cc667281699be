package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"github.com/unroot/unroot/chown"
)

// chownOptions are the flags and arguments of 'unroot chown'.
type chownOptions struct {
	dryRun      bool
	reverse     bool
	overflow    bool
	skipDevices bool
	format      string
	paths       []string
	out, errOut io.Writer
}

func newChownCmd(g *globalOptions) *cobra.Command {
	opts := &chownOptions{}
	c := &cobra.Command{
		Use:   "chown --user NAME [--dry-run] [--reverse] [--map-unmappable-to-overflow] [--skip-devices] [--format text|json] PATH...",
		Short: "Shift the owners of directory trees to the rootless user's id range",
		Long: `(Run as root.) chown shifts, in place, the owners of each PATH (a volume's _data
directory, a bind-mount source) from the ids a rootful container wrote to the
ids the rootless daemon of --user maps them to: container root becomes the
user, container uid n becomes the n-th subordinate uid. ACL entries and file
capabilities are shifted with them; setuid and setgid bits are kept.

It walks by file descriptor, never follows a symlink, never opens a device
node or FIFO, stays on one filesystem and shifts each inode once. Every
change is journaled under --state-dir first: an interrupted run resumes when
run again, a completed one is not shifted twice, and --reverse restores the
original owners exactly.

It walks each tree once. It refuses trees with ids the map cannot hold (see
--map-unmappable-to-overflow), device nodes (see --skip-devices) or files
hardlinked from outside the tree: a refused run puts back, from its journal,
every entry it had changed before it met the blocker (files hardlinked
several times are changed only at the end, once all their links were seen),
and prints the whole audit. --dry-run prints that audit and changes nothing.
Stop every container that uses PATH first.`,
		Example: `  unroot chown --user alice --dry-run /var/lib/docker/volumes/app_data/_data
  unroot chown --user alice /srv/app/data
  unroot chown --user alice --reverse /srv/app/data`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageErr("e.g. 'unroot chown --user alice --dry-run /srv/www' (a bind-mount tree; volumes move with 'unroot migrate')",
					"name at least one tree to shift")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.paths = args
			opts.out, opts.errOut = cmd.OutOrStdout(), cmd.ErrOrStderr()
			return runChown(cmd.Context(), g, opts)
		},
	}
	f := c.Flags()
	f.BoolVar(&opts.dryRun, "dry-run", false, "audit only: print what would change and change nothing")
	f.BoolVar(&opts.reverse, "reverse", false, "undo an earlier shift of PATH from its journal")
	f.BoolVar(&opts.overflow, "map-unmappable-to-overflow", false, "give ids outside the user's range to the overflow id 65534 instead of refusing")
	f.BoolVar(&opts.skipDevices, "skip-devices", false, "leave device nodes as they are instead of refusing")
	addFormatFlag(c, &opts.format, "text", "json")
	return c
}

// chownResult is one PATH's outcome, as --format json prints it.
type chownResult struct {
	Path    string        `json:"path"`
	Action  string        `json:"action"` // audit, shift, reverse
	Journal string        `json:"journal"`
	Report  *chown.Report `json:"report"`
}

func runChown(ctx context.Context, g *globalOptions, opts *chownOptions) error {
	if opts.dryRun && opts.reverse {
		return usageErr("run --reverse without --dry-run", "--dry-run and --reverse exclude each other")
	}
	if err := requireRoot("chown"); err != nil {
		return err
	}
	u, err := g.requireTargetUser()
	if err != nil {
		return err
	}
	roots := make([]string, len(opts.paths))
	for i, p := range opts.paths {
		if roots[i], err = chownRoot(p, u); err != nil {
			return err
		}
		// Checked before anything, a shift's journal directory included, is created.
		const dirHint = "name an existing directory: a volume's _data directory or a bind-mount source"
		fi, err := os.Lstat(roots[i])
		if errors.Is(err, fs.ErrNotExist) {
			return failErr(fmt.Errorf("%s: no such file or directory", p), dirHint)
		}
		if err == nil && !fi.IsDir() && fi.Mode()&fs.ModeSymlink == 0 {
			return failErr(fmt.Errorf("%s is not a directory", p), dirHint)
		}
		if opts.reverse {
			if _, err := os.Stat(journalDir(g.stateDir, roots[i])); errors.Is(err, fs.ErrNotExist) {
				return failErr(fmt.Errorf("nothing to reverse: no shift of %s is journaled under %s", p, g.stateDir),
					"--reverse undoes an earlier 'unroot chown' of the same PATH run with the same --state-dir")
			}
		}
	}
	rm, err := resolveMap(u)
	if err != nil {
		return err
	}
	for _, d := range rm.Diffs {
		fmt.Fprintf(opts.errOut, "warning: %s\n", d)
	}
	if len(rm.Diffs) > 0 {
		fmt.Fprintln(opts.errOut, "warning: using the map of the running rootless daemon")
	}

	var files, bytes atomic.Int64
	base := chown.Options{Map: rm.Map, MapUnmappableToOverflow: opts.overflow, AllowDevices: opts.skipDevices,
		Progress: func(f, b int64) { files.Store(f); bytes.Store(b) }}
	stop := startProgress(opts.errOut, &files, &bytes)
	defer stop()

	results := make([]chownResult, 0, len(roots))
	var blocked error
	for _, root := range roots {
		o := base
		o.JournalDir = journalDir(g.stateDir, root)
		r := chownResult{Path: root, Journal: o.JournalDir}
		switch {
		case opts.reverse:
			r.Action = "reverse"
			r.Report, err = chown.Reverse(ctx, root, o)
		case opts.dryRun:
			r.Action = "audit"
			r.Report, err = chown.Audit(ctx, root, o)
			if err == nil {
				if b := r.Report.Blocking(o); b != nil && blocked == nil {
					blocked = b
				}
			}
		default:
			r.Action = "shift"
			r.Report, err = chown.Shift(ctx, root, o)
			var b *chown.BlockedError
			if errors.As(err, &b) {
				blocked, err = b, nil
			}
		}
		if err != nil {
			return err
		}
		results = append(results, r)
		if blocked != nil && !opts.dryRun {
			break // change no further tree
		}
	}
	stop()
	if err := writeChown(opts, results); err != nil {
		return err
	}
	if blocked != nil {
		var h interface{ Hint() string }
		hint := ""
		if errors.As(blocked, &h) {
			hint = h.Hint()
		}
		if opts.dryRun {
			return failErr(fmt.Errorf("shifting would be refused: %w", blocked), hint)
		}
		return failErr(fmt.Errorf("refused, nothing changed: %w", blocked), chownFlagHint(blocked, hint))
	}
	return nil
}

// chownFlagHint names the flags that get past a refusal.
func chownFlagHint(err error, hint string) string {
	var flags []string
	if errors.Is(err, chown.ErrUnmappable) {
		flags = append(flags, "--map-unmappable-to-overflow")
	}
	if errors.Is(err, chown.ErrDeviceNode) {
		flags = append(flags, "--skip-devices")
	}
	if len(flags) == 0 {
		return hint
	}
	return hint + " (" + strings.Join(flags, ", ") + ")"
}

func writeChown(opts *chownOptions, results []chownResult) error {
	if opts.format == "json" {
		enc := json.NewEncoder(opts.out)
		enc.SetIndent("", "  ")
		return enc.Encode(results)
	}
	for _, r := range results {
		verb := map[string]string{"audit": "would shift", "shift": "shifted", "reverse": "reversed"}[r.Action]
		fmt.Fprintf(opts.out, "%s %s (journal %s)\n", verb, r.Path, r.Journal)
		if err := r.Report.WriteText(opts.out); err != nil {
			return err
		}
	}
	return nil
}

// systemPaths are trees chown refuses whole: shifting them would break the
// host. Their subdirectories (a volume under /var/lib/docker) are fine.
var systemPaths = []string{"/", "/etc", "/usr", "/var", "/home", "/root", "/proc", "/sys", "/dev", "/boot",
	"/bin", "/sbin", "/run", "/tmp", "/var/lib", "/var/lib/docker", "/usr/local"}

// chownRoot makes p absolute and refuses system paths and the user's home,
// also when p reaches them through a symlink.
func chownRoot(p string, u targetUser) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	abs = filepath.Clean(abs)
	check := []string{abs}
	if real, err := filepath.EvalSymlinks(abs); err == nil && real != abs {
		check = append(check, real)
	}
	for _, c := range check {
		refused := c == filepath.Clean(u.Home) && u.Home != ""
		for _, s := range systemPaths {
			refused = refused || c == s
		}
		if strings.HasPrefix(c, "/lib") && !strings.Contains(c[1:], "/") {
			refused = true
		}
		if refused {
			return "", usageErr("name the directory that holds a container's data, e.g. /var/lib/docker/volumes/NAME/_data or a bind-mount source",
				"refusing to shift %s: a system directory or the user's home", p)
		}
	}
	return abs, nil
}

// journalDir is where the journal of root lives: one directory per absolute
// path under the state directory.
func journalDir(stateDir, root string) string {
	sum := sha256.Sum256([]byte(root))
	return filepath.Join(stateDir, "journals", hex.EncodeToString(sum[:8]))
}

// startProgress prints a line to w every few seconds while a walk runs; the
// returned func stops it (and may be called more than once).
func startProgress(w io.Writer, files, bytes *atomic.Int64) func() {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintf(w, "unroot: chown: %d entries, %d MiB so far\n", files.Load(), bytes.Load()>>20)
			}
		}
	}()
	var once atomic.Bool
	return func() {
		if once.CompareAndSwap(false, true) {
			close(done)
			<-stopped
		}
	}
}
