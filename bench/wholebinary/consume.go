package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/kafka-go"

	"github.com/tagstream/tagstream/publisher"
	"github.com/tagstream/tagstream/schema"
)

// recorder keeps the first arrival of every media on one side. It is safe for concurrent use.
type recorder struct {
	mu       sync.Mutex
	got      map[mediaKey]arrival
	events   int             // media events or sightings recorded, repeats included
	gaps     int             // gap markers (tagstream)
	bad      int             // messages that are not events
	badFirst string          // the first decoding error
	lag      []time.Duration // consume time minus broker time (JetStream, Kafka)
}

func newRecorder() *recorder { return &recorder{got: map[mediaKey]arrival{}} }

// add records that the media arrived at at.
func (r *recorder) add(tag, mediaID string, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events++
	k := mediaKey{tag, mediaID}
	a, ok := r.got[k]
	if !ok {
		a.At = at
	}
	a.Count++
	r.got[k] = a
}

// addEvent records a decoded event; brokerTime, when not zero, gives the broker-to-consumer lag.
func (r *recorder) addEvent(ev *schema.Event, at, brokerTime time.Time) {
	switch {
	case ev.Gap != nil:
		r.mu.Lock()
		r.gaps++
		r.mu.Unlock()
	case ev.Data != nil:
		r.add(ev.Data.Tag, ev.Data.MediaID, at)
	}
	if !brokerTime.IsZero() {
		r.mu.Lock()
		r.lag = append(r.lag, at.Sub(brokerTime))
		r.mu.Unlock()
	}
}

// addBad counts a message that is not an event.
func (r *recorder) addBad(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bad++
	if r.badFirst == "" {
		r.badFirst = err.Error()
	}
}

// has reports whether the media arrived.
func (r *recorder) has(k mediaKey) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.got[k]
	return ok
}

// snapshot returns a copy of the arrivals.
func (r *recorder) snapshot() map[mediaKey]arrival {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[mediaKey]arrival, len(r.got))
	for k, v := range r.got {
		out[k] = v
	}
	return out
}

// lagP99 returns the nearest-rank p99 of the broker-to-consumer lag, or 0 without data.
func (r *recorder) lagP99() time.Duration {
	r.mu.Lock()
	l := append([]time.Duration(nil), r.lag...)
	r.mu.Unlock()
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	return percentile(l, 99)
}

// consumer reads tagstream's events from the sink while it runs.
type consumer interface {
	// finish waits until everything the sink holds now was read (call it after tagstream exited), then stops.
	finish(ctx context.Context) error
	// close stops at once.
	close()
}

// jetStreamConsumer reads the stream with an ordered consumer from its first message.
type jetStreamConsumer struct {
	nc     *nats.Conn
	stream jetstream.Stream
	cc     jetstream.ConsumeContext
	mu     sync.Mutex
	last   uint64
}

func startJetStreamConsumer(ctx context.Context, url, stream string, rec *recorder) (*jetStreamConsumer, error) {
	nc, err := nats.Connect(url, nats.Name("wholebinary-consumer"), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("consumer: connect: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	s, err := js.Stream(ctx, stream)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("consumer: stream %s: %w", stream, err)
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("consumer: ordered consumer: %w", err)
	}
	c := &jetStreamConsumer{nc: nc, stream: s}
	c.cc, err = cons.Consume(func(msg jetstream.Msg) {
		now := time.Now()
		md, err := msg.Metadata()
		if err != nil {
			rec.addBad(err)
			return
		}
		c.mu.Lock()
		c.last = max(c.last, md.Sequence.Stream)
		c.mu.Unlock()
		ev, err := schema.UnmarshalEvent(msg.Data())
		if err != nil {
			rec.addBad(fmt.Errorf("seq %d: %w", md.Sequence.Stream, err))
			return
		}
		rec.addEvent(ev, now, md.Timestamp)
	})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("consumer: consume: %w", err)
	}
	return c, nil
}

func (c *jetStreamConsumer) finish(ctx context.Context) error {
	defer c.close()
	info, err := c.stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("consumer: stream info: %w", err)
	}
	want := info.State.LastSeq
	return waitUntil(ctx, 20*time.Millisecond, func() (bool, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.last >= want, nil
	})
}

func (c *jetStreamConsumer) close() {
	if c.cc != nil {
		c.cc.Stop()
	}
	c.nc.Close()
}

// kafkaConsumer reads partition 0 of the topic (tagstream creates it with one partition) from its first offset.
type kafkaConsumer struct {
	brokers string
	topic   string
	cancel  context.CancelFunc
	done    chan struct{}
	mu      sync.Mutex
	next    int64
}

func startKafkaConsumer(brokers, topic string, rec *recorder) *kafkaConsumer {
	ctx, cancel := context.WithCancel(context.Background())
	c := &kafkaConsumer{brokers: brokers, topic: topic, cancel: cancel, done: make(chan struct{})}
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:         []string{brokers},
		Topic:           topic,
		Partition:       0,
		MinBytes:        1,
		MaxBytes:        8 << 20,
		MaxWait:         100 * time.Millisecond,
		ReadLagInterval: -1,
		StartOffset:     kafka.FirstOffset,
	})
	go func() {
		defer close(c.done)
		defer r.Close()
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				rec.addBad(fmt.Errorf("kafka read: %w", err))
				continue
			}
			now := time.Now()
			ev, err := kafkaEvent(m)
			if err != nil {
				rec.addBad(fmt.Errorf("offset %d: %w", m.Offset, err))
			} else {
				rec.addEvent(ev, now, m.Time)
			}
			c.mu.Lock()
			c.next = m.Offset + 1
			c.mu.Unlock()
		}
	}()
	return c
}

func (c *kafkaConsumer) finish(ctx context.Context) error {
	defer c.close()
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := kafka.DialLeader(dctx, "tcp", c.brokers, c.topic, 0)
	if err != nil {
		return fmt.Errorf("consumer: kafka leader: %w", err)
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	hw, err := conn.ReadLastOffset()
	conn.Close()
	if err != nil {
		return fmt.Errorf("consumer: kafka high watermark: %w", err)
	}
	return waitUntil(ctx, 20*time.Millisecond, func() (bool, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.next >= hw, nil
	})
}

func (c *kafkaConsumer) close() {
	c.cancel()
	<-c.done
}

// kafkaEvent rebuilds the CloudEvent of a Kafka record: structured mode carries it whole in the value; binary mode
// (tagstream's default) carries the attributes in ce_* headers and the data alone in the value.
func kafkaEvent(m kafka.Message) (*schema.Event, error) {
	h := map[string]string{}
	for _, x := range m.Headers {
		h[x.Key] = string(x.Value)
	}
	if h[publisher.HeaderContentType] == "application/cloudevents+json" {
		return schema.UnmarshalEvent(m.Value)
	}
	for _, k := range []string{publisher.HeaderSpecVersion, publisher.HeaderID, publisher.HeaderType, publisher.HeaderSource} {
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
		"datacontenttype": h[publisher.HeaderContentType],
		"data":            json.RawMessage(m.Value),
	}
	if v := h[publisher.HeaderSubject]; v != "" {
		whole["subject"] = v
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

// fileConsumer follows the NDJSON file of sink=file, as `tail -f` does: it reads to the end, then looks again
// every tailInterval, so a consume time is up to tailInterval late.
type fileConsumer struct {
	path   string
	rec    *recorder
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	off    int64
	err    error
}

// tailInterval is how often the file consumer looks for new lines once it reached the end.
const tailInterval = 20 * time.Millisecond

func startFileConsumer(path string, rec *recorder) *fileConsumer {
	ctx, cancel := context.WithCancel(context.Background())
	c := &fileConsumer{path: path, rec: rec, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		t := time.NewTicker(tailInterval)
		defer t.Stop()
		var f *os.File
		defer func() {
			if f != nil {
				f.Close()
			}
		}()
		var pending []byte
		buf := make([]byte, 1<<20)
		for {
			if f == nil {
				var err error
				if f, err = os.Open(path); err != nil && !errors.Is(err, os.ErrNotExist) {
					c.fail(err)
					return
				}
			}
			if f != nil {
				for {
					n, err := f.Read(buf)
					if n > 0 {
						pending = c.lines(append(pending, buf[:n]...), time.Now())
					}
					if err == io.EOF || n == 0 {
						break
					}
					if err != nil {
						c.fail(err)
						return
					}
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return c
}

// lines records every complete line of b and returns the incomplete rest.
func (c *fileConsumer) lines(b []byte, at time.Time) []byte {
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return b
		}
		line := b[:i]
		b = b[i+1:]
		c.mu.Lock()
		c.off += int64(i + 1)
		c.mu.Unlock()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		ev, err := schema.UnmarshalEvent(line)
		if err != nil {
			c.rec.addBad(err)
			continue
		}
		c.rec.addEvent(ev, at, time.Time{})
	}
}

func (c *fileConsumer) fail(err error) {
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
}

func (c *fileConsumer) finish(ctx context.Context) error {
	defer c.close()
	st, err := os.Stat(c.path)
	if err != nil {
		return fmt.Errorf("consumer: %w", err)
	}
	size := st.Size()
	return waitUntil(ctx, tailInterval, func() (bool, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.err != nil {
			return false, c.err
		}
		return c.off >= size, nil
	})
}

func (c *fileConsumer) close() {
	c.cancel()
	<-c.done
}
