package migrate

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/unroot/unroot/chown"
)

// Progress receives the progress of a migration's long steps (image and
// volume transfers) and its status lines. Implementations are safe for
// concurrent use. [NoProgress] discards everything; [LogProgress] writes plain
// lines (for logs and pipes); the CLI adds terminal bars.
type Progress interface {
	// Begin starts a task of the given kind ("image", "volume" or "bind")
	// whose expected totals are totalBytes and totalEntries (0 when
	// unknown). Entries are the files, directories and symlinks a walk
	// passes, the unit of [Task.Add]'s second argument.
	Begin(kind, name string, totalBytes, totalEntries int64) Task
	// Logf reports one status line, e.g. "web: source stopped".
	Logf(format string, a ...any)
}

// Task is one running transfer started by [Progress.Begin].
type Task interface {
	// Add records bytes and entries done since the last call.
	Add(bytes, entries int64)
	// Done ends the task; err is nil on success.
	Done(err error)
}

// NoProgress is a [Progress] that reports nothing (--quiet).
type NoProgress struct{}

// Begin returns a task that ignores its updates.
func (NoProgress) Begin(string, string, int64, int64) Task { return nopTask{} }

// Logf discards the line.
func (NoProgress) Logf(string, ...any) {}

type nopTask struct{}

func (nopTask) Add(int64, int64) {}
func (nopTask) Done(error)       {}

// LogProgress is a [Progress] that writes plain lines to W: one when a task
// starts, at most one every Interval while it runs, and one when it ends.
type LogProgress struct {
	W io.Writer
	// Interval between running updates of one task; 0 means 5 seconds.
	Interval time.Duration
	mu       sync.Mutex
}

// Begin prints the start of a task.
func (l *LogProgress) Begin(kind, name string, totalBytes, totalEntries int64) Task {
	l.Logf("%s %s: started (%s)", kind, name, totals(totalBytes, totalEntries))
	iv := l.Interval
	if iv == 0 {
		iv = 5 * time.Second
	}
	return &logTask{l: l, kind: kind, name: name, start: time.Now(), last: time.Now(), every: iv}
}

// Logf prints one line.
func (l *LogProgress) Logf(format string, a ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.W, format+"\n", a...)
}

type logTask struct {
	l            *LogProgress
	kind, name   string
	bytes, files atomic.Int64
	mu           sync.Mutex
	start, last  time.Time
	every        time.Duration
}

func (t *logTask) Add(bytes, files int64) {
	b, f := t.bytes.Add(bytes), t.files.Add(files)
	t.mu.Lock()
	due := time.Since(t.last) >= t.every
	if due {
		t.last = time.Now()
	}
	t.mu.Unlock()
	if due {
		t.l.Logf("%s %s: %s so far", t.kind, t.name, totals(b, f))
	}
}

func (t *logTask) Done(err error) {
	b, f := t.bytes.Load(), t.files.Load()
	el := time.Since(t.start).Round(time.Millisecond)
	if err != nil {
		t.l.Logf("%s %s: failed after %s: %v", t.kind, t.name, el, err)
		return
	}
	t.l.Logf("%s %s: done, %s in %s", t.kind, t.name, totals(b, f), el)
}

// totals formats a byte and entry count for a person.
func totals(bytes, entries int64) string {
	s := chown.HumanBytes(bytes)
	if entries > 0 {
		s += fmt.Sprintf(", %d entries", entries)
	}
	return s
}

// countingReader reports every read to a task.
type countingReader struct {
	r    io.Reader
	task Task
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.task.Add(int64(n), 0)
	}
	return n, err
}
