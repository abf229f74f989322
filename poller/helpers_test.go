package poller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/tagstream/tagstream/internal/testkit"
	"github.com/tagstream/tagstream/poller/checkpoint"
	"github.com/tagstream/tagstream/schema"
	"github.com/tagstream/tagstream/testenv"
)

// memPublisher is an in-memory Publisher that records every acknowledged event and can be told to fail or stall.
type memPublisher struct {
	mu     sync.Mutex
	events []*schema.Event
	counts map[string]int // media events per media id, kept as events come: waits poll it every few milliseconds
	calls  int
	fail   error         // when set, Publish returns it (nothing recorded)
	stall  chan struct{} // when set, Publish blocks until it is closed or ctx ends
}

var errPublishDown = errors.New("test publisher: broker unavailable")

func (m *memPublisher) Publish(ctx context.Context, events []*schema.Event) error {
	m.mu.Lock()
	m.calls++
	fail, stall := m.fail, m.stall
	m.mu.Unlock()
	if stall != nil {
		select {
		case <-stall:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if fail != nil {
		return fail
	}
	m.mu.Lock()
	m.events = append(m.events, events...)
	if m.counts == nil {
		m.counts = make(map[string]int)
	}
	for _, e := range events {
		if e.Data != nil {
			m.counts[e.Data.MediaID]++
		}
	}
	m.mu.Unlock()
	return nil
}

func (m *memPublisher) setFail(err error) {
	m.mu.Lock()
	m.fail = err
	m.mu.Unlock()
}

func (m *memPublisher) callCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.calls
}

func (m *memPublisher) snapshot() []*schema.Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.events)
}

// published returns how many media events of the media id were published.
func (m *memPublisher) published(mediaID string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.counts[mediaID]
}

// mediaCount counts the media events published per media id.
func (m *memPublisher) mediaCount() map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := maps.Clone(m.counts)
	if out == nil {
		out = make(map[string]int)
	}
	return out
}

// publishedAll reports whether every media id of want was published at least once.
func (m *memPublisher) publishedAll(want map[string]testenv.Truth) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id := range want {
		if m.counts[id] == 0 {
			return false
		}
	}
	return true
}

func (m *memPublisher) gaps() []*schema.Event {
	var out []*schema.Event
	for _, e := range m.snapshot() {
		if e.Gap != nil {
			out = append(out, e)
		}
	}
	return out
}

// startSim starts a simulator that serves plain HTTP on loopback (or HTTPS when cfg says so) with a one-second
// rate-limit window, and closes it at the end of the test.
func startSim(t *testing.T, cfg testenv.Config) *testenv.Server {
	t.Helper()
	if cfg.TimeScale == 0 {
		cfg.TimeScale = 3600
	}
	if cfg.Seed == 0 {
		cfg.Seed = 7
	}
	srv, err := testenv.New(cfg)
	if err != nil {
		t.Fatalf("testenv.New: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("testenv.Start: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

// testConfig is a fast configuration against srv: small intervals and backoffs, a one-second rate window. Its
// StartTime is just after the Initial media of srv, the newest of which the simulator made the instant it
// started: the tests post their traffic after every tag's first poll and count only that traffic (the start
// instant itself has tests of its own).
func testConfig(srv *testenv.Server, tokens []string, tags []string) Config {
	cfg := Config{
		StartTime:      time.Now().Add(StartSkew + time.Second),
		BaseURL:        srv.URL(),
		CAFile:         srv.CAFile(),
		RateWindow:     time.Second,
		Tags:           tags,
		MinInterval:    20 * time.Millisecond,
		MaxInterval:    200 * time.Millisecond,
		RequestTimeout: 2 * time.Second,
		BackoffInitial: 5 * time.Millisecond,
		BackoffMax:     100 * time.Millisecond,
		MaxAttempts:    4,
	}
	for _, tok := range tokens {
		cfg.Tokens = append(cfg.Tokens, Token{Value: tok})
	}
	return cfg
}

// running is a Poller running in the background.
type running struct {
	p      *Poller
	pub    *memPublisher
	store  checkpoint.Store
	logs   *testkit.SyncBuffer
	cancel context.CancelFunc
	done   chan error
}

// startPoller builds and runs a Poller; the test's cleanup stops it.
func startPoller(t *testing.T, cfg Config, store checkpoint.Store) *running {
	t.Helper()
	if store == nil {
		store = checkpoint.NewMemory()
		t.Cleanup(func() { _ = store.Close() })
	}
	logs := &testkit.SyncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	pub := &memPublisher{}
	p, err := New(cfg, pub, store, logger, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{p: p, pub: pub, store: store, logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- p.Run(ctx) }()
	t.Cleanup(func() {
		if err := r.stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
		if t.Failed() {
			t.Logf("poller log (tail):\n%s", tail(logs.String(), 4000))
		}
	})
	return r
}

// stop cancels Run and returns its error (once; later calls return nil).
func (r *running) stop() error {
	r.cancel()
	select {
	case err, ok := <-r.done:
		if !ok {
			return nil
		}
		close(r.done)
		return err
	case <-time.After(30 * time.Second):
		return errors.New("Run did not return within 30s of cancel")
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// waitPolled waits until every tag of p (or of tags, when given) finished a poll after the call: the poller went
// round once. Called twice in a row, it waits for a poll that also started after the first call.
func waitPolled(t *testing.T, p *Poller, tags ...string) {
	t.Helper()
	before := make(map[string]time.Time)
	for _, st := range p.Status() {
		if len(tags) == 0 || slices.Contains(tags, st.Tag) {
			before[st.Tag] = st.LastAttempt
		}
	}
	testkit.Eventually(t, 20*time.Second, "a poll of every tag", func() bool {
		seen := 0
		for _, st := range p.Status() {
			// LastAttempt is converted from the monotonic clock at each Status call: the same poll may come
			// back a few nanoseconds apart. A new poll ends at least a millisecond later.
			if last, ok := before[st.Tag]; ok && st.LastAttempt.After(last.Add(time.Millisecond)) {
				seen++
			}
		}
		return seen == len(before)
	})
}

// waitStarted waits until every tag of the poller has a committed checkpoint.
func waitStarted(t *testing.T, r *running, tags []string) {
	t.Helper()
	testkit.Eventually(t, 20*time.Second, "every tag's first poll", func() bool {
		for _, tag := range tags {
			if _, ok, _ := r.store.Get(context.Background(), tag); !ok {
				return false
			}
		}
		return true
	})
}

// expected returns the ground-truth media of tags that became visible at or after since and were not deleted.
func expected(srv *testenv.Server, tags []string, since time.Time) map[string]testenv.Truth {
	want := make(map[string]testenv.Truth)
	for _, tr := range srv.GroundTruth() {
		if !slices.Contains(tags, tr.Tag) || tr.VisibleAt.Before(since) || !tr.DeletedAt.IsZero() {
			continue
		}
		want[tr.MediaID] = tr
	}
	return want
}

// checkExactlyOnce waits until every wanted media was published and then checks that each was published exactly
// once, that nothing else (besides allowed ids) was, and that each tag's media went out in feed order.
func checkExactlyOnce(t *testing.T, srv *testenv.Server, pub *memPublisher, want map[string]testenv.Truth,
	allowed func(id string) bool, timeout time.Duration) {
	t.Helper()
	testkit.Eventually(t, timeout, fmt.Sprintf("%d media to be published", len(want)), func() bool {
		return pub.publishedAll(want)
	})
	got := pub.mediaCount()
	for id, n := range got {
		_, wanted := want[id]
		switch {
		case n > 1:
			t.Errorf("media %s published %d times, want once", id, n)
		case !wanted && (allowed == nil || !allowed(id)):
			t.Errorf("media %s published but not expected", id)
		}
	}
	checkOrder(t, srv, pub)
}

// checkOrder checks that each tag's media events went out in the order the media appeared in the feed.
func checkOrder(t *testing.T, srv *testenv.Server, pub *memPublisher) {
	t.Helper()
	seq := make(map[string]int)
	for i, tr := range srv.GroundTruth() {
		seq[tr.MediaID] = i
	}
	last := make(map[string]int)
	for _, e := range pub.snapshot() {
		if e.Data == nil {
			continue
		}
		s, ok := seq[e.Data.MediaID]
		if !ok {
			t.Errorf("published media %s is not in the ground truth", e.Data.MediaID)
			continue
		}
		if prev, ok := last[e.Subject]; ok && s < prev {
			t.Errorf("tag %s: media %s published after a newer one", e.Subject, e.Data.MediaID)
		}
		last[e.Subject] = s
	}
}

// counterValue reads a counter or gauge.
func counterValue(t *testing.T, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatalf("read metric: %v", err)
	}
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	t.Fatalf("metric is neither a counter nor a gauge")
	return 0
}

// startSimWithTags starts a plain-HTTP simulator with tokens and empty tags.
func startSimWithTags(t *testing.T, tokens, tags []string) *testenv.Server {
	t.Helper()
	cfg := testenv.Config{PlainHTTP: true, Tokens: tokens}
	for _, tag := range tags {
		cfg.Tags = append(cfg.Tags, testenv.TagConfig{Name: tag})
	}
	return startSim(t, cfg)
}

// faultsEverywhere injects every kind of fault now and then.
func faultsEverywhere() testenv.Faults {
	return testenv.Faults{Down503Envelope: 0.1, Down503HTML: 0.1, Error500: 0.1, RateLimit429: 0.1, Reset: 0.05,
		Truncated: 0.1}
}

type dtoMetric = dto.Metric
