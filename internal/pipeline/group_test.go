package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tagstream/tagstream/group"
	"github.com/tagstream/tagstream/internal/config"
	"github.com/tagstream/tagstream/internal/testkit"
	"github.com/tagstream/tagstream/poller"
	"github.com/tagstream/tagstream/poller/checkpoint"
	"github.com/tagstream/tagstream/schema"
	"github.com/tagstream/tagstream/testenv"
)

const groupWait = 60 * time.Second

// acks records the media events the publishers of several pipelines had acknowledged, per member.
type acks struct {
	mu   sync.Mutex
	byID map[string][]string // media id -> the members that published it
}

func newAcks() *acks { return &acks{byID: map[string][]string{}} }

// wrap returns a Deps.WrapPublisher that records member's acknowledged media events.
func (a *acks) wrap(member string) func(poller.Publisher) poller.Publisher {
	return func(next poller.Publisher) poller.Publisher {
		return poller.PublisherFunc(func(ctx context.Context, events []*schema.Event) error {
			err := next.Publish(ctx, events)
			if err == nil {
				a.mu.Lock()
				for _, e := range events {
					if e.Data != nil {
						a.byID[e.Data.MediaID] = append(a.byID[e.Data.MediaID], member)
					}
				}
				a.mu.Unlock()
			}
			return err
		})
	}
}

// all reports whether every id of want was acknowledged.
func (a *acks) all(want map[string]bool) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for id := range want {
		if len(a.byID[id]) == 0 {
			return false
		}
	}
	return true
}

func (a *acks) snapshot() map[string][]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string][]string, len(a.byID))
	for id, ms := range a.byID {
		out[id] = slices.Clone(ms)
	}
	return out
}

// startMember runs a pipeline of cfg as group member name, its publisher recorded by rec.
func (f *fixture) startMember(t *testing.T, cfg config.Config, name string, rec *acks) *running {
	t.Helper()
	cfg.GroupMember = name
	cfg.StateDir = filepath.Join(t.TempDir(), "state")
	deps := f.deps()
	deps.Logger = deps.Logger.With("member", name)
	deps.WrapPublisher = rec.wrap(name)
	p, err := New(t.Context(), &cfg, deps)
	if err != nil {
		t.Fatalf("New %s: %v", name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Pipeline: p, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		testkit.Receive(t, r.done, 30*time.Second, "member "+name+" to stop")
	})
	testkit.Receive(t, r.Started(), groupWait, "member "+name+" to start")
	return r
}

// polled returns the tags r polls that finished a poll.
func polled(r *running) []string {
	var out []string
	for _, st := range r.TagStatus() {
		if !st.LastPoll.IsZero() {
			out = append(out, st.Tag)
		}
	}
	slices.Sort(out)
	return out
}

// waitSplit waits until the members poll every tag between them, each tag by one member only, and each member
// some: the group split the tags.
func waitSplit(t *testing.T, tags []string, ms ...*running) {
	t.Helper()
	testkit.Eventually(t, groupWait, fmt.Sprintf("%d members to split %d tags", len(ms), len(tags)), func() bool {
		var union []string
		for _, r := range ms {
			got := polled(r)
			if len(got) == 0 {
				return false
			}
			union = append(union, got...)
		}
		slices.Sort(union)
		return slices.Equal(union, tags)
	})
}

func TestGroupModeSplitsTagsAndHandsThemOverOnAGracefulStop(t *testing.T) {
	t.Parallel()
	for _, sink := range []config.SinkKind{config.SinkJetStream, config.SinkKafka} {
		t.Run("with sink "+string(sink), func(t *testing.T) {
			t.Parallel()
			ns := testkit.StartNATS(t)
			tags := []string{"t_a", "t_b", "t_c", "t_d", "t_e", "t_f"}
			f := newFixture(t, func(c *config.Config) {
				c.Sink, c.NATSURL = sink, ns.ClientURL()
				if sink == config.SinkKafka {
					c.KafkaBrokers, c.KafkaCreateTopic = testkit.FakeKafka(t), true
				}
				c.CheckpointStore, c.KVBucket = config.StoreJetStreamKV, "group_cursors"
				c.Group, c.GroupReplicas = "pipe", 1
			}, tags...)
			rec := newAcks()
			m1 := f.startMember(t, *f.cfg, "m1", rec)
			cfg2 := *f.cfg
			cfg2.Tags = nil // a member may join without tags: the group's set is used
			m2 := f.startMember(t, cfg2, "m2", rec)
			waitSplit(t, tags, m1, m2)

			for _, m := range []*running{m1, m2} {
				if code, body := m.get(t, "/readyz"); code != http.StatusOK {
					t.Errorf("/readyz of a member answered %d:\n%s", code, body)
				}
			}
			_, body := m1.get(t, "/status")
			var rep struct {
				Tags []struct {
					Tag   string `json:"tag"`
					Owner string `json:"owner"`
				} `json:"tags"`
				Group *group.Status `json:"group"`
			}
			if err := json.Unmarshal([]byte(body), &rep); err != nil {
				t.Fatalf("/status: %v\n%s", err, body)
			}
			if rep.Group == nil || rep.Group.Group != "pipe" || rep.Group.Self != "m1" || len(rep.Group.Members) != 2 {
				t.Errorf("/status group = %+v, want group pipe seen by m1 with two members", rep.Group)
			}
			for _, line := range rep.Tags {
				if line.Owner != "m1" {
					t.Errorf("/status of m1: tag %s owned by %q, want m1", line.Tag, line.Owner)
				}
			}
			if _, metrics := m1.get(t, "/metrics"); !strings.Contains(metrics, "tagstream_group_lease_valid 1") {
				t.Errorf("/metrics lacks tagstream_group_lease_valid 1")
			}

			// In group mode a tag starts when it entered the group's set (here, as m1 started), so the simulator's
			// newest initial media, made just before, may be published too (poller.StartSkew); once at most.
			initial := expectedSince(f.sim, time.Time{})
			before := time.Now()
			for _, tag := range tags {
				f.sim.Post(tag, 3)
			}
			want := expectedSince(f.sim, before)
			testkit.Eventually(t, groupWait, "the media posted before the stop", func() bool { return rec.all(want) })

			// m1 stops gracefully: its last polls commit, it leaves, and m2 takes every tag at once.
			if err := m1.stop(t); err != nil {
				t.Fatalf("m1 Run = %v, want nil after a stop", err)
			}
			testkit.Eventually(t, groupWait, "m2 to poll every tag", func() bool { return slices.Equal(polled(m2), tags) })
			if gs, ok := m2.GroupStatus(); !ok || len(gs.Members) != 1 {
				t.Errorf("m2 sees %d members after m1 left, want 1", len(gs.Members))
			}
			for _, tag := range tags {
				f.sim.Post(tag, 3)
			}
			want = expectedSince(f.sim, before)
			testkit.Eventually(t, groupWait, "the media posted after the stop", func() bool { return rec.all(want) })

			for id, members := range rec.snapshot() {
				switch {
				case !want[id] && !initial[id]:
					t.Errorf("media %s published by %v but not posted by the test", id, members)
				case len(members) != 1:
					t.Errorf("media %s published %d times (by %v), want once", id, len(members), members)
				}
			}
		})
	}
}

func TestGroupModeNeedsTheJetStreamCursorStore(t *testing.T) {
	t.Parallel()
	cfg := config.Defaults()
	cfg.Tags, cfg.Group = []string{"x"}, "g"
	cfg.Credentials = []config.Credential{{Value: secretTokens[0]}}
	cfg.StateDir = t.TempDir()
	err := config.Validate(&cfg, config.GroupAll, config.Needs{Tags: true, Tokens: true})
	var ce *config.Error
	if !errors.As(err, &ce) || ce.Key != "checkpoint-store" {
		t.Fatalf("Validate = %v, want an error naming checkpoint-store", err)
	}
}

func TestCheckReachesTheGroupsBuckets(t *testing.T) {
	t.Parallel()
	ns := testkit.StartNATS(t)
	f := newFixture(t, func(c *config.Config) {
		c.Sink, c.NATSURL = config.SinkJetStream, ns.ClientURL()
		c.CheckpointStore, c.Group, c.GroupReplicas = config.StoreJetStreamKV, "chk", 1
		c.Tags = nil
	})
	find := func(rs []CheckResult) CheckResult {
		for _, r := range rs {
			if r.Name == "group" {
				return r
			}
		}
		t.Fatalf("no group check among %v", rs)
		return CheckResult{}
	}
	r := find(Check(t.Context(), f.cfg, Deps{}))
	if r.Err != nil || !strings.Contains(r.Detail, "does not exist yet: run creates") {
		t.Errorf("group check of a new group = %q, %v", r.Detail, r.Err)
	}

	nc := testkit.ConnectNATS(t, ns.ClientURL())
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := group.AddTags(t.Context(), js, "chk", "sunset", "coffee"); err != nil {
		t.Fatal(err)
	}
	r = find(Check(t.Context(), f.cfg, Deps{}))
	if r.Err != nil || !strings.Contains(r.Detail, "group chk: 2 tags, 0 live members") {
		t.Errorf("group check of a group of two tags = %q, %v", r.Detail, r.Err)
	}

	f.cfg.NATSURL = "nats://" + testkit.FreeAddr(t)
	r = find(Check(t.Context(), f.cfg, Deps{}))
	if !r.Unreachable() {
		t.Errorf("group check of a server nobody runs = %v, want unreachable", r.Err)
	}
}

func TestReloadInGroupModeAddsTheFilesTagsToTheGroup(t *testing.T) {
	t.Parallel()
	ns := testkit.StartNATS(t)
	f := newFixture(t, func(c *config.Config) {
		c.Sink, c.NATSURL = config.SinkJetStream, ns.ClientURL()
		c.CheckpointStore, c.KVBucket = config.StoreJetStreamKV, "reload_cursors"
		c.Group, c.GroupReplicas = "reload", 1
	}, "sunset", "coffee", "tea")
	f.cfg.Tags = []string{"sunset"}

	early, err := New(t.Context(), f.cfg, f.deps())
	if err != nil {
		t.Fatal(err)
	}
	if err := early.Reload(t.Context(), f.cfg); !errors.Is(err, ErrNotStarted) {
		t.Errorf("Reload before polling started = %v, want ErrNotStarted", err)
	}
	early.Close()

	m := f.startMember(t, *f.cfg, "solo", newAcks())
	testkit.Eventually(t, groupWait, "the configured tag", func() bool { return slices.Equal(polled(m), []string{"sunset"}) })
	next := *f.cfg
	next.Tags = []string{"coffee", "tea"}
	next.MaxInterval = 2 * time.Second
	if err := m.Reload(t.Context(), &next); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	testkit.Eventually(t, groupWait, "the tags added to the group", func() bool {
		return slices.Equal(polled(m), []string{"coffee", "sunset", "tea"})
	})
	if !f.logs.Contains("need a restart") || !f.logs.Contains("keys=max-interval") {
		t.Errorf("the changed max-interval was not logged as needing a restart")
	}
}

// rateSink is a group.Coordinator that only records ReportRates.
type rateSink struct {
	group.Coordinator
	got chan map[string]float64
}

func (r rateSink) ReportRates(rates map[string]float64) {
	select {
	case r.got <- rates:
	default:
	}
}

func TestTheRateEstimatesGoToTheCoordinator(t *testing.T) {
	t.Parallel()
	pl, err := poller.New(poller.Config{BaseURL: "http://127.0.0.1:1/v1", Tokens: []poller.Token{{Value: secretTokens[0]}},
		Tags: []string{"sunset", "coffee"}}, poller.PublisherFunc(func(context.Context, []*schema.Event) error { return nil }),
		checkpoint.NewMemory(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	sink := rateSink{got: make(chan map[string]float64, 1)}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { reportRates(ctx, pl, sink, time.Millisecond); close(done) }()
	rates := testkit.Receive(t, sink.got, groupWait, "a rate report")
	cancel()
	testkit.Receive(t, done, groupWait, "reportRates to return")
	if len(rates) != 2 || rates["sunset"] <= 0 || rates["coffee"] <= 0 {
		t.Errorf("reported %v, want an estimate of both tags", rates)
	}
}

// triedOnly reports whether r has a poll of tag in flight or behind it, and no successful one. A poll against an
// API that cannot be reached retries for seconds (poller.DefaultMaxAttempts, with backoff) before it ends: the
// first attempt is the event to wait for, not the end of the poll.
func triedOnly(r *running, tag string) bool {
	for _, st := range r.TagStatus() {
		if st.Tag == tag {
			inFlight := st.NextPoll.IsZero()
			return (inFlight || !st.LastAttempt.IsZero()) && st.LastPoll.IsZero()
		}
	}
	return false
}

func TestGroupModeStartsATagWithoutACursorWhereTheGroupAddedIt(t *testing.T) {
	t.Parallel()
	ns := testkit.StartNATS(t)
	f := newFixture(t, func(c *config.Config) {
		c.Sink, c.NATSURL = config.SinkJetStream, ns.ClientURL()
		c.CheckpointStore, c.KVBucket = config.StoreJetStreamKV, "moved_cursors"
		c.Group, c.GroupReplicas = "moved", 1
		c.Tags = nil
	})
	rec := newAcks()
	// m1 owns the tag first but never reaches the API, so it commits nothing before it stops.
	cfg1 := *f.cfg
	cfg1.APIURL = "https://" + testkit.FreeAddr(t) + "/v1"
	m1 := f.startMember(t, cfg1, "m1", rec)
	testkit.Eventually(t, groupWait, "m1 to join", func() bool {
		gs, ok := m1.GroupStatus()
		return ok && gs.LeaseValid
	})
	nc := testkit.ConnectNATS(t, ns.ClientURL())
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := group.AddTags(t.Context(), js, "moved", "late"); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, groupWait, "m1 to try the added tag", func() bool { return triedOnly(m1, "late") })
	posted := f.sim.Post("late", 3)
	if err := m1.stop(t); err != nil {
		t.Fatalf("m1 Run = %v, want nil after a stop", err)
	}

	// m2 starts after the media were posted: a start of its own ("start now" = this process's start) would skip
	// them, the group's (when the tag was added) does not.
	cfg2 := *f.cfg
	cfg2.StartedAt = time.Now().Add(poller.StartSkew + time.Second)
	m2 := f.startMember(t, cfg2, "m2", rec)
	testkit.Eventually(t, groupWait, "m2 to poll the tag", func() bool { return slices.Contains(polled(m2), "late") })
	got := rec.snapshot()
	for _, tr := range posted {
		if ms := got[tr.MediaID]; !slices.Equal(ms, []string{"m2"}) {
			t.Errorf("media %s posted while the tag had no cursor was published by %v, want by m2 once", tr.MediaID, ms)
		}
	}
}

// limitSink is a group.Coordinator that records ReportRates and ReportLimits.
type limitSink struct {
	rateSink
	limits chan map[string]int
}

func (l limitSink) ReportLimits(limits map[string]int) {
	select {
	case l.limits <- maps.Clone(limits):
	default:
	}
}

func TestTheLimitsTheAPIReportsGoToTheCoordinator(t *testing.T) {
	t.Parallel()
	srv, err := testenv.New(testenv.Config{PlainHTTP: true, Tokens: secretTokens[:1], RequestsPerHour: 1000, TimeScale: 3600,
		Tags: []testenv.TagConfig{{Name: "sunset"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	pl, err := poller.New(poller.Config{BaseURL: srv.URL(), Tokens: []poller.Token{{Value: secretTokens[0]}},
		RequestsPerHour: 5000, RateWindow: time.Second, Tags: []string{"sunset"}},
		poller.PublisherFunc(func(context.Context, []*schema.Event) error { return nil }), checkpoint.NewMemory(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := apiLimits(pl.TokenStatus()); len(got) != 0 {
		t.Errorf("before any answer: limits %v, want none (the configured budget is not the API's)", got)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- pl.Run(ctx) }()
	testkit.Eventually(t, groupWait, "an answer of the API", func() bool {
		select {
		case err := <-done: // a Run that ended polls no more: say why at once instead of waiting out groupWait
			t.Fatalf("Run returned %v before any answer of the API", err)
		default:
		}
		return pl.TokenStatus()[0].Remaining >= 0
	})

	sink := limitSink{rateSink: rateSink{got: make(chan map[string]float64, 1)}, limits: make(chan map[string]int, 1)}
	rctx, stopReports := context.WithCancel(t.Context())
	reported := make(chan struct{})
	go func() { reportRates(rctx, pl, sink, time.Millisecond); close(reported) }()
	got := testkit.Receive(t, sink.limits, groupWait, "a limit report")
	stopReports()
	testkit.Receive(t, reported, groupWait, "reportRates to return")
	cancel()
	if err := testkit.Receive(t, done, groupWait, "Run to return"); err != nil {
		t.Errorf("Run: %v", err)
	}
	if want := map[string]int{poller.Fingerprint(secretTokens[0]): 1000}; !maps.Equal(got, want) {
		t.Errorf("reported limits %v, want the API's %v", got, want)
	}
}
