package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestChownUsageErrors(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "etc-link")
	if err := os.Symlink("/etc", link); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"no path", []string{"chown", "--user", "nobody"}, "name at least one tree to shift"},
		{"no user", []string{"chown", dir}, "--user is required"},
		{"root dir", []string{"chown", "--user", "nobody", "/"}, "refusing to shift /"},
		{"etc", []string{"chown", "--user", "nobody", "--dry-run", "/etc/"}, "refusing to shift /etc/"},
		{"lib64", []string{"chown", "--user", "nobody", "/lib64"}, "refusing"},
		{"symlink to etc", []string{"chown", "--user", "nobody", link}, "refusing"},
		{"home of the user", []string{"chown", "--user", "nobody", "/nonexistent"}, "refusing"},
		{"root as the target", []string{"chown", "--user", "root", dir}, "is root"},
		{"dry-run and reverse", []string{"chown", "--user", "nobody", "--dry-run", "--reverse", dir}, "exclude each other"},
		{"bad format", []string{"chown", "--user", "nobody", "--format", "yaml", dir}, "unknown --format"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(context.Background(), tt.args, &out, &errb)
			if code != exitUsage || !strings.Contains(errb.String(), tt.want) {
				t.Errorf("exit %d, stderr %q; want exit %d with %q", code, errb.String(), exitUsage, tt.want)
			}
			if out.Len() != 0 {
				t.Errorf("stdout %q, want nothing", out.String())
			}
		})
	}
}

func TestChownRootAllowsDataDirs(t *testing.T) {
	u := targetUser{Name: "alice", UID: 1500, GID: 1500, Home: "/home/alice"}
	for _, p := range []string{"/var/lib/docker/volumes/app_data/_data", "/srv/app/data", "/home/alice/app", "/libexec-data/x"} {
		got, err := chownRoot(p, u)
		if err != nil || got != p {
			t.Errorf("chownRoot(%s) = %q, %v; want it allowed", p, got, err)
		}
	}
	if _, err := chownRoot("/home/alice/", u); err == nil {
		t.Error("the user's home was allowed")
	}
}

func TestJournalDirPerPath(t *testing.T) {
	a, b := journalDir("/s", "/data/a"), journalDir("/s", "/data/b")
	if a == b || filepath.Dir(a) != "/s/journals" || journalDir("/s", "/data/a") != a {
		t.Errorf("journal dirs %s, %s: want distinct, stable, under /s/journals", a, b)
	}
}
