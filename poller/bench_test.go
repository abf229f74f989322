package poller

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tagstream/tagstream/poller/checkpoint"
	"github.com/tagstream/tagstream/schema"
	"github.com/tagstream/tagstream/testenv"
)

// cannedUpstream is an in-process http.RoundTripper that answers every request with the same empty page, so that a
// benchmark measures the poller and nothing else.
type cannedUpstream struct{ body []byte }

func (c cannedUpstream) RoundTrip(req *http.Request) (*http.Response, error) {
	return &http.Response{
		StatusCode:    200,
		Header:        http.Header{"Content-Type": {"application/json"}, "X-Ratelimit-Limit": {"1000000000"}, "X-Ratelimit-Remaining": {"999999999"}},
		Body:          io.NopCloser(bytes.NewReader(c.body)),
		ContentLength: int64(len(c.body)),
		Request:       req,
	}, nil
}

// countingUpstream is a cannedUpstream that closes reached when it has answered target requests.
type countingUpstream struct {
	cannedUpstream
	n       atomic.Int64
	target  int64
	reached chan struct{}
}

func (c *countingUpstream) RoundTrip(req *http.Request) (*http.Response, error) {
	if c.n.Add(1) == c.target {
		close(c.reached)
	}
	return c.cannedUpstream.RoundTrip(req)
}

const emptyPage = `{"pagination":{"deprecation_warning":"next_max_id and min_id are deprecated for this endpoint; use min_tag_id and max_tag_id instead"},"meta":{"code":200},"data":[]}`

// benchPoller builds a Poller with nTags tags and nTokens tokens against the canned upstream, with every tag already
// started (a checkpoint with a cursor), polling as fast as the machinery allows.
func benchPoller(b *testing.B, nTags, nTokens int, rt http.RoundTripper) (*Poller, checkpoint.Store) {
	b.Helper()
	cfg := Config{
		BaseURL:         "https://api.instagram.invalid/v1",
		Transport:       rt,
		RequestsPerHour: 1 << 30,
		MinInterval:     time.Microsecond,
		MaxInterval:     time.Millisecond,
	}
	for i := range nTokens {
		cfg.Tokens = append(cfg.Tokens, Token{Value: fmt.Sprintf("bench-token-%04d", i)})
	}
	store := checkpoint.NewMemory()
	ctx := context.Background()
	for i := range nTags {
		tag := fmt.Sprintf("tag%06d", i)
		cfg.Tags = append(cfg.Tags, tag)
		if err := store.Put(ctx, tag, checkpoint.State{Cursor: "1000000000000000", Recent: []string{"1_1"}}); err != nil {
			b.Fatal(err)
		}
	}
	p, err := New(cfg, PublisherFunc(func(context.Context, []*schema.Event) error { return nil }), store, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	return p, store
}

// BenchmarkPollsDispatched runs the whole poller (dispatcher, workers, token pool, client, schema decoding,
// checkpoint read) with 100,000 tags and 1,000 tokens against an in-process upstream that answers an empty page,
// and reports polls per second. Run it with -cpu 1 for the one-core figure.
func BenchmarkPollsDispatched(b *testing.B) {
	up := &countingUpstream{cannedUpstream: cannedUpstream{body: []byte(emptyPage)}, target: int64(b.N),
		reached: make(chan struct{})}
	p, _ := benchPoller(b, 100_000, 1_000, up)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	go func() { done <- p.Run(ctx) }()
	<-up.reached // one request per poll: every poll of an empty page is one request
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
	b.StopTimer()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	polls := counterValueB(p.m.polls)
	b.ReportMetric(polls/elapsed.Seconds(), "polls/s")
	b.ReportMetric(polls/cpu.Seconds(), "polls/cpu-s")
}

// cpuTime is the CPU time (user and system) the process used so far: polls per CPU second do not depend on what
// else the shared machine runs.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func counterValueB(c interface{ Write(*dtoMetric) error }) float64 {
	var m dtoMetric
	_ = c.Write(&m)
	return m.GetCounter().GetValue()
}

// BenchmarkMemoryPerTag reports the heap the poller keeps per tag (scheduler state, map entry, heap slot) with
// 100,000 tags, and separately what the in-memory checkpoint store holds per tag.
func BenchmarkMemoryPerTag(b *testing.B) {
	const n = 100_000
	for range b.N {
		tags := make([]string, n)
		for i := range tags {
			tags[i] = fmt.Sprintf("tag%06d", i)
		}
		cfg := Config{BaseURL: "https://api.instagram.invalid/v1", Transport: cannedUpstream{},
			Tokens: []Token{{Value: "t"}}}
		before := heapInUse()
		cfg.Tags = tags
		p, err := New(cfg, PublisherFunc(func(context.Context, []*schema.Event) error { return nil }),
			checkpoint.NewMemory(), nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		// Every tag as after some polls: a cursor, a rate estimate, a poll time.
		now := p.clk.mono()
		p.mu.Lock()
		for _, ts := range p.sched.all {
			ts.cursor = "10000000000012345"
			ts.cnt, ts.dur, ts.lastPoll, ts.lastHead = 3, 600, now, now
		}
		p.sched.rebalance(1000)
		p.mu.Unlock()
		after := heapInUse()
		b.ReportMetric(float64(after-before)/n, "B/tag")
		runtime.KeepAlive(p)
		runtime.KeepAlive(tags)

		store := checkpoint.NewMemory()
		before = heapInUse()
		recent := make([]string, 200)
		for i := range recent {
			recent[i] = fmt.Sprintf("13000000000%08d_1234567890", i)
		}
		for _, tag := range tags[:10_000] {
			_ = store.Put(context.Background(), tag, checkpoint.State{Cursor: "10000000000012345", Recent: recent})
		}
		after = heapInUse()
		b.ReportMetric(float64(after-before)/10_000, "store-B/tag(200-ids)")
		runtime.KeepAlive(store)
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkSchedulePoll measures the scheduler's cost per poll (take the due tag, reschedule it) with 100,000 tags.
func BenchmarkSchedulePoll(b *testing.B) {
	s := testScheduler(time.Second, 5*time.Minute)
	for i := range 100_000 {
		ts := s.add(fmt.Sprintf("tag%06d", i), epoch, 1000)
		setRate(s, ts, float64(i%100)/1000)
	}
	s.rebalance(1000)
	now := epoch
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		ts, wait := s.popDue(now)
		if ts == nil {
			now += wait
			ts, _ = s.popDue(now)
		}
		s.done(ts, observation{head: true, found: i & 1}, now)
	}
}

// BenchmarkRebalance measures one recomputation of λ over 100,000 tags (it runs about once a second).
func BenchmarkRebalance(b *testing.B) {
	s := testScheduler(time.Second, 5*time.Minute)
	for i := range 100_000 {
		ts := s.add(fmt.Sprintf("tag%06d", i), epoch, 1000)
		setRate(s, ts, float64(i%100)/1000)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		s.rebalance(1000 + float64(i%7)) // a slightly different budget each time: no shortcut
	}
}

// BenchmarkSkewedWorkload simulates, in virtual time (no sleeping), tags with Zipf posting rates (the k-th tag
// posts top/k media per second, Poisson) and a scarce budget of polls per second, and reports the learned
// schedule's mean post-to-hand-off time against the square-root optimum L* and against round-robin polling at the
// same budget (averages over b.N seeds).
func BenchmarkSkewedWorkload(b *testing.B) {
	cases := []struct {
		tags   int
		top    float64
		budget float64
	}{
		{1000, 1, 20},
		{10000, 2, 50},
	}
	for _, c := range cases {
		b.Run(fmt.Sprintf("tags=%d/top=%g/budget=%g", c.tags, c.top, c.budget), func(b *testing.B) {
			var wait, opt, rr float64
			for i := range b.N {
				res := simulateSkew(c.tags, c.top, c.budget, 2*time.Hour, 6*time.Hour, uint64(i+1))
				wait += res.meanWait
				opt += res.optimum
				rr += res.roundRobin
			}
			n := float64(b.N)
			b.ReportMetric(wait/n, "mean-wait-s")
			b.ReportMetric(opt/n, "L*-s")
			b.ReportMetric(rr/n, "round-robin-s")
			b.ReportMetric(wait/opt, "x-optimum")
		})
	}
}

// BenchmarkPollAtTheCap measures the memory of the largest poll the caps allow: a tag's first poll with
// StartBackfill and BackfillPages = CatchUpPages = MaxCatchUpPages walks 1,000 pages of 33 media from the simulator
// over loopback HTTP and publishes the 33,000 events in one batch. peak-heap-MB is the live heap the poll holds when
// it hands the batch to the publisher (after a GC, less the heap before the poll); B/op also counts what the
// in-process simulator allocates to serve the pages.
func BenchmarkPollAtTheCap(b *testing.B) {
	const pages = MaxCatchUpPages
	sim, err := testenv.New(testenv.Config{PlainHTTP: true, Tokens: []string{"cap-token"}, RequestsPerHour: 1 << 30,
		TimeScale: 3600, Seed: 7, Tags: []testenv.TagConfig{{Name: "deep", Initial: pages*33 + 100}}})
	if err != nil {
		b.Fatal(err)
	}
	if err := sim.Start(); err != nil {
		b.Fatal(err)
	}
	defer sim.Close()
	var peak uint64
	var published int
	pub := PublisherFunc(func(_ context.Context, events []*schema.Event) error {
		peak = max(peak, heapInUse())
		published = len(events)
		return nil
	})
	cfg := Config{BaseURL: sim.URL(), Tokens: []Token{{Value: "cap-token"}}, RequestsPerHour: 1 << 30,
		Tags: []string{"deep"}, Start: StartBackfill, CatchUpPages: MaxCatchUpPages, BackfillPages: MaxBackfillPages}
	var grew float64
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		p, err := New(cfg, pub, checkpoint.NewMemory(), nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		before := heapInUse()
		peak = 0
		b.StartTimer()
		r := &pollRun{p: p, ctx: context.Background(), commitCtx: context.Background(), tag: "deep"}
		if _, err := r.step(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if published != pages*33 {
			b.Fatalf("published %d events, want %d", published, pages*33)
		}
		grew += float64(peak - before)
		b.StartTimer()
	}
	b.ReportMetric(grew/float64(b.N)/(1<<20), "peak-heap-MB")
	b.ReportMetric(float64(pages*33), "media/poll")
}

// BenchmarkPollsOverHTTP runs the whole poller as the command does at scale (100,000 tags, 1,000 tokens, every
// tag started, the bolt checkpoint store in a temporary directory) against an HTTP server on loopback that
// answers every request with the same empty page, and reports the poller's CPU per poll (the server's included:
// it runs in the same process, so the figure is an upper bound; the whole-binary harness measures tagstream
// alone).
func BenchmarkPollsOverHTTP(b *testing.B) {
	var n atomic.Int64
	reached := make(chan struct{})
	target := int64(b.N)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if n.Add(1) == target {
			close(reached)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Ratelimit-Limit", "1000000000")
		w.Header().Set("X-Ratelimit-Remaining", "999999999")
		_, _ = io.WriteString(w, emptyPage)
	}))
	defer srv.Close()
	cfg := Config{
		BaseURL:         srv.URL + "/v1",
		RequestsPerHour: 1 << 30,
		MinInterval:     time.Microsecond,
		MaxInterval:     time.Millisecond,
	}
	for i := range 1000 {
		cfg.Tokens = append(cfg.Tokens, Token{Value: fmt.Sprintf("bench-token-%04d", i)})
	}
	dir := b.TempDir()
	ctx := context.Background()
	for i := range 100_000 {
		tag := fmt.Sprintf("tag%06d", i)
		cfg.Tags = append(cfg.Tags, tag)
	}
	// Every tag started on an empty feed, as the silent tags of the whole-binary scale workload after their first
	// poll (written in group commits, then reopened as the command opens it).
	fill, err := checkpoint.OpenBolt(dir+"/cursors.db", &checkpoint.BoltOptions{GroupCommit: 5 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 256 {
		wg.Go(func() {
			for i := w; i < len(cfg.Tags); i += 256 {
				if err := fill.Put(ctx, cfg.Tags[i], checkpoint.State{}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := fill.Close(); err != nil {
		b.Fatal(err)
	}
	store, err := checkpoint.OpenBolt(dir+"/cursors.db", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	p, err := New(cfg, PublisherFunc(func(context.Context, []*schema.Event) error { return nil }), store, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	go func() { done <- p.Run(runCtx) }()
	<-reached
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
	b.StopTimer()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	polls := counterValueB(p.m.polls)
	b.ReportMetric(polls/elapsed.Seconds(), "polls/s")
	b.ReportMetric(cpu.Seconds()/polls*1e6, "cpu-µs/poll")
}
