package publisher

import (
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tagstream/tagstream/schema"
)

// Kafka binding header names.
const (
	HeaderSpecVersion      = "ce_specversion"
	HeaderID               = "ce_id"
	HeaderType             = "ce_type"
	HeaderSource           = "ce_source"
	HeaderTime             = "ce_time"
	HeaderSubject          = "ce_subject"
	HeaderContentType      = "content-type"
	HeaderDeadLetterReason = "tagstream_dead_letter_reason"
)

// Message returns the Kafka message of e as Publish writes it (key, value and headers per the configuration).
func (p *Kafka) Message(e *schema.Event) kafka.Message {
	var msg kafka.Message
	var arena []byte
	p.fillMessage(&msg, make([]kafka.Header, 0, 7), e, &arena)
	return msg
}

// fillMessage builds msg from e, using hdr (len 0, cap >= 7) for the headers and appending every byte slice
// (key, header values, value) to *arena, so that a batch costs a few allocations instead of ten per event.
func (p *Kafka) fillMessage(msg *kafka.Message, hdr []kafka.Header, e *schema.Event, arena *[]byte) {
	add := func(s string) []byte {
		start := len(*arena)
		*arena = append(*arena, s...)
		return (*arena)[start:len(*arena):len(*arena)]
	}
	switch p.cfg.Key {
	case KeyMediaID:
		if e.Data != nil && e.Data.MediaID != "" {
			msg.Key = add(e.Data.MediaID)
		} else {
			msg.Key = add(e.ID)
		}
	default:
		msg.Key = add(e.Subject)
	}
	spec := e.SpecVersion
	if spec == "" {
		spec = "1.0"
	}
	hdr = append(hdr,
		kafka.Header{Key: HeaderSpecVersion, Value: add(spec)},
		kafka.Header{Key: HeaderID, Value: add(e.ID)},
		kafka.Header{Key: HeaderType, Value: add(e.Type)},
		kafka.Header{Key: HeaderSource, Value: add(e.Source)},
	)
	start := len(*arena)
	*arena = e.Time.UTC().AppendFormat(*arena, time.RFC3339Nano)
	hdr = append(hdr,
		kafka.Header{Key: HeaderTime, Value: (*arena)[start:len(*arena):len(*arena)]},
		kafka.Header{Key: HeaderSubject, Value: add(e.Subject)},
	)
	start = len(*arena)
	if p.cfg.ContentMode == ContentStructured {
		hdr = append(hdr, kafka.Header{Key: HeaderContentType, Value: contentTypeCloudEvents})
		*arena = e.AppendJSON(*arena)
	} else {
		ct := contentTypeJSON
		if e.DataContentType != "" && e.DataContentType != "application/json" {
			ct = add(e.DataContentType)
		}
		hdr = append(hdr, kafka.Header{Key: HeaderContentType, Value: ct})
		*arena = e.AppendDataJSON(*arena)
	}
	msg.Value = (*arena)[start:len(*arena):len(*arena)]
	msg.Headers = hdr
}

// Shared read-only header values.
var (
	contentTypeJSON        = []byte("application/json")
	contentTypeCloudEvents = []byte("application/cloudevents+json")
)

// messageSize is an upper bound of the size kafka-go and the broker count for msg.
func messageSize(msg *kafka.Message) int {
	n := 64 + len(msg.Key) + len(msg.Value)
	for _, h := range msg.Headers {
		n += 10 + len(h.Key) + len(h.Value)
	}
	return n
}
