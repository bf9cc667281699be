package migrate

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// BarProgress is a [Progress] that draws one bar per transfer (bytes, files,
// percentage) on a terminal and prints status lines above the bars. Bars of
// transfers that overlap share one drawing; between transfers status lines
// go straight to the terminal. Close it when the run ends.
type BarProgress struct {
	w      io.Writer
	mu     sync.Mutex
	p      *mpb.Progress
	active int
}

// NewBarProgress draws on w, which should be a terminal.
func NewBarProgress(w io.Writer) *BarProgress { return &BarProgress{w: w} }

// Begin adds a bar.
func (b *BarProgress) Begin(kind, name string, totalBytes, totalFiles int64) Task {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.p == nil {
		b.p = mpb.New(mpb.WithOutput(b.w), mpb.WithWidth(32), mpb.WithAutoRefresh())
	}
	b.active++
	t := &barTask{owner: b, totalFiles: totalFiles}
	label := kind + " " + name
	if len(label) > 40 {
		label = label[:37] + "..."
	}
	t.bar = b.p.AddBar(totalBytes,
		mpb.PrependDecorators(decor.Name(label, decor.WC{W: 41, C: decor.DindentRight})),
		mpb.AppendDecorators(
			decor.CountersKibiByte("% .1f / % .1f"),
			decor.Any(func(decor.Statistics) string {
				if t.totalFiles > 0 {
					return fmt.Sprintf(" %d/%d files", t.files.Load(), t.totalFiles)
				}
				if f := t.files.Load(); f > 0 {
					return fmt.Sprintf(" %d files", f)
				}
				return ""
			}),
			decor.OnAbort(decor.OnComplete(decor.Percentage(decor.WC{W: 5}), " done"), " failed"),
		),
	)
	t.total.Store(totalBytes)
	return t
}

// Logf prints a line above the bars, or plainly when none is drawn.
func (b *BarProgress) Logf(format string, a ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.p != nil {
		fmt.Fprintf(b.p, format+"\n", a...)
		return
	}
	fmt.Fprintf(b.w, format+"\n", a...)
}

// finished is called when a task ends: the last one flushes the drawing.
func (b *BarProgress) finished() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.active--
	if b.active == 0 && b.p != nil {
		b.p.Wait()
		b.p = nil
	}
}

// Close waits for the bars to finish drawing.
func (b *BarProgress) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.p != nil {
		b.p.Wait()
		b.p = nil
	}
}

type barTask struct {
	owner      *BarProgress
	bar        *mpb.Bar
	files      atomic.Int64
	cur, total atomic.Int64
	totalFiles int64
}

func (t *barTask) Add(bytes, files int64) {
	t.files.Add(files)
	c := t.cur.Add(bytes)
	// A stream can run past its estimate (tar headers); keep the bar open
	// until Done says it is complete.
	if tot := t.total.Load(); tot > 0 && c >= tot {
		t.total.Store(c + 1)
		t.bar.SetTotal(c+1, false)
	}
	t.bar.IncrInt64(bytes)
}

func (t *barTask) Done(err error) {
	if err != nil {
		t.bar.Abort(false)
	} else {
		t.bar.SetTotal(-1, true)
	}
	t.bar.Wait()
	t.owner.finished()
}
