package publisher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tagstream/tagstream/schema"
)

var _ Publisher = (*JetStream)(nil)

// jsErrHeaderExceedsMaximum is the JetStream error code of a message whose headers exceed the limit.
const jsErrHeaderExceedsMaximum jetstream.ErrorCode = 10097

// JetStream publishes events to a JetStream stream with at-least-once delivery: every event is published
// asynchronously with Nats-Msg-Id set to the event id, and Publish waits for every PubAck. Events not
// acknowledged (timeout, disconnect, no stream leader) are re-published with backoff; the stream drops the ones it
// already stored within its duplicate window and says so in the PubAck (counted in duplicates_total).
//
// Durability is the stream's: with the server's default sync_interval a file stream fsyncs every 2 minutes, so
// an acknowledged event can be lost by a power failure of a single server; use replicas or sync_interval: always
// where that matters. JetStream is safe for concurrent use.
type JetStream struct {
	nc         *nats.Conn
	js         jetstream.JetStream
	cfg        JetStreamConfig
	stream     string
	dlStream   string // the stream of DeadLetterSubject, when the publisher dead-letters there
	streams    streamResolver
	deadLetter DeadLetter
	retry      retrier
	metrics    *metricSet
	log        *slog.Logger
}

// NewJetStream returns a JetStream publisher on nc (which the caller owns and closes). It finds or creates the
// stream (see JetStreamConfig.Stream; ProbeJetStream runs the same resolution without creating anything). It
// fails with ErrConfig for an invalid field or JetStream not enabled, with ErrNoStream when no stream covers the
// subjects and CreateStream is off (or a stream overlaps them without covering them), and with ErrUnreachable
// when the server does not answer. A nil logger means slog.Default(); a nil reg registers no metrics.
func NewJetStream(ctx context.Context, nc *nats.Conn, cfg JetStreamConfig, logger *slog.Logger, reg prometheus.Registerer) (*JetStream, error) {
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
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(cfg.MaxPending),
		jetstream.WithPublishAsyncTimeout(cfg.AckTimeout))
	if err != nil {
		return nil, classifyStart(fmt.Errorf("publisher: jetstream: %w", err))
	}
	m := NewMetrics(reg).forPublisher("jetstream")
	p := &JetStream{nc: nc, js: js, cfg: cfg, metrics: m, log: logger,
		streams: streamResolver{js: js, cfg: cfg, log: logger},
		retry:   retrier{cfg: cfg.Retry, metrics: m, log: logger}}
	if err := p.streams.available(ctx); err != nil {
		return nil, classifyStart(err)
	}
	filter := cfg.SubjectPrefix + ".>"
	p.stream, err = p.streams.ensure(ctx, cfg.Stream, DefaultStreamName, filter, "SubjectPrefix")
	if err != nil {
		return nil, classifyStart(err)
	}
	switch {
	case cfg.DeadLetter != nil:
		p.deadLetter = cfg.DeadLetter
	case cfg.DeadLetterSubject != "":
		p.dlStream, err = p.streams.ensure(ctx, "", p.stream+deadLetterStreamSuffix, cfg.DeadLetterSubject, "DeadLetterSubject")
		if err != nil {
			return nil, classifyStart(err)
		}
		p.deadLetter = &jetStreamDeadLetter{nc: nc, js: js, subject: cfg.DeadLetterSubject}
	default:
		p.deadLetter = Discard(logger)
	}
	logger.Info("jetstream publisher ready", "stream", p.stream, "subjects", filter)
	return p, nil
}

// Stream returns the name of the stream the publisher writes to.
func (p *JetStream) Stream() string { return p.stream }

// SubjectPrefix returns the resolved subject prefix.
func (p *JetStream) SubjectPrefix() string { return p.cfg.SubjectPrefix }

// Ready reports whether the publisher can publish now: the connection is up, and the stream (and the
// dead-letter stream) still exists and covers the subjects, which a request to the server confirms. It returns
// nil, or an error wrapping ErrClosed (the connection is closed), ErrUnavailable (disconnected, no answer) or
// ErrNoStream (the stream was deleted or no longer covers the subjects).
func (p *JetStream) Ready(ctx context.Context) error {
	if err := connReady(p.nc); err != nil {
		return err
	}
	if err := p.streams.covers(ctx, p.stream, p.cfg.SubjectPrefix+".>"); err != nil {
		return err
	}
	if p.dlStream != "" {
		return p.streams.covers(ctx, p.dlStream, p.cfg.DeadLetterSubject)
	}
	return nil
}

// jsItem is one event of a Publish call (events[idx]) with its encoded message.
type jsItem struct {
	e   *schema.Event
	msg *nats.Msg
	idx int
}

// Publish publishes every event and waits for every PubAck. It returns nil when all are acknowledged (duplicates
// included) or dead-lettered, ErrClosed (wrapped) when the connection is closed, or a context error (wrapping the
// last broker error) when ctx ends first.
func (p *JetStream) Publish(ctx context.Context, events []*schema.Event) error {
	_, err := p.Deliver(ctx, events)
	return err
}

// Deliver is Publish that also says which events went to the dead-letter destination instead of the stream: the
// indexes into events, ascending (see Deliverer).
func (p *JetStream) Deliver(ctx context.Context, events []*schema.Event) (deadLettered []int, err error) {
	if len(events) == 0 {
		return nil, nil
	}
	start := time.Now()
	pending := make([]jsItem, len(events))
	for i, e := range events {
		pending[i].e, pending[i].idx = e, i // encoded on first send, so the server works on the first events while the rest encode
	}
	arena := getArena(len(events) * 2048)
	var dead letterBatch
	err = p.retry.do(ctx, func(ctx context.Context) error {
		// Letters not delivered by an earlier attempt go first: they are part of this batch's outcome.
		if err := dead.deliver(ctx, p.deadLetter, p.metrics); err != nil {
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		if len(pending) == 0 {
			return nil
		}
		var err error
		pending, err = p.attempt(ctx, pending, arena, &dead)
		return err
	})
	if err != nil {
		// Messages may still be in the client's hands (awaiting an ack or AckTimeout): leave the buffer to GC.
		return nil, err
	}
	putArena(arena) // every message of the batch is resolved: nobody refers to the buffer any more
	p.metrics.seconds.Observe(time.Since(start).Seconds())
	return dead.delivered(), nil
}

// message encodes e as a structured-mode CloudEvent on its tag's subject, with Nats-Msg-Id set to the event id.
func (p *JetStream) message(e *schema.Event, subjects *subjectCache, arena *[]byte) *nats.Msg {
	start := len(*arena)
	*arena = e.AppendJSON(*arena)
	return &nats.Msg{
		Subject: subjects.subject(p.cfg.SubjectPrefix, e.Subject),
		Data:    (*arena)[start:len(*arena):len(*arena)],
		Header:  nats.Header{jetstream.MsgIDHeader: []string{e.ID}},
	}
}

// Outcomes of one item in an attempt.
const (
	itemDone = iota
	itemRetry
	itemDeadLetter
)

// attempt publishes items asynchronously and waits for their acks. It hands the items the server will never
// accept to dead (and delivers them), and returns the items to retry, in their original order.
func (p *JetStream) attempt(ctx context.Context, items []jsItem, arena *[]byte, dead *letterBatch) ([]jsItem, error) {
	if p.nc.IsClosed() {
		return items, permanent(fmt.Errorf("publisher: jetstream: %w", ErrClosed))
	}
	futures := make([]jetstream.PubAckFuture, len(items))
	status := make([]uint8, len(items))
	reasons := make(map[int]string)
	var lastErr error
	// Metrics are summed locally and applied once per batch.
	inFlight, acked, dups := 0, 0, 0
	defer func() {
		p.metrics.inFlight.Sub(float64(inFlight))
		p.metrics.acks.Add(float64(acked))
		p.metrics.published.Add(float64(acked))
		p.metrics.duplicates.Add(float64(dups))
	}()

	var subjects subjectCache
	sent := len(items)
send:
	for i := range items {
		if items[i].msg == nil {
			// One buffer holds the encoded events of the call; a message keeps its slice (an append that
			// moves the buffer leaves the earlier slices intact).
			items[i].msg = p.message(items[i].e, &subjects, arena)
		}
		for {
			f, err := p.js.PublishMsgAsync(items[i].msg)
			if err == nil {
				futures[i] = f
				break
			}
			switch {
			case errors.Is(err, jetstream.ErrTooManyStalledMsgs) && ctx.Err() == nil:
				continue // MaxPending acks were outstanding for the whole stall wait: wait again
			case errors.Is(err, nats.ErrMaxPayload):
				status[i] = itemDeadLetter
				reasons[i] = fmt.Sprintf("message too large: %d bytes > max_payload %d",
					msgSize(items[i].msg), p.nc.MaxPayload())
			case errors.Is(err, nats.ErrConnectionClosed):
				return items, permanent(fmt.Errorf("publisher: jetstream: %w: %w", ErrClosed, err))
			default:
				lastErr = err
				sent = i
				break send
			}
			break
		}
	}
	for i := sent; i < len(items); i++ {
		status[i] = itemRetry
	}
	for _, f := range futures[:sent] {
		if f != nil {
			inFlight++
		}
	}
	p.metrics.inFlight.Add(float64(inFlight))

	for i := range items[:sent] {
		f := futures[i]
		if f == nil {
			continue // dead-lettered before sending
		}
		select {
		case ack := <-f.Ok():
			acked++
			if ack.Duplicate {
				dups++
			}
		case err := <-f.Err():
			if reason, ok := rejectedReason(err); ok {
				status[i] = itemDeadLetter
				reasons[i] = reason
				continue
			}
			lastErr = err
			status[i] = itemRetry
		case <-ctx.Done():
			// Unacknowledged publishes stay with the client until their ack or AckTimeout; the caller
			// re-publishes the batch later and the event ids de-duplicate what was stored meanwhile.
			return items, contextError(ctx, lastErr)
		}
	}

	for i, st := range status {
		if st == itemDeadLetter {
			dead.add(items[i].idx, Letter{Event: items[i].e, Reason: reasons[i], Publisher: "jetstream",
				Size: msgSize(items[i].msg)})
		}
	}
	dlErr := dead.deliver(ctx, p.deadLetter, p.metrics)
	var retry []jsItem
	for i, st := range status {
		if st == itemRetry {
			retry = append(retry, items[i])
		}
	}
	switch {
	case dlErr != nil:
		return retry, fmt.Errorf("%w: %w", ErrUnavailable, dlErr)
	case len(retry) == 0:
		return nil, nil
	case lastErr == nil:
		lastErr = errors.New("no acknowledgement")
	}
	return retry, fmt.Errorf("publisher: jetstream: %d of %d events not acknowledged: %w: %w",
		len(retry), len(items), ErrUnavailable, lastErr)
}

// rejectedReason reports whether a PubAck error means the server will never accept the message.
func rejectedReason(err error) (string, bool) {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case jetstream.JSErrCodeStreamMessageExceedsMaximum, jsErrHeaderExceedsMaximum:
			return fmt.Sprintf("rejected by the stream: %s (error code %d)", apiErr.Description, apiErr.ErrorCode), true
		}
	}
	return "", false
}

// msgSize is the size the server counts against max_payload: data plus encoded headers.
func msgSize(m *nats.Msg) int {
	n := len(m.Data)
	for k, vs := range m.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// Close waits until every asynchronous publish of the publisher has its ack (at most AckTimeout). It does not
// close the connection, which the caller owns.
func (p *JetStream) Close() error {
	if p.nc.IsClosed() {
		return nil
	}
	select {
	case <-p.js.PublishAsyncComplete():
	case <-time.After(p.cfg.AckTimeout):
		return fmt.Errorf("publisher: jetstream close: %d publishes still unacknowledged after %v: %w",
			p.js.PublishAsyncPending(), p.cfg.AckTimeout, ErrUnavailable)
	}
	if err := p.nc.FlushTimeout(p.cfg.AckTimeout); err != nil {
		return fmt.Errorf("publisher: jetstream flush on close: %w", err)
	}
	return nil
}
