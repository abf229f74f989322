package poller

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tagstream/tagstream/internal/testkit"
	"github.com/tagstream/tagstream/poller/checkpoint"
	"github.com/tagstream/tagstream/testenv"
)

// createdSince allows the media created at most StartSkew (and the second created_time's resolution loses) before
// start: a start instant may publish them too.
func createdSince(srv *testenv.Server, start time.Time) func(id string) bool {
	bound := start.Add(-StartSkew - time.Second)
	return func(id string) bool {
		for _, tr := range srv.GroundTruth() {
			if tr.MediaID == id {
				return !tr.CreatedTime.Before(bound)
			}
		}
		return false
	}
}

// TestStartNowPublishesEverythingPostedSinceTheStart posts from before the poller is built until after its first
// polls, with bursts between New and Run deeper than one poll walks: every media posted since the start instant
// is published once, oldest first, however many pages the first poll has to walk back.
func TestStartNowPublishesEverythingPostedSinceTheStart(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		inclusive bool
		catchUp   int // Config.CatchUpPages (pages of 10)
		burst     int // media posted to the first tag between New and Run
	}{
		{"media posted before the first poll are published from the head down", false, 20, 25},
		{"a first poll walks back several pages", false, 20, 95},
		{"a first poll deeper than CatchUpPages is caught up in segments", false, 2, 137},
		{"an inclusive upstream does not repeat the media at the cursor", true, 2, 64},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tags := []string{"now_a", "now_b"}
			sim := testenv.Config{PlainHTTP: true, Tokens: []string{"start-tok-1", "start-tok-2"}, InclusiveMin: tc.inclusive}
			for _, tag := range tags {
				sim.Tags = append(sim.Tags, testenv.TagConfig{Name: tag, Initial: 40, Rate: 20})
			}
			srv := startSim(t, sim) // posting from now on, before the poller exists
			cfg := testConfig(srv, sim.Tokens, tags)
			cfg.StartTime = time.Time{} // the instant New is called
			cfg.PageSize = 10
			cfg.CatchUpPages = tc.catchUp
			store := checkpoint.NewMemory()
			t.Cleanup(func() { _ = store.Close() })
			pub := &memPublisher{}
			started := time.Now()
			p, err := New(cfg, pub, store, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			srv.Post(tags[0], tc.burst) // after the start, before any poll
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- p.Run(ctx) }()
			t.Cleanup(func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("Run: %v", err)
				}
			})
			waitPolled(t, p)
			for _, tag := range tags {
				srv.SetRate(tag, 0)
			}
			want := expected(srv, tags, started)
			checkExactlyOnce(t, srv, pub, want, createdSince(srv, started), 30*time.Second)
			testkit.Eventually(t, 20*time.Second, "no catch-up segment left", func() bool {
				for _, tag := range tags {
					if st, _, _ := store.Get(context.Background(), tag); len(st.Segments) > 0 || !st.Since.IsZero() {
						return false
					}
				}
				return true
			})
			if g := pub.gaps(); len(g) > 0 {
				t.Errorf("got %d gap markers, want none with StartNow", len(g))
			}
		})
	}
}

// TestStartNowJudgesLateTaggedMediaByCreatedTime: before a tag's first poll, a media tagged late (an old
// created_time at the head of the feed) is judged by its created_time and not published (the documented
// limit); from the first poll on, every media that appears at the head is.
func TestStartNowJudgesLateTaggedMediaByCreatedTime(t *testing.T) {
	tags := []string{"late_start"}
	sim := testenv.Config{PlainHTTP: true, Tokens: []string{"late-tok-1"}, Tags: []testenv.TagConfig{{Name: "late_start", Initial: 10}}}
	srv := startSim(t, sim)
	cfg := testConfig(srv, sim.Tokens, tags)
	cfg.StartTime = time.Time{}
	pub := &memPublisher{}
	store := checkpoint.NewMemory()
	started := time.Now()
	p, err := New(cfg, pub, store, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	before := srv.PostLate("late_start", 48*time.Hour)
	fresh := srv.Post("late_start", 3)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	waitPolled(t, p)
	after := srv.PostLate("late_start", 48*time.Hour)
	want := map[string]testenv.Truth{after.MediaID: after}
	for _, tr := range fresh {
		want[tr.MediaID] = tr
	}
	checkExactlyOnce(t, srv, pub, want, createdSince(srv, started), 20*time.Second)
	if pub.mediaCount()[before.MediaID] != 0 {
		t.Errorf("a media tagged late before the first poll, created two days before the start, was published")
	}
}

// TestStartSince publishes what was created since an earlier instant, oldest first; when the feed ends before
// media as old as that, a gap marker says the API may not serve them.
func TestStartSince(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		ago     time.Duration // the start time, before the simulator's start
		wantGap bool
	}{
		{"a start time older than the whole feed publishes it all after a gap marker", 24 * time.Hour, true},
		{"a start time inside the feed publishes what was created since, without a gap marker", 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tags := []string{"since_a"}
			// 80 Initial media created over the past, 1 to 120 seconds apart (between 80 s and 2.7 h old).
			sim := testenv.Config{PlainHTTP: true, Tokens: []string{"since-tok-1"}, Tags: []testenv.TagConfig{{Name: "since_a", Initial: 80}}}
			srv := startSim(t, sim)
			truth := srv.GroundTruth()
			start := time.Now().Add(-tc.ago)
			if tc.ago == 0 {
				start = truth[len(truth)/2].CreatedTime.Add(StartSkew) // about half the feed is as new
			}
			cfg := testConfig(srv, sim.Tokens, tags)
			cfg.Start, cfg.StartTime = StartSince, start
			cfg.PageSize, cfg.CatchUpPages = 10, 2
			r := startPoller(t, cfg, nil)
			want := map[string]testenv.Truth{}
			bound := start.Add(-StartSkew).Unix()
			for _, tr := range truth {
				if tr.CreatedTime.Unix() >= bound {
					want[tr.MediaID] = tr
				}
			}
			if len(want) == 0 || (tc.ago == 0 && len(want) == len(truth)) {
				t.Fatalf("%d of %d media are wanted: the workload does not test the bound", len(want), len(truth))
			}
			checkExactlyOnce(t, srv, r.pub, want, nil, 20*time.Second)
			gaps := r.pub.gaps()
			if got := len(gaps) > 0; got != tc.wantGap {
				t.Fatalf("gap markers %d, want one: %v", len(gaps), tc.wantGap)
			}
			if tc.wantGap && (len(gaps) != 1 || r.pub.snapshot()[0].Gap == nil) {
				t.Errorf("want exactly one gap marker, before the first media")
			}
		})
	}
}

// stopAfterPuts is a checkpoint store that reports when n writes happened.
type stopAfterPuts struct {
	checkpoint.Store
	mu   sync.Mutex
	puts int
	n    int
	hit  chan struct{}
}

func (s *stopAfterPuts) Put(ctx context.Context, tag string, st checkpoint.State) error {
	err := s.Store.Put(ctx, tag, st)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.puts++
	if s.puts == s.n {
		close(s.hit)
	}
	return err
}

// TestStartInstantSurvivesARestartMidCatchUp stops the poller right after the first poll of a tag whose media
// since the start span several catch-up walks: the start instant is in the checkpoint, and the next process
// publishes exactly the media created since it.
func TestStartInstantSurvivesARestartMidCatchUp(t *testing.T) {
	t.Parallel()
	tags := []string{"resume_since"}
	sim := testenv.Config{PlainHTTP: true, Tokens: []string{"resume-tok-1"}, Tags: []testenv.TagConfig{{Name: "resume_since", Initial: 30}}}
	srv := startSim(t, sim)
	cfg := testConfig(srv, sim.Tokens, tags)
	cfg.StartTime = time.Time{}
	cfg.PageSize, cfg.CatchUpPages = 5, 1
	mem := checkpoint.NewMemory()
	store := &stopAfterPuts{Store: mem, n: 1, hit: make(chan struct{})}
	started := time.Now()
	pub := &memPublisher{}
	p, err := New(cfg, pub, store, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv.Post("resume_since", 33)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	testkit.Receive(t, store.hit, 20*time.Second, "the first poll's write")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	st, _, _ := mem.Get(context.Background(), "resume_since")
	if len(st.Segments) == 0 || st.Since.IsZero() || st.Cursor != "" {
		t.Fatalf("after the first poll: %+v; want catch-up segments, the start instant and no cursor yet", st)
	}
	if n := len(pub.snapshot()); n != 0 {
		t.Fatalf("the first poll published %d events before its catch-up was done", n)
	}
	cfg.StartTime = time.Now().Add(time.Hour) // a later process: the stored instant must win
	r := startPoller(t, cfg, mem)
	want := expected(srv, tags, started)
	checkExactlyOnce(t, srv, r.pub, want, createdSince(srv, started), 20*time.Second)
}
