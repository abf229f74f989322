package publisher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// RetryConfig is the backoff of a publisher's outer retry loop, the one place where a failed publish attempt is
// retried (the broker clients' own short internal retries run inside one attempt). The zero value means the
// documented defaults.
type RetryConfig struct {
	// InitialInterval is the first delay. Default 100 ms.
	InitialInterval time.Duration
	// MaxInterval caps the delay between attempts. Default 10 s.
	MaxInterval time.Duration
	// Multiplier grows the delay after each failed attempt. Default 2.
	Multiplier float64
	// RandomizationFactor spreads each delay uniformly over [d*(1-f), d*(1+f)]. Default 0.5.
	RandomizationFactor float64
	// MaxElapsedTime gives up after this long. Default 0: retry until the context of Publish ends, which is what
	// a poller wants (it blocks, polls nothing and keeps its cursors while the broker is away).
	MaxElapsedTime time.Duration
}

// withDefaults resolves the zero values.
func (c RetryConfig) withDefaults() RetryConfig {
	if c.InitialInterval == 0 {
		c.InitialInterval = 100 * time.Millisecond
	}
	if c.MaxInterval == 0 {
		c.MaxInterval = 10 * time.Second
	}
	if c.Multiplier == 0 {
		c.Multiplier = 2
	}
	if c.RandomizationFactor == 0 {
		c.RandomizationFactor = 0.5
	}
	return c
}

// validate reports the first invalid field, prefixed with the name of the enclosing config field.
func (c RetryConfig) validate(prefix string) error {
	switch {
	case c.InitialInterval < 0:
		return configError(prefix+".InitialInterval", "must not be negative, got %v", c.InitialInterval)
	case c.MaxInterval < 0:
		return configError(prefix+".MaxInterval", "must not be negative, got %v", c.MaxInterval)
	case c.MaxInterval != 0 && c.MaxInterval < c.InitialInterval:
		return configError(prefix+".MaxInterval", "%v is below InitialInterval %v", c.MaxInterval, c.InitialInterval)
	case c.Multiplier != 0 && c.Multiplier < 1:
		return configError(prefix+".Multiplier", "must be >= 1, got %v", c.Multiplier)
	case c.RandomizationFactor < 0 || c.RandomizationFactor > 1:
		return configError(prefix+".RandomizationFactor", "must be in [0, 1], got %v", c.RandomizationFactor)
	case c.MaxElapsedTime < 0:
		return configError(prefix+".MaxElapsedTime", "must not be negative, got %v", c.MaxElapsedTime)
	}
	return nil
}

// permanentError marks an attempt error that must not be retried.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// permanent wraps err so that retrier.do returns it at once.
func permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// retrier runs publish attempts with exponential backoff. It is safe for concurrent use: each do call owns its
// backoff state.
type retrier struct {
	cfg     RetryConfig
	metrics *metricSet
	log     *slog.Logger
}

// do calls attempt until it returns nil, a permanent error, or ctx ends. A context end returns an error wrapping
// both the context error and the last attempt's error.
func (r *retrier) do(ctx context.Context, attempt func(ctx context.Context) error) error {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = r.cfg.InitialInterval
	b.MaxInterval = r.cfg.MaxInterval
	b.Multiplier = r.cfg.Multiplier
	b.RandomizationFactor = r.cfg.RandomizationFactor
	b.MaxElapsedTime = r.cfg.MaxElapsedTime
	b.Reset()

	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for n := 1; ; n++ {
		err := attempt(ctx)
		if err == nil {
			return nil
		}
		var perm *permanentError
		if errors.As(err, &perm) {
			return perm.err
		}
		if ctx.Err() != nil {
			return contextError(ctx, err)
		}
		delay := b.NextBackOff()
		if delay == backoff.Stop {
			return fmt.Errorf("publisher: giving up after %d attempts: %w", n, err)
		}
		r.metrics.retries.Inc()
		r.log.Warn("publish attempt failed, retrying", "publisher", r.metrics.kind, "attempt", n,
			"delay", delay, "err", err)
		if timer == nil {
			timer = time.NewTimer(delay)
		} else {
			timer.Reset(delay)
		}
		select {
		case <-ctx.Done():
			return contextError(ctx, err)
		case <-timer.C:
		}
	}
}

// contextError reports that ctx ended while publishing, keeping the last broker error for errors.Is.
func contextError(ctx context.Context, last error) error {
	cause := context.Cause(ctx)
	if last == nil || errors.Is(last, cause) {
		return fmt.Errorf("publisher: %w", cause)
	}
	return fmt.Errorf("publisher: %w (last error: %w)", cause, last)
}
