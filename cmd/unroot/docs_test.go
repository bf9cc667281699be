package main

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

func TestGenManWritesOnePagePerCommand(t *testing.T) {
	noDockerEnv(t)
	dir := filepath.Join(t.TempDir(), "man") // gen-man creates it
	if _, errOut, code := runEco(t, "gen-man", dir); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	root := newRootCmd(&bytes.Buffer{}, &bytes.Buffer{})
	want := []string{"unroot.1"}
	for _, c := range root.Commands() {
		if c.IsAvailableCommand() {
			want = append(want, "unroot-"+c.Name()+".1")
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	sort.Strings(want)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("pages %v, want %v (hidden commands excluded)", got, want)
	}
	page, err := os.ReadFile(filepath.Join(dir, "unroot-completion.1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`.TH "UNROOT-COMPLETION" "1"`, "unroot completion", "bash-completion", `\fB--no-descriptions\fP`} {
		if !bytes.Contains(page, []byte(s)) {
			t.Errorf("unroot-completion.1 lacks %q:\n%s", s, page)
		}
	}
	if bytes.Contains(page, []byte("Auto generated")) {
		t.Errorf("page carries cobra's dated auto-generated footer")
	}
}

func TestGenManSourceDateEpoch(t *testing.T) {
	noDockerEnv(t)
	t.Setenv("SOURCE_DATE_EPOCH", "0")
	dir := t.TempDir()
	if _, errOut, code := runEco(t, "gen-man", dir); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	page, err := os.ReadFile(filepath.Join(dir, "unroot.1"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(page, []byte(`"Jan 1970"`)) {
		t.Errorf("SOURCE_DATE_EPOCH=0 not honoured:\n%s", page[:min(len(page), 200)])
	}
}

func TestGenManUsage(t *testing.T) {
	noDockerEnv(t)
	if _, _, code := runEco(t, "gen-man"); code != exitUsage {
		t.Errorf("gen-man without DIR: exit %d, want %d", code, exitUsage)
	}
}
