package e2e

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal of 120x40 and returns its master and
// slave ends.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open /dev/ptmx: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open pty slave: %v", err)
	}
	if err := unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 40, Col: 120}); err != nil {
		t.Fatalf("set pty size: %v", err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

// ptyRun is unroot running on a terminal: what it has written so far, and
// its exit code once it ends.
type ptyRun struct {
	mu     sync.Mutex
	out    strings.Builder
	master *os.File
	done   chan struct{}
	code   int
}

func (r *ptyRun) output() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.out.String()
}

// waitFor waits (at most d) until the output contains s.
func (r *ptyRun) waitFor(t *testing.T, s string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if strings.Contains(r.output(), s) {
			return
		}
		select {
		case <-r.done:
			if strings.Contains(r.output(), s) {
				return
			}
			t.Fatalf("unroot exited %d before printing %q:\n%s", r.code, s, r.output())
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatalf("no %q within %s:\n%s", s, d, r.output())
}

// wait waits (at most d) for unroot to exit and returns its code.
func (r *ptyRun) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-r.done:
		return r.code
	case <-time.After(d):
		t.Fatalf("unroot still runs after %s:\n%s", d, r.output())
		return -1
	}
}

// startOnPTY runs unroot with stdin, stdout and stderr on a new terminal,
// as an admin at a shell does.
func startOnPTY(t *testing.T, bin string, args ...string) *ptyRun {
	t.Helper()
	master, slave := openPTY(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.Env = append(os.Environ(), "TERM=xterm")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close() // the child holds it now: EIO on the master when it exits
	r := &ptyRun{master: master, done: make(chan struct{})}
	var reader sync.WaitGroup
	reader.Add(1)
	go func() {
		defer reader.Done()
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			r.mu.Lock()
			r.out.Write(buf[:n])
			r.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	go func() {
		err := cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			r.code = ee.ExitCode()
		} else if err != nil {
			r.code = -1
		}
		// the reader ends with EIO once the last slave fd is closed
		waited := make(chan struct{})
		go func() { reader.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-time.After(5 * time.Second):
		}
		close(r.done)
	}()
	return r
}

var ansiEscape = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)

// TestMigrateOnTerminal: at a terminal and without --yes, migrate shows the
// plan and asks; "n" changes nothing, "y" migrates and draws progress bars.
func TestMigrateOnTerminal(t *testing.T) {
	const (
		ctr = "e2e-tty-web"
		vol = "e2e-tty-data"
	)
	e := newMigEnv(t, []string{ctr}, []string{vol}, nil)
	e.Docker(t, false, "run", "-d", "--name", ctr, "--init", "-v", vol+":/data", e.Image,
		"sh", "-c", "for i in 1 2 3 4 5 6 7 8 9; do echo $i > /data/f$i; done; exec sleep 100000")
	e.Docker(t, false, "exec", ctr, "true")

	// Declined.
	r := startOnPTY(t, e.Bin, e.args("migrate", ctr)...)
	r.waitFor(t, "[y/N]", 2*time.Minute)
	if out := r.output(); !strings.Contains(out, "services, in cutover order") || !strings.Contains(out, ctr) {
		t.Errorf("the prompt came without the plan:\n%s", out)
	}
	if _, err := r.master.Write([]byte("n\n")); err != nil {
		t.Fatal(err)
	}
	if code := r.wait(t, time.Minute); code != 1 || !strings.Contains(r.output(), "nothing changed") {
		t.Errorf("declined: exit %d; want 1 and 'nothing changed'\n%s", code, r.output())
	}
	if got := e.inspect(false, ctr, "{{.State.Running}}"); got != "true" {
		t.Errorf("declined: source running = %q", got)
	}
	if _, err := e.DockerErr(true, "inspect", ctr); err == nil {
		t.Errorf("declined: the target has %s", ctr)
	}
	if _, err := e.DockerErr(true, "volume", "inspect", vol); err == nil {
		t.Errorf("declined: the target has volume %s", vol)
	}

	// Accepted: the migration runs with bars on the terminal.
	r = startOnPTY(t, e.Bin, e.args("migrate", ctr)...)
	r.waitFor(t, "[y/N]", 2*time.Minute)
	if _, err := r.master.Write([]byte("y\n")); err != nil {
		t.Fatal(err)
	}
	code := r.wait(t, 4*time.Minute)
	out := ansiEscape.ReplaceAllString(r.output(), "")
	t.Logf("terminal output:\n%s", out)
	if code != 0 {
		t.Fatalf("accepted: exit %d", code)
	}
	for _, want := range []string{
		"volume " + vol + " (pre-sync)", // a volume bar's label
		"/10 entries",                   // its entry counter against the audit's total (root + 9 files)
		"done",                          // a finished bar
		"migrated",                      // the result table
	} {
		if !strings.Contains(out, want) {
			t.Errorf("terminal output lacks %q", want)
		}
	}
	if strings.Contains(out, "started (") {
		t.Errorf("a terminal got the plain log lines instead of bars")
	}
	if got := e.inspect(true, ctr, "{{.State.Running}}"); got != "true" {
		t.Errorf("target running = %q", got)
	}
	if got := e.exec(true, ctr, "cat", "/data/f9"); got != "9" {
		t.Errorf("target /data/f9 = %q", got)
	}
}
