package status

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// sampleReport is a report with a tag of each kind: lagging, catching up after a restart, failing, new, fine.
func sampleReport(now time.Time) Report {
	sec := func(n float64) time.Time { return now.Add(time.Duration(n * float64(time.Second))) }
	return Report{
		Time: now, Version: "v1.2.3", Instance: "host-a/4242", Sink: "jetstream stream TAGSTREAM", Ready: false,
		Checks: []CheckResult{{Name: "broker", OK: true}, {Name: "poller", OK: false, Error: "poller: the API is considered down"}},
		Tags: []TagStatus{
			{Tag: "sunset", Owner: "host-a/4242", Cursor: "1234567890", LastPoll: sec(-2), LastAttempt: sec(-2), NextPoll: sec(1.5), RateEstimate: 2.4, LagSeconds: 0.8},
			{Tag: "coffee", Owner: "host-a/4242", SavedCursor: "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRob", CatchUp: &CatchUp{Since: sec(-49), Pages: 3, Pending: 99}},
			{Tag: "travel", Owner: "host-a/4242", Cursor: "55", LastPoll: sec(-300), LastAttempt: sec(-1), NextPoll: sec(4), RateEstimate: 0.01, LagSeconds: 3600, Gaps: 2,
				LastError: "GET https://api/v1/tags/travel/media/recent: HTTP 500: APIError: oops\x1b[2J"},
			{Tag: "berlin", Owner: "host-a/4242"},
			{Tag: "nofilter", Owner: "host-a/4242", Cursor: "77", SavedCursor: "70", LastPoll: sec(-1), LastAttempt: sec(-1), RateEstimate: 0.6, LagSeconds: 12},
		},
		Tokens: []TokenStatus{
			{Index: 0, Fingerprint: "3f2a9c01", Limit: 5000, Remaining: 4410},
			{Index: 1, Fingerprint: "9a0b1c2d", Limit: 5000, Remaining: -1, ParkedUntil: sec(70)},
			{Index: 2, Fingerprint: "77aa88bb", ClientID: true, Limit: 5000, Remaining: 0, Retired: true},
		},
	}
}

func TestDescribeSaysWhatATagIsDoing(t *testing.T) {
	now := time.Date(2026, 11, 30, 5, 12, 0, 0, time.UTC)
	tests := []struct {
		name string
		tag  TagStatus
		want string
	}{
		{"a walk under way counts its pages and pending media", TagStatus{CatchUp: &CatchUp{Since: now, Pages: 3, Pending: 99}, SavedCursor: "x"}, "catching up: 3 pages so far, 99 media pending"},
		{"one page is singular", TagStatus{CatchUp: &CatchUp{Pages: 1, Pending: 33}}, "catching up: 1 page so far, 33 media pending"},
		{"a failing last poll says why", TagStatus{LastPoll: now.Add(-time.Minute), LastAttempt: now, LastError: "HTTP 500"}, "failing: HTTP 500"},
		{"a tag with a saved cursor and no poll yet resumes", TagStatus{SavedCursor: "x"}, "resuming from its saved cursor"},
		{"a new tag waits for its first poll", TagStatus{}, "waiting for its first poll"},
		{"segments left to publish are counted", TagStatus{LastPoll: now, Segments: 2}, "catching up: 2 segments to publish"},
		{"a tag polled fine is ok", TagStatus{LastPoll: now, LastAttempt: now}, "ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.tag.Describe(); got != tt.want {
				t.Errorf("Describe() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestWriteTable(t *testing.T) {
	now := time.Date(2026, 11, 30, 5, 12, 0, 0, time.UTC)
	var b bytes.Buffer
	if err := WriteTable(&b, sampleReport(now), now); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "table.golden")
	if *update {
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if b.String() != string(want) {
		t.Errorf("table differs from %s (go test -update rewrites it):\n%s", golden, b.String())
	}
	out := b.String()
	t.Run("tags are sorted by lag, tags not polled yet first", func(t *testing.T) {
		order := []string{"berlin", "coffee", "travel", "nofilter", "sunset"}
		last := -1
		for _, tag := range order {
			i := strings.Index(out, "\n"+tag+" ")
			if i < last {
				t.Errorf("%s is not after the tags before it in %v", tag, order)
			}
			last = i
		}
	})
	t.Run("a catch-up shows the saved cursor and the walk", func(t *testing.T) {
		for _, w := range []string{"saved AQIDBAU…FhcYGRob", "catching up: 3 pages so far, 99 media pending"} {
			if !strings.Contains(out, w) {
				t.Errorf("the table does not show %q", w)
			}
		}
	})
	t.Run("no control character reaches the terminal", func(t *testing.T) {
		if strings.ContainsRune(out, 0x1b) {
			t.Errorf("the table holds an escape character")
		}
	})
}

func TestFetch(t *testing.T) {
	now := time.Now().UTC()
	s := New(Config{Report: func() Report { r := sampleReport(now); r.Time = time.Time{}; return r }})
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte("<html>hello</html>"))
	}))
	t.Cleanup(other.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()

	t.Run("a running instance's report is read back whole", func(t *testing.T) {
		r, err := Fetch(context.Background(), nil, strings.TrimPrefix(srv.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Tags) != 5 || r.Tags[1].CatchUp == nil || r.Tags[1].CatchUp.Pending != 99 || r.Tags[1].State != "catching up: 3 pages so far, 99 media pending" {
			t.Errorf("report = %+v", r.Tags)
		}
	})
	t.Run("another program is not taken for tagstream", func(t *testing.T) {
		_, err := Fetch(context.Background(), nil, other.URL)
		if !errors.Is(err, ErrNotStatus) {
			t.Errorf("error = %v, want ErrNotStatus", err)
		}
	})
	t.Run("nothing listening is the transport's error", func(t *testing.T) {
		_, err := Fetch(context.Background(), nil, dead)
		if err == nil || errors.Is(err, ErrNotStatus) {
			t.Errorf("error = %v, want a connection error", err)
		}
	})
}

func TestStatusURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"127.0.0.1:9464", "http://127.0.0.1:9464/status"},
		{":9464", "http://127.0.0.1:9464/status"},
		{"0.0.0.0:9464", "http://127.0.0.1:9464/status"},
		{"[::]:9464", "http://[::1]:9464/status"},
		{"https://ts.example.com/tagstream/", "https://ts.example.com/tagstream/status"},
	}
	for _, tt := range tests {
		if got, err := StatusURL(tt.in); err != nil || got != tt.want {
			t.Errorf("StatusURL(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "localhost", "ftp://x/"} {
		if _, err := StatusURL(bad); err == nil {
			t.Errorf("StatusURL(%q) succeeded", bad)
		}
	}
}
