package publisher

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tagstream/tagstream/internal/testkit"
	"github.com/tagstream/tagstream/schema"
)

// realKafka returns the brokers of a real Apache Kafka from TAGSTREAM_KAFKA_BROKERS. Without it the test is
// skipped, unless TAGSTREAM_INTEGRATION=1 demands the integration run, which then fails.
func realKafka(t testing.TB) []string {
	t.Helper()
	brokers := os.Getenv("TAGSTREAM_KAFKA_BROKERS")
	if brokers == "" {
		if os.Getenv("TAGSTREAM_INTEGRATION") == "1" {
			t.Fatal("TAGSTREAM_INTEGRATION=1 but TAGSTREAM_KAFKA_BROKERS is not set: start a broker with scripts/brokers.sh up")
		}
		t.Skip("no real Kafka: set TAGSTREAM_KAFKA_BROKERS (scripts/brokers.sh up DIR && . DIR/env)")
	}
	return strings.Split(brokers, ",")
}

// kafkaTarget is a Kafka to run a test against.
type kafkaTarget struct {
	name    string
	brokers func(t testing.TB) []string
}

// kafkaTargets are kfake (always) and the real broker (integration runs).
var kafkaTargets = []kafkaTarget{
	{"kfake", func(t testing.TB) []string { return testkit.FakeKafka(t) }},
	{"apache kafka", realKafka},
}

// uniqueTopic returns a topic name no other test run uses.
func uniqueTopic(t testing.TB) string {
	t.Helper()
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, t.Name())
	if len(name) > 150 {
		name = name[:150]
	}
	return fmt.Sprintf("tagstream-test-%s-%d", name, time.Now().UnixNano())
}

func newTestKafka(t testing.TB, cfg KafkaConfig) (*Kafka, *prometheus.Registry) {
	t.Helper()
	if cfg.Retry == (RetryConfig{}) {
		cfg.Retry = RetryConfig{InitialInterval: 20 * time.Millisecond, MaxInterval: 300 * time.Millisecond}
	}
	if cfg.Topic == "" {
		cfg.Topic = uniqueTopic(t)
		cfg.CreateTopic = true
	}
	reg := prometheus.NewRegistry()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := NewKafka(ctx, cfg, testLogger(t), reg)
	if err != nil {
		t.Fatalf("NewKafka: %v", err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p, reg
}

// consume reads n records of topic from the beginning. The client sends no client metrics (KIP-714) to the
// fake broker: their lz4 frames, with a 4 MB block each, were a tenth of the package's CPU under -race.
func consume(t testing.TB, brokers []string, topic string, n int, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100 * time.Millisecond),
		kgo.DisableClientMetrics()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records of %s before the timeout", len(out), n, topic)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Logf("fetch: %v", err) })
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	// Nothing beyond n: a short extra poll must find no more records.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	cl.PollFetches(ctx2).EachRecord(func(r *kgo.Record) { out = append(out, r) })
	return out
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func TestKafkaPublishWritesCloudEventsBinding(t *testing.T) {
	t.Parallel()
	for _, target := range kafkaTargets {
		for _, mode := range []struct {
			name        string
			mode        ContentMode
			contentType string
		}{
			{"binary", ContentBinary, "application/json"},
			{"structured", ContentStructured, "application/cloudevents+json"},
		} {
			t.Run(target.name+" in "+mode.name+" mode acknowledges every event with the ce headers", func(t *testing.T) {
				brokers := target.brokers(t)
				p, reg := newTestKafka(t, KafkaConfig{Brokers: brokers, ContentMode: mode.mode})
				events := fixtureEvents(t)
				publishOK(t, p, events)
				recs := consume(t, brokers, p.Topic(), len(events))
				if len(recs) != len(events) {
					t.Fatalf("topic holds %d records, want %d", len(recs), len(events))
				}
				for i, r := range recs {
					e := events[i]
					want := map[string]string{
						HeaderSpecVersion: "1.0", HeaderID: e.ID, HeaderType: schema.MediaEventType,
						HeaderSource: e.Source, HeaderSubject: "ts", HeaderContentType: mode.contentType,
						HeaderTime: e.Time.UTC().Format(time.RFC3339Nano),
					}
					for k, v := range want {
						if got := header(r, k); got != v {
							t.Fatalf("record %d header %s = %q, want %q", i, k, got, v)
						}
					}
					if string(r.Key) != "ts" {
						t.Fatalf("record %d key %q, want the tag", i, r.Key)
					}
					wantValue := e.DataJSON()
					if mode.mode == ContentStructured {
						wantValue = e.AppendJSON(nil)
					}
					if string(r.Value) != string(wantValue) {
						t.Fatalf("record %d value differs from the event's %s encoding", i, mode.name)
					}
				}
				if got := counter(t, reg, "tagstream_publisher_published_total", map[string]string{"publisher": "kafka"}); got != float64(len(events)) {
					t.Fatalf("published_total = %v, want %d", got, len(events))
				}
			})
		}
	}
}

func TestKafkaKeysKeepPerTagOrder(t *testing.T) {
	t.Parallel()
	for _, target := range kafkaTargets {
		t.Run(target.name+" puts each tag in one partition, in publish order, under concurrent publishers", func(t *testing.T) {
			brokers := target.brokers(t)
			p, _ := newTestKafka(t, KafkaConfig{Brokers: brokers, Partitions: 4})
			rs := tagStream{tags: []string{"a", "b", "c", "new york", "東京", "x.y"}, batches: 10, perBatch: 33,
				captionBytes: 300, timeout: 30 * time.Second}
			rs.run(t, p, nil)
			recs := consume(t, brokers, p.Topic(), rs.total())
			if len(recs) != rs.total() {
				t.Fatalf("topic holds %d records, want %d", len(recs), rs.total())
			}
			partition := map[string]int32{}
			next := map[string]int{}
			partitions := map[int32]bool{}
			for _, r := range recs {
				tag := string(r.Key)
				if pt, ok := partition[tag]; ok && pt != r.Partition {
					t.Fatalf("tag %q in partitions %d and %d", tag, pt, r.Partition)
				}
				partition[tag] = r.Partition
				partitions[r.Partition] = true
				var data schema.MediaData
				if err := json.Unmarshal(r.Value, &data); err != nil {
					t.Fatal(err)
				}
				inTagOrder(t, next, tag, data.MediaID)
			}
			if len(partitions) < 2 {
				t.Fatalf("all tags landed in one partition; the key does not spread tags")
			}
		})
	}
	t.Run("keying by media id puts the media id in the key", func(t *testing.T) {
		brokers := testkit.FakeKafka(t)
		p, _ := newTestKafka(t, KafkaConfig{Brokers: brokers, Key: KeyMediaID})
		events := testkit.MediaEvents("sunset", 0, 10, 10)
		publishOK(t, p, events)
		want := map[string]string{}
		for _, e := range events {
			want[e.ID] = e.Data.MediaID
		}
		recs := consume(t, brokers, p.Topic(), len(events))
		for _, r := range recs {
			if id := header(r, HeaderID); string(r.Key) != want[id] {
				t.Fatalf("record of event %s has key %q, want %q", id, r.Key, want[id])
			}
		}
	})
}

func TestKafkaCompressionCodecsRoundTrip(t *testing.T) {
	t.Parallel()
	brokers := testkit.FakeKafka(t)
	for _, codec := range []string{"none", "gzip", "snappy", "lz4", "zstd"} {
		t.Run(codec+" records decode to the published events", func(t *testing.T) {
			t.Parallel() // a topic of its own
			p, _ := newTestKafka(t, KafkaConfig{Brokers: brokers, Compression: codec})
			events := fixtureEvents(t)
			publishOK(t, p, events)
			recs := consume(t, brokers, p.Topic(), len(events))
			for i, r := range recs {
				if string(r.Value) != string(events[i].DataJSON()) {
					t.Fatalf("record %d differs after %s", i, codec)
				}
			}
		})
	}
}

func TestKafkaDeadLettersEventsTheBrokerWillNeverAccept(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		kfakeOpts  []kfake.Opt
		cfg        KafkaConfig
		wantReason string
	}{
		{"an event above MaxMessageBytes is dead-lettered without a round trip", nil,
			KafkaConfig{MaxMessageBytes: 16 << 10}, "MaxMessageBytes"},
		{"an event the broker refuses as too large is found in its batch and dead-lettered",
			[]kfake.Opt{kfake.BrokerConfigs(map[string]string{"message.max.bytes": "24000"})},
			KafkaConfig{}, "rejected by the broker"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			brokers := testkit.FakeKafka(t, tt.kfakeOpts...)
			cfg := tt.cfg
			cfg.Brokers = brokers
			cfg.Topic = uniqueTopic(t)
			cfg.DeadLetterTopic = cfg.Topic + ".deadletter"
			cfg.CreateTopic = true
			cfg.Partitions = 1
			p, reg := newTestKafka(t, cfg)
			events := testkit.MediaEvents("big", 0, 5, 100)
			events[2] = testkit.MediaEvents("big", 2, 1, 40<<10)[0]
			publishOK(t, p, events)

			recs := consume(t, brokers, cfg.Topic, 4)
			if len(recs) != 4 {
				t.Fatalf("topic holds %d records, want the 4 small events", len(recs))
			}
			for _, r := range recs {
				if header(r, HeaderID) == events[2].ID {
					t.Fatal("the oversized event reached the topic")
				}
			}
			dl := consume(t, brokers, cfg.DeadLetterTopic, 1)
			if len(dl) != 1 {
				t.Fatalf("dead-letter topic holds %d records, want 1", len(dl))
			}
			var l letterJSON
			if err := json.Unmarshal(dl[0].Value, &l); err != nil {
				t.Fatalf("dead letter is not JSON: %v", err)
			}
			if l.EventID != events[2].ID || !strings.Contains(l.Reason, tt.wantReason) ||
				!strings.Contains(header(dl[0], HeaderDeadLetterReason), tt.wantReason) {
				t.Fatalf("dead letter %+v (header %q) does not name the event and the reason %q",
					l, header(dl[0], HeaderDeadLetterReason), tt.wantReason)
			}
			if d := counter(t, reg, "tagstream_publisher_dead_letters_total", map[string]string{"destination": "kafka"}); d != 1 {
				t.Fatalf("dead_letters_total = %v, want 1", d)
			}
		})
	}
}

func TestKafkaDeadLettersToAFile(t *testing.T) {
	t.Parallel()
	brokers := testkit.FakeKafka(t)
	path := filepath.Join(t.TempDir(), "dead.ndjson")
	dl, err := OpenDeadLetterFile(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dl.Close() })
	p, reg := newTestKafka(t, KafkaConfig{Brokers: brokers, MaxMessageBytes: 4096, DeadLetter: dl})
	events := append(testkit.MediaEvents("t", 0, 2, 10), testkit.MediaEvents("t", 2, 1, 10000)...)
	publishOK(t, p, events)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var l letterJSON
	if err := json.Unmarshal(raw, &l); err != nil {
		t.Fatalf("dead-letter line %q: %v", raw, err)
	}
	back, err := schema.UnmarshalEvent(l.Event)
	if err != nil || back.ID != events[2].ID || l.Truncated {
		t.Fatalf("the file letter does not carry the whole event: %v %+v", err, l)
	}
	if d := counter(t, reg, "tagstream_publisher_dead_letters_total", map[string]string{"destination": "file"}); d != 1 {
		t.Fatalf("dead_letters_total = %v", d)
	}
}

func TestKafkaChecksTheTopicAtStart(t *testing.T) {
	t.Parallel()
	brokers := testkit.FakeKafka(t)
	ctx := context.Background()
	t.Run("a missing topic with creation off is a clear error", func(t *testing.T) {
		_, err := NewKafka(ctx, KafkaConfig{Brokers: brokers, Topic: "missing"}, testLogger(t), nil)
		if !errors.Is(err, ErrTopicNotFound) || !strings.Contains(err.Error(), "missing") {
			t.Fatalf("NewKafka = %v, want ErrTopicNotFound naming the topic", err)
		}
	})
	t.Run("a missing topic is created with the configured partitions", func(t *testing.T) {
		topic := uniqueTopic(t)
		p, _ := newTestKafka(t, KafkaConfig{Brokers: brokers, Topic: topic, CreateTopic: true, Partitions: 3})
		md, err := p.admin.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
		if err != nil || len(md.Topics) != 1 || len(md.Topics[0].Partitions) != 3 {
			t.Fatalf("metadata of the created topic: %v %+v, want 3 partitions", err, md)
		}
		st, err := p.admin.describe(ctx, topic)
		if err != nil || st.missing || !st.led {
			t.Fatalf("created topic not found: %v %+v", err, st)
		}
	})
	t.Run("an unreachable broker fails the start once its context ends", func(t *testing.T) {
		addr := testkit.FreeAddr(t)
		ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		if _, err := NewKafka(ctx, KafkaConfig{Brokers: []string{addr}, Topic: "t"}, testLogger(t), nil); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("NewKafka = %v, want ErrUnavailable", err)
		}
	})
}

func TestKafkaSurvivesBrokerRestartMidStream(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	port := testkit.FreePort(t)
	start := func() *kfake.Cluster {
		t.Helper()
		var c *kfake.Cluster
		testkit.Eventually(t, 10*time.Second, "kfake to listen on its port again", func() bool {
			var err error
			c, err = kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.DataDir(dir), kfake.SyncWrites())
			return err == nil // the port can linger briefly after a close
		})
		return c
	}
	c := start()
	t.Cleanup(func() { c.Close() })
	brokers := []string{fmt.Sprintf("127.0.0.1:%d", port)}
	p, reg := newTestKafka(t, KafkaConfig{Brokers: brokers, Partitions: 2, WriteTimeout: time.Second, MaxAttempts: 2})
	restartDuringStream(t, p, func() {
		c.Close()
		c = start()
	}, func(n int) []*kgo.Record { return consume(t, brokers, p.Topic(), n) })
	if r := counter(t, reg, "tagstream_publisher_retries_total", nil); r < 1 {
		t.Logf("note: no outer retry was needed (kafka-go's own retries covered the restart)")
	}
}

// restartDuringStream publishes batches of two tags from two goroutines, calls restart after a few batches, and
// checks that every event arrived (at least once, in order per tag once de-duplicated by ce_id).
func restartDuringStream(t *testing.T, p *Kafka, restart func(), read func(n int) []*kgo.Record) {
	t.Helper()
	rs := tagStream{tags: []string{"one", "two"}, batches: 8, perBatch: 33, captionBytes: 500, restartAfter: 4, afterRestart: 4,
		timeout: 90 * time.Second}
	calls := rs.run(t, p, restart)
	total := 0
	for _, n := range calls {
		total += n * rs.perBatch
	}
	recs := read(total)
	seen := map[string]bool{}
	next := map[string]int{}
	for _, r := range recs {
		id := header(r, HeaderID)
		if seen[id] {
			continue // a retried write can duplicate; consumers de-duplicate on ce_id
		}
		seen[id] = true
		tag := string(r.Key)
		var data schema.MediaData
		if err := json.Unmarshal(r.Value, &data); err != nil {
			t.Fatal(err)
		}
		inTagOrder(t, next, tag, data.MediaID)
	}
	if len(seen) != total {
		t.Fatalf("%d distinct events arrived, want %d", len(seen), total)
	}
	t.Logf("%d records for %d events in %v Publish calls per tag (%d duplicates from retried writes)", len(recs), total,
		calls, len(recs)-total)
}

// TestKafkaSurvivesRealBrokerRestart stops and restarts a real Apache Kafka broker in the middle of a stream. It
// runs its own private broker (scripts/brokers.sh up in a temporary dir): stopping the shared one would fail the
// other packages that go test runs at the same time.
func TestKafkaSurvivesRealBrokerRestart(t *testing.T) {
	t.Parallel()
	realKafka(t) // fails under TAGSTREAM_INTEGRATION=1 without a broker, skips with a message otherwise
	ctl := os.Getenv("TAGSTREAM_KAFKA_CTL")
	if ctl == "" {
		if os.Getenv("TAGSTREAM_INTEGRATION") == "1" {
			t.Fatal("TAGSTREAM_INTEGRATION=1 but TAGSTREAM_KAFKA_CTL is not set")
		}
		t.Skip("no way to run a private broker: TAGSTREAM_KAFKA_CTL unset")
	}
	dir := t.TempDir()
	brokersSh := filepath.Join(filepath.Dir(ctl), "brokers.sh")
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command(args[0], args[1:]...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run(brokersSh, "up", dir)
	t.Cleanup(func() { _ = exec.Command(brokersSh, "down", dir).Run() })
	env, err := os.ReadFile(filepath.Join(dir, "env"))
	if err != nil {
		t.Fatal(err)
	}
	var brokers []string
	for _, line := range strings.Split(string(env), "\n") {
		line = strings.TrimPrefix(line, "export ")
		if v, ok := strings.CutPrefix(line, "TAGSTREAM_KAFKA_BROKERS="); ok {
			brokers = strings.Split(strings.Trim(v, `"'`), ",")
		}
	}
	if len(brokers) == 0 {
		t.Fatalf("no TAGSTREAM_KAFKA_BROKERS in %s/env:\n%s", dir, env)
	}
	p, _ := newTestKafka(t, KafkaConfig{Brokers: brokers, Partitions: 2, WriteTimeout: 2 * time.Second, MaxAttempts: 2})
	restartDuringStream(t, p, func() {
		run(ctl, "stop", dir) // returns once the broker process has exited
		run(ctl, "start", dir)
	}, func(n int) []*kgo.Record { return consume(t, brokers, p.Topic(), n) })
}

func TestKafkaSASL(t *testing.T) {
	t.Parallel()
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mech+" authenticates, and a wrong password fails without showing it", func(t *testing.T) {
			brokers := testkit.FakeKafka(t, kfake.EnableSASL(), kfake.Superuser(mech, "svc", "s3cret-pw"))
			p, _ := newTestKafka(t, KafkaConfig{Brokers: brokers,
				SASL: SASLConfig{Mechanism: mech, Username: "svc", Password: "s3cret-pw"}})
			publishOK(t, p, testkit.MediaEvents("auth", 0, 3, 10))

			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			_, err := NewKafka(ctx, KafkaConfig{Brokers: brokers, Topic: p.Topic(),
				SASL: SASLConfig{Mechanism: mech, Username: "svc", Password: "wrong-pw-value"}}, testLogger(t), nil)
			if err == nil {
				t.Fatal("a wrong password was accepted")
			}
			if strings.Contains(err.Error(), "wrong-pw-value") {
				t.Fatalf("the error shows the password: %v", err)
			}
		})
	}
}

func TestKafkaConfigValidation(t *testing.T) {
	t.Parallel()
	ok := KafkaConfig{Brokers: []string{"127.0.0.1:9092"}, Topic: "t"}
	tests := []struct {
		name  string
		edit  func(c *KafkaConfig)
		field string
	}{
		{"no brokers", func(c *KafkaConfig) { c.Brokers = nil }, "Brokers"},
		{"a broker without a port", func(c *KafkaConfig) { c.Brokers = []string{"localhost"} }, "Brokers[0]"},
		{"no topic", func(c *KafkaConfig) { c.Topic = "" }, "Topic"},
		{"a topic with a space", func(c *KafkaConfig) { c.Topic = "a b" }, "Topic"},
		{"an unknown codec", func(c *KafkaConfig) { c.Compression = "brotli" }, "Compression"},
		{"an unknown key mode", func(c *KafkaConfig) { c.Key = 7 }, "Key"},
		{"the dead-letter topic equal to the topic", func(c *KafkaConfig) { c.DeadLetterTopic = "t" }, "DeadLetterTopic"},
		{"a negative batch size", func(c *KafkaConfig) { c.BatchSize = -1 }, "BatchSize"},
		{"a negative retry interval", func(c *KafkaConfig) { c.Retry.InitialInterval = -1 }, "Retry.InitialInterval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.edit(&c)
			_, _, err := c.withDefaults()
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("error %v does not name %s", err, tt.field)
			}
		})
	}
	t.Run("SASL without a known mechanism", func(t *testing.T) {
		_, err := NewKafka(context.Background(), KafkaConfig{Brokers: ok.Brokers, Topic: "t",
			SASL: SASLConfig{Mechanism: "GSSAPI", Username: "u", Password: "p"}}, nil, nil)
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "SASL.Mechanism") {
			t.Fatalf("error %v does not name SASL.Mechanism", err)
		}
	})
}

// tlsKafka starts a kfake broker that speaks TLS with a certificate of a private CA, and returns its addresses
// and the CA file.
func tlsKafka(t *testing.T) (brokers []string, caFile string) {
	t.Helper()
	caFile, certFile, keyFile := writeTestPKI(t, t.TempDir())
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return testkit.FakeKafka(t, kfake.TLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})), caFile
}

func TestKafkaTLS(t *testing.T) {
	t.Parallel()
	brokers, caFile := tlsKafka(t)
	t.Run("a broker certificate signed by the configured CA is trusted", func(t *testing.T) {
		p, _ := newTestKafka(t, KafkaConfig{Brokers: brokers, TLS: TLSConfig{CAFile: caFile}})
		publishOK(t, p, testkit.MediaEvents("tls", 0, 3, 10))
	})
	t.Run("a broker certificate from an unknown CA is refused", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := NewKafka(ctx, KafkaConfig{Brokers: brokers, Topic: "t", CreateTopic: true, TLS: TLSConfig{Enable: true}},
			testLogger(t), nil)
		if err == nil {
			t.Fatal("an untrusted certificate was accepted")
		}
	})
}

func TestKafkaPublishAfterCloseIsErrClosed(t *testing.T) {
	t.Parallel()
	p, _ := newTestKafka(t, KafkaConfig{Brokers: testkit.FakeKafka(t)})
	publishOK(t, p, testkit.MediaEvents("a", 0, 2, 10))
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(context.Background(), testkit.MediaEvents("a", 2, 1, 10)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Publish after Close = %v, want ErrClosed", err)
	}
}
