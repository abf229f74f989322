package poller

import "time"

// clock gives the poller its two kinds of time. The wall clock (Config.Clock) stamps what people and other systems
// read: checkpoints, events, statuses, Retry-After dates. The monotonic clock paces everything that waits: the due
// times of tags, token buckets and parking, the client's backoff while the API is down. It is read as the time
// elapsed since the poller was built, so a step of the wall clock (NTP, a resumed virtual machine) neither freezes
// nor rushes the schedule.
type clock struct {
	wall    func() time.Time
	elapsed func() time.Duration // monotonic time since a fixed start
}

// newClock returns a clock whose wall time is wall and whose monotonic time starts now.
func newClock(wall func() time.Time) clock {
	start := time.Now()
	return clock{wall: wall, elapsed: func() time.Duration { return time.Since(start) }}
}

// mono returns the monotonic time: the time elapsed since the start, plus 1 ns so that a reading is never 0 and 0
// can mean "never" in the poller's state.
func (c clock) mono() time.Duration { return c.elapsed() + 1 }

// wallAt returns the wall-clock time of the monotonic instant m, as the wall clock reads now.
func (c clock) wallAt(m time.Duration) time.Time { return c.reading().wallAt(m) }

// reading returns both clocks read at once, to convert several instants consistently.
func (c clock) reading() clockReading { return clockReading{wall: c.wall(), mono: c.mono()} }

// clockReading is one reading of both clocks.
type clockReading struct {
	wall time.Time
	mono time.Duration
}

// wallAt returns the wall-clock time of the monotonic instant m, as the wall clock read at r.
func (r clockReading) wallAt(m time.Duration) time.Time { return r.wall.Add(m - r.mono) }

// monoAt returns the monotonic reading of the wall-clock time t, as the clocks read at r (negative for an instant
// before the poller was built).
func (r clockReading) monoAt(t time.Time) time.Duration { return r.mono + t.Sub(r.wall) }
