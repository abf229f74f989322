package main

import (
	"bytes"
	"errors"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tagstream/tagstream/internal/config"
	"github.com/tagstream/tagstream/poller"
	"github.com/tagstream/tagstream/testenv"
)

func TestUsableToken(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name    string
		tokens  []poller.TokenStatus
		wantErr string
	}{
		{"one working token among retired ones is enough", []poller.TokenStatus{{Retired: true}, {}}, ""},
		{"a token whose parking ended is usable", []poller.TokenStatus{{ParkedUntil: now.Add(-time.Second)}}, ""},
		{"every token parked is not ready", []poller.TokenStatus{{ParkedUntil: now.Add(time.Minute)}, {Retired: true}}, "1 tokens parked"},
		{"every token retired is not ready", []poller.TokenStatus{{Retired: true}, {Retired: true}}, "all 2 tokens retired"},
		{"no tokens is not ready", nil, "no tokens"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := usableToken(tt.tokens, now)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestErrorsNeverCarryTheToken(t *testing.T) {
	const tok = "9999999.topsecretvalue"
	cfg := &config.Config{Credentials: []config.Credential{{Value: tok}}, NATSPassword: "hunter2"}
	red := newRedactor(cfg)
	ue := &url.Error{Op: "Get", URL: "https://api.example.com/v1/tags/x/media/recent?access_token=" + url.QueryEscape(tok),
		Err: errors.New("connection refused")}
	tests := []struct {
		name string
		text string
	}{
		{"a url.Error is described without its URL", httpProblem(ue)},
		{"the redactor removes a token from any text", red.String("failed: " + ue.Error())},
		{"the redactor removes secrets of the broker too", red.String("auth hunter2 failed")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if strings.Contains(tt.text, "topsecret") || strings.Contains(tt.text, "hunter2") {
				t.Errorf("%q holds a secret", tt.text)
			}
		})
	}
	if got := httpProblem(ue); got != "connection refused" {
		t.Errorf("httpProblem = %q", got)
	}
}

func TestClipWidth(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		width int
		want  string
	}{
		{"a short line is kept", "hello", 10, "hello"},
		{"a long line is cut", "hello world", 5, "hello\x1b[0m"},
		{"escape sequences take no room", "\x1b[1mbold\x1b[0m", 4, "\x1b[1mbold\x1b[0m"},
		{"wide characters take two cells", "東京東京", 5, "東京\x1b[0m"},
		{"combining marks take none", "e\u0301e\u0301", 2, "e\u0301e\u0301"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := clipWidth(tt.in, tt.width); got != tt.want {
				t.Errorf("clipWidth(%q, %d) = %q, want %q", tt.in, tt.width, got, tt.want)
			}
		})
	}
}

func TestPrettyLine(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []string
	}{
		{"a media event shows time, tag, type, id, user and caption",
			`{"specversion":"1.0","id":"e1","type":"io.tagstream.media.v1","subject":"sunset","time":"2015-09-29T20:06:00Z","data":{"media_id":"1_2","type":"image","link":"https://x/p/1","caption":"red\nsky","user":{"username":"ann"}}}`,
			[]string{"2015-09-29 20:06:00", "#sunset", "image", "1_2", "@ann", `"red sky"`, "https://x/p/1"}},
		{"a gap marker says what is missing",
			`{"id":"g1","type":"io.tagstream.gap.v1","subject":"tea","data":{"from_cursor":"A","to_cursor":"B","missing":null,"reason":"retention"}}`,
			[]string{"#tea", "GAP", "unknown media missing", "A and B", "retention"}},
		{"an unreadable body is shown clipped", `not json`, []string{"unreadable event: not json"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			p := newPrinter(&out, tailOptions{})
			p.event([]byte(tt.body), nil, "")
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("line %q does not contain %q", out.String(), w)
				}
			}
		})
	}
}

func TestDemoStatsComparesWithTheGroundTruth(t *testing.T) {
	start := time.Now()
	s := newDemoStats([]string{"a", "b"})
	s.setWorkStart(start)
	ev := func(id, tag, media string) []byte {
		return []byte(`{"id":"` + id + `","type":"io.tagstream.media.v1","subject":"` + tag + `","data":{"media_id":"` + media + `"}}`)
	}
	s.add(ev("e1", "a", "m1"), nil, start.Add(2*time.Second))
	s.add(ev("e1", "a", "m1"), nil, start.Add(3*time.Second)) // a duplicate
	s.add(ev("e2", "b", "m2"), map[string]string{}, start.Add(4*time.Second))
	s.add([]byte(`{"media_id":"m3"}`), map[string]string{"ce_id": "e3", "ce_subject": "b", "ce_type": "io.tagstream.media.v1"}, start.Add(5*time.Second))
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
	if sum.consumed != 3 || sum.expected != 4 || sum.missing != 1 || sum.duplicates != 1 {
		t.Errorf("summary = %+v", sum)
	}
	if sum.p50 != 3*time.Second || sum.max != 4*time.Second {
		t.Errorf("latencies p50 %s max %s, want 3s and 4s", sum.p50, sum.max)
	}
	if len(sum.missingIDs) != 1 || sum.missingIDs[0] != "b/m4" {
		t.Errorf("missing ids = %v", sum.missingIDs)
	}
}

func TestCommandLineInProcess(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		stdout   string
		stderr   string
	}{
		{"version prints to stdout", []string{"version"}, 0, "tagstream ", ""},
		{"help of a command goes to stdout", []string{"help", "tail"}, 0, "Usage: tagstream tail", ""},
		{"a stray argument is a usage error", []string{"version", "extra"}, 2, "", `unexpected argument "extra"`},
		{"a demo flag out of range is a usage error", []string{"demo", "--tokens", "0"}, 2, "", "tokens (--tokens): 0 is out of range"},
		{"tail refuses the file sink", []string{"tail", "--sink", "file", "--output", "/tmp/x"}, 2, "", "tail reads jetstream, nats or kafka"},
		{"tail refuses history on core NATS", []string{"tail", "--sink", "nats", "--from-beginning"}, 2, "", "core NATS keeps no history"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			c := &cli{stdout: &out, stderr: &errb}
			if code := c.main(tt.args); code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stderr %s", code, tt.wantCode, errb.String())
			}
			if !strings.Contains(out.String(), tt.stdout) || !strings.Contains(errb.String(), tt.stderr) {
				t.Errorf("stdout %q, stderr %q", out.String(), errb.String())
			}
		})
	}
}

func TestDefaultDeadLetterIsAFileInTheStateDir(t *testing.T) {
	discard := slog.New(slog.DiscardHandler)
	tests := []struct {
		name     string
		sink     string
		dead     string
		stateDir bool
		wantFile bool
	}{
		{name: "a broker sink with no dead-letter key writes refused events to the state dir", sink: config.SinkKafka, stateDir: true, wantFile: true},
		{name: "jetstream likewise", sink: config.SinkJetStream, stateDir: true, wantFile: true},
		{name: "a configured dead-letter subject wins", sink: config.SinkJetStream, dead: "tagstream.dead", stateDir: true},
		{name: "the file sink never refuses an event", sink: config.SinkFile, stateDir: true},
		{name: "no state dir leaves the publisher's own default", sink: config.SinkKafka},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config.Defaults()
			cfg.Sink, cfg.DeadLetter, cfg.StateDir = tt.sink, tt.dead, ""
			if tt.stateDir {
				cfg.StateDir = filepath.Join(t.TempDir(), "state")
			}
			s := &sink{}
			d, err := defaultDeadLetter(&cfg, s, discard)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			if (d != nil) != tt.wantFile {
				t.Fatalf("dead-letter destination = %v, want a file: %v", d, tt.wantFile)
			}
			if tt.wantFile {
				if _, err := os.Stat(filepath.Join(cfg.StateDir, DeadLetterFile)); err != nil {
					t.Fatalf("dead-letter file: %v", err)
				}
			}
		})
	}
}
