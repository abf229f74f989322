package poller

import (
	"hash/fnv"
	"math"
	"time"
)

// Rate estimation: a tag's posting rate is the ratio of two exponentially decayed sums, media found at the head and
// seconds observed. The decay's time constant covers about rateCount media, at least rateTau (so that a busy tag's
// estimate follows a change within minutes) and at most rateTauMax (so that a quiet tag's estimate rests on enough
// media to be worth something). A count far above the estimate (a burst on a quiet tag) restarts the history at
// once. Quiet tags learn slowly, so estimates are shrunk toward the mean rate of all tags (empirical Bayes): one
// pseudo-media at that mean rate, weighing at most a quarter of the time the tag was observed.
const (
	rateTau    = 10 * 60.0  // seconds
	rateTauMax = 6 * 3600.0 // seconds
	rateCount  = 20.0       // media
	// pageFill is the fraction of a page one poll aims to fill at most: a tag is polled at least
	// rate/(pageFill*PageSize) times a second, so that Poisson bursts rarely need a second page.
	pageFill = 0.8
)

// tagState is the scheduler's state of one tag, kept small (about 200 bytes with the map entry) so that 100,000 tags
// fit easily: the recent ids and catch-up segments live in the checkpoint store, not here.
type tagState struct {
	name      string
	cursor    string // last committed cursor seen by this process (for Status)
	lastErr   string
	due       int64 // unix nanos
	lastPoll  int64 // end of the last successful poll (unix nanos)
	lastTry   int64 // end of the last poll, successful or not
	lastHead  int64 // when the head of the feed was last read (rate estimation)
	newest    int64 // created time of the newest media published (for Lag)
	cnt, dur  float64
	published uint64
	gaps      uint32
	hidx      int32 // index in scheduler.heap, -1 when not queued
	aidx      int32 // index in scheduler.all
	segments  uint16
	fails     uint16
	phase     float32 // deterministic jitter in [0,1) from the hash of the name
	inFlight  bool
	removed   bool
}

// heapEntry is a slot of the scheduler's heap; the due time is kept inline so that sifting compares without
// following pointers.
type heapEntry struct {
	due int64
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
}

// scheduler decides when each tag is polled next. Each tag's poll frequency follows the square-root rule over the
// estimated posting rates: f_i = clamp(λ·sqrt(r_i), lo_i, hi) with λ chosen by rebalance so that the frequencies sum to
// the budget, hi = 1/MinInterval and lo_i = max(1/MaxInterval, r_i/(pageFill·PageSize)) (a quiet tag's floor, and
// a hot tag polled often enough to keep one page per poll). When even the floors exceed the budget, every tag gets
// its floor times budget/Σlo (slowed by the same factor: overload). Due times sit in a binary heap; a dispatch or a
// reschedule costs O(log tags), a rebalance O(tags) per bisection step and runs about once a second. The scheduler
// is not safe for concurrent use: the Poller guards it with its mutex.
type scheduler struct {
	minIv, maxIv float64 // seconds
	pageSize     float64
	priorRate    float64 // mean rate of all tags (media per second), the shrinkage target

	tags map[string]*tagState
	all  []*tagState
	heap []heapEntry

	lambda     float64 // +Inf: every tag at hi
	scale      float64 // overload factor applied to the floors (1: none)
	overloaded bool

	// scratch for rebalance
	s, lo []float64
}

func newScheduler(cfg Config) *scheduler {
	return &scheduler{
		minIv:     cfg.MinInterval.Seconds(),
		maxIv:     cfg.MaxInterval.Seconds(),
		pageSize:  float64(cfg.PageSize),
		priorRate: 1 / (4 * cfg.MaxInterval.Seconds()),
		tags:      make(map[string]*tagState),
		scale:     1,
	}
}

func phaseOf(name string) float32 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return float32(h.Sum64()>>40) / float32(1<<24)
}

// add schedules a new tag; its first poll is spread by its phase over the time one round of all tags takes at the
// current budget (polls per second), between MinInterval and MaxInterval.
func (s *scheduler) add(name string, now time.Time, budget float64) *tagState {
	if ts, ok := s.tags[name]; ok {
		ts.removed = false
		return ts
	}
	ts := &tagState{name: name, hidx: -1, phase: phaseOf(name), aidx: int32(len(s.all))}
	spread := s.minIv
	if budget > 0 {
		spread = min(s.maxIv, max(s.minIv, float64(len(s.tags)+1)/budget))
	}
	ts.due = now.UnixNano() + int64(float64(ts.phase)*spread*1e9)
	s.tags[name] = ts
	s.all = append(s.all, ts)
	s.push(ts)
	return ts
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
	if ts.hidx >= 0 {
		s.heapRemove(ts)
	}
	last := len(s.all) - 1
	s.all[ts.aidx] = s.all[last]
	s.all[ts.aidx].aidx = ts.aidx
	s.all[last] = nil
	s.all = s.all[:last]
	delete(s.tags, ts.name)
}

// popDue returns a tag whose poll is due at now and marks it in flight, or nil and how long until the next one is
// due.
func (s *scheduler) popDue(now time.Time) (*tagState, time.Duration) {
	if len(s.heap) == 0 {
		return nil, time.Hour
	}
	if d := s.heap[0].due - now.UnixNano(); d > 0 {
		return nil, time.Duration(d)
	}
	top := s.heap[0].ts
	s.heapRemove(top)
	top.inFlight = true
	return top, 0
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

// rate is the tag's estimated posting rate in media per second.
func (s *scheduler) rate(ts *tagState) float64 {
	if ts.dur <= 0 {
		return s.priorRate
	}
	b := s.priorWeight(ts)
	return max(0, (ts.cnt+b*s.priorRate)/(ts.dur+b))
}

// priorWeight is how many seconds at the mean rate the shrinkage adds to a tag's observations.
func (s *scheduler) priorWeight(ts *tagState) float64 {
	return min(1/s.priorRate, ts.dur/4)
}

// bounds returns the floor and ceiling of a tag's poll frequency.
func (s *scheduler) bounds(r float64) (lo, hi float64) {
	hi = 1 / s.minIv
	lo = max(1/s.maxIv, min(r/(pageFill*s.pageSize), hi))
	return lo, hi
}

// freq is the tag's poll frequency (polls per second) under the current λ and overload scale.
func (s *scheduler) freq(ts *tagState) float64 {
	r := s.rate(ts)
	lo, hi := s.bounds(r)
	switch {
	case s.overloaded:
		return lo * s.scale
	case math.IsInf(s.lambda, 1):
		return hi
	}
	return min(hi, max(lo, s.lambda*math.Sqrt(r)))
}

// done records a finished poll and schedules the tag's next one.
func (s *scheduler) done(ts *tagState, o observation, now time.Time) {
	ts.inFlight = false
	if ts.removed {
		s.drop(ts)
		return
	}
	n := now.UnixNano()
	ts.lastTry = n
	if o.err != nil {
		ts.lastErr = o.err.Error()
		ts.fails = min(ts.fails+1, 16)
	} else {
		ts.lastPoll = n // only a successful poll counts: a tag failing for hours must not look fresh
		ts.lastErr = ""
		ts.fails = 0
		ts.cursor = o.cursor
		ts.segments = uint16(min(o.segments, math.MaxUint16))
	}
	ts.published += uint64(o.published)
	ts.gaps += uint32(o.gaps)
	if !o.newest.IsZero() && o.newest.UnixNano() > ts.newest {
		ts.newest = o.newest.UnixNano()
	}
	if o.head && o.err == nil {
		if ts.lastHead != 0 && n > ts.lastHead {
			s.observe(ts, float64(o.found), float64(n-ts.lastHead)/1e9, o.truncated)
		}
		ts.lastHead = n
	}
	iv := 1 / s.freq(ts)
	if o.backlog && o.err == nil {
		iv = s.minIv
	}
	if ts.fails > 0 {
		iv = max(iv, min(s.maxIv, s.minIv*math.Exp2(float64(ts.fails))))
	}
	iv *= 0.95 + 0.1*float64(ts.phase)
	ts.due = n + int64(iv*1e9)
	s.push(ts)
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
			b := s.priorWeight(ts)
			ts.cnt = lb*(ts.dur+b) - b*s.priorRate
		}
	}
}

// rebalance recomputes λ (or the overload scale) for a budget in polls per second. It returns the ratio of the
// floors' demand to the budget: above 1 means overload.
func (s *scheduler) rebalance(budget float64) float64 {
	n := len(s.all)
	if n == 0 || budget <= 0 {
		s.overloaded = false
		s.lambda = math.Inf(1)
		return 0
	}
	s.s = s.s[:0]
	s.lo = s.lo[:0]
	var demand, sumHi, cnt, dur float64
	var hi float64
	for _, ts := range s.all {
		cnt += max(0, ts.cnt)
		dur += ts.dur
	}
	if cnt > 0 && dur > 0 {
		s.priorRate = max(cnt/dur, 1e-9)
	}
	for _, ts := range s.all {
		r := s.rate(ts)
		lo, h := s.bounds(r)
		hi = h
		s.s = append(s.s, math.Sqrt(r))
		s.lo = append(s.lo, lo)
		demand += lo
		sumHi += h
	}
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
			f += min(hi, max(s.lo[i], l*sq))
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

// The heap of queued tags, ordered by due time.

func (s *scheduler) push(ts *tagState) {
	ts.hidx = int32(len(s.heap))
	s.heap = append(s.heap, heapEntry{due: ts.due, ts: ts})
	s.up(int(ts.hidx))
}

func (s *scheduler) heapRemove(ts *tagState) {
	i := int(ts.hidx)
	last := len(s.heap) - 1
	if i != last {
		s.heap[i] = s.heap[last]
		s.heap[i].ts.hidx = int32(i)
	}
	s.heap[last] = heapEntry{}
	s.heap = s.heap[:last]
	ts.hidx = -1
	if i < last {
		if !s.down(i) {
			s.up(i)
		}
	}
}

func (s *scheduler) up(j int) {
	e := s.heap[j]
	for j > 0 {
		i := (j - 1) / 2
		if e.due >= s.heap[i].due {
			break
		}
		s.heap[j] = s.heap[i]
		s.heap[j].ts.hidx = int32(j)
		j = i
	}
	s.heap[j] = e
	e.ts.hidx = int32(j)
}

func (s *scheduler) down(i0 int) bool {
	i, n := i0, len(s.heap)
	e := s.heap[i]
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		j := l
		if r := l + 1; r < n && s.heap[r].due < s.heap[l].due {
			j = r
		}
		if s.heap[j].due >= e.due {
			break
		}
		s.heap[i] = s.heap[j]
		s.heap[i].ts.hidx = int32(i)
		i = j
	}
	s.heap[i] = e
	e.ts.hidx = int32(i)
	return i > i0
}
