//go:build integration

package e2e

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tagstream/tagstream/internal/consume"
	"github.com/tagstream/tagstream/schema"
)

const (
	sinkJetStream = "jetstream"
	sinkKafka     = "kafka"

	subjectPrefix = "e2e.media"
	streamName    = "E2E"
)

// pipelineOptions configures one simulator -> tagstream -> broker pipeline.
type pipelineOptions struct {
	Sink      string // sinkJetStream or sinkKafka
	Sim       simOptions
	KafkaAddr string   // default the shared broker (TAGSTREAM_KAFKA_BROKERS)
	Extra     []string // more tagstream flags
	NATSLater bool     // JetStream: prepare the test's nats-server but do not start it (p.nats.start does)
}

// pipeline is the simulator, the tagstream binary and the broker of one test, and the consumer reading it back.
type pipeline struct {
	t       *testing.T
	o       pipelineOptions
	sim     *sim
	ts      *tagstream
	nats    *natsServer
	topic   string
	kafka   *kafkaConsumer
	started time.Time
	faults  []window
}

// newPipeline starts the simulator (and, for JetStream, the test's own nats-server) and prepares tagstream.
func newPipeline(t *testing.T, o pipelineOptions) *pipeline {
	t.Helper()
	p := &pipeline{t: t, o: o}
	p.sim = startSim(t, o.Sim)
	var sink []string
	switch o.Sink {
	case sinkJetStream:
		p.nats = newNATS(t)
		if !o.NATSLater {
			p.nats.start()
		}
		sink = []string{"--sink", "jetstream", "--nats-url", p.nats.URL(), "--subject-prefix", subjectPrefix,
			"--stream", streamName, "--create-stream", "--duplicate-window", "2m"}
	case sinkKafka:
		if p.o.KafkaAddr == "" {
			p.o.KafkaAddr = env.KafkaBrokers
		}
		p.topic = topicName(t)
		sink = []string{"--sink", "kafka", "--kafka-brokers", p.o.KafkaAddr, "--kafka-topic", p.topic,
			"--kafka-create-topic", "--kafka-partitions", "3", "--kafka-key", "tag"}
	default:
		t.Fatalf("unknown sink %q", o.Sink)
	}
	p.ts = newTagstream(t, p.sim, tagstreamOptions{Sink: sink, Extra: o.Extra})
	return p
}

// launch starts tagstream without waiting until it is ready (JetStream only: no Kafka consumer is started).
func (p *pipeline) launch() {
	p.t.Helper()
	if p.started.IsZero() {
		p.started = time.Now()
	}
	p.ts.launch()
}

// start starts (or restarts) tagstream; the first start also starts the Kafka consumer once the topic exists.
func (p *pipeline) start() {
	t := p.t
	t.Helper()
	if p.started.IsZero() {
		p.started = time.Now()
	}
	p.ts.start()
	if p.o.Sink == sinkKafka && p.kafka == nil {
		parts := topicPartitions(t, p.o.KafkaAddr, p.topic)
		if len(parts) != 3 {
			t.Fatalf("topic %s has %d partitions, want the 3 asked with --kafka-partitions", p.topic, len(parts))
		}
		p.kafka = startKafkaConsumer(t, p.o.KafkaAddr, p.topic, parts)
	}
}

// fault records a fault window (Kafka duplicates are accepted only within one).
func (p *pipeline) fault(what string, from, to time.Time) {
	p.faults = append(p.faults, window{What: what, From: from, To: to})
	p.t.Logf("fault: %s (%s .. %s)", what, from.Format("15:04:05.000"), to.Format("15:04:05.000"))
}

// jetStreamMsgs returns the number of messages in the test's stream (-1 when the server cannot tell); the duplicate
// window keeps them unique.
func (p *pipeline) jetStreamMsgs() int {
	nc, err := nats.Connect(p.nats.URL(), nats.Timeout(time.Second))
	if err != nil {
		return -1
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return -1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, streamName)
	if err != nil {
		return -1
	}
	info, err := s.Info(ctx)
	if err != nil {
		return -1
	}
	return int(info.State.Msgs)
}

// behind returns how many of the media the simulator showed (not deleted) the broker does not hold yet: on
// JetStream by count (the stream keeps each event once), on Kafka by the ids the live consumer read.
func (p *pipeline) behind() int {
	want := 0
	var keys []truthKey
	for _, tr := range p.sim.GroundTruth() {
		if tr.DeletedAt.IsZero() {
			want++
			keys = append(keys, truthKey{tr.Tag, tr.MediaID})
		}
	}
	if p.o.Sink == sinkJetStream {
		n := p.jetStreamMsgs()
		if n < 0 {
			return want
		}
		return max(0, want-n)
	}
	p.kafka.mu.Lock()
	have := make(map[truthKey]bool, len(p.kafka.got))
	for _, r := range p.kafka.got {
		if r.Event.Data != nil {
			have[truthKey{r.Event.Subject, r.Event.Data.MediaID}] = true
		}
	}
	p.kafka.mu.Unlock()
	n := 0
	for _, k := range keys {
		if !have[k] {
			n++
		}
	}
	return n
}

// quiesce stops the workload and waits (up to timeout) until the broker holds every media the simulator showed,
// so that stopping tagstream afterwards must leave nothing behind.
func (p *pipeline) quiesce(timeout time.Duration) {
	t := p.t
	t.Helper()
	for _, tag := range p.sim.tagNames() {
		p.sim.SetRate(tag, 0)
	}
	start := time.Now()
	caughtUp := waitFor(timeout, func() bool { return !p.ts.proc.running() || p.behind() == 0 })
	if !p.ts.proc.running() {
		t.Fatalf("tagstream exited by itself (status %d) before the test stopped it; log:\n%s", p.ts.proc.exitCode(), p.ts.logTail(40))
	}
	if !caughtUp {
		t.Logf("after %s the broker still lacks %d media; checking anyway", timeout, p.behind())
		return
	}
	t.Logf("caught up with the simulator %s after its workload stopped", time.Since(start).Round(time.Millisecond))
}

// finish quiesces, stops tagstream with SIGTERM (exit 0 required), reads everything back and checks it.
func (p *pipeline) finish() checkReport {
	t := p.t
	t.Helper()
	p.quiesce(150 * time.Second)
	p.ts.checkEndpointsForTokens()
	p.ts.stop()
	var got []received
	switch p.o.Sink {
	case sinkJetStream:
		got = readJetStream(t, p.nats.URL(), streamName)
	default:
		got = p.kafka.finish()
	}
	rep := check(t, p.sim, got, checkOptions{
		Sink:          p.o.Sink,
		SubjectPrefix: subjectPrefix,
		Since:         p.started,
		DupWindows:    p.faults,
	})
	if rep.Media == 0 {
		t.Errorf("no media event arrived at all")
	}
	t.Logf("E2E-FIGURES %s %s: %s", t.Name(), p.o.Sink, rep)
	return rep
}

// arrivalWatch reports when the broker carries an event of one of the expected media.
type arrivalWatch struct {
	seen chan struct{} // closed at the first expected media
	stop func()
	once sync.Once
	mu   sync.Mutex
	ids  map[string]bool
}

// expect adds media ids to watch for.
func (w *arrivalWatch) expect(ids ...string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, id := range ids {
		w.ids[id] = true
	}
}

func (w *arrivalWatch) hit(ev *schema.Event) {
	if ev == nil || ev.Data == nil {
		return
	}
	w.mu.Lock()
	ok := w.ids[ev.Data.MediaID]
	w.mu.Unlock()
	if ok {
		w.once.Do(func() { close(w.seen) })
	}
}

// watchArrival starts watching tag's events on the broker (JetStream: a core NATS subscription on the tag's subject
// sees each publish itself; Kafka: the live consumer's reads). Fault tests use it to kill tagstream while a batch is
// in flight. Call stop when done.
func (p *pipeline) watchArrival(tag string) *arrivalWatch {
	t := p.t
	t.Helper()
	w := &arrivalWatch{seen: make(chan struct{}), ids: map[string]bool{}}
	switch p.o.Sink {
	case sinkJetStream:
		nc, err := nats.Connect(p.nats.URL(), nats.Timeout(2*time.Second))
		if err != nil {
			t.Fatalf("watch: connect: %v", err)
		}
		c, err := consume.New(t.Context(), consume.Config{Kind: consume.NATS, Conn: nc, OwnConn: true, SubjectPrefix: subjectPrefix, Tags: []string{tag}})
		if err != nil {
			nc.Close()
			t.Fatalf("watch: %v", err)
		}
		go func() {
			for {
				m, err := c.Next(context.Background())
				if errors.Is(err, consume.ErrClosed) {
					return
				}
				w.hit(m.Event)
			}
		}()
		w.stop = func() { c.Close() }
	default:
		done := make(chan struct{})
		go func() {
			next := 0
			for {
				p.kafka.mu.Lock()
				for ; next < len(p.kafka.got); next++ {
					w.hit(p.kafka.got[next].Event)
				}
				p.kafka.mu.Unlock()
				select {
				case <-done:
					return
				case <-w.seen:
					return
				case <-p.kafka.arrived:
				}
			}
		}()
		w.stop = func() { close(done) }
	}
	return w
}
