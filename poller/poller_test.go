package poller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tagstream/tagstream/internal/testkit"
	"github.com/tagstream/tagstream/poller/checkpoint"
	"github.com/tagstream/tagstream/testenv"
)

// TestDelivery runs the poller against the simulator over real HTTP and checks that every media of the ground truth
// reaches the publisher exactly once and in feed order.
func TestDelivery(t *testing.T) {
	t.Parallel()
	tags := []string{"sunset", "café", "go_lang"}
	cases := []struct {
		name string
		sim  testenv.Config
		cfg  func(*Config)
		// traffic posts media; between waits for the poller to go round once (it does nothing while paused).
		traffic func(t *testing.T, srv *testenv.Server, between func())
		check   func(t *testing.T, r *running)
		paused  bool // the traffic happens while no poller runs (between two polls), then a new one resumes
	}{
		{
			name: "steady posting with numeric cursors is delivered once",
			traffic: func(t *testing.T, srv *testenv.Server, between func()) {
				steady(srv, tags, 40, between)
			},
		},
		{
			name: "opaque inclusive cursors do not repeat the boundary media",
			sim:  testenv.Config{Cursors: testenv.CursorOpaque, InclusiveMin: true},
			traffic: func(t *testing.T, srv *testenv.Server, between func()) {
				steady(srv, tags, 40, between)
			},
		},
		{
			name: "numeric inclusive cursors over HTTPS with the simulator's CA",
			sim:  testenv.Config{InclusiveMin: true, PlainHTTP: false},
			traffic: func(t *testing.T, srv *testenv.Server, between func()) {
				steady(srv, tags, 20, between)
			},
		},
		{
			name:   "a burst of more than twenty pages between two polls is caught up oldest first",
			paused: true,
			traffic: func(t *testing.T, srv *testenv.Server, _ func()) {
				srv.Post("sunset", 21*33+7)
				srv.Post("café", 5)
			},
			check: func(t *testing.T, r *running) {
				if n := counterValue(t, r.p.m.catchupPages); n < 20 {
					t.Errorf("catchup_pages_total = %v, want the burst walked over at least 20 extra pages", n)
				}
			},
		},
		{
			name:   "a burst many catch-up walks deep is worked off in segments",
			paused: true,
			sim:    testenv.Config{InclusiveMin: true},
			cfg:    func(c *Config) { c.CatchUpPages = 2; c.PageSize = 10 },
			traffic: func(t *testing.T, srv *testenv.Server, _ func()) {
				srv.Post("sunset", 137)
				srv.Post("go_lang", 21)
			},
			check: func(t *testing.T, r *running) {
				// 137 media in pages of 10 and walks of at most 3 pages: several segments were needed.
				if n := counterValue(t, r.p.m.catchupPages); n < 13 {
					t.Errorf("catchup_pages_total = %v, want at least 13", n)
				}
			},
		},
		{
			name: "late-tagged media with old created times are found at the head",
			traffic: func(t *testing.T, srv *testenv.Server, between func()) {
				for i := range 10 {
					srv.Post(tags[i%3], 2)
					srv.PostLate(tags[(i+1)%3], 30*24*time.Hour)
					if i%2 == 1 {
						between()
					}
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.sim.Tokens == nil {
				tc.sim.Tokens = []string{"tok-alpha-0001", "tok-beta-0002"}
			}
			tc.sim.PlainHTTP = !strings.Contains(tc.name, "HTTPS")
			for _, tag := range tags {
				tc.sim.Tags = append(tc.sim.Tags, testenv.TagConfig{Name: tag, Initial: 50})
			}
			srv := startSim(t, tc.sim)
			cfg := testConfig(srv, tc.sim.Tokens, tags)
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			store := checkpoint.NewMemory()
			r := startPoller(t, cfg, store)
			waitStarted(t, r, tags)
			since := time.Now()
			if tc.paused {
				if err := r.stop(); err != nil {
					t.Fatal(err)
				}
			}
			between := func() { waitPolled(t, r.p) }
			if tc.paused {
				between = func() {}
			}
			tc.traffic(t, srv, between)
			if tc.paused {
				r = startPoller(t, cfg, store)
			}
			want := expected(srv, tags, since)
			if len(want) == 0 {
				t.Fatal("the traffic posted nothing")
			}
			checkExactlyOnce(t, srv, r.pub, want, nil, 60*time.Second)
			if g := r.pub.gaps(); len(g) > 0 {
				t.Errorf("got %d gap markers, want none", len(g))
			}
			if tc.check != nil {
				tc.check(t, r)
			}
			for _, st := range r.p.Status() {
				if st.LastPoll.IsZero() || st.Cursor == "" || st.Published == 0 && st.Tag == "sunset" {
					t.Errorf("status of %s = %+v, want a poll, a cursor and (for sunset) published media", st.Tag, st)
				}
			}
		})
	}
}

// steady makes n posts of one to three media, one tag after the other, and lets the poller go round (between)
// after every round of tags, so that posts and polls interleave.
func steady(srv *testenv.Server, tags []string, n int, between func()) {
	for i := range n {
		srv.Post(tags[i%len(tags)], 1+i%3)
		if i%len(tags) == len(tags)-1 {
			between()
		}
	}
}

// TestFaultStorms checks delivery while the API answers a large share of requests with each kind of fault.
func TestFaultStorms(t *testing.T) {
	t.Parallel()
	tags := []string{"storm_a", "storm_b"}
	cases := []struct {
		name     string
		faults   testenv.Faults
		over     testenv.OverLimit
		outcomes []string // outcomes of tagstream_requests_total that must have been counted
	}{
		{"a storm of 503 envelopes parks tokens and loses nothing", testenv.Faults{Down503Envelope: 0.4}, testenv.Over503, []string{outcomeRateLimited}},
		{"a storm of HTML 503 pages is retried as transient", testenv.Faults{Down503HTML: 0.4}, testenv.Over503, []string{outcomeTransient}},
		{"a storm of 500 errors is retried as transient", testenv.Faults{Error500: 0.4}, testenv.Over503, []string{outcomeTransient}},
		{"a storm of 429 answers parks tokens", testenv.Faults{RateLimit429: 0.4}, testenv.Over429, []string{outcomeRateLimited}},
		{"a storm of flat 429 answers parks tokens", testenv.Faults{RateLimit429: 0.4}, testenv.Over429Flat, []string{outcomeRateLimited}},
		{"connection resets are retried", testenv.Faults{Reset: 0.3}, testenv.Over503, []string{outcomeTransient}},
		{"truncated bodies are retried", testenv.Faults{Truncated: 0.4}, testenv.Over503, []string{outcomeTransient}},
		{"everything at once", testenv.Faults{Down503Envelope: 0.1, Down503HTML: 0.1, Error500: 0.1, RateLimit429: 0.1, Reset: 0.05, Truncated: 0.1}, testenv.Over429, []string{outcomeRateLimited, outcomeTransient}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sim := testenv.Config{PlainHTTP: true, Tokens: []string{"storm-tok-1", "storm-tok-2", "storm-tok-3"},
				OverLimit: tc.over, InclusiveMin: true}
			for _, tag := range tags {
				sim.Tags = append(sim.Tags, testenv.TagConfig{Name: tag, Initial: 10})
			}
			srv := startSim(t, sim)
			cfg := testConfig(srv, sim.Tokens, tags)
			cfg.MaxAttempts = 3
			cfg.CatchUpPages = 3
			cfg.PageSize = 10
			r := startPoller(t, cfg, nil)
			waitStarted(t, r, tags)
			since := time.Now()
			srv.SetFaults(tc.faults)
			for i := range 30 {
				srv.Post(tags[i%2], 1+i%4)
				if i%5 == 4 {
					waitPolled(t, r.p)
				}
			}
			// The faults are random: make sure several were served before judging how they were counted.
			waitForFaults(t, srv, 3, 30*time.Second)
			srv.Post(tags[0], 45) // deeper than one poll may go: catch-up under faults
			want := expected(srv, tags, since)
			checkExactlyOnce(t, srv, r.pub, want, nil, 60*time.Second)
			// Some faults go unseen (net/http resends a GET whose reused connection was reset), but the poller
			// keeps polling and counts the others.
			for _, o := range tc.outcomes {
				testkit.Eventually(t, 20*time.Second, fmt.Sprintf("requests_total{outcome=%q} to count the faults", o), func() bool {
					return counterValue(t, r.p.m.requests.WithLabelValues(o)) > 0
				})
			}
			srv.SetFaults(testenv.Faults{})
		})
	}
}

// waitForFaults waits until the simulator has served at least n injected faults (the poller keeps polling on its
// own), so that a test about how faults are handled never passes or fails on a run that drew none.
func waitForFaults(t *testing.T, srv *testenv.Server, n int64, timeout time.Duration) {
	t.Helper()
	testkit.Eventually(t, timeout, fmt.Sprintf("the simulator to serve %d injected faults", n), func() bool {
		var faults int64
		for outcome, c := range srv.Stats().ByOutcome {
			if strings.HasPrefix(outcome, "fault_") {
				faults += c
			}
		}
		return faults >= n
	})
}

// TestTokenRevokedMidRun revokes one of two tokens while polling: the token is retired once and the other carries on.
func TestTokenRevokedMidRun(t *testing.T) {
	tags := []string{"revoke_a", "revoke_b"}
	sim := testenv.Config{PlainHTTP: true, Tokens: []string{"keep-this-token-1", "revoke-this-token-2"}}
	for _, tag := range tags {
		sim.Tags = append(sim.Tags, testenv.TagConfig{Name: tag})
	}
	srv := startSim(t, sim)
	r := startPoller(t, testConfig(srv, sim.Tokens, tags), nil)
	waitStarted(t, r, tags)
	since := time.Now()
	for i := range 20 {
		if i == 5 {
			srv.RevokeToken("revoke-this-token-2")
		}
		srv.Post(tags[i%2], 2)
		if i%4 == 3 {
			waitPolled(t, r.p)
		}
	}
	checkExactlyOnce(t, srv, r.pub, expected(srv, tags, since), nil, 30*time.Second)
	st := r.p.TokenStatus()
	if !st[1].Retired || st[0].Retired {
		t.Errorf("TokenStatus retired = [%v %v], want [false true]", st[0].Retired, st[1].Retired)
	}
	if n := counterValue(t, r.p.m.retired); n != 1 {
		t.Errorf("tokens_retired_total = %v, want 1", n)
	}
	logs := r.logs.String()
	if c := strings.Count(logs, "token retired"); c != 1 {
		t.Errorf("the retirement was logged %d times, want once", c)
	}
	if !strings.Contains(logs, Fingerprint("revoke-this-token-2")) {
		t.Errorf("the retirement log does not name the token's fingerprint")
	}
}

// TestAllTokensRevokedStopsRun checks that Run returns ErrAllTokensRetired when the API rejects every token.
func TestAllTokensRevokedStopsRun(t *testing.T) {
	sim := testenv.Config{PlainHTTP: true, Tokens: []string{"only-token-1"}, Tags: []testenv.TagConfig{{Name: "x"}}}
	srv := startSim(t, sim)
	store := checkpoint.NewMemory()
	p, err := New(testConfig(srv, sim.Tokens, []string{"x"}), &memPublisher{}, store, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv.RevokeToken("only-token-1")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = p.Run(ctx)
	if !errors.Is(err, ErrAllTokensRetired) {
		t.Fatalf("Run = %v, want ErrAllTokensRetired", err)
	}
	if ctx.Err() != nil {
		t.Fatalf("Run only returned when its context ended")
	}
}

// TestAPIDown takes the whole API down for a while: nothing is skipped when it returns, and the client backs off
// instead of hammering it.
func TestAPIDown(t *testing.T) {
	t.Parallel()
	tags := []string{"down_a", "down_b", "down_c"}
	sim := testenv.Config{PlainHTTP: true, Tokens: []string{"down-tok-1"}}
	for _, tag := range tags {
		sim.Tags = append(sim.Tags, testenv.TagConfig{Name: tag})
	}
	srv := startSim(t, sim)
	cfg := testConfig(srv, sim.Tokens, tags)
	cfg.BackoffMax = 400 * time.Millisecond
	r := startPoller(t, cfg, nil)
	waitStarted(t, r, tags)
	since := time.Now()
	srv.Post(tags[0], 3)
	srv.Down(1500 * time.Millisecond)
	for i := range 15 {
		srv.Post(tags[i%3], 1+i%2)
		if i == 4 {
			// The rest is posted while the client backs off.
			testkit.Eventually(t, 10*time.Second, "the API to count as down", func() bool {
				return errors.Is(r.p.Ready(), ErrAPIDown)
			})
		}
	}
	srv.Post(tags[1], 40)
	checkExactlyOnce(t, srv, r.pub, expected(srv, tags, since), nil, 30*time.Second)
	// With the client-wide backoff about 15 requests reach the API while it is down; with only the per-request
	// and per-tag backoffs about 100 do.
	if down := srv.Stats().ByOutcome["down"]; down > 50 {
		t.Errorf("%d requests reached the API while it was down, want the client to back off (<= 50)", down)
	}
	if counterValue(t, r.p.m.requests.WithLabelValues(outcomeTransient)) == 0 {
		t.Errorf("no transient failures counted while the API was down")
	}
}

// TestPublisherFailureKeepsCursor makes the publisher fail: cursors must not move, and everything goes out once the
// publisher recovers.
func TestPublisherFailureKeepsCursor(t *testing.T) {
	t.Parallel()
	tags := []string{"pubfail"}
	sim := testenv.Config{PlainHTTP: true, Tokens: []string{"pf-tok-1"}, Tags: []testenv.TagConfig{{Name: "pubfail", Initial: 3}}}
	srv := startSim(t, sim)
	r := startPoller(t, testConfig(srv, sim.Tokens, tags), nil)
	waitStarted(t, r, tags)
	since := time.Now()
	before, _, _ := r.store.Get(context.Background(), "pubfail")
	r.pub.setFail(errPublishDown)
	srv.Post("pubfail", 12)
	testkit.Eventually(t, 10*time.Second, "failed publish attempts", func() bool {
		r.pub.mu.Lock()
		defer r.pub.mu.Unlock()
		return r.pub.calls >= 3
	})
	during, _, _ := r.store.Get(context.Background(), "pubfail")
	if during.Cursor != before.Cursor {
		t.Fatalf("cursor moved from %q to %q while the publisher failed", before.Cursor, during.Cursor)
	}
	if n := len(r.pub.snapshot()); n != 0 {
		t.Fatalf("%d events recorded while the publisher failed", n)
	}
	// LastPoll is the last successful poll; LastAttempt moves on with the failing ones.
	for _, st := range r.p.Status() {
		if st.LastPoll.IsZero() || st.LastError == "" || !st.LastAttempt.After(st.LastPoll) {
			t.Errorf("status while failing: LastPoll %v, LastAttempt %v, LastError %q; want a successful poll "+
				"before a later failed attempt", st.LastPoll, st.LastAttempt, st.LastError)
		}
	}
	r.pub.setFail(nil)
	checkExactlyOnce(t, srv, r.pub, expected(srv, tags, since), nil, 20*time.Second)
	// The cursor is committed after the publisher acknowledged, so a moment after the events are recorded.
	testkit.Eventually(t, 10*time.Second, "the cursor to move after the publisher recovered", func() bool {
		after, _, _ := r.store.Get(context.Background(), "pubfail")
		return after.Cursor != before.Cursor
	})
}

// TestGapMarker lets the simulator drop media the poller has not reached yet: a gap marker says so and every media
// still served is published once.
func TestGapMarker(t *testing.T) {
	t.Parallel()
	for _, inclusive := range []bool{false, true} {
		name := "an exclusive upstream that drops a backlog yields one gap marker"
		if inclusive {
			name = "an inclusive upstream that drops a backlog yields one gap marker"
		}
		t.Run(name, func(t *testing.T) {
			tags := []string{"retained"}
			sim := testenv.Config{PlainHTTP: true, Tokens: []string{"gap-tok-1"}, Retention: 60, InclusiveMin: inclusive,
				Tags: []testenv.TagConfig{{Name: "retained", Initial: 5}}}
			srv := startSim(t, sim)
			cfg := testConfig(srv, sim.Tokens, tags)
			cfg.PageSize = 10
			cfg.CatchUpPages = 3
			store := checkpoint.NewMemory()
			first := startPoller(t, cfg, store)
			waitStarted(t, first, tags)
			srv.Post("retained", 4)
			testkit.Eventually(t, 10*time.Second, "the first media", func() bool { return len(first.pub.mediaCount()) == 4 })
			if err := first.stop(); err != nil {
				t.Fatal(err)
			}
			// While no poller runs, 150 media appear and 90 of them fall out of retention.
			srv.Post("retained", 150)
			truth := srv.GroundTruth()
			servable := make(map[string]testenv.Truth)
			for _, tr := range truth[len(truth)-60:] {
				servable[tr.MediaID] = tr
			}
			r := startPoller(t, cfg, store)
			checkExactlyOnce(t, srv, r.pub, servable, nil, 20*time.Second)
			testkit.Eventually(t, 10*time.Second, "a gap marker", func() bool { return len(r.pub.gaps()) > 0 })
			if g := r.pub.gaps(); len(g) != 1 {
				for _, e := range g {
					t.Logf("gap %+v", *e.Gap)
				}
				t.Errorf("got %d gap markers, want 1", len(g))
			}
			// The counter moves once Publish returned, after the publisher saw the marker.
			testkit.Eventually(t, 10*time.Second, "gaps_total to count it", func() bool { return counterValue(t, r.p.m.gaps) > 0 })
			if n := counterValue(t, r.p.m.gaps); n != 1 {
				t.Errorf("gaps_total = %v, want 1", n)
			}
			// The gap marker goes out before the media after it.
			evs := r.pub.snapshot()
			for i, e := range evs {
				if e.Gap != nil {
					if i+1 >= len(evs) || evs[i+1].Data == nil {
						t.Errorf("the gap marker is not followed by media")
					}
					break
				}
			}
		})
	}
}

// TestClientIDsAndTagsChangingWhileRunning polls with a client id (an unknown one is retired), adds a tag and
// removes another while running.
func TestClientIDsAndTagsChangingWhileRunning(t *testing.T) {
	sim := testenv.Config{PlainHTTP: true, ClientIDs: []string{"good-client-id-1"},
		Tags: []testenv.TagConfig{{Name: "stays"}, {Name: "goes"}, {Name: "comes"}}}
	srv := startSim(t, sim)
	cfg := testConfig(srv, nil, []string{"stays", "goes"})
	cfg.Tokens = []Token{{Value: "unknown-client-id-2", ClientID: true}, {Value: "good-client-id-1", ClientID: true}}
	r := startPoller(t, cfg, nil)
	waitStarted(t, r, []string{"stays", "goes"})
	if err := r.p.AddTag("comes"); err != nil {
		t.Fatal(err)
	}
	waitStarted(t, r, []string{"comes"})
	r.p.RemoveTag("goes")
	// A poll in flight finishes (RemoveTag's contract) and may find what is posted below: wait until the tag left
	// the scheduler too, which it does once that poll is done. The status hides it at once.
	testkit.Eventually(t, 10*time.Second, "the removed tag to leave the status and the scheduler", func() bool {
		for _, st := range r.p.Status() {
			if st.Tag == "goes" {
				return false
			}
		}
		r.p.mu.Lock()
		defer r.p.mu.Unlock()
		return r.p.sched.tags["goes"] == nil
	})
	since := time.Now()
	for _, tag := range []string{"stays", "goes", "comes"} {
		srv.Post(tag, 7)
	}
	checkExactlyOnce(t, srv, r.pub, expected(srv, []string{"stays", "comes"}, since), nil, 20*time.Second)
	// Two more polls of each remaining tag: a poll of the removed one would have been dispatched among them.
	waitPolled(t, r.p)
	waitPolled(t, r.p)
	for id := range r.pub.mediaCount() {
		for _, tr := range srv.GroundTruth() {
			if tr.MediaID == id && tr.Tag == "goes" {
				t.Errorf("media %s of the removed tag was published", id)
			}
		}
	}
	if st := r.p.TokenStatus(); !st[0].Retired || st[1].Retired || !st[0].ClientID {
		t.Errorf("token status %+v, want the unknown client id retired and the good one in use", st)
	}
}

// TestShutdown cancels Run while a publish is in flight: within ShutdownTimeout the publish may finish and commit;
// after it, the publish is cancelled and the cursor stays.
func TestShutdown(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name          string
		releaseInTime bool
	}{
		{"a publish that finishes within the shutdown timeout is committed", true},
		{"a publish still stalled at the shutdown timeout is cancelled and the cursor stays", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sim := testenv.Config{PlainHTTP: true, Tokens: []string{"shutdown-tok"}, Tags: []testenv.TagConfig{{Name: "s"}}}
			srv := startSim(t, sim)
			cfg := testConfig(srv, sim.Tokens, []string{"s"})
			cfg.ShutdownTimeout = 300 * time.Millisecond
			r := startPoller(t, cfg, nil)
			waitStarted(t, r, []string{"s"})
			before, _, _ := r.store.Get(context.Background(), "s")
			stall := make(chan struct{})
			r.pub.mu.Lock()
			r.pub.stall = stall
			r.pub.mu.Unlock()
			srv.Post("s", 5)
			testkit.Eventually(t, 10*time.Second, "a publish to stall", func() bool {
				r.pub.mu.Lock()
				defer r.pub.mu.Unlock()
				return r.pub.calls > 0
			})
			r.cancel()
			if tc.releaseInTime {
				close(stall)
			}
			if err := r.stop(); err != nil {
				t.Fatalf("Run = %v, want nil on a clean stop", err)
			}
			after, _, _ := r.store.Get(context.Background(), "s")
			got := len(r.pub.mediaCount())
			if tc.releaseInTime {
				if got != 5 || after.Cursor == before.Cursor {
					t.Errorf("%d media published, cursor moved %v; want 5 and a moved cursor", got, after.Cursor != before.Cursor)
				}
				return
			}
			if got != 0 || after.Cursor != before.Cursor {
				t.Errorf("%d media published, cursor moved %v; want none and the cursor where it was", got, after.Cursor != before.Cursor)
			}
		})
	}
}
