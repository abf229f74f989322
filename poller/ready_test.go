package poller

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tagstream/tagstream/internal/testkit"
	"github.com/tagstream/tagstream/poller/checkpoint"
	"github.com/tagstream/tagstream/testenv"
)

func TestReadyBeforeRun(t *testing.T) {
	p := newTestPoller(t, "https://h/v1", nil)
	if err := p.Ready(); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Ready before Run = %v, want ErrNotRunning", err)
	}
}

// TestReadyAndLogsFollowAnAPIOutage fails every request for a while: Ready names the outage (since when, the URL
// without the token, the cause), the logs say so once at WARN when it starts and once at INFO when it ends, and
// Ready is nil again after the API recovered.
func TestReadyAndLogsFollowAnAPIOutage(t *testing.T) {
	const token = "outage-token-0123456789"
	tags := []string{"outage_a", "outage_b"}
	srv := startSimWithTags(t, []string{token}, tags)
	cfg := testConfig(srv, []string{token}, tags)
	r := startPoller(t, cfg, nil)
	waitStarted(t, r, tags)
	testkit.Eventually(t, 10*time.Second, "Ready to be nil while the API answers", func() bool { return r.p.Ready() == nil })

	srv.SetFaults(testenv.Faults{Down503HTML: 1})
	var err error
	testkit.Eventually(t, 20*time.Second, "Ready to report the API down", func() bool {
		err = r.p.Ready()
		return errors.Is(err, ErrAPIDown)
	})
	for _, want := range []string{"GET " + srv.URL() + "/tags/outage_", "HTTP 503", "since "} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Ready = %q, want it to say %q", err, want)
		}
	}
	if counterValue(t, r.p.m.apiDown) != 1 {
		t.Errorf("tagstream_api_down is not 1 while the API is down")
	}

	srv.SetFaults(testenv.Faults{})
	testkit.Eventually(t, 20*time.Second, "Ready to be nil after the API recovered", func() bool { return r.p.Ready() == nil })
	testkit.Eventually(t, 10*time.Second, "the recovery to be logged", func() bool {
		return r.logs.Contains("api reachable again")
	})
	logs := r.logs.String()
	for _, line := range []string{"level=WARN msg=\"api request failed\"", "level=WARN msg=\"api looks down",
		"level=INFO msg=\"api reachable again\""} {
		if n := strings.Count(logs, line); n != 1 {
			t.Errorf("%d log lines %s, want one for the episode", n, line)
		}
	}
	for _, haystack := range []string{logs, err.Error()} {
		if strings.Contains(haystack, token) {
			t.Errorf("the token leaked: %s", haystack)
		}
	}
	if !strings.Contains(logs, "url="+srv.URL()+"/tags/outage_") {
		t.Errorf("the WARN line does not name the URL")
	}
}

// TestReadyWhenEveryTokenIsRetired checks that a poller whose tokens were all rejected is not ready.
func TestReadyWhenEveryTokenIsRetired(t *testing.T) {
	sim := testenv.Config{PlainHTTP: true, Tokens: []string{"known-token"}, Tags: []testenv.TagConfig{{Name: "x"}}}
	srv := startSim(t, sim)
	cfg := testConfig(srv, []string{"unknown-token"}, []string{"x"})
	p, err := New(cfg, &memPublisher{}, checkpoint.NewMemory(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(t.Context()); !errors.Is(err, ErrAllTokensRetired) {
		t.Fatalf("Run = %v, want ErrAllTokensRetired", err)
	}
	if err := p.Ready(); !errors.Is(err, ErrAllTokensRetired) {
		t.Fatalf("Ready = %v, want ErrAllTokensRetired", err)
	}
}
