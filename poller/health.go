package poller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// downAfter is how many transient failures in a row, with no success in between, mean the API is down.
const downAfter = 4

// maxProbeInterval caps the delay between two probes while the API is down. A probe is one request, so probing
// every few seconds costs little budget, while a minute-long cap (BackoffMax) would leave tagstream idle for up
// to a minute after the API came back.
const maxProbeInterval = 8 * time.Second

// ErrAPIDown is wrapped by the error of Poller.Ready while the API is considered down.
var ErrAPIDown = errors.New("poller: the API is considered down")

// health follows whether the API answers. A failure episode starts with the first transient failure after a
// success and ends with the next success; it is logged once at WARN when it starts (the endpoint without
// credentials and the redacted cause) and once at INFO when it ends, never per request. After downAfter transient
// failures in a row the API counts as down and the whole client backs off: requests pass one at a time, each after
// a growing, jittered delay (a probe); the first success ends it and everything goes on from where it stopped
// (cursors never moved).
type health struct {
	mu        sync.Mutex
	fails     int           // transient failures since the last success
	until     time.Duration // no request before this (monotonic clock) while down
	down      bool
	since     time.Duration // start of the current failure episode (monotonic clock), 0 when none
	downSince time.Duration // when the API was declared down (monotonic clock)
	lastCause string        // the last failure, redacted, with its endpoint
	bo        *backoff.ExponentialBackOff
	clk       clock
	log       *slog.Logger
	m         *metrics
}

// wait returns when a request may be sent: at once while the API is up, one probe per backoff delay while down.
func (h *health) wait(ctx context.Context) error {
	for {
		h.mu.Lock()
		now := h.clk.mono()
		if now >= h.until {
			if h.down {
				h.until = now + fullJitter(h.bo.NextBackOff())
			}
			h.mu.Unlock()
			return ctx.Err()
		}
		d := h.until - now
		h.mu.Unlock()
		if err := sleep(ctx, d); err != nil {
			return err
		}
	}
}

// success records an answer from the API (any answer that is not a transient failure): it ends a failure episode.
func (h *health) success() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fails = 0
	if h.since == 0 {
		return
	}
	now := h.clk.mono()
	if h.down {
		h.down = false
		h.until = 0
		h.bo.Reset()
		h.m.apiDown.Set(0)
		h.log.Info("api reachable again", "down_for", (now - h.downSince).Round(time.Millisecond))
	} else {
		h.log.Info("api requests succeed again", "failing_for", (now - h.since).Round(time.Millisecond))
	}
	h.since, h.downSince, h.lastCause = 0, 0, ""
}

// failure records a transient failure of a request to endpoint (no credentials) with its redacted cause.
func (h *health) failure(endpoint string, cause error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fails++
	h.lastCause = fmt.Sprintf("GET %s: %v", endpoint, cause)
	now := h.clk.mono()
	if h.since == 0 {
		h.since = now
		h.log.Warn("api request failed", "url", endpoint, "err", cause)
	}
	if h.fails < downAfter || h.down {
		return
	}
	h.down = true
	h.downSince = now
	h.until = now + fullJitter(h.bo.NextBackOff())
	h.m.apiDown.Set(1)
	h.log.Warn("api looks down: backing off the whole client", "url", endpoint, "err", cause,
		"failures_in_a_row", h.fails)
}

// ready returns nil while the API is not considered down, and otherwise an error wrapping ErrAPIDown that says
// since when and the last cause.
func (h *health) ready() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.down {
		return nil
	}
	return fmt.Errorf("%w since %s (%d failures in a row; last: %s)", ErrAPIDown,
		h.clk.wallAt(h.downSince).UTC().Format(time.RFC3339), h.fails, h.lastCause)
}
