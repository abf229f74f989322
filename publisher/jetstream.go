package publisher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tagstream/tagstream/schema"
)

var _ Publisher = (*JetStream)(nil)

// DefaultStreamName is the name of the stream NewJetStream creates when JetStreamConfig.Stream is empty.
const DefaultStreamName = "TAGSTREAM"

// jsErrHeaderExceedsMaximum is the JetStream error code of a message whose headers exceed the limit.
const jsErrHeaderExceedsMaximum jetstream.ErrorCode = 10097

// JetStreamConfig configures the JetStream publisher. The zero value means the documented defaults.
type JetStreamConfig struct {
	// SubjectPrefix is the subject prefix: events of tag t go to SubjectPrefix + "." + EncodeTag(t). Default
	// DefaultSubjectPrefix.
	SubjectPrefix string
	// Stream names the stream to publish into. Empty means: the first existing stream whose subjects cover
	// SubjectPrefix + ".>", or, when none does and CreateStream is set, a new stream named DefaultStreamName.
	Stream string
	// CreateStream creates the stream when no stream covers the subjects (and the dead-letter subject). Off by
	// default: NewJetStream then fails with ErrNoStream.
	CreateStream bool
	// Storage, Replicas and DuplicateWindow apply to a created stream only. Defaults: file storage, 1 replica,
	// a duplicate window of 2 minutes (the span within which a re-published event id is dropped).
	Storage         jetstream.StorageType
	Replicas        int
	DuplicateWindow time.Duration
	// MaxPending bounds the asynchronous publishes waiting for a PubAck, across all concurrent Publish calls;
	// default 4096. It bounds the publisher's memory while the server is slow.
	MaxPending int
	// AckTimeout is how long one PubAck may take before the publish counts as failed and is retried; default 10 s.
	AckTimeout time.Duration
	// DeadLetterSubject, when set, receives (as a wrapper JSON, see AppendLetter, with the reason also in the
	// Tagstream-Dead-Letter-Reason header) the events the server will never accept. A stream must cover it (one
	// named Stream + "_DEADLETTER" is created when CreateStream is set). Empty means DeadLetter, or Discard.
	DeadLetterSubject string
	// DeadLetter overrides DeadLetterSubject with another destination.
	DeadLetter DeadLetter
	// Retry is the backoff between publish attempts; only the events not acknowledged are re-published.
	Retry RetryConfig
}

func (c JetStreamConfig) withDefaults() (JetStreamConfig, error) {
	if c.SubjectPrefix == "" {
		c.SubjectPrefix = DefaultSubjectPrefix
	}
	if !validSubject(c.SubjectPrefix, false) {
		return c, configError("SubjectPrefix", "%q is not a valid NATS subject", c.SubjectPrefix)
	}
	if strings.ContainsAny(c.Stream, " \t\r\n.*>/\\") {
		return c, configError("Stream", "%q is not a valid stream name", c.Stream)
	}
	switch c.Storage {
	case jetstream.FileStorage, jetstream.MemoryStorage:
	default:
		return c, configError("Storage", "unknown storage type %d", c.Storage)
	}
	switch {
	case c.Replicas < 0 || c.Replicas > 5:
		return c, configError("Replicas", "must be in [1, 5], got %d", c.Replicas)
	case c.DuplicateWindow < 0:
		return c, configError("DuplicateWindow", "must not be negative, got %v", c.DuplicateWindow)
	case c.MaxPending < 0:
		return c, configError("MaxPending", "must not be negative, got %d", c.MaxPending)
	case c.AckTimeout < 0:
		return c, configError("AckTimeout", "must not be negative, got %v", c.AckTimeout)
	}
	if c.DeadLetterSubject != "" {
		if !validSubject(c.DeadLetterSubject, false) {
			return c, configError("DeadLetterSubject", "%q is not a valid NATS subject", c.DeadLetterSubject)
		}
		if subjectCovers(c.SubjectPrefix+".>", c.DeadLetterSubject) {
			return c, configError("DeadLetterSubject", "%q lies under SubjectPrefix %q", c.DeadLetterSubject, c.SubjectPrefix)
		}
	}
	if err := c.Retry.validate("Retry"); err != nil {
		return c, err
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = 2 * time.Minute
	}
	if c.MaxPending == 0 {
		c.MaxPending = 4096
	}
	if c.AckTimeout == 0 {
		c.AckTimeout = 10 * time.Second
	}
	c.Retry = c.Retry.withDefaults()
	return c, nil
}

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
	deadLetter DeadLetter
	retry      retrier
	metrics    *metricSet
	log        *slog.Logger
}

// NewJetStream returns a JetStream publisher on nc (which the caller owns and closes). It finds or creates the
// stream (see JetStreamConfig.Stream) and fails with ErrNoStream when no stream covers the subjects and
// CreateStream is off. A nil logger means slog.Default(); a nil reg registers no metrics.
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
		return nil, fmt.Errorf("publisher: jetstream: %w", err)
	}
	m := NewMetrics(reg).forPublisher("jetstream")
	p := &JetStream{nc: nc, js: js, cfg: cfg, metrics: m, log: logger,
		retry: retrier{cfg: cfg.Retry, metrics: m, log: logger}}
	filter := cfg.SubjectPrefix + ".>"
	p.stream, err = p.ensureStream(ctx, cfg.Stream, DefaultStreamName, filter, "SubjectPrefix")
	if err != nil {
		return nil, err
	}
	switch {
	case cfg.DeadLetter != nil:
		p.deadLetter = cfg.DeadLetter
	case cfg.DeadLetterSubject != "":
		if _, err := p.ensureStream(ctx, "", p.stream+"_DEADLETTER", cfg.DeadLetterSubject, "DeadLetterSubject"); err != nil {
			return nil, err
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

// ensureStream returns the stream that covers filter: the named one, else the first listed one, else a created
// one named createName (when CreateStream is on). field names the config field in errors.
func (p *JetStream) ensureStream(ctx context.Context, name, createName, filter, field string) (string, error) {
	covers := func(s jetstream.Stream) bool {
		for _, subj := range s.CachedInfo().Config.Subjects {
			if subjectCovers(subj, filter) {
				return true
			}
		}
		return false
	}
	if name != "" {
		s, err := p.js.Stream(ctx, name)
		switch {
		case err == nil:
			if !covers(s) {
				return "", fmt.Errorf("%w: stream %q listens on %q, which does not cover %q (%s)",
					ErrNoStream, name, s.CachedInfo().Config.Subjects, filter, field)
			}
			return name, nil
		case !errors.Is(err, jetstream.ErrStreamNotFound):
			return "", fmt.Errorf("publisher: look up stream %q: %w", name, err)
		case !p.cfg.CreateStream:
			return "", fmt.Errorf("%w: stream %q does not exist and CreateStream is off", ErrNoStream, name)
		}
		return p.createStream(ctx, name, filter)
	}
	names := p.js.StreamNames(ctx, jetstream.WithStreamListSubject(filter))
	var found []string
	for n := range names.Name() {
		found = append(found, n)
	}
	if err := names.Err(); err != nil && !errors.Is(err, jetstream.ErrEndOfData) {
		return "", fmt.Errorf("publisher: list streams for %q: %w", filter, err)
	}
	for _, n := range found {
		s, err := p.js.Stream(ctx, n)
		if err != nil {
			return "", fmt.Errorf("publisher: look up stream %q: %w", n, err)
		}
		if covers(s) {
			return n, nil
		}
	}
	if !p.cfg.CreateStream {
		if len(found) > 0 {
			return "", fmt.Errorf("%w: streams %q overlap %q but none covers all of it (%s), and CreateStream is off",
				ErrNoStream, found, filter, field)
		}
		return "", fmt.Errorf("%w: no stream listens on %q (%s) and CreateStream is off", ErrNoStream, filter, field)
	}
	if len(found) > 0 {
		return "", fmt.Errorf("%w: streams %q overlap %q without covering it; a new stream would overlap them (%s)",
			ErrNoStream, found, filter, field)
	}
	return p.createStream(ctx, createName, filter)
}

func (p *JetStream) createStream(ctx context.Context, name, filter string) (string, error) {
	_, err := p.js.CreateStream(ctx, jetstream.StreamConfig{
		Name:       name,
		Subjects:   []string{filter},
		Storage:    p.cfg.Storage,
		Replicas:   p.cfg.Replicas,
		Duplicates: p.cfg.DuplicateWindow,
	})
	if err != nil {
		return "", fmt.Errorf("publisher: create stream %q on %q: %w", name, filter, err)
	}
	p.log.Info("jetstream stream created", "stream", name, "subjects", filter)
	return name, nil
}

// jsItem is one event of a Publish call with its encoded message.
type jsItem struct {
	e   *schema.Event
	msg *nats.Msg
}

// Publish publishes every event and waits for every PubAck. It returns nil when all are acknowledged (duplicates
// included) or dead-lettered, ErrClosed (wrapped) when the connection is closed, or a context error (wrapping the
// last broker error) when ctx ends first.
func (p *JetStream) Publish(ctx context.Context, events []*schema.Event) error {
	if len(events) == 0 {
		return nil
	}
	start := time.Now()
	pending := make([]jsItem, len(events))
	for i, e := range events {
		pending[i].e = e // encoded on first send, so the server works on the first events while the rest encode
	}
	arena := getArena(len(events) * 2048)
	err := p.retry.do(ctx, func(ctx context.Context) error {
		var err error
		pending, err = p.attempt(ctx, pending, arena)
		return err
	})
	if err != nil {
		// Messages may still be in the client's hands (awaiting an ack or AckTimeout): leave the buffer to GC.
		return err
	}
	putArena(arena) // every message of the batch is resolved: nobody refers to the buffer any more
	p.metrics.seconds.Observe(time.Since(start).Seconds())
	return nil
}

// arenas recycles the buffers that hold the encoded events of a Publish call.
var arenas sync.Pool

func getArena(size int) *[]byte {
	if b, ok := arenas.Get().(*[]byte); ok && cap(*b) >= size {
		*b = (*b)[:0]
		return b
	}
	b := make([]byte, 0, max(size, 64<<10))
	return &b
}

func putArena(b *[]byte) {
	if cap(*b) <= 4<<20 {
		arenas.Put(b)
	}
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

// attempt publishes items asynchronously and waits for their acks. It returns the items to retry, in their
// original order.
func (p *JetStream) attempt(ctx context.Context, items []jsItem, arena *[]byte) ([]jsItem, error) {
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

	var letters []Letter
	for i, st := range status {
		if st == itemDeadLetter {
			letters = append(letters, Letter{Event: items[i].e, Reason: reasons[i], Publisher: "jetstream",
				Size: msgSize(items[i].msg)})
		}
	}
	dlErr := deliverDeadLetters(ctx, p.deadLetter, p.metrics, letters)
	var retry []jsItem
	for i, st := range status {
		if st == itemRetry || st == itemDeadLetter && dlErr != nil {
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

// jetStreamDeadLetter publishes wrapper letters to a JetStream subject and waits for each PubAck.
type jetStreamDeadLetter struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	subject string
}

// DeadLetterReasonHeader is the NATS header holding the reason of a dead letter.
const DeadLetterReasonHeader = "Tagstream-Dead-Letter-Reason"

func (d *jetStreamDeadLetter) DeadLetter(ctx context.Context, letters []Letter) error {
	limit := int(d.nc.MaxPayload()) - 1024 // room for the headers
	now := time.Now()
	for _, l := range letters {
		reason := l.Reason
		if len(reason) > 512 {
			reason = reason[:512]
		}
		msg := &nats.Msg{
			Subject: d.subject,
			Data:    AppendLetter(nil, l, l.Event.AppendJSON(nil), limit, now),
			Header: nats.Header{
				jetstream.MsgIDHeader:  []string{"dead-letter:" + l.Event.ID},
				DeadLetterReasonHeader: []string{strings.ReplaceAll(reason, "\n", " ")},
				"Content-Type":         []string{"application/json"},
			},
		}
		if _, err := d.js.PublishMsg(ctx, msg); err != nil {
			return fmt.Errorf("publisher: jetstream dead letter to %q: %w", d.subject, err)
		}
	}
	return nil
}
