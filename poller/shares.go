package poller

import (
	"math"
	"time"
)

// unshared is the ready time of a token this instance has no share of: never, until setShares gives it one.
const unshared = time.Duration(math.MaxInt64)

// sharesChanged returns a channel that is closed at the next change of the shares.
func (p *tokenPool) sharesChanged() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.changed
}

// setShares paces every token at the fraction of its limit that shares (by Fingerprint) grants it: a token
// missing from shares, or with a fraction of 0, is not used at all; fractions are clamped to [0, 1]. It takes
// effect for every token taken afterwards, and wakes the requests waiting for a token. A token whose share drops
// to 0 loses its bucket's level, so that a later share starts empty: the budget it held was given to others.
func (p *tokenPool) setShares(shares map[string]float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.clk.mono()
	p.account(now)
	for _, t := range p.tokens {
		f := shares[t.fp]
		if math.IsNaN(f) || f < 0 {
			f = 0
		}
		f = min(f, 1)
		if f == t.share {
			continue
		}
		t.refill(now, p.payEnd)
		old := t.rate
		t.share = f
		t.rate = paceOf(t.limit, f, p.window)
		if f == 0 {
			t.level = 0
		}
		if !t.retired {
			p.rateSum = max(0, p.rateSum+t.rate-old)
		}
		if t.hidx >= 0 {
			t.computeReady(p.payEnd)
			p.heap.Fix(t.hidx)
		}
		p.log.Debug("token share set", "token", t.idx, "fingerprint", t.fp, "share", f)
	}
	p.noSpareUntil = 0 // a larger share fills buckets sooner
	close(p.changed)
	p.changed = make(chan struct{})
}
