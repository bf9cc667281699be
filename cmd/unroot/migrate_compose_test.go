package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unroot/unroot/migrate"
)

// fakeCompose puts an executable called name on PATH that records its
// arguments, working directory, DOCKER_HOST and the files it is given, and
// prints a hash line per service.
func fakeCompose(t *testing.T, name, output string, exit int) (log string) {
	t.Helper()
	bin := t.TempDir()
	log = filepath.Join(t.TempDir(), "log")
	script := `#!/bin/sh
{ echo "args: $*"; echo "pwd: $(pwd)"; echo "host: $DOCKER_HOST"
  prev=; for a in "$@"; do [ "$prev" = -f ] && { echo "file $(basename "$a"):"; cat "$a"; }; prev=$a; done; } >> ` + log + `
printf '` + output + `'
exit ` + string(rune('0'+exit)) + `
`
	if err := os.WriteFile(filepath.Join(bin, name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	return log
}

func TestComposeHasher(t *testing.T) {
	tests := []struct {
		name, version, bin, firstArg string
	}{
		{"compose v1", "1.29.2", "docker-compose", "-f"},
		{"compose v2", "2.24.5", "docker", "compose"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log := fakeCompose(t, tt.bin, `web 1111\ndb 2222\nnot a hash line here\n`, 0)
			wd := t.TempDir()
			got, err := composeHasher("unix:///src.sock")(context.Background(), migrate.ComposeHashRequest{
				Project: "shop", WorkingDir: wd, Version: tt.version,
				Files: [][]byte{[]byte("services: {a: 1}\n"), []byte("services: {b: 2}\n")},
				Names: []string{"/srv/shop/docker-compose.yml", "/srv/shop/override.yml"},
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 2 || got["web"] != "1111" || got["db"] != "2222" {
				t.Errorf("hashes = %v", got)
			}
			b, _ := os.ReadFile(log)
			rec := string(b)
			for _, want := range []string{
				"args: " + tt.firstArg, "--project-directory " + wd + " -p shop config --hash=*",
				"pwd: " + wd, "host: unix:///src.sock",
				"file 0-docker-compose.yml:\nservices: {a: 1}", "file 1-override.yml:\nservices: {b: 2}",
			} {
				if !strings.Contains(rec, want) {
					t.Errorf("compose run lacks %q:\n%s", want, rec)
				}
			}
		})
	}
}

func TestComposeHasherErrors(t *testing.T) {
	req := migrate.ComposeHashRequest{Project: "shop", WorkingDir: t.TempDir(), Version: "1.29.2", Files: [][]byte{[]byte("x")}}
	t.Run("compose fails", func(t *testing.T) {
		fakeCompose(t, "docker-compose", `web 1111\n`, 1)
		if _, err := composeHasher("unix:///s")(context.Background(), req); err == nil || !strings.Contains(err.Error(), "config --hash") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("compose missing", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		if _, err := composeHasher("unix:///s")(context.Background(), req); err == nil {
			t.Error("no error without docker-compose on PATH")
		}
	})
}

func TestPrintComposeRecords(t *testing.T) {
	var b bytes.Buffer
	printComposeRecords(&b, []migrate.ComposeRecord{
		{Project: "shop", Files: []string{"/srv/shop/compose.rootless.yaml"}, Command: "DOCKER_HOST=x docker-compose -f f -p shop up -d", Recreate: []string{"web"}},
		{Project: "blog", Files: []string{"/srv/blog/compose.rootless.yaml"}, Command: "c2"},
	})
	want := `
compose project shop: rootless compose file /srv/shop/compose.rootless.yaml
  use: DOCKER_HOST=x docker-compose -f f -p shop up -d
  its first 'up -d' recreates web (their config changed; named volumes keep their data)

compose project blog: rootless compose file /srv/blog/compose.rootless.yaml
  use: c2
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}
