package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// treeDigest hashes names, owners, modes and contents of a tree.
func treeDigest(t *testing.T, root string) string {
	t.Helper()
	h := sha256.New()
	var paths []string
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		paths = append(paths, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(paths)
	for _, p := range paths {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		fmt.Fprintf(h, "%s %v %d:%d\n", strings.TrimPrefix(p, root), fi.Mode(), st.Uid, st.Gid)
		if fi.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestMigrateResumesAfterKillDuringCopy kills unroot with SIGKILL while it
// copies a volume, then runs it again: the second run finishes, the
// copy is exact (content and owners, seen through the map), and there is
// one target container.
func TestMigrateResumesAfterKillDuringCopy(t *testing.T) {
	const (
		ctr = "e2e-mig-big"
		vol = "e2e-mig-big-data"
	)
	e := newMigEnv(t, []string{ctr}, []string{vol}, nil)
	e.Docker(t, false, "volume", "create", vol)
	src := e.inspectVolume(false, vol)
	// 400 files of 512 KiB in 20 directories, owned by 1000:1000: enough
	// that the copy is still running when the kill arrives.
	buf := make([]byte, 512<<10)
	for i := 0; i < 400; i++ {
		d := filepath.Join(src, fmt.Sprintf("d%02d", i%20))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for j := range buf {
			buf[j] = byte(i + j*7)
		}
		p := filepath.Join(d, fmt.Sprintf("f%03d", i))
		if err := os.WriteFile(p, buf, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, 1000, 1000); err != nil {
			t.Fatal(err)
		}
	}
	e.Docker(t, false, "run", "-d", "--name", ctr, "-v", vol+":/data", e.Image, "sleep", "100000")
	srcDigest := treeDigest(t, src)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd, lines := e.startUnroot(ctx, e.args("migrate", "--yes", ctr)...)
	killed := false
	for line := range lines {
		t.Logf("first run: %s", line)
		if !killed && strings.Contains(line, "volume "+vol) && strings.Contains(line, "started") {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	_ = cmd.Wait()
	if !killed {
		t.Fatal("the first run never started copying the volume")
	}

	e.mustMigrate(ctr)

	if n := e.Docker(t, true, "ps", "-a", "--filter", "name=^"+ctr+"$", "--format", "{{.ID}}"); strings.Count(n, "\n") != 0 || n == "" {
		t.Errorf("target containers named %s: %q, want exactly one", ctr, n)
	}
	if got := e.exec(true, ctr, "sh", "-c", "find /data -type f | wc -l"); got != "400" {
		t.Errorf("target has %s files, want 400", got)
	}
	if got := e.exec(true, ctr, "stat", "-c", "%u:%g", "/data/d07/f007"); got != "1000:1000" {
		t.Errorf("owner inside the target = %s", got)
	}
	// The copy seen through the map equals the source: compare digests of
	// the source with the target shifted back into container ids.
	dst := e.inspectVolume(true, vol)
	if got := shiftedDigest(t, e, dst); got != srcDigest {
		t.Error("the resumed copy differs from the source (content, modes or owners)")
	}
	if treeDigest(t, src) != srcDigest {
		t.Error("the source changed")
	}
	if s := e.status().Services[ctr]; s.Phase != "done" {
		t.Errorf("status = %q", s.Phase)
	}
}

// shiftedDigest is treeDigest of the target tree with owners mapped back to
// container ids (host uid → 0, subuid start + n - 1 → n).
func shiftedDigest(t *testing.T, e *migEnv, root string) string {
	t.Helper()
	h := sha256.New()
	var paths []string
	if err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		paths = append(paths, p)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sort.Strings(paths)
	back := func(id, own, start uint32) uint32 {
		if id == own {
			return 0
		}
		return id - start + 1
	}
	for _, p := range paths {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		uid, gid := back(st.Uid, uint32(e.UID), e.SubUIDStart), back(st.Gid, uint32(e.GID), e.SubGIDStart)
		fmt.Fprintf(h, "%s %v %d:%d\n", strings.TrimPrefix(p, root), fi.Mode(), uid, gid)
		if fi.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestMigrateResumesAfterKillDuringHealthGate kills unroot after the target
// container started (its port is then held by the target) and runs it
// again: the second run adopts the container an earlier run created
// instead of creating a second one, and finishes.
func TestMigrateResumesAfterKillDuringHealthGate(t *testing.T) {
	const ctr = "e2e-mig-resume-web"
	e := newMigEnv(t, []string{ctr}, nil, nil)
	e.Docker(t, false, "run", "-d", "--name", ctr, "--init", "--restart", "always", "-p", "127.0.0.1:18601:80", e.Image,
		"httpd", "-f", "-p", "80", "-h", "/etc")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd, lines := e.startUnroot(ctx, e.args("migrate", "--yes", "--settle", "30s", ctr)...)
	killed := false
	for line := range lines {
		t.Logf("first run: %s", line)
		if !killed && strings.HasSuffix(line, ctr+": target started") {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	_ = cmd.Wait()
	if !killed {
		t.Fatal("the first run never started the target")
	}
	firstID := e.inspect(true, ctr, "{{.Id}}")

	res := e.mustMigrate(ctr)
	if !strings.Contains(res.Stderr, "reusing the target container") {
		t.Errorf("second run did not adopt the earlier target container:\n%s", res.Stderr)
	}
	if got := e.inspect(true, ctr, "{{.Id}}"); got != firstID {
		t.Errorf("target container replaced: %s → %s", firstID, got)
	}
	if got := httpGet(t, 18601, "/hostname"); strings.TrimSpace(got) == "" {
		t.Error("target does not serve")
	}
	if got := e.inspect(false, ctr, "{{.HostConfig.RestartPolicy.Name}} {{.State.Running}}"); got != "no false" {
		t.Errorf("source after the resumed cutover: %q", got)
	}
	if s := e.status().Services[ctr]; s.Phase != "done" || s.DowntimeMS <= 0 {
		t.Errorf("status %+v", s)
	}
}
