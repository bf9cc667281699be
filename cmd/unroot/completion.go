package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

// completionShells are the shells 'unroot completion' writes scripts for.
var completionShells = []string{"bash", "zsh", "fish"}

// newCompletionCmd replaces cobra's default completion command so it is
// listed, documented and covered by the usage-error mapping like every verb.
func newCompletionCmd() *cobra.Command {
	var noDesc bool
	c := &cobra.Command{
		Use:   "completion bash|zsh|fish",
		Short: "Print a shell completion script",
		Long: `Print a completion script for bash, zsh or fish to stdout.

bash (needs the bash-completion package):
  unroot completion bash > /etc/bash_completion.d/unroot
  # or, for this shell only: source <(unroot completion bash)

zsh (compinit must be enabled):
  unroot completion zsh > "${fpath[1]}/_unroot"

fish:
  unroot completion fish > ~/.config/fish/completions/unroot.fish

Start a new shell for the completion to take effect. Used as 'docker unroot',
completion comes from the docker CLI's own completion, which asks the plugin
(docker 28 does; the 20.10 CLI does not complete plugins).`,
		Args:      cobra.MatchAll(cobra.ExactArgs(1), cobra.OnlyValidArgs),
		ValidArgs: completionShells,
		Annotations: map[string]string{
			annotationLocal: "true",
		},
		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			root, out := cmd.Root(), cmd.OutOrStdout()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(out, !noDesc)
			case "zsh":
				if noDesc {
					return root.GenZshCompletionNoDesc(out)
				}
				return root.GenZshCompletion(out)
			case "fish":
				return root.GenFishCompletion(out, !noDesc)
			}
			return fmt.Errorf("unsupported shell %q", args[0])
		},
	}
	c.Flags().BoolVar(&noDesc, "no-descriptions", false, "leave command and flag descriptions out of completions")
	return c
}
