// Command bench is unroot's benchmark harness ('make bench'): it measures
// unroot's ownership shift, copy-with-shift, volume move and image transfer
// side by side with what an admin would type instead (cp -a, rsync,
// chown -R, docker save | docker load), alternating ours and the baseline on
// fresh copies of the same generated tree, and prints the medians and the
// ratio ours/baseline per filesystem (tmpfs and disk). See docs/benchmarks.md.
//
// The same binary is its own child process: '-child copy SRC DST' and
// friends run one library operation so that its wall time and peak RSS are
// measured the way cp's are.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// config is the parsed command line.
type config struct {
	files     int
	diskFiles int
	p5MiB     int
	bigFiles  int
	pairs     int
	big       bool
	json      bool
	only      string
	fs        string
	tmpfsDir  string
	diskDir   string
	unroot    string
	envFile   string
	large     int
	seed      uint64
	keep      bool
	rig       rig
}

// rig holds the ids of the rootless target user (from the test rig's env
// file when present).
type rig struct {
	User               string
	UID, GID           uint32
	SubStart, SubCount uint32
	SourceHost         string
	TargetHost         string
	Image              string
}

func main() {
	if len(os.Args) > 2 && os.Args[1] == "-child" {
		if err := runChild(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "bench child:", err)
			os.Exit(1)
		}
		return
	}
	var c config
	flag.IntVar(&c.files, "files", 100_000, "small files in the P1/P2/P3 tree on tmpfs")
	flag.IntVar(&c.diskFiles, "disk-files", 20_000, "small files in the P1/P2/P3 tree on disk (a virtual disk is slow: keeps 'make bench' near 10 minutes)")
	flag.IntVar(&c.bigFiles, "big-files", 1_000_000, "files in the P6 tree with -big")
	flag.IntVar(&c.pairs, "pairs", 5, "ours/baseline pairs per measure (at least 5 for published numbers)")
	flag.BoolVar(&c.big, "big", false, "also measure P6 peak RSS on a -big-files tree")
	flag.BoolVar(&c.json, "json", false, "print a JSON summary after the table")
	flag.StringVar(&c.only, "only", "P1,P2,P3,P4,P5,P6", "comma-separated measures to run")
	flag.StringVar(&c.fs, "fs", "tmpfs,disk", "filesystems: tmpfs (a fresh tmpfs mount), disk (under -disk-dir)")
	flag.StringVar(&c.tmpfsDir, "tmpfs-dir", "/tmp/unroot-bench-tmpfs", "where to mount the tmpfs")
	flag.StringVar(&c.diskDir, "disk-dir", "/var/tmp/unroot-bench", "work directory on disk")
	flag.StringVar(&c.unroot, "unroot", "bin/unroot", "unroot binary for P2 (its 'chown' verb), when it has one")
	flag.StringVar(&c.envFile, "env", "/var/lib/unroot-e2e/env", "the test rig's env file (target user and subids)")
	flag.IntVar(&c.p5MiB, "p5-mib", 1024, "MiB in P5's volume")
	flag.IntVar(&c.large, "large", 4, "8 MiB files in the tree")
	flag.Uint64Var(&c.seed, "seed", 1, "generator seed")
	flag.BoolVar(&c.keep, "keep", false, "keep the work trees")
	genOnly := flag.String("gen", "", "only generate a -files tree at this path (for profiling) and exit")
	flag.Parse()
	if *genOnly != "" {
		st, err := generate(*genOnly, genSpec{Files: c.files, LargeFiles: c.large, LargeSize: 8 << 20, Seed: c.seed})
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		fmt.Printf("%+v\n", st)
		return
	}
	if c.pairs < 1 {
		fmt.Fprintln(os.Stderr, "bench: -pairs must be at least 1")
		os.Exit(2)
	}
	c.rig = loadRig(c.envFile)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, &c, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// loadRig reads the rig's env file; without one it uses the rig's defaults
// (uid 1001, subids 231072:65536), which is all the file benchmarks need.
func loadRig(path string) rig {
	r := rig{User: "unroot-e2e", UID: 1001, GID: 1001, SubStart: 231072, SubCount: 65536,
		SourceHost: "unix:///var/run/docker.sock", TargetHost: "unix:///run/user/1001/docker.sock",
		Image: "unroot-e2e/busybox:latest"}
	b, err := os.ReadFile(path)
	if err != nil {
		return r
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue
		}
		v = strings.Trim(v, `"'`)
		var n uint32
		_, numErr := fmt.Sscan(v, &n)
		switch k {
		case "UNROOT_E2E_USER":
			r.User = v
		case "UNROOT_E2E_UID":
			if numErr == nil {
				r.UID = n
			}
		case "UNROOT_E2E_GID":
			if numErr == nil {
				r.GID = n
			}
		case "UNROOT_E2E_SUBUID_START":
			if numErr == nil {
				r.SubStart = n
			}
		case "UNROOT_E2E_SUBUID_COUNT":
			if numErr == nil {
				r.SubCount = n
			}
		case "UNROOT_E2E_SOURCE_HOST":
			r.SourceHost = v
		case "UNROOT_E2E_TARGET_HOST":
			r.TargetHost = v
		case "UNROOT_E2E_IMAGE":
			r.Image = v
		}
	}
	return r
}

// result is one measure on one filesystem.
type result struct {
	ID       string    `json:"id"`
	Ours     string    `json:"ours"`
	Baseline string    `json:"baseline"`
	FS       string    `json:"fs"`
	Files    int       `json:"files,omitempty"`
	OursS    []float64 `json:"ours_seconds"`
	BaseS    []float64 `json:"baseline_seconds,omitempty"`
	OursMed  float64   `json:"ours_median_seconds"`
	BaseMed  float64   `json:"baseline_median_seconds,omitempty"`
	Ratio    float64   `json:"ratio,omitempty"`
	Goal     float64   `json:"goal"`
	GoalText string    `json:"goal_text"`
	Met      bool      `json:"met"`
	// OursRSS and BaseRSS are the largest peak RSS over the runs, in KiB.
	OursRSS int64  `json:"ours_max_rss_kib,omitempty"`
	BaseRSS int64  `json:"baseline_max_rss_kib,omitempty"`
	Note    string `json:"note,omitempty"`
}

// summary is the -json output.
type summary struct {
	Machine machine  `json:"machine"`
	Pairs   int      `json:"pairs"`
	Results []result `json:"results"`
	Skipped []string `json:"skipped,omitempty"`
}

func (c *config) want(id string) bool {
	return slices.Contains(strings.Split(c.only, ","), id)
}

func run(ctx context.Context, c *config, out io.Writer) error {
	s := summary{Machine: describeMachine(), Pairs: c.pairs}
	fmt.Fprintf(out, "machine: %s\n", s.Machine)
	fmt.Fprintf(out, "caches: warm (nothing dropped; every tree is copied with cp -a outside the timed region just before the run)\n")
	for _, fsName := range strings.Split(c.fs, ",") {
		if !c.want("P1") && !c.want("P2") && !c.want("P3") {
			break
		}
		dir, cleanup, err := prepareFS(fsName, c)
		if err != nil {
			return err
		}
		fsDesc := describeFS(dir)
		files := c.files
		if fsName == "disk" {
			files = c.diskFiles
		}
		fmt.Fprintf(out, "\n== %s (%s): generating %d files…\n", fsName, fsDesc, files)
		tree := filepath.Join(dir, "tree")
		t0 := time.Now()
		st, err := generate(tree, genSpec{Files: files, LargeFiles: c.large, LargeSize: 8 << 20, Seed: c.seed})
		if err != nil {
			cleanup()
			return fmt.Errorf("generate on %s: %w", fsName, err)
		}
		fmt.Fprintf(out, "   %d files, %d dirs, %d symlinks, %d hardlinks, %d setuid, %d ACLs, %d caps, %d sparse, %.1f MiB in %s\n",
			st.Files, st.Dirs, st.Symlinks, st.Hardlinks, st.Setuid, st.ACLs, st.Caps, st.Sparse, float64(st.Bytes)/(1<<20), time.Since(t0).Round(time.Millisecond))
		b := &bencher{c: c, dir: dir, tree: tree, fs: fsName + "/" + fsDesc, out: out, files: files}
		var rs []result
		if c.want("P1") {
			rs = append(rs, b.p1()...)
		}
		if c.want("P2") {
			rs = append(rs, b.p2())
		}
		if c.want("P3") {
			rs = append(rs, b.p3())
		}
		if b.err == nil && c.want("P6") {
			rs = append(rs, b.p6(files)...)
		}
		s.Results = append(s.Results, rs...)
		if !c.keep {
			cleanup()
		}
		if b.err != nil {
			return b.err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	if c.big && c.want("P6") {
		rs, err := bigRSS(ctx, c, out)
		if err != nil {
			return err
		}
		s.Results = append(s.Results, rs...)
	}
	if c.want("P4") {
		rs, err := p4(ctx, c, out)
		if err != nil {
			fmt.Fprintf(out, "P4 skipped: %v\n", err)
			s.Skipped = append(s.Skipped, "P4: "+err.Error())
		}
		s.Results = append(s.Results, rs...)
	}
	if c.want("P5") {
		rs, err := p5(ctx, c, out)
		if err != nil {
			fmt.Fprintf(out, "P5 skipped: %v\n", err)
			s.Skipped = append(s.Skipped, "P5: "+err.Error())
		}
		s.Results = append(s.Results, rs...)
	}
	fmt.Fprintln(out)
	printTable(out, s)
	if c.json {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	return nil
}

// prepareFS returns the work directory for a filesystem name and a function
// that removes it (and unmounts the tmpfs).
func prepareFS(name string, c *config) (string, func(), error) {
	switch name {
	case "tmpfs":
		_ = syscall.Unmount(c.tmpfsDir, 0)
		if err := os.MkdirAll(c.tmpfsDir, 0o755); err != nil {
			return "", nil, err
		}
		if err := syscall.Mount("tmpfs", c.tmpfsDir, "tmpfs", 0, "size=50%,mode=0755"); err != nil {
			return "", nil, fmt.Errorf("mount tmpfs on %s: %w", c.tmpfsDir, err)
		}
		return c.tmpfsDir, func() { _ = syscall.Unmount(c.tmpfsDir, syscall.MNT_DETACH) }, nil
	case "disk":
		if err := os.RemoveAll(c.diskDir); err != nil {
			return "", nil, err
		}
		if err := os.MkdirAll(c.diskDir, 0o755); err != nil {
			return "", nil, err
		}
		return c.diskDir, func() { _ = os.RemoveAll(c.diskDir) }, nil
	default:
		if fi, err := os.Stat(name); err == nil && fi.IsDir() {
			d, err := os.MkdirTemp(name, "unroot-bench-")
			return d, func() { _ = os.RemoveAll(d) }, err
		}
		return "", nil, fmt.Errorf("unknown filesystem %q (tmpfs, disk or an existing directory)", name)
	}
}

func printTable(out io.Writer, s summary) {
	fmt.Fprintf(out, "%-3s %-36s %-38s %-12s %8s %9s %9s %7s %-9s %s\n", "#", "ours", "baseline", "fs", "files", "ours", "baseline", "ratio", "goal", "met")
	for _, r := range s.Results {
		base, ratio := "-", "-"
		if r.BaseMed > 0 {
			base = fmt.Sprintf("%.3fs", r.BaseMed)
			ratio = fmt.Sprintf("%.2f×", r.Ratio)
		}
		ours := fmt.Sprintf("%.3fs", r.OursMed)
		if r.ID == "P6" {
			ours = fmt.Sprintf("%.1fMiB", float64(r.OursRSS)/1024)
		}
		met := "no"
		if r.Met {
			met = "yes"
		}
		files := "-"
		if r.Files > 0 {
			files = strconv.Itoa(r.Files)
		}
		fmt.Fprintf(out, "%-3s %-36s %-38s %-12s %8s %9s %9s %7s %-9s %s\n", r.ID, trunc(r.Ours, 36), trunc(r.Baseline, 38), trunc(r.FS, 12), files, ours, base, ratio, r.GoalText, met)
		if r.Note != "" {
			fmt.Fprintf(out, "     note: %s\n", r.Note)
		}
	}
	for _, sk := range s.Skipped {
		fmt.Fprintf(out, "skipped %s\n", sk)
	}
}

func trunc(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

// cmdRun runs a command and returns its wall time and peak RSS in KiB.
func cmdRun(name string, args ...string) (time.Duration, int64, error) {
	cmd := exec.Command(name, args...)
	var stderr, stdout strings.Builder
	cmd.Stderr = &stderr
	cmd.Stdout = &stdout
	t0 := time.Now()
	err := cmd.Run()
	d := time.Since(t0)
	var rss int64
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			rss = ru.Maxrss
		}
	}
	for _, line := range strings.Split(stdout.String(), "\n") {
		if v, ok := strings.CutPrefix(line, "vmhwm_kib "); ok {
			if n, perr := strconv.ParseInt(strings.TrimSpace(v), 10, 64); perr == nil {
				rss = n
			}
		}
	}
	if err != nil {
		return d, rss, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return d, rss, nil
}

// sh runs a shell command outside any timed region.
func sh(script string) error {
	out, err := exec.Command("sh", "-c", script).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", script, err, strings.TrimSpace(string(out)))
	}
	return nil
}
