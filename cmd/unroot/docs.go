package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// genManOptions are the inputs of the hidden 'unroot gen-man DIR'.
type genManOptions struct {
	dir string
}

// newGenManCmd writes one man page per command for 'make docs'. It is hidden:
// it is a build step, not something users run. cobra/doc dates the pages by
// SOURCE_DATE_EPOCH when set, so packagers get reproducible pages.
func newGenManCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "gen-man DIR",
		Short:  "Write unroot's man pages (section 1) into DIR",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		Annotations: map[string]string{
			annotationLocal: "true",
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runGenMan(cmd.Root(), genManOptions{dir: args[0]})
		},
	}
}

// runGenMan writes a page for root and each of its visible subcommands.
func runGenMan(root *cobra.Command, opts genManOptions) error {
	if err := os.MkdirAll(opts.dir, 0o755); err != nil {
		return fmt.Errorf("create man page directory: %w", err)
	}
	header := &doc.GenManHeader{
		Section: "1",
		Source:  "unroot " + readVersion().Version,
		Manual:  "unroot manual",
	}
	// Without this cobra ends every page with a dated "Auto generated" line.
	root.DisableAutoGenTag = true
	if err := doc.GenManTree(root, header, opts.dir); err != nil {
		return fmt.Errorf("generate man pages in %s: %w", opts.dir, err)
	}
	return nil
}
