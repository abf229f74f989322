package publisher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tagstream/tagstream/schema"
)

var _ Publisher = (*NATS)(nil)

// DefaultSubjectPrefix is the subject prefix of the NATS and JetStream publishers: events of tag t go to
// "tagstream.media." + EncodeTag(t).
const DefaultSubjectPrefix = "tagstream.media"

// NATSConfig configures the core NATS publisher. The zero value means the documented defaults.
type NATSConfig struct {
	// SubjectPrefix is the subject prefix; default DefaultSubjectPrefix.
	SubjectPrefix string
	// FlushTimeout bounds each flush round trip (PING/PONG) that ends a Publish; default 5 s. A timed-out flush
	// is retried with backoff.
	FlushTimeout time.Duration
	// DeadLetterSubject, when set, receives (as a wrapper JSON, see AppendLetter) the events larger than the
	// server's max_payload. Empty means DeadLetter, or Discard when that is nil too.
	DeadLetterSubject string
	// DeadLetter overrides DeadLetterSubject with another destination.
	DeadLetter DeadLetter
	// Retry is the backoff of a failed publish or flush.
	Retry RetryConfig
}

func (c NATSConfig) withDefaults() (NATSConfig, error) {
	var err error
	if c.SubjectPrefix, err = natsSubjects(c.SubjectPrefix, c.DeadLetterSubject); err != nil {
		return c, err
	}
	if c.FlushTimeout < 0 {
		return c, configError("FlushTimeout", "must not be negative, got %v", c.FlushTimeout)
	}
	if c.FlushTimeout == 0 {
		c.FlushTimeout = 5 * time.Second
	}
	if err := c.Retry.validate("Retry"); err != nil {
		return c, err
	}
	c.Retry = c.Retry.withDefaults()
	return c, nil
}

// natsSubjects resolves and checks the subject settings the core NATS and JetStream publishers share: it returns
// the prefix (default DefaultSubjectPrefix; see ValidateSubjectPrefix), or an ErrConfig naming SubjectPrefix or
// DeadLetterSubject (checked when set; see ValidateSubject).
func natsSubjects(prefix, deadLetter string) (string, error) {
	if prefix == "" {
		prefix = DefaultSubjectPrefix
	}
	if err := ValidateSubjectPrefix(prefix); err != nil {
		return prefix, configError("SubjectPrefix", "%v", err)
	}
	if deadLetter != "" {
		if err := ValidateSubject(deadLetter); err != nil {
			return prefix, configError("DeadLetterSubject", "%v", err)
		}
	}
	return prefix, nil
}

// NATS publishes events with core NATS: explicitly at-most-once. Publish returns once the server has received
// every message (a flush round trip), but nothing is stored: subscribers that are not connected miss the events,
// and a server crash loses them. Use JetStream for at-least-once delivery. NATS is safe for concurrent use.
type NATS struct {
	nc         *nats.Conn
	cfg        NATSConfig
	deadLetter DeadLetter
	retry      retrier
	metrics    *metricSet
	log        *slog.Logger
}

// NewNATS returns a core NATS publisher on nc (which the caller owns and closes). A nil logger means
// slog.Default(); a nil reg registers no metrics.
func NewNATS(nc *nats.Conn, cfg NATSConfig, logger *slog.Logger, reg prometheus.Registerer) (*NATS, error) {
	if nc == nil {
		return nil, configError("nc", "nil *nats.Conn")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	m := NewMetrics(reg).forPublisher("nats")
	p := &NATS{nc: nc, cfg: cfg, metrics: m, log: logger, retry: retrier{cfg: cfg.Retry, metrics: m, log: logger}}
	switch {
	case cfg.DeadLetter != nil:
		p.deadLetter = cfg.DeadLetter
	case cfg.DeadLetterSubject != "":
		p.deadLetter = &natsDeadLetter{nc: nc, subject: cfg.DeadLetterSubject}
	default:
		p.deadLetter = Discard(logger)
	}
	return p, nil
}

// Publish sends every event to its tag's subject and flushes. Events larger than the server's max_payload go to
// the dead-letter destination. A failed send or flush is retried with backoff until ctx ends; messages already
// handed to the connection are not sent again (at most once).
func (p *NATS) Publish(ctx context.Context, events []*schema.Event) error {
	_, err := p.Deliver(ctx, events)
	return err
}

// Deliver is Publish that also says which events went to the dead-letter destination instead of their subject:
// the indexes into events, ascending (see Deliverer).
func (p *NATS) Deliver(ctx context.Context, events []*schema.Event) (deadLettered []int, err error) {
	if len(events) == 0 {
		return nil, nil
	}
	start := time.Now()
	next := 0
	var buf []byte
	// The letters live outside the attempts: a letter whose delivery failed, or whose attempt failed on a later
	// message, is delivered by the next attempt (the cursor must not move past an event that was neither
	// published nor dead-lettered).
	var dead letterBatch
	err = p.retry.do(ctx, func(ctx context.Context) error {
		if p.nc.IsClosed() {
			return permanent(fmt.Errorf("publisher: nats: %w", ErrClosed))
		}
		for ; next < len(events); next++ {
			e := events[next]
			buf = e.AppendJSON(buf[:0])
			msg := &nats.Msg{Subject: Subject(p.cfg.SubjectPrefix, e.Subject), Data: buf}
			if err := p.nc.PublishMsg(msg); err != nil {
				if errors.Is(err, nats.ErrMaxPayload) {
					dead.add(next, Letter{Event: e, Publisher: "nats", Size: len(buf),
						Reason: fmt.Sprintf("message too large: %d bytes > max_payload %d", len(buf), p.nc.MaxPayload())})
					continue
				}
				if errors.Is(err, nats.ErrConnectionClosed) {
					return permanent(fmt.Errorf("publisher: nats: %w: %w", ErrClosed, err))
				}
				return fmt.Errorf("publisher: nats publish: %w: %w", ErrUnavailable, err)
			}
		}
		if err := dead.deliver(ctx, p.deadLetter, p.metrics); err != nil {
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		fctx, cancel := context.WithTimeout(ctx, p.cfg.FlushTimeout)
		defer cancel()
		if err := p.nc.FlushWithContext(fctx); err != nil {
			return fmt.Errorf("publisher: nats flush: %w: %w", ErrUnavailable, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	deadLettered = dead.delivered()
	n := float64(len(events) - len(deadLettered))
	p.metrics.acks.Add(n)
	p.metrics.published.Add(n)
	p.metrics.seconds.Observe(time.Since(start).Seconds())
	return deadLettered, nil
}

// Ready reports whether the publisher can publish now: the connection is up and answers a round trip (a flush).
// It returns nil, or an error wrapping ErrClosed (the connection is closed) or ErrUnavailable (disconnected,
// reconnecting, no answer before ctx ends).
func (p *NATS) Ready(ctx context.Context) error {
	if err := connReady(p.nc); err != nil {
		return err
	}
	if err := p.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("publisher: nats round trip: %w: %w", ErrUnavailable, err)
	}
	return nil
}

// Close flushes the connection (within FlushTimeout). It does not close the connection, which the caller owns.
func (p *NATS) Close() error {
	if p.nc.IsClosed() {
		return nil
	}
	if err := p.nc.FlushTimeout(p.cfg.FlushTimeout); err != nil {
		return fmt.Errorf("publisher: nats flush on close: %w", err)
	}
	return nil
}

// natsDeadLetter publishes wrapper letters to a core NATS subject.
type natsDeadLetter struct {
	nc      *nats.Conn
	subject string
}

func (d *natsDeadLetter) DeadLetter(ctx context.Context, letters []Letter) error {
	limit := int(d.nc.MaxPayload())
	now := time.Now()
	for _, l := range letters {
		b := AppendLetter(nil, l, l.Event.AppendJSON(nil), limit, now)
		if err := d.nc.Publish(d.subject, b); err != nil {
			return fmt.Errorf("publisher: nats dead letter: %w", err)
		}
	}
	return nil
}
