package poller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tagstream/tagstream/poller/checkpoint"
	"github.com/tagstream/tagstream/schema"
)

// Publisher hands events to a broker. Publish returns nil only when every event is durably acknowledged by the
// broker; the poller moves a tag's cursor only after that. Implementations must be safe for concurrent use: the
// poller publishes the batches of different tags from several workers at once, and the events of one tag always in
// order (oldest first) from one call.
type Publisher interface {
	Publish(ctx context.Context, events []*schema.Event) error
}

// PublisherFunc adapts a function to a Publisher.
type PublisherFunc func(ctx context.Context, events []*schema.Event) error

// Publish calls f(ctx, events).
func (f PublisherFunc) Publish(ctx context.Context, events []*schema.Event) error {
	return f(ctx, events)
}

// Errors of the poller. Errors returned by New wrap ErrConfig; fetch errors are *FetchError values that wrap one of
// ErrRateLimited, ErrTokenInvalid, ErrPermanent or ErrTransient.
var (
	// ErrConfig is wrapped by every validation error of New; the message names the field.
	ErrConfig = errors.New("poller: invalid config")
	// ErrNoTokens is returned by New when Config.Tokens is empty.
	ErrNoTokens = errors.New("poller: no tokens configured")
	// ErrAllTokensRetired is wrapped by the error Run returns when the API rejected every token.
	ErrAllTokensRetired = errors.New("poller: every token is retired")
	// ErrInvalidTag is wrapped by the errors of AddTag (and New) for a tag that cannot be polled. It is
	// schema.ErrInvalidTag: the poller applies the one rule for a tag, schema.ValidateTag.
	ErrInvalidTag = schema.ErrInvalidTag
	// ErrRunning is returned by Run when the poller is already running.
	ErrRunning = errors.New("poller: already running")
	// ErrNotRunning is wrapped by the error of Ready while Run is not running.
	ErrNotRunning = errors.New("poller: not running")
)

// TagStatus is a snapshot of one tag's polling state.
type TagStatus struct {
	Tag string
	// Cursor is the cursor up to which media are acknowledged by the publisher, as this process knows it: the
	// SavedCursor, or a newer one whose checkpoint write failed and is being retried. "" when none.
	Cursor string
	// SavedCursor is the cursor in the checkpoint store: read when Run starts (so a restart shows where the tag
	// resumes before its first poll) and updated by every successful write. "" when the store has none.
	SavedCursor string
	Segments    int            // catch-up segments located but not yet published
	CatchUp     *CatchUpStatus // the catch-up under way; nil when none
	LastPoll    time.Time      // end of the last successful poll of this process; zero before the first
	LastAttempt time.Time      // end of the last poll, successful or not (LastError says how it ended)
	NextPoll    time.Time      // when the tag is due; zero while a poll is in flight
	Rate        float64        // estimated posting rate, media per second
	// RateEstimate is Rate.
	//
	// Deprecated: use Rate.
	RateEstimate float64
	Lag          time.Duration
	Published    uint64 // media events acknowledged by the publisher since start
	Gaps         uint64 // gap markers published since start
	LastError    string // the last poll's error ("" when it succeeded); never holds a token
}

// CatchUpStatus describes a catch-up under way: the tag's new media span more pages than one poll walks
// (Config.CatchUpPages), so they are located and published oldest first over several polls.
type CatchUpStatus struct {
	// Since is when the catch-up started, or when this process resumed it from the checkpoint.
	Since time.Time
	// Pages is how many pages the catch-up read so far.
	Pages int
	// Pending is how many media are located and not yet published (estimated from the pages when the catch-up
	// was resumed from the checkpoint).
	Pending int
}

// TokenStatus is a snapshot of one token. It never holds the token itself.
type TokenStatus struct {
	Index       int    // position in Config.Tokens
	Fingerprint string // first 8 hex digits of the token's SHA-256
	ClientID    bool
	Limit       int // requests per window, from X-Ratelimit-Limit when seen, else the configured budget
	// Share is the fraction of Limit this instance may spend: 1 unless Assign set the shares (group mode), 0 for
	// a token it does not use.
	Share       float64
	Remaining   int // last X-Ratelimit-Remaining seen; -1 before any
	ParkedUntil time.Time
	Retired     bool
}

// Poller polls the recent media of many tags with a pool of tokens and publishes one event per new media. It is safe
// for concurrent use; Run may be called once at a time.
type Poller struct {
	cfg    Config
	clk    clock
	pub    Publisher
	store  checkpoint.Store
	log    *slog.Logger
	m      *metrics
	pool   *tokenPool
	client *client
	writes storeHealth

	mu    sync.Mutex
	sched *scheduler
	wake  chan struct{}
	// wakeAt is when the dispatcher wakes next (monotonic clock) as of its last look at the queue: a poll that
	// reschedules its tag earlier than that wakes it.
	wakeAt   time.Duration
	overload bool
	// conflicted holds the tags dropped on a checkpoint conflict that Assign ignores until an Assign without them.
	conflicted map[string]bool
	// starts holds the StartNow instants that Assignment.Starts gave scheduled tags (see startOf).
	starts map[string]time.Time
	// recorded holds the start instants that the store's start record held for scheduled tags when Run
	// started, where they are older than the tag's own (see recordStarts and startOf).
	recorded map[string]time.Time
	// settle, when not nil, is closed when a tag leaves the schedule (see Assign, which waits on it).
	settle chan struct{}

	startTime time.Time // the instant StartNow and StartSince publish from
	built     time.Time // when New ran (wall clock)
	metered   int       // tags with series of their own (Config.TagMetrics)

	running   atomic.Bool
	inclusive atomic.Bool // the upstream returned a min_tag_id boundary item at least once
}

// New validates cfg and builds a Poller. pub and store are required; logger nil discards logs; reg nil registers no
// metrics. Errors wrap ErrConfig (naming the field), ErrNoTokens or ErrInvalidTag.
func New(cfg Config, pub Publisher, store checkpoint.Store, logger *slog.Logger, reg prometheus.Registerer) (*Poller, error) {
	if pub == nil {
		return nil, fmt.Errorf("%w: publisher is nil", ErrConfig)
	}
	if store == nil {
		return nil, fmt.Errorf("%w: checkpoint store is nil", ErrConfig)
	}
	cfg, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	clk := newClock(cfg.Clock)
	pool := newTokenPool(cfg, clk, logger, m)
	cl, err := newClient(cfg, clk, pool, logger, m)
	if err != nil {
		return nil, err
	}
	p := &Poller{
		cfg:    cfg,
		clk:    clk,
		pub:    pub,
		store:  store,
		log:    logger,
		m:      m,
		pool:   pool,
		client: cl,
		sched:  newScheduler(cfg),
		wake:   make(chan struct{}, 1),
	}
	p.writes = storeHealth{clk: clk, red: cl.red, log: logger, m: m}
	p.built = cfg.Clock()
	p.startTime = cfg.StartTime
	if p.startTime.IsZero() {
		p.startTime = p.built
	}
	p.sched.dropped = p.dropped
	now, budget := clk.mono(), p.budgetLocked()
	for _, t := range cfg.Tags {
		p.addGauges(p.sched.add(t, now, budget))
	}
	p.sched.spreadFirstPolls(now, budget)
	return p, nil
}

// AddTag starts polling tag (its first poll is due within about one interval). Adding a tag that is already polled
// does nothing. It returns an error wrapping ErrInvalidTag for a tag that cannot be polled.
func (p *Poller) AddTag(tag string) error {
	if err := schema.ValidateTag(tag); err != nil {
		return err
	}
	p.mu.Lock()
	p.addGauges(p.sched.add(tag, p.clk.mono(), p.budgetLocked()))
	p.mu.Unlock()
	p.signal()
	return nil
}

// addGauges gives ts series of its own while fewer than Config.TagMetrics tags have them. Caller holds p.mu.
func (p *Poller) addGauges(ts *tagState) {
	if ts.gauges != nil || p.metered >= p.cfg.TagMetrics {
		return
	}
	p.metered++
	ts.gauges = &tagGauges{
		lastPoll: p.m.tagLastPoll.WithLabelValues(ts.name),
		interval: p.m.tagInterval.WithLabelValues(ts.name),
	}
	ts.gauges.lastPoll.Set(float64(p.built.UnixNano()) / 1e9)
}

// dropGauges removes the series of a tag that left the schedule. Caller holds p.mu.
func (p *Poller) dropGauges(ts *tagState) {
	if ts.gauges == nil {
		return
	}
	p.m.tagLastPoll.DeleteLabelValues(ts.name)
	p.m.tagInterval.DeleteLabelValues(ts.name)
	ts.gauges = nil
	p.metered--
}

// RemoveTag stops polling tag. A poll in flight finishes (its batch is published and committed or not at all); the
// tag's checkpoint stays in the store, so adding the tag again resumes where it stopped. (An acknowledged state
// whose write kept failing is dropped with the tag: adding it again publishes that batch once more.) A tag's own
// series (Config.TagMetrics) go at once, so that a tag added next can have them, even while its last poll runs.
func (p *Poller) RemoveTag(tag string) {
	p.mu.Lock()
	p.sched.remove(tag)
	if ts := p.sched.tags[tag]; ts != nil && ts.removed {
		p.dropGauges(ts) // in flight: the scheduler drops it when the poll is done
	}
	p.mu.Unlock()
	p.signal()
}

// Status returns a snapshot of every tag's state, in no particular order.
func (p *Poller) Status() []TagStatus {
	clk := p.clk.reading()
	now := clk.wall
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]TagStatus, 0, len(p.sched.tags))
	for _, ts := range p.sched.tags {
		if ts.removed {
			continue // removed while its last poll was in flight
		}
		rate := p.sched.rate(ts)
		s := TagStatus{
			Tag:          ts.name,
			Cursor:       ts.cursor,
			SavedCursor:  ts.cursor,
			Segments:     int(ts.segments),
			Rate:         rate,
			RateEstimate: rate,
			Published:    ts.published,
			Gaps:         uint64(ts.gaps),
			LastError:    ts.lastErr,
		}
		if ts.pending != nil {
			s.Cursor = ts.pending.Cursor
		}
		if ts.kept {
			s.SavedCursor = "" // kept in memory: the store has none (see recordStarts)
		}
		if c := ts.catchUp; c != nil {
			s.CatchUp = &CatchUpStatus{Since: clk.wallAt(c.since), Pages: c.pages, Pending: c.pending}
		}
		if ts.lastPoll != 0 {
			s.LastPoll = clk.wallAt(ts.lastPoll)
		}
		if ts.lastTry != 0 {
			s.LastAttempt = clk.wallAt(ts.lastTry)
		}
		if ts.hidx >= 0 {
			s.NextPoll = clk.wallAt(ts.due)
		}
		if ts.newest != 0 {
			s.Lag = max(0, now.Sub(time.Unix(0, ts.newest)))
		}
		out = append(out, s)
	}
	return out
}

// Ready returns nil when the poller can make progress, and otherwise an error that says why: it wraps ErrNotRunning
// when Run is not running, ErrAllTokensRetired when the API rejected every token, ErrAPIDown while the API is
// considered down (since when, and the last failure, with its URL and no credential) and ErrCheckpointWrites while
// the checkpoint store fails writes (since when, and the last error). It is safe for concurrent use and cheap
// enough for a readiness probe.
func (p *Poller) Ready() error {
	var errs []error
	if !p.running.Load() {
		errs = append(errs, ErrNotRunning)
	}
	if p.pool.live() == 0 {
		errs = append(errs, ErrAllTokensRetired)
	}
	errs = append(errs, p.client.health.ready(), p.writes.ready())
	return errors.Join(errs...)
}

// TokenStatus returns a snapshot of every token, in configuration order. It never contains a token.
func (p *Poller) TokenStatus() []TokenStatus { return p.pool.status() }

func (p *Poller) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// budgetLocked is the request rate (requests per second) the scheduler plans: planMargin of what the token pool
// can sustain, each tag's polls weighed by the requests they cost, or firstRoundMargin while some tags were never
// polled. The margin keeps requests from queueing at the pool when the costs are underestimated or the due times
// bunch: a queue delays every poll (which then finds more media and costs more). The dispatcher spends what the
// plan leaves by polling early, with tokens no request waits for (see dispatch).
func (p *Poller) budgetLocked() float64 {
	if p.sched.fresh > 0 {
		return firstRoundMargin * p.pool.sustainableRate()
	}
	return planMargin * p.pool.sustainableRate()
}

// startBurst opens the token pool's start burst when some tags were never polled (see tokenPool.openBurst) and
// spreads their first polls over the time one round takes at the budget and the credit together: the credit
// pays for the part of the round the budget does not, so the round takes (tags - credit) / budget, but it
// goes at most maxBurst times as fast as the budget.
func (p *Poller) startBurst() {
	p.mu.Lock()
	fresh := p.sched.fresh
	p.mu.Unlock()
	if fresh == 0 {
		return
	}
	p.pool.openBurst()
	p.mu.Lock()
	b, f := p.budgetLocked(), p.firstRoundLocked()
	p.sched.spreadFirstPolls(p.clk.mono(), f)
	if b > 0 {
		p.sched.firstSpread = min(1, max(0, f/b-1))
	}
	p.mu.Unlock()
}

// firstRoundLocked is the rate (polls per second) at which the first polls of the tags never polled are spread:
// the first round's budget (see budgetLocked) and the start burst's credit spread over the round. Caller holds
// p.mu.
func (p *Poller) firstRoundLocked() float64 {
	b := p.budgetLocked()
	c, n := p.pool.burstCredit(), float64(p.sched.fresh)
	if c <= 0 || n <= 0 || b <= 0 {
		return b
	}
	x := (maxBurst - 1) * b
	if c < n {
		x = min(x, c*b/(n-c)) // x·T = c with T = n / (b+x)
	}
	return b + x
}

// maxBurst bounds how much faster than the budget the first round goes on the start burst's credit. At 2 the
// first round of zipf1000 (1,000 tags, 20 tokens of 3,600 an hour) takes 28 s and spends 500 of its 720 requests
// of credit; at 4 it took 16 s and spent them all, for about the same mean latency (virtual, one-hour window, 4
// seeds: first 90 s 1.19x L* and 1.18x, after 1.09x and 1.09x), twice the request rate a token shows the API.
const maxBurst = 2

// endBurst closes the start burst once every tag was polled, or a quarter of the rate window after it opened at
// the latest (so that its payback has most of the window to spread over). When the credit is gone before the
// first round is done (spent, or dropped because a token's window was not empty), it closes the burst at once
// and spreads the first polls still to come over the time they take at the budget alone, so that they do not
// queue at the pool at the pace planned with the credit, and second polls are spread as any other again.
func (p *Poller) endBurst() {
	open, since := p.pool.burstOpenSince()
	if !open {
		return
	}
	p.mu.Lock()
	fresh := p.sched.fresh
	p.mu.Unlock()
	now := p.clk.mono()
	switch {
	case fresh == 0 || now-since >= p.cfg.RateWindow/4:
		p.pool.closeBurst(now)
	case p.pool.burstCredit() == 0:
		p.pool.closeBurst(now)
		p.mu.Lock()
		p.sched.spreadFirstPolls(now, p.budgetLocked())
		p.sched.firstSpread = 0 // the round goes at the budget: second polls as any other
		p.mu.Unlock()
	}
}

// overloadEnd is the demand ratio at or below which an overload ends (it starts above 1).
const overloadEnd = 0.95

// planMargin is the share of the pool's rate the scheduler plans once every tag was polled. At 97% the rest was
// left to early polls, which take only a token no request waits for: at scale (100,000 tags, 1,389 requests/s on a
// loaded machine) some request nearly always waited, and 3-4% of the budget went unspent (scale100k side by side:
// 96.5% at 97%, 97.5% at 99%).
const planMargin = 0.99

// firstRoundMargin is the share planned while some tags were never polled: the first polls of a long tag list
// come at the full pace of one round, and the margin keeps the pool from queueing the polls of the tags already
// known behind them.
const firstRoundMargin = 0.9

// Run polls until ctx ends. It then stops fetching at once, lets in-flight publishes finish for up to
// Config.ShutdownTimeout (a cancelled publish leaves the cursor where it was), and returns nil. It returns an error
// wrapping ErrAllTokensRetired when the API rejected every token, and ErrRunning when called twice at once.
func (p *Poller) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer p.running.Store(false)
	if p.pool.live() == 0 {
		return fmt.Errorf("poller: cannot start: %w", ErrAllTokensRetired)
	}

	runCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	commitCtx, cancelCommits := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelCommits()

	if err := p.prepareStore(ctx); err != nil {
		return err
	}
	work := make(chan *tagState)
	var wg sync.WaitGroup
	for range p.cfg.Workers {
		wg.Go(func() {
			for ts := range work {
				err := p.poll(runCtx, commitCtx, ts)
				if errors.Is(err, ErrAllTokensRetired) {
					stop(err)
				}
			}
		})
	}
	p.startBurst()
	wg.Go(func() { p.maintain(runCtx) })
	wg.Go(func() { p.load(runCtx) })

	p.dispatch(runCtx, work)
	close(work)

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	grace := time.NewTimer(p.cfg.ShutdownTimeout)
	defer grace.Stop()
	select {
	case <-done:
	case <-grace.C:
		p.log.Warn("shutdown timeout: cancelling in-flight publishes", "timeout", p.cfg.ShutdownTimeout)
		cancelCommits()
		<-done
	}
	if cause := context.Cause(runCtx); errors.Is(cause, ErrAllTokensRetired) {
		return fmt.Errorf("poller: stopped: %w", cause)
	}
	return nil
}

// load reads the checkpoint of every tag when Run starts, while polling goes on, and hands each to the scheduler
// (see scheduler.load): Status shows the saved cursors and catch-ups at once, and the rate estimates saved with
// the cursors are used from the start. A tag a poll reached first is skipped (the poll read it).
func (p *Poller) load(ctx context.Context) {
	start := time.Now()
	p.mu.Lock()
	names := make([]string, 0, len(p.sched.all))
	for _, ts := range p.sched.all {
		if !ts.loaded && !ts.absent { // absent: Run found the tag without a state (see prepareStore)
			names = append(names, ts.name)
		}
	}
	p.mu.Unlock()
	type read struct {
		tag string
		st  checkpoint.State
	}
	batch := make([]read, 0, 256)
	found, failed := 0, 0
	flush := func() {
		clk := p.clk.reading()
		p.mu.Lock()
		for _, r := range batch {
			p.sched.load(r.tag, r.st, clk)
		}
		p.mu.Unlock()
		batch = batch[:0]
	}
	for _, tag := range names {
		st, ok, err := p.store.Get(ctx, tag)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			failed++ // the tag's poll reads it again and reports the error
			continue
		}
		if !ok {
			continue
		}
		found++
		batch = append(batch, read{tag: tag, st: st})
		if len(batch) == cap(batch) {
			flush()
		}
	}
	flush()
	p.mu.Lock()
	p.sched.rebalance(p.budgetLocked())
	if len(names) > 0 {
		// Only when this load read something: tags that Assign added (and read) before are due soon already.
		p.sched.scheduleLoaded(p.clk.mono())
	}
	p.mu.Unlock()
	p.signal()
	p.log.Info("checkpoints read", "tags", len(names), "with_state", found, "unreadable", failed,
		"seconds", time.Since(start).Round(time.Millisecond).Seconds())
}

// dispatch hands due tags to the workers until ctx ends. When no tag is due but a token's bucket is full (its
// budget would go to waste) and a worker is free, it hands out the tag that is due first, early: the pool spends
// its whole budget although the plan leaves a margin (see budgetLocked): one early poll per four full buckets
// (at least one), and no more until the budget allowed them.
func (p *Poller) dispatch(ctx context.Context, work chan<- *tagState) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var noEarlyUntil, lastLook time.Duration
	for {
		if !p.gateOpen() {
			// Not allowed to poll (a group member without its lease): look again shortly, or when woken.
			timer.Reset(gateRecheck)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			case <-p.wake:
			}
			continue
		}
		now := p.clk.mono()
		p.mu.Lock()
		ts, wait := p.sched.popDue(now)
		if ts == nil {
			p.wakeAt = now + wait
		}
		p.mu.Unlock()
		if ts != nil {
			select {
			case work <- ts:
				// Between due polls that follow one another closely, look for spare tokens now and then.
				if now-lastLook < earlyEvery || now < noEarlyUntil {
					continue
				}
			case <-ctx.Done():
				p.mu.Lock()
				p.sched.requeue(ts)
				p.mu.Unlock()
				return
			}
		}
		if (ts != nil || wait > earlyMin) && now >= noEarlyUntil {
			lastLook = now
			spare, full := p.pool.spare(now)
			sent := p.dispatchEarly(now, (spare+3)/4, work) // a quarter of the full buckets at a time, at least one
			if sent > 0 {
				noEarlyUntil = now + time.Duration(float64(sent)*float64(time.Second)/max(1, p.pool.sustainableRate()))
				continue
			}
			if ts != nil {
				continue
			}
			if spare == 0 && full > now {
				wait = min(wait, full-now)
			}
		} else if ts != nil {
			continue
		} else if now < noEarlyUntil {
			wait = min(wait, noEarlyUntil-now)
		}
		if wait < dispatchQuantum && p.pool.sustainableRate()*dispatchQuantum.Seconds() >= 1 {
			wait = dispatchQuantum
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-p.wake:
		}
	}
}

// dispatchQuantum is the shortest sleep of the dispatcher when the tokens allow at least one request per quantum
// (200 a second): polls that fall due within it go out together at its end, up to that much late. At a thousand
// polls a second, one wake-up per poll kept threads parking and waking (futex, epoll) for each of them; batches of
// about seven cost a fraction of that, and 5 ms is nothing beside the seconds between two polls of a tag
// (MinInterval is 2 s by default). Below that rate there is nothing to batch, and the dispatcher wakes when the
// next poll is due, as it always did.
const dispatchQuantum = 5 * time.Millisecond

// dispatchEarly hands out up to n tags before they are due, as long as a worker is free; it returns how many.
func (p *Poller) dispatchEarly(now time.Duration, n int, work chan<- *tagState) int {
	sent := 0
	for ; sent < n; sent++ {
		p.mu.Lock()
		ts := p.sched.popEarly(now)
		p.mu.Unlock()
		if ts == nil {
			break
		}
		select {
		case work <- ts:
			continue
		default: // no worker free
			p.mu.Lock()
			p.sched.requeue(ts)
			p.mu.Unlock()
		}
		break
	}
	return sent
}

// earlyMin is how far off the next due poll must be for the dispatcher to look for a token with budget to spare
// at once; earlyEvery is how often it looks while due polls follow one another more closely.
const (
	earlyMin   = 5 * time.Millisecond
	earlyEvery = 10 * time.Millisecond
)

// maintain rebalances the schedule and refreshes gauges about once a second (every MinInterval when that is
// shorter, but not more often than every 50ms), and never spends more than about 1% of the time rebalancing.
func (p *Poller) maintain(ctx context.Context) {
	every := max(50*time.Millisecond, min(time.Second, p.cfg.MinInterval))
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		p.rebalance()
		t.Reset(max(every, 100*time.Since(start)))
	}
}

func (p *Poller) rebalance() {
	p.pool.refreshGauges()
	p.endBurst()
	p.mu.Lock()
	budget := p.budgetLocked()
	ratio := p.sched.rebalance(budget)
	p.sched.pullIn(p.clk.mono())
	for _, ts := range p.sched.all {
		if ts.gauges != nil {
			ts.gauges.interval.Set(p.sched.interval(ts))
		}
	}
	ntags := len(p.sched.tags)
	p.mu.Unlock()
	p.reportOverload(ratio, budget, ntags)
}

// reportOverload keeps the overloaded state, its gauge and its log lines from a rebalance's demand ratio. The
// state has a band: it starts above 1 and ends at or below overloadEnd, so that a demand hovering about the
// budget (while estimates form, say) does not flap.
func (p *Poller) reportOverload(ratio, budget float64, ntags int) {
	p.mu.Lock()
	was := p.overload
	p.overload = ratio > 1 || (was && ratio > overloadEnd)
	now := p.overload
	p.mu.Unlock()
	if now {
		p.m.overload.Set(ratio)
	} else {
		p.m.overload.Set(0)
	}
	switch {
	case now && !was:
		p.log.Warn("schedule overloaded: every tag is polled less often than its floor (raise max-interval or add tokens)",
			"tags", ntags, "budget_requests_per_second", budget, "demand_ratio", ratio)
	case !now && was:
		p.log.Info("schedule no longer overloaded", "tags", ntags, "budget_requests_per_second", budget)
	}
}
