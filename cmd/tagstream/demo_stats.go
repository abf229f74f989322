package main

import (
	"cmp"
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/tagstream/tagstream/internal/consume"
	"github.com/tagstream/tagstream/internal/pipeline"
	"github.com/tagstream/tagstream/testenv"
)

// demoStats records what the demo consumer read back from the broker and compares it with the simulator's
// ground truth. It is safe for concurrent use.
type demoStats struct {
	mu        sync.Mutex
	tags      []string
	workStart time.Time
	workEnd   time.Time
	consumed  map[string]time.Time // media id -> when its event was first consumed
	tagOf     map[string]string    // media id -> tag
	eventIDs  map[string]bool
	dups      int
	gaps      int
	total     int
	perTag    map[string]*demoTagStats
	pending   []string // media ids consumed but without a known VisibleAt yet
	latency   map[string]time.Duration
	samples   []string // the last few events, pretty-printed
	history   []demoCount
}

type demoTagStats struct {
	events  int
	latency []time.Duration
}

// demoCount is a snapshot of the per-tag event counts, for rates over the last seconds.
type demoCount struct {
	at     time.Time
	counts map[string]int
}

func newDemoStats(tags []string) *demoStats {
	s := &demoStats{
		tags:     tags,
		consumed: map[string]time.Time{},
		tagOf:    map[string]string{},
		eventIDs: map[string]bool{},
		perTag:   map[string]*demoTagStats{},
		latency:  map[string]time.Duration{},
	}
	for _, t := range tags {
		s.perTag[t] = &demoTagStats{}
	}
	return s
}

func (s *demoStats) setWorkStart(t time.Time) { s.mu.Lock(); s.workStart = t; s.mu.Unlock() }
func (s *demoStats) setWorkEnd(t time.Time)   { s.mu.Lock(); s.workEnd = t; s.mu.Unlock() }

// add records one consumed event (received at m.ReceivedAt); a record that is not an event is ignored.
func (s *demoStats) add(m consume.Message) {
	e := m.Event
	if e == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.eventIDs[e.ID] {
		s.dups++
		return
	}
	s.eventIDs[e.ID] = true
	s.samples = append(s.samples, prettyLine(m))
	if len(s.samples) > 3 {
		s.samples = s.samples[len(s.samples)-3:]
	}
	if e.Data == nil {
		s.gaps++
		return
	}
	id := e.Data.MediaID
	s.total++
	s.consumed[id] = m.ReceivedAt
	s.tagOf[id] = e.Subject
	ts := s.perTag[e.Subject]
	if ts == nil {
		ts = &demoTagStats{}
		s.perTag[e.Subject] = ts
	}
	ts.events++
	s.pending = append(s.pending, id)
}

// resolve computes the post-to-event time of consumed media whose VisibleAt the ground truth now knows.
func (s *demoStats) resolve(truth []testenv.Truth) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pending) == 0 {
		return
	}
	visible := make(map[string]time.Time, len(truth))
	for _, t := range truth {
		visible[t.MediaID] = t.VisibleAt
	}
	rest := s.pending[:0]
	for _, id := range s.pending {
		v, ok := visible[id]
		if !ok {
			rest = append(rest, id)
			continue
		}
		l := s.consumed[id].Sub(v)
		s.latency[id] = l
		if ts := s.perTag[s.tagOf[id]]; ts != nil {
			ts.latency = append(ts.latency, l)
		}
	}
	s.pending = rest
}

// snapshot records the per-tag counts now and returns each tag's event rate over about the last 10 s.
func (s *demoStats) rates(now time.Time) map[string]float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	counts := make(map[string]int, len(s.perTag))
	for t, ts := range s.perTag {
		counts[t] = ts.events
	}
	s.history = append(s.history, demoCount{at: now, counts: counts})
	for len(s.history) > 2 && now.Sub(s.history[1].at) >= 10*time.Second {
		s.history = s.history[1:]
	}
	old := s.history[0]
	out := make(map[string]float64, len(counts))
	secs := now.Sub(old.at).Seconds()
	for t, n := range counts {
		if secs > 0 {
			out[t] = float64(n-old.counts[t]) / secs
		}
	}
	return out
}

type demoSummary struct {
	consumed, expected, missing, duplicates, gaps int
	p50, p95, max                                 time.Duration
	missingIDs                                    []string
}

// summary compares the consumed media with the media posted since the workload started.
func (s *demoStats) summary(truth []testenv.Truth) demoSummary {
	s.mu.Lock()
	defer s.mu.Unlock()
	sum := demoSummary{consumed: s.total, duplicates: s.dups, gaps: s.gaps}
	if s.workStart.IsZero() {
		return sum
	}
	for _, t := range truth {
		if t.VisibleAt.Before(s.workStart) || (!t.DeletedAt.IsZero()) {
			continue
		}
		sum.expected++
		if _, ok := s.consumed[t.MediaID]; !ok {
			sum.missing++
			if len(sum.missingIDs) < 10 {
				sum.missingIDs = append(sum.missingIDs, t.Tag+"/"+t.MediaID)
			}
		}
	}
	all := make([]time.Duration, 0, len(s.latency))
	for _, l := range s.latency {
		all = append(all, l)
	}
	sum.p50, sum.p95, sum.max = percentiles(all)
	return sum
}

// tagRows returns per tag: events, p50 and p95 latency.
func (s *demoStats) tagRow(tag string) (events int, p50, p95 time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ts := s.perTag[tag]
	if ts == nil {
		return 0, 0, 0
	}
	p50, p95, _ = percentiles(append([]time.Duration(nil), ts.latency...))
	return ts.events, p50, p95
}

func (s *demoStats) sampleLines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.samples...)
}

func (s *demoStats) totals() (events, dups, gaps int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total, s.dups, s.gaps
}

// percentiles sorts l and returns its 50th and 95th percentiles and maximum (zeros when empty).
func percentiles(l []time.Duration) (p50, p95, max time.Duration) {
	if len(l) == 0 {
		return 0, 0, 0
	}
	slices.Sort(l)
	at := func(q float64) time.Duration { return l[min(len(l)-1, int(q*float64(len(l))))] }
	return at(0.50), at(0.95), l[len(l)-1]
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, cmp.Compare[string])
	return keys
}

// startConsumer starts reading every new event of the pipeline's sink into the stats. The returned channel is
// closed when the consumer has stopped (after ctx ends).
func (d *demo) startConsumer(ctx context.Context, logger *slog.Logger) (<-chan struct{}, error) {
	cons, err := pipeline.NewConsumer(ctx, d.cfg, pipeline.ConsumerOptions{Logger: logger})
	if err != nil {
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer cons.Close()
		for {
			m, err := cons.Next(ctx)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				logger.Warn("demo consumer", "err", err)
				continue
			}
			d.stats.add(m)
		}
	}()
	return done, nil
}
