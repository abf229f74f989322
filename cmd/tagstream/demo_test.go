package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tagstream/tagstream/internal/config"
	"github.com/tagstream/tagstream/internal/consume"
	"github.com/tagstream/tagstream/schema"
	"github.com/tagstream/tagstream/testenv"
)

func TestClipWidth(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		width int
		want  string
	}{
		{"a short line is kept", "hello", 10, "hello"},
		{"a long line is cut", "hello world", 5, "hello"},
		{"escape sequences take no room", "\x1b[1mbold\x1b[0m", 4, "\x1b[1mbold\x1b[0m"},
		{"wide characters take two cells", "東京東京", 5, "東京"},
		{"combining marks take none", "e\u0301e\u0301", 2, "e\u0301e\u0301"},
		{"a quoted escape is kept whole", `ab\u2028c`, 8, "ab\\u2028"},
		{"a quoted escape that does not fit is cut before", `ab\u2028c`, 6, "ab"},
		{"a quoted backslash is one unit", `a\\b`, 2, "a"},
		{"an escape sequence at the cut is kept whole", "ab\x1b[31mcd", 2, "ab\x1b[31m\x1b[0m"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := clipWidth(tt.in, tt.width); got != tt.want {
				t.Errorf("clipWidth(%q, %d) = %q, want %q", tt.in, tt.width, got, tt.want)
			}
		})
	}
}

func TestDemoStatsComparesWithTheGroundTruth(t *testing.T) {
	start := time.Now()
	s := newDemoStats([]string{"a", "b"})
	s.setWorkStart(start)
	media := func(id, tag, mediaID string, at time.Duration) consume.Message {
		return consume.Message{ReceivedAt: start.Add(at), Event: &schema.Event{ID: id, Type: schema.MediaEventType, Subject: tag,
			Data: &schema.MediaData{MediaID: mediaID}}}
	}
	s.add(media("e1", "a", "m1", 2*time.Second))
	s.add(media("e1", "a", "m1", 3*time.Second)) // a duplicate
	s.add(media("e2", "b", "m2", 4*time.Second))
	s.add(media("e3", "b", "m3", 5*time.Second))
	s.add(consume.Message{Event: &schema.Event{ID: "g1", Type: schema.GapEventType, Subject: "b", Gap: &schema.GapData{Missing: -1}}})
	s.add(consume.Message{JSON: []byte("garbage"), Err: consume.ErrNotEvent})
	truth := []testenv.Truth{
		{Tag: "a", MediaID: "old", VisibleAt: start.Add(-time.Minute)}, // before the workload: not expected
		{Tag: "a", MediaID: "m1", VisibleAt: start.Add(time.Second)},
		{Tag: "b", MediaID: "m2", VisibleAt: start.Add(time.Second)},
		{Tag: "b", MediaID: "m3", VisibleAt: start.Add(time.Second)},
		{Tag: "b", MediaID: "m4", VisibleAt: start.Add(time.Second)}, // never consumed
		{Tag: "b", MediaID: "m5", VisibleAt: start.Add(time.Second), DeletedAt: start.Add(time.Second)},
	}
	s.resolve(truth)
	sum := s.summary(truth)
	if sum.consumed != 3 || sum.expected != 4 || sum.missing != 1 || sum.duplicates != 1 || sum.gaps != 1 {
		t.Errorf("summary = %+v", sum)
	}
	if sum.p50 != 3*time.Second || sum.max != 4*time.Second {
		t.Errorf("latencies p50 %s max %s, want 3s and 4s", sum.p50, sum.max)
	}
	if len(sum.missingIDs) != 1 || sum.missingIDs[0] != "b/m4" {
		t.Errorf("missing ids = %v", sum.missingIDs)
	}
}

func TestDemoEndsWithASummaryAndNothingMissing(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("the demo runs for several seconds")
	}
	r := run(t, nil, "demo", "--duration", "2s", "--seed", "7", "--rate-scale", "8", "--refresh", "500ms", "--requests-per-hour", "36000")
	if r.code != 0 {
		t.Fatalf("demo exited %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	for _, w := range []string{"demo 0s: starting the pipeline: reaching the broker\ndemo 0s: waiting for the broker", "Summary", "missing              0", "duplicates           0", "post to event", "budget-left=", "sink jetstream stream TAGSTREAM_DEMO"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("demo output does not contain %q:\n%s", w, r.stdout)
		}
	}
	if i := strings.IndexByte(r.stdout, 0x1b); i >= 0 { // not a terminal: the plain view, cut lines included
		t.Errorf("demo output to a pipe holds an escape sequence at %d: %q", i, r.stdout[max(0, i-40):i+4])
	}
	var consumed, posted int
	for _, l := range strings.Split(r.stdout, "\n") {
		if strings.Contains(l, "events consumed") {
			fmt.Sscanf(strings.TrimSpace(l), "events consumed %d (of %d", &consumed, &posted)
		}
	}
	if consumed == 0 || consumed != posted {
		t.Errorf("demo consumed %d of %d posted media", consumed, posted)
	}
}

func TestDemoHelpListsEveryValueItAccepts(t *testing.T) {
	t.Parallel()
	help := run(t, nil, "demo", "--help").stdout
	for flag, values := range map[string][]string{"sink": demoSinks, "log-level": config.Values("log-level")} {
		for _, v := range values {
			t.Run("--"+flag+" "+v+" is listed and accepted", func(t *testing.T) {
				if !strings.Contains(help, v) {
					t.Errorf("demo --help does not list %s for --%s", v, flag)
				}
				o := demoOptions{sink: "jetstream", logLevel: "warn", tokens: 1, requestsPerHour: 100, rateScale: 1, drain: time.Second, kafkaBrokers: "k:9092"}
				if flag == "sink" {
					o.sink = v
				} else {
					o.logLevel = v
				}
				if err := o.validate(); err != nil {
					t.Errorf("--%s %s is listed but refused: %v", flag, v, err)
				}
			})
		}
	}
}

func TestTheSandboxDirectoryIsOnlyEmptiedWhenASandboxMadeIt(t *testing.T) {
	t.Parallel()
	write := func(t *testing.T, dir, name string) {
		t.Helper()
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("a new directory is made", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "a", "sandbox")
		if err := prepareSandbox(dir); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(dir, sandboxMarker)); err != nil {
			t.Errorf("no marker: %v", err)
		}
	})
	t.Run("an earlier sandbox is emptied", func(t *testing.T) {
		dir := t.TempDir()
		write(t, dir, sandboxMarker)
		write(t, filepath.Join(dir, "state"), "checkpoints.db")
		if err := prepareSandbox(dir); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(dir, "state")); !os.IsNotExist(err) {
			t.Errorf("the old state is still there: %v", err)
		}
	})
	t.Run("any other directory with files is refused and left alone", func(t *testing.T) {
		dir := t.TempDir()
		write(t, dir, "thesis.tex")
		err := prepareSandbox(dir)
		if !isConfigError(err) || !strings.Contains(err.Error(), "not empty and not a sandbox") {
			t.Fatalf("error = %v, want a configuration error", err)
		}
		if _, err := os.Stat(filepath.Join(dir, "thesis.tex")); err != nil {
			t.Errorf("the file is gone: %v", err)
		}
	})
	t.Run("the default is the user's state directory", func(t *testing.T) {
		if got := defaultSandboxDir([]string{"HOME=/home/ann"}); got != "/home/ann/.local/state/tagstream/sandbox" {
			t.Errorf("default = %s", got)
		}
		if got := defaultSandboxDir([]string{"HOME=/home/ann", "XDG_STATE_HOME=/st"}); got != "/st/tagstream/sandbox" {
			t.Errorf("default = %s", got)
		}
	})
	for _, tt := range []struct{ name, want string }{{"--dir without --keep-running", "only --keep-running keeps a sandbox directory"}, {"--keep-running with --nats-url", "goes without --sink kafka and --nats-url"}} {
		t.Run(tt.name+" is a usage error", func(t *testing.T) {
			args := []string{"demo", "--dir", t.TempDir()}
			if strings.Contains(tt.name, "nats-url") {
				args = []string{"demo", "--keep-running", "--nats-url", "nats://127.0.0.1:4222"}
			}
			if r := run(t, nil, args...); r.code != 2 || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("exit %d, stderr %s", r.code, r.stderr)
			}
		})
	}
}
