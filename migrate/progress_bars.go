package migrate

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/unroot/unroot/chown"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// BarProgress is a [Progress] that draws one bar per transfer (bytes, entries,
// percentage) on a terminal and prints status lines above the bars. Bars of
// transfers that overlap share one drawing; between transfers status lines
// go straight to the terminal. Close it when the run ends.
type BarProgress struct {
	w      io.Writer
	mu     sync.Mutex
	p      *mpb.Progress
	active int
	// overall is the bar of the whole run while transfers are drawn;
	// expected and done are its total and progress across batches.
	overall        *mpb.Bar
	expected, done atomic.Int64
}

// Expect sets the bytes the whole run is expected to move; an overall bar
// is drawn above the per-transfer bars. Called again (e.g. when an image
// the plan meant to transfer turned out to be in the target already), it
// corrects the total of the bar being drawn.
func (b *BarProgress) Expect(bytes int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.expected.Store(bytes)
	if b.overall != nil && bytes > 0 {
		b.overall.SetTotal(max(bytes, b.done.Load()+1), false)
	}
}

// NewBarProgress draws on w, which should be a terminal.
func NewBarProgress(w io.Writer) *BarProgress { return &BarProgress{w: w} }

// Begin adds a bar.
func (b *BarProgress) Begin(kind, name string, totalBytes, totalEntries int64) Task {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.p == nil {
		b.p = mpb.New(mpb.WithOutput(b.w), mpb.WithWidth(32), mpb.WithAutoRefresh())
		if exp := b.expected.Load(); exp > 0 {
			// Constructed with total 0 so that SetTotal works and the bar
			// never completes on its own (estimates can fall short).
			b.overall = b.p.AddBar(0,
				mpb.BarPriority(0),
				mpb.PrependDecorators(decor.Name("overall", decor.WC{W: 41, C: decor.DindentRight})),
				mpb.AppendDecorators(byteCounters(), decor.Percentage(decor.WC{W: 6})),
			)
			b.overall.SetTotal(max(exp, b.done.Load()+1), false)
			b.overall.SetCurrent(b.done.Load())
		}
	}
	b.active++
	t := &barTask{owner: b, totalEntries: totalEntries}
	label := kind + " " + name
	if len(label) > 40 {
		label = label[:37] + "..."
	}
	// Total 0 at construction: the bar then only completes when Done says
	// so, and SetTotal can correct the estimate.
	t.bar = b.p.AddBar(0,
		mpb.PrependDecorators(decor.Name(label, decor.WC{W: 41, C: decor.DindentRight})),
		mpb.AppendDecorators(
			byteCounters(),
			decor.Any(func(decor.Statistics) string {
				if t.totalEntries > 0 {
					return fmt.Sprintf(" %d/%d entries", t.entries.Load(), t.totalEntries)
				}
				if f := t.entries.Load(); f > 0 {
					return fmt.Sprintf(" %d entries", f)
				}
				return ""
			}),
			decor.OnAbort(decor.OnComplete(decor.Percentage(decor.WC{W: 6}), " done"), " failed"),
		),
	)
	t.total.Store(totalBytes)
	if totalBytes > 0 {
		t.bar.SetTotal(totalBytes, false)
	}
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
		b.closeLocked()
	}
}

// Close waits for the bars to finish drawing.
func (b *BarProgress) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.p != nil {
		b.closeLocked()
	}
}

// closeLocked drops the overall bar (it belongs to the drawing of a batch)
// and flushes the drawing.
func (b *BarProgress) closeLocked() {
	if b.overall != nil {
		b.overall.Abort(true)
		b.overall = nil
	}
	b.p.Wait()
	b.p = nil
}

type barTask struct {
	owner        *BarProgress
	bar          *mpb.Bar
	entries      atomic.Int64
	cur, total   atomic.Int64
	totalEntries int64
}

func (t *barTask) Add(bytes, entries int64) {
	t.entries.Add(entries)
	c := t.cur.Add(bytes)
	// A stream can run past its estimate (tar headers): grow the total.
	if tot := t.total.Load(); tot > 0 && c > tot {
		t.total.Store(c)
		t.bar.SetTotal(c, false)
	}
	t.bar.IncrInt64(bytes)
	t.owner.add(bytes)
}

// add counts bytes towards the overall bar.
func (b *BarProgress) add(bytes int64) {
	d := b.done.Add(bytes)
	b.mu.Lock()
	o := b.overall
	b.mu.Unlock()
	if o == nil {
		return
	}
	// Estimates can fall short: keep the overall bar open until the run ends.
	if exp := b.expected.Load(); d > exp {
		b.expected.Store(d)
		o.SetTotal(d, false)
	}
	o.IncrInt64(bytes)
}

func (t *barTask) Done(err error) {
	if err != nil {
		t.bar.Abort(false)
	} else {
		t.bar.SetTotal(t.cur.Load(), true)
	}
	t.bar.Wait()
	t.owner.finished()
}

// byteCounters shows "done / total" in the units of the plan and the log
// lines (chown.HumanBytes), e.g. "1.5 MiB / 3.0 MiB".
func byteCounters() decor.Decorator {
	return decor.Any(func(s decor.Statistics) string {
		return chown.HumanBytes(s.Current) + " / " + chown.HumanBytes(s.Total)
	}, decor.WC{W: 22, C: decor.DindentRight})
}
