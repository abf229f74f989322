package status

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	polls := prometheus.NewCounter(prometheus.CounterOpts{Name: "tagstream_polls_total", Help: "polls"})
	reg.MustRegister(polls)
	polls.Add(3)
	var brokerDown atomic.Bool
	s := New(Config{
		Gatherer: reg,
		Checks: []Check{
			{Name: "broker", Func: func(context.Context) error {
				if brokerDown.Load() {
					return errors.New("not connected")
				}
				return nil
			}},
			{Name: "tokens", Func: func(context.Context) error { return nil }},
		},
		Report: func() Report {
			return Report{
				Version: "test",
				Tags:    []TagStatus{{Tag: "sunset", Cursor: "123", RateEstimate: 0.5, LagSeconds: 2, Published: 7}},
				Tokens:  []TokenStatus{{Index: 1, Fingerprint: "abcd", Limit: 5000, Remaining: 4990}},
			}
		},
	})
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)

	get := func(t *testing.T, path string) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	tests := []struct {
		name     string
		down     bool
		path     string
		wantCode int
		want     []string
	}{
		{"healthz answers ok while the process lives", true, "/healthz", 200, []string{"ok"}},
		{"metrics serves the injected registry", false, "/metrics", 200, []string{"tagstream_polls_total 3"}},
		{"readyz is ready when every check passes", false, "/readyz", 200, []string{"ok broker", "ok tokens", "ready"}},
		{"readyz is 503 and names the failing check", true, "/readyz", 503, []string{"not ready broker: not connected", "ok tokens"}},
		{"status lists tags, tokens and checks", true, "/status", 200, []string{`"tag": "sunset"`, `"fingerprint": "abcd"`, `"ready": false`, `"error": "not connected"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			brokerDown.Store(tt.down)
			code, body := get(t, tt.path)
			if code != tt.wantCode {
				t.Errorf("status %d, want %d; body %s", code, tt.wantCode, body)
			}
			for _, w := range tt.want {
				if !strings.Contains(body, w) {
					t.Errorf("body does not contain %q:\n%s", w, body)
				}
			}
		})
	}

	t.Run("status is valid JSON with a time", func(t *testing.T) {
		brokerDown.Store(false)
		_, body := get(t, "/status")
		var r Report
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatal(err)
		}
		if r.Time.IsZero() || !r.Ready || len(r.Tags) != 1 || r.Tags[0].Published != 7 {
			t.Errorf("report = %+v", r)
		}
	})
}

func TestRunStopsWithContext(t *testing.T) {
	s := New(Config{Addr: "127.0.0.1:0"})
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	resp, err := http.Get("http://" + s.Addr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestListenReportsABusyAddress(t *testing.T) {
	a := New(Config{Addr: "127.0.0.1:0"})
	if err := a.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.ln.Close() })
	b := New(Config{Addr: a.Addr()})
	if err := b.Listen(); err == nil {
		t.Fatal("second Listen on the same address succeeded")
	}
}

func TestCloseReleasesAnUnusedListener(t *testing.T) {
	a := New(Config{Addr: "127.0.0.1:0"})
	if err := a.Listen(); err != nil {
		t.Fatal(err)
	}
	addr := a.Addr()
	if err := a.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	b := New(Config{Addr: addr})
	if err := b.Listen(); err != nil {
		t.Fatalf("the address is still taken after Close: %v", err)
	}
	b.Close()
}
