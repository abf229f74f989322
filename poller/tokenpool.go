package poller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// tokenBurst is the most requests a token may send back to back after a quiet spell.
const tokenBurst = 3

// token is one credential of the pool. Every field after the first four is guarded by tokenPool.mu.
type token struct {
	idx      int
	value    string
	clientID bool
	fp       string

	rate        float64 // requests per second
	limit       int     // requests per window (configured, or X-Ratelimit-Limit)
	remaining   int     // last X-Ratelimit-Remaining, -1 before any
	level       float64 // token-bucket level
	last        int64   // when level was computed (unix nanos)
	parkedUntil int64   // unix nanos; 0 = not parked
	parks       int     // parks since the last success
	retired     bool
	bo          *backoff.ExponentialBackOff
	ready       int64 // when the token can next be taken (unix nanos); heap key
	hidx        int   // index in tokenPool.heap, -1 when retired
}

// tokenPool hands out tokens so that each stays within its budget: a token bucket per token (a small burst,
// refilled at the token's rate), corrected from the API's X-Ratelimit headers. A rate-limit answer parks the token
// (exponential backoff with full jitter, or Retry-After when longer); an invalid-token answer retires it for good.
// Acquire takes the token that is ready first (a heap keyed by ready time), so one acquisition costs O(log tokens),
// and waits on a timer — never spins — when none is ready. The pool is safe for concurrent use.
type tokenPool struct {
	mu      sync.Mutex
	tokens  []*token
	heap    []*token
	window  time.Duration
	backoff func() *backoff.ExponentialBackOff
	now     func() time.Time
	log     *slog.Logger
	m       *metrics
}

// Fingerprint is the first 8 hex digits of the SHA-256 of a token: enough to tell tokens apart in logs, status and
// metrics, useless to recover one. It is what TokenStatus.Fingerprint holds.
func Fingerprint(value string) string {
	sum := sha256.Sum256([]byte(value))
	return hex.EncodeToString(sum[:4])
}

func newTokenPool(cfg Config, log *slog.Logger, m *metrics) *tokenPool {
	p := &tokenPool{
		window: cfg.RateWindow,
		now:    cfg.Clock,
		log:    log,
		m:      m,
		backoff: func() *backoff.ExponentialBackOff {
			return newBackoff(cfg.BackoffInitial, cfg.BackoffMax)
		},
	}
	now := cfg.Clock().UnixNano()
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
			remaining: -1,
			last:      now,
			bo:        p.backoff(),
			hidx:      -1,
		}
		tk.rate = float64(limit) / p.window.Seconds()
		tk.level = min(tokenBurst, float64(limit))
		tk.ready = now
		p.tokens = append(p.tokens, tk)
		p.push(tk)
		m.budgetRemaining.WithLabelValues(strconv.Itoa(i)).Set(float64(limit))
	}
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
func (t *token) refill(now int64) {
	if now > t.last {
		t.level = min(float64(min(tokenBurst, max(1, t.limit))), t.level+t.rate*float64(now-t.last)/1e9)
		t.last = now
	}
}

// computeReady sets t.ready from its bucket and parking. Caller holds p.mu and has refilled t.
func (t *token) computeReady() {
	r := t.last
	if t.level < 1 {
		if t.rate <= 0 {
			r = t.last + int64(time.Hour)
		} else {
			r = t.last + int64((1-t.level)/t.rate*1e9)
		}
	}
	t.ready = max(r, t.parkedUntil)
}

// tryAcquire takes the token that is ready first if it is ready at now. Otherwise it returns nil and when the next
// token will be ready (zero when every token is retired).
func (p *tokenPool) tryAcquire(now time.Time) (*token, time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.heap) == 0 {
		return nil, time.Time{}
	}
	n := now.UnixNano()
	t := p.heap[0]
	t.refill(n)
	t.computeReady()
	if t.ready <= n {
		t.level--
		t.computeReady()
		p.fix(t)
		return t, now
	}
	p.fix(t)
	return nil, time.Unix(0, p.heap[0].ready)
}

// acquire waits until a token is ready and takes it. It returns ErrAllTokensRetired when none is left, or the
// context's error.
func (p *tokenPool) acquire(ctx context.Context) (*token, error) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		now := p.now()
		t, next := p.tryAcquire(now)
		if t != nil {
			return t, nil
		}
		if next.IsZero() {
			return nil, ErrAllTokensRetired
		}
		wait := max(next.Sub(now), time.Millisecond)
		if timer == nil {
			timer = time.NewTimer(wait)
		} else {
			timer.Reset(wait)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-timer.C:
		}
	}
}

// observe corrects t's pacing from the X-Ratelimit headers of an answer (-1 when absent).
func (p *tokenPool) observe(t *token, limit, remaining int) {
	if limit < 0 && remaining < 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if limit > 0 && limit != t.limit {
		t.limit = limit
		t.rate = float64(limit) / p.window.Seconds()
	}
	if remaining >= 0 {
		t.remaining = remaining
		t.refill(p.now().UnixNano())
		if float64(remaining) < t.level {
			t.level = float64(remaining)
		}
		if t.hidx >= 0 {
			t.computeReady()
			p.fix(t)
		}
		p.m.budgetRemaining.WithLabelValues(strconv.Itoa(t.idx)).Set(float64(remaining))
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
	now := p.now().UnixNano()
	t.parkedUntil = max(t.parkedUntil, now+int64(d))
	t.refill(now)
	t.computeReady()
	p.fix(t)
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
	t.retired = true
	p.remove(t)
	p.m.retired.Inc()
	p.log.Warn("token retired: the API rejected it", "token", t.idx, "fingerprint", t.fp, "tokens_left", len(p.heap))
	if len(p.heap) == 0 {
		p.log.Error("every token is retired: polling stops")
	}
}

// live returns how many tokens are not retired.
func (p *tokenPool) live() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.heap)
}

// sustainableRate is the sum of the rates of the tokens that are not retired, in requests per second.
func (p *tokenPool) sustainableRate() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var r float64
	for _, t := range p.heap {
		r += t.rate
	}
	return r
}

func (p *tokenPool) parkedLocked(now int64) int {
	n := 0
	for _, t := range p.heap {
		if t.parkedUntil > now {
			n++
		}
	}
	return n
}

// refreshGauges updates the parked-tokens gauge.
func (p *tokenPool) refreshGauges() {
	p.mu.Lock()
	n := p.parkedLocked(p.now().UnixNano())
	p.mu.Unlock()
	p.m.parked.Set(float64(n))
}

func (p *tokenPool) status() []TokenStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now().UnixNano()
	out := make([]TokenStatus, len(p.tokens))
	for i, t := range p.tokens {
		s := TokenStatus{Index: t.idx, Fingerprint: t.fp, ClientID: t.clientID, Limit: t.limit,
			Remaining: t.remaining, Retired: t.retired}
		if t.parkedUntil > now && !t.retired {
			s.ParkedUntil = time.Unix(0, t.parkedUntil)
		}
		out[i] = s
	}
	return out
}

// The heap of live tokens, ordered by ready time. Caller holds p.mu.

func (p *tokenPool) push(t *token) {
	t.hidx = len(p.heap)
	p.heap = append(p.heap, t)
	p.up(t.hidx)
}

func (p *tokenPool) remove(t *token) {
	i := t.hidx
	if i < 0 {
		return
	}
	last := len(p.heap) - 1
	p.swap(i, last)
	p.heap[last] = nil
	p.heap = p.heap[:last]
	t.hidx = -1
	if i < last {
		if !p.down(i) {
			p.up(i)
		}
	}
}

func (p *tokenPool) fix(t *token) {
	if t.hidx < 0 {
		return
	}
	if !p.down(t.hidx) {
		p.up(t.hidx)
	}
}

func (p *tokenPool) less(i, j int) bool {
	if p.heap[i].ready != p.heap[j].ready {
		return p.heap[i].ready < p.heap[j].ready
	}
	return p.heap[i].idx < p.heap[j].idx
}

func (p *tokenPool) swap(i, j int) {
	p.heap[i], p.heap[j] = p.heap[j], p.heap[i]
	p.heap[i].hidx = i
	p.heap[j].hidx = j
}

func (p *tokenPool) up(j int) {
	for j > 0 {
		i := (j - 1) / 2
		if !p.less(j, i) {
			break
		}
		p.swap(i, j)
		j = i
	}
}

func (p *tokenPool) down(i0 int) bool {
	i, n := i0, len(p.heap)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		j := l
		if r := l + 1; r < n && p.less(r, l) {
			j = r
		}
		if !p.less(j, i) {
			break
		}
		p.swap(i, j)
		i = j
	}
	return i > i0
}
