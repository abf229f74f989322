package publisher

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// jetStreamDeadLetter publishes wrapper letters to a JetStream subject and waits for each PubAck.
type jetStreamDeadLetter struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	subject string
}

// DeadLetterReasonHeader is the NATS header holding the reason of a dead letter.
const DeadLetterReasonHeader = "Tagstream-Dead-Letter-Reason"

func (d *jetStreamDeadLetter) DeadLetter(ctx context.Context, letters []Letter) error {
	limit := int(d.nc.MaxPayload()) - 1024 // room for the headers
	now := time.Now()
	for _, l := range letters {
		reason := clip(l.Reason, 512) // within the room left for headers
		msg := &nats.Msg{
			Subject: d.subject,
			Data:    AppendLetter(nil, l, l.Event.AppendJSON(nil), limit, now),
			Header: nats.Header{
				jetstream.MsgIDHeader:  []string{"dead-letter:" + l.Event.ID},
				DeadLetterReasonHeader: []string{strings.ReplaceAll(reason, "\n", " ")},
				"Content-Type":         []string{"application/json"},
			},
		}
		if _, err := d.js.PublishMsg(ctx, msg); err != nil {
			return fmt.Errorf("publisher: jetstream dead letter to %q: %w", d.subject, err)
		}
	}
	return nil
}
