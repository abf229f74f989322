package publisher

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tagstream/tagstream/internal/testkit"
	"github.com/tagstream/tagstream/schema"
)

// storedMsg is one message read back from a stream.
type storedMsg struct {
	subject string
	header  nats.Header
	event   *schema.Event
	data    []byte
}

// readStream returns every message of a stream, in stream order. One ordered consumer delivers them all: a
// request per message (GetMsg) made this a sixth of the package's CPU under -race.
func readStream(t testing.TB, nc *nats.Conn, stream string) []storedMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []storedMsg
	if info.State.Msgs == 0 {
		return out
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		t.Fatalf("stream %s consumer: %v", stream, err)
	}
	it, err := c.Messages()
	if err != nil {
		t.Fatalf("stream %s messages: %v", stream, err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := it.Next()
		if err != nil {
			t.Fatalf("get msg %d: %v", seq, err)
		}
		md, err := m.Metadata()
		if err != nil {
			t.Fatalf("msg %d metadata: %v", seq, err)
		}
		if md.Sequence.Stream != seq {
			t.Fatalf("get msg %d: the stream's next message is %d (a gap)", seq, md.Sequence.Stream)
		}
		sm := storedMsg{subject: m.Subject(), header: m.Headers(), data: m.Data()}
		if e, err := schema.UnmarshalEvent(sm.data); err == nil {
			sm.event = e
		}
		out = append(out, sm)
	}
	return out
}

// newTestJetStream builds a JetStream publisher with fast retries on a fresh registry.
func newTestJetStream(t testing.TB, nc *nats.Conn, cfg JetStreamConfig) (*JetStream, *prometheus.Registry) {
	t.Helper()
	if cfg.Retry == (RetryConfig{}) {
		cfg.Retry = RetryConfig{InitialInterval: 20 * time.Millisecond, MaxInterval: 200 * time.Millisecond}
	}
	if cfg.AckTimeout == 0 {
		cfg.AckTimeout = 2 * time.Second
	}
	reg := prometheus.NewRegistry()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := NewJetStream(ctx, nc, cfg, testLogger(t), reg)
	if err != nil {
		t.Fatalf("NewJetStream: %v", err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p, reg
}

func publishOK(t testing.TB, p Publisher, events []*schema.Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Publish(ctx, events); err != nil {
		t.Fatalf("Publish: %v", err)
	}
}

func TestJetStreamPublishWaitsForEveryAck(t *testing.T) {
	t.Parallel()
	ns := startNATS(t, 0)
	nc := ns.connect(t)
	p, reg := newTestJetStream(t, nc, JetStreamConfig{CreateStream: true})
	events := fixtureEvents(t)
	publishOK(t, p, events)

	got := readStream(t, nc, p.Stream())
	if len(got) != len(events) {
		t.Fatalf("stream holds %d messages, want %d", len(got), len(events))
	}
	for i, m := range got {
		if m.event == nil || m.event.ID != events[i].ID {
			t.Fatalf("message %d is not event %s: %q", i, events[i].ID, m.data)
		}
		if m.subject != "tagstream.media.ts" {
			t.Fatalf("message %d subject %q", i, m.subject)
		}
		if id := m.header.Get(jetstream.MsgIDHeader); id != events[i].ID {
			t.Fatalf("message %d Nats-Msg-Id %q, want %q", i, id, events[i].ID)
		}
		if want := events[i].AppendJSON(nil); string(m.data) != string(want) {
			t.Fatalf("message %d body differs from the structured event", i)
		}
	}
	n := float64(len(events))
	for name, want := range map[string]float64{
		"tagstream_publisher_published_total":  n,
		"tagstream_publisher_acks_total":       n,
		"tagstream_publisher_duplicates_total": 0,
		"tagstream_publisher_in_flight":        0,
		"tagstream_publisher_publish_seconds":  1,
	} {
		if got := counter(t, reg, name, map[string]string{"publisher": "jetstream"}); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

func TestJetStreamRepublishIsDeduplicated(t *testing.T) {
	t.Parallel()
	ns := startNATS(t, 0)
	nc := ns.connect(t)
	p, reg := newTestJetStream(t, nc, JetStreamConfig{CreateStream: true})
	events := testkit.MediaEvents("sunset", 0, 50, 100)
	publishOK(t, p, events)
	publishOK(t, p, events[10:40]) // a crash between publish and cursor commit re-publishes a batch
	publishOK(t, p, testkit.MediaEvents("sunset", 50, 5, 100))

	got := readStream(t, nc, p.Stream())
	if len(got) != 55 {
		t.Fatalf("stream holds %d messages, want 55 (re-published ones dropped)", len(got))
	}
	if d := counter(t, reg, "tagstream_publisher_duplicates_total", nil); d != 30 {
		t.Fatalf("duplicates_total = %v, want 30", d)
	}
	if a := counter(t, reg, "tagstream_publisher_acks_total", nil); a != 85 {
		t.Fatalf("acks_total = %v, want 85", a)
	}
}

func TestJetStreamKeepsPerTagOrderUnderConcurrentPublishers(t *testing.T) {
	t.Parallel()
	ns := startNATS(t, 0)
	nc := ns.connect(t)
	p, _ := newTestJetStream(t, nc, JetStreamConfig{CreateStream: true, MaxPending: 64})
	rs := tagStream{tags: []string{"a", "b", "new york", "東京", "x.y"}, batches: 8, perBatch: 33, captionBytes: 200,
		timeout: 30 * time.Second}
	rs.run(t, p, nil)
	got := readStream(t, nc, p.Stream())
	if len(got) != rs.total() {
		t.Fatalf("stream holds %d messages, want %d", len(got), rs.total())
	}
	next := map[string]int{}
	for _, m := range got {
		tag, err := TagFromSubject(DefaultSubjectPrefix, m.subject)
		if err != nil {
			t.Fatal(err)
		}
		if m.event.Subject != tag {
			t.Fatalf("the subject of tag %q holds an event of tag %q", tag, m.event.Subject)
		}
		inTagOrder(t, next, tag, m.event.Data.MediaID)
	}
}

func TestJetStreamHostileTagsRoundTripThroughSubjects(t *testing.T) {
	t.Parallel()
	ns := startNATS(t, 0)
	nc := ns.connect(t)
	p, _ := newTestJetStream(t, nc, JetStreamConfig{CreateStream: true, SubjectPrefix: "ig.tags"})
	var events []*schema.Event
	for i, tag := range hostileTags {
		events = append(events, testkit.MediaEvents(tag, i, 1, 10)...)
	}
	publishOK(t, p, events)
	got := readStream(t, nc, p.Stream())
	if len(got) != len(events) {
		t.Fatalf("stream holds %d messages, want %d", len(got), len(events))
	}
	for i, m := range got {
		tag, err := TagFromSubject("ig.tags", m.subject)
		if err != nil || tag != events[i].Subject {
			t.Fatalf("subject %q decodes to %q, %v; want %q", m.subject, tag, err, events[i].Subject)
		}
		if strings.Count(m.subject, ".") != 2 {
			t.Fatalf("subject %q is not <prefix>.<one token>", m.subject)
		}
	}
}

func TestJetStreamSurvivesServerRestartMidStream(t *testing.T) {
	t.Parallel()
	ns := startNATS(t, 0)
	nc := ns.connect(t)
	p, reg := newTestJetStream(t, nc, JetStreamConfig{CreateStream: true, AckTimeout: 500 * time.Millisecond})
	rs := tagStream{tags: []string{"one", "two"}, batches: 12, perBatch: 33, captionBytes: 500, restartAfter: 5,
		timeout: 60 * time.Second}
	rs.run(t, p, ns.restart)
	got := readStream(t, nc, p.Stream())
	seen := map[string]int{}
	for _, m := range got {
		seen[m.event.ID]++
	}
	for _, tag := range rs.tags {
		for _, e := range testkit.MediaEvents(tag, 0, rs.batches*rs.perBatch, 0) {
			if seen[e.ID] != 1 {
				t.Fatalf("event %s of %s stored %d times, want exactly once", e.Data.MediaID, tag, seen[e.ID])
			}
		}
	}
	if len(got) != rs.total() {
		t.Fatalf("stream holds %d messages, want %d", len(got), rs.total())
	}
	t.Logf("retries=%v duplicates=%v", counter(t, reg, "tagstream_publisher_retries_total", nil),
		counter(t, reg, "tagstream_publisher_duplicates_total", nil))
}

func TestJetStreamBlocksWhileServerIsDownAndReturnsWhenContextEnds(t *testing.T) {
	t.Parallel()
	ns := startNATS(t, 0)
	nc := ns.connect(t)
	p, reg := newTestJetStream(t, nc, JetStreamConfig{CreateStream: true, AckTimeout: 200 * time.Millisecond})
	ns.stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := p.Publish(ctx, testkit.MediaEvents("down", 0, 10, 10))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Publish with the server down = %v, want a context deadline error", err)
	}
	if r := counter(t, reg, "tagstream_publisher_retries_total", nil); r < 1 {
		t.Fatalf("retries_total = %v, want retries while the server is down", r)
	}
	// When the server returns, the same batch goes through (the poller retries it after its cursor stayed put).
	ns.start()
	publishOK(t, p, testkit.MediaEvents("down", 0, 10, 10))
	if got := readStream(t, nc, p.Stream()); len(got) != 10 {
		t.Fatalf("stream holds %d messages after the server came back, want 10", len(got))
	}
}

func TestJetStreamDeadLettersEventsTheServerRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		maxPayload int32
		maxMsgSize int32
		wantReason string
	}{
		{"an event above max_payload is refused by the client", 8 << 10, 0, "max_payload"},
		{"an event above the stream's max message size is refused by the stream", 0, 8 << 10, "error code 10054"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := startNATS(t, tt.maxPayload)
			nc := ns.connect(t)
			if tt.maxMsgSize > 0 {
				js, _ := jetstream.New(nc)
				if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "SMALL",
					Subjects: []string{"tagstream.media.>"}, MaxMsgSize: tt.maxMsgSize}); err != nil {
					t.Fatal(err)
				}
			}
			p, reg := newTestJetStream(t, nc, JetStreamConfig{CreateStream: true, DeadLetterSubject: "tagstream.deadletter"})
			events := testkit.MediaEvents("big", 0, 5, 100)
			events[2] = testkit.MediaEvents("big", 2, 1, 20<<10)[0] // 20 KiB caption
			publishOK(t, p, events)

			got := readStream(t, nc, p.Stream())
			if len(got) != 4 {
				t.Fatalf("stream holds %d messages, want the 4 small events", len(got))
			}
			for _, m := range got {
				if m.event.ID == events[2].ID {
					t.Fatal("the oversized event was stored in the main stream")
				}
			}
			dl := readStream(t, nc, p.Stream()+"_DEADLETTER")
			if len(dl) != 1 {
				t.Fatalf("dead-letter stream holds %d messages, want 1", len(dl))
			}
			var letter struct {
				Reason    string          `json:"reason"`
				EventID   string          `json:"event_id"`
				Tag       string          `json:"tag"`
				Truncated bool            `json:"truncated"`
				Event     json.RawMessage `json:"event"`
			}
			if err := json.Unmarshal(dl[0].data, &letter); err != nil {
				t.Fatalf("dead letter is not JSON: %v", err)
			}
			if letter.EventID != events[2].ID || letter.Tag != "big" || !strings.Contains(letter.Reason, tt.wantReason) {
				t.Fatalf("dead letter %+v does not name the event and reason %q", letter, tt.wantReason)
			}
			if !strings.Contains(dl[0].header.Get(DeadLetterReasonHeader), tt.wantReason) {
				t.Fatalf("reason header %q", dl[0].header.Get(DeadLetterReasonHeader))
			}
			if d := counter(t, reg, "tagstream_publisher_dead_letters_total", map[string]string{"destination": "jetstream"}); d != 1 {
				t.Fatalf("dead_letters_total = %v, want 1", d)
			}
		})
	}
}

func TestJetStreamStreamResolutionAndProbeAgree(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		setup   []jetstream.StreamConfig
		cfg     JetStreamConfig
		wantErr error
		stream  string   // the stream published into
		create  bool     // created by NewJetStream (the probe says it would be)
		naming  []string // what the error names
	}{
		{"no stream and creation off is a clear error", nil, JetStreamConfig{}, ErrNoStream, "", false,
			[]string{`"tagstream.media.>"`, "CreateStream is off"}},
		{"no stream with creation on creates the default stream", nil, JetStreamConfig{CreateStream: true}, nil,
			DefaultStreamName, true, nil},
		{"a stream of another name covering the prefix is used without a name",
			[]jetstream.StreamConfig{{Name: "MEDIA", Subjects: []string{"tagstream.media.>"}}},
			JetStreamConfig{CreateStream: true}, nil, "MEDIA", false, nil},
		{"a wider stream covering the prefix is used without a name",
			[]jetstream.StreamConfig{{Name: "EVERYTHING", Subjects: []string{"tagstream.>"}}},
			JetStreamConfig{}, nil, "EVERYTHING", false, nil},
		{"a stream covering the prefix among other subjects is used without a name",
			[]jetstream.StreamConfig{{Name: "MIXED", Subjects: []string{"other.x", "tagstream.*.>"}}},
			JetStreamConfig{}, nil, "MIXED", false, nil},
		{"a stream that overlaps the prefix without covering it is a clear error, creation on or off",
			[]jetstream.StreamConfig{{Name: "COFFEE", Subjects: []string{"tagstream.media.coffee"}}},
			JetStreamConfig{CreateStream: true}, ErrNoStream, "", false,
			[]string{`"COFFEE"`, `"tagstream.media.coffee"`, `"tagstream.media.>"`}},
		{"two partial streams are both named",
			[]jetstream.StreamConfig{{Name: "COFFEE", Subjects: []string{"tagstream.media.coffee"}},
				{Name: "TEA", Subjects: []string{"tagstream.media.tea"}}},
			JetStreamConfig{}, ErrNoStream, "", false, []string{`"COFFEE"`, `"TEA"`, `"tagstream.media.tea"`}},
		{"a stream taking the default name on other subjects is a clear error",
			[]jetstream.StreamConfig{{Name: DefaultStreamName, Subjects: []string{"elsewhere.>"}}},
			JetStreamConfig{CreateStream: true}, ErrNoStream, "", false, []string{`"TAGSTREAM"`, `"elsewhere.>"`}},
		{"a named stream that covers the prefix is used",
			[]jetstream.StreamConfig{{Name: "MINE", Subjects: []string{"tagstream.>"}}},
			JetStreamConfig{Stream: "MINE"}, nil, "MINE", false, nil},
		{"a named stream that does not cover the prefix is refused",
			[]jetstream.StreamConfig{{Name: "OTHER", Subjects: []string{"other.>"}}},
			JetStreamConfig{Stream: "OTHER"}, ErrNoStream, "", false, []string{`"OTHER"`, `"other.>"`}},
		{"a missing named stream is created with that name", nil,
			JetStreamConfig{Stream: "MINE", CreateStream: true}, nil, "MINE", true, nil},
		{"a missing named stream with creation off is a clear error", nil,
			JetStreamConfig{Stream: "MINE"}, ErrNoStream, "", false, []string{`"MINE"`}},
		{"a missing named stream whose subjects another stream holds is a clear error naming both",
			[]jetstream.StreamConfig{{Name: "EVERYTHING", Subjects: []string{"tagstream.>"}}},
			JetStreamConfig{Stream: DefaultStreamName, CreateStream: true}, ErrNoStream, "", false,
			[]string{`"TAGSTREAM"`, `"EVERYTHING"`, `"tagstream.>"`}},
		{"the dead-letter subject is found in a stream of any name",
			[]jetstream.StreamConfig{{Name: "EVENTS", Subjects: []string{"tagstream.media.>"}},
				{Name: "DLQ", Subjects: []string{"tagstream.dlq"}}},
			JetStreamConfig{DeadLetterSubject: "tagstream.dlq"}, nil, "EVENTS", false, nil},
		{"a dead-letter subject no stream covers with creation off is a clear error",
			[]jetstream.StreamConfig{{Name: "EVENTS", Subjects: []string{"tagstream.media.>"}}},
			JetStreamConfig{DeadLetterSubject: "tagstream.dlq"}, ErrNoStream, "", false, []string{"DeadLetterSubject"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel() // a server of its own
			nc := startNATS(t, 0).connect(t)
			ctx := context.Background()
			js, _ := jetstream.New(nc)
			for _, sc := range tt.setup {
				if _, err := js.CreateStream(ctx, sc); err != nil {
					t.Fatal(err)
				}
			}
			streams := func() []string {
				var names []string
				l := js.StreamNames(ctx)
				for n := range l.Name() {
					names = append(names, n)
				}
				slices.Sort(names)
				return names
			}
			before := streams()

			probe, perr := ProbeJetStream(ctx, nc, tt.cfg)
			if after := streams(); !slices.Equal(before, after) {
				t.Fatalf("the probe changed the streams from %q to %q", before, after)
			}
			p, err := NewJetStream(ctx, nc, tt.cfg, testLogger(t), nil)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !errors.Is(perr, tt.wantErr) {
					t.Fatalf("NewJetStream = %v, ProbeJetStream = %v; want both %v", err, perr, tt.wantErr)
				}
				if err.Error() != perr.Error() {
					t.Fatalf("the probe and the constructor disagree:\n%v\n%v", perr, err)
				}
				for _, s := range tt.naming {
					if !strings.Contains(err.Error(), s) {
						t.Fatalf("error %q does not name %s", err, s)
					}
				}
				return
			}
			if err != nil || perr != nil {
				t.Fatalf("NewJetStream = %v, ProbeJetStream = %v", err, perr)
			}
			t.Cleanup(func() { _ = p.Close() })
			if p.Stream() != tt.stream || probe.Stream != tt.stream || probe.Create != tt.create {
				t.Fatalf("publisher on %q, probe %+v; want stream %q, create %v", p.Stream(), probe, tt.stream, tt.create)
			}
			if created := !slices.Contains(before, tt.stream); created != tt.create {
				t.Fatalf("stream %q created = %v, want %v", tt.stream, created, tt.create)
			}
			publishOK(t, p, testkit.MediaEvents("sunset", 0, 3, 10))
			if got := readStream(t, nc, tt.stream); len(got) != 3 {
				t.Fatalf("stream %s holds %d messages, want 3", tt.stream, len(got))
			}
			again, err := ProbeJetStream(ctx, nc, tt.cfg)
			if err != nil || again.Stream != tt.stream || again.Create || again.Msgs != 3 || again.Duplicates <= 0 {
				t.Fatalf("probe after publishing = %+v, %v; want stream %s, 3 messages, a duplicate window", again, err, tt.stream)
			}
		})
	}
}

func TestJetStreamConfigValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		cfg   JetStreamConfig
		field string
	}{
		{"a prefix with a wildcard", JetStreamConfig{SubjectPrefix: "a.*"}, "SubjectPrefix"},
		{"a prefix with an empty token", JetStreamConfig{SubjectPrefix: "a..b"}, "SubjectPrefix"},
		{"a stream name with a dot", JetStreamConfig{Stream: "a.b"}, "Stream"},
		{"negative replicas", JetStreamConfig{Replicas: -1}, "Replicas"},
		{"negative max pending", JetStreamConfig{MaxPending: -1}, "MaxPending"},
		{"a dead-letter subject under the prefix", JetStreamConfig{DeadLetterSubject: "tagstream.media.dlq"}, "DeadLetterSubject"},
		{"a retry multiplier below one", JetStreamConfig{Retry: RetryConfig{Multiplier: 0.5}}, "Retry.Multiplier"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.cfg.withDefaults()
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("error %v does not name %s", err, tt.field)
			}
		})
	}
}
