package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/kafka-go"

	"github.com/tagstream/tagstream/publisher"
	"github.com/tagstream/tagstream/schema"
)

// received is one event read back from a broker.
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

// readJetStream reads every message of stream from the first to the last sequence with an ordered consumer.
func readJetStream(t *testing.T, url, stream string) []received {
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
	if err != nil {
		t.Fatalf("consumer: stream %s: %v", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("consumer: stream %s info: %v", stream, err)
	}
	last := info.State.LastSeq
	var out []received
	if info.State.Msgs == 0 {
		return out
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		t.Fatalf("consumer: ordered consumer: %v", err)
	}
	for {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("consumer: after %d messages (stream last seq %d): %v", len(out), last, err)
		}
		md, err := msg.Metadata()
		if err != nil {
			t.Fatalf("consumer: metadata: %v", err)
		}
		r := received{
			Where:      "seq " + strconv.FormatUint(md.Sequence.Stream, 10),
			Pos:        int64(md.Sequence.Stream),
			BrokerTime: md.Timestamp,
			Subject:    msg.Subject(),
		}
		ev, err := schema.UnmarshalEvent(msg.Data())
		if err != nil {
			t.Errorf("consumer: %s on %s is not an event: %v", r.Where, r.Subject, err)
		} else {
			r.Event = ev
			out = append(out, r)
		}
		if md.Sequence.Stream >= last {
			return out
		}
	}
}

// kafkaConsumer reads every partition of a topic with one kafka-go Reader each, from the first offset, while the
// pipeline runs, so that the consume time of each event is known.
type kafkaConsumer struct {
	t       *testing.T
	brokers string
	topic   string
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	mu         sync.Mutex
	got        []received
	parts      []int
	next       map[int]int64 // next offset to read per partition
	errs       []error       // records that are not events
	readErrors int           // fetch errors (broker away), retried
}

// startKafkaConsumer starts one reader per partition of topic.
func startKafkaConsumer(t *testing.T, brokers, topic string, partitions []kafka.Partition) *kafkaConsumer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &kafkaConsumer{t: t, brokers: brokers, topic: topic, cancel: cancel, next: map[int]int64{}}
	for _, p := range partitions {
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers:         []string{brokers},
			Topic:           topic,
			Partition:       p.ID,
			MinBytes:        1,
			MaxBytes:        8 << 20,
			MaxWait:         200 * time.Millisecond,
			ReadLagInterval: -1,
			StartOffset:     kafka.FirstOffset,
		})
		c.next[p.ID] = 0
		c.parts = append(c.parts, p.ID)
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			defer r.Close()
			c.read(ctx, r, p.ID)
		}()
	}
	t.Cleanup(c.close)
	return c
}

func (c *kafkaConsumer) read(ctx context.Context, r *kafka.Reader, partition int) {
	for {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			// The broker may be away (a restart test): the reader reconnects by itself; count and go on.
			c.mu.Lock()
			c.readErrors++
			c.mu.Unlock()
			sleepCtx(ctx, 200*time.Millisecond)
			continue
		}
		now := time.Now()
		rec := received{
			Where:      fmt.Sprintf("p%d@%d", partition, m.Offset),
			Partition:  partition,
			Pos:        m.Offset,
			BrokerTime: m.Time,
			ConsumedAt: now,
			Key:        string(m.Key),
		}
		ev, err := kafkaEvent(m)
		c.mu.Lock()
		if err != nil {
			c.errs = append(c.errs, fmt.Errorf("%s: %w", rec.Where, err))
		} else {
			rec.Event = ev
			c.got = append(c.got, rec)
		}
		c.next[partition] = m.Offset + 1
		c.mu.Unlock()
	}
}

// finish waits until every partition has been read up to its high watermark (call it after the producer
// stopped), stops the readers and returns what they read, ordered by partition and offset.
func (c *kafkaConsumer) finish() []received {
	t := c.t
	t.Helper()
	hw := map[int]int64{}
	for _, p := range c.parts {
		off, err := lastOffset(c.brokers, c.topic, p)
		if err != nil {
			t.Fatalf("consumer: high watermark of partition %d: %v", p, err)
		}
		hw[p] = off
	}
	ok := waitFor(60*time.Second, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for p, h := range hw {
			if c.next[p] < h {
				return false
			}
		}
		return true
	})
	c.close()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, err := range c.errs {
		t.Errorf("consumer: %v", err)
	}
	if c.readErrors > 0 {
		t.Logf("consumer: %d fetch errors while the broker was away (retried)", c.readErrors)
	}
	if !ok {
		t.Fatalf("consumer: did not reach the high watermarks %v within 60 s (at %v)", hw, c.next)
	}
	out := append([]received(nil), c.got...)
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Partition != out[j].Partition {
			return out[i].Partition < out[j].Partition
		}
		return out[i].Pos < out[j].Pos
	})
	return out
}

func (c *kafkaConsumer) close() {
	c.cancel()
	c.wg.Wait()
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

// kafkaEvent rebuilds the CloudEvent of a Kafka record: structured mode carries it whole in the value; binary mode
// (tagstream's default) carries the attributes in ce_* headers and the data alone in the value.
func kafkaEvent(m kafka.Message) (*schema.Event, error) {
	h := map[string]string{}
	for _, x := range m.Headers {
		if _, dup := h[x.Key]; dup {
			return nil, fmt.Errorf("header %s appears twice", x.Key)
		}
		h[x.Key] = string(x.Value)
	}
	if h[publisher.HeaderContentType] == "application/cloudevents+json" {
		return schema.UnmarshalEvent(m.Value)
	}
	for _, k := range []string{publisher.HeaderSpecVersion, publisher.HeaderID, publisher.HeaderType, publisher.HeaderSource, publisher.HeaderSubject} {
		if h[k] == "" {
			return nil, fmt.Errorf("binary-mode record without header %s", k)
		}
	}
	if !json.Valid(m.Value) {
		return nil, errors.New("binary-mode value is not JSON")
	}
	whole := map[string]any{
		"specversion":     h[publisher.HeaderSpecVersion],
		"id":              h[publisher.HeaderID],
		"type":            h[publisher.HeaderType],
		"source":          h[publisher.HeaderSource],
		"subject":         h[publisher.HeaderSubject],
		"datacontenttype": h[publisher.HeaderContentType],
		"data":            json.RawMessage(m.Value),
	}
	if v := h[publisher.HeaderTime]; v != "" {
		whole["time"] = v
	}
	b, err := json.Marshal(whole)
	if err != nil {
		return nil, err
	}
	return schema.UnmarshalEvent(b)
}
