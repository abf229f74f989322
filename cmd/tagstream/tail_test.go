package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tagstream/tagstream/internal/consume"
	"github.com/tagstream/tagstream/internal/testkit"
	"github.com/tagstream/tagstream/publisher"
	"github.com/tagstream/tagstream/schema"
)

// mediaEvents builds n media events of tag.
func mediaEvents(tag string, n int) []*schema.Event {
	out := make([]*schema.Event, n)
	for i := range out {
		id := fmt.Sprintf("%d_7", i+1)
		created := time.Date(2015, 9, 29, 20, 6, i, 0, time.UTC)
		out[i] = &schema.Event{
			SpecVersion: "1.0", ID: schema.EventID(tag, id), Source: schema.DefaultSource,
			Type: schema.MediaEventType, Subject: tag, Time: created, DataContentType: "application/json",
			Data: &schema.MediaData{MediaID: id, Type: "image", Tag: tag, CreatedAt: created, FetchedAt: created,
				Caption: "caption " + id, Link: "https://instagram.com/p/" + id + "/", User: schema.User{Username: "ann"}},
		}
	}
	return out
}

// tailEvents parses the output of tail --json.
func tailEvents(t *testing.T, out string) []*schema.Event {
	t.Helper()
	var evs []*schema.Event
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		ev, err := schema.UnmarshalEvent([]byte(line))
		if err != nil {
			t.Fatalf("tail --json printed %q: %v", line, err)
		}
		evs = append(evs, ev)
	}
	return evs
}

func TestTailReadsWhatThePublishersWrote(t *testing.T) {
	t.Parallel()
	quiet := slog.New(slog.DiscardHandler)
	ns := testkit.StartNATS(t)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := publisher.NewJetStream(t.Context(), nc, publisher.JetStreamConfig{SubjectPrefix: "ig.media", CreateStream: true}, quiet, nil)
	if err != nil {
		t.Fatal(err)
	}
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	brokers := strings.Join(cluster.ListenAddrs(), ",")
	kf, err := publisher.NewKafka(t.Context(), publisher.KafkaConfig{Brokers: cluster.ListenAddrs(), Topic: "ig.media", CreateTopic: true, Partitions: 3}, quiet, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kf.Close() })
	evs := append(mediaEvents("sunset", 4), mediaEvents("new_york", 5)...)
	for _, p := range []publisher.Publisher{js, kf} {
		if err := p.Publish(t.Context(), evs); err != nil {
			t.Fatal(err)
		}
	}
	jsArgs := []string{"tail", "--nats-url", ns.ClientURL(), "--subject-prefix", "ig.media", "--from-beginning"}
	kafkaArgs := []string{"tail", "--sink", "kafka", "--kafka-brokers", brokers, "--kafka-topic", "ig.media", "--from-beginning"}
	tests := []struct {
		name  string
		args  []string
		lines int
		check func(t *testing.T, out string)
	}{
		{"JetStream with --tag and --json prints one tag's events as CloudEvents", append(jsArgs, "--tag", "new_york", "--json", "--max", "5"), 5,
			func(t *testing.T, out string) {
				for _, e := range tailEvents(t, out) {
					if e.Subject != "new_york" || e.Data.User.Username != "ann" {
						t.Errorf("tail printed %+v", e)
					}
				}
			}},
		{"JetStream with --max stops after that many", append(jsArgs, "--max", "3"), 3,
			func(t *testing.T, out string) {
				if strings.Count(out, "#sunset") != 3 || !strings.Contains(out, "2015-09-29 20:06:00") {
					t.Errorf("tail printed:\n%s", out)
				}
			}},
		{"Kafka binary mode with --json prints structured events", append(kafkaArgs, "--json", "--max", "9"), 9,
			func(t *testing.T, out string) {
				if got := tailEvents(t, out); len(got) != 9 || got[0].DataContentType != "application/json" {
					t.Errorf("tail printed %d events: %s", len(got), out)
				}
			}},
		{"Kafka with --tag keeps one tag and --idle ends when nothing comes", append(kafkaArgs, "--tag", "sunset", "--idle", "300ms"), 4,
			func(t *testing.T, out string) {
				if strings.Count(out, "#sunset") != 4 {
					t.Errorf("tail printed:\n%s", out)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := run(t, nil, tt.args...)
			if r.code != 0 {
				t.Fatalf("tail exited %d: %s", r.code, r.stderr)
			}
			if n := strings.Count(r.stdout, "\n"); n != tt.lines {
				t.Errorf("tail printed %d lines, want %d:\n%s", n, tt.lines, r.stdout)
			}
			tt.check(t, r.stdout)
		})
	}
}

func TestTailFailsWhenThereIsNothingToRead(t *testing.T) {
	t.Parallel()
	ns := testkit.StartNATS(t)
	r := run(t, nil, "tail", "--nats-url", ns.ClientURL(), "--max", "1")
	if r.code != 1 || !strings.Contains(r.stderr, "has the pipeline run yet?") {
		t.Errorf("exit %d, stderr %s", r.code, r.stderr)
	}
}

func TestPrettyLine(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []string
	}{
		{"a media event shows time, tag, type, id, user and caption",
			`{"specversion":"1.0","id":"e1","type":"io.tagstream.media.v1","subject":"sunset","time":"2015-09-29T20:06:00Z","data":{"media_id":"1_2","type":"image","link":"https://x/p/1","caption":"red\nsky","user":{"username":"ann"}}}`,
			[]string{"2015-09-29 20:06:00", "#sunset", "image", "1_2", "@ann", `"red sky"`, "https://x/p/1"}},
		{"a gap marker says what is missing",
			`{"id":"g1","type":"io.tagstream.gap.v1","subject":"tea","data":{"from_cursor":"A","to_cursor":"B","missing":null,"reason":"retention"}}`,
			[]string{"#tea", "GAP", "unknown media missing", "A and B", "retention"}},
		{"an unreadable body is shown clipped", `not json`, []string{"unreadable event: not json"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := consume.Message{JSON: []byte(tt.body)}
			m.Event, m.Err = schema.UnmarshalEvent(m.JSON)
			var out bytes.Buffer
			newPrinter(&out, false).print(m)
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("line %q does not contain %q", out.String(), w)
				}
			}
		})
	}
}

func TestABrokerThatDoesNotAnswerIsSaidAtOnceWithStatusThree(t *testing.T) {
	t.Parallel()
	dead := testkit.FreeAddr(t)
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"tail on NATS", []string{"tail", "--nats-url", "nats://" + dead}, []string{"tagstream tail: cannot reach the NATS server at " + dead + ": connection refused (nats-url)", "is the broker running?"}},
		{"tail on Kafka", []string{"tail", "--sink", "kafka", "--kafka-brokers", dead}, []string{"cannot reach any Kafka broker at " + dead + ": connection refused (kafka-brokers)"}},
		{"the demo on an external NATS server", []string{"demo", "--nats-url", "nats://" + dead, "--duration", "1s"}, []string{"tagstream demo: cannot reach the NATS server at " + dead + ": connection refused"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := run(t, nil, tt.args...)
			if r.code != exitUnreachable {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, exitUnreachable, r.stdout, r.stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr does not say %q:\n%s", w, r.stderr)
				}
			}
		})
	}
}

func TestTailGivesTheFirstEventTheConnectTimeout(t *testing.T) {
	for _, tc := range []struct {
		n             int
		idle, connect time.Duration
		want          time.Duration
	}{
		{0, 300 * time.Millisecond, 3 * time.Second, 3 * time.Second},
		{0, 10 * time.Second, 3 * time.Second, 10 * time.Second},
		{1, 300 * time.Millisecond, 3 * time.Second, 300 * time.Millisecond},
		{5, 10 * time.Second, 3 * time.Second, 10 * time.Second},
	} {
		if got := idleWait(tc.n, tc.idle, tc.connect); got != tc.want {
			t.Errorf("idleWait(%d, %s, %s) = %s, want %s", tc.n, tc.idle, tc.connect, got, tc.want)
		}
	}
}
