package publisher

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/kafka-go"

	"github.com/tagstream/tagstream/internal/testkit"
	"github.com/tagstream/tagstream/schema"
)

// Benchmarks: events/s through each publisher, side by side with the raw client publishing the same bytes the
// simplest fast way. Workload: the normalized media of the recorded #ts page (realistic 1-2 KB events), each
// published with a fresh event id (so nothing is de-duplicated), in batches of 33 (one upstream page, what one
// Publish call of the poller carries) and of 330 (a catch-up of ten pages).
//
// The raw client and the publisher run interleaved, batch by batch, in one benchmark (each on its own stream or
// topic of the same broker), so that load from other processes on a shared machine hits both alike. Each reports
// raw-events/s, publisher-events/s and ratio (publisher / raw).
//
//	go test -run '^$' -bench 'JetStream|Kafka' -benchtime 20000x ./publisher/
//
// The JetStream benchmark runs against an in-process server and, when TAGSTREAM_NATS_SERVER_BIN is set, the real
// nats-server binary as a separate process. The Kafka benchmark runs against kfake and, when
// TAGSTREAM_KAFKA_BROKERS is set, the real broker.

var benchBatchSizes = []int{33, 330}

// benchEvents returns n events cycling over the fixture media with ids unique to this run (prefix + i).
func benchEvents(base []*schema.Event, prefix string, from, n int) []*schema.Event {
	out := make([]*schema.Event, n)
	for i := range out {
		e := *base[(from+i)%len(base)]
		e.ID = prefix + strconv.Itoa(from+i)
		out[i] = &e
	}
	return out
}

// interleave runs raw and pub alternately over b.N events each, in batches (which side goes first alternates),
// timing each side alone, and reports both rates and their ratio. events builds the publisher's input batch
// (what the poller hands over) outside the timed region.
func interleave(b *testing.B, batch int, raw func(from, n int), events func(from, n int) []*schema.Event,
	pub func(events []*schema.Event)) {
	b.Helper()
	var rawTime, pubTime time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		n := min(batch, b.N-i)
		evs := events(i, n)
		runRaw := func() {
			t := time.Now()
			raw(i, n)
			rawTime += time.Since(t)
		}
		runPub := func() {
			t := time.Now()
			pub(evs)
			pubTime += time.Since(t)
		}
		if (i/batch)%2 == 0 {
			runRaw()
			runPub()
		} else {
			runPub()
			runRaw()
		}
	}
	b.StopTimer()
	rawRate := float64(b.N) / rawTime.Seconds()
	pubRate := float64(b.N) / pubTime.Seconds()
	b.ReportMetric(rawRate, "raw-events/s")
	b.ReportMetric(pubRate, "publisher-events/s")
	b.ReportMetric(pubRate/rawRate, "ratio")
	b.ReportMetric(0, "ns/op") // ns/op mixes both sides; the rates above are the result
}

func BenchmarkJetStream(b *testing.B) {
	base := fixtureEvents(b)
	type target struct {
		name string
		url  func(b *testing.B) string
	}
	targets := []target{{"inprocess", func(b *testing.B) string { return startNATS(b, 0).url() }}}
	if bin := os.Getenv("TAGSTREAM_NATS_SERVER_BIN"); bin != "" {
		targets = append(targets, target{"nats-server", func(b *testing.B) string { return startNATSProcess(b, bin) }})
	}
	for _, tg := range targets {
		for _, batch := range benchBatchSizes {
			b.Run(tg.name+"/batch="+strconv.Itoa(batch), func(b *testing.B) {
				url := tg.url(b)
				connect := func() *nats.Conn {
					nc, err := nats.Connect(url)
					if err != nil {
						b.Fatal(err)
					}
					b.Cleanup(nc.Close)
					return nc
				}
				run := strconv.FormatInt(time.Now().UnixNano(), 36)
				// The raw client: its own connection and stream, PublishAsync of pre-encoded bytes with
				// Nats-Msg-Id, then wait for all acks.
				js, _ := jetstream.New(connect(), jetstream.WithPublishAsyncMaxPending(4096))
				ctx := context.Background()
				for _, st := range []struct{ name, subj string }{{"BENCH_RAW_" + run, "raw" + run + ".>"},
					{"BENCH_PUB_" + run, "pub" + run + ".>"}} {
					if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: st.name, Subjects: []string{st.subj}}); err != nil {
						b.Fatal(err)
					}
					b.Cleanup(func() { _ = js.DeleteStream(context.Background(), st.name) })
				}
				payloads := make([][]byte, len(base))
				for i, e := range base {
					payloads[i] = e.AppendJSON(nil)
				}
				rawSubject := Subject("raw"+run, "ts")
				p, _ := newTestJetStream(b, connect(), JetStreamConfig{SubjectPrefix: "pub" + run})
				prefix := run + "-"
				interleave(b, batch, func(from, n int) {
					for k := from; k < from+n; k++ {
						if _, err := js.PublishMsgAsync(&nats.Msg{Subject: rawSubject, Data: payloads[k%len(payloads)],
							Header: nats.Header{jetstream.MsgIDHeader: []string{prefix + strconv.Itoa(k)}}}); err != nil {
							b.Fatal(err)
						}
					}
					<-js.PublishAsyncComplete()
				}, func(from, n int) []*schema.Event { return benchEvents(base, prefix, from, n) }, func(evs []*schema.Event) {
					if err := p.Publish(ctx, evs); err != nil {
						b.Fatal(err)
					}
				})
			})
		}
	}
}

// startNATSProcess runs the real nats-server binary (a separate process, as deployed) with JetStream on a free
// port and a temporary store, and returns its URL once it accepts connections.
func startNATSProcess(b *testing.B, bin string) string {
	b.Helper()
	port := testkit.FreePort(b)
	cmd := exec.Command(bin, "-js", "-sd", b.TempDir(), "-a", "127.0.0.1", "-p", strconv.Itoa(port))
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	})
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	testkit.Eventually(b, 5*time.Second, "nats-server "+bin+" to accept connections on "+url, func() bool {
		nc, err := nats.Connect(url)
		if err == nil {
			nc.Close()
		}
		return err == nil
	})
	return url
}

func BenchmarkKafka(b *testing.B) {
	base := fixtureEvents(b)
	type target struct {
		name    string
		brokers func(b *testing.B) []string
	}
	targets := []target{{"kfake", func(b *testing.B) []string { return testkit.FakeKafka(b) }}}
	if env := os.Getenv("TAGSTREAM_KAFKA_BROKERS"); env != "" {
		targets = append(targets, target{"apache", func(*testing.B) []string { return strings.Split(env, ",") }})
	}
	for _, tg := range targets {
		for _, batch := range benchBatchSizes {
			b.Run(tg.name+"/batch="+strconv.Itoa(batch), func(b *testing.B) {
				brokers := tg.brokers(b)
				// Two 1-partition topics (one tag = one partition), made by the publisher's start-up check.
				p, _ := newTestKafka(b, KafkaConfig{Brokers: brokers, Partitions: 1})
				rawTopic, _ := newTestKafka(b, KafkaConfig{Brokers: brokers, Partitions: 1, Topic: p.Topic() + "-raw", CreateTopic: true})
				// The raw client: a kafka-go Writer with the same acks and batching, writing pre-built messages
				// (the same key, headers and value bytes) in one WriteMessages per batch.
				cfg := p.cfg
				w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: rawTopic.Topic(), RequiredAcks: kafka.RequireAll,
					Balancer: &kafka.Murmur2Balancer{}, BatchSize: cfg.BatchSize, BatchTimeout: cfg.BatchTimeout,
					BatchBytes: int64(cfg.MaxMessageBytes) + 4096, Transport: rawTopic.transport}
				b.Cleanup(func() { _ = w.Close() })
				msgs := make([]kafka.Message, len(base))
				for i, e := range base {
					msgs[i] = p.Message(e)
				}
				prefix := strconv.FormatInt(time.Now().UnixNano(), 36) + "-"
				ctx := context.Background()
				buf := make([]kafka.Message, batch)
				// Warm up both (connections, metadata of the new topics) outside the measurement.
				testkit.Eventually(b, 30*time.Second, "the raw writer to see the new topic", func() bool {
					err := w.WriteMessages(ctx, msgs[0])
					if err != nil && !errors.Is(err, kafka.UnknownTopicOrPartition) && !errors.Is(err, kafka.LeaderNotAvailable) {
						b.Fatal(err)
					}
					return err == nil
				})
				if err := p.Publish(ctx, benchEvents(base, "warmup-", 0, 1)); err != nil {
					b.Fatal(err)
				}
				interleave(b, batch, func(from, n int) {
					for j := range n {
						m := msgs[(from+j)%len(msgs)]
						hdr := append([]kafka.Header(nil), m.Headers...)
						hdr[1].Value = []byte(prefix + strconv.Itoa(from+j)) // a fresh ce_id, as the publisher's
						m.Headers = hdr
						buf[j] = m
					}
					if err := w.WriteMessages(ctx, buf[:n]...); err != nil {
						b.Fatal(err)
					}
				}, func(from, n int) []*schema.Event { return benchEvents(base, prefix, from, n) }, func(evs []*schema.Event) {
					if err := p.Publish(ctx, evs); err != nil {
						b.Fatal(err)
					}
				})
			})
		}
	}
}
