package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestFleetPlaybookSyntax checks docs/fleet/playbook.yml and its role with
// ansible-playbook --syntax-check. It skips without ansible-playbook,
// except under CI=true, where the rig installs ansible-core.
func TestFleetPlaybookSyntax(t *testing.T) {
	bin, err := exec.LookPath("ansible-playbook")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("ansible-playbook not found (install ansible-core): %v", err)
		}
		Skip(t, "ansible-playbook not found: %v", err)
	}
	playbook, err := filepath.Abs(filepath.Join("..", "docs", "fleet", "playbook.yml"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--syntax-check", playbook, "-i", "localhost,")
	cmd.Env = append(os.Environ(), "ANSIBLE_LOCAL_TEMP="+t.TempDir(), "ANSIBLE_NOCOLOR=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ansible-playbook --syntax-check %s: %v\n%s", playbook, err, out)
	}
}
