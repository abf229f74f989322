package publisher

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tagstream/tagstream/internal/testkit"
	"github.com/tagstream/tagstream/schema"
)

// letterJSON is the dead-letter wrapper as a consumer reads it.
type letterJSON struct {
	Reason    string          `json:"reason"`
	Publisher string          `json:"publisher"`
	EventID   string          `json:"event_id"`
	Tag       string          `json:"tag"`
	MediaID   string          `json:"media_id"`
	Cursor    string          `json:"cursor"`
	Link      string          `json:"link"`
	Size      int             `json:"size"`
	Truncated bool            `json:"truncated"`
	Event     json.RawMessage `json:"event"`
}

// checkLetter decodes a letter and checks that it identifies e (event id, tag, media id, cursor, link, reason)
// and carries as much of the event as wanted: "whole", "slim" (without the large fields) or "none".
func checkLetter(t *testing.T, raw []byte, e *schema.Event, wantEvent string) letterJSON {
	t.Helper()
	var l letterJSON
	if err := json.Unmarshal(raw, &l); err != nil {
		t.Fatalf("letter is not JSON: %v\n%s", err, raw)
	}
	if l.EventID != e.ID || l.Tag != e.Subject || l.MediaID != e.Data.MediaID || l.Cursor != e.Data.Cursor ||
		l.Link != e.Data.Link || l.Reason == "" {
		t.Fatalf("letter %+v does not identify media %s (cursor %s, link %s) with a reason", l, e.Data.MediaID,
			e.Data.Cursor, e.Data.Link)
	}
	switch wantEvent {
	case "whole":
		back, err := schema.UnmarshalEvent(l.Event)
		if err != nil || l.Truncated || back.Data.Caption != e.Data.Caption {
			t.Fatalf("letter (truncated=%v) does not carry the whole event: %v", l.Truncated, err)
		}
	case "slim":
		back, err := schema.UnmarshalEvent(l.Event)
		if err != nil || !l.Truncated {
			t.Fatalf("letter (truncated=%v) does not carry the slimmed event: %v", l.Truncated, err)
		}
		if back.ID != e.ID || back.Data.MediaID != e.Data.MediaID || back.Data.Link != e.Data.Link ||
			back.Data.Cursor != e.Data.Cursor || back.Data.Caption != "" {
			t.Fatalf("slimmed event %+v keeps the caption or lost an identifying field", back.Data)
		}
	case "none":
		if !l.Truncated || len(l.Event) != 0 {
			t.Fatalf("letter (truncated=%v) carries %d bytes of event, want none", l.Truncated, len(l.Event))
		}
	}
	return l
}

// TestEveryLetterIdentifiesItsMedia is issue 10.4: a letter cut to its destination's size limit keeps the media
// id, cursor, link, tag and reason, and drops only the large fields.
func TestEveryLetterIdentifiesItsMedia(t *testing.T) {
	t.Parallel()
	big := func(caption int) *schema.Event { return testkit.MediaEvents("big", 7, 1, caption)[0] }
	tests := []struct {
		name      string
		event     *schema.Event
		wantEvent string
		letter    func(t *testing.T, e *schema.Event) []byte // publishes e and returns its letter
	}{
		{"a Kafka dead-letter topic gets the event without its large fields when the whole does not fit",
			big(40 << 10), "slim", func(t *testing.T, e *schema.Event) []byte {
				brokers := testkit.FakeKafka(t)
				topic := uniqueTopic(t)
				p, _ := newTestKafka(t, KafkaConfig{Brokers: brokers, Topic: topic, CreateTopic: true,
					MaxMessageBytes: 16 << 10, DeadLetterTopic: topic + ".dlq"})
				publishOK(t, p, []*schema.Event{e})
				return consume(t, brokers, topic+".dlq", 1)[0].Value
			}},
		{"a Kafka dead-letter topic that refuses the letter still gets the identifying fields",
			big(10 << 10), "none", func(t *testing.T, e *schema.Event) []byte {
				brokers := testkit.FakeKafka(t)
				topic := uniqueTopic(t)
				cl := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
				res, err := cl.CreateTopics(context.Background(), &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
					Topic: topic + ".dlq", NumPartitions: 1, ReplicationFactor: 1,
					ConfigEntries: []kafka.ConfigEntry{{ConfigName: "max.message.bytes", ConfigValue: "900"}}}}})
				if err != nil || res.Errors[topic+".dlq"] != nil {
					t.Fatalf("create the dead-letter topic: %v %v", err, res)
				}
				p, _ := newTestKafka(t, KafkaConfig{Brokers: brokers, Topic: topic, CreateTopic: true,
					MaxMessageBytes: 8 << 10, DeadLetterTopic: topic + ".dlq"})
				publishOK(t, p, []*schema.Event{e})
				return consume(t, brokers, topic+".dlq", 1)[0].Value
			}},
		{"a JetStream dead-letter subject gets the event without its large fields when the whole does not fit",
			big(20 << 10), "slim", func(t *testing.T, e *schema.Event) []byte {
				nc := startNATS(t, 8<<10).connect(t)
				p, _ := newTestJetStream(t, nc, JetStreamConfig{CreateStream: true, DeadLetterSubject: "tagstream.deadletter"})
				publishOK(t, p, []*schema.Event{e})
				return readStream(t, nc, p.Stream()+deadLetterStreamSuffix)[0].data
			}},
		{"a core NATS dead-letter subject gets the event without its large fields when the whole does not fit",
			big(8000), "slim", func(t *testing.T, e *schema.Event) []byte {
				ns := startNATS(t, 4096)
				ch := ns.subscribe(t, "tagstream.deadletter", 1)
				p, err := NewNATS(ns.connect(t), NATSConfig{DeadLetterSubject: "tagstream.deadletter"}, testLogger(t), nil)
				if err != nil {
					t.Fatal(err)
				}
				publishOK(t, p, []*schema.Event{e})
				return testkit.Receive(t, ch, 10*time.Second, "the dead letter").Data
			}},
		{"a dead-letter file gets the whole event and the identifying fields", big(40 << 10), "whole",
			func(t *testing.T, e *schema.Event) []byte {
				path := filepath.Join(t.TempDir(), "dead.ndjson")
				dl, err := OpenDeadLetterFile(path)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = dl.Close() })
				p, _ := newTestKafka(t, KafkaConfig{Brokers: testkit.FakeKafka(t), MaxMessageBytes: 4096, DeadLetter: dl})
				publishOK(t, p, []*schema.Event{e})
				raw, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				return raw
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkLetter(t, tt.letter(t, tt.event), tt.event, tt.wantEvent)
		})
	}
	t.Run("a gap marker's letter names its tag and from cursor", func(t *testing.T) {
		g := schema.NewGap("sunset", schema.DefaultSource, schema.Gap{FromCursor: "c1", ToCursor: "c9", Missing: -1,
			Reason: "gone", DetectedAt: time.Unix(0, 0)})
		var l letterJSON
		if err := json.Unmarshal(AppendLetter(nil, Letter{Event: g, Reason: "r"}, g.AppendJSON(nil), 10, time.Unix(0, 0)), &l); err != nil {
			t.Fatal(err)
		}
		if l.Tag != "sunset" || l.Cursor != "c1" || l.EventID != g.ID || !l.Truncated {
			t.Fatalf("gap letter %+v", l)
		}
	})
	t.Run("the identifying fields are cut to a bound, never dropped", func(t *testing.T) {
		e := big(10)
		b := AppendLetter(nil, Letter{Event: e, Reason: strings.Repeat("é", 5000)}, e.AppendJSON(nil), 1, time.Unix(0, 0))
		var l letterJSON
		if err := json.Unmarshal(b, &l); err != nil {
			t.Fatal(err)
		}
		if len(l.Reason) > maxLetterField || l.MediaID != e.Data.MediaID {
			t.Fatalf("letter of %d bytes: reason of %d bytes, media id %q", len(b), len(l.Reason), l.MediaID)
		}
	})
}
