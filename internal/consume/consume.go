// Package consume reads tagstream's events back from a broker: a JetStream stream (an ordered consumer), core
// NATS (a subscription) or a Kafka topic (one reader per partition). Each record becomes a Message holding the
// *schema.Event decoded with schema.UnmarshalEvent (a Kafka binary-mode record is rebuilt from the publisher's
// ce_* headers first) and where the record was read. The command's tail and demo and the end-to-end tests read
// through it, so that every reader decodes events the same way.
package consume

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/segmentio/kafka-go"

	"github.com/tagstream/tagstream/publisher"
	"github.com/tagstream/tagstream/schema"
)

// Kind selects the broker a Consumer reads.
type Kind int

// The brokers.
const (
	// JetStream reads a stream with an ordered consumer.
	JetStream Kind = iota + 1
	// NATS subscribes on core NATS: it sees only what is published while it is subscribed.
	NATS
	// Kafka reads every partition of a topic.
	Kafka
)

// String returns "jetstream", "nats" or "kafka".
func (k Kind) String() string {
	switch k {
	case JetStream:
		return "jetstream"
	case NATS:
		return "nats"
	case Kafka:
		return "kafka"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Start says where a Consumer begins.
type Start int

const (
	// StartNew (the default) reads only what the broker receives after New returns.
	StartNew Start = iota
	// StartFirst reads from the oldest record the broker holds (JetStream and Kafka).
	StartFirst
)

// Errors of the package.
var (
	// ErrConfig is wrapped by New's errors for an invalid Config.
	ErrConfig = errors.New("consume: invalid config")
	// ErrNoStream is returned by New when no JetStream stream covers the subjects.
	ErrNoStream = errors.New("consume: no JetStream stream covers the subjects")
	// ErrNoTopic is returned by New when the Kafka topic does not exist.
	ErrNoTopic = errors.New("consume: kafka topic does not exist")
	// ErrNotEvent is wrapped by Message.Err for a record that is not a tagstream event.
	ErrNotEvent = errors.New("consume: not an event")
	// ErrClosed is returned by Next after Close.
	ErrClosed = errors.New("consume: closed")
)

// Config configures a Consumer. Kind is required, and Conn for JetStream and NATS, Brokers for Kafka; every other
// zero value means the documented default.
type Config struct {
	Kind Kind
	// Conn is the NATS connection of the JetStream and NATS kinds. The caller keeps it open while the Consumer
	// reads; with OwnConn set, Close closes it.
	Conn    *nats.Conn
	OwnConn bool
	// SubjectPrefix is the prefix the events were published under; default publisher.DefaultSubjectPrefix.
	SubjectPrefix string
	// Stream names the JetStream stream; empty means the stream that covers the subjects read.
	Stream string
	// Brokers, Topic and Dialer say where the Kafka records are. Topic defaults to publisher.DefaultSubjectPrefix
	// (the command's default topic); a nil Dialer means kafka.DefaultDialer.
	Brokers []string
	Topic   string
	Dialer  *kafka.Dialer
	// KeyIsTag says the Kafka key is the tag (the publisher's KeyTag), so that a record that is not an event can
	// still be matched against Tags.
	KeyIsTag bool
	// Tags, when set, keeps only the events of these tags: a subject filter on NATS, the event's subject (or the
	// ce_subject header, or the key with KeyIsTag) on Kafka.
	Tags []string
	// Start says where to begin; default StartNew. Core NATS keeps no history: StartFirst is refused.
	Start Start
	// MaxWait is how long a Kafka fetch waits for more records; default 100 ms.
	MaxWait time.Duration
}

// Message is one record read from the broker.
type Message struct {
	// Kind is the broker the record came from.
	Kind Kind
	// Event is the decoded event; nil when Err is set.
	Event *schema.Event
	// Err says why the record is not an event (it wraps ErrNotEvent); nil otherwise.
	Err error
	// JSON is the event in structured JSON: the record's value, or for a Kafka binary-mode record the event rebuilt
	// from its headers and value. For a record that is not an event it is the record's value as read.
	JSON []byte
	// Subject is the NATS subject (JetStream and NATS).
	Subject string
	// Key is the Kafka key.
	Key string
	// Partition is the Kafka partition (0 otherwise).
	Partition int
	// Pos is the JetStream stream sequence or the Kafka offset (0 on core NATS).
	Pos int64
	// BrokerTime is when the broker stored the record (JetStream and Kafka); zero on core NATS.
	BrokerTime time.Time
	// ReceivedAt is when this consumer received the record.
	ReceivedAt time.Time

	tag string // what the broker says the tag is, for a record that is not an event
}

// Where describes the position of the record: "seq 12" (JetStream), "p1@34" (Kafka partition 1, offset 34) or
// the subject (core NATS).
func (m Message) Where() string {
	switch m.Kind {
	case JetStream:
		return "seq " + strconv.FormatInt(m.Pos, 10)
	case Kafka:
		return fmt.Sprintf("p%d@%d", m.Partition, m.Pos)
	}
	return m.Subject
}

// Tag returns the tag of the record: the event's subject, or for a record that is not an event what the broker
// says of it (the ce_subject header or the key, see Config.KeyIsTag), or "".
func (m Message) Tag() string {
	if m.Event != nil {
		return m.Event.Subject
	}
	return m.tag
}

// item is what the readers hand to Next.
type item struct {
	msg Message
	err error
}

// Consumer reads the events of one broker. Next is safe to call from one goroutine at a time; Close may be called
// from any goroutine.
type Consumer struct {
	cfg    Config
	items  chan item
	done   chan struct{}
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
	stop   []func() // run by Close, in reverse order
	stream string
	parts  []int
}

// New starts a consumer. When it returns, the consumer is positioned: with StartNew everything the broker
// receives from then on is read. It fails with ErrNoStream or ErrNoTopic when there is nothing to read yet.
func New(ctx context.Context, cfg Config) (*Consumer, error) {
	if cfg.SubjectPrefix == "" {
		cfg.SubjectPrefix = publisher.DefaultSubjectPrefix
	}
	if cfg.MaxWait == 0 {
		cfg.MaxWait = 100 * time.Millisecond
	}
	rctx, cancel := context.WithCancel(context.Background())
	c := &Consumer{cfg: cfg, items: make(chan item, 256), done: make(chan struct{}), cancel: cancel}
	if cfg.OwnConn && cfg.Conn != nil {
		c.stop = append(c.stop, cfg.Conn.Close)
	}
	var err error
	switch cfg.Kind {
	case JetStream:
		err = c.startJetStream(ctx, rctx)
	case NATS:
		err = c.startNATS()
	case Kafka:
		err = c.startKafka(ctx, rctx)
	default:
		err = fmt.Errorf("%w: unknown kind %d", ErrConfig, cfg.Kind)
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Stream returns the JetStream stream read ("" for the other kinds).
func (c *Consumer) Stream() string { return c.stream }

// Partitions returns the Kafka partitions read (nil for the other kinds).
func (c *Consumer) Partitions() []int { return append([]int(nil), c.parts...) }

// Next returns the next record. A record that is not an event is returned with Message.Err set. An error from
// the broker (a Kafka broker that is away, a consumer that failed) is returned as err; the consumer goes on and
// Next may be called again. Next returns ctx's error when ctx ends first, and ErrClosed after Close.
func (c *Consumer) Next(ctx context.Context) (Message, error) {
	select {
	case it := <-c.items:
		return it.msg, it.err
	case <-ctx.Done():
		return Message{}, ctx.Err()
	case <-c.done:
		return Message{}, ErrClosed
	}
}

// Close stops reading and releases the consumer (and the NATS connection with OwnConn). It is idempotent.
func (c *Consumer) Close() error {
	c.once.Do(func() {
		close(c.done)
		c.cancel()
		for i := len(c.stop) - 1; i >= 0; i-- {
			c.stop[i]()
		}
		c.wg.Wait()
	})
	return nil
}

// push hands an item to Next; it gives up when the consumer is closed.
func (c *Consumer) push(it item) bool {
	select {
	case c.items <- it:
		return true
	case <-c.done:
		return false
	}
}

// wanted reports whether tag passes the Tags filter.
func (c *Consumer) wanted(tag string) bool {
	if len(c.cfg.Tags) == 0 {
		return true
	}
	for _, t := range c.cfg.Tags {
		if t == tag {
			return true
		}
	}
	return false
}

// subjects returns the NATS subjects read: every tag's subject, or the whole prefix.
func (c *Consumer) subjects() []string {
	if len(c.cfg.Tags) == 0 {
		return []string{c.cfg.SubjectPrefix + ".>"}
	}
	out := make([]string, len(c.cfg.Tags))
	for i, t := range c.cfg.Tags {
		out[i] = publisher.Subject(c.cfg.SubjectPrefix, t)
	}
	return out
}

// structured decodes a structured-mode record.
func structured(m *Message, value []byte) {
	m.JSON = value
	ev, err := schema.UnmarshalEvent(value)
	if err != nil {
		m.Err = fmt.Errorf("%w: %w", ErrNotEvent, err)
		return
	}
	m.Event = ev
}
