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
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tagstream/tagstream/internal/testkit"
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

// waitTimeout bounds testkit.Eventually: a safety net against a hung test, never a timing assertion.
const waitTimeout = 15 * time.Second

// startRun runs igsim with args and env in the background until the test ends, and returns its standard output
// once it printed every start line (the limit line is the last).
func startRun(t *testing.T, args []string, env map[string]string, logs io.Writer) *testkit.SyncBuffer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &testkit.SyncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, func(k string) string { return env[k] }, out, logs) }()
	t.Cleanup(func() {
		cancel()
		if err := testkit.Receive(t, done, waitTimeout, "igsim to stop"); err != nil {
			t.Errorf("run: %v", err)
		}
	})
	testkit.Eventually(t, waitTimeout, "igsim to print its start lines", func() bool { return out.Contains("igsim: limit ") })
	return out
}

// printed returns the rest of the first line of out that starts with prefix.
func printed(out *testkit.SyncBuffer, prefix string) string {
	for _, line := range strings.Split(out.String(), "\n") {
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			return rest
		}
	}
	return ""
}

func TestRunServesUntilCancelledAndNeverPrintsTokens(t *testing.T) {
	const secret = "never-print-me-123"
	var logs testkit.SyncBuffer
	var out *testkit.SyncBuffer
	t.Run("it serves with the token from the environment", func(t *testing.T) {
		out = startRun(t, []string{"-plain-http", "-tags", "coffee=0:5", "-log-level", "debug"},
			map[string]string{"IGSIM_TOKENS": secret}, &logs)
		resp, err := http.Get(printed(out, "igsim: API   ") + "/tags/coffee/media/recent?access_token=" + secret)
		if err != nil {
			t.Fatal("request failed") // the error would print the token
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("status %d", resp.StatusCode)
		}
	}) // the subtest's cleanup stopped igsim
	if !strings.Contains(out.String(), "igsim: stopping") {
		t.Errorf("igsim did not say it stopped: %q", out.String())
	}
	if strings.Contains(out.String()+logs.String(), secret) {
		t.Error("a token was printed")
	}
}

func TestRunMakesATokenWhenNoneIsGiven(t *testing.T) {
	var path string
	t.Run("it prints the path of a private token file", func(t *testing.T) {
		out := startRun(t, []string{"-plain-http"}, nil, io.Discard)
		path, _, _ = strings.Cut(printed(out, "igsim: token "), " ")
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := os.Stat(path)
		if st.Mode().Perm() != 0o600 {
			t.Errorf("token file mode %v", st.Mode().Perm())
		}
		if tok := strings.TrimSpace(string(b)); tok == "" || strings.Contains(out.String(), tok) {
			t.Error("the generated token is empty or was printed")
		}
	}) // the subtest's cleanup stopped igsim
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("token file left behind: %v", err)
	}
}

// TestRunCompressesTheHourWithTimeScale runs the command as a benchmark would, with one simulated hour per real
// minute: it prints the window, and its headers count in per-hour units within that minute.
func TestRunCompressesTheHourWithTimeScale(t *testing.T) {
	const tok = "compressed-hour-token"
	out := startRun(t, []string{"-plain-http", "-time-scale", "60", "-rate-limit", "40", "-tags", "coffee=0:3"},
		map[string]string{"IGSIM_TOKENS": tok}, io.Discard)
	if got := printed(out, "igsim: limit "); got != "40 requests per 1m0s per token (one simulated hour)" {
		t.Fatalf("limit line %q; want the per-hour limit and the one-minute window", got)
	}
	u := printed(out, "igsim: API   ") + "/tags/coffee/media/recent.json?access_token=" + tok
	// The test's requests take far less than the one-minute window.
	for i := range 41 {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal("request failed") // the error would print the token
		}
		resp.Body.Close()
		wantStatus, wantRemaining := 200, strconv.Itoa(40-1-i)
		if i == 40 {
			wantStatus, wantRemaining = 503, "0"
		}
		if lim, rem := resp.Header.Get("X-Ratelimit-Limit"), resp.Header.Get("X-Ratelimit-Remaining"); resp.StatusCode != wantStatus || lim != "40" || rem != wantRemaining {
			t.Fatalf("request %d: status %d, X-Ratelimit-Limit %q, X-Ratelimit-Remaining %q; want %d, 40, %s",
				i+1, resp.StatusCode, lim, rem, wantStatus, wantRemaining)
		}
	}
}

func TestHelpExplainsTheTimeScale(t *testing.T) {
	var help bytes.Buffer
	if _, err := parse([]string{"-h"}, func(string) string { return "" }, &help); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	for _, want := range []string{"-time-scale", "60 makes the hour one real minute", "RateWindow", "-rate-limit", "X-Ratelimit-Limit"} {
		if !strings.Contains(help.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, help.String())
		}
	}
}
