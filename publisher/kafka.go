package publisher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/tagstream/tagstream/schema"
)

var _ Publisher = (*Kafka)(nil)

// KeyMode selects the Kafka message key.
type KeyMode int

const (
	// KeyTag keys messages by tag (the default): all events of a tag land in one partition, in order.
	KeyTag KeyMode = iota
	// KeyMediaID keys messages by media id (the "id" of the media, taken from the event): events spread over
	// partitions, and compaction keeps the last version of each media; order per tag is lost.
	KeyMediaID
)

// ContentMode selects the CloudEvents Kafka binding content mode.
type ContentMode int

const (
	// ContentBinary (the default) puts the event attributes in ce_* headers and the data member alone in the
	// value, with content-type: application/json.
	ContentBinary ContentMode = iota
	// ContentStructured puts the whole structured-mode CloudEvent JSON in the value, with content-type:
	// application/cloudevents+json (the ce_* headers are set too, so consumers can filter without parsing).
	ContentStructured
)

// SASLConfig configures SASL authentication to Kafka. The zero value means none.
type SASLConfig struct {
	// Mechanism is "PLAIN", "SCRAM-SHA-256" or "SCRAM-SHA-512"; empty means no SASL.
	Mechanism string
	// Username and Password are the credentials. They never appear in errors or logs.
	Username, Password string
}

func (c SASLConfig) mechanism() (sasl.Mechanism, error) {
	if c.Mechanism == "" {
		if c.Username != "" || c.Password != "" {
			return nil, configError("SASL.Mechanism", "credentials given without a mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)")
		}
		return nil, nil
	}
	if c.Username == "" {
		return nil, configError("SASL.Username", "required with mechanism %s", c.Mechanism)
	}
	switch strings.ToUpper(c.Mechanism) {
	case "PLAIN":
		return plain.Mechanism{Username: c.Username, Password: c.Password}, nil
	case "SCRAM-SHA-256":
		m, err := scram.Mechanism(scram.SHA256, c.Username, c.Password)
		if err != nil {
			return nil, configError("SASL", "scram: %v", err)
		}
		return m, nil
	case "SCRAM-SHA-512":
		m, err := scram.Mechanism(scram.SHA512, c.Username, c.Password)
		if err != nil {
			return nil, configError("SASL", "scram: %v", err)
		}
		return m, nil
	}
	return nil, configError("SASL.Mechanism", "unknown mechanism %q (want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)", c.Mechanism)
}

// KafkaConfig configures the Kafka publisher. Brokers and Topic are required; every other zero value means the
// documented default.
type KafkaConfig struct {
	// Brokers are the bootstrap addresses (host:port).
	Brokers []string
	// Topic receives the events.
	Topic string
	// Key selects the message key; default KeyTag.
	Key KeyMode
	// ContentMode selects binary (default) or structured CloudEvents content mode.
	ContentMode ContentMode
	// Compression is "none" (default, also ""), "gzip", "snappy", "lz4" or "zstd".
	Compression string
	// BatchSize is the most messages per partition in one produce request; default 1000. Keep it at least the
	// largest Publish batch so that a batch is one request per partition.
	BatchSize int
	// BatchTimeout is how long a partly filled batch waits for more messages before it is sent; default 250 µs
	// (kafka-go's own default, 1 s, would delay every Publish by a second).
	BatchTimeout time.Duration
	// MaxMessageBytes is the largest message accepted (key, value and headers); larger events are dead-lettered
	// without a round trip. Default 1 MiB (the broker's message.max.bytes default is 1 MiB + 12 bytes). A
	// topic configured with a smaller max.message.bytes is handled too: the broker's refusal dead-letters the
	// event.
	MaxMessageBytes int
	// WriteTimeout bounds one produce round trip; default 10 s.
	WriteTimeout time.Duration
	// MaxAttempts is kafka-go's own retry count within one publish attempt; default 3. The outer retry (Retry)
	// continues until the Publish context ends.
	MaxAttempts int
	// CreateTopic creates Topic (and DeadLetterTopic) when missing, with Partitions partitions (default 6) and
	// ReplicationFactor replicas (default 1; use 3 with min.insync.replicas 2 for durability). Off by default:
	// NewKafka then fails with ErrTopicNotFound.
	CreateTopic       bool
	Partitions        int
	ReplicationFactor int
	// ClientID is the Kafka client id; default "tagstream".
	ClientID string
	// DialTimeout bounds a TCP/TLS connect; default 5 s.
	DialTimeout time.Duration
	// TLS configures TLS (CA, client certificate).
	TLS TLSConfig
	// SASL configures SASL PLAIN or SCRAM authentication.
	SASL SASLConfig
	// DeadLetterTopic, when set, receives the events the broker will never accept, as a wrapper JSON value (see
	// AppendLetter) with the reason also in the tagstream_dead_letter_reason header. Empty means DeadLetter, or
	// Discard when that is nil too.
	DeadLetterTopic string
	// DeadLetter overrides DeadLetterTopic with another destination.
	DeadLetter DeadLetter
	// Retry is the backoff between publish attempts; only the events not acknowledged are written again.
	Retry RetryConfig
}

func (c KafkaConfig) withDefaults() (KafkaConfig, kafka.Compression, error) {
	var comp kafka.Compression
	if len(c.Brokers) == 0 {
		return c, comp, configError("Brokers", "at least one broker address is required")
	}
	for i, b := range c.Brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			return c, comp, configError(fmt.Sprintf("Brokers[%d]", i), "%q is not host:port", b)
		}
	}
	if err := validTopic(c.Topic); err != nil {
		return c, comp, configError("Topic", "%v", err)
	}
	if c.DeadLetterTopic != "" {
		if err := validTopic(c.DeadLetterTopic); err != nil {
			return c, comp, configError("DeadLetterTopic", "%v", err)
		}
		if c.DeadLetterTopic == c.Topic {
			return c, comp, configError("DeadLetterTopic", "must differ from Topic")
		}
	}
	switch c.Key {
	case KeyTag, KeyMediaID:
	default:
		return c, comp, configError("Key", "unknown key mode %d", c.Key)
	}
	switch c.ContentMode {
	case ContentBinary, ContentStructured:
	default:
		return c, comp, configError("ContentMode", "unknown content mode %d", c.ContentMode)
	}
	switch strings.ToLower(c.Compression) {
	case "", "none":
	case "gzip":
		comp = kafka.Gzip
	case "snappy":
		comp = kafka.Snappy
	case "lz4":
		comp = kafka.Lz4
	case "zstd":
		comp = kafka.Zstd
	default:
		return c, comp, configError("Compression", "unknown codec %q (want none, gzip, snappy, lz4 or zstd)", c.Compression)
	}
	switch {
	case c.BatchSize < 0:
		return c, comp, configError("BatchSize", "must not be negative, got %d", c.BatchSize)
	case c.BatchTimeout < 0:
		return c, comp, configError("BatchTimeout", "must not be negative, got %v", c.BatchTimeout)
	case c.MaxMessageBytes < 0:
		return c, comp, configError("MaxMessageBytes", "must not be negative, got %d", c.MaxMessageBytes)
	case c.WriteTimeout < 0:
		return c, comp, configError("WriteTimeout", "must not be negative, got %v", c.WriteTimeout)
	case c.MaxAttempts < 0:
		return c, comp, configError("MaxAttempts", "must not be negative, got %d", c.MaxAttempts)
	case c.Partitions < 0:
		return c, comp, configError("Partitions", "must not be negative, got %d", c.Partitions)
	case c.ReplicationFactor < 0:
		return c, comp, configError("ReplicationFactor", "must not be negative, got %d", c.ReplicationFactor)
	case c.DialTimeout < 0:
		return c, comp, configError("DialTimeout", "must not be negative, got %v", c.DialTimeout)
	}
	if err := c.Retry.validate("Retry"); err != nil {
		return c, comp, err
	}
	if c.BatchSize == 0 {
		c.BatchSize = 1000
	}
	if c.BatchTimeout == 0 {
		c.BatchTimeout = 250 * time.Microsecond
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = 1 << 20
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 3
	}
	if c.Partitions == 0 {
		c.Partitions = 6
	}
	if c.ReplicationFactor == 0 {
		c.ReplicationFactor = 1
	}
	if c.ClientID == "" {
		c.ClientID = "tagstream"
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 5 * time.Second
	}
	c.Retry = c.Retry.withDefaults()
	return c, comp, nil
}

// validTopic applies Kafka's topic name rules.
func validTopic(t string) error {
	if t == "" {
		return errors.New("required")
	}
	if len(t) > 249 || t == "." || t == ".." {
		return fmt.Errorf("%q is not a valid topic name", t)
	}
	for _, r := range t {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("%q holds %q; topic names use [a-zA-Z0-9._-]", t, r)
		}
	}
	return nil
}

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
	client     *kafka.Client
	deadLetter DeadLetter
	dlWriter   *kafka.Writer
	retry      retrier
	metrics    *metricSet
	log        *slog.Logger
}

// NewKafka checks the configuration, connects, checks that Topic (and DeadLetterTopic) exists (creating it when
// CreateTopic is set) and returns the publisher. It fails with ErrTopicNotFound when the topic is missing and
// creation is off, and with ErrConfig for an invalid field. A nil logger means slog.Default(); a nil reg
// registers no metrics.
func NewKafka(ctx context.Context, cfg KafkaConfig, logger *slog.Logger, reg prometheus.Registerer) (*Kafka, error) {
	cfg, comp, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	mech, err := cfg.SASL.mechanism()
	if err != nil {
		return nil, err
	}
	tlsCfg, err := cfg.TLS.build("TLS")
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	transport := &kafka.Transport{
		DialTimeout: cfg.DialTimeout,
		ClientID:    cfg.ClientID,
		TLS:         tlsCfg,
		SASL:        mech,
		MetadataTTL: 30 * time.Second,
	}
	addr := kafka.TCP(cfg.Brokers...)
	m := NewMetrics(reg).forPublisher("kafka")
	p := &Kafka{
		cfg:       cfg,
		transport: transport,
		client:    &kafka.Client{Addr: addr, Transport: transport, Timeout: cfg.WriteTimeout},
		metrics:   m,
		log:       logger,
		retry:     retrier{cfg: cfg.Retry, metrics: m, log: logger},
	}
	p.w = p.newWriter(addr, cfg.Topic, comp)
	if err := p.ensureTopic(ctx, cfg.Topic, "Topic"); err != nil {
		transport.CloseIdleConnections()
		return nil, err
	}
	switch {
	case cfg.DeadLetter != nil:
		p.deadLetter = cfg.DeadLetter
	case cfg.DeadLetterTopic != "":
		if err := p.ensureTopic(ctx, cfg.DeadLetterTopic, "DeadLetterTopic"); err != nil {
			transport.CloseIdleConnections()
			return nil, err
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

// ensureTopic checks the topic with a metadata request and creates it when allowed.
func (p *Kafka) ensureTopic(ctx context.Context, topic, field string) error {
	exists, err := p.topicExists(ctx, topic)
	if err != nil {
		return err
	}
	if exists {
		return nil
	}
	if !p.cfg.CreateTopic {
		return fmt.Errorf("%w: %q (%s) and CreateTopic is off", ErrTopicNotFound, topic, field)
	}
	res, err := p.client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: topic, NumPartitions: p.cfg.Partitions, ReplicationFactor: p.cfg.ReplicationFactor,
	}}})
	if err != nil {
		return fmt.Errorf("publisher: create kafka topic %q: %w", topic, err)
	}
	if err := res.Errors[topic]; err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		return fmt.Errorf("publisher: create kafka topic %q (%d partitions, replication %d): %w",
			topic, p.cfg.Partitions, p.cfg.ReplicationFactor, err)
	}
	p.log.Info("kafka topic created", "topic", topic, "partitions", p.cfg.Partitions,
		"replication_factor", p.cfg.ReplicationFactor)
	// Wait until the metadata shows the topic with leaders, so the first Publish does not race the creation.
	for {
		exists, err := p.topicExists(ctx, topic)
		if err == nil && exists {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("publisher: wait for kafka topic %q: %w", topic, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// topicExists reports whether metadata lists topic with every partition led.
func (p *Kafka) topicExists(ctx context.Context, topic string) (bool, error) {
	md, err := p.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return false, fmt.Errorf("publisher: kafka metadata for %q: %w: %w", topic, ErrUnavailable, err)
	}
	for _, t := range md.Topics {
		if t.Name != topic {
			continue
		}
		if t.Error != nil {
			if errors.Is(t.Error, kafka.UnknownTopicOrPartition) {
				return false, nil
			}
			return false, fmt.Errorf("publisher: kafka metadata for %q: %w", topic, t.Error)
		}
		if len(t.Partitions) == 0 {
			return false, nil
		}
		for _, pt := range t.Partitions {
			if pt.Error != nil || pt.Leader.ID < 0 {
				return false, nil
			}
		}
		return true, nil
	}
	return false, nil
}

// Topic returns the topic the publisher writes to.
func (p *Kafka) Topic() string { return p.cfg.Topic }

// Kafka binding header names.
const (
	HeaderSpecVersion      = "ce_specversion"
	HeaderID               = "ce_id"
	HeaderType             = "ce_type"
	HeaderSource           = "ce_source"
	HeaderTime             = "ce_time"
	HeaderSubject          = "ce_subject"
	HeaderContentType      = "content-type"
	HeaderDeadLetterReason = "tagstream_dead_letter_reason"
)

// Message returns the Kafka message of e as Publish writes it (key, value and headers per the configuration).
func (p *Kafka) Message(e *schema.Event) kafka.Message {
	var msg kafka.Message
	var arena []byte
	p.fillMessage(&msg, make([]kafka.Header, 0, 7), e, &arena)
	return msg
}

// fillMessage builds msg from e, using hdr (len 0, cap >= 7) for the headers and appending every byte slice
// (key, header values, value) to *arena, so that a batch costs a few allocations instead of ten per event.
func (p *Kafka) fillMessage(msg *kafka.Message, hdr []kafka.Header, e *schema.Event, arena *[]byte) {
	add := func(s string) []byte {
		start := len(*arena)
		*arena = append(*arena, s...)
		return (*arena)[start:len(*arena):len(*arena)]
	}
	switch p.cfg.Key {
	case KeyMediaID:
		if e.Data != nil && e.Data.MediaID != "" {
			msg.Key = add(e.Data.MediaID)
		} else {
			msg.Key = add(e.ID)
		}
	default:
		msg.Key = add(e.Subject)
	}
	spec := e.SpecVersion
	if spec == "" {
		spec = "1.0"
	}
	hdr = append(hdr,
		kafka.Header{Key: HeaderSpecVersion, Value: add(spec)},
		kafka.Header{Key: HeaderID, Value: add(e.ID)},
		kafka.Header{Key: HeaderType, Value: add(e.Type)},
		kafka.Header{Key: HeaderSource, Value: add(e.Source)},
	)
	start := len(*arena)
	*arena = e.Time.UTC().AppendFormat(*arena, time.RFC3339Nano)
	hdr = append(hdr,
		kafka.Header{Key: HeaderTime, Value: (*arena)[start:len(*arena):len(*arena)]},
		kafka.Header{Key: HeaderSubject, Value: add(e.Subject)},
	)
	start = len(*arena)
	if p.cfg.ContentMode == ContentStructured {
		hdr = append(hdr, kafka.Header{Key: HeaderContentType, Value: contentTypeCloudEvents})
		*arena = e.AppendJSON(*arena)
	} else {
		ct := contentTypeJSON
		if e.DataContentType != "" && e.DataContentType != "application/json" {
			ct = add(e.DataContentType)
		}
		hdr = append(hdr, kafka.Header{Key: HeaderContentType, Value: ct})
		*arena = e.AppendDataJSON(*arena)
	}
	msg.Value = (*arena)[start:len(*arena):len(*arena)]
	msg.Headers = hdr
}

// Shared read-only header values.
var (
	contentTypeJSON        = []byte("application/json")
	contentTypeCloudEvents = []byte("application/cloudevents+json")
)

// messageSize is an upper bound of the size kafka-go and the broker count for msg.
func messageSize(msg *kafka.Message) int {
	n := 64 + len(msg.Key) + len(msg.Value)
	for _, h := range msg.Headers {
		n += 10 + len(h.Key) + len(h.Value)
	}
	return n
}

// Publish writes every event and waits until all in-sync replicas acknowledged them. Events larger than
// MaxMessageBytes, or refused by the broker as too large or invalid, go to the dead-letter destination. Other
// failures (broker unreachable, leader moving, timeouts) are retried with backoff until ctx ends, writing only
// the messages not acknowledged yet. It returns ErrClosed (wrapped) after Close.
func (p *Kafka) Publish(ctx context.Context, events []*schema.Event) error {
	if len(events) == 0 {
		return nil
	}
	start := time.Now()
	msgs := make([]kafka.Message, len(events))
	hdrs := make([]kafka.Header, 7*len(events))
	arena := getArena(len(events) * 2560) // an append that moves it leaves the earlier slices intact
	var letters []Letter
	pending := make([]int, 0, len(events))
	for i, e := range events {
		p.fillMessage(&msgs[i], hdrs[7*i:7*i:7*i+7], e, arena)
		if n := messageSize(&msgs[i]); n > p.cfg.MaxMessageBytes {
			letters = append(letters, Letter{Event: e, Publisher: "kafka", Size: n,
				Reason: fmt.Sprintf("message too large: %d bytes > MaxMessageBytes %d", n, p.cfg.MaxMessageBytes)})
			continue
		}
		pending = append(pending, i)
	}
	isolate := make(map[int]bool) // messages the broker refused in a batch: written alone to find the culprit
	err := p.retry.do(ctx, func(ctx context.Context) error {
		if err := deliverDeadLetters(ctx, p.deadLetter, p.metrics, letters); err != nil {
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		letters = nil
		for {
			var (
				err       error
				retryNow  bool
				remaining []int
			)
			remaining, letters, retryNow, err = p.attempt(ctx, events, msgs, pending, isolate)
			pending = remaining
			if len(letters) > 0 {
				if dlErr := deliverDeadLetters(ctx, p.deadLetter, p.metrics, letters); dlErr != nil {
					return fmt.Errorf("%w: %w", ErrUnavailable, dlErr)
				}
				letters = nil
			}
			if err == nil || !retryNow {
				return err
			}
		}
	})
	if err != nil {
		// kafka-go may still hold the messages of a write cut short by ctx: leave the buffer to GC.
		return err
	}
	putArena(arena) // every write returned successfully: kafka-go holds no message any more
	p.metrics.seconds.Observe(time.Since(start).Seconds())
	return nil
}

// attempt writes the pending messages: the ones not under isolation in one WriteMessages call, then each isolated
// one alone. It returns the indexes still pending, the letters to dead-letter, and whether the remaining ones
// should be written again at once (isolation just started) rather than after a backoff.
func (p *Kafka) attempt(ctx context.Context, events []*schema.Event, msgs []kafka.Message, pending []int, isolate map[int]bool) (remaining []int, letters []Letter, retryNow bool, err error) {
	if len(pending) == 0 {
		return nil, nil, false, nil
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
			return pending, nil, false, err
		}
	}
	for _, i := range alone {
		if err := write([]int{i}); err != nil {
			return pending, nil, false, err
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
				letters = append(letters, Letter{Event: events[i], Publisher: "kafka", Size: messageSize(&msgs[i]),
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
		return nil, letters, false, nil
	}
	return remaining, letters, retryNow, fmt.Errorf("publisher: kafka: %d of %d events not acknowledged: %w: %w",
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

// kafkaDeadLetter writes wrapper letters to a dead-letter topic.
type kafkaDeadLetter struct {
	w     *kafka.Writer
	limit int
}

func (d *kafkaDeadLetter) DeadLetter(ctx context.Context, letters []Letter) error {
	err := d.write(ctx, letters, d.limit)
	if err != nil && rejected(err) {
		// The dead-letter topic refuses letters of this size (a smaller max.message.bytes): send them without
		// the event, which keeps the reason and the ids.
		err = d.write(ctx, letters, 1)
	}
	if err != nil {
		return fmt.Errorf("publisher: kafka dead letter to %q: %w", d.w.Topic, err)
	}
	return nil
}

func (d *kafkaDeadLetter) write(ctx context.Context, letters []Letter, limit int) error {
	msgs := make([]kafka.Message, len(letters))
	now := time.Now()
	for i, l := range letters {
		reason := l.Reason
		if len(reason) > 1024 {
			reason = reason[:1024]
		}
		msgs[i] = kafka.Message{
			Key:   []byte(l.Event.Subject),
			Value: AppendLetter(nil, l, l.Event.AppendJSON(nil), limit, now),
			Headers: []kafka.Header{
				{Key: HeaderID, Value: []byte(l.Event.ID)},
				{Key: HeaderSubject, Value: []byte(l.Event.Subject)},
				{Key: HeaderDeadLetterReason, Value: []byte(reason)},
				{Key: HeaderContentType, Value: []byte("application/json")},
			},
		}
	}
	return d.w.WriteMessages(ctx, msgs...)
}
