package publisher

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
)

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

// KafkaConfig configures the Kafka publisher and ProbeKafka. Brokers and Topic are required; every other zero
// value means the documented default.
type KafkaConfig struct {
	// Brokers are the bootstrap addresses (host:port).
	Brokers []string
	// Topic receives the events; see ValidateTopic.
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

// withDefaults checks every field and resolves the defaults, once, for NewKafka and ProbeKafka alike.
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
	if err := ValidateTopic(c.Topic); err != nil {
		return c, comp, configError("Topic", "%v", err)
	}
	if c.DeadLetterTopic != "" {
		if err := ValidateTopic(c.DeadLetterTopic); err != nil {
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

// MaxTopicLen is the longest Kafka topic name, in bytes: Kafka's own limit of 249.
const MaxTopicLen = 249

// ValidateTopic checks a Kafka topic name as the broker does: 1 to MaxTopicLen characters from [a-zA-Z0-9._-],
// and neither "." nor "..". The error says what is wrong and quotes the name.
func ValidateTopic(t string) error {
	switch {
	case t == "":
		return errors.New("empty topic name")
	case t == "." || t == "..":
		return fmt.Errorf("%q is not a valid topic name", t)
	case len(t) > MaxTopicLen:
		return fmt.Errorf("topic name of %d characters is longer than %d", len(t), MaxTopicLen)
	}
	for _, r := range t {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("%q holds %q: topic names hold only letters, digits, '.', '_' and '-'", t, r)
		}
	}
	return nil
}
