package consume

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tagstream/tagstream/publisher"
)

// startKafka reads the partitions of the topic, each with its own reader, from the offsets Start asks for.
func (c *Consumer) startKafka(ctx, rctx context.Context) error {
	if len(c.cfg.Brokers) == 0 {
		return fmt.Errorf("%w: Kafka needs Brokers", ErrConfig)
	}
	if c.cfg.Topic == "" {
		c.cfg.Topic = publisher.DefaultSubjectPrefix
	}
	d := c.cfg.Dialer
	if d == nil {
		d = kafka.DefaultDialer
	}
	parts, err := c.partitions(ctx, d)
	if err != nil {
		return err
	}
	c.parts = parts
	for _, part := range parts {
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers:         c.cfg.Brokers,
			Topic:           c.cfg.Topic,
			Partition:       part,
			Dialer:          d,
			MinBytes:        1,
			MaxBytes:        10 << 20,
			MaxWait:         c.cfg.MaxWait,
			ReadLagInterval: -1,
		})
		start := kafka.FirstOffset
		if c.cfg.Start == StartNew {
			// The end of the partition now, before anything else is published: "new" means after New returned.
			if start, err = c.lastOffset(ctx, d, part); err != nil {
				r.Close()
				return err
			}
		}
		if err := r.SetOffset(start); err != nil {
			r.Close()
			return fmt.Errorf("consume: %s[%d]: %w", c.cfg.Topic, part, err)
		}
		c.wg.Go(func() {
			defer r.Close()
			c.readPartition(rctx, r, part)
		})
	}
	return nil
}

// partitions returns the partition ids of the topic, asking the first broker that answers.
func (c *Consumer) partitions(ctx context.Context, d *kafka.Dialer) ([]int, error) {
	var lastErr error
	for _, addr := range c.cfg.Brokers {
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			lastErr = fmt.Errorf("consume: kafka %s: %w", addr, err)
			continue
		}
		if dl, ok := ctx.Deadline(); ok {
			_ = conn.SetDeadline(dl)
		}
		ps, err := conn.ReadPartitions(c.cfg.Topic)
		conn.Close()
		if errors.Is(err, kafka.UnknownTopicOrPartition) || err == nil && len(ps) == 0 {
			return nil, fmt.Errorf("%w: %s", ErrNoTopic, c.cfg.Topic)
		}
		if err != nil {
			return nil, fmt.Errorf("consume: kafka topic %s: %w", c.cfg.Topic, err)
		}
		ids := make([]int, len(ps))
		for i, p := range ps {
			ids[i] = p.ID
		}
		return ids, nil
	}
	return nil, lastErr
}

// lastOffset returns the offset the next record of a partition will get.
func (c *Consumer) lastOffset(ctx context.Context, d *kafka.Dialer, part int) (int64, error) {
	conn, err := d.DialLeader(ctx, "tcp", c.cfg.Brokers[0], c.cfg.Topic, part)
	if err != nil {
		return 0, fmt.Errorf("consume: leader of %s[%d]: %w", c.cfg.Topic, part, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	off, err := conn.ReadLastOffset()
	if err != nil {
		return 0, fmt.Errorf("consume: end of %s[%d]: %w", c.cfg.Topic, part, err)
	}
	return off, nil
}

// readPartition hands every record of one partition to Next until ctx ends.
func (c *Consumer) readPartition(ctx context.Context, r *kafka.Reader, part int) {
	for {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			// The reader reconnects by itself (with its own backoff); the caller decides whether to go on.
			if !c.push(item{err: fmt.Errorf("consume: read %s[%d]: %w", c.cfg.Topic, part, err)}) {
				return
			}
			continue
		}
		msg := decodeKafka(m)
		msg.ReceivedAt = time.Now()
		if msg.Event == nil && msg.tag == "" && c.cfg.KeyIsTag {
			msg.tag = msg.Key
		}
		if !c.wanted(msg.Tag()) {
			continue
		}
		if !c.push(item{msg: msg}) {
			return
		}
	}
}

// decodeKafka turns a Kafka record into a Message. Structured mode carries the whole event in the value; binary
// mode (the publisher's default) carries the attributes in ce_* headers and the data alone in the value.
func decodeKafka(m kafka.Message) Message {
	msg := Message{Kind: Kafka, Key: string(m.Key), Partition: m.Partition, Pos: m.Offset, BrokerTime: m.Time}
	h := make(map[string]string, len(m.Headers))
	for _, x := range m.Headers {
		if _, dup := h[x.Key]; dup {
			msg.JSON = m.Value
			msg.Err = fmt.Errorf("%w: header %s appears twice", ErrNotEvent, x.Key)
			return msg
		}
		h[x.Key] = string(x.Value)
	}
	msg.tag = h[publisher.HeaderSubject]
	if h[publisher.HeaderID] == "" || h[publisher.HeaderContentType] == "application/cloudevents+json" {
		structured(&msg, m.Value)
		return msg
	}
	for _, k := range []string{publisher.HeaderSpecVersion, publisher.HeaderType, publisher.HeaderSource, publisher.HeaderSubject} {
		if h[k] == "" {
			msg.JSON = m.Value
			msg.Err = fmt.Errorf("%w: binary-mode record without header %s", ErrNotEvent, k)
			return msg
		}
	}
	if !json.Valid(m.Value) {
		msg.JSON = m.Value
		msg.Err = fmt.Errorf("%w: binary-mode value is not JSON", ErrNotEvent)
		return msg
	}
	whole, err := json.Marshal(struct {
		SpecVersion     string          `json:"specversion"`
		ID              string          `json:"id"`
		Source          string          `json:"source"`
		Type            string          `json:"type"`
		Subject         string          `json:"subject"`
		Time            string          `json:"time,omitempty"`
		DataContentType string          `json:"datacontenttype,omitempty"`
		Data            json.RawMessage `json:"data"`
	}{h[publisher.HeaderSpecVersion], h[publisher.HeaderID], h[publisher.HeaderSource], h[publisher.HeaderType],
		h[publisher.HeaderSubject], h[publisher.HeaderTime], h[publisher.HeaderContentType], m.Value})
	if err != nil {
		msg.JSON = m.Value
		msg.Err = fmt.Errorf("%w: %w", ErrNotEvent, err)
		return msg
	}
	structured(&msg, whole)
	return msg
}
