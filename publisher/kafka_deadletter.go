package publisher

import (
	"context"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
)

// kafkaDeadLetter writes wrapper letters to a dead-letter topic.
type kafkaDeadLetter struct {
	w     *kafka.Writer
	limit int
}

func (d *kafkaDeadLetter) DeadLetter(ctx context.Context, letters []Letter) error {
	err := d.write(ctx, letters, d.limit)
	if err != nil && rejected(err) {
		// The dead-letter topic refuses letters of this size (a smaller max.message.bytes): send them without
		// the event, which keeps the reason and the identifying fields (see AppendLetter).
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
		reason := clip(l.Reason, 1024)
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
