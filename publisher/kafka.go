package publisher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/tagstream/tagstream/schema"
)

var _ Publisher = (*Kafka)(nil)

// Kafka publishes events to a Kafka topic with segmentio/kafka-go: acks from all in-sync replicas
// (RequiredAcks=RequireAll), the tag as key (murmur2 partitioning, as the Java client, so a tag's events stay in
// one partition and in order), CloudEvents Kafka binding headers, and one WriteMessages call per Publish (one
// produce request per partition). Messages not acknowledged are written again with backoff until ctx ends;
// kafka-go has no idempotent producer, so a retry can duplicate a message: consumers de-duplicate on ce_id (the
// deterministic event id). Kafka is safe for concurrent use; concurrent Publish calls share produce requests.
type Kafka struct {
	cfg        KafkaConfig
	w          *kafka.Writer
	transport  *kafka.Transport
	admin      *kafkaAdmin
	deadLetter DeadLetter
	dlWriter   *kafka.Writer
	retry      retrier
	metrics    *metricSet
	log        *slog.Logger
	closed     atomic.Bool
}

// NewKafka checks the configuration, connects, checks that Topic (and DeadLetterTopic) exists (creating it when
// CreateTopic is set) and returns the publisher. It fails with ErrConfig for an invalid field or settings the
// broker refused (SASL credentials, TLS certificates), with ErrTopicNotFound when the topic is missing and
// creation is off, and with ErrUnreachable when no broker answers before ctx ends. ProbeKafka runs the same
// checks without creating anything. A nil logger means slog.Default(); a nil reg registers no metrics.
func NewKafka(ctx context.Context, cfg KafkaConfig, logger *slog.Logger, reg prometheus.Registerer) (*Kafka, error) {
	cfg, comp, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	d, err := cfg.dial()
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	transport := d.transport()
	m := NewMetrics(reg).forPublisher("kafka")
	p := &Kafka{
		cfg:       cfg,
		transport: transport,
		admin:     newKafkaAdmin(cfg, transport, logger),
		metrics:   m,
		log:       logger,
		retry:     retrier{cfg: cfg.Retry, metrics: m, log: logger},
	}
	addr := kafka.TCP(cfg.Brokers...)
	p.w = p.newWriter(addr, cfg.Topic, comp)
	if err := p.admin.ensureTopic(ctx, cfg.Topic, "Topic"); err != nil {
		transport.CloseIdleConnections()
		return nil, classifyStart(err)
	}
	switch {
	case cfg.DeadLetter != nil:
		p.deadLetter = cfg.DeadLetter
	case cfg.DeadLetterTopic != "":
		if err := p.admin.ensureTopic(ctx, cfg.DeadLetterTopic, "DeadLetterTopic"); err != nil {
			transport.CloseIdleConnections()
			return nil, classifyStart(err)
		}
		p.dlWriter = p.newWriter(addr, cfg.DeadLetterTopic, comp)
		p.deadLetter = &kafkaDeadLetter{w: p.dlWriter, limit: cfg.MaxMessageBytes - 2048}
	default:
		p.deadLetter = Discard(logger)
	}
	logger.Info("kafka publisher ready", "topic", cfg.Topic, "brokers", strings.Join(cfg.Brokers, ","))
	return p, nil
}

func (p *Kafka) newWriter(addr net.Addr, topic string, comp kafka.Compression) *kafka.Writer {
	return &kafka.Writer{
		Addr:            addr,
		Topic:           topic,
		Balancer:        &kafka.Murmur2Balancer{},
		MaxAttempts:     p.cfg.MaxAttempts,
		WriteBackoffMin: 50 * time.Millisecond,
		WriteBackoffMax: time.Second,
		BatchSize:       p.cfg.BatchSize,
		BatchBytes:      int64(p.cfg.MaxMessageBytes) + 4096,
		BatchTimeout:    p.cfg.BatchTimeout,
		ReadTimeout:     p.cfg.WriteTimeout,
		WriteTimeout:    p.cfg.WriteTimeout,
		RequiredAcks:    kafka.RequireAll,
		Compression:     comp,
		Transport:       p.transport,
		ErrorLogger:     kafka.LoggerFunc(func(msg string, args ...any) { p.log.Debug(fmt.Sprintf(msg, args...), "component", "kafka-go") }),
	}
}

// Topic returns the topic the publisher writes to.
func (p *Kafka) Topic() string { return p.cfg.Topic }

// Ready reports whether the publisher can publish now: the topic exists and the leader of each of its partitions
// answers a request. It reuses the publisher's connections (and the TLS and SASL settings built once by
// NewKafka). It returns nil, or an error wrapping ErrTopicNotFound (the topic was deleted), ErrUnavailable (a
// broker does not answer), ErrClosed, or the context's error.
func (p *Kafka) Ready(ctx context.Context) error {
	if p.closed.Load() {
		return fmt.Errorf("publisher: kafka: %w", ErrClosed)
	}
	return p.admin.topicReady(ctx, p.cfg.Topic)
}

// Publish writes every event and waits until all in-sync replicas acknowledged them. Events larger than
// MaxMessageBytes, or refused by the broker as too large or invalid, go to the dead-letter destination. Other
// failures (broker unreachable, leader moving, timeouts) are retried with backoff until ctx ends, writing only
// the messages not acknowledged yet. It returns ErrClosed (wrapped) after Close.
func (p *Kafka) Publish(ctx context.Context, events []*schema.Event) error {
	_, err := p.Deliver(ctx, events)
	return err
}

// Deliver is Publish that also says which events went to the dead-letter destination instead of the topic: the
// indexes into events, ascending (see Deliverer).
func (p *Kafka) Deliver(ctx context.Context, events []*schema.Event) (deadLettered []int, err error) {
	if len(events) == 0 {
		return nil, nil
	}
	start := time.Now()
	msgs := make([]kafka.Message, len(events))
	hdrs := make([]kafka.Header, 7*len(events))
	arena := getArena(len(events) * 2560) // an append that moves it leaves the earlier slices intact
	var dead letterBatch
	pending := make([]int, 0, len(events))
	for i, e := range events {
		p.fillMessage(&msgs[i], hdrs[7*i:7*i:7*i+7], e, arena)
		if n := messageSize(&msgs[i]); n > p.cfg.MaxMessageBytes {
			dead.add(i, Letter{Event: e, Publisher: "kafka", Size: n,
				Reason: fmt.Sprintf("message too large: %d bytes > MaxMessageBytes %d", n, p.cfg.MaxMessageBytes)})
			continue
		}
		pending = append(pending, i)
	}
	isolate := make(map[int]bool) // messages the broker refused in a batch: written alone to find the culprit
	err = p.retry.do(ctx, func(ctx context.Context) error {
		// Letters not delivered by an earlier attempt go first: they are part of this batch's outcome.
		if err := dead.deliver(ctx, p.deadLetter, p.metrics); err != nil {
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		for {
			var (
				err      error
				retryNow bool
			)
			pending, retryNow, err = p.attempt(ctx, events, msgs, pending, isolate, &dead)
			if dlErr := dead.deliver(ctx, p.deadLetter, p.metrics); dlErr != nil {
				return fmt.Errorf("%w: %w", ErrUnavailable, dlErr)
			}
			if err == nil || !retryNow {
				return err
			}
		}
	})
	if err != nil {
		// kafka-go may still hold the messages of a write cut short by ctx: leave the buffer to GC.
		return nil, err
	}
	putArena(arena) // every write returned successfully: kafka-go holds no message any more
	p.metrics.seconds.Observe(time.Since(start).Seconds())
	return dead.delivered(), nil
}

// attempt writes the pending messages: the ones not under isolation in one WriteMessages call, then each isolated
// one alone. It adds the messages the broker will never accept to dead, and returns the indexes still pending and
// whether they should be written again at once (isolation just started) rather than after a backoff.
func (p *Kafka) attempt(ctx context.Context, events []*schema.Event, msgs []kafka.Message, pending []int, isolate map[int]bool, dead *letterBatch) (remaining []int, retryNow bool, err error) {
	if len(pending) == 0 {
		return nil, false, nil
	}
	var group, alone []int
	for _, i := range pending {
		if isolate[i] {
			alone = append(alone, i)
		} else {
			group = append(group, i)
		}
	}
	failed := make(map[int]error)
	write := func(idx []int) error {
		batch := make([]kafka.Message, len(idx))
		for j, i := range idx {
			batch[j] = msgs[i]
		}
		p.metrics.inFlight.Add(float64(len(idx)))
		werr := p.w.WriteMessages(ctx, batch...)
		p.metrics.inFlight.Sub(float64(len(idx)))
		if werr == nil {
			p.acked(len(idx))
			return nil
		}
		var wes kafka.WriteErrors
		var tooLarge kafka.MessageTooLargeError
		switch {
		case errors.As(werr, &wes) && len(wes) == len(idx):
			ok := 0
			for j, e := range wes {
				if e == nil {
					ok++
					continue
				}
				failed[idx[j]] = e
			}
			p.acked(ok)
			return nil
		case errors.As(werr, &tooLarge):
			for _, i := range idx {
				failed[i] = kafka.MessageSizeTooLarge
			}
			return nil
		case errors.Is(werr, io.ErrClosedPipe):
			return permanent(fmt.Errorf("publisher: kafka: %w", ErrClosed))
		default:
			for _, i := range idx {
				failed[i] = werr
			}
			return nil
		}
	}
	if len(group) > 0 {
		if err := write(group); err != nil {
			return pending, false, err
		}
	}
	for _, i := range alone {
		if err := write([]int{i}); err != nil {
			return pending, false, err
		}
	}
	var lastErr error
	for _, i := range pending {
		ferr, ok := failed[i]
		if !ok {
			continue
		}
		if rejected(ferr) {
			if isolate[i] || len(pending) == 1 {
				dead.add(i, Letter{Event: events[i], Publisher: "kafka", Size: messageSize(&msgs[i]),
					Reason: "rejected by the broker: " + ferr.Error()})
				continue
			}
			isolate[i] = true
			retryNow = true
		}
		lastErr = ferr
		remaining = append(remaining, i)
	}
	if len(remaining) == 0 {
		return nil, false, nil
	}
	return remaining, retryNow, fmt.Errorf("publisher: kafka: %d of %d events not acknowledged: %w: %w",
		len(remaining), len(pending), ErrUnavailable, lastErr)
}

// acked counts n acknowledged events.
func (p *Kafka) acked(n int) {
	p.metrics.acks.Add(float64(n))
	p.metrics.published.Add(float64(n))
}

// rejected reports whether err means the broker will never accept the message (or the batch that held it).
func rejected(err error) bool {
	var wes kafka.WriteErrors
	if errors.As(err, &wes) {
		for _, e := range wes {
			if e != nil && !rejected(e) {
				return false
			}
		}
		return wes.Count() > 0
	}
	return errors.Is(err, kafka.MessageSizeTooLarge) || errors.Is(err, kafka.InvalidRecord) ||
		errors.Is(err, kafka.RecordListTooLarge) || errors.Is(err, kafka.InvalidMessage)
}

// Close flushes the buffered messages and closes the writers.
func (p *Kafka) Close() error {
	p.closed.Store(true)
	err := p.w.Close()
	if p.dlWriter != nil {
		if derr := p.dlWriter.Close(); err == nil {
			err = derr
		}
	}
	p.transport.CloseIdleConnections()
	if err != nil {
		return fmt.Errorf("publisher: kafka close: %w", err)
	}
	return nil
}
