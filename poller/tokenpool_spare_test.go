package poller

import (
	"testing"
	"time"
)

// TestSpareAnswersFromItsCacheUntilABucketCanBeFull checks spare's shortcut: having found no full bucket, it
// answers "none until the first can be full" without looking at the tokens again, and is right at that time; a
// higher limit from the API (a faster refill) clears the shortcut.
func TestSpareAnswersFromItsCacheUntilABucketCanBeFull(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	p, _ := newTestPool(t, clock, oneASecond, "a", "b") // one request a second each, burst 3
	if n, _ := p.spare(clock.mono()); n != 2 {
		t.Fatalf("fresh pool: %d full buckets, want 2", n)
	}
	take(p, clock, 6) // both buckets empty
	n, next := p.spare(clock.mono())
	if n != 0 || next != clock.mono()+3*time.Second {
		t.Fatalf("empty buckets: %d full, next full at %s; want 0 at %s", n, next, clock.mono()+3*time.Second)
	}
	clock.Advance(time.Second)
	if n, again := p.spare(clock.mono()); n != 0 || again != next {
		t.Errorf("a second later: %d full, next %s; want 0, %s (the cached answer)", n, again, next)
	}
	clock.Advance(2 * time.Second)
	if n, _ := p.spare(clock.mono()); n != 2 {
		t.Errorf("three seconds later: %d full buckets, want 2", n)
	}

	take(p, clock, 6)
	_, next = p.spare(clock.mono())
	p.observe(p.tokens[0], fourASecond, -1) // the API allows four times as much: the bucket refills in 0.75 s
	if n, sooner := p.spare(clock.mono()); n != 0 || sooner >= next {
		t.Errorf("after a higher limit: %d full, next %s; want 0 and sooner than %s", n, sooner, next)
	}
}
