package poller

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tagstream/tagstream/internal/testkit"
)

// fakeClock is a settable clock; its monotonic reading is the time since it was made.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	start time.Time
}

func newFakeClock() *fakeClock {
	t := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return &fakeClock{now: t, start: t}
}

// mono is the monotonic reading of the clock.
func (c *fakeClock) mono() time.Duration { return c.clock().mono() }

// clock returns the poller's clock driven by c.
func (c *fakeClock) clock() clock {
	return clock{wall: c.Now, elapsed: func() time.Duration { return c.Now().Sub(c.start) }}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// newTestPool builds a pool on a fake clock; each token allows perHour requests an hour.
func newTestPool(t *testing.T, clock *fakeClock, perHour int, tokens ...string) (*tokenPool, *testkit.SyncBuffer) {
	t.Helper()
	cfg := Config{BaseURL: "https://h/v1", RequestsPerHour: perHour, Clock: clock.Now,
		BackoffInitial: time.Second, BackoffMax: time.Minute}
	for _, tok := range tokens {
		cfg.Tokens = append(cfg.Tokens, Token{Value: tok})
	}
	cfg, err := cfg.resolve()
	if err != nil {
		t.Fatal(err)
	}
	m, _ := newMetrics(nil)
	logs := &testkit.SyncBuffer{}
	return newTokenPool(cfg, clock.clock(), slog.New(slog.NewTextHandler(logs, nil)), m), logs
}

// take acquires tokens at the current fake time until none is ready, returning their indexes and when the next
// one will be ready.
func take(p *tokenPool, clock *fakeClock, max int) ([]int, time.Duration) {
	var got []int
	for range max {
		tk, next := p.tryAcquire(clock.mono())
		if tk == nil {
			return got, next
		}
		got = append(got, tk.idx)
	}
	return got, 0
}

// Limits per hour whose pace (paceOf: the limit less the reserve, over the hour) is a round number of requests a
// second.
const (
	oneASecond  = 3637  // 3637 - 37 = 3600 an hour
	twoASecond  = 7273  // 7273 - 73 = 7200
	fourASecond = 14546 // 14546 - 146 = 14400
)

func TestPaceIsTheLimitLessTheReserve(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		limit int
		share float64
		want  float64
	}{
		{oneASecond, 1, 1}, {twoASecond, 1, 2}, {fourASecond, 1, 4}, {fourASecond, 0.25, 1},
		{5000, 1, 4950.0 / 3600}, // 1 % kept back
		{100, 1, 94.0 / 3600},    // at least two bursts kept back
		{4, 1, 2.0 / 3600},       // at most half
	} {
		if got := paceOf(tc.limit, tc.share, time.Hour); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("paceOf(%d, %v, 1h) = %v, want %v", tc.limit, tc.share, got, tc.want)
		}
	}
}

func TestTokenBucketPacing(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	p, _ := newTestPool(t, clock, oneASecond, "a") // one request a second, burst 3
	got, next := take(p, clock, 10)
	if len(got) != tokenBurst {
		t.Fatalf("a fresh token gave %d requests back to back, want the burst of %d", len(got), tokenBurst)
	}
	if want := clock.mono() + time.Second; next != want {
		t.Fatalf("next ready at %s, want one second later (%s)", next, want)
	}
	clock.Advance(500 * time.Millisecond)
	if got, _ := take(p, clock, 10); len(got) != 0 {
		t.Fatalf("half a second later the token gave %d requests, want 0", len(got))
	}
	clock.Advance(500 * time.Millisecond)
	if got, _ := take(p, clock, 10); len(got) != 1 {
		t.Fatalf("one second later the token gave %d requests, want 1", len(got))
	}
	clock.Advance(time.Hour)
	if got, _ := take(p, clock, 10); len(got) != tokenBurst {
		t.Fatalf("after an idle hour the token gave %d requests, want only the burst %d", len(got), tokenBurst)
	}
}

func TestTokenPoolSpreadsOverTokens(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	p, _ := newTestPool(t, clock, oneASecond, "a", "b", "c")
	counts := make(map[int]int)
	for range 60 {
		got, _ := take(p, clock, 100)
		for _, i := range got {
			counts[i]++
		}
		clock.Advance(time.Second)
	}
	for i := range 3 {
		// 60 seconds at one request a second plus the initial burst (less the last refill).
		if counts[i] < 60 || counts[i] > 63 {
			t.Errorf("token %d served %d requests in a minute, want about 60", i, counts[i])
		}
	}
	if r := p.sustainableRate(); r != 3 {
		t.Errorf("sustainable rate = %v, want 3 requests/s", r)
	}
}

func TestTokenPoolHeaderCorrection(t *testing.T) {
	t.Parallel()
	keep := reserveOf(oneASecond) // the pools below refill one request a second
	if keep < 2*tokenBurst {
		t.Fatalf("reserve %d: want at least two bursts", keep)
	}
	cases := []struct {
		name             string
		limit, remaining int
		wantNow          int           // requests available right after the correction
		wantNext         time.Duration // then the wait for the next one
	}{
		{"no headers change nothing", -1, -1, tokenBurst, time.Second},
		{"a spent budget stops the token until the reserve and one more refilled", -1, 0, 0, time.Duration(keep+1) * time.Second},
		{"a remaining budget at the reserve stops the token", -1, keep, 0, time.Second},
		{"a remaining budget just above the reserve caps the burst", -1, keep + 1, 1, time.Second},
		{"a remaining budget well above the reserve changes nothing", -1, keep + 100, tokenBurst, time.Second},
		{"a higher limit speeds the refill", twoASecond, -1, tokenBurst, time.Second / 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			p, _ := newTestPool(t, clock, oneASecond, "a")
			p.observe(p.tokens[0], tc.limit, tc.remaining)
			got, next := take(p, clock, 10)
			if len(got) != tc.wantNow {
				t.Fatalf("got %d requests, want %d", len(got), tc.wantNow)
			}
			if d := next - clock.mono(); d != tc.wantNext {
				t.Errorf("next ready in %s, want %s", d, tc.wantNext)
			}
			if st := p.status()[0]; tc.limit > 0 && st.Limit != tc.limit {
				t.Errorf("status limit %d, want %d", st.Limit, tc.limit)
			}
		})
	}
}

func TestTokenParkingBacksOffAndHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	p, _ := newTestPool(t, clock, 360000, "a", "b")
	a := p.tokens[0]
	// Successive parks draw from a growing interval: 1s, 2s, 4s, ... (full jitter below each cap).
	for n := range 6 {
		d := p.park(a, 0)
		if maxD := time.Second << n; d > maxD || d < maxD/16 {
			t.Errorf("park %d lasted %s, want within [%s, %s]", n+1, d, maxD/16, maxD)
		}
	}
	if d := p.park(a, 10*time.Minute); d != 10*time.Minute {
		t.Errorf("a Retry-After of 10m parked the token for %s", d)
	}
	got, _ := take(p, clock, 5)
	for _, i := range got {
		if i == 0 {
			t.Fatalf("the parked token was handed out")
		}
	}
	if len(got) == 0 {
		t.Fatalf("the other token was not handed out while one was parked")
	}
	if st := p.status()[0]; st.ParkedUntil.Sub(clock.Now()) < 10*time.Minute {
		t.Errorf("status parked until %s, want 10 minutes from now", st.ParkedUntil)
	}
	clock.Advance(11 * time.Minute)
	p.success(a)
	if d := p.park(a, 0); d > time.Second {
		t.Errorf("after a success the backoff did not start over: park lasted %s", d)
	}
}

func TestTokenRetirement(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	p, logs := newTestPool(t, clock, 3600, "first-secret", "second-secret")
	p.retire(p.tokens[0])
	p.retire(p.tokens[0])
	if n := strings.Count(logs.String(), "token retired"); n != 1 {
		t.Errorf("retirement logged %d times, want once", n)
	}
	if strings.Contains(logs.String(), "first-secret") || !strings.Contains(logs.String(), p.tokens[0].fp) {
		t.Errorf("the log must name the fingerprint and not the token: %s", logs.String())
	}
	for range 20 {
		got, _ := take(p, clock, 5)
		for _, i := range got {
			if i == 0 {
				t.Fatalf("a retired token was handed out")
			}
		}
		clock.Advance(time.Second)
	}
	p.retire(p.tokens[1])
	if _, err := p.acquire(context.Background()); !errors.Is(err, ErrAllTokensRetired) {
		t.Fatalf("acquire with every token retired = %v, want ErrAllTokensRetired", err)
	}
	if r := p.sustainableRate(); r != 0 {
		t.Errorf("sustainable rate with every token retired = %v, want 0", r)
	}
}

func TestAcquireWaitsForContext(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	p, _ := newTestPool(t, clock, 1, "slow") // one request an hour
	take(p, clock, 5)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.acquire(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("acquire with no ready token and a cancelled context = %v, want context.Canceled", err)
	}
}

func TestFingerprintHidesTheToken(t *testing.T) {
	t.Parallel()
	fp := Fingerprint("IGQVJYeUk4NFZAWbnRrZAHBQ")
	if len(fp) != 8 || strings.Contains("IGQVJYeUk4NFZAWbnRrZAHBQ", fp) {
		t.Errorf("fingerprint %q: want 8 hex digits unrelated to the token", fp)
	}
	if Fingerprint("a") == Fingerprint("b") {
		t.Errorf("different tokens share a fingerprint")
	}
}

func TestBudgetUseCoversTheLastMinute(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	p, _ := newTestPool(t, clock, 3600, "a", "b") // two requests a second allowed
	if use := p.budgetUse(clock.mono()); use != 0 {
		t.Fatalf("budget use before any time passed = %v, want 0", use)
	}
	steps := []struct {
		name    string
		perSec  int
		seconds int
		want    float64
	}{
		{"one request a second of two allowed is half the budget", 1, 60, 0.5},
		{"two a second for a minute is the whole budget", 2, 60, 1},
		{"a quiet minute after that counts alone", 0, 60, 0},
	}
	for _, st := range steps {
		for range st.seconds {
			clock.Advance(time.Second)
			for range st.perSec {
				if tk, _ := p.tryAcquire(clock.mono()); tk == nil {
					t.Fatalf("%s: no token ready", st.name)
				}
			}
			p.budgetUse(clock.mono())
		}
		if use := p.budgetUse(clock.mono()); use < st.want-0.05 || use > st.want+0.05 {
			t.Errorf("%s: budget use %.3f, want %.2f", st.name, use, st.want)
		}
	}
}

// windowAPI counts one token's requests over a sliding window as the API does and tells the pool what is left.
type windowAPI struct {
	limit  int
	window time.Duration
	sent   []time.Duration // monotonic readings, oldest first
}

// answer counts a request at now and returns X-Ratelimit-Remaining, or -1 when the request is over the limit.
func (w *windowAPI) answer(now time.Duration) int {
	for len(w.sent) > 0 && w.sent[0] <= now-w.window {
		w.sent = w.sent[1:]
	}
	if len(w.sent) >= w.limit {
		return -1
	}
	w.sent = append(w.sent, now)
	return w.limit - len(w.sent)
}

// TestStartBurstNeverExceedsTheWindow checks the start burst of a token: while open it hands out its credit
// (1 % of its limit) beyond its bucket, and every window of the API, one that starts before the burst, during it
// or after it, holds no more than the limit: the credit spent is paid back, evenly, before the first window ends.
// The token never stops for longer than its reserve takes to refill (the stop near the end of the first window
// that the cap of X-Ratelimit-Remaining makes without a burst too; without the payback, that cap would keep the
// window within the limit by stopping the token for the credit's worth as well). A window after the burst still
// holds at least 97 % of the limit.
func TestStartBurstNeverExceedsTheWindow(t *testing.T) {
	t.Parallel()
	const limit = 3600
	clock := newFakeClock()
	p, _ := newTestPool(t, clock, limit, "a")
	api := &windowAPI{limit: limit, window: time.Hour}
	p.openBurst()
	var at []time.Duration
	step := 100 * time.Millisecond
	for i := 0; clock.mono() < 3*time.Hour; i++ {
		if clock.mono() >= 20*time.Second {
			p.closeBurst(clock.mono())
		}
		for {
			tk, _ := p.tryAcquire(clock.mono())
			if tk == nil {
				break
			}
			rem := api.answer(clock.mono())
			if rem < 0 {
				t.Fatalf("a request at %s over the API's limit", clock.mono())
			}
			at = append(at, clock.mono())
			p.observe(tk, limit, rem)
		}
		clock.Advance(step)
	}
	for i := 1; i < len(at); i++ {
		if gap := at[i] - at[i-1]; gap > time.Duration(reserveOf(limit)+tokenBurst+2)*time.Second {
			t.Fatalf("the token stopped for %s at %s", gap, at[i-1])
		}
	}
	first := 0
	for _, a := range at {
		if a < 10*time.Second {
			first++
		}
	}
	if want := tokenBurst + 10 + limit/100; first < want-1 {
		t.Errorf("%d requests in the first 10 s, want the bucket, the refill and the credit: %d", first, want)
	}
	// Every window [s, s+1h) for s on a 10 s grid, and the one that starts just after the burst.
	for s := time.Duration(0); s+time.Hour <= 3*time.Hour; s += 10 * time.Second {
		n := 0
		for _, a := range at {
			if a >= s && a < s+time.Hour {
				n++
			}
		}
		if n > limit {
			t.Fatalf("the window from %s holds %d requests, over the limit %d", s, n, limit)
		}
		if s >= 20*time.Second && s <= 2*time.Hour && float64(n) < 0.97*limit {
			t.Errorf("the window from %s holds %d requests, want at least 97 %% of %d", s, n, limit)
		}
	}
}

// TestStartBurstNeedsAnEmptyWindow checks that a token whose first answer shows requests this pool did not send
// (a restart within the hour, another client) loses its start credit, and that a closed burst does not open again.
func TestStartBurstNeedsAnEmptyWindow(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	p, _ := newTestPool(t, clock, 3600, "a", "b")
	p.openBurst()
	if c := p.burstCredit(); c != 72 {
		t.Fatalf("credit %v, want 36 per token", c)
	}
	a, _ := p.tryAcquire(clock.mono())
	p.observe(a, 3600, 3600-1-500) // 500 requests of someone else in the window
	if c := p.burstCredit(); c != 36 {
		t.Errorf("credit %v after a token's window showed others' requests, want the other token's 36", c)
	}
	b := p.tokens[1-a.idx]
	b.level = 0
	p.observe(b, 3600, 3600) // nothing sent yet: the window is empty
	if got, _ := take(p, clock, 100); len(got) != 36+tokenBurst-1 {
		t.Errorf("%d requests at once, want the first token's bucket (less one) and the second's credit", len(got))
	}
	if !p.closeBurst(clock.mono()) || p.closeBurst(clock.mono()) {
		t.Error("closeBurst: want true once, then false")
	}
	p.openBurst()
	if c := p.burstCredit(); c != 0 {
		t.Errorf("credit %v after the burst closed, want 0", c)
	}
	if r, want := p.sustainableRate(), 2*paceOf(3600, 1, time.Hour)-36.0/3600; math.Abs(r-want) > 1e-6 {
		t.Errorf("sustainable rate %v while the credit is paid back, want %v", r, want)
	}
}

// TestStartBurstClosedLateDoesNotStopTheToken closes a start burst just before the end of its window (a stalled
// process, or a test's one-second window): the payback is capped at half the token's rate, so the token keeps
// being ready at least at half its pace instead of waiting an hour, and the pool closes a burst a quarter of the
// window after it opened by itself.
func TestStartBurstClosedLateDoesNotStopTheToken(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	cfg := Config{BaseURL: "https://h/v1", RequestsPerHour: 5000, RateWindow: time.Second, Clock: clock.Now,
		BackoffInitial: time.Second, BackoffMax: time.Minute, Tokens: []Token{{Value: "a"}}}
	cfg, err := cfg.resolve()
	if err != nil {
		t.Fatal(err)
	}
	m, _ := newMetrics(nil)
	p := newTokenPool(cfg, clock.clock(), slog.New(slog.DiscardHandler), m)
	p.openBurst()
	if got, _ := take(p, clock, 1000); len(got) != tokenBurst+50 {
		t.Fatalf("%d requests at once, want the bucket and the credit of 50", len(got))
	}
	clock.Advance(999 * time.Millisecond)
	p.closeBurst(clock.mono())
	take(p, clock, 10000)
	_, next := p.tryAcquire(clock.mono())
	if wait := next - clock.mono(); wait > time.Millisecond {
		t.Errorf("the token is next ready in %s, want within a millisecond (half its rate at least)", wait)
	}

	p = newTokenPool(cfg, clock.clock(), slog.New(slog.DiscardHandler), m)
	p.openBurst()
	clock.Advance(300 * time.Millisecond)
	take(p, clock, 10000)
	if open, _ := p.burstOpenSince(); open || p.burstCredit() != 0 {
		t.Errorf("a quarter of the window after the open: burst open %v, credit %v; want closed, 0", open, p.burstCredit())
	}
}
