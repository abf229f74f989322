package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tagstream/tagstream/poller"
)

// fakeTerminal interprets what the view writes the way a terminal of cols × rows does: it follows the cursor and
// the screen in use, and counts the lines that scroll (on the normal screen they go to the scrollback), the
// lines that wrap because they are too long, and any escape cut short (an ANSI sequence or a backslash escape of
// quoted text).
type fakeTerminal struct {
	cols, rows int
	row, col   int
	alt        bool
	saved      [2]int // the cursor of the normal screen while the alternate one is in use
	scrolled   int    // lines scrolled off the top of the normal screen: the scrollback's growth
	altScrolls int    // scrolls on the alternate screen
	wraps      int    // lines too long for the width
	newlines   int    // newlines written on the normal screen
	problems   []string
}

func (t *fakeTerminal) feed(b []byte) {
	s := string(b)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == 0x1b:
			n := t.escape(s[i:])
			i += n
			continue
		case r == '\r':
			t.col = 0
		case r == '\n': // the tty driver turns it into CR LF (onlcr)
			if !t.alt {
				t.newlines++
			}
			t.col = 0
			t.lineFeed()
		case r == '\\':
			if n := backslashLen(s[i:]); !completeBackslash(s[i : i+n]) {
				t.problems = append(t.problems, fmt.Sprintf("backslash escape cut: %q", s[i:min(len(s), i+8)]))
			}
			t.put(1)
		default:
			t.put(runeCells(r))
		}
		i += size
	}
}

func (t *fakeTerminal) put(w int) {
	if t.col+w > t.cols {
		t.wraps++
		t.col = 0
		t.lineFeed()
	}
	t.col += w
}

func (t *fakeTerminal) lineFeed() {
	if t.row < t.rows-1 {
		t.row++
		return
	}
	if t.alt {
		t.altScrolls++
	} else {
		t.scrolled++
	}
}

// escape interprets the sequence at the start of s and returns its length.
func (t *fakeTerminal) escape(s string) int {
	if len(s) < 2 || s[1] != '[' {
		t.problems = append(t.problems, fmt.Sprintf("escape that is not a CSI sequence: %q", s[:min(len(s), 6)]))
		return 1
	}
	end := -1
	for j := 2; j < len(s); j++ {
		if s[j] >= 0x40 && s[j] <= 0x7e {
			end = j
			break
		}
		if !(s[j] >= 0x20 && s[j] <= 0x3f) {
			break
		}
	}
	if end < 0 {
		t.problems = append(t.problems, fmt.Sprintf("escape sequence cut: %q", s[:min(len(s), 8)]))
		return 1
	}
	params, final := s[2:end], s[end]
	switch {
	case final == 'H':
		t.row, t.col = 0, 0
	case final == 'A':
		n := 1
		fmt.Sscanf(params, "%d", &n)
		t.row = max(0, t.row-n)
	case params == "?1049" && final == 'h': // saves the cursor, then switches
		t.saved = [2]int{t.row, t.col}
		t.alt, t.row, t.col = true, 0, 0
	case params == "?1049" && final == 'l': // switches back, then restores the cursor
		t.alt, t.row, t.col = false, t.saved[0], t.saved[1]
	}
	return end + 1
}

// completeBackslash reports whether e (as backslashLen cut it) is a whole escape of strconv.Quote.
func completeBackslash(e string) bool {
	hex := func(s string) bool { return strings.Trim(s, "0123456789abcdefABCDEF") == "" }
	switch {
	case len(e) < 2:
		return false
	case e[1] == 'x':
		return len(e) == 4 && hex(e[2:])
	case e[1] == 'u':
		return len(e) == 6 && hex(e[2:])
	case e[1] == 'U':
		return len(e) == 10 && hex(e[2:])
	}
	return true
}

// busyFrame is a frame with every part filled, and lines made to be cut: quoted escapes, wide runes and an ESC
// from a log line at every offset around the terminal's width.
func busyFrame(now time.Time, cols int) viewFrame {
	f := viewFrame{elapsed: 42 * time.Second, phase: phaseRunning, api: "https://127.0.0.1:43211/v1", sink: "jetstream stream TAGSTREAM_DEMO",
		events: 1234, rate: 4.2, p50: 800 * time.Millisecond, p95: 2 * time.Second, now: now}
	for _, t := range demoTags {
		f.tags = append(f.tags, viewTag{name: t.name, posted: t.rate, events: 100, rate: t.rate, p50: time.Second, p95: 2 * time.Second, pollEvery: "1.2s", state: "catching up: 3 pages so far, 99 media pending"})
	}
	for i := range 4 {
		f.tokens = append(f.tokens, poller.TokenStatus{Index: i, Fingerprint: "3f2a9c01", Limit: 5000, Remaining: 4000 + i})
	}
	for k := range 12 {
		pad := strings.Repeat("x", max(0, cols-14-k))
		f.samples = append(f.samples, fmt.Sprintf("%s %q 東京 %q", pad, "line\u2028sep\x1bpara", "é\u0301"))
	}
	f.logs = []string{printable("time=... level=WARN msg=\"a log line with \x1b[31m colour\" " + strings.Repeat("y", cols))}
	return f
}

func TestTheLiveViewKeepsTheTerminalClean(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 30, 5, 12, 0, 0, time.UTC)
	tests := []struct {
		name       string
		cols, rows int
	}{
		{"a small terminal shows what fits", 60, 12},
		{"a tall terminal shows every line", 72, 80},
		{"a narrow terminal cuts every line", 30, 24},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			frames := 0
			v := &demoView{w: &out, tty: true, size: func() (int, int) { return tt.cols, tt.rows },
				data: func(time.Time) viewFrame { frames++; return busyFrame(now, tt.cols) }}
			v.note("burst: 120 media posted to #sunset at once")
			for range 50 {
				v.render(now)
			}
			term := &fakeTerminal{cols: tt.cols, rows: tt.rows}
			term.feed(out.Bytes())
			if !term.alt {
				t.Fatalf("the view does not draw on the alternate screen")
			}
			if term.scrolled != 0 || term.newlines != 0 || term.altScrolls != 0 {
				t.Errorf("50 frames scrolled %d lines into the scrollback (%d newlines on the normal screen) and the alternate screen %d times",
					term.scrolled, term.newlines, term.altScrolls)
			}
			if term.wraps != 0 {
				t.Errorf("%d lines were wider than %d columns", term.wraps, tt.cols)
			}
			if len(term.problems) > 0 {
				t.Errorf("escapes cut: %q", term.problems)
			}

			// The end: back on the normal screen, the last frame printed once, and nothing else scrolls.
			out.Reset()
			v.finish(now)
			v.render(now) // after finish: nothing
			term.feed(out.Bytes())
			lines := len(v.frameLines(busyFrame(now, tt.cols)))
			if term.alt || term.newlines != lines || term.wraps != 0 || len(term.problems) > 0 {
				t.Errorf("after finish: alternate screen %v, %d newlines (want the %d lines of the last frame), %d wraps, problems %q",
					term.alt, term.newlines, lines, term.wraps, term.problems)
			}
			if !strings.Contains(out.String(), "\x1b[?25h") {
				t.Errorf("finish does not show the cursor again")
			}
		})
	}
}

func TestThePlainViewSaysWhatTheDemoWaitsFor(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 30, 5, 12, 0, 0, time.UTC)
	var out bytes.Buffer
	var f viewFrame
	v := &demoView{w: &out, data: func(time.Time) viewFrame { return f }}
	steps := []struct {
		frame viewFrame
		want  string
	}{
		{viewFrame{phase: phaseStarting, waiting: "waiting for the broker (nats://x) to answer"}, "demo 0s: starting the pipeline: reaching the broker\ndemo 0s: waiting for the broker (nats://x) to answer\n"},
		{viewFrame{elapsed: time.Second, phase: phaseFirstPoll, waiting: "waiting for the first poll of every tag (3 of 8 done)"}, "demo 1s: waiting for the first poll of every tag\ndemo 1s: waiting for the first poll of every tag (3 of 8 done)\n"},
		{viewFrame{elapsed: 6 * time.Second, phase: phaseRunning, waiting: "waiting for the first event"}, "demo 6s: running\ndemo 6s: waiting for the first event\n"},
		{viewFrame{elapsed: 11 * time.Second, phase: phaseRunning, events: 3, samples: []string{"an event"}}, "demo 11s running: events=3 "},
	}
	for _, s := range steps {
		out.Reset()
		f = s.frame
		v.render(now)
		if !strings.HasPrefix(out.String(), s.want) {
			t.Errorf("printed %q, want it to start with %q", out.String(), s.want)
		}
	}
	if !strings.Contains(out.String(), "sample event: an event") {
		t.Errorf("the first sample is not printed: %q", out.String())
	}
}
