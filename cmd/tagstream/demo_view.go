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
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/tagstream/tagstream/poller"
)

// Terminal control sequences of the live view.
const (
	enterAltScreen = "\x1b[?1049h\x1b[?25l" // the alternate screen (the scrollback is left alone), cursor hidden
	leaveAltScreen = "\x1b[?25h\x1b[?1049l" // back to the normal screen, cursor shown
	cursorHome     = "\x1b[H"
	clearLineRest  = "\x1b[K"
	clearBelow     = "\x1b[J"
	bold, plain    = "\x1b[1m", "\x1b[0m"
)

// viewFrame is what one refresh of the view shows. The demo fills it (demo.frame); the view draws it.
type viewFrame struct {
	elapsed    time.Duration
	phase      string
	waiting    string // what the demo waits for, until events flow ("" then)
	api, sink  string
	events     int
	dups, gaps int
	rate       float64 // events per second over the last seconds, all tags
	p50, p95   time.Duration
	tags       []viewTag
	tokens     []poller.TokenStatus
	samples    []string
	logs       []string
	now        time.Time
}

// viewTag is one tag's row.
type viewTag struct {
	name      string
	posted    float64 // media per second the simulator posts
	events    int
	rate      float64 // events per second over the last seconds
	p50, p95  time.Duration
	pollEvery string
	state     string // what the tag is doing, as tagstream status says it
}

// demoView draws the demo's live view. On a terminal it draws on the alternate screen, redrawing in place from
// the top left corner, every line cut to the terminal's width and the frame to its height, so that nothing
// scrolls and the scrollback stays as it was; finish leaves the alternate screen and prints the last frame once
// on the normal screen, where it stays. Elsewhere (a pipe, a file, --plain) it prints one line per refresh, and
// a line for each new phase, sample and note. Its methods are safe for concurrent use.
type demoView struct {
	w    io.Writer
	tty  bool
	size func() (cols, rows int) // the terminal's size
	data func(now time.Time) viewFrame

	mu           sync.Mutex
	notes        []string
	onAlt        bool
	finished     bool
	last         viewFrame
	lastPhase    string // plain mode: the phase last printed
	lastSample   string // plain mode: the last sample printed
	printedNotes int    // plain mode: notes already printed
}

// newDemoView returns a view writing to w; tty says whether w is a terminal (then its size is asked each frame).
func newDemoView(w io.Writer, tty bool, data func(time.Time) viewFrame) *demoView {
	return &demoView{w: w, tty: tty, data: data, size: func() (int, int) { return terminalSize(w) }}
}

// note adds a line to the view's notes (bursts and the like); the last three are shown.
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

// loop draws a frame at once and then every interval until ctx ends.
func (v *demoView) loop(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		v.render(time.Now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// render draws one frame (terminal) or prints the lines of one refresh (elsewhere).
func (v *demoView) render(now time.Time) {
	f := v.data(now)
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.finished {
		return
	}
	v.last = f
	if !v.tty {
		v.printPlain(f)
		return
	}
	if !v.onAlt {
		io.WriteString(v.w, enterAltScreen)
		v.onAlt = true
	}
	cols, rows := v.size()
	v.w.Write(drawFrame(v.frameLines(f), cols, rows))
}

// finish ends the view: on a terminal it leaves the alternate screen and prints the last frame (with a final
// refresh) on the normal screen, where it stays above the summary. Later calls do nothing.
func (v *demoView) finish(now time.Time) {
	f := v.data(now)
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.finished {
		return
	}
	v.finished = true
	if !v.tty {
		v.printPlain(f)
		return
	}
	if v.onAlt {
		io.WriteString(v.w, leaveAltScreen)
		v.onAlt = false
	}
	cols, _ := v.size()
	var b bytes.Buffer
	for _, l := range v.frameLines(f) {
		b.WriteString(clipWidth(l, cols-1))
		b.WriteString("\n")
	}
	v.w.Write(b.Bytes())
}

// drawFrame returns the bytes that redraw lines in place on a terminal of cols × rows: from the top left corner,
// each line cut to cols-1 cells (the last column would wrap on some terminals) and cleared to its end, at most
// rows-1 lines and no newline after the last one (a newline on the bottom row scrolls), then the rest of the
// screen cleared.
func drawFrame(lines []string, cols, rows int) []byte {
	if len(lines) > rows-1 {
		lines = lines[:max(rows-1, 1)]
	}
	var b bytes.Buffer
	b.WriteString(cursorHome)
	for i, l := range lines {
		if i > 0 {
			b.WriteString("\r\n")
		}
		b.WriteString(clipWidth(l, cols-1))
		b.WriteString(clearLineRest)
	}
	b.WriteString(clearBelow)
	return b.Bytes()
}

// frameLines lays out a terminal frame. Every text that comes from outside (events, logs) is escaped already.
func (v *demoView) frameLines(f viewFrame) []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	add("%stagstream demo%s  %s  %s", bold, plain, f.elapsed.Round(time.Second), f.phase)
	add("API %s  ->  %s", f.api, f.sink)
	if f.waiting != "" {
		add("%s%s%s", bold, f.waiting, plain)
	} else {
		add("events %d  rate %.1f/s  duplicates %d  gaps %d  post->event p50 %s  p95 %s", f.events, f.rate, f.dups, f.gaps, fmtDur(f.p50), fmtDur(f.p95))
	}
	add("")
	add("%s%-18s %9s %8s %8s %8s %8s %10s  %s%s", bold, "TAG", "POSTED/s", "EVENTS", "RATE/s", "P50", "P95", "POLL EVERY", "STATE", plain)
	for _, t := range f.tags {
		add("#%-17s %9.2f %8d %8.1f %8s %8s %10s  %s", t.name, t.posted, t.events, t.rate, fmtDur(t.p50), fmtDur(t.p95), t.pollEvery, t.state)
	}
	if len(f.tokens) > 0 {
		add("")
		add("%s%-6s %-12s %-20s %s%s", bold, "TOKEN", "FINGERPRINT", "BUDGET LEFT", "STATE", plain)
		for _, t := range f.tokens {
			add("%-6d %-12s %-20s %s", t.Index+1, t.Fingerprint, budgetLeft(t), tokenState(t, f.now))
		}
	}
	if len(f.samples) > 0 {
		add("")
		add("%srecent events%s", bold, plain)
		for _, l := range f.samples {
			add("  %s", l)
		}
	}
	if len(v.notes) > 0 || len(f.logs) > 0 {
		add("")
		add("%snotes%s", bold, plain)
		for _, n := range v.notes {
			add("  %s", n)
		}
		for _, l := range f.logs {
			add("  %s", l)
		}
	}
	if f.phase != phaseDone {
		add("")
		add("Ctrl-C ends the demo with a summary.")
	}
	return out
}

// printPlain prints one refresh for a pipe or a file: the phase when it changed, a status line, a new sample
// and new notes.
func (v *demoView) printPlain(f viewFrame) {
	if f.phase != v.lastPhase {
		fmt.Fprintf(v.w, "demo %s: %s\n", f.elapsed.Round(time.Second), f.phase)
		v.lastPhase = f.phase
	}
	if f.waiting != "" {
		fmt.Fprintf(v.w, "demo %s: %s\n", f.elapsed.Round(time.Second), f.waiting)
	} else {
		var budget []string
		parked, retired := 0, 0
		for _, t := range f.tokens {
			budget = append(budget, fmt.Sprint(t.Remaining))
			if t.Retired {
				retired++
			} else if t.ParkedUntil.After(f.now) {
				parked++
			}
		}
		fmt.Fprintf(v.w, "demo %s %s: events=%d rate=%.1f/s duplicates=%d gaps=%d post-to-event p50=%s p95=%s budget-left=%s parked=%d retired=%d\n",
			f.elapsed.Round(time.Second), f.phase, f.events, f.rate, f.dups, f.gaps, fmtDur(f.p50), fmtDur(f.p95), strings.Join(budget, ","), parked, retired)
	}
	if n := len(f.samples); n > 0 && f.samples[n-1] != v.lastSample {
		v.lastSample = f.samples[n-1]
		fmt.Fprintf(v.w, "  sample event: %s\n", clipWidth(v.lastSample, 200))
	}
	for _, n := range v.notes[v.printedNotes:] {
		fmt.Fprintf(v.w, "  %s\n", n)
	}
	v.printedNotes = len(v.notes)
}

func budgetLeft(t poller.TokenStatus) string {
	if t.Remaining < 0 {
		return "?"
	}
	return fmt.Sprintf("%d / %d", t.Remaining, t.Limit)
}

func tokenState(t poller.TokenStatus, now time.Time) string {
	switch {
	case t.Retired:
		return "retired"
	case t.ParkedUntil.After(now):
		return "parked " + fmtDur(t.ParkedUntil.Sub(now))
	}
	return "ok"
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

// logRing keeps the last lines written to it (the pipeline's log while the view owns the terminal), escaped.
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
		r.buf = append(r.buf, printable(string(r.part[:i])))
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

// terminalSize returns the size of the terminal w, or 120 × 40.
func terminalSize(w io.Writer) (cols, rows int) {
	if f, ok := w.(*os.File); ok {
		if c, r, err := term.GetSize(int(f.Fd())); err == nil && c > 20 && r > 5 {
			return c, r
		}
	}
	return 120, 40
}

// printable replaces what a terminal would interpret (control and format characters such as ESC, from an event
// or a log line) by a visible escape (\u001b), so that a caption cannot move the cursor or change colours.
func printable(s string) string {
	if !strings.ContainsFunc(s, nonPrintable) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if nonPrintable(r) {
			fmt.Fprintf(&b, `\u%04x`, r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func nonPrintable(r rune) bool { return r != ' ' && !unicode.IsPrint(r) || r == utf8.RuneError }

// clipWidth cuts s so that it takes at most width terminal cells, at a character boundary and never inside an
// escape: an ANSI sequence (ESC [ ... final byte) takes no room and is kept whole; a backslash escape of quoted
// text (\", \\, \n, \xHH, \uHHHH, \UHHHHHHHH) is one unit, kept whole or cut before; wide runes (CJK, emoji) take
// two cells, combining marks none. A cut line that holds an escape sequence ends with a reset of the colours; one
// without (the --plain view, a terminal without colours) is only cut.
func clipWidth(s string, width int) string {
	cells := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		var unit, w int
		switch {
		case r == 0x1b:
			unit, w = ansiLen(s[i:]), 0
		case r == '\\':
			unit = backslashLen(s[i:])
			w = unit // ASCII
		default:
			unit, w = size, runeCells(r)
		}
		if cells+w > width {
			if strings.IndexByte(s[:i], 0x1b) < 0 {
				return s[:i]
			}
			return s[:i] + plain
		}
		cells += w
		i += unit
	}
	return s
}

// ansiLen returns the length of the escape sequence at the start of s (CSI: ESC [ params final; otherwise ESC
// and one byte).
func ansiLen(s string) int {
	if len(s) < 2 {
		return len(s)
	}
	if s[1] != '[' {
		return 2
	}
	for j := 2; j < len(s); j++ {
		if s[j] >= 0x40 && s[j] <= 0x7e {
			return j + 1
		}
	}
	return len(s)
}

// backslashLen returns the length of the backslash escape at the start of s, as strconv.Quote writes them.
func backslashLen(s string) int {
	if len(s) < 2 {
		return 1
	}
	n := 2
	switch s[1] {
	case 'x':
		n = 4
	case 'u':
		n = 6
	case 'U':
		n = 10
	case '0', '1', '2', '3', '4', '5', '6', '7':
		n = 4
	}
	return min(n, len(s))
}

// runeCells is an estimate of the cells r takes: 0 for combining marks and zero-width joiners, 2 for wide runes.
func runeCells(r rune) int {
	switch {
	case unicode.Is(unicode.Mn, r) || unicode.Is(unicode.Me, r) || r == 0x200b || r == 0x200d || r == 0xfe0f:
		return 0
	case r >= 0x1100 && (r <= 0x115f || r >= 0x2e80 && r <= 0xa4cf || r >= 0xac00 && r <= 0xd7a3 ||
		r >= 0xf900 && r <= 0xfaff || r >= 0xfe30 && r <= 0xfe4f || r >= 0xff00 && r <= 0xff60 ||
		r >= 0xffe0 && r <= 0xffe6 || r >= 0x1f300 && r <= 0x1faff || r >= 0x20000):
		return 2
	}
	return 1
}
