// Package publisher delivers tagstream's CloudEvents media events to a broker: Kafka (segmentio/kafka-go), NATS
// JetStream, core NATS (at-most-once) or an NDJSON file. Every publisher implements the poller's Publisher
// contract: Publish returns nil only when every event of the batch is durably acknowledged (or, for an event the
// broker will never accept, handed to the dead-letter destination), and Close flushes.
//
// Publish retries transient broker failures with exponential backoff until its context ends (see RetryConfig), so
// a poller blocked on it stops polling while the broker is away and keeps its cursors where they are.
//
// # Delivery
//
// Publish returns nil only when every event is acknowledged: by all in-sync replicas for Kafka
// (RequiredAcks=RequireAll), by a PubAck for JetStream, by the flush round trip for core NATS (at most once, nothing
// stored), by write and fsync for a file. Transient failures are retried in one place (retry.go) with exponential
// backoff until the context ends; only the events not acknowledged yet are sent again. A retry can store an
// event twice on Kafka (kafka-go has no idempotent producer): consumers de-duplicate on the ce_id header, the
// deterministic event id. JetStream drops repeats itself (Nats-Msg-Id) within the stream's duplicate window.
//
// # Dead letters
//
// An event the broker will never accept (larger than the message limit, refused as invalid) goes to a DeadLetter
// instead of blocking its tag: a Kafka topic, a NATS subject, an NDJSON file (OpenDeadLetterFile) or, by default,
// Discard (logged at error level and dropped). A letter is a wrapper JSON holding the reason and the original
// event (see AppendLetter); it is counted in tagstream_publisher_dead_letters_total.
//
// # Subjects
//
// NATS subjects are "<prefix>.<EncodeTag(tag)>"; see subject.go for the tag encoding, which turns any tag into
// one valid subject token and back.
//
// # Metrics
//
// NewMetrics registers tagstream_publisher_{published_total, acks_total, duplicates_total, retries_total,
// dead_letters_total, publish_seconds, in_flight}, labelled by publisher kind.
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
