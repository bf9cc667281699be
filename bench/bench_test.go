package main

import (
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestMain lets the test binary be the harness's child process, as the
// bench binary is its own.
func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == "-child" {
		if err := runChild(os.Args[2:]); err != nil {
			os.Stderr.WriteString("bench child: " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the generator writes files of other owners: needs root")
	}
}

// TestGenerateDeterministic: the same seed gives the same tree (names,
// sizes, owners, modes).
func TestGenerateDeterministic(t *testing.T) {
	needRoot(t)
	snap := func(root string) map[string][4]int64 {
		out := map[string][4]int64{}
		err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			st := fi.Sys().(*syscall.Stat_t)
			rel, _ := filepath.Rel(root, p)
			out[rel] = [4]int64{fi.Size(), int64(st.Uid), int64(st.Gid), int64(fi.Mode())}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	dir := t.TempDir()
	spec := genSpec{Files: 200, PerDir: 20, LargeFiles: 1, LargeSize: 1 << 20, Seed: 7}
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	sa, err := generate(a, spec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := generate(b, spec); err != nil {
		t.Fatal(err)
	}
	ma, mb := snap(a), snap(b)
	if len(ma) != len(mb) {
		t.Fatalf("trees differ in size: %d vs %d entries", len(ma), len(mb))
	}
	for k, v := range ma {
		if mb[k] != v {
			t.Errorf("%s: %v vs %v", k, v, mb[k])
		}
	}
	if sa.Files != 200+1+1 || sa.Setuid == 0 || sa.ACLs == 0 || sa.Caps == 0 || sa.Hardlinks == 0 || sa.Symlinks == 0 {
		t.Errorf("stats = %+v: want every awkward case", sa)
	}
}

// TestP1OnePair generates a 200-file tree and runs one P1 pair against
// cp -a; the harness checks the copied tree's owners are the shifted ones
// (and fails otherwise), and the test checks that the check ran on a tree
// that is not the source's owners.
func TestP1OnePair(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	c := &config{files: 200, pairs: 1, rig: loadRig(filepath.Join(dir, "no-env"))}
	tree := filepath.Join(dir, "tree")
	if _, err := generate(tree, genSpec{Files: c.files, PerDir: 50, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	b := &bencher{c: c, dir: dir, tree: tree, fs: "test", out: io.Discard, files: c.files}
	// The generated tree itself must fail the check (its owners are unshifted),
	// or the check proves nothing.
	if err := b.verify(tree); err == nil {
		t.Fatal("verify accepted the unshifted source tree")
	}
	rs := b.p1()
	if b.err != nil {
		t.Fatal(b.err)
	}
	if len(rs) != 2 || len(rs[0].OursS) != 1 || len(rs[0].BaseS) != 1 {
		t.Fatalf("results = %+v", rs)
	}
	if rs[0].OursRSS <= 0 {
		t.Errorf("ours peak RSS not reported: %+v", rs[0])
	}
}
