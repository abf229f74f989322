package poller

import (
	"hash/fnv"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tagstream/tagstream/poller/checkpoint"
)

// Rate estimation: a tag's posting rate is the ratio of two exponentially decayed sums, media found at the head and
// seconds observed. The decay's time constant covers about rateCount media, at least rateTau (so that a busy tag's
// estimate follows a change within minutes) and at most rateTauMax (so that a quiet tag's estimate rests on enough
// media to be worth something). A count far above the estimate (a burst on a quiet tag) restarts the history at
// once. Quiet tags learn slowly, so estimates are shrunk toward the mean rate of all tags (empirical Bayes): two
// pseudo-media at that mean rate (see rate).
const (
	rateTau    = 10 * 60.0  // seconds
	rateTauMax = 6 * 3600.0 // seconds
	rateCount  = 20.0       // media
	// pageFill is the fraction of a page one poll aims to fill at most: a tag is polled at least
	// rate/(pageFill*PageSize) times a second, so that Poisson bursts rarely need a second page.
	pageFill = 0.7
	// priorMedia is the weight of the prior (the mean rate of all tags) in a tag's estimate, in media. With half a
	// media, the quiet tags of a Zipf workload that saw nothing for a few minutes were taken at half their rate and
	// polled too rarely (zipf1000 steady 1.10x L*, virtual, 4 seeds); with two, 1.07x; one 1.07x, four 1.10x.
	priorMedia = 2.0
	// priorSecondsMax is how many seconds a tag's own count is spread over beyond its time, when it speaks
	// against the prior (see rate).
	priorSecondsMax = 10.0
	// catchUpGap is the least time between two catch-up walks of a tag, in seconds.
	catchUpGap = 0.01
	// catchUpShare is the share of the budget above the other tags' floors that catch-up work may take.
	catchUpShare = 0.9
	// costDecay weighs a tag's past head polls against the last one in its average cost.
	costDecay = 0.8
)

// tagState is the scheduler's state of one tag, kept small (about 250 bytes with the map entry) so that 100,000 tags
// fit easily: the recent ids and catch-up segments live in the checkpoint store, not here. Times named for the
// monotonic clock are readings of clock.mono (0 = never): a step of the wall clock does not move them.
type tagState struct {
	name      string
	cursor    string // last committed cursor seen by this process (for Status)
	headID    string // with kept: the one id of the state's recent set ("" when none)
	lastErr   string
	pending   *checkpoint.State // acknowledged state whose write failed: the next polls only write it; nil = none
	due       time.Duration     // monotonic clock
	lastPoll  time.Duration     // end of the last successful poll (monotonic clock)
	lastTry   time.Duration     // end of the last poll, successful or not (monotonic clock)
	lastHead  time.Duration     // when the head of the feed was last read, for rate estimation (monotonic clock)
	newest    int64             // created time of the newest media published, unix nanos (for Lag)
	cnt, dur  float64
	cost      float32 // requests a head poll costs (pages, gap probes, retries): a decayed average, at least 1
	published uint64
	catchUp   *catchUp   // the catch-up under way; nil when none
	gauges    *tagGauges // the tag's own series (see Config.TagMetrics); nil for most tags
	gaps      uint32
	hidx      int32 // index in scheduler.queue, -1 when not queued
	aidx      int32 // index in scheduler.all
	segments  uint16
	fails     uint16
	phase     float32 // deterministic jitter in [0,1) from the hash of the name
	planned   float32 // the interval (seconds) the tag's due time was set with; 0 for a backoff or a catch-up
	inFlight  bool
	removed   bool
	loaded    bool // the checkpoint was read (by the load at Run's start, or by a poll)
	plain     bool // the stored state is {Cursor: cursor} and a rate estimate (plainState): no read needed
	backlog   bool // the last poll left catch-up work: the tag is polled at the catch-up pace
	early     bool // handed out by popEarly: the poll uses only a token that is ready at once
	// covered: the store's start record holds the tag's start instant (see Poller.recordStarts), so its first
	// poll need not write a state when it finds nothing new.
	covered bool
	// kept: the tag's state lives in memory only ({Cursor: cursor, Recent: [headID]}): its first poll found
	// nothing new and was covered. plain is set too, so polls use it without reading the store.
	kept bool
	// absent: the store, whose only writer is this process (Config.StartLog), had no state of the tag when
	// Run started, and no poll wrote one since: its first poll need not read it (see Poller.prepareStore).
	absent bool
}

// catchUp follows a catch-up: from the poll that found more new media than one walk reads to the head walk that
// published the last of them.
type catchUp struct {
	since     time.Duration // start (monotonic clock), or when this process resumed it from the checkpoint
	pages     int           // pages read so far
	pending   int           // media located and not yet published
	published int           // media published so far
	resumed   bool          // resumed from the checkpoint: pending is an estimate
}

// tagGauges are the per-tag series of a tag that has them.
type tagGauges struct {
	lastPoll, interval prometheus.Gauge
}

// heapEntry is a slot of the scheduler's queue; the due time is kept inline so that sifting compares without
// following pointers.
type heapEntry struct {
	due time.Duration
	ts  *tagState
}

// observation is what one poll tells the scheduler.
type observation struct {
	err       error
	head      bool // the poll read the head of the feed: found counts the media that appeared since the last time
	found     int
	truncated bool // the head walk hit CatchUpPages: found is a lower bound
	backlog   bool // catch-up segments remain: poll again soon
	published int
	gaps      int
	cursor    string
	segments  int
	newest    time.Time
	wrote     bool          // the poll wrote a state
	plain     bool          // that state was plain (plainState)
	kept      bool          // the poll's state is kept in memory only (a covered first poll that found nothing new)
	headID    string        // with kept: the id of the state's recent set ("" when none)
	requests  int           // requests the poll sent (pages, probes, retries)
	elapsed   time.Duration // how long the poll took
	pages     int           // pages the poll read
	located   int           // media the poll read and left for later (a walk deeper than CatchUpPages)
	first     bool          // the tag's first poll (a walk back to the start instant, or a backfill)
	// hist, histMedia and histSeconds are a first rate estimate from the history a first poll's pages carry.
	hist                   bool
	histMedia, histSeconds float64
	// write is the state the poll decided to write: nil when there is nothing to write or the write succeeded;
	// with err set, the write failed and the scheduler keeps the state for the next polls to write.
	write *checkpoint.State
}

// scheduler decides when each tag is polled next. Each tag's poll frequency follows the square-root rule over the
// estimated posting rates: f_i = clamp(λ·sqrt(r_i), lo_i, hi) with λ chosen by rebalance so that the frequencies sum to
// the budget, hi = 1/MinInterval and lo_i = max(1/MaxInterval, r_i/(pageFill·PageSize)) (a quiet tag's floor, and
// a hot tag polled often enough to keep one page per poll). When even the floors exceed the budget, every tag gets
// its floor times budget/Σlo (slowed by the same factor: overload). Due times, on the monotonic clock, sit in a
// binary heap; a dispatch or a reschedule costs O(log tags), a rebalance O(tags) per bisection step and runs about
// once a second. The scheduler is not safe for concurrent use: the Poller guards it with its mutex.
type scheduler struct {
	minIv, maxIv float64 // seconds
	pageSize     float64
	catchUp      float64 // requests a catch-up poll costs at most: CatchUpPages+1
	priorRate    float64 // mean rate of all tags (media per second), the shrinkage target

	tags  map[string]*tagState
	all   []*tagState
	queue indexedHeap[heapEntry] // tags waiting for their poll, by due time

	lambda float64 // +Inf: every tag at hi
	// catchUpRate is the request rate each tag with catch-up work gets (requests per second): its share of the
	// budget plus what the other tags do not need for their floors (see rebalance).
	catchUpRate float64
	scale       float64 // overload factor applied to the floors (1: none)
	overloaded  bool
	// fresh counts the tags never polled yet (lastTry == 0): while there are any, the first round is under way.
	fresh int
	// firstSpread is the width, as a share of the interval, over which the second polls of the tags are spread
	// by phase (see done): 0.1 as for every poll, up to 1 when the start burst made the first round twice as
	// fast as the budget or more (see Poller.startBurst).
	firstSpread float64

	// dropped, when set, is called for every tag that leaves the schedule.
	dropped func(*tagState)

	// scratch for rebalance: per tag without catch-up work, in the order of all, the square root of its rate,
	// its floor and its cost; filled says they are those of the last rebalance and the tags have not changed
	// since (pullIn then reads them instead of working each tag's frequency out again).
	s, lo, c []float64
	filled   bool
}

func newScheduler(cfg Config) *scheduler {
	return &scheduler{
		minIv:       cfg.MinInterval.Seconds(),
		maxIv:       cfg.MaxInterval.Seconds(),
		pageSize:    float64(cfg.PageSize),
		priorRate:   1 / (4 * cfg.MaxInterval.Seconds()),
		tags:        make(map[string]*tagState),
		scale:       1,
		catchUp:     float64(cfg.CatchUpPages + 1),
		catchUpRate: math.Inf(1),
		queue: indexedHeap[heapEntry]{
			less:     func(a, b heapEntry) bool { return a.due < b.due },
			setIndex: func(e heapEntry, i int) { e.ts.hidx = int32(i) },
		},
	}
}

// phaseOf is a tag's deterministic jitter in [0,1): FNV-1a of its name, mixed by MurmurHash3's finalizer. (FNV-1a
// alone changes little but bits 40-48 for names that differ in their last characters, such as tag0001 to tag1000,
// so their phases bunched in a few narrow bands and so did their first polls.)
func phaseOf(name string) float32 {
	h := fnv.New64a()
	h.Write([]byte(name))
	x := h.Sum64()
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return float32(x>>40) / float32(1<<24)
}

// add schedules a new tag at now (monotonic clock); its first poll is spread by its phase over the time one round of
// all tags takes at the current budget (polls per second), between MinInterval and MaxInterval.
func (s *scheduler) add(name string, now time.Duration, budget float64) *tagState {
	if ts, ok := s.tags[name]; ok {
		ts.removed = false
		return ts
	}
	ts := &tagState{name: name, hidx: -1, phase: phaseOf(name), aidx: int32(len(s.all)), cost: 1}
	spread := s.minIv
	if budget > 0 {
		spread = min(s.maxIv, max(s.minIv, float64(len(s.tags)+1)/budget))
	}
	ts.due = now + time.Duration(float64(ts.phase)*spread*1e9)
	s.tags[name] = ts
	s.all = append(s.all, ts)
	s.fresh++
	s.push(ts)
	return ts
}

// spreadFirstPolls spreads the first polls of the tags never polled evenly over the time one round of them
// takes at the budget (requests per second), between MinInterval and MaxInterval, by their phase. New calls it
// once all tags are added: add spreads each tag over the round of the tags added before it, which packs the
// first polls of a long tag list into its first seconds, far beyond the budget (requests then queue at the
// pool and every poll waits). Run calls it again with the start burst's pace (see Poller.startBurst).
func (s *scheduler) spreadFirstPolls(now time.Duration, budget float64) {
	spread := s.minIv
	if budget > 0 {
		spread = min(s.maxIv, max(s.minIv, float64(s.fresh)/budget))
	}
	for _, ts := range s.all {
		if ts.lastTry != 0 || ts.hidx < 0 {
			continue
		}
		ts.due = now + time.Duration(float64(ts.phase)*spread*1e9)
		s.queue.items[ts.hidx].due = ts.due
		s.queue.Fix(int(ts.hidx))
	}
}

// remove stops scheduling a tag; one in flight is dropped when its poll is done.
func (s *scheduler) remove(name string) {
	ts, ok := s.tags[name]
	if !ok {
		return
	}
	if ts.inFlight {
		ts.removed = true
		return
	}
	s.drop(ts)
}

func (s *scheduler) drop(ts *tagState) {
	if ts.lastTry == 0 {
		s.fresh--
	}
	if ts.hidx >= 0 {
		s.queue.Remove(int(ts.hidx))
	}
	last := len(s.all) - 1
	s.all[ts.aidx] = s.all[last]
	s.all[ts.aidx].aidx = ts.aidx
	s.all[last] = nil
	s.all = s.all[:last]
	delete(s.tags, ts.name)
	if s.dropped != nil {
		s.dropped(ts)
	}
}

// load applies a tag's checkpoint read when Run starts, unless a poll read it first: the saved cursor (for Status),
// the rate estimate saved with it (so that a restart resumes with it: the first head poll after the restart
// counts the media found since the state was written), and a catch-up under way. A tag with an estimate that
// has not been polled yet is then scheduled by it instead of by the spread of first polls (see scheduleLoaded). clk is a reading of both clocks.
func (s *scheduler) load(name string, st checkpoint.State, clk clockReading) {
	ts := s.tags[name]
	if ts == nil || ts.loaded {
		return
	}
	ts.loaded = true
	ts.cursor = st.Cursor
	ts.plain = plainState(&st)
	ts.segments = uint16(min(len(st.Segments), math.MaxUint16))
	if st.RateSeconds > 0 && ts.lastTry == 0 {
		ts.cnt, ts.dur = max(0, st.RateMedia), st.RateSeconds
		if !st.Updated.IsZero() {
			if ts.lastHead = clk.monoAt(st.Updated); ts.lastHead == 0 {
				ts.lastHead = -1 // 0 means never
			}
		}
	}
	if len(st.Segments) > 0 {
		ts.backlog = true
		ts.catchUp = &catchUp{since: clk.mono, resumed: true, pending: len(st.Segments) * int(s.catchUp-1) * int(s.pageSize)}
	}
}

// scheduleLoaded schedules the first poll of every tag whose estimate was loaded and that was not polled yet by
// its planned interval, once the estimates are in and rebalance ran: at its phase within one interval, so
// that busy tags come first and the polls stay spread (a poll per tag at once would queue them all).
func (s *scheduler) scheduleLoaded(now time.Duration) {
	for _, ts := range s.all {
		if ts.lastTry != 0 || ts.hidx < 0 || ts.dur <= 0 {
			continue
		}
		iv := 1 / s.freq(ts)
		if ts.backlog {
			iv = s.minIv
		}
		due := now + time.Duration(float64(ts.phase)*iv*1e9)
		if due != ts.due {
			ts.due = due
			s.queue.items[ts.hidx].due = due
			s.queue.Fix(int(ts.hidx))
		}
	}
}

// popDue returns a tag whose poll is due at now (monotonic clock) and marks it in flight, or nil and how long until
// the next one is due.
func (s *scheduler) popDue(now time.Duration) (*tagState, time.Duration) {
	if s.queue.Len() == 0 {
		return nil, time.Hour
	}
	if d := s.queue.Min().due - now; d > 0 {
		return nil, d
	}
	top := s.queue.Remove(0).ts
	top.inFlight = true
	return top, 0
}

// popEarly returns, before it is due, the tag due first among those whose last poll ended at least MinInterval
// before now, and marks it in flight; nil when there is none among the first few of the queue (its first seven
// slots: the root of the heap, its four children and two of its grandchildren, among the tags due soonest). The dispatcher polls it early when a token would waste its budget
// otherwise.
func (s *scheduler) popEarly(now time.Duration) *tagState {
	best := -1
	for i := 0; i < min(s.queue.Len(), 7); i++ {
		ts := s.queue.items[i].ts
		if ts.lastTry != 0 && now-ts.lastTry < time.Duration(s.minIv*1e9) {
			continue
		}
		if best < 0 || s.queue.items[i].due < s.queue.items[best].due {
			best = i
		}
	}
	if best < 0 {
		return nil
	}
	ts := s.queue.Remove(best).ts
	ts.inFlight, ts.early = true, true
	return ts
}

// requeue puts back a tag taken by popDue but never polled.
func (s *scheduler) requeue(ts *tagState) {
	ts.inFlight = false
	if ts.removed {
		s.drop(ts)
		return
	}
	s.push(ts)
}

// rate is the tag's estimated posting rate in media per second: the posterior mean of a Gamma prior at the mean
// rate of all tags worth priorMedia media, updated with the tag's own (decayed) count and time, or what the tag's
// own count says when that is more (over its time and priorSecondsMax more). With little history a tag is taken
// to post at about the mean rate, and a few seconds with nothing new, or a page full of recent media, move it
// quickly. Where nearly every tag is silent (two busy tags among 100,000), the mean is tiny and the prior holds
// for hours: the silent tags stay at about the mean, all alike (their estimates do not drift apart with the time
// each was observed), while a tag whose own count speaks is taken at its word.
func (s *scheduler) rate(ts *tagState) float64 {
	b := s.priorWeight()
	return max(0, (ts.cnt+priorMedia)/(ts.dur+b), ts.cnt/(ts.dur+priorSecondsMax))
}

// priorWeight is how many seconds at the mean rate the prior adds to a tag's observations.
func (s *scheduler) priorWeight() float64 {
	return priorMedia / s.priorRate
}

// rateLow is a cautious estimate of the tag's posting rate: about the 10th percentile of the same posteriors
// (Wilson and Hilferty's approximation of a Gamma quantile). It sets a busy tag's page floor, so that a tag that
// merely looks busy after a few seconds of history (a handful of media in a short span) does not claim polls the
// other tags need; with a few hundred media of history it is within a few percent of rate.
func (s *scheduler) rateLow(ts *tagState) float64 {
	return max(gammaLow(max(0, ts.cnt)+priorMedia, ts.dur+s.priorWeight()),
		gammaLow(max(0, ts.cnt), ts.dur+priorSecondsMax))
}

// gammaLow is about the 10th percentile of a Gamma distribution of shape a and rate b.
func gammaLow(a, b float64) float64 {
	if a <= 0 || b <= 0 {
		return 0
	}
	x := 1 - 1/(9*a) - 1.2816/(3*math.Sqrt(a))
	if x <= 0 {
		return 0
	}
	return a * x * x * x / b
}

// bounds returns the floor and ceiling of a tag's poll frequency.
func (s *scheduler) bounds(r float64) (lo, hi float64) {
	hi = 1 / s.minIv
	lo = max(1/s.maxIv, min(r/(pageFill*s.pageSize), hi))
	return lo, hi
}

// freq is the tag's poll frequency (polls per second) under the current λ and overload scale.
func (s *scheduler) freq(ts *tagState) float64 {
	lo, _ := s.bounds(s.rateLow(ts))
	return s.freqOf(math.Sqrt(s.rate(ts)), lo)
}

// freqOf is the poll frequency of a tag whose rate has the square root sq and whose floor is lo.
func (s *scheduler) freqOf(sq, lo float64) float64 {
	hi := 1 / s.minIv
	switch {
	case s.overloaded:
		return lo * s.scale
	case math.IsInf(s.lambda, 1):
		return hi
	}
	return min(hi, max(lo, s.lambda*sq))
}

// interval is the tag's planned time between two polls in seconds: overload included, and the catch-up pace
// while it has catch-up work.
func (s *scheduler) interval(ts *tagState) float64 {
	if ts.backlog {
		if s.catchUpRate > 0 && !math.IsInf(s.catchUpRate, 1) {
			return max(catchUpGap, s.catchUp/s.catchUpRate)
		}
		return s.minIv
	}
	return 1 / s.freq(ts)
}

// done records a poll that finished at now (monotonic clock) and schedules the tag's next one. It returns the
// tag's catch-up when this poll started one (ended false) or ended one (ended true), for the log; nil otherwise.
func (s *scheduler) done(ts *tagState, o observation, now time.Duration) (cu *catchUp, ended bool) {
	ts.inFlight = false
	if ts.removed {
		s.drop(ts)
		return nil, false
	}
	n := now
	if ts.lastTry == 0 {
		s.fresh--
	}
	ts.lastTry = n
	ts.pending = nil
	if o.err != nil && o.write != nil {
		ts.pending = o.write
	}
	if o.err == nil || o.write != nil {
		ts.absent = false // a state was written or kept, or its write is pending
	}
	if o.err != nil {
		if !ts.kept {
			ts.plain = false // read the state again: a failed poll may come from the store
		}
		ts.lastErr = o.err.Error()
		ts.fails = min(ts.fails+1, 16)
	} else {
		ts.lastPoll = n // only a successful poll counts: a tag failing for hours must not look fresh
		ts.lastErr = ""
		ts.fails = 0
		ts.cursor = o.cursor
		ts.segments = uint16(min(o.segments, math.MaxUint16))
		ts.loaded = true
		switch {
		case o.wrote:
			ts.plain, ts.kept, ts.headID = o.plain, false, ""
		case o.kept:
			ts.plain, ts.kept, ts.headID = true, true, o.headID
		}
		cu, ended = ts.followCatchUp(o, now)
	}
	ts.published += uint64(o.published)
	ts.gaps += uint32(o.gaps)
	if !o.newest.IsZero() && o.newest.UnixNano() > ts.newest {
		ts.newest = o.newest.UnixNano()
	}
	if o.head && o.err == nil && !o.first && !o.truncated && o.requests > 0 {
		ts.cost = max(1, costDecay*ts.cost+(1-costDecay)*float32(o.requests))
	}
	if o.hist && o.err == nil {
		ts.cnt, ts.dur = o.histMedia, o.histSeconds
	}
	if o.head && o.err == nil {
		if ts.lastHead != 0 && n > ts.lastHead && !o.first {
			s.observe(ts, float64(o.found), (n - ts.lastHead).Seconds(), o.truncated)
		}
		ts.lastHead = n
	}
	if o.err == nil {
		ts.backlog = o.backlog
	}
	iv := 1 / s.freq(ts)
	if ts.backlog {
		// Catch-up walks follow one another at the catch-up pace, counted from the start of the walk (its
		// requests are the tag's share of that time), not MinInterval apart: a walk goes on where the last one
		// stopped, it does not poll the head again.
		iv = s.minIv
		if s.catchUpRate > 0 {
			iv = max(catchUpGap, float64(max(1, o.requests))/s.catchUpRate-o.elapsed.Seconds())
		}
	}
	if ts.fails > 0 {
		iv = max(iv, min(s.maxIv, s.minIv*math.Exp2(float64(ts.fails))))
	}
	if o.first && o.err == nil && !ts.backlog && ts.fails == 0 {
		// The tag's first poll: the first round may have polled every tag within a few seconds (see
		// Poller.startBurst), so the second polls of the many quiet tags, whose intervals are alike, would come
		// due together, a round later, and queue at the pool ahead of the busy tags. Spread them over the
		// interval by phase, the wider the faster the first round went (firstSpread). (Spread over [0, 1)
		// interval instead, they came due at once after the first round and queued ahead of the busy tags:
		// zipf1000, one-hour window, first 90 s 1.31x L* instead of 1.19x.)
		w := max(0.1, s.firstSpread)
		iv *= 1 - w/2 + w*float64(ts.phase)
	} else {
		iv *= 0.95 + 0.1*float64(ts.phase)
	}
	ts.due = n + time.Duration(iv*1e9)
	ts.planned = float32(iv)
	if ts.backlog || ts.fails > 0 {
		ts.planned = 0
	}
	s.push(ts)
	return cu, ended
}

// followCatchUp updates the tag's catch-up after a successful poll o: one starts when a poll leaves catch-up
// segments, and ends with the head walk that publishes the last of the new media.
func (ts *tagState) followCatchUp(o observation, now time.Duration) (cu *catchUp, ended bool) {
	c := ts.catchUp
	if c == nil {
		if ts.segments == 0 {
			return nil, false
		}
		c = &catchUp{since: now}
		ts.catchUp = c
		cu = c
	}
	c.pages += o.pages
	c.published += o.published
	c.pending = max(0, c.pending+o.located-o.published)
	if ts.segments == 0 && o.head && !o.truncated {
		ts.catchUp = nil
		return c, true
	}
	return cu, false
}

// observe folds found media over dt seconds into the tag's rate estimate; a truncated count is a lower bound.
func (s *scheduler) observe(ts *tagState, found, dt float64, truncated bool) {
	r := s.rate(ts)
	if found >= 8 && found > 4*r*dt+4 {
		ts.cnt, ts.dur = found, dt // a sudden rise: forget the quiet past
	} else {
		tau := min(rateTauMax, max(rateTau, rateCount/max(r, 1e-9)))
		d := math.Exp(-dt / tau)
		ts.cnt = ts.cnt*d + found
		ts.dur = ts.dur*d + dt
	}
	if truncated && dt > 0 {
		if lb := found / dt; s.rate(ts) < lb {
			ts.cnt = lb * (ts.dur + priorSecondsMax)
		}
	}
}

// rebalance recomputes λ (or the overload scale) for a budget in requests per second: the frequencies follow the
// square-root rule, f_i = clamp(λ·sqrt(r_i), lo_i, hi), and λ is such that the requests they cost,
// Σ c_i·f_i with c_i the tag's average requests per poll, sum to the budget. (The cost is not put under the root:
// it depends on the interval itself, a slower poll finding more media and needing more pages, so weighing it
// there would slow a busy tag further.) A busy tag's page floor lo_i rests on rateLow. It returns the ratio of the
// floors' demand to the budget: above 1 means overload.
func (s *scheduler) rebalance(budget float64) float64 {
	s.filled = false
	n := len(s.all)
	if n == 0 || budget <= 0 {
		s.overloaded = false
		s.lambda = math.Inf(1)
		s.catchUpRate = math.Inf(1)
		return 0
	}
	s.s = s.s[:0]
	s.lo = s.lo[:0]
	s.c = s.c[:0]
	var demand, sumHi, cnt, dur float64
	var hi float64
	for _, ts := range s.all {
		cnt += max(0, ts.cnt)
		dur += ts.dur
	}
	if cnt > 0 && dur > 0 {
		s.priorRate = max(cnt/dur, 1e-9)
	}
	catching := 0
	for _, ts := range s.all {
		if ts.backlog {
			catching++
			continue
		}
		r := s.rate(ts)
		c := float64(ts.cost)
		lo, h := s.bounds(s.rateLow(ts))
		hi = h
		s.s = append(s.s, math.Sqrt(r))
		s.lo = append(s.lo, lo)
		s.c = append(s.c, c)
		demand += c * lo
		sumHi += c * h
	}
	if catching > 0 {
		// Catch-up: the tags with catch-up work share their fair part of the budget or catchUpShare of what the
		// other tags do not need for their floors, whichever is more; the square-root rule shares the rest among
		// the others. The
		// backlog's media are all waiting already: the quiet tags give up most of their polls above the floor,
		// the busy ones keep one page per poll.
		give := max(budget*float64(catching)/float64(n), catchUpShare*(budget-demand))
		s.catchUpRate = give / float64(catching)
		budget -= give
		if len(s.s) == 0 {
			s.overloaded, s.scale, s.lambda = false, 1, math.Inf(1)
			return 0
		}
	} else {
		s.catchUpRate = math.Inf(1)
	}
	// From here on every tag's frequency follows from s.s and s.lo (see freqOf), as pullIn uses them.
	s.filled = true
	ratio := demand / budget
	if ratio > 1 {
		s.overloaded = true
		s.scale = 1 / ratio
		return ratio
	}
	s.overloaded = false
	s.scale = 1
	if sumHi <= budget {
		s.lambda = math.Inf(1)
		return ratio
	}
	total := func(l float64) float64 {
		var f float64
		for i, sq := range s.s {
			f += s.c[i] * min(hi, max(s.lo[i], l*sq))
		}
		return f
	}
	up := s.lambda
	if math.IsInf(up, 1) || up <= 0 || math.IsNaN(up) {
		up = 1
	}
	for i := 0; i < 200 && total(up) < budget; i++ {
		up *= 4
	}
	down := up / 4
	for i := 0; i < 200 && total(down) > budget; i++ {
		down /= 4
	}
	for range 24 {
		mid := math.Sqrt(up * down)
		if total(mid) > budget {
			up = mid
		} else {
			down = mid
		}
	}
	s.lambda = down
	return ratio
}

// pullIn brings forward the next poll of every queued tag whose planned interval is now clearly shorter than
// the one its due time was set with: the estimates of silent tags keep falling for hours (seconds without a media
// add up), so λ keeps rising and due times set earlier would leave the budget unspent. A tag is moved to its
// last poll plus the new interval (not before now); a tag in a backoff or a catch-up keeps its due time, and no
// due time moves later. O(tags) plus O(log tags) per tag moved; now is on the monotonic clock. Called right after
// rebalance, it reads each tag's frequency from what rebalance worked out.
func (s *scheduler) pullIn(now time.Duration) {
	filled := s.filled
	s.filled = false
	j := 0 // index in s.s and s.lo of the next tag without catch-up work
	for _, ts := range s.all {
		cached := filled && !ts.backlog && j < len(s.s)
		var sq, lo float64
		if cached {
			sq, lo = s.s[j], s.lo[j]
			j++
		}
		if ts.hidx < 0 || ts.planned == 0 || ts.lastTry == 0 {
			continue
		}
		var iv float64
		if cached {
			iv = 1 / s.freqOf(sq, lo) // s.interval(ts), from what rebalance worked out
		} else {
			iv = s.interval(ts)
		}
		iv *= 0.95 + 0.1*float64(ts.phase)
		if iv*pullInRatio >= float64(ts.planned) {
			continue
		}
		due := max(ts.lastTry+time.Duration(iv*1e9), now)
		ts.planned = float32(iv)
		if due < ts.due {
			ts.due = due
			s.queue.items[ts.hidx].due = due
			s.queue.Fix(int(ts.hidx))
		}
	}
}

// pullInRatio is how much shorter a tag's planned interval must have become for pullIn to move its due time.
const pullInRatio = 1.25

// push queues ts at its due time.
func (s *scheduler) push(ts *tagState) {
	s.queue.Push(heapEntry{due: ts.due, ts: ts})
}
