package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unroot/unroot/migrate"
)

func TestStatusOutput(t *testing.T) {
	dir := t.TempDir()
	st, err := migrate.LoadState(filepath.Join(dir, "nobody"))
	if err != nil {
		t.Fatal(err)
	}
	st.Services["web"] = &migrate.ServiceState{Container: "web", Phase: migrate.PhaseDone, DowntimeMS: 2345,
		Ports: []migrate.PortPlan{{HostIP: "127.0.0.1", OldHostPort: "80", NewHostPort: "8080", Proto: "tcp"}}}
	st.Services["db"] = &migrate.ServiceState{Container: "db", Phase: migrate.PhaseRolledBack, Error: "health gate: boom"}
	if err := st.Save(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		code     int
		contains []string
	}{
		{"text", []string{"status", "--user", "nobody", "--state-dir", dir}, 0,
			[]string{"web", "done", "127.0.0.1:80→8080/tcp", "2.345s", "db", "rolled-back", "health gate: boom"}},
		{"nothing recorded", []string{"status", "--user", "nobody", "--state-dir", t.TempDir()}, 0, []string{"no migration recorded"}},
		{"no user", []string{"status", "--state-dir", dir}, 2, nil},
		{"bad format", []string{"status", "--user", "nobody", "--state-dir", dir, "--format", "yaml"}, 2, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(context.Background(), tt.args, &out, &errb)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr %s", code, tt.code, errb.String())
			}
			for _, c := range tt.contains {
				if !strings.Contains(out.String(), c) {
					t.Errorf("output lacks %q:\n%s", c, out.String())
				}
			}
		})
	}
	rec := `[{"project":"shop","files":["/srv/shop/compose.rootless.yaml"],"command":"DOCKER_HOST=unix:///run/user/1000/docker.sock docker compose -f /srv/shop/compose.rootless.yaml -p shop up -d","written":"2026-12-03T10:00:00Z"}]`
	if err := os.WriteFile(filepath.Join(dir, "nobody", migrate.ComposeStateFile), []byte(rec), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"status", "--user", "nobody", "--state-dir", dir, "--format", "json"}, &out, &errb); code != 0 {
		t.Fatalf("json: exit %d: %s", code, errb.String())
	}
	var back struct {
		migrate.State
		Compose []migrate.ComposeRecord `json:"compose"`
	}
	if err := json.Unmarshal(out.Bytes(), &back); err != nil {
		t.Fatalf("json: %v\n%s", err, out.String())
	}
	if len(back.Compose) != 1 || back.Compose[0].Project != "shop" || back.Compose[0].Files[0] != "/srv/shop/compose.rootless.yaml" {
		t.Errorf("json compose records %+v, want the one recorded for shop", back.Compose)
	}
	if back.Services["web"].DowntimeMS != 2345 || back.Services["db"].Phase != migrate.PhaseRolledBack {
		t.Errorf("json state %+v", back.Services)
	}
}

func TestRollbackUsage(t *testing.T) {
	tests := [][]string{
		{"rollback", "--user", "nobody"},
		{"rollback", "--user", "nobody", "--all", "web"},
		{"rollback", "web"},
	}
	for _, args := range tests {
		var out, errb bytes.Buffer
		if code := run(context.Background(), args, &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2; stderr %s", args, code, errb.String())
		}
	}
}
