package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/unroot/unroot/chown"
	"golang.org/x/sys/unix"
)

// bencher runs the file measures (P1, P2, P3, P6) on one filesystem.
type bencher struct {
	c     *config
	dir   string // work directory on the filesystem
	tree  string // the generated tree, never changed
	fs    string // "tmpfs <desc>"
	out   io.Writer
	files int   // small files in tree
	err   error // first failure; later measures are skipped
	n     int   // unique work directory counter

	copyRSS []int64 // peak RSS of every ours copy-with-shift run (P6)
	cpRSS   []int64
}

// side is one of the two commands of a pair: prep runs untimed, then run is
// timed, then clean runs untimed.
type side struct {
	prep  func(work string) error
	run   func(work string) (time.Duration, int64, error)
	clean func(work string) error
	// result names the tree ours wrote, checked after the first run.
	result func(work string) string
}

// verify checks that every entry of the tree ours wrote has a shifted owner
// and group: one of the mapped ids of the generator's owners.
func (b *bencher) verify(root string) error {
	m := b.idMap()
	want := map[uint32]bool{}
	for _, o := range owners {
		u, _ := m.HostUID(o.id)
		g, _ := m.HostGID(o.id)
		want[u], want[g] = true, true
	}
	n := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		if !want[st.Uid] || !want[st.Gid] {
			return fmt.Errorf("%s: owner %d:%d is not a shifted id", p, st.Uid, st.Gid)
		}
		n++
		return nil
	})
	if err == nil && n < 2 {
		return fmt.Errorf("%s: only %d entries", root, n)
	}
	return err
}

func (b *bencher) work() string {
	b.n++
	return filepath.Join(b.dir, "w"+strconv.Itoa(b.n))
}

// pairs alternates ours and base (A B A B …) c.pairs times and returns the
// result with medians and the ratio.
func (b *bencher) pairs(r result, ours, base side) result {
	return b.rounds([]result{r}, ours, []side{base})[0]
}

// rounds runs ours then every baseline in turn (A B C A B C …) c.pairs
// times; rs[i] gets ours' samples and those of bases[i], its medians and
// ratio. Sharing ours' runs between baselines saves a run per round.
func (b *bencher) rounds(rs []result, ours side, bases []side) []result {
	for i := range rs {
		rs[i].FS = b.fs
	}
	if b.err != nil {
		for i := range rs {
			rs[i].Note = "not run: an earlier measure failed"
		}
		return rs
	}
	var names []string
	for _, r := range rs {
		names = append(names, r.Baseline)
	}
	fmt.Fprintf(b.out, "-- %s on %s: %s vs %s\n", rs[0].ID, b.fs, rs[0].Ours, strings.Join(names, " and "))
	var oursS []float64
	var oursRSS int64
	for i := 0; i < b.c.pairs; i++ {
		for j, s := range append([]side{ours}, bases...) {
			w := b.work()
			if s.prep != nil {
				if err := s.prep(w); err != nil {
					b.err = err
					return rs
				}
			}
			// Flush the previous run's dirty pages (and the prep copy's)
			// so that writeback does not land in this run's time.
			syncFS(b.dir)
			d, rss, err := s.run(w)
			if err != nil {
				b.err = fmt.Errorf("%s: %w", rs[0].ID, err)
				return rs
			}
			label := "ours"
			if j == 0 {
				oursS = append(oursS, d.Seconds())
				oursRSS = max(oursRSS, rss)
			} else {
				label = fmt.Sprintf("base%d", j)
				rs[j-1].BaseS = append(rs[j-1].BaseS, d.Seconds())
				rs[j-1].BaseRSS = max(rs[j-1].BaseRSS, rss)
			}
			fmt.Fprintf(b.out, "   %s %d: %.3fs (peak rss %.1f MiB)\n", label, i+1, d.Seconds(), float64(rss)/1024)
			if j == 0 && i == 0 && s.result != nil {
				if err := b.verify(s.result(w)); err != nil {
					b.err = fmt.Errorf("%s: ours gave a wrong tree: %w", rs[0].ID, err)
					return rs
				}
			}
			if s.clean != nil {
				if err := s.clean(w); err != nil {
					b.err = err
					return rs
				}
			}
		}
	}
	for i := range rs {
		rs[i].OursS, rs[i].OursRSS = oursS, oursRSS
		rs[i].OursMed, rs[i].BaseMed = median(oursS), median(rs[i].BaseS)
		if rs[i].BaseMed > 0 {
			rs[i].Ratio = rs[i].OursMed / rs[i].BaseMed
			rs[i].Met = rs[i].Ratio <= rs[i].Goal
		}
	}
	return rs
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func removeAll(w string) error { return os.RemoveAll(w) }

// syncFS writes back the dirty pages of the filesystem holding dir (untimed).
func syncFS(dir string) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	_ = unix.Syncfs(fd)
}

// cpTree makes a fresh copy of the generated tree at w (untimed).
func (b *bencher) cpTree(w string) error {
	return sh(fmt.Sprintf("cp -a %q %q", b.tree, w))
}

// self is this binary, for child runs.
func self() string {
	p, err := os.Executable()
	if err != nil {
		return os.Args[0]
	}
	return p
}

func (b *bencher) mapArgs() []string {
	r := b.c.rig
	return []string{strconv.Itoa(int(r.UID)), strconv.Itoa(int(r.GID)), strconv.Itoa(int(r.SubStart)), strconv.Itoa(int(r.SubCount))}
}

// rsyncMap is rsync's --usermap/--groupmap list for the owners of the tree:
// rsync maps single ids, so every owner id is listed.
func (b *bencher) rsyncMap() string {
	m := b.idMap()
	var parts []string
	for _, o := range owners {
		h, _ := m.HostUID(o.id)
		parts = append(parts, fmt.Sprintf("%d:%d", o.id, h))
	}
	return strings.Join(parts, ",")
}

func (b *bencher) idMap() chown.IDMap {
	r := b.c.rig
	m, err := chown.RootlessMap(r.UID, r.GID, []chown.SubRange{{Start: r.SubStart, Count: r.SubCount}}, []chown.SubRange{{Start: r.SubStart, Count: r.SubCount}})
	if err != nil {
		panic(err) // the rig's values are valid
	}
	return m
}

func (b *bencher) p1() []result {
	ours := side{
		run: func(w string) (time.Duration, int64, error) {
			d, rss, err := cmdRun(self(), append([]string{"-child", "copy", b.tree, w}, b.mapArgs()...)...)
			if err == nil {
				b.copyRSS = append(b.copyRSS, rss)
			}
			return d, rss, err
		},
		clean:  removeAll,
		result: func(w string) string { return w },
	}
	cp := side{
		run: func(w string) (time.Duration, int64, error) {
			d, rss, err := cmdRun("cp", "-a", b.tree, w)
			if err == nil {
				b.cpRSS = append(b.cpRSS, rss)
			}
			return d, rss, err
		},
		clean: removeAll,
	}
	m := b.rsyncMap()
	rsync := side{
		run: func(w string) (time.Duration, int64, error) {
			return cmdRun("rsync", "-aHAX", "--numeric-ids", "--usermap="+m, "--groupmap="+m, b.tree+"/", w+"/")
		},
		clean: removeAll,
	}
	return b.rounds([]result{
		{ID: "P1", Ours: "copy-with-shift (chown.Copy)", Baseline: "cp -a", Files: b.files, Goal: 0.8, GoalText: "≤ 0.8×"},
		{ID: "P1", Ours: "copy-with-shift (chown.Copy)", Baseline: "rsync -aHAX --numeric-ids --{user,group}map", Files: b.files, Goal: 0.25, GoalText: "≤ 0.25×"},
	}, ours, []side{cp, rsync})
}

// hasChownVerb reports whether the unroot binary has a 'chown' verb.
func (b *bencher) hasChownVerb() bool {
	if _, err := os.Stat(b.c.unroot); err != nil {
		return false
	}
	out, err := exec.Command(b.c.unroot, "chown", "--help").CombinedOutput()
	return err == nil && strings.Contains(string(out), "unroot chown")
}

func (b *bencher) p2() result {
	r := result{ID: "P2", Baseline: fmt.Sprintf("chown -R %d:%d", b.c.rig.SubStart, b.c.rig.SubStart), Files: b.files, Goal: 1.0, GoalText: "≤ 1.0×"}
	var ours side
	if b.hasChownVerb() {
		r.Ours = "unroot chown (in-place shift)"
		ours = side{
			prep: b.cpTree,
			run: func(w string) (time.Duration, int64, error) {
				return cmdRun(b.c.unroot, "chown", "--user", b.c.rig.User, "--state-dir", w+".state", w)
			},
			clean:  func(w string) error { os.RemoveAll(w + ".state"); return os.RemoveAll(w) },
			result: func(w string) string { return w },
		}
	} else {
		r.Ours = "in-place shift (chown.Shift)"
		r.Note = "the 'unroot chown' verb is not in " + b.c.unroot + " yet: ours is chown.Shift with a journal, in a child process"
		ours = side{
			prep: b.cpTree,
			run: func(w string) (time.Duration, int64, error) {
				return cmdRun(self(), append([]string{"-child", "shift", w, w + ".journal"}, b.mapArgs()...)...)
			},
			clean:  func(w string) error { os.RemoveAll(w + ".journal"); return os.RemoveAll(w) },
			result: func(w string) string { return w },
		}
	}
	owner := fmt.Sprintf("%d:%d", b.c.rig.SubStart, b.c.rig.SubStart)
	base := side{
		prep:  b.cpTree,
		run:   func(w string) (time.Duration, int64, error) { return cmdRun("chown", "-R", owner, w) },
		clean: removeAll,
	}
	return b.pairs(r, ours, base)
}

func (b *bencher) p3() result {
	r := result{ID: "P3", Ours: "volume move: rename + chown.Shift", Baseline: "cp -a of the same volume", Files: b.files, Goal: 0.1, GoalText: "≤ 0.1×"}
	ours := side{
		prep: b.cpTree,
		run: func(w string) (time.Duration, int64, error) {
			return cmdRun(self(), append([]string{"-child", "move", w, w + ".moved", w + ".journal"}, b.mapArgs()...)...)
		},
		clean: func(w string) error {
			os.RemoveAll(w + ".journal")
			os.RemoveAll(w + ".moved")
			return os.RemoveAll(w)
		},
		result: func(w string) string { return w + ".moved" },
	}
	base := side{
		prep:  b.cpTree,
		run:   func(w string) (time.Duration, int64, error) { return cmdRun("cp", "-a", w, w+".copy") },
		clean: func(w string) error { os.RemoveAll(w + ".copy"); return os.RemoveAll(w) },
	}
	return b.pairs(r, ours, base)
}

// p6 reports the peak RSS of the copy-with-shift runs of P1.
func (b *bencher) p6(files int) []result {
	if len(b.copyRSS) == 0 {
		return nil
	}
	r := result{ID: "P6", Ours: "peak RSS, copy-with-shift", Baseline: "— (cp -a's in the note)",
		FS: b.fs, Files: files, Goal: 64 * 1024, GoalText: "≤ 64 MiB", OursRSS: slices.Max(b.copyRSS)}
	if len(b.cpRSS) > 0 {
		r.BaseRSS = slices.Max(b.cpRSS)
		r.Note = fmt.Sprintf("cp -a peaked at %.1f MiB", float64(r.BaseRSS)/1024)
	}
	r.Met = r.OursRSS <= 64*1024
	return []result{r}
}

// bigRSS generates a -big-files tree on a fresh tmpfs and measures one
// copy-with-shift's peak RSS on it, for P6's "flat in file count".
func bigRSS(ctx context.Context, c *config, out io.Writer) ([]result, error) {
	dir, cleanup, err := prepareFS("tmpfs", c)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	fmt.Fprintf(out, "\n== P6: generating %d files on tmpfs…\n", c.bigFiles)
	tree := filepath.Join(dir, "tree")
	t0 := time.Now()
	if _, err := generate(tree, genSpec{Files: c.bigFiles, Seed: c.seed}); err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "   generated in %s\n", time.Since(t0).Round(time.Millisecond))
	b := &bencher{c: c, dir: dir, tree: tree, fs: "tmpfs/" + describeFS(dir), out: out, files: c.bigFiles}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d, rss, err := cmdRun(self(), append([]string{"-child", "copy", tree, filepath.Join(dir, "copy")}, b.mapArgs()...)...)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "   copy-with-shift: %.3fs, peak RSS %.1f MiB\n", d.Seconds(), float64(rss)/1024)
	r := result{ID: "P6", Ours: "peak RSS, copy-with-shift", Baseline: "—", FS: b.fs,
		Files: c.bigFiles, OursS: []float64{d.Seconds()}, OursMed: d.Seconds(), OursRSS: rss, Goal: 64 * 1024, GoalText: "≤ 64 MiB", Met: rss <= 64*1024}
	return []result{r}, nil
}

// runChild runs one library operation: copy SRC DST, shift ROOT JOURNAL or
// move SRC DST JOURNAL (rename then shift), each followed by the map's uid,
// gid, subid start and count.
func runChild(args []string) error {
	if len(args) < 5 {
		return fmt.Errorf("usage: -child copy|shift|move PATHS… UID GID SUBSTART SUBCOUNT")
	}
	nums := args[len(args)-4:]
	var v [4]uint32
	for i, s := range nums {
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return err
		}
		v[i] = uint32(n)
	}
	sub := []chown.SubRange{{Start: v[2], Count: v[3]}}
	m, err := chown.RootlessMap(v[0], v[1], sub, sub)
	if err != nil {
		return err
	}
	if p := os.Getenv("UNROOT_BENCH_CPUPROFILE"); p != "" {
		stop, err := startProfile(p)
		if err != nil {
			return err
		}
		defer stop()
	}
	ctx := context.Background()
	paths := args[1 : len(args)-4]
	switch args[0] {
	case "copy":
		if len(paths) != 2 {
			return fmt.Errorf("copy: want SRC DST")
		}
		_, err = chown.Copy(ctx, paths[0], paths[1], chown.Options{Map: m})
	case "shift":
		if len(paths) != 2 {
			return fmt.Errorf("shift: want ROOT JOURNAL")
		}
		_, err = chown.Shift(ctx, paths[0], chown.Options{Map: m, JournalDir: paths[1]})
	case "move":
		if len(paths) != 3 {
			return fmt.Errorf("move: want SRC DST JOURNAL")
		}
		if err = os.Rename(paths[0], paths[1]); err != nil {
			return err
		}
		_, err = chown.Shift(ctx, paths[1], chown.Options{Map: m, JournalDir: paths[2]})
	default:
		return fmt.Errorf("unknown child operation %q", args[0])
	}
	if err != nil {
		return err
	}
	// ru_maxrss as the parent sees it includes the parent's own RSS (the
	// child shares its memory between clone and exec), so the child reports
	// the high-water mark of its own address space.
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				fmt.Printf("vmhwm_kib %s\n", strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			}
		}
	}
	return nil
}

// machine describes where the numbers were taken.
type machine struct {
	CPUs    int    `json:"cpus"`
	MemMiB  int64  `json:"mem_mib"`
	Kernel  string `json:"kernel"`
	GoVer   string `json:"go"`
	Started string `json:"started"`
}

func (m machine) String() string {
	return fmt.Sprintf("%d CPUs, %d MiB RAM, kernel %s, %s", m.CPUs, m.MemMiB, m.Kernel, m.GoVer)
}

func describeMachine() machine {
	m := machine{CPUs: runtime.NumCPU(), GoVer: runtime.Version(), Started: time.Now().UTC().Format(time.RFC3339)}
	var si syscall.Sysinfo_t
	if syscall.Sysinfo(&si) == nil {
		m.MemMiB = int64(si.Totalram) * int64(si.Unit) >> 20
	}
	var u syscall.Utsname
	if syscall.Uname(&u) == nil {
		var sb strings.Builder
		for _, c := range u.Release {
			if c == 0 {
				break
			}
			sb.WriteByte(byte(c))
		}
		m.Kernel = sb.String()
	}
	return m
}

// describeFS names the filesystem type holding dir, from /proc/self/mountinfo
// (longest matching mount point).
func describeFS(dir string) string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "?"
	}
	best, typ := "", "?"
	for _, line := range strings.Split(string(b), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		f := strings.Fields(pre)
		g := strings.Fields(post)
		if len(f) < 5 || len(g) < 2 {
			continue
		}
		mp := f[4]
		if (dir == mp || strings.HasPrefix(dir, strings.TrimSuffix(mp, "/")+"/")) && len(mp) >= len(best) {
			best, typ = mp, g[0]
		}
	}
	return typ
}
