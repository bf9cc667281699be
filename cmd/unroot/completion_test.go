package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestCompletionScripts(t *testing.T) {
	tests := []struct {
		shell string
		// marker is what the shell's completion loader needs to see.
		marker string
		// syntax is the command that parses a script without running it.
		syntax []string
	}{
		{"bash", "complete -o default -F __start_unroot unroot", []string{"bash", "-n"}},
		{"zsh", "#compdef unroot", []string{"zsh", "-n"}},
		{"fish", "complete -c unroot", []string{"fish", "--no-execute"}},
	}
	for _, tt := range tests {
		t.Run(tt.shell, func(t *testing.T) {
			noDockerEnv(t)
			out, errOut, code := runEco(t, "completion", tt.shell)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			if !strings.Contains(out, tt.marker) {
				t.Errorf("%s script lacks %q", tt.shell, tt.marker)
			}
			if errOut != "" {
				t.Errorf("stderr: %s", errOut)
			}
			sh, err := exec.LookPath(tt.syntax[0])
			if err != nil {
				if tt.shell == "bash" {
					t.Fatalf("bash is needed to check the script: %v", err)
				}
				// zsh and fish are not installed everywhere; the marker check
				// above still ran.
				return
			}
			f := filepath.Join(t.TempDir(), "unroot."+tt.shell)
			if err := os.WriteFile(f, []byte(out), 0o600); err != nil {
				t.Fatal(err)
			}
			if b, err := exec.Command(sh, append(tt.syntax[1:], f)...).CombinedOutput(); err != nil {
				t.Errorf("%s does not parse the script: %v\n%s", tt.shell, err, b)
			}
		})
	}
}

func TestCompletionUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"no shell", []string{"completion"}},
		{"unknown shell", []string{"completion", "powershell"}},
		{"two shells", []string{"completion", "bash", "zsh"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			noDockerEnv(t)
			out, errOut, code := runEco(t, tt.args...)
			if code != exitUsage || out != "" || errOut == "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d, a message and no script", code, out, errOut, exitUsage)
			}
		})
	}
}

func TestCompletionNoDescriptions(t *testing.T) {
	noDockerEnv(t)
	with, _, _ := runEco(t, "__complete", "")
	without, _, code := runEco(t, "__completeNoDesc", "")
	if code != 0 || !strings.Contains(with, "completion\t") || strings.Contains(without, "\t") {
		t.Errorf("descriptions: with %q, without %q", with, without)
	}
	script, _, code := runEco(t, "completion", "fish", "--no-descriptions")
	if code != 0 || !strings.Contains(script, "__completeNoDesc") {
		t.Errorf("fish --no-descriptions does not ask for __completeNoDesc (exit %d)", code)
	}
}
