package main

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const testdataDir = "../../testdata/unroot"

func readSeed(f *testing.F, name string) []byte {
	f.Helper()
	b, err := os.ReadFile(filepath.Join(testdataDir, name))
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// FuzzSplitPluginArgs: whatever the docker CLI passes, splitting never
// panics, hands back the arguments unchanged when they are not a plugin
// call, and otherwise returns a tail of them.
func FuzzSplitPluginArgs(f *testing.F) {
	f.Add(strings.TrimSpace(string(readSeed(f, "plugin-args.txt"))))
	f.Add("--context rootful unroot status")
	f.Add("-Hunix:///x --debug unroot")
	f.Add("__complete unroot mig")
	f.Add("--config")
	f.Add("-- unroot")
	f.Fuzz(func(t *testing.T, line string) {
		args := strings.Fields(line)
		orig := slices.Clone(args)
		rest, g, ok := splitPluginArgs(args)
		if !slices.Equal(args, orig) {
			t.Fatalf("input modified: %q → %q", orig, args)
		}
		if !ok {
			if !slices.Equal(rest, args) || g != (dockerGlobals{}) {
				t.Fatalf("not a plugin call but rest %q, globals %+v", rest, g)
			}
			return
		}
		if len(args) >= 2 && (args[0] == "__complete" || args[0] == "__completeNoDesc") && args[1] == pluginName {
			return
		}
		if len(rest) >= len(args) || !slices.Equal(args[len(args)-len(rest):], rest) || args[len(args)-len(rest)-1] != pluginName {
			t.Fatalf("rest %q is not what follows %q in %q", rest, pluginName, args)
		}
	})
}

// FuzzDockerContextFiles: a damaged docker CLI config or context store (in
// the user's home: not ours to trust) is an error, never a panic.
func FuzzDockerContextFiles(f *testing.F) {
	f.Add(readSeed(f, "docker-config.json"), readSeed(f, "docker-context-meta.json"))
	f.Add([]byte(`{"currentContext":""}`), []byte(`{"Endpoints":{"docker":null}}`))
	f.Add([]byte(`{"currentContext":"../../x"}`), []byte(`[]`))
	f.Fuzz(func(t *testing.T, config, meta []byte) {
		dir := t.TempDir()
		cfg := filepath.Join(dir, "config.json")
		if err := os.WriteFile(cfg, config, 0o600); err != nil {
			t.Fatal(err)
		}
		name, err := currentContext(cfg)
		if err != nil {
			if name != "" {
				t.Fatalf("error %v with context %q", err, name)
			}
			return
		}
		sum := sha256.Sum256([]byte(name))
		metaDir := filepath.Join(dir, "contexts", "meta", hex.EncodeToString(sum[:]))
		if err := os.MkdirAll(metaDir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(metaDir, "meta.json"), meta, 0o600); err != nil {
			t.Fatal(err)
		}
		host, err := contextHost(dir, name)
		if err != nil && host != "" {
			t.Fatalf("error %v with host %q", err, host)
		}
	})
}
