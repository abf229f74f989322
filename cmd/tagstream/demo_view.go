package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
	"unicode"

	"golang.org/x/term"
)

// demoView draws the demo's live view: redrawn in place on a terminal, a plain line per refresh otherwise.
type demoView struct {
	w     io.Writer
	tty   bool
	d     *demo
	start time.Time

	mu     sync.Mutex
	phase  string
	notes  []string
	drawn  int // lines of the last frame on a terminal
	hidden bool

	lastSample   string // plain mode: the last sample printed
	printedNotes int    // plain mode: notes already printed
}

// note adds a line to the view's notes (bursts and the like).
func (v *demoView) note(s string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.notes = append(v.notes, time.Now().Format("15:04:05")+" "+s)
	if len(v.notes) > 3 {
		drop := len(v.notes) - 3
		v.notes = v.notes[drop:]
		v.printedNotes = max(0, v.printedNotes-drop)
	}
}

// loop redraws every interval until ctx ends or the pipeline stops.
func (v *demoView) loop(ctx context.Context, interval time.Duration, pipeEnded <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	v.render()
	for {
		select {
		case <-ctx.Done():
			return
		case <-pipeEnded:
			return
		case <-t.C:
			v.render()
		}
	}
}

// render draws one frame or one line.
func (v *demoView) render() {
	d := v.d
	now := time.Now()
	d.stats.resolve(d.sim.GroundTruth())
	rates := d.stats.rates(now)
	events, dups, gaps := d.stats.totals()
	sum := d.stats.summary(nil)
	tokens := d.pipe.TokenStatus()
	elapsed := now.Sub(v.start).Round(time.Second)
	v.mu.Lock()
	defer v.mu.Unlock()

	var total float64
	for _, r := range rates {
		total += r
	}
	if !v.tty {
		var budget []string
		parked, retired := 0, 0
		for _, t := range tokens {
			budget = append(budget, fmt.Sprint(t.Remaining))
			if t.Retired {
				retired++
			} else if t.ParkedUntil.After(now) {
				parked++
			}
		}
		fmt.Fprintf(v.w, "demo %s %s: events=%d rate=%.1f/s duplicates=%d gaps=%d post-to-event p50=%s p95=%s budget-left=%s parked=%d retired=%d\n",
			elapsed, v.phase, events, total, dups, gaps, fmtDur(sum.p50), fmtDur(sum.p95), strings.Join(budget, ","), parked, retired)
		// One sample event per line, when a new one arrived.
		if samples := d.stats.sampleLines(); len(samples) > 0 && samples[len(samples)-1] != v.lastSample {
			v.lastSample = samples[len(samples)-1]
			fmt.Fprintf(v.w, "  sample event: %s\n", clip(v.lastSample, 200))
		}
		for _, n := range v.notes[v.printedNotes:] {
			fmt.Fprintf(v.w, "  %s\n", n)
		}
		v.printedNotes = len(v.notes)
		return
	}

	var b bytes.Buffer
	fmt.Fprintf(&b, "\x1b[1mtagstream demo\x1b[0m  %s  %s\n", elapsed, v.phase)
	fmt.Fprintf(&b, "API %s  ->  %s\n", d.cfg.APIURL, d.pipe.SinkName())
	fmt.Fprintf(&b, "events %d  rate %.1f/s  duplicates %d  gaps %d  post->event p50 %s  p95 %s\n\n",
		events, total, dups, gaps, fmtDur(sum.p50), fmtDur(sum.p95))
	fmt.Fprintf(&b, "\x1b[1m%-18s %9s %8s %8s %8s %8s %10s\x1b[0m\n", "TAG", "POSTED/s", "EVENTS", "RATE/s", "P50", "P95", "POLL EVERY")
	intervals := pollIntervals(d)
	for _, t := range demoTags {
		n, p50, p95 := d.stats.tagRow(t.name)
		fmt.Fprintf(&b, "#%-17s %9.2f %8d %8.1f %8s %8s %10s\n", t.name, t.rate*d.o.rateScale, n, rates[t.name], fmtDur(p50), fmtDur(p95), intervals[t.name])
	}
	fmt.Fprintf(&b, "\n\x1b[1m%-6s %-12s %-20s %s\x1b[0m\n", "TOKEN", "FINGERPRINT", "BUDGET LEFT", "STATE")
	for _, t := range tokens {
		state := "ok"
		switch {
		case t.Retired:
			state = "retired"
		case t.ParkedUntil.After(now):
			state = "parked " + fmtDur(t.ParkedUntil.Sub(now))
		}
		left := "?"
		if t.Remaining >= 0 {
			left = fmt.Sprintf("%d / %d", t.Remaining, t.Limit)
		}
		fmt.Fprintf(&b, "%-6d %-12s %-20s %s\n", t.Index+1, t.Fingerprint, left, state)
	}
	b.WriteString("\n\x1b[1mrecent events\x1b[0m\n")
	for _, l := range d.stats.sampleLines() {
		b.WriteString("  " + l + "\n")
	}
	if len(v.notes) > 0 || d.logs != nil {
		b.WriteString("\n\x1b[1mnotes\x1b[0m\n")
		for _, n := range v.notes {
			b.WriteString("  " + n + "\n")
		}
		if d.logs != nil {
			for _, l := range d.logs.lines() {
				b.WriteString("  " + l + "\n")
			}
		}
	}
	b.WriteString("\nCtrl-C ends the demo with a summary.\n")

	// Clip every line to the terminal's width so that the in-place redraw counts lines right.
	width := terminalWidth(v.w)
	lines := strings.SplitAfter(b.String(), "\n")
	b.Reset()
	for _, l := range lines {
		if l == "" {
			continue
		}
		b.WriteString(clipWidth(strings.TrimSuffix(l, "\n"), width-1))
		b.WriteString("\x1b[K\n")
	}
	if !v.hidden {
		io.WriteString(v.w, "\x1b[?25l")
		v.hidden = true
	}
	if v.drawn > 0 {
		fmt.Fprintf(v.w, "\x1b[%dA\x1b[J", v.drawn)
	}
	v.drawn = bytes.Count(b.Bytes(), []byte("\n"))
	v.w.Write(b.Bytes())
}

// final draws the last frame and shows the cursor again.
func (v *demoView) final() {
	v.render()
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.hidden {
		io.WriteString(v.w, "\x1b[?25h")
		v.hidden = false
	}
}

// pollIntervals returns, per tag, the time between its last poll and the next one, as a hint of the schedule.
func pollIntervals(d *demo) map[string]string {
	out := map[string]string{}
	for _, s := range d.pipe.TagStatus() {
		if !s.LastAttempt.IsZero() && s.NextPoll.After(s.LastAttempt) {
			out[s.Tag] = fmtDur(s.NextPoll.Sub(s.LastAttempt))
		} else {
			out[s.Tag] = "-"
		}
	}
	return out
}

// fmtDur prints a duration compactly: 850ms, 1.2s, 3m4s.
func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	default:
		return d.Round(time.Second).String()
	}
}

// logRing keeps the last lines written to it (the pipeline's log while the view owns the terminal).
type logRing struct {
	mu   sync.Mutex
	n    int
	buf  []string
	part []byte
}

func newLogRing(n int) *logRing { return &logRing{n: n} }

func (r *logRing) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.part = append(r.part, p...)
	for {
		i := bytes.IndexByte(r.part, '\n')
		if i < 0 {
			break
		}
		r.buf = append(r.buf, string(r.part[:i]))
		r.part = r.part[i+1:]
	}
	if len(r.buf) > r.n {
		r.buf = r.buf[len(r.buf)-r.n:]
	}
	return len(p), nil
}

func (r *logRing) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.buf...)
}

// terminalWidth returns the width of the terminal w, or 120.
func terminalWidth(w io.Writer) int {
	if f, ok := w.(*os.File); ok {
		if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 20 {
			return cols
		}
	}
	return 120
}

// clipWidth cuts s so that it takes at most width terminal cells. Escape sequences take none; wide runes (CJK,
// emoji) take two, combining marks none. It is an estimate good enough to keep one line on one row.
func clipWidth(s string, width int) string {
	cells := 0
	inEsc := false
	for i, r := range s {
		switch {
		case inEsc:
			if r >= '@' && r <= '~' && r != '[' {
				inEsc = false
			}
			continue
		case r == 0x1b:
			inEsc = true
			continue
		case unicode.Is(unicode.Mn, r) || unicode.Is(unicode.Me, r) || r == 0x200b || r == 0x200d || r == 0xfe0f:
			continue
		case r >= 0x1100 && (r <= 0x115f || r >= 0x2e80 && r <= 0xa4cf || r >= 0xac00 && r <= 0xd7a3 ||
			r >= 0xf900 && r <= 0xfaff || r >= 0xfe30 && r <= 0xfe4f || r >= 0xff00 && r <= 0xff60 ||
			r >= 0xffe0 && r <= 0xffe6 || r >= 0x1f300 && r <= 0x1faff || r >= 0x20000):
			cells += 2
		default:
			cells++
		}
		if cells > width {
			return s[:i] + "\x1b[0m"
		}
	}
	return s
}
