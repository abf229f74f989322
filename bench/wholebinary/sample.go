package main

import (
	"context"
	"sync"
	"time"

	"github.com/tagstream/tagstream/testenv"
)

// sampler records, every interval, the simulator's request counts (tagstream's tokens and the baseline's apart,
// and each of tagstream's tokens alone) and tagstream's own request counter from /metrics, so that budget use can
// be computed over any span of the run.
type sampler struct {
	sim      *simulator
	ts       *tagstreamProc
	tsTokens int // credentials 0..tsTokens-1 are tagstream's; the next ones the baseline's

	mu           sync.Mutex
	tsRequests   []counterSample   // simulator's count of tagstream's requests
	tsLimited    []counterSample   // of those refused over the limit
	rrRequests   []counterSample   // simulator's count of the baseline's requests
	rrLimited    []counterSample   // of those refused over the limit
	perToken     [][]counterSample // simulator's count per tagstream token
	metricsReqs  restartingCounter // sum of tagstream_requests_total over every tagstream process
	metricsLimit restartingCounter // tagstream_requests_total{outcome="rate_limited"}, likewise
	overloadMax  float64           // highest tagstream_schedule_overload seen
	errors       int
	firstErr     string
}

func newSampler(sim *simulator, ts *tagstreamProc, tsTokens int) *sampler {
	return &sampler{sim: sim, ts: ts, tsTokens: tsTokens, perToken: make([][]counterSample, tsTokens)}
}

// run samples every interval until ctx ends, and tagstream's /metrics every metricsEvery (at least interval).
func (s *sampler) run(ctx context.Context, interval, metricsEvery time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var scraped time.Time
	for {
		if now := time.Now(); now.Sub(scraped) >= metricsEvery-interval/2 {
			scraped = now
			s.sample(ctx)
		} else {
			s.sampleSimulator(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// restartingCounter turns a counter of a process that may restart (and count from 0 again) into one cumulative
// series: a drop adds the last value seen to a base.
type restartingCounter struct {
	base, last float64
	series     []counterSample
}

func (c *restartingCounter) add(at time.Time, raw float64) {
	if raw < c.last {
		c.base += c.last
	}
	c.last = raw
	c.series = append(c.series, counterSample{At: at, Value: c.base + raw})
}

// baseline records the counters at t0, before tagstream and the baseline made a request: the simulator's counts
// as they are, tagstream's own counters at 0 (the process does not exist yet).
func (s *sampler) baseline(ctx context.Context, t0 time.Time) error {
	st, err := s.sim.stats(ctx)
	if err != nil {
		return err
	}
	s.addStats(t0, st)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.metricsReqs.add(t0, 0)
	s.metricsLimit.add(t0, 0)
	return nil
}

// sample takes one sample now: the simulator's counters and tagstream's /metrics.
func (s *sampler) sample(ctx context.Context) {
	s.sampleSimulator(ctx)
	s.scrapeTagstream(ctx)
}

// sampleSimulator samples the simulator's counters now.
func (s *sampler) sampleSimulator(ctx context.Context) {
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	at := time.Now()
	st, err := s.sim.stats(sctx)
	if err != nil {
		s.fail(err)
		return
	}
	s.addStats(at, st)
}

// scrapeTagstream samples tagstream's /metrics now.
func (s *sampler) scrapeTagstream(ctx context.Context) {
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	at := time.Now()
	m, err := s.ts.metrics(sctx)
	if err != nil {
		s.fail(err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	reqs := m["tagstream_requests_total"]
	limited := m[`tagstream_requests_total{outcome="rate_limited"}`]
	s.metricsReqs.add(at, reqs)
	s.metricsLimit.add(at, limited)
	s.overloadMax = max(s.overloadMax, m["tagstream_schedule_overload"])
}

func (s *sampler) addStats(at time.Time, st testenv.Stats) {
	var ts, tsl, rr, rrl float64
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range st.Credentials {
		if c.Index < s.tsTokens {
			ts += float64(c.Requests)
			tsl += float64(c.Limited)
			s.perToken[c.Index] = append(s.perToken[c.Index], counterSample{At: at, Value: float64(c.Requests)})
		} else {
			rr += float64(c.Requests)
			rrl += float64(c.Limited)
		}
	}
	s.tsRequests = append(s.tsRequests, counterSample{At: at, Value: ts})
	s.tsLimited = append(s.tsLimited, counterSample{At: at, Value: tsl})
	s.rrRequests = append(s.rrRequests, counterSample{At: at, Value: rr})
	s.rrLimited = append(s.rrLimited, counterSample{At: at, Value: rrl})
}

func (s *sampler) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errors++
	if s.firstErr == "" {
		s.firstErr = err.Error()
	}
}

// firstPollWatcher samples tagstream's /status until every tag has had a successful poll and remembers, for each
// tag, the LastPoll of the first sample that shows one. With the sampling interval below tagstream's
// --min-interval (2 s by default), that is the end of the tag's first poll.
type firstPollWatcher struct {
	mu    sync.Mutex
	first map[string]time.Time
	want  int
	done  chan struct{}
}

func watchFirstPolls(ctx context.Context, ts *tagstreamProc, tags int, interval time.Duration) *firstPollWatcher {
	w := &firstPollWatcher{first: map[string]time.Time{}, want: tags, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		_ = waitUntil(ctx, interval, func() (bool, error) {
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			st, err := ts.status(sctx)
			if err != nil {
				return false, nil
			}
			w.mu.Lock()
			defer w.mu.Unlock()
			for _, t := range st {
				if _, ok := w.first[t.Tag]; !ok && !t.LastPoll.IsZero() {
					w.first[t.Tag] = t.LastPoll
				}
			}
			return len(w.first) >= w.want, nil
		})
	}()
	return w
}

// firstPolls returns what was seen so far.
func (w *firstPollWatcher) firstPolls() map[string]time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]time.Time, len(w.first))
	for k, v := range w.first {
		out[k] = v
	}
	return out
}
