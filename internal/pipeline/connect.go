package pipeline

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tagstream/tagstream/group"
	"github.com/tagstream/tagstream/internal/config"
	"github.com/tagstream/tagstream/poller"
	"github.com/tagstream/tagstream/poller/checkpoint"
	"github.com/tagstream/tagstream/publisher"
)

// ErrUnreachable is wrapped by the errors of Check that mean a broker could not be reached (refused, timed out, a
// temporary DNS failure: publisher.ErrUnreachable): an outage rather than a wrong setting. Run keeps retrying in
// that case.
var ErrUnreachable = errors.New("pipeline: broker unreachable")

// connect opens what needs the broker and builds the poller, retrying with backoff for as long as the broker
// cannot be reached. It returns a classified error for any other failure, or ctx's error.
func (p *Pipeline) connect(ctx context.Context) error {
	newBackOff := p.deps.DialBackOff
	if newBackOff == nil {
		newBackOff = defaultDialBackOff
	}
	op := func() error {
		err := p.open(ctx)
		if err == nil || unreachable(err) {
			return err
		}
		return backoff.Permanent(err)
	}
	notify := func(err error, next time.Duration) {
		p.mu.Lock()
		p.dialErr = err
		p.mu.Unlock()
		p.log.Warn("the broker cannot be reached; trying again", "broker", p.brokerAddr(),
			"err", p.red.String(err.Error()), "next_attempt_in", next.Round(time.Millisecond))
	}
	err := backoff.RetryNotify(op, backoff.WithContext(newBackOff(), ctx), notify)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return p.classify(err)
	}
	p.mu.Lock()
	p.dialErr = nil
	p.mu.Unlock()
	return nil
}

// defaultDialBackOff is exponential from 500 ms to 30 s with jitter, and never stops.
func defaultDialBackOff() backoff.BackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 500 * time.Millisecond
	b.MaxInterval = 30 * time.Second
	b.MaxElapsedTime = 0
	return b
}

// open makes one attempt: dial NATS when needed, build the broker sink and the JetStream KV store, and the
// poller. It is all or nothing: on error what it opened is closed again.
func (p *Pipeline) open(ctx context.Context) (err error) {
	cfg := p.cfg
	var (
		conn  *nats.Conn // dialed here, owned by the pipeline
		s     *sink
		store checkpoint.Store
		coord *group.JetStream
		js    jetstream.JetStream
	)
	defer func() {
		if err == nil {
			return
		}
		if s != nil {
			s.pub.Close()
		}
		if store != nil {
			store.Close()
		}
		if conn != nil {
			conn.Close()
		}
	}()
	nc := p.deps.NATSConn
	if cfg.NeedsNATS() && nc == nil {
		if conn, err = publisher.Connect(ctx, NATSConnConfig(cfg), p.log); err != nil {
			return err
		}
		nc = conn
	}
	if cfg.Sink.IsBroker() {
		if s, err = openBrokerSink(ctx, cfg, nc, p.dead, p.log, p.reg); err != nil {
			return err
		}
	}
	if cfg.CheckpointStore == config.StoreJetStreamKV {
		if js, err = jetstream.New(nc); err != nil {
			return err
		}
		if store, err = checkpoint.NewJetStreamKV(ctx, js, checkpoint.KVConfig{Bucket: cfg.KVBucket, Replicas: cfg.Replicas}); err != nil {
			return err
		}
		if cfg.Group != "" {
			// Last of what can fail for want of the broker: the coordinator registers its metrics.
			if coord, err = openGroup(ctx, cfg, js, store, p.StatusAddr(), p.deps.RateWindow, p.log, p.reg); err != nil {
				return err
			}
		}
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	if s == nil {
		s = p.sink
	}
	if store == nil {
		store = p.store
	}
	var pub poller.Publisher = s.pub
	if p.deps.WrapPublisher != nil {
		pub = p.deps.WrapPublisher(pub)
	}
	pc := pollerConfig(cfg, p.deps)
	if coord != nil {
		// The group assigns the tags (the configured ones are added to its set), fences the polls by the
		// membership lease and hears of the tags another member took.
		pc.Tags, pc.Gate, pc.OnConflict = nil, coord.LeaseValid, coord.Lost
	} else if b, ok := store.(*checkpoint.Bolt); ok {
		// The state file is this process's alone (its lock): record the start instants once rather than a
		// state per quiet tag's first poll (see poller.Config.StartLog).
		pc.StartLog = b
	}
	pl, err := poller.New(pc, pub, store, p.log, p.reg)
	if err != nil {
		if s == p.sink {
			s = nil // New opened it; Close releases it
		}
		if store == p.store {
			store = nil
		}
		return err
	}
	p.sink, p.store, p.poller, p.conn, p.coord, p.js = s, store, pl, conn, coord, js
	return nil
}

// brokerAddr names the broker in logs, without credentials.
func (p *Pipeline) brokerAddr() string {
	if p.cfg.NeedsNATS() && p.deps.NATSConn == nil {
		urls, _ := config.ParseNATSURLs(p.cfg.NATSURL)
		for i, u := range urls {
			urls[i] = p.red.URL(u)
		}
		return strings.Join(urls, ",")
	}
	if p.cfg.Sink == config.SinkKafka {
		return strings.Join(p.cfg.KafkaBrokers, ",")
	}
	return ""
}

// IsUnreachable reports whether err means that a broker could not be reached (refused, timed out, unknown host):
// an outage that can end, not a setting to change. tail and the demo exit with their own status for it.
func IsUnreachable(err error) bool {
	return errors.Is(err, config.ErrUnreachable) || errors.Is(err, ErrUnreachable) || unreachable(err)
}

// unreachable reports whether err means the broker cannot be reached right now (so that trying again later can
// succeed), as opposed to a broker that answered and refused: the publisher's classification of its connects and
// constructors, and for the JetStream KV store (on a connection that was up a moment ago) a request that timed out
// or a connection lost meanwhile.
func unreachable(err error) bool {
	return errors.Is(err, publisher.ErrUnreachable) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrDisconnected) ||
		errors.Is(err, context.DeadlineExceeded)
}

// classify turns a failure to build the pipeline into a *config.Error naming the setting when it is a
// configuration problem (a restart cannot fix it), and returns other errors with the secrets redacted.
func (p *Pipeline) classify(err error) error {
	var ce *config.Error
	if errors.As(err, &ce) {
		if ce.Problem == p.red.String(ce.Problem) {
			return err
		}
		return &config.Error{Key: ce.Key, Origin: ce.Origin, Problem: p.red.String(ce.Problem), Err: p.red.Error(ce.Err)}
	}
	key := ""
	switch {
	case errors.Is(err, publisher.ErrNoStream):
		key = "stream"
	case errors.Is(err, publisher.ErrTopicNotFound):
		key = "kafka-topic"
	case errors.Is(err, poller.ErrNoTokens):
		key = "tokens-file"
	case errors.Is(err, poller.ErrInvalidTag), errors.Is(err, group.ErrInvalidTag):
		key = "tags"
	case errors.Is(err, group.ErrConfig):
		key = "group"
	case errors.Is(err, checkpoint.ErrLocked):
		key = "state-dir"
	case errors.Is(err, nats.ErrAuthorization), errors.Is(err, nats.ErrAuthExpired), errors.Is(err, nats.ErrAuthRevoked):
		key = "nats-url"
	case errors.Is(err, publisher.ErrConfig), errors.Is(err, poller.ErrConfig):
		key = "config"
	}
	if key == "" {
		return p.red.Error(err)
	}
	return &config.Error{Key: key, Problem: p.red.String(err.Error()), Err: p.red.Error(err)}
}

// describe is err's text without secrets, for logs and readiness.
func (p *Pipeline) describe(err error) string {
	if err == nil {
		return ""
	}
	return p.red.String(err.Error())
}
