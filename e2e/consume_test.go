//go:build integration

package e2e

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/kafka-go"

	"github.com/tagstream/tagstream/internal/consume"
	"github.com/tagstream/tagstream/schema"
)

// received is one event read back from a broker, as the checker sees it.
type received struct {
	Event      *schema.Event
	Where      string    // "seq 12" (JetStream) or "p1@34" (Kafka partition 1, offset 34)
	Partition  int       // Kafka partition; 0 on JetStream
	Pos        int64     // stream sequence or partition offset
	BrokerTime time.Time // JetStream's stored time or the Kafka record timestamp
	ConsumedAt time.Time // when this consumer received it (Kafka live reader); zero after the fact
	Key        string    // Kafka key
	Subject    string    // NATS subject
}

// receivedFrom converts a consumed message; live says the consumer ran while the pipeline published, so that
// its receive time is the event's arrival time.
func receivedFrom(m consume.Message, live bool) received {
	r := received{Event: m.Event, Where: m.Where(), Partition: m.Partition, Pos: m.Pos, BrokerTime: m.BrokerTime,
		Key: m.Key, Subject: m.Subject}
	if live {
		r.ConsumedAt = m.ReceivedAt
	}
	return r
}

// readJetStream reads every message of stream from the first to the last sequence.
func readJetStream(t *testing.T, url, stream string) []received {
	t.Helper()
	return readStream(t, url, stream, subjectPrefix, true)
}

// readStream reads every message of stream under prefix; a stream that does not exist fails the test when
// mustExist is set, and reads as empty otherwise.
func readStream(t *testing.T, url, stream, prefix string, mustExist bool) []received {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nc, err := nats.Connect(url, nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatalf("consumer: connect %s: %v", url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("consumer: jetstream: %v", err)
	}
	s, err := js.Stream(ctx, stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) && !mustExist {
		return nil
	}
	if err != nil {
		t.Fatalf("consumer: stream %s: %v", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("consumer: stream %s info: %v", stream, err)
	}
	var out []received
	if info.State.Msgs == 0 {
		return out
	}
	c, err := consume.New(ctx, consume.Config{Kind: consume.JetStream, Conn: nc, SubjectPrefix: prefix, Stream: stream, Start: consume.StartFirst})
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	defer c.Close()
	for {
		m, err := c.Next(ctx)
		if err != nil {
			t.Fatalf("consumer: after %d messages (stream last seq %d): %v", len(out), info.State.LastSeq, err)
		}
		if m.Event == nil {
			t.Errorf("consumer: %s on %s is not an event: %v", m.Where(), m.Subject, m.Err)
		} else {
			out = append(out, receivedFrom(m, false))
		}
		if uint64(m.Pos) >= info.State.LastSeq {
			return out
		}
	}
}

// kafkaConsumer reads every partition of a topic from the first offset while the pipeline runs, so that the
// consume time of each event is known.
type kafkaConsumer struct {
	t       *testing.T
	brokers string
	topic   string
	c       *consume.Consumer
	done    chan struct{}

	mu         sync.Mutex
	got        []received
	next       map[int]int64 // next offset to read per partition
	errs       []error       // records that are not events
	readErrors int           // fetch errors (broker away); the readers go on
	arrived    chan struct{} // signalled (without blocking) after each event
}

// startKafkaConsumer starts reading topic, which has partitions.
func startKafkaConsumer(t *testing.T, brokers, topic string, partitions []kafka.Partition) *kafkaConsumer {
	t.Helper()
	c, err := consume.New(t.Context(), consume.Config{Kind: consume.Kafka, Brokers: []string{brokers}, Topic: topic,
		Start: consume.StartFirst, MaxWait: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	k := &kafkaConsumer{t: t, brokers: brokers, topic: topic, c: c, done: make(chan struct{}), next: map[int]int64{},
		arrived: make(chan struct{}, 1)}
	for _, p := range partitions {
		k.next[p.ID] = 0
	}
	go k.read()
	t.Cleanup(k.close)
	return k
}

func (k *kafkaConsumer) read() {
	defer close(k.done)
	for {
		m, err := k.c.Next(context.Background())
		if errors.Is(err, consume.ErrClosed) {
			return
		}
		k.mu.Lock()
		switch {
		case err != nil:
			// The broker may be away (a restart test): the reader reconnects by itself; count and go on.
			k.readErrors++
		case m.Event == nil:
			k.errs = append(k.errs, fmt.Errorf("%s: %w", m.Where(), m.Err))
			k.next[m.Partition] = m.Pos + 1
		default:
			k.got = append(k.got, receivedFrom(m, true))
			k.next[m.Partition] = m.Pos + 1
		}
		k.mu.Unlock()
		select {
		case k.arrived <- struct{}{}:
		default:
		}
	}
}

// finish waits until every partition has been read up to its high watermark (call it after the producer
// stopped), stops the readers and returns what they read, ordered by partition and offset.
func (k *kafkaConsumer) finish() []received {
	t := k.t
	t.Helper()
	hw := map[int]int64{}
	for p := range k.next {
		off, err := lastOffset(k.brokers, k.topic, p)
		if err != nil {
			t.Fatalf("consumer: high watermark of partition %d: %v", p, err)
		}
		hw[p] = off
	}
	ok := waitFor(60*time.Second, func() bool {
		k.mu.Lock()
		defer k.mu.Unlock()
		for p, h := range hw {
			if k.next[p] < h {
				return false
			}
		}
		return true
	})
	k.close()
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, err := range k.errs {
		t.Errorf("consumer: %v", err)
	}
	if k.readErrors > 0 {
		t.Logf("consumer: %d fetch errors while the broker was away (retried)", k.readErrors)
	}
	if !ok {
		t.Fatalf("consumer: did not reach the high watermarks %v within 60 s (at %v)", hw, k.next)
	}
	out := append([]received(nil), k.got...)
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Partition != out[j].Partition {
			return out[i].Partition < out[j].Partition
		}
		return out[i].Pos < out[j].Pos
	})
	return out
}

func (k *kafkaConsumer) close() {
	k.c.Close()
	<-k.done
}

// lastOffset returns the high watermark (the offset the next message will get) of one partition.
func lastOffset(brokers, topic string, partition int) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := kafka.DialLeader(ctx, "tcp", brokers, topic, partition)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	return conn.ReadLastOffset()
}
