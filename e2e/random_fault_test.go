//go:build integration

package e2e

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/kafka-go"

	"github.com/tagstream/tagstream/internal/consume"
	"github.com/tagstream/tagstream/internal/testkit"
	"github.com/tagstream/tagstream/poller"
	"github.com/tagstream/tagstream/poller/checkpoint"
	"github.com/tagstream/tagstream/publisher"
	"github.com/tagstream/tagstream/schema"
	"github.com/tagstream/tagstream/testenv"
)

// rfSeeds are the workloads TestRandomFaults runs, each on JetStream and on Kafka. The list is fixed so that the
// test is deterministic in what it tries (the goroutine scheduling still varies from run to run); widen it for a
// run to explore more.
var rfSeeds = []uint64{11, 23, 37, 41}

// rfTags are the tags each workload posts to.
var rfTags = []string{"rf_sunset", "rf_coffee", "rf_東京"}

// Errors the fault wrappers inject.
var (
	errRFStore         = errors.New("rfault: injected checkpoint store failure")
	errRFPublishBefore = errors.New("rfault: injected publish failure (nothing sent)")
	errRFPublishAfter  = errors.New("rfault: injected publish failure (the broker has the events)")
)

// rfFaults is the fault state one workload shares between the store and publisher wrappers of every poller run,
// with the oracle that checks each checkpoint write against what the broker acknowledged.
type rfFaults struct {
	sim *testenv.Server

	mu           sync.Mutex
	rng          *rand.Rand
	storeFailing bool            // a stretch of store failures: each Put fails with storeP
	pubFailing   bool            // a stretch of publish failures: each Publish fails with pubP
	swallowPuts  bool            // a hard stop is under way: Puts report success and write nothing (lost)
	acked        map[string]bool // media ids the real publisher returned nil for
	storeFails   int
	pubBefore    int
	pubAfter     int
	lostPuts     int
	rolledBack   int                         // hard stops that undid the last checkpoint write
	lastPut      string                      // the tag of the last checkpoint write
	before       map[string]checkpoint.State // each tag's state before its last write
	puts         int
	violations   []string
	violated     map[string]int // tag -> checkpoint writes that passed an unacknowledged media
}

const (
	rfStoreP = 0.5 // probability that a Put fails during a store-failure stretch
	rfPubP   = 0.4 // probability that a Publish fails during a publish-failure stretch
)

// rfStore is a checkpoint store (the real bolt file) that fails Puts before writing during a stretch of store
// failures, and checks every write it lets through: the cursor must not pass a media the broker did not
// acknowledge.
type rfStore struct {
	*checkpoint.Bolt
	f *rfFaults
}

func (s rfStore) Put(ctx context.Context, tag string, st checkpoint.State) error {
	f := s.f
	f.mu.Lock()
	if f.swallowPuts {
		f.lostPuts++
		f.mu.Unlock()
		return nil
	}
	if f.storeFailing && f.rng.Float64() < rfStoreP {
		f.storeFails++
		f.mu.Unlock()
		return errRFStore
	}
	f.puts++
	f.mu.Unlock()
	f.checkCursor(tag, st.Cursor)
	old, had, err := s.Bolt.Get(ctx, tag)
	if err != nil {
		return err
	}
	if err := s.Bolt.Put(ctx, tag, st); err != nil {
		return err
	}
	f.mu.Lock()
	// A tag's first write is never undone: without a checkpoint the poller starts the tag at the head of its
	// feed (StartNow), so losing it loses by design what came before.
	f.lastPut, f.before[tag] = "", old
	if had {
		f.lastPut = tag
	}
	f.mu.Unlock()
	return nil
}

// checkCursor records a violation when cursor is at or after a live media of tag that the broker never
// acknowledged: storing it would lose that media on a restart.
func (f *rfFaults) checkCursor(tag, cursor string) {
	if cursor == "" {
		return
	}
	truth := rfTruthOf(f.sim.GroundTruth(), tag)
	idx := rfCursorIndex(truth, cursor)
	f.mu.Lock()
	defer f.mu.Unlock()
	if idx < 0 {
		f.violations = append(f.violations, fmt.Sprintf("tag %s: stored cursor %q is no media's cursor", tag, cursor))
		return
	}
	for i := 0; i <= idx; i++ {
		tr := truth[i]
		if f.acked[tr.MediaID] || !tr.DeletedAt.IsZero() {
			continue
		}
		if f.violated[tag]++; f.violated[tag] > 1 {
			return // the first one says it; the count is in the summary
		}
		f.violations = append(f.violations, fmt.Sprintf(
			"tag %s: cursor stored at media #%d (%s) while media #%d (%s) was never acknowledged by the broker",
			tag, idx, truth[idx].MediaID, i, tr.MediaID))
		return
	}
}

// rfRealPublisher is a real publisher of one run of the poller and how to close it (with its connection).
type rfRealPublisher struct {
	poller.Publisher
	close func() error
}

// rfPublisher wraps the real publisher: during a stretch of publish failures it fails a Publish either before
// delegating (nothing sent) or after the broker acknowledged the events (the poller re-publishes them).
type rfPublisher struct {
	real poller.Publisher
	f    *rfFaults
}

func (p rfPublisher) Publish(ctx context.Context, events []*schema.Event) error {
	f := p.f
	f.mu.Lock()
	fail := f.pubFailing && f.rng.Float64() < rfPubP
	after := fail && f.rng.IntN(2) == 0
	if fail && !after {
		f.pubBefore++
	}
	f.mu.Unlock()
	if fail && !after {
		return errRFPublishBefore
	}
	if err := p.real.Publish(ctx, events); err != nil {
		return err
	}
	f.mu.Lock()
	for _, e := range events {
		if e.Data != nil {
			f.acked[e.Data.MediaID] = true
		}
	}
	if after {
		f.pubAfter++
	}
	f.mu.Unlock()
	if after {
		return errRFPublishAfter
	}
	return nil
}

func (f *rfFaults) set(fn func()) {
	f.mu.Lock()
	fn()
	f.mu.Unlock()
}

// rfTruthOf returns tag's ground truth in feed order (oldest first).
func rfTruthOf(all []testenv.Truth, tag string) []testenv.Truth {
	var out []testenv.Truth
	for _, tr := range all {
		if tr.Tag == tag {
			out = append(out, tr)
		}
	}
	return out
}

// rfCursorIndex returns the index in truth of the media whose cursor is cursor, or -1.
func rfCursorIndex(truth []testenv.Truth, cursor string) int {
	for i := len(truth) - 1; i >= 0; i-- {
		if truth[i].Cursor == cursor {
			return i
		}
	}
	return -1
}

// TestRandomFaults runs the real poller against the simulator (plain HTTP on loopback) into a real broker, with
// seeded random store failures, publish failures (before and after the broker took the events), crash-and-restarts
// on the same bolt file (some of them hard: the last checkpoint writes are lost), bursts of several pages and a few
// 503s. Then it reads the broker back and checks it against the simulator's ground truth: JetStream must hold
// every media exactly once (the re-published ones dropped by Nats-Msg-Id), Kafka every media at least once, its
// repeats counted; and no checkpoint write may ever have stored a cursor past a media the broker had not
// acknowledged.
func TestRandomFaults(t *testing.T) {
	t.Parallel()
	if env.KafkaBrokers == "" {
		t.Fatal("TAGSTREAM_KAFKA_BROKERS is not set: run the test through scripts/test.sh")
	}
	for _, seed := range rfSeeds {
		for _, sink := range []string{sinkJetStream, sinkKafka} {
			t.Run(fmt.Sprintf("seed %d on %s delivers every media despite random faults", seed, sink), func(t *testing.T) {
				t.Parallel()
				runRandomFaults(t, seed, sink)
			})
		}
	}
}

func runRandomFaults(t *testing.T, seed uint64, sink string) {
	ctx := t.Context()
	tokens := []string{fmt.Sprintf("rf-%d-t0", seed), fmt.Sprintf("rf-%d-t1", seed)}
	simCfg := testenv.Config{PlainHTTP: true, Tokens: tokens, TimeScale: 3600, Seed: int64(seed)}
	for _, tag := range rfTags {
		simCfg.Tags = append(simCfg.Tags, testenv.TagConfig{Name: tag}) // empty feeds: every media is wanted
	}
	sim, err := testenv.New(simCfg)
	if err != nil {
		t.Fatalf("simulator: %v", err)
	}
	if err := sim.Start(); err != nil {
		t.Fatalf("simulator: %v", err)
	}
	t.Cleanup(func() { _ = sim.Close() })

	logs := &testkit.SyncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))

	// The real publisher (a new one, on a new connection, for each run of the poller, as a restarted process would
	// have), and a reader of everything the broker holds.
	var (
		newPub  func() rfRealPublisher
		newRead func() *consume.Consumer
		atEnd   func(last map[int]int64, n int) bool // every record of the broker was read
	)
	switch sink {
	case sinkJetStream:
		ns := testkit.StartNATS(t)
		nc := testkit.ConnectNATS(t, ns.ClientURL())
		newPub = func() rfRealPublisher {
			// The stream's duplicate window (10 minutes) covers the whole test: every re-published event is dropped.
			pc := testkit.ConnectNATS(t, ns.ClientURL())
			js, err := publisher.NewJetStream(ctx, pc, publisher.JetStreamConfig{
				SubjectPrefix: "rfault", Stream: "RFAULT", CreateStream: true, DuplicateWindow: 10 * time.Minute,
			}, logger, nil)
			if err != nil {
				t.Fatalf("NewJetStream: %v", err)
			}
			return rfRealPublisher{Publisher: js, close: func() error {
				err := js.Close()
				pc.Close()
				return err
			}}
		}
		newRead = func() *consume.Consumer {
			c, err := consume.New(ctx, consume.Config{Kind: consume.JetStream, Conn: testkit.ConnectNATS(t, ns.ClientURL()),
				SubjectPrefix: "rfault", Stream: "RFAULT", Start: consume.StartFirst})
			if err != nil {
				t.Fatalf("consume JetStream: %v", err)
			}
			return c
		}
		jsc, err := jetstream.New(nc)
		if err != nil {
			t.Fatalf("jetstream: %v", err)
		}
		atEnd = func(_ map[int]int64, n int) bool {
			st, err := jsc.Stream(ctx, "RFAULT")
			if err != nil {
				return false
			}
			info, err := st.Info(ctx)
			return err == nil && uint64(n) >= info.State.Msgs
		}
	case sinkKafka:
		brokers := strings.Split(env.KafkaBrokers, ",")
		topic := fmt.Sprintf("rfault-%d-%d", seed, time.Now().UnixNano())
		newPub = func() rfRealPublisher {
			kp, err := publisher.NewKafka(ctx, publisher.KafkaConfig{
				Brokers: brokers, Topic: topic, CreateTopic: true, Partitions: 3,
			}, logger, nil)
			if err != nil {
				t.Fatalf("NewKafka: %v", err)
			}
			return rfRealPublisher{Publisher: kp, close: kp.Close}
		}
		newRead = func() *consume.Consumer {
			c, err := consume.New(ctx, consume.Config{Kind: consume.Kafka, Brokers: brokers, Topic: topic,
				Start: consume.StartFirst})
			if err != nil {
				t.Fatalf("consume Kafka: %v", err)
			}
			return c
		}
		atEnd = func(last map[int]int64, _ int) bool {
			for p := range 3 {
				end, err := kafkaEndOffset(ctx, brokers[0], topic, p)
				if err != nil {
					return false
				}
				if pos, read := last[p]; end > 0 && (!read || pos+1 < end) {
					return false
				}
			}
			return true
		}
	}

	// A first publisher creates the stream or topic, so that the reader finds it.
	if err := newPub().close(); err != nil {
		t.Fatalf("close publisher: %v", err)
	}

	// Everything the broker holds, read from its first record on, in the background.
	var (
		readMu  sync.Mutex
		counts  = map[string]int{} // media id -> records
		byTag   = map[string][]string{}
		lastPos = map[int]int64{} // Kafka partition -> last offset read
		records int
		readErr []string
	)
	reader := newRead()
	t.Cleanup(func() { _ = reader.Close() })
	go func() {
		for {
			m, err := reader.Next(ctx)
			if err != nil {
				return
			}
			readMu.Lock()
			records++
			lastPos[m.Partition] = max(lastPos[m.Partition], m.Pos)
			switch {
			case m.Err != nil:
				readErr = append(readErr, m.Where()+": "+m.Err.Error())
			case m.Event.Data != nil:
				counts[m.Event.Data.MediaID]++
				byTag[m.Event.Subject] = append(byTag[m.Event.Subject], m.Event.Data.MediaID)
			default:
				readErr = append(readErr, m.Where()+": an event that is not a media (gap?) "+m.Event.ID)
			}
			readMu.Unlock()
		}
	}()

	f := &rfFaults{sim: sim, rng: rand.New(rand.NewPCG(seed, 0xfa)), acked: map[string]bool{}, violated: map[string]int{}, before: map[string]checkpoint.State{}} // #nosec G404 -- test workload
	storePath := filepath.Join(t.TempDir(), "checkpoints.db")

	cfg := poller.Config{
		BaseURL:         sim.URL(),
		RateWindow:      time.Second,
		Tags:            rfTags,
		PageSize:        20,
		MinInterval:     20 * time.Millisecond,
		MaxInterval:     150 * time.Millisecond,
		RequestTimeout:  2 * time.Second,
		BackoffInitial:  5 * time.Millisecond,
		BackoffMax:      100 * time.Millisecond,
		MaxAttempts:     4,
		ShutdownTimeout: 2 * time.Second,
	}
	for _, tok := range tokens {
		cfg.Tokens = append(cfg.Tokens, poller.Token{Value: tok})
	}

	var (
		bolt     *checkpoint.Bolt
		real     rfRealPublisher
		cancel   context.CancelFunc
		done     chan error
		restarts int
		hard     int
	)
	start := func() {
		t.Helper()
		var err error
		bolt, err = checkpoint.OpenBolt(storePath, nil)
		if err != nil {
			t.Fatalf("OpenBolt: %v", err)
		}
		real = newPub()
		p, err := poller.New(cfg, rfPublisher{real: real, f: f}, rfStore{Bolt: bolt, f: f}, logger, nil)
		if err != nil {
			t.Fatalf("poller.New: %v", err)
		}
		var rctx context.Context
		rctx, cancel = context.WithCancel(ctx)
		done = make(chan error, 1)
		go func() { done <- p.Run(rctx) }()
	}
	// stop ends the running poller; a hard stop also loses the last checkpoint write (the file rolled back to the
	// tag's state before it), as a crash before the write reached the disk would.
	stop := func(hard bool) {
		t.Helper()
		if cancel == nil {
			return
		}
		cancel()
		cancel = nil
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("Run did not return within 30 s of its context's end")
		}
		f.set(func() { f.swallowPuts = false })
		f.mu.Lock()
		tag, old := f.lastPut, f.before[f.lastPut]
		f.lastPut = ""
		f.mu.Unlock()
		if hard && tag != "" {
			if err := bolt.Put(ctx, tag, old); err != nil {
				t.Fatalf("undo the last checkpoint write of %s: %v", tag, err)
			}
			f.set(func() { f.rolledBack++ })
		}
		if err := bolt.Close(); err != nil {
			t.Errorf("close bolt: %v", err)
		}
		if err := real.close(); err != nil {
			t.Errorf("close publisher: %v", err)
		}
	}
	t.Cleanup(func() {
		stop(false)
		if t.Failed() {
			t.Logf("poller log (tail):\n%s", rfTail(logs.String(), 5000))
		}
	})

	start()
	// Every tag's first poll stores the (empty) head: from then on every media posted is wanted.
	testkit.Eventually(t, 20*time.Second, "every tag's first checkpoint", func() bool {
		for _, tag := range rfTags {
			if _, ok, _ := bolt.Get(ctx, tag); !ok {
				return false
			}
		}
		return true
	})

	// The workload: a few seconds of random steps, paced by a random pause between them (the pace of the workload,
	// not a wait for anything).
	wrng := rand.New(rand.NewPCG(seed, 0x3d)) // #nosec G404 -- test workload
	deadline := time.Now().Add(4 * time.Second)
	deleted := 0
	for time.Now().Before(deadline) {
		switch r := wrng.IntN(20); {
		case r < 7: // a burst of up to three pages
			sim.Post(rfTags[wrng.IntN(len(rfTags))], 1+wrng.IntN(3*cfg.PageSize))
		case r < 10:
			f.set(func() { f.storeFailing = !f.storeFailing })
		case r < 13:
			f.set(func() { f.pubFailing = !f.pubFailing })
		case r < 15: // crash and restart on the same bolt file
			isHard := wrng.IntN(2) == 0
			if isHard {
				// A hard stop: the writes of the shutdown never reach the file, nor the last one before it.
				f.set(func() { f.swallowPuts = true })
				hard++
			}
			stop(isHard)
			restarts++
			start()
		case r < 16:
			sim.SetFaults(testenv.Faults{Down503Envelope: 0.05, Down503HTML: 0.05})
		case r < 18:
			sim.SetFaults(testenv.Faults{})
		default: // delete a recent media (maybe not seen yet): it is then not required
			truth := rfTruthOf(sim.GroundTruth(), rfTags[wrng.IntN(len(rfTags))])
			if len(truth) > 0 {
				if sim.Delete(truth[0].Tag, truth[len(truth)-1-wrng.IntN(min(len(truth), 10))].MediaID) {
					deleted++
				}
			}
		}
		select {
		case <-ctx.Done():
			t.Fatal("the test ended during the workload")
		case <-time.After(time.Duration(20+wrng.IntN(120)) * time.Millisecond):
		}
	}

	// A fault kind the random steps happened not to hit (a stretch with no Put or Publish in it) is forced now, so
	// that every run exercises all three.
	for _, kind := range []string{"store", "publish (nothing sent)", "publish (after the broker)"} {
		count := func() int {
			f.mu.Lock()
			defer f.mu.Unlock()
			switch kind {
			case "store":
				return f.storeFails
			case "publish (nothing sent)":
				return f.pubBefore
			}
			return f.pubAfter
		}
		if count() > 0 {
			continue
		}
		f.set(func() { f.storeFailing, f.pubFailing = kind == "store", kind != "store" })
		tag := rfTags[wrng.IntN(len(rfTags))]
		sim.Post(tag, 5)
		testkit.Eventually(t, 30*time.Second, "an injected "+kind+" failure", func() bool {
			if count() > 0 {
				return true
			}
			sim.Post(tag, 1) // something new to publish and commit
			return false
		})
	}
	if restarts == 0 {
		stop(false)
		restarts++
		start()
	}

	// Quiesce: no more faults; the pipeline must then bring every live media to the broker.
	sim.SetFaults(testenv.Faults{})
	f.set(func() { f.storeFailing, f.pubFailing = false, false })
	wanted := func() map[string]testenv.Truth {
		w := map[string]testenv.Truth{}
		for _, tr := range sim.GroundTruth() {
			if tr.DeletedAt.IsZero() {
				w[tr.MediaID] = tr
			}
		}
		return w
	}
	var missing []string
	defer func() {
		if t.Failed() && len(missing) > 0 {
			t.Logf("%d media never reached the broker, e.g. %v", len(missing), missing[:min(len(missing), 10)])
		}
	}()
	testkit.Eventually(t, 90*time.Second, "every live media of the ground truth at the broker", func() bool {
		f.mu.Lock()
		lost := len(f.violations) > 0
		f.mu.Unlock()
		if lost {
			return true // a cursor passed an unacknowledged media: it will not come; the checks below say which
		}
		w := wanted()
		readMu.Lock()
		defer readMu.Unlock()
		missing = missing[:0]
		for id := range w {
			if counts[id] == 0 {
				missing = append(missing, id)
			}
		}
		return len(missing) == 0
	})
	// The last media's cursors are stored too: every tag's checkpoint reaches its newest live media.
	testkit.Eventually(t, 30*time.Second, "every tag's checkpoint at its newest live media", func() bool {
		all := sim.GroundTruth()
		for _, tag := range rfTags {
			truth := rfTruthOf(all, tag)
			newest := -1
			for i, tr := range truth {
				if tr.DeletedAt.IsZero() {
					newest = i
				}
			}
			st, _, err := bolt.Get(ctx, tag)
			if err != nil || (newest >= 0 && rfCursorIndex(truth, st.Cursor) < newest) {
				return false
			}
		}
		return true
	})
	stop(false)
	testkit.Eventually(t, 30*time.Second, "the reader at the end of the broker's records", func() bool {
		readMu.Lock()
		last, n := maps.Clone(lastPos), records
		readMu.Unlock()
		return atEnd(last, n)
	})

	// The checks.
	w := wanted()
	readMu.Lock()
	defer readMu.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, v := range f.violations {
		t.Error(v)
	}
	if len(f.violated) > 0 {
		t.Errorf("checkpoint writes past an unacknowledged media, by tag: %v", f.violated)
	}
	for _, e := range readErr {
		t.Errorf("broker record: %s", e)
	}
	for _, tag := range rfTags {
		seen := map[string]bool{}
		for _, id := range byTag[tag] {
			seen[id] = true
		}
		var lacking []string
		for _, tr := range rfTruthOf(sim.GroundTruth(), tag) {
			if tr.DeletedAt.IsZero() && !seen[tr.MediaID] {
				lacking = append(lacking, tr.MediaID)
			}
		}
		if len(lacking) > 0 {
			t.Errorf("tag %s: %d live media missing at the broker, e.g. %v", tag, len(lacking), lacking[:min(len(lacking), 5)])
		}
	}
	duplicates, unknown := 0, 0
	var dupIDs []string
	for id, n := range counts {
		if n > 1 {
			duplicates += n - 1
			dupIDs = append(dupIDs, id)
		}
		if _, ok := w[id]; !ok && !slices.ContainsFunc(sim.GroundTruth(), func(tr testenv.Truth) bool { return tr.MediaID == id }) {
			unknown++
		}
	}
	if unknown > 0 {
		t.Errorf("%d media at the broker are no media of the simulator", unknown)
	}
	slices.Sort(dupIDs)
	if sink == sinkJetStream && duplicates > 0 {
		t.Errorf("JetStream holds %d repeated records (media %v): each media must be there exactly once", duplicates,
			dupIDs[:min(len(dupIDs), 10)])
	}
	if f.pubBefore == 0 || f.pubAfter == 0 || f.storeFails == 0 || restarts == 0 {
		t.Errorf("the workload did not exercise every fault: publish failures %d before + %d after the broker, store failures %d, restarts %d",
			f.pubBefore, f.pubAfter, f.storeFails, restarts)
	}
	t.Logf("%s seed %d: %d live media (%d deleted), %d records, %d repeats; publish failures %d before + %d after the broker; "+
		"store failures %d; restarts %d (%d hard: %d shutdown checkpoint writes lost, %d last writes undone); checkpoint writes %d",
		sink, seed, len(w), deleted, records, duplicates, f.pubBefore, f.pubAfter, f.storeFails, restarts, hard,
		f.lostPuts, f.rolledBack, f.puts)
	fmt.Printf("RANDOM-FAULT-FIGURES seed=%d sink=%s media=%d duplicates=%d store_failures=%d publish_failures=%d restarts=%d\n",
		seed, sink, len(w), duplicates, f.storeFails, f.pubBefore+f.pubAfter, restarts)
}

// rfTail returns the last n bytes of s.
func rfTail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// kafkaEndOffset returns the offset the next record of partition p of topic will get.
func kafkaEndOffset(ctx context.Context, addr, topic string, p int) (int64, error) {
	conn, err := kafka.DialLeader(ctx, "tcp", addr, topic, p)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	return conn.ReadLastOffset()
}
