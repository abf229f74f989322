package poller

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/tagstream/tagstream/internal/testkit"
)

// steppedClock is a wall clock that an NTP daemon may step: time.Now moved by an offset the test sets. Its
// readings drop the monotonic part, as a wall-clock reading stored by value (unix nanoseconds) would.
type steppedClock struct{ offset atomic.Int64 }

func (c *steppedClock) Now() time.Time {
	return time.Now().Round(0).Add(time.Duration(c.offset.Load()))
}

func (c *steppedClock) step(d time.Duration) { c.offset.Add(int64(d)) }

// TestWallClockStepsNeitherFreezeNorRush steps the wall clock back ten minutes, forward twenty and back again while
// polling: every step, new media are still published, and each tag's next poll stays within MaxInterval of the
// wall clock's now.
func TestWallClockStepsNeitherFreezeNorRush(t *testing.T) {
	tags := []string{"ntp_a", "ntp_b"}
	srv := startSimWithTags(t, []string{"ntp-tok"}, tags)
	cfg := testConfig(srv, []string{"ntp-tok"}, tags)
	wall := &steppedClock{}
	cfg.Clock = wall.Now
	r := startPoller(t, cfg, nil)
	waitStarted(t, r, tags)
	for i, step := range []time.Duration{-10 * time.Minute, 20 * time.Minute, -10 * time.Minute} {
		wall.step(step)
		testkit.Eventually(t, 10*time.Second, "a poll of every tag after the step", func() bool {
			for _, st := range r.p.Status() {
				if st.LastAttempt.Before(wall.Now().Add(-cfg.MaxInterval)) {
					return false
				}
			}
			return true
		})
		for _, st := range r.p.Status() {
			if !st.NextPoll.IsZero() && st.NextPoll.Sub(wall.Now()) > 2*cfg.MaxInterval {
				t.Errorf("step %d: tag %s is next polled at %s, %s after the wall clock's now", i, st.Tag,
					st.NextPoll, st.NextPoll.Sub(wall.Now()))
			}
		}
		want := len(r.pub.mediaCount()) + 6
		for _, tag := range tags {
			srv.Post(tag, 3)
		}
		testkit.Eventually(t, 10*time.Second, "the media posted after the step", func() bool {
			return len(r.pub.mediaCount()) == want
		})
	}
	for id, n := range r.pub.mediaCount() {
		if n != 1 {
			t.Errorf("media %s published %d times, want once", id, n)
		}
	}
}
