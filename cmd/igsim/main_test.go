package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tagstream/tagstream/testenv"
)

func TestParseTags(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []testenv.TagConfig
		wantErr bool
	}{
		{"an empty list gives no tags", "", nil, false},
		{"rates with the default initial", "coffee=0.5,tbt=2", []testenv.TagConfig{{Name: "coffee", Rate: 0.5, Initial: 7}, {Name: "tbt", Rate: 2, Initial: 7}}, false},
		{"an explicit initial and a leading #", " #ts=1:100 ", []testenv.TagConfig{{Name: "ts", Rate: 1, Initial: 100}}, false},
		{"a missing rate is an error", "coffee", nil, true},
		{"a non-numeric rate is an error", "coffee=fast", nil, true},
		{"a non-numeric initial is an error", "coffee=1:many", nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseTags(tc.in, 7)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v, wantErr %v", err, tc.wantErr)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("tag %d: %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestParseSchedule(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	got, err := parseSchedule("Reset@10s+5s, Error500@1m+1h", now)
	if err != nil {
		t.Fatal(err)
	}
	want := []testenv.ScheduledFault{{Kind: "Reset", At: now.Add(10 * time.Second), For: 5 * time.Second}, {Kind: "Error500", At: now.Add(time.Minute), For: time.Hour}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("got %+v", got)
	}
	for _, bad := range []string{"Reset", "Reset@10s", "Reset@x+1s", "Reset@1s+y"} {
		if _, err := parseSchedule(bad, now); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestParseReadsTokensFromFileAndEnvironment(t *testing.T) {
	file := filepath.Join(t.TempDir(), "toks")
	if err := os.WriteFile(file, []byte("# comment\nfile-token-1\n\n  file-token-2  \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"IGSIM_TOKENS": "env-a, env-b", "IGSIM_CLIENT_IDS": "cid-2"}
	o, err := parse([]string{"-tokens-file", file, "-client-ids", "cid-1", "-cursors", "opaque", "-over-limit", "429flat",
		"-plain-http", "-inclusive-min", "-retention", "9", "-seed", "3", "-rate-limit", "10", "-time-scale", "3600",
		"-fault-500", "0.1", "-slow-delay", "1s", "-tags", "a=1"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c := o.cfg
	if strings.Join(c.Tokens, ",") != "file-token-1,file-token-2,env-a,env-b" || strings.Join(c.ClientIDs, ",") != "cid-1,cid-2" {
		t.Errorf("tokens %d, client ids %v", len(c.Tokens), c.ClientIDs)
	}
	if c.Cursors != testenv.CursorOpaque || c.OverLimit != testenv.Over429Flat || !c.PlainHTTP || !c.InclusiveMin ||
		c.Retention != 9 || c.Seed != 3 || c.RequestsPerHour != 10 || c.TimeScale != 3600 || c.Faults.Error500 != 0.1 ||
		c.Faults.SlowDelay != time.Second || len(c.Tags) != 1 {
		t.Errorf("config %+v", c)
	}
	for _, bad := range [][]string{{"-cursors", "roman"}, {"-over-limit", "418"}, {"-tokens-file", "/nonexistent/x"}, {"extra"}, {"-tags", "x"}} {
		if _, err := parse(bad, func(string) string { return "" }, io.Discard); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
	if _, err := parse([]string{"-h"}, func(string) string { return "" }, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRunServesUntilCancelledAndNeverPrintsTokens(t *testing.T) {
	const secret = "never-print-me-123"
	ctx, cancel := context.WithCancel(context.Background())
	var out, logs syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-plain-http", "-tags", "coffee=0:5", "-log-level", "debug"},
			func(k string) string {
				if k == "IGSIM_TOKENS" {
					return secret
				}
				return ""
			}, &out, &logs)
	}()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(out.String(), "admin") {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("no URLs printed: %q", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	var api string
	for _, line := range strings.Split(out.String(), "\n") {
		if rest, ok := strings.CutPrefix(line, "igsim: API   "); ok {
			api = rest
		}
	}
	resp, err := http.Get(api + "/tags/coffee/media/recent?access_token=" + secret)
	if err != nil {
		cancel()
		t.Fatal("request failed") // the error would print the token
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("status %d", resp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
	if strings.Contains(out.String()+logs.String(), secret) {
		t.Error("a token was printed")
	}
}

func TestRunMakesATokenWhenNoneIsGiven(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-plain-http"}, func(string) string { return "" }, &out, io.Discard) }()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(out.String(), "token ") {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("no token file printed: %q", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	var path string
	for _, line := range strings.Split(out.String(), "\n") {
		if rest, ok := strings.CutPrefix(line, "igsim: token "); ok {
			path, _, _ = strings.Cut(rest, " ")
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v", st.Mode().Perm())
	}
	tok := strings.TrimSpace(string(b))
	if strings.Contains(out.String(), tok) {
		t.Error("the generated token was printed")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("token file left behind: %v", err)
	}
}
