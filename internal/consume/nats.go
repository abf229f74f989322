package consume

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// startJetStream creates an ordered consumer on the stream that holds the subjects and starts reading it.
func (c *Consumer) startJetStream(ctx, rctx context.Context) error {
	if c.cfg.Conn == nil {
		return fmt.Errorf("%w: JetStream needs Conn", ErrConfig)
	}
	js, err := jetstream.New(c.cfg.Conn)
	if err != nil {
		return fmt.Errorf("consume: jetstream: %w", err)
	}
	subjects := c.subjects()
	c.stream = c.cfg.Stream
	if c.stream == "" {
		c.stream, err = js.StreamNameBySubject(ctx, subjects[0])
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("%w: %s", ErrNoStream, subjects[0])
		}
		if err != nil {
			return fmt.Errorf("consume: look up the stream of %s: %w", subjects[0], err)
		}
	}
	occ := jetstream.OrderedConsumerConfig{FilterSubjects: subjects, DeliverPolicy: jetstream.DeliverNewPolicy}
	if c.cfg.Start == StartFirst {
		occ.DeliverPolicy = jetstream.DeliverAllPolicy
	}
	cons, err := js.OrderedConsumer(ctx, c.stream, occ)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("%w: stream %s does not exist", ErrNoStream, c.stream)
	}
	if err != nil {
		return fmt.Errorf("consume: consumer on stream %s: %w", c.stream, err)
	}
	// Messages creates the consumer on the server before it returns: what is stored from now on is delivered.
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("consume: read stream %s: %w", c.stream, err)
	}
	c.stop = append(c.stop, it.Stop)
	c.wg.Go(func() {
		for {
			m, err := it.Next()
			if err != nil {
				if errors.Is(err, jetstream.ErrMsgIteratorClosed) || rctx.Err() != nil {
					return
				}
				// The ordered consumer recovers from lost heartbeats and resets by itself; a closed connection is
				// the end.
				if !c.push(item{err: fmt.Errorf("consume: read stream %s: %w", c.stream, err)}) || errors.Is(err, nats.ErrConnectionClosed) {
					return
				}
				continue
			}
			msg := Message{Kind: JetStream, Subject: m.Subject(), ReceivedAt: time.Now()}
			if md, err := m.Metadata(); err == nil {
				msg.Pos = int64(md.Sequence.Stream)
				msg.BrokerTime = md.Timestamp
			}
			structured(&msg, m.Data())
			if !c.push(item{msg: msg}) {
				return
			}
		}
	})
	return nil
}

// startNATS subscribes to the subjects on core NATS.
func (c *Consumer) startNATS() error {
	if c.cfg.Conn == nil {
		return fmt.Errorf("%w: NATS needs Conn", ErrConfig)
	}
	if c.cfg.Start == StartFirst {
		return fmt.Errorf("%w: core NATS keeps no history to start from", ErrConfig)
	}
	for _, s := range c.subjects() {
		sub, err := c.cfg.Conn.Subscribe(s, func(m *nats.Msg) {
			msg := Message{Kind: NATS, Subject: m.Subject, ReceivedAt: time.Now()}
			structured(&msg, m.Data)
			c.push(item{msg: msg})
		})
		if err != nil {
			return fmt.Errorf("consume: subscribe %s: %w", s, err)
		}
		c.stop = append(c.stop, func() { _ = sub.Unsubscribe() })
	}
	// Once the server has the subscriptions, every later publish reaches them.
	if err := c.cfg.Conn.Flush(); err != nil {
		return fmt.Errorf("consume: subscribe: %w", err)
	}
	return nil
}
