package poller

import (
	"fmt"
	"math"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tagstream/tagstream/poller/checkpoint"
)

// warmupPoller builds (without running) a poller of n tags on tokens tokens at 1 request/s each.
func warmupPoller(t *testing.T, n, tokens int) *Poller {
	t.Helper()
	cfg := Config{BaseURL: "https://api.instagram.invalid/v1", RequestsPerHour: 3600}
	for i := range n {
		cfg.Tags = append(cfg.Tags, fmt.Sprintf("tag%05d", i))
	}
	for i := range tokens {
		cfg.Tokens = append(cfg.Tokens, Token{Value: fmt.Sprintf("warmup-token-%04d", i)})
	}
	p, err := New(cfg, newAckPublisher(), checkpoint.NewMemory(), nil, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}

// TestFirstPollsAreSpreadEvenlyOverOneRound checks that the first polls of a tag list are spread evenly over the
// time one round of all tags takes at the planned budget: no tenth of the round holds much more than a tenth of
// the tags. (Spread tag by tag over the round of the tags added before it, a third of 1,000 tags fell due in the
// first tenth, three times what the budget allows: the known tags' polls then queued behind them.)
func TestFirstPollsAreSpreadEvenlyOverOneRound(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		tags, toks  int
		wantRoundAt float64 // seconds: tags / (0.9 × tokens)
	}{
		{"1,000 tags on 20 tokens take 56 s", 1000, 20, 1000 / 18.0},
		{"50 tags on 3 tokens take 19 s", 50, 3, 50 / 2.7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := warmupPoller(t, tt.tags, tt.toks)
			p.mu.Lock()
			defer p.mu.Unlock()
			start := time.Duration(math.MaxInt64)
			for _, ts := range p.sched.all {
				start = min(start, ts.due)
			}
			var tenths [10]int
			last := time.Duration(0)
			for _, ts := range p.sched.all {
				at := (ts.due - start).Seconds()
				last = max(last, ts.due-start)
				tenths[min(9, int(10*at/tt.wantRoundAt))]++
			}
			if r := last.Seconds(); r > tt.wantRoundAt || r < 0.8*tt.wantRoundAt {
				t.Errorf("the first polls span %.1f s, want about one round, %.1f s", r, tt.wantRoundAt)
			}
			for i, n := range tenths {
				if want := float64(tt.tags) / 10; float64(n) > 1.6*want+3 {
					t.Errorf("tenth %d of the round holds %d first polls, want about %.0f: %v", i, n, want, tenths)
				}
			}
		})
	}
}

// TestPlanLeavesRoomWhileTagsWereNeverPolled checks the planned budget: 90 % of the pool's rate while some tags
// were never polled (their first polls come at the pace of one round), 97 % once every tag was polled, and that
// the count of tags never polled follows polls and removals.
func TestPlanLeavesRoomWhileTagsWereNeverPolled(t *testing.T) {
	t.Parallel()
	p := warmupPoller(t, 3, 2)
	p.mu.Lock()
	defer p.mu.Unlock()
	rate := p.pool.sustainableRate()
	if got, want := p.budgetLocked(), firstRoundMargin*rate; got != want || p.sched.fresh != 3 {
		t.Fatalf("before any poll: budget %v, %d fresh; want %v, 3", got, p.sched.fresh, want)
	}
	now := p.clk.mono() + time.Hour
	first, _ := p.sched.popDue(now)
	p.sched.done(first, observation{head: true, first: true}, now)
	if p.sched.fresh != 2 {
		t.Errorf("after one first poll %d tags fresh, want 2", p.sched.fresh)
	}
	second, _ := p.sched.popDue(now)
	p.sched.done(second, observation{head: true, first: true}, now)
	for _, ts := range p.sched.all {
		if ts.lastTry == 0 {
			p.sched.remove(ts.name)
			break
		}
	}
	if got, want := p.budgetLocked(), planMargin*rate; got != want || p.sched.fresh != 0 {
		t.Errorf("every tag polled or removed: budget %v, %d fresh; want %v, 0", got, p.sched.fresh, want)
	}
}

// TestVirtualCompressedHourSpendsTheBudgetWithoutRateLimitAnswers runs the poller against an upstream that counts
// each token's requests over a sliding window and answers with X-Ratelimit-Limit and -Remaining in its per-window
// units, as the real API did per hour, and refuses any request over the limit: the whole-binary harness's
// compressed hour (-time-scale 12: 300 requests per token per 5-minute window, B unchanged). Over the whole window
// after the first the pool must spend at least 97 % of the budget, with no rate-limit answer at all (the
// whole-binary harness measures the same over the last whole window of its run).
func TestVirtualCompressedHourSpendsTheBudgetWithoutRateLimitAnswers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		limit  int
		window time.Duration
		tokens int
		rates  map[string]float64
	}{
		{"zipf50 in a 5-minute hour of 300 requests per token", 300, 5 * time.Minute, 3, zipfRates("zipf", 50, 8, 1.1)},
		// zipf1000's 20 tokens in small: a first round of first polls as long (50 s of a 300 s window) on a fifth of
		// the requests. The whole-binary harness runs zipf1000 itself.
		{"zipf200 on 4 tokens in a 5-minute hour of 300 requests per token", 300, 5 * time.Minute, 4, zipfRates("zipf", 200, 8, 1.1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				w := virtualWorkload{rates: tt.rates, tokens: tt.tokens, limit: tt.limit, window: tt.window,
					latency: 5 * time.Millisecond, seed: 1}
				r, stop := startVirtual(t, w, nil)
				defer stop()
				time.Sleep(tt.window)
				from, _ := r.api.stats()
				const windows = 1
				time.Sleep(windows * tt.window)
				to, limited := r.api.stats()
				use := float64(to-from) / (r.budget * windows * tt.window.Seconds())
				t.Logf("budget use over %d whole windows %.2f%%, %d rate-limit answers", windows, 100*use, limited)
				if limited != 0 || use < 0.97 || use > 1 {
					t.Errorf("over %d whole windows after the first: budget use %.2f%%, %d rate-limit answers; want 97-100%%, none",
						windows, 100*use, limited)
				}
			})
		})
	}
}

// TestStartBurstSpeedsTheFirstRound runs a cold start of 100 tags on one token of 3,600 requests an hour: the
// start burst's credit (36 requests) pays for part of the first round, which then ends after about
// (100 - 36) / 0.9 = 71 s instead of 100 / 0.9 = 111 s at the first round's budget alone, with no rate-limit
// answer, and the burst closes once every tag was polled.
func TestStartBurstSpeedsTheFirstRound(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		rates := map[string]float64{}
		for i := range 100 {
			rates[fmt.Sprintf("tag%03d", i)] = 0.01
		}
		w := virtualWorkload{rates: rates, tokens: 1, limit: 3600, window: time.Hour, latency: 5 * time.Millisecond, seed: 1}
		r, stop := startVirtual(t, w, nil)
		defer stop()
		var done time.Duration
		for done == 0 && time.Since(r.started) < 3*time.Minute {
			time.Sleep(time.Second)
			r.p.mu.Lock()
			if r.p.sched.fresh == 0 {
				done = time.Since(r.started)
			}
			r.p.mu.Unlock()
		}
		time.Sleep(2 * time.Second) // the maintenance loop closes the burst within a second
		open, _ := r.p.pool.burstOpenSince()
		_, limited := r.api.stats()
		t.Logf("first round done after %s", done)
		if done == 0 || done > 85*time.Second {
			t.Errorf("the first round took %s, want about 71 s (111 s without the start burst)", done)
		}
		if limited != 0 || open {
			t.Errorf("%d rate-limit answers, burst still open %v; want none, closed", limited, open)
		}
	})
}

// TestStartBurstIsDroppedAfterARestart restarts the poller two minutes into a ten-minute window: the tokens'
// windows hold the first process's requests, so the API's first answers show requests the new pool did not send,
// the tokens lose their start credit, and the burst closes within seconds instead of lasting the first round;
// no rate-limit answer comes.
func TestStartBurstIsDroppedAfterARestart(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		rates := map[string]float64{}
		for i := range 200 {
			rates[fmt.Sprintf("tag%03d", i)] = 0.01
		}
		w := virtualWorkload{rates: rates, tokens: 2, limit: 600, window: 10 * time.Minute, latency: 5 * time.Millisecond, seed: 1}
		store := checkpoint.NewMemory()
		r, stop := startVirtual(t, w, store)
		time.Sleep(2 * time.Minute)
		stop()
		r2, stop2 := restartVirtual(t, w, r.api, r.pub, store)
		defer stop2()
		time.Sleep(3 * time.Second)
		open, _ := r2.p.pool.burstOpenSince()
		r2.p.mu.Lock()
		fresh, spread := r2.p.sched.fresh, r2.p.sched.firstSpread
		r2.p.mu.Unlock()
		if open || fresh == 0 || spread != 0 {
			t.Errorf("3 s after the restart: burst open %v with %d tags never polled, second polls spread over %v of the interval; "+
				"want it closed before the round ends, second polls as any other", open, fresh, spread)
		}
		time.Sleep(3 * time.Minute)
		if _, limited := r2.api.stats(); limited != 0 {
			t.Errorf("%d rate-limit answers, want none", limited)
		}
	})
}

// TestNoStopAtTheEndOfTheFirstWindow runs a cold start through the end of its first rate-limit window (a
// compressed hour: 300 requests per token per 5 minutes) and counts the pool's requests in every 5 s. Refilled at
// the whole limit, every token reached X-Ratelimit-Remaining's reserve (6 requests) 6 s before the window ended,
// all at the same moment, and the pool sent nothing until requests left the window; paced at the limit less the
// reserve (paceOf) it goes on at its pace. Each 5 s after the first round must hold at least half of it.
func TestNoStopAtTheEndOfTheFirstWindow(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const window, limit, tokens, slice = 5 * time.Minute, 300, 2, 5 * time.Second
		w := virtualWorkload{rates: zipfRates("stop", 10, 4, 1.1), tokens: tokens, limit: limit, window: window,
			latency: 5 * time.Millisecond, seed: 1}
		r, stop := startVirtual(t, w, nil)
		defer stop()
		time.Sleep(time.Minute) // the first round, the start burst and its payback's start
		pace := float64(tokens) * paceOf(limit, 1, window) * slice.Seconds()
		var least int
		var at time.Duration
		for time.Since(r.started) < window+time.Minute {
			from := time.Now()
			time.Sleep(slice)
			if n := r.api.sentBetween(from, time.Now()); at == 0 || n < least {
				least, at = n, time.Since(r.started)
			}
		}
		t.Logf("fewest requests in %s: %d (%.1f at the pace), in the %s before %s", slice, least, pace, slice, at)
		if float64(least) < pace/2 {
			t.Errorf("%d requests in the %s before %s, want at least half the pace of %.1f: the pool stopped",
				least, slice, at.Round(time.Second), pace)
		}
		if _, limited := r.api.stats(); limited != 0 {
			t.Errorf("%d rate-limit answers, want none", limited)
		}
	})
}
