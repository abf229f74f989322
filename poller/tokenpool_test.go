package poller

import (
	"context"
	"errors"
	"log/slog"
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

func TestTokenBucketPacing(t *testing.T) {
	clock := newFakeClock()
	p, _ := newTestPool(t, clock, 3600, "a") // one request a second, burst 3
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
	clock := newFakeClock()
	p, _ := newTestPool(t, clock, 3600, "a", "b", "c")
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
	keep := reserveOf(3600) // the pools below allow 3600 requests an hour
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
		{"a higher limit speeds the refill", 7200, -1, tokenBurst, time.Second / 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			p, _ := newTestPool(t, clock, 3600, "a")
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
	fp := Fingerprint("IGQVJYeUk4NFZAWbnRrZAHBQ")
	if len(fp) != 8 || strings.Contains("IGQVJYeUk4NFZAWbnRrZAHBQ", fp) {
		t.Errorf("fingerprint %q: want 8 hex digits unrelated to the token", fp)
	}
	if Fingerprint("a") == Fingerprint("b") {
		t.Errorf("different tokens share a fingerprint")
	}
}

func TestBudgetUseCoversTheLastMinute(t *testing.T) {
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
