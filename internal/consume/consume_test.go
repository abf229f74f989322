package consume

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tagstream/tagstream/internal/testkit"
	"github.com/tagstream/tagstream/publisher"
	"github.com/tagstream/tagstream/schema"
)

// read returns the media ids of the next n messages, failing on anything that is not a media event.
func read(t *testing.T, c *Consumer, n int) []string {
	t.Helper()
	var ids []string
	for len(ids) < n {
		m, err := c.Next(testkit.Context(t, 30*time.Second))
		if err != nil {
			t.Fatalf("after %d of %d messages: %v", len(ids), n, err)
		}
		if m.Event == nil || m.Event.Data == nil {
			t.Fatalf("%s is not a media event: %v", m.Where(), m.Err)
		}
		ids = append(ids, m.Event.Subject+"/"+m.Event.Data.MediaID)
	}
	return ids
}

// nothingElse publishes a marker event of tag and requires it to be the next message: nothing unexpected was
// waiting before it.
func nothingElse(t *testing.T, c *Consumer, pub publisher.Publisher, tag string) {
	t.Helper()
	n := int(markers.Add(1)) + 1000 // a new id each time: JetStream drops a repeated one
	if err := pub.Publish(t.Context(), testkit.MediaEvents(tag, n, 1, 10)); err != nil {
		t.Fatal(err)
	}
	if got := read(t, c, 1); got[0] != fmt.Sprintf("%s/%d_1", tag, n) {
		t.Errorf("read %v before the marker", got)
	}
}

var markers atomic.Int32

// quiet is the publishers' logger.
var quiet = slog.New(slog.DiscardHandler)

func ids(evs []*schema.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Subject + "/" + e.Data.MediaID
	}
	return out
}

func TestJetStreamReadsFromTheStartOrOnlyWhatComesNext(t *testing.T) {
	t.Parallel()
	nc := testkit.ConnectNATS(t, testkit.StartNATS(t).ClientURL())
	pub, err := publisher.NewJetStream(t.Context(), nc, publisher.JetStreamConfig{SubjectPrefix: "t.media", CreateStream: true}, quiet, nil)
	if err != nil {
		t.Fatal(err)
	}
	before := append(testkit.MediaEvents("sunset", 1, 2, 10), testkit.MediaEvents("東京", 1, 1, 10)...)
	if err := pub.Publish(t.Context(), before); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		cfg    Config
		want   []string // before New
		after  []string // published after New
		marker string   // the tag of the marker
	}{
		{"from the start every stored event comes, in stream order", Config{Start: StartFirst}, ids(before), nil, "sunset"},
		{"only what comes next", Config{}, nil, ids(testkit.MediaEvents("coffee", 1, 2, 10)), "sunset"},
		{"a tag filter keeps one tag", Config{Start: StartFirst, Tags: []string{"東京"}}, []string{"東京/1_1"}, nil, "東京"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.Kind, cfg.Conn, cfg.SubjectPrefix = JetStream, nc, "t.media"
			c, err := New(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if c.Stream() != publisher.DefaultStreamName {
				t.Errorf("stream %q, want the one covering the prefix", c.Stream())
			}
			want := tt.want
			if tt.after != nil {
				evs := testkit.MediaEvents("coffee", 1, 2, 10)
				if err := pub.Publish(t.Context(), evs); err != nil {
					t.Fatal(err)
				}
				want = tt.after
			}
			if got := read(t, c, len(want)); strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("read %v, want %v", got, want)
			}
			nothingElse(t, c, pub, tt.marker)
		})
	}
}

func TestCoreNATSSeesWhatIsPublishedWhileSubscribed(t *testing.T) {
	t.Parallel()
	nc := testkit.ConnectNATS(t, testkit.StartNATS(t).ClientURL())
	if _, err := New(t.Context(), Config{Kind: NATS, Conn: nc, Start: StartFirst}); !errors.Is(err, ErrConfig) {
		t.Errorf("StartFirst on core NATS: %v, want ErrConfig", err)
	}
	c, err := New(t.Context(), Config{Kind: NATS, Conn: nc, Tags: []string{"tea"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pub, err := publisher.NewNATS(nc, publisher.NATSConfig{}, quiet, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(t.Context(), append(testkit.MediaEvents("sunset", 1, 2, 10), testkit.MediaEvents("tea", 1, 2, 10)...)); err != nil {
		t.Fatal(err)
	}
	if got := read(t, c, 2); strings.Join(got, " ") != "tea/1_1 tea/2_1" {
		t.Errorf("read %v", got)
	}
	nc.Publish(publisher.Subject(publisher.DefaultSubjectPrefix, "tea"), []byte("not json"))
	m, err := c.Next(testkit.Context(t, 30*time.Second))
	if err != nil || !errors.Is(m.Err, ErrNotEvent) || string(m.JSON) != "not json" {
		t.Errorf("a record that is not an event: %+v, %v", m, err)
	}
}

func TestKafkaDecodesBothContentModes(t *testing.T) {
	t.Parallel()
	brokers := testkit.FakeKafka(t)
	for _, mode := range []struct {
		name string
		mode publisher.ContentMode
	}{{"binary", publisher.ContentBinary}, {"structured", publisher.ContentStructured}} {
		t.Run("in "+mode.name+" mode every event is rebuilt with its position", func(t *testing.T) {
			topic := "t-" + mode.name
			pub, err := publisher.NewKafka(t.Context(), publisher.KafkaConfig{Brokers: brokers, Topic: topic,
				CreateTopic: true, Partitions: 2, ContentMode: mode.mode}, quiet, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer pub.Close()
			first := append(testkit.MediaEvents("sunset", 1, 3, 10), testkit.MediaEvents("coffee", 1, 2, 10)...)
			if err := pub.Publish(t.Context(), first); err != nil {
				t.Fatal(err)
			}
			all, err := New(t.Context(), Config{Kind: Kafka, Brokers: brokers, Topic: topic, Start: StartFirst})
			if err != nil {
				t.Fatal(err)
			}
			defer all.Close()
			if len(all.Partitions()) != 2 {
				t.Errorf("partitions %v, want 2", all.Partitions())
			}
			got := map[string]Message{}
			for range first {
				m, err := all.Next(testkit.Context(t, 30*time.Second))
				if err != nil {
					t.Fatal(err)
				}
				if m.Event == nil {
					t.Fatalf("%s: %v", m.Where(), m.Err)
				}
				got[m.Event.ID] = m
			}
			for _, e := range first {
				m, ok := got[e.ID]
				switch {
				case !ok:
					t.Errorf("event %s missing", e.ID)
				case m.Event.Data.Caption != e.Data.Caption || !m.Event.Time.Equal(e.Time) || m.Key != e.Subject:
					t.Errorf("event %s read back as %+v (key %q)", e.ID, m.Event.Data, m.Key)
				case !strings.HasPrefix(m.Where(), fmt.Sprintf("p%d@", m.Partition)) || m.BrokerTime.IsZero():
					t.Errorf("position of %s: %s, broker time %v", e.ID, m.Where(), m.BrokerTime)
				}
			}

			// A consumer of what comes next, of one tag, sees only that.
			next, err := New(t.Context(), Config{Kind: Kafka, Brokers: brokers, Topic: topic, Tags: []string{"coffee"}})
			if err != nil {
				t.Fatal(err)
			}
			defer next.Close()
			if err := pub.Publish(t.Context(), append(testkit.MediaEvents("sunset", 10, 2, 10), testkit.MediaEvents("coffee", 10, 1, 10)...)); err != nil {
				t.Fatal(err)
			}
			if got := read(t, next, 1); got[0] != "coffee/10_1" {
				t.Errorf("read %v", got)
			}
			nothingElse(t, next, pub, "coffee")
		})
	}
}

func TestKafkaRecordsThatAreNotEventsAreReported(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		msg     kafka.Message
		wantTag string
	}{
		{"a value that is not JSON", kafka.Message{Value: []byte("garbage"), Key: []byte("tea")}, ""},
		{"a binary-mode record without its source", kafka.Message{Value: []byte(`{}`), Headers: []kafka.Header{
			{Key: publisher.HeaderID, Value: []byte("x")}, {Key: publisher.HeaderSubject, Value: []byte("tea")}}}, "tea"},
		{"a header given twice", kafka.Message{Value: []byte(`{}`), Headers: []kafka.Header{
			{Key: publisher.HeaderID, Value: []byte("x")}, {Key: publisher.HeaderID, Value: []byte("y")}}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := decodeKafka(tt.msg)
			if m.Event != nil || !errors.Is(m.Err, ErrNotEvent) || string(m.JSON) != string(tt.msg.Value) || m.Tag() != tt.wantTag {
				t.Errorf("decoded %+v", m)
			}
		})
	}
}

func TestNothingToReadYet(t *testing.T) {
	t.Parallel()
	nc := testkit.ConnectNATS(t, testkit.StartNATS(t).ClientURL())
	if _, err := New(t.Context(), Config{Kind: JetStream, Conn: nc}); !errors.Is(err, ErrNoStream) {
		t.Errorf("no stream: %v, want ErrNoStream", err)
	}
	if _, err := New(t.Context(), Config{Kind: Kafka, Brokers: testkit.FakeKafka(t), Topic: "none"}); !errors.Is(err, ErrNoTopic) {
		t.Errorf("no topic: %v, want ErrNoTopic", err)
	}
}
