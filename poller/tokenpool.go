package poller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"math"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// tokenBurst is the most requests a token may send back to back after a quiet spell.
const tokenBurst = 3

// token is one credential of the pool. Every field after the first four is guarded by tokenPool.mu.
type token struct {
	idx      int
	value    string
	clientID bool
	fp       string

	rate        float64       // requests per second: share of the limit per window
	share       float64       // fraction of the limit this instance may spend (1 outside a group; 0 = unused)
	limit       int           // requests per window (configured, or X-Ratelimit-Limit)
	keep        int           // the reserve: the token is not used while the API says it has no more left
	remaining   int           // last X-Ratelimit-Remaining, -1 before any
	level       float64       // token-bucket level
	last        time.Duration // when level was computed (monotonic clock)
	parkedUntil time.Duration // monotonic clock; 0 = not parked
	parks       int           // parks since the last success
	retired     bool
	bo          *backoff.ExponentialBackOff
	ready       time.Duration // when the token can next be taken (monotonic clock); heap key
	hidx        int           // index in tokenPool.heap, -1 when retired

	// The start burst (see openBurst): credit is what the token may still hand out beyond its bucket while the
	// burst is open, sent what it handed out since the burst opened, used the credit it spent. Once the burst
	// closes, payback (requests per second) is taken off its refill until the pool's payEnd, so that its first
	// window holds no more than its limit.
	credit  float64
	sent    int
	used    float64
	payback float64

	remainingGauge prometheus.Gauge // the token's tagstream budget-remaining series, looked up once (set on every answer)
}

// tokenPool hands out tokens so that each stays within its budget: a token bucket per token (a small burst,
// refilled at the token's limit less its reserve per window: paceOf), corrected from the API's X-Ratelimit headers: an answer's Remaining,
// less the token's reserve (see reserveOf), caps what the bucket may hand out until it refills, so the pool spends
// what the API says is left and never the last few requests of a window. A rate-limit answer parks the token
// (exponential backoff with full jitter, or Retry-After when longer); an invalid-token answer retires it for good.
// Acquire takes the token that is ready first (a heap keyed by ready time), so one acquisition costs O(log tokens),
// and waits on a timer — never spins — when none is ready. The pool is safe for concurrent use.
type tokenPool struct {
	mu      sync.Mutex
	tokens  []*token
	heap    indexedHeap[*token] // the live tokens by ready time (then index)
	window  time.Duration
	backoff func() *backoff.ExponentialBackOff
	clk     clock
	log     *slog.Logger
	m       *metrics

	waiters []*waiter // requests waiting in acquire, in the order they came; the first holds the turn

	// rateSum is the sum of the live tokens' rates (requests per second), kept up to date by every change.
	rateSum float64
	// changed is closed (and replaced) when the shares change, to wake acquire (see setShares).
	changed chan struct{}

	// noSpareUntil is when spare last said the first bucket would be full, having found none full: until then no
	// bucket can be (levels rise only by refilling at the tokens' rates), so spare answers at once instead of
	// looking at every token, as long as the rates are those it saw (noSpareRates, the rateSum of then: any change
	// of a token's rate, from the API's limit or elsewhere, changes rateSum). 0 = unknown.
	noSpareUntil time.Duration
	noSpareRates float64

	// The start burst: burst is burstNone before openBurst, burstOpen while the tokens' credit may be spent,
	// burstClosed after closeBurst. burstAt is when it opened, payEnd when the first window after it ends (the
	// tokens' payback stops then), paybackSum the sum of the live tokens' paybacks.
	burst      int
	burstAt    time.Duration
	payEnd     time.Duration
	paybackSum float64

	// Budget accounting for tagstream_budget_use_ratio: requests handed out and requests allowed (the live
	// tokens' limits per window, integrated over time) since the start, sampled about once a second.
	sent     int64
	allowed  float64
	lastAcct time.Duration
	samples  [budgetSamples]budgetSample
	nsamples int
}

// budgetSamples is how many samples of the budget accounting the pool keeps: a bit over a minute at one a second.
const budgetSamples = 64

// budgetSample is one reading of the pool's budget accounting.
type budgetSample struct {
	at      time.Duration // monotonic clock
	sent    int64
	allowed float64
}

// reserveOf is how many requests of a window a token with that limit keeps back: it is not used while the API's
// X-Ratelimit-Remaining is at or below the reserve. The reserve covers requests in flight whose answers have not
// come yet and small differences between the API's clock and the poller's: 1% of the limit, at least two bursts
// (and at most half the limit). In steady state a token's window holds its limit less the reserve, so the reserve
// is the only margin: 99% of a 5,000 requests/hour budget is spent (see the package documentation).
func reserveOf(limit int) int {
	r := max(2*tokenBurst, (limit+99)/100)
	return min(r, limit/2)
}

// paceOf is the refill rate, in requests per second, of a token with that limit per window of which a share is
// this process's: the limit less the reserve, spread evenly over the window. Refilled at the whole limit, a token
// that starts with an empty window reaches the reserve, where X-Ratelimit-Remaining stops it, a reserve's worth of
// requests before the window ends (36 s for 5,000 an hour), every token of the pool at the same moment, and the
// sliding window then repeats that stop every window after. Paced at the limit less the reserve, the window holds
// as much and nothing stops.
func paceOf(limit int, share float64, window time.Duration) float64 {
	return share * float64(limit-reserveOf(limit)) / window.Seconds()
}

// Fingerprint is the first 8 hex digits of the SHA-256 of a token: enough to tell tokens apart in logs, status and
// metrics, useless to recover one. It is what TokenStatus.Fingerprint holds.
func Fingerprint(value string) string {
	sum := sha256.Sum256([]byte(value))
	return hex.EncodeToString(sum[:4])
}

func newTokenPool(cfg Config, clk clock, log *slog.Logger, m *metrics) *tokenPool {
	p := &tokenPool{
		window: cfg.RateWindow,
		clk:    clk,
		log:    log,
		m:      m,
		backoff: func() *backoff.ExponentialBackOff {
			return newBackoff(cfg.BackoffInitial, cfg.BackoffMax)
		},
		heap: indexedHeap[*token]{
			less: func(a, b *token) bool {
				if a.ready != b.ready {
					return a.ready < b.ready
				}
				return a.idx < b.idx
			},
			setIndex: func(t *token, i int) { t.hidx = i },
		},
	}
	now := clk.mono()
	for i, t := range cfg.Tokens {
		limit := t.RequestsPerHour
		if limit == 0 {
			limit = cfg.RequestsPerHour
		}
		tk := &token{
			idx:       i,
			value:     t.Value,
			clientID:  t.ClientID,
			fp:        Fingerprint(t.Value),
			limit:     limit,
			keep:      reserveOf(limit),
			remaining: -1,
			share:     1,
			last:      now,
			bo:        p.backoff(),
			hidx:      -1,
		}
		tk.rate = paceOf(limit, 1, p.window)
		tk.level = min(tokenBurst, float64(limit))
		tk.ready = now
		p.tokens = append(p.tokens, tk)
		p.heap.Push(tk)
		tk.remainingGauge = m.budgetRemaining.WithLabelValues(strconv.Itoa(i))
		tk.remainingGauge.Set(float64(limit))
		m.budgetLimit.WithLabelValues(strconv.Itoa(i)).Set(float64(limit))
	}
	for _, t := range p.tokens {
		p.rateSum += t.rate
	}
	p.changed = make(chan struct{})
	p.lastAcct = now
	p.samples[0] = budgetSample{at: now}
	p.nsamples = 1
	return p
}

// newBackoff returns the exponential backoff used everywhere in the poller: it never gives up (MaxElapsedTime 0)
// and has no randomization of its own, because callers draw full jitter from its intervals.
func newBackoff(initial, maxInterval time.Duration) *backoff.ExponentialBackOff {
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(initial),
		backoff.WithMaxInterval(maxInterval),
		backoff.WithMultiplier(2),
		backoff.WithRandomizationFactor(0),
		backoff.WithMaxElapsedTime(0),
	)
}

// fullJitter draws a delay uniformly from [d/16, d]: full jitter, with a small floor so that a retry never
// follows its failure immediately.
func fullJitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	lo := d / 16
	return lo + rand.N(d-lo+1)
}

// refill brings t's bucket up to now. Caller holds p.mu.
func (t *token) refill(now time.Duration, payEnd time.Duration) {
	if now > t.last {
		add := t.rate * (now - t.last).Seconds()
		if t.payback > 0 && t.last < payEnd {
			add -= t.payback * (min(now, payEnd) - t.last).Seconds()
		}
		t.level = min(float64(min(tokenBurst, max(1, t.limit))), t.level+add)
		t.last = now
	}
}

// refillRate is the token's refill rate at its last refill: its rate less its payback before payEnd.
func (t *token) refillRate(payEnd time.Duration) float64 {
	if t.payback > 0 && t.last < payEnd {
		return t.rate - t.payback
	}
	return t.rate
}

// computeReady sets t.ready from its bucket and parking. Caller holds p.mu and has refilled t.
func (t *token) computeReady(payEnd time.Duration) {
	if t.share <= 0 {
		t.ready = unshared // not used until setShares gives it a share
		return
	}
	r := t.last
	if t.level < 1 && !t.canBurst() {
		// The refill rate of now until the ready time: at payEnd it rises, so past it the token is ready a
		// little earlier than this says (never later).
		switch rate := t.refillRate(payEnd); {
		case rate > 0:
			r = t.last + time.Duration((1-t.level)/rate*1e9)
		case t.last < payEnd && t.rate > 0:
			r = payEnd // look again when the payback is over
		default:
			r = t.last + time.Hour
		}
	}
	t.ready = max(r, t.parkedUntil)
}

// canBurst says whether the token may hand out a request from its start credit now (see openBurst): it has a
// whole request of credit left, spends all of its limit (no group share), and the API, if it answered yet, says
// more than the reserve and a burst are left.
func (t *token) canBurst() bool {
	return t.credit >= 1 && t.share == 1 && (t.remaining < 0 || t.remaining > t.keep+tokenBurst)
}

// tryAcquire takes the token that is ready first if it is ready at now (monotonic clock). Otherwise it returns nil
// and when the next token will be ready (0 when every token is retired).
func (p *tokenPool) tryAcquire(now time.Duration) (*token, time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.tryAcquireLocked(now)
}

// tryAcquireLocked is tryAcquire; the caller holds p.mu.
func (p *tokenPool) tryAcquireLocked(now time.Duration) (*token, time.Duration) {
	if p.heap.Len() == 0 {
		return nil, 0
	}
	if p.burst == burstOpen && now-p.burstAt >= p.window/4 {
		p.closeBurstLocked(now) // the poller closes it sooner, unless it is late (see Poller.endBurst)
	}
	t := p.heap.Min()
	t.refill(now, p.payEnd)
	t.computeReady(p.payEnd)
	if t.ready <= now {
		if t.level >= 1 || !t.canBurst() {
			t.level--
		} else {
			t.credit--
			t.used++
		}
		if p.burst == burstOpen {
			t.sent++
		}
		p.sent++
		t.computeReady(p.payEnd)
		p.heap.Fix(t.hidx)
		return t, now
	}
	p.heap.Fix(t.hidx)
	return nil, p.heap.Min().ready
}

// acquire waits until a token is ready and takes it. Requests are served in the order they asked: a request
// that finds others waiting queues behind them, and only the first in the queue waits for the next ready token
// (on a timer, never spinning), then hands the turn on. A poll that is due is therefore never overtaken for
// long by the requests of others. It returns ErrAllTokensRetired when none is left, or the context's error.
func (p *tokenPool) acquire(ctx context.Context) (*token, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p.mu.Lock()
	if len(p.waiters) == 0 {
		t, next := p.tryAcquireLocked(p.clk.mono())
		if t != nil || next == 0 {
			p.mu.Unlock()
			if t == nil {
				return nil, ErrAllTokensRetired
			}
			return t, nil
		}
	}
	w := &waiter{turn: make(chan struct{}, 1)}
	p.waiters = append(p.waiters, w)
	if len(p.waiters) == 1 {
		w.turn <- struct{}{}
	}
	p.mu.Unlock()
	defer p.leave(w)

	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	select { // wait for the turn
	case <-w.turn:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	for {
		changed := p.sharesChanged()
		now := p.clk.mono()
		t, next := p.tryAcquire(now)
		if t != nil {
			return t, nil
		}
		if next == 0 {
			return nil, ErrAllTokensRetired
		}
		wait := max(next-now, time.Millisecond)
		if timer == nil {
			timer = time.NewTimer(wait)
		} else {
			timer.Reset(wait)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-timer.C:
		case <-changed:
		}
	}
}

// waiter is a request queued in acquire; turn receives once it is first in the queue.
type waiter struct {
	turn chan struct{}
}

// leave takes w out of the queue and gives the turn to the next waiter when w was first.
func (p *tokenPool) leave(w *waiter) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, x := range p.waiters {
		if x != w {
			continue
		}
		p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
		if i == 0 && len(p.waiters) > 0 {
			p.waiters[0].turn <- struct{}{}
		}
		return
	}
}

// trySpare takes a token that is ready at now if no request is waiting for one (an early poll never overtakes a
// waiting request). It returns nil and when the next token will be ready (0 when every token is retired).
func (p *tokenPool) trySpare(now time.Duration) (*token, time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.waiters) > 0 {
		return nil, now
	}
	return p.tryAcquireLocked(now)
}

// observe corrects t's pacing from the X-Ratelimit headers of an answer (-1 when absent): the limit sets the
// refill rate, and what the API says is left, less the reserve, caps the bucket.
func (p *tokenPool) observe(t *token, limit, remaining int) {
	if limit < 0 && remaining < 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if limit > 0 && limit != t.limit {
		p.account(p.clk.mono())
		t.limit = limit
		t.keep = reserveOf(limit)
		if !t.retired {
			p.rateSum -= t.rate
		}
		t.rate = paceOf(limit, t.share, p.window)
		if !t.retired {
			p.rateSum += t.rate
		}
		p.noSpareUntil = 0 // a faster refill fills buckets sooner
		p.m.budgetLimit.WithLabelValues(strconv.Itoa(t.idx)).Set(float64(limit))
	}
	if remaining >= 0 {
		t.remaining = remaining
		if t.credit > 0 && t.limit-remaining > t.sent {
			// The API counts requests this pool did not send in the token's window (another client, or this
			// process before a restart): the window is not empty, so the token has no credit to start with.
			t.credit = 0
		}
		t.refill(p.clk.mono(), p.payEnd)
		if left := float64(remaining - t.keep); left < t.level {
			t.level = left
		}
		if t.hidx >= 0 {
			t.computeReady(p.payEnd)
			p.heap.Fix(t.hidx)
		}
		t.remainingGauge.Set(float64(remaining))
	}
}

// success records a good answer with t: its backoff starts over.
func (p *tokenPool) success(t *token) {
	p.mu.Lock()
	if t.parks > 0 {
		t.parks = 0
		t.bo.Reset()
	}
	p.mu.Unlock()
}

// park takes t out of rotation after a rate-limit answer for a full-jitter backoff delay, or retryAfter when that
// is longer. It returns the delay.
func (p *tokenPool) park(t *token, retryAfter time.Duration) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if t.retired {
		return 0
	}
	d := fullJitter(t.bo.NextBackOff())
	d = max(d, retryAfter)
	t.parks++
	now := p.clk.mono()
	t.parkedUntil = max(t.parkedUntil, now+d)
	t.refill(now, p.payEnd)
	t.computeReady(p.payEnd)
	p.heap.Fix(t.hidx)
	p.m.parked.Set(float64(p.parkedLocked(now)))
	p.log.Debug("token parked", "token", t.idx, "fingerprint", t.fp, "for", d)
	return d
}

// retire removes t from the pool for good; the first call logs it (by index and fingerprint) and counts it.
func (p *tokenPool) retire(t *token) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if t.retired {
		return
	}
	p.account(p.clk.mono())
	t.retired = true
	p.rateSum = max(0, p.rateSum-t.rate)
	p.paybackSum = max(0, p.paybackSum-t.payback)
	if t.hidx >= 0 {
		p.heap.Remove(t.hidx)
	}
	p.m.retired.Inc()
	p.log.Warn("token retired: the API rejected it", "token", t.idx, "fingerprint", t.fp, "tokens_left", p.heap.Len())
	if p.heap.Len() == 0 {
		p.log.Error("every token is retired: polling stops")
	}
}

// spare returns how many live tokens that are not parked have a full bucket at now (monotonic clock): their
// refill would be wasted unless requests are sent. When none has, it also returns when the first bucket will be
// full (0 when none will: every token parked or retired). It costs O(tokens).
func (p *tokenPool) spare(now time.Duration) (int, time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if now < p.noSpareUntil && p.rateSum == p.noSpareRates {
		return 0, p.noSpareUntil
	}
	var next, unpark time.Duration
	n := 0
	for _, t := range p.heap.items {
		if t.rate <= 0 {
			continue
		}
		if t.parkedUntil > now {
			if unpark == 0 || t.parkedUntil < unpark {
				unpark = t.parkedUntil
			}
			continue
		}
		t.refill(now, p.payEnd)
		full := float64(min(tokenBurst, max(1, t.limit)))
		if t.level >= full-1e-9 {
			n++
			continue
		}
		rate := t.refillRate(p.payEnd)
		if rate <= 0 {
			continue
		}
		at := t.last + time.Duration((full-t.level)/rate*1e9)
		if next == 0 || at < next {
			next = at
		}
	}
	p.noSpareUntil = 0
	if n == 0 && next > now && (unpark == 0 || unpark >= next) {
		p.noSpareUntil, p.noSpareRates = next, p.rateSum
	}
	return n, next
}

// live returns how many tokens are not retired.
func (p *tokenPool) live() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.heap.Len()
}

// sustainableRate is the sum of the rates of the tokens that are not retired, in requests per second, less their
// payback of a start burst until the first window after it ends.
func (p *tokenPool) sustainableRate() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.heap.Len() == 0 {
		return 0
	}
	if p.paybackSum > 0 && p.clk.mono() < p.payEnd {
		return max(0, p.rateSum-p.paybackSum)
	}
	return p.rateSum
}

// The start burst. A token's window is empty when the process starts cold: the API would let it send its whole
// limit at once, while the bucket paces it at its rate from the first second. The poller's first round (one
// poll of every tag, before any rate is known) is where requests are worth most, so openBurst gives each token
// a credit of burstShare of its limit that it may hand out beyond its bucket (canBurst), and closeBurst ends it
// when the first round is done. Its first window must still hold no more than without the burst: the credit a
// token spent is taken off its refill from the close until the first window after the open ends (payEnd),
// spread evenly. A window that starts during the burst then holds no more than it would without one (the credit
// spent before it starts is paid back within it as well), and a window that starts after it up to the credit
// less (that is what a burst costs: the budget of the first hour is the same, spent earlier). The
// X-Ratelimit-Remaining cap applies throughout, so the reserve is kept as without a burst: the credit plus the
// first window's refill less the payback is the limit less the reserve, so the token reaches the end of its first
// window at its pace without a stop (TestNoStopAtTheEndOfTheFirstWindow). A token whose first answer says its window is not empty (a restart, another client) loses
// its credit, and so does one shared with a group (share below 1).
const (
	burstNone = iota
	burstOpen
	burstClosed
)

// burstShare is the credit of a token for the start burst, as a share of its limit per window: at 1 %, a token
// of the real API's 5,000 an hour may send 50 requests more in the first round (the first round of zipf1000,
// 1,000 tags on 20 tokens of 3,600 an hour, then takes about 16 s instead of 55), and a window that starts after
// the burst spends at most 1 % less (98 % of the limit instead of 99 %).
const burstShare = 0.01

// openBurst gives every live token its start credit (see burstShare). Only the first call does anything.
func (p *tokenPool) openBurst() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.burst != burstNone {
		return
	}
	p.burst = burstOpen
	p.burstAt = p.clk.mono()
	for _, t := range p.heap.items {
		if t.share != 1 {
			continue
		}
		t.credit = math.Floor(burstShare * float64(t.limit))
		t.sent = 0
		t.computeReady(p.payEnd)
		p.heap.Fix(t.hidx)
	}
	close(p.changed) // wake a request waiting for a token: some are ready sooner
	p.changed = make(chan struct{})
}

// burstCredit returns the credit the live tokens have left for the start burst (0 unless it is open).
func (p *tokenPool) burstCredit() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.burst != burstOpen {
		return 0
	}
	var c float64
	for _, t := range p.heap.items {
		if t.canBurst() {
			c += math.Floor(t.credit)
		}
	}
	return c
}

// closeBurst ends the start burst at now (monotonic clock): the credit left is dropped, and each token pays back
// the credit it spent until the first window after the open ends. It returns whether the burst was open.
func (p *tokenPool) closeBurst(now time.Duration) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.burst != burstOpen {
		return false
	}
	p.closeBurstLocked(now)
	return true
}

// closeBurstLocked is closeBurst on an open burst; the caller holds p.mu. The payback of a token is at most half
// its rate: a burst closed late (a stalled process) leaves what it cannot pay back in time to the
// X-Ratelimit-Remaining cap.
func (p *tokenPool) closeBurstLocked(now time.Duration) {
	p.burst = burstClosed
	p.payEnd = p.burstAt + p.window
	left := (p.payEnd - now).Seconds()
	for _, t := range p.tokens {
		t.credit = 0
		if t.used <= 0 {
			continue
		}
		t.refill(now, p.payEnd)
		if left <= 0 {
			continue // the window is over (a first round longer than the window): nothing to pay back
		}
		t.payback = min(t.used/left, t.rate/2)
		if !t.retired {
			p.paybackSum += t.payback
		}
		if t.hidx >= 0 {
			t.computeReady(p.payEnd)
			p.heap.Fix(t.hidx)
		}
	}
	p.noSpareUntil = 0
}

// burstOpenSince returns whether the start burst is open, and since when (monotonic clock).
func (p *tokenPool) burstOpenSince() (bool, time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.burst == burstOpen, p.burstAt
}

func (p *tokenPool) parkedLocked(now time.Duration) int {
	n := 0
	for _, t := range p.heap.items {
		if t.parkedUntil > now {
			n++
		}
	}
	return n
}

// account adds the requests the live tokens' limits allowed since the last call to p.allowed. Caller holds p.mu.
func (p *tokenPool) account(now time.Duration) {
	if now <= p.lastAcct {
		return
	}
	r := 0.0 // the live tokens' limits per second: the ratio is of the limits, not of the paces (paceOf)
	if p.heap.Len() > 0 {
		for _, t := range p.tokens {
			if !t.retired {
				r += t.share * float64(t.limit)
			}
		}
		r /= p.window.Seconds()
	}
	p.allowed += r * (now - p.lastAcct).Seconds()
	p.lastAcct = now
}

// budgetUse returns the fraction of the requests the live tokens allowed over about the last minute that the pool
// handed out (0 before any time passed), and records a sample for the next calls. Called about once a second.
func (p *tokenPool) budgetUse(now time.Duration) float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.account(now)
	cur := budgetSample{at: now, sent: p.sent, allowed: p.allowed}
	// The oldest sample at most a minute old (or the oldest kept).
	n := p.nsamples
	first := (p.nsamples - min(n, budgetSamples)) % budgetSamples
	base := p.samples[first]
	for i := range min(n, budgetSamples) {
		s := p.samples[(first+i)%budgetSamples]
		if now-s.at <= time.Minute {
			base = s
			break
		}
	}
	p.samples[p.nsamples%budgetSamples] = cur
	p.nsamples++
	if cur.allowed-base.allowed <= 0 {
		return 0
	}
	return float64(cur.sent-base.sent) / (cur.allowed - base.allowed)
}

// refreshGauges updates the parked-tokens and budget-use gauges.
func (p *tokenPool) refreshGauges() {
	now := p.clk.mono()
	use := p.budgetUse(now)
	p.mu.Lock()
	n := p.parkedLocked(now)
	p.mu.Unlock()
	p.m.parked.Set(float64(n))
	p.m.budgetUse.Set(use)
}

func (p *tokenPool) status() []TokenStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	clk := p.clk.reading()
	now := clk.mono
	out := make([]TokenStatus, len(p.tokens))
	for i, t := range p.tokens {
		s := TokenStatus{Index: t.idx, Fingerprint: t.fp, ClientID: t.clientID, Limit: t.limit,
			Share: t.share, Remaining: t.remaining, Retired: t.retired}
		if t.parkedUntil > now && !t.retired {
			s.ParkedUntil = clk.wallAt(t.parkedUntil)
		}
		out[i] = s
	}
	return out
}
