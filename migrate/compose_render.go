package migrate

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// WriteComposeText writes the plan's compose projects for people: each
// project's services in cutover order, its one-off containers, and the
// rootless compose file with every change and the command that uses it.
// markdown selects headings and code spans for the runbook. A plan without
// projects writes nothing.
func WriteComposeText(w io.Writer, p *Plan, markdown bool) error {
	if len(p.Compose) == 0 {
		return nil
	}
	code := func(s string) string { return s }
	if markdown {
		code = func(s string) string { return "`" + s + "`" }
		fmt.Fprintf(w, "\n## Compose projects\n")
	} else {
		fmt.Fprintf(w, "\nCompose projects:\n")
	}
	for _, cp := range p.Compose {
		fmt.Fprintf(w, "\n%sproject %s (compose %s; dependency order from %s)\n", bullet(markdown, 0), code(cp.Project), orDash(cp.ComposeVersion), cp.DependsOnFrom)
		for i, s := range cp.Services {
			deps := ""
			if len(s.DependsOn) > 0 {
				deps = ", after " + strings.Join(s.DependsOn, ", ")
			}
			fmt.Fprintf(w, "%s%d. %s: %s%s\n", indent(markdown, 1), i+1, s.Name, strings.Join(s.Containers, ", "), deps)
		}
		for _, o := range cp.OneOff {
			fmt.Fprintf(w, "%sone-off %s: not migrated\n", bullet(markdown, 1), o)
		}
		for _, f := range cp.Files {
			fmt.Fprintf(w, "%srootless compose file %s (from %s), written by apply:\n", bullet(markdown, 1), code(f.Rootless), code(f.Original))
			if len(f.Changes) == 0 {
				fmt.Fprintf(w, "%sno change\n", bullet(markdown, 2))
			}
			for _, c := range f.Changes {
				fmt.Fprintf(w, "%s%s\n", bullet(markdown, 2), c)
			}
			for _, m := range f.Manual {
				fmt.Fprintf(w, "%scheck by hand: %s\n", bullet(markdown, 2), m)
			}
		}
		if cp.Command != "" {
			fmt.Fprintf(w, "%suse: %s\n", bullet(markdown, 1), code(cp.Command))
		}
		if len(cp.ConfigHashes) > 0 {
			kept := slices.Sorted(maps.Keys(cp.ConfigHashes))
			fmt.Fprintf(w, "%sits first 'up -d' keeps %s: the migrated containers carry the config hash of the rewritten file\n", bullet(markdown, 1), strings.Join(kept, ", "))
		}
		if len(cp.Recreate) > 0 {
			fmt.Fprintf(w, "%sits first 'up -d' recreates %s (config changed; named volumes keep their data)\n", bullet(markdown, 1), strings.Join(cp.Recreate, ", "))
		}
	}
	return nil
}

func bullet(markdown bool, level int) string {
	if markdown {
		return strings.Repeat("  ", level) + "- "
	}
	return strings.Repeat("  ", level+1)
}

func indent(markdown bool, level int) string {
	if markdown {
		return strings.Repeat("   ", level)
	}
	return strings.Repeat("  ", level+1)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
