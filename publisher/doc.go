// Package publisher delivers tagstream's CloudEvents media events to a broker: Kafka (segmentio/kafka-go), NATS
// JetStream, core NATS (at-most-once) or an NDJSON file. Every publisher implements the poller's Publisher
// contract: Publish returns nil only when every event of the batch is durably acknowledged (or, for an event the
// broker will never accept, handed to the dead-letter destination), and Close flushes.
//
// # Start-up
//
// A publisher is built by its constructor (NewKafka, NewJetStream, NewNATS, NewFile/OpenFile) from a config
// struct whose zero values mean documented defaults, checked once, up front. The constructors find (or, when
// allowed, create) what they publish into: the Kafka topic and dead-letter topic, the JetStream stream covering
// "<prefix>.>" whatever its name (see JetStreamConfig.Stream). ProbeKafka and ProbeJetStream run the very same
// resolution code without creating anything, for a dry run that accepts exactly what the constructors accept.
// KafkaDialer gives other Kafka clients (a consumer) the same TLS and SASL mapping.
//
// Start-up errors are classified with errors.Is: ErrUnreachable means no broker answered right now (refused,
// timed out, no servers, a temporary DNS failure), so a caller may retry with backoff; ErrConfig, ErrNoStream and
// ErrTopicNotFound mean the settings are wrong or were refused (credentials, certificates, a missing topic or
// stream with creation off), and retrying will not help.
//
// Once running, Ready(ctx) on each publisher answers whether it can publish now (the connection is up, the topic
// or stream still exists and covers the subjects, the file is writable) with a real round trip where the broker
// has one, reusing the publisher's own connections.
//
// # Names
//
// The rules for a Kafka topic, a NATS subject, a subject prefix and a JetStream stream name live here
// (ValidateTopic, ValidateSubject, ValidateSubjectPrefix, ValidateStreamName), each with one documented limit;
// the configuration layer calls them. A tag enters a NATS subject as one token, "<prefix>.<EncodeTag(tag)>": the
// encoding turns any string into a valid token and back (DecodeTag), and TagSubject checks a configured tag with
// schema.ValidateTag first.
//
// # Delivery
//
// Publish returns nil only when every event is acknowledged: by all in-sync replicas for Kafka
// (RequiredAcks=RequireAll), by a PubAck for JetStream, by the flush round trip for core NATS (at most once, nothing
// stored), by write and fsync for a file. Transient failures are retried in one place per publisher, with
// exponential backoff (RetryConfig) until the context of Publish ends, so a poller blocked on it stops polling
// while the broker is away and keeps its cursors where they are; only the events not acknowledged yet are sent
// again. A retry can store an event twice on Kafka (kafka-go has no idempotent producer): consumers de-duplicate
// on the ce_id header, the deterministic event id. JetStream drops repeats itself (Nats-Msg-Id) within the
// stream's duplicate window.
//
// # Dead letters
//
// An event the broker will never accept (larger than the message limit, refused as invalid) goes to a DeadLetter
// instead of blocking its tag: a Kafka topic, a NATS subject, an NDJSON file (OpenDeadLetterFile) or, by default,
// Discard (logged at error level and dropped). A letter is a wrapper JSON (see AppendLetter) that always
// identifies its media (event id, tag, media id, cursor, link) with the reason; when the destination's size limit
// is too small for the whole event, only the event's large fields are dropped. The letters of a Publish call are
// kept across its retries: Publish never returns nil for an event that was neither acknowledged nor
// dead-lettered.
//
// Dead letters are not published: tagstream_publisher_published_total leaves them out and
// tagstream_publisher_dead_letters_total counts them. Deliver (the Deliverer interface, on every publisher) is
// Publish that also names the dead-lettered events of the batch, for a caller that counts per Publish.
//
// # Files
//
// The NDJSON outputs (the file sink and the dead-letter file) write a batch of whole lines in one write and never
// leave a torn line behind: a short write (disk full, file size limit) is truncated back to the last whole line,
// or, on an output that cannot be truncated, ended by a newline before the next batch.
//
// # Metrics
//
// NewMetrics registers tagstream_publisher_{published_total, acks_total, duplicates_total, retries_total,
// dead_letters_total, publish_seconds, in_flight}, labelled by publisher kind (and dead letters by destination
// kind).
package publisher

import (
	"context"

	"github.com/tagstream/tagstream/schema"
)

// Deliverer is implemented by every publisher of this package, for callers that count what a Publish call did:
// Deliver publishes events exactly as Publish does and, when it returns nil, also returns the indexes (into
// events, ascending) of the events that went to the dead-letter destination rather than to the broker. The
// others were acknowledged by the broker; tagstream_publisher_published_total counts only those, and
// tagstream_publisher_dead_letters_total the rest. The poller, which must not import this package, can declare
// the same one-method interface and use it when its Publisher has it.
type Deliverer interface {
	Deliver(ctx context.Context, events []*schema.Event) (deadLettered []int, err error)
}

// Publisher is what every publisher of this package provides: the poller's Publisher contract plus Close. The
// command holds the configured publisher as a Publisher. All implementations are safe for concurrent use.
type Publisher interface {
	// Publish returns nil only when every event is durably acknowledged by the broker (or handed to the
	// dead-letter destination because the broker will never accept it).
	Publish(ctx context.Context, events []*schema.Event) error
	// Close flushes what is buffered and releases the publisher's resources.
	Close() error
}
