package poller

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tagstream/tagstream/internal/testkit"
	"github.com/tagstream/tagstream/poller/checkpoint"
	"github.com/tagstream/tagstream/schema"
	"github.com/tagstream/tagstream/testenv"
)

// propSeeds are the workloads TestRandomWorkloadsDeliverEverythingOnce runs. Each seed draws its own mix; seeds
// divisible by 4 always run with a small Retention and a long publisher stall, so that a gap is forced, and seeds
// 3 mod 4 always backfill more pages than CatchUpPages. The list is fixed so that the test is deterministic in what
// it tries (scheduling still varies from run to run). To explore more workloads, widen the list for a run.
var propSeeds = []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}

// propScenario is one random workload, drawn from a seed.
type propScenario struct {
	seed          uint64
	cursors       testenv.CursorStyle
	inclusive     bool
	retention     int // 0 = unlimited
	gap           bool
	catchUp       int
	backfill      bool
	backfillPages int
	rph           int // requests per token per (scaled) hour
	overLimit     testenv.OverLimit
	recentIDs     int
	initial       []int
	rates         []float64
	faults        testenv.Faults
	pubFail       float64 // probability that one Publish call fails
	pubStall      float64 // probability that one Publish call stalls a little
	steps         []propStep
}

// propStep is one action of the workload; the poller goes round once between two steps.
type propStep struct {
	kind string // burst, late, delete, revoke, stall, restart, gapburst
	tag  int
	n    int
}

const propPageSize = 33

func (sc propScenario) String() string {
	style := "numeric"
	if sc.cursors == testenv.CursorOpaque {
		style = "opaque"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d: %s cursors, inclusive=%v, retention=%d, CatchUpPages=%d, RecentIDs=%d, backfill=%v/%d, "+
		"rph=%d, over-limit=%d, initial=%v, rates=%v, faults=%+v, publisher fail=%.2f stall=%.2f; steps:", sc.seed,
		style, sc.inclusive, sc.retention, sc.catchUp, sc.recentIDs, sc.backfill, sc.backfillPages, sc.rph,
		sc.overLimit, sc.initial, sc.rates, sc.faults, sc.pubFail, sc.pubStall)
	for _, s := range sc.steps {
		fmt.Fprintf(&b, " %s(%d,%d)", s.kind, s.tag, s.n)
	}
	return b.String()
}

// drawScenario draws a workload from seed.
func drawScenario(seed uint64, gap, deepBackfill bool) propScenario {
	rng := rand.New(rand.NewPCG(seed, 0x7a6)) // #nosec G404 -- test workload, not security
	sc := propScenario{seed: seed, gap: gap, catchUp: 1 + rng.IntN(3)}
	if rng.IntN(2) == 1 {
		sc.cursors = testenv.CursorOpaque
	}
	sc.inclusive = rng.IntN(2) == 1
	if rng.IntN(3) == 0 {
		sc.backfill = true
		// Sometimes more pages than one poll publishes: the deep backfill goes through catch-up.
		sc.backfillPages = 1 + rng.IntN(sc.catchUp+2)
	}
	if deepBackfill {
		sc.backfill, sc.backfillPages = true, sc.catchUp+1+rng.IntN(2)
	}
	sc.rph = []int{0, 60, 400, 2000}[rng.IntN(4)]
	sc.overLimit = []testenv.OverLimit{testenv.Over503, testenv.Over429, testenv.Over429Flat}[rng.IntN(3)]
	sc.recentIDs = []int{1, 2, 50, 200}[rng.IntN(4)]
	if !gap && rng.IntN(4) == 0 {
		sc.retention = 150 + rng.IntN(100) // a retention the poller should normally stay within
	}
	const tags = 3
	for range tags {
		n := rng.IntN(3*propPageSize + 5)
		if sc.backfill && rng.IntN(3) > 0 {
			n = sc.backfillPages*propPageSize + rng.IntN(40) // more than the backfill: it must stop exactly
		}
		sc.initial = append(sc.initial, n)
		sc.rates = append(sc.rates, []float64{0, 2, 10, 40}[rng.IntN(4)])
	}
	p := func(max float64) float64 { return float64(rng.IntN(int(max*100)+1)) / 100 }
	sc.faults = testenv.Faults{
		Down503Envelope: p(0.06), Down503HTML: p(0.06), Error500: p(0.06), RateLimit429: p(0.06),
		Reset: p(0.03), Truncated: p(0.05),
	}
	if rng.IntN(4) == 0 {
		sc.faults = testenv.Faults{} // some seeds without faults at all
	}
	sc.pubFail = p(0.15)
	sc.pubStall = p(0.15)
	l := sc.catchUp * propPageSize
	sizes := []int{1, 5, 32, propPageSize, 2 * propPageSize, l, l + 1, l - 1, 2*l + 7, 3*l + 1}
	nsteps := 10 + rng.IntN(6)
	for i := range nsteps {
		var st propStep
		st.tag = rng.IntN(tags)
		switch r := rng.IntN(10); {
		case i == nsteps/2:
			st.kind = "restart"
		case r < 4:
			st.kind, st.n = "burst", sizes[rng.IntN(len(sizes))]
		case r < 6:
			st.kind, st.n = "late", 1+rng.IntN(3)
		case r < 8:
			st.kind, st.n = "delete", 1+rng.IntN(3)
		case r < 9:
			st.kind = []string{"stall", "down"}[rng.IntN(2)]
		default:
			st.kind = "revoke"
		}
		sc.steps = append(sc.steps, st)
	}
	if gap {
		sc.retention = 2*propPageSize + rng.IntN(propPageSize)
		sc.steps = slices.Insert(sc.steps, 1+rng.IntN(len(sc.steps)-1),
			propStep{kind: "gapburst", tag: rng.IntN(tags), n: sc.retention + propPageSize + rng.IntN(2*propPageSize)})
	}
	return sc
}

// propPublisher records acknowledged events in a memPublisher and fails or stalls now and then. hold, when set,
// blocks every Publish until it is closed (the long stall of the gap workloads).
type propPublisher struct {
	mem *memPublisher

	mu    sync.Mutex
	rng   *rand.Rand
	fail  float64
	stall float64
	hold  chan struct{}
	held  map[string]int // Publish calls waiting on hold, by tag
	calm  bool
}

// holding returns how many Publish calls of tag wait on hold.
// holdingAny reports whether any Publish call is held.
func (p *propPublisher) holdingAny() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, n := range p.held {
		if n > 0 {
			return true
		}
	}
	return false
}

func (p *propPublisher) holding(tag string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held[tag]
}

func (p *propPublisher) Publish(ctx context.Context, events []*schema.Event) error {
	p.mu.Lock()
	fail := !p.calm && p.rng.Float64() < p.fail
	var stall time.Duration
	if !p.calm && p.rng.Float64() < p.stall {
		stall = time.Duration(10+p.rng.IntN(60)) * time.Millisecond
	}
	hold := p.hold
	if hold != nil && len(events) > 0 {
		p.held[events[0].Subject]++
	}
	p.mu.Unlock()
	if hold != nil {
		var err error
		select {
		case <-hold:
		case <-ctx.Done():
			err = ctx.Err()
		}
		if len(events) > 0 {
			p.mu.Lock()
			p.held[events[0].Subject]--
			p.mu.Unlock()
		}
		if err != nil {
			return err
		}
	}
	if stall > 0 {
		if err := sleep(ctx, stall); err != nil {
			return err
		}
	}
	if fail {
		return errPublishDown
	}
	return p.mem.Publish(ctx, events)
}

func (p *propPublisher) setHold(h chan struct{}) {
	p.mu.Lock()
	p.hold = h
	p.mu.Unlock()
}

func (p *propPublisher) setCalm() {
	p.mu.Lock()
	p.calm, p.hold = true, nil
	p.mu.Unlock()
}

// propOracle knows where each tag started and checks every checkpoint write against the ground truth: the stored
// cursor must never point past a media that was expected but not yet acknowledged.
type propOracle struct {
	t        *testing.T
	srv      *testenv.Server
	pub      *memPublisher
	backfill int   // media a backfill start publishes per tag (0: StartNow)
	retained int   // the simulator's Retention (0: unlimited)
	bound    int64 // StartNow: media created at or after it (unix seconds) must be published

	mu         sync.Mutex
	start      map[string]int  // index in the tag's truth of the first media that must be published
	checked    map[string]int  // media before this index in the tag's truth were checked at an earlier write
	empty      map[string]bool // the tag's cursor was empty at some commit: no reference for the gap probe
	violations []string
}

// truthOf returns the tag's ground truth in feed order (oldest first).
func truthOf(all []testenv.Truth, tag string) []testenv.Truth {
	var out []testenv.Truth
	for _, tr := range all {
		if tr.Tag == tag {
			out = append(out, tr)
		}
	}
	return out
}

func cursorIndex(truth []testenv.Truth, cursor string) int {
	for i := len(truth) - 1; i >= 0; i-- {
		if truth[i].Cursor == cursor {
			return i
		}
	}
	return -1
}

// mayBeCut reports whether the simulator could have dropped truth[i] for retention: at least Retention live media
// are newer (deleted ones do not count, but were live for a while, so they count here; lenient).
func (o *propOracle) mayBeCut(truth []testenv.Truth, i int) bool {
	return o.retained > 0 && len(truth)-1-i >= o.retained
}

// observePut is called before every checkpoint write.
func (o *propOracle) observePut(tag string, st checkpoint.State) {
	truth := truthOf(o.srv.GroundTruth(), tag)
	o.mu.Lock()
	defer o.mu.Unlock()
	if st.Cursor == "" {
		o.empty[tag] = true
	}
	start, known := o.start[tag]
	if !known {
		if o.backfill > 0 {
			// The workload posts nothing before the first poll committed: the feed is the tag's Initial media,
			// of which only the newest Retention were ever served.
			start = max(0, len(truth)-o.backfill)
			if o.retained > 0 {
				start = max(start, len(truth)-o.retained)
			}
		} else {
			// StartNow: the first poll publishes every media created since the start instant (less StartSkew);
			// the workload posts nothing before the first poll committed, and the Initial media were created in
			// order, so these are the newest ones. Everything after them must be published.
			start = len(truth)
			for i, tr := range truth {
				if tr.CreatedTime.Unix() >= o.bound {
					start = i
					break
				}
			}
			o.start[tag] = start
			return
		}
		o.start[tag] = start
	}
	if st.Cursor == "" {
		return
	}
	idx := cursorIndex(truth, st.Cursor)
	if idx < 0 {
		o.violations = append(o.violations, fmt.Sprintf("tag %s: stored cursor %q is no media's cursor", tag, st.Cursor))
		return
	}
	// What an earlier write found acknowledged, deleted or excused stays so (acknowledgements, deletions, gap
	// markers and empty cursors only accumulate, and a media only gets further from the head): each write checks
	// what lies between the last media checked and its cursor.
	gaps := -1 // counted when first needed
	for i := max(start, o.checked[tag]); i <= idx; i++ {
		tr := truth[i]
		if o.pub.published(tr.MediaID) > 0 || !tr.DeletedAt.IsZero() {
			continue
		}
		if o.mayBeCut(truth, i) {
			if gaps < 0 {
				gaps = 0
				for _, g := range o.pub.gaps() {
					if g.Subject == tag {
						gaps++
					}
				}
			}
			if gaps > 0 || o.empty[tag] {
				continue
			}
		}
		o.violations = append(o.violations, fmt.Sprintf(
			"tag %s: cursor stored at media %d (%s) while media %d (%s) was never acknowledged",
			tag, idx, truth[idx].MediaID, i, tr.MediaID))
		return
	}
	o.checked[tag] = max(o.checked[tag], idx+1)
}

// hadEmptyCursor reports whether tag's cursor was empty at some commit: a retention cut then goes unseen (the
// documented limit of the gap probe), so media it dropped may be missing without a gap marker.
func (o *propOracle) hadEmptyCursor(tag string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.empty[tag]
}

// oracleStore is a checkpoint store that shows every write to the oracle first.
type oracleStore struct {
	checkpoint.Store
	o *propOracle
}

func (s oracleStore) Put(ctx context.Context, tag string, st checkpoint.State) error {
	s.o.observePut(tag, st)
	return s.Store.Put(ctx, tag, st)
}

// TestRandomWorkloadsDeliverEverythingOnce runs the real Poller against the simulator over HTTP with random
// workloads (see drawScenario) and checks the delivery contract against the simulator's ground truth.
func TestRandomWorkloadsDeliverEverythingOnce(t *testing.T) {
	t.Parallel() // the seeds run beside the other parallel tests, not before them all
	for _, seed := range propSeeds {
		sc := drawScenario(seed, seed%4 == 0, seed%4 == 3)
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
			t.Parallel()
			t.Log(sc)
			runScenario(t, sc)
		})
	}
}

func runScenario(t *testing.T, sc propScenario) {
	tags := []string{"prop_a", "prop_b", "prop_c"}
	tokens := []string{fmt.Sprintf("prop-%d-t0", sc.seed), fmt.Sprintf("prop-%d-t1", sc.seed),
		fmt.Sprintf("prop-%d-t2", sc.seed)}
	simCfg := testenv.Config{
		PlainHTTP: true, Tokens: tokens, TimeScale: 3600, Seed: int64(sc.seed), Cursors: sc.cursors,
		InclusiveMin: sc.inclusive, Retention: sc.retention, RequestsPerHour: sc.rph, OverLimit: sc.overLimit,
	}
	for j, tag := range tags {
		// Rates start at 0: nothing arrives before each tag's first poll committed, so the start is exact.
		simCfg.Tags = append(simCfg.Tags, testenv.TagConfig{Name: tag, Initial: sc.initial[j]})
	}
	srv := startSim(t, simCfg)

	mem := &memPublisher{}
	pub := &propPublisher{mem: mem, rng: rand.New(rand.NewPCG(sc.seed, 99)), fail: sc.pubFail, stall: sc.pubStall,
		held: make(map[string]int)} // #nosec G404
	oracle := &propOracle{t: t, srv: srv, pub: mem, retained: sc.retention, start: make(map[string]int),
		checked: make(map[string]int), empty: make(map[string]bool)}
	cfg := testConfig(srv, tokens, tags)
	cfg.PageSize = propPageSize
	cfg.CatchUpPages = sc.catchUp
	cfg.RecentIDs = sc.recentIDs
	cfg.ShutdownTimeout = 2 * time.Second
	if sc.rph > 0 {
		cfg.RequestsPerHour = sc.rph
	}
	if sc.backfill {
		cfg.Start = StartBackfill
		cfg.BackfillPages = sc.backfillPages
		oracle.backfill = sc.backfillPages * propPageSize
	} else {
		cfg.StartTime = time.Now() // the same instant for every run: a restart keeps the process's start
		oracle.bound = cfg.StartTime.Add(-StartSkew).Unix()
	}
	mstore := checkpoint.NewMemory()
	t.Cleanup(func() { _ = mstore.Close() })
	store := oracleStore{Store: mstore, o: oracle}

	logs := &testkit.SyncBuffer{}
	var (
		runs    []*Poller
		cancel  context.CancelFunc
		done    chan error
		stopped = true
	)
	start := func() {
		t.Helper()
		logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		p, err := New(cfg, pub, store, logger, nil)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		runs = append(runs, p)
		var ctx context.Context
		ctx, cancel = context.WithCancel(context.Background())
		done = make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		stopped = false
	}
	stop := func() {
		t.Helper()
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("Run did not return within 30s of cancel")
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("poller log (tail):\n%s", tail(logs.String(), 6000))
		}
	})

	start()
	testkit.Eventually(t, 20*time.Second, "every tag's first poll", func() bool {
		for _, tag := range tags {
			if _, ok, _ := mstore.Get(context.Background(), tag); !ok {
				return false
			}
		}
		return true
	})
	srv.SetFaults(sc.faults)
	for j, tag := range tags {
		srv.SetRate(tag, sc.rates[j])
	}

	rng := rand.New(rand.NewPCG(sc.seed, 7)) // #nosec G404
	revoked := 0
	for _, st := range sc.steps {
		tag := tags[st.tag]
		switch st.kind {
		case "burst":
			srv.Post(tag, st.n)
		case "late":
			for range st.n {
				srv.PostLate(tag, time.Duration(1+rng.IntN(72))*time.Hour)
			}
		case "delete":
			truth := truthOf(srv.GroundTruth(), tag)
			for range st.n {
				if len(truth) == 0 {
					break
				}
				// Mostly the newest media (maybe not seen yet), sometimes an older one (seen already).
				k := len(truth) - 1 - rng.IntN(min(len(truth), 40))
				srv.Delete(tag, truth[k].MediaID)
			}
		case "revoke":
			if revoked < len(tokens)-1 {
				srv.RevokeToken(tokens[revoked])
				revoked++
			}
		case "stall":
			// Hold every Publish until one is held or the poller went round without publishing.
			h := make(chan struct{})
			pub.setHold(h)
			p := runs[len(runs)-1]
			polls := counterValue(t, p.m.polls)
			testkit.Eventually(t, 20*time.Second, "a held publish or a round of polls", func() bool {
				return pub.holdingAny() || counterValue(t, p.m.polls) >= polls+float64(len(tags))
			})
			pub.setHold(nil)
			close(h)
		case "gapburst":
			// A long publisher stall while more media than Retention arrive: the poller cannot keep up, the
			// simulator drops media it never saw, and a gap marker must say so. The tag's poll is first caught in
			// the stalled Publish (with one new media), so that its cursor cannot follow the burst.
			if st, _, _ := mstore.Get(context.Background(), tag); st.Cursor == "" {
				// An empty cursor leaves the probe nothing to compare with (a documented limit): first let the
				// tag publish something.
				srv.Post(tag, 1)
				testkit.Eventually(t, 20*time.Second, tag+" to commit a cursor", func() bool {
					st, _, _ := mstore.Get(context.Background(), tag)
					return st.Cursor != ""
				})
			}
			h := make(chan struct{})
			pub.setHold(h)
			srv.Post(tag, 1)
			testkit.Eventually(t, 10*time.Second, "a poll of "+tag+" to wait on the stalled publisher", func() bool {
				return pub.holding(tag) > 0
			})
			srv.Post(tag, st.n) // the simulator drops what falls out of Retention at once
			pub.setHold(nil)
			close(h)
		case "down":
			srv.Down(time.Duration(50+rng.IntN(200)) * time.Millisecond)
		case "restart":
			stop()
			start()
		}
		// Let the poller go round (arrivals go on meanwhile) before the next step.
		waitPolled(t, runs[len(runs)-1])
	}

	// Quiesce: no more arrivals or faults, a well-behaved publisher; then everything expected must arrive.
	for _, tag := range tags {
		srv.SetRate(tag, 0)
	}
	srv.SetFaults(testenv.Faults{})
	pub.setCalm()
	oracle.mu.Lock()
	starts := maps.Clone(oracle.start)
	oracle.mu.Unlock()
	type want struct {
		tr       testenv.Truth
		optional bool // may be missing (retention), only with a gap marker
	}
	// An arrival in progress when the rates dropped to 0 may still land a little later: the truth and what is
	// wanted are read afresh at every check, and once more after the poller stopped.
	var (
		truth  []testenv.Truth
		wanted map[string]want
	)
	readTruth := func() {
		truth = srv.GroundTruth()
		wanted = make(map[string]want)
		for _, tag := range tags {
			tt := truthOf(truth, tag)
			for i := starts[tag]; i < len(tt); i++ {
				if !tt[i].DeletedAt.IsZero() {
					continue
				}
				wanted[tt[i].MediaID] = want{tt[i], oracle.mayBeCut(tt, i)}
			}
		}
	}
	gapTags := func() map[string]int {
		out := make(map[string]int)
		for _, g := range mem.gaps() {
			out[g.Subject]++
		}
		return out
	}
	var lacking []string
	settled := func() bool {
		readTruth()
		lacking = lacking[:0]
		got, gaps := mem.mediaCount(), gapTags()
		for _, tag := range tags {
			tt := truthOf(truth, tag)
			for i := starts[tag]; i < len(tt); i++ {
				w, ok := wanted[tt[i].MediaID]
				if ok && got[w.tr.MediaID] == 0 && !(w.optional && (gaps[tag] > 0 || oracle.hadEmptyCursor(tag))) {
					lacking = append(lacking, fmt.Sprintf("%s#%d(%s late=%v)", tag, i, tt[i].MediaID, tt[i].Late))
				}
			}
			// and every tag caught up with its head (no segments left)
			if st, _, _ := mstore.Get(context.Background(), tag); len(st.Segments) > 0 {
				lacking = append(lacking, fmt.Sprintf("%s: %d segments left", tag, len(st.Segments)))
			}
		}
		return len(lacking) == 0
	}
	func() {
		defer func() {
			if !t.Failed() {
				return
			}
			for _, tag := range tags {
				st, _, _ := mstore.Get(context.Background(), tag)
				tt := truthOf(truth, tag)
				t.Logf("%s: start %d, %d media, cursor at #%d, %d segments, recent %v", tag, starts[tag], len(tt),
					cursorIndex(tt, st.Cursor), len(st.Segments), tail(strings.Join(st.Recent, ","), 200))
			}
			t.Logf("%d media lacking (first: %v)", len(lacking), lacking[:min(len(lacking), 8)])
		}()
		// settled reads the whole ground truth: every 25 ms, not 5 (once true it stays true, rates being 0).
		testkit.EventuallyEvery(t, 25*time.Second, 25*time.Millisecond, "every expected media and no segment left", settled)
	}()
	// A few more polls of every tag may not publish anything again.
	p := runs[len(runs)-1]
	polls := counterValue(t, p.m.polls)
	testkit.Eventually(t, 10*time.Second, "a few more polls", func() bool {
		return counterValue(t, p.m.polls) >= polls+float64(3*len(tags))
	})
	stop()
	readTruth()

	got, gaps := mem.mediaCount(), gapTags()
	for id, n := range got {
		_, ok := wanted[id]
		switch {
		case n > 1:
			t.Errorf("media %s published %d times, want once", id, n)
		case !ok && !deleted(truth, id):
			// A media older than its tag's start: StartNow or a backfill published more than it should.
			t.Errorf("media %s published but not expected", id)
		}
	}
	missing := 0
	for id, w := range wanted {
		if got[id] == 0 {
			missing++
			if !w.optional || (gaps[w.tr.Tag] == 0 && !oracle.hadEmptyCursor(w.tr.Tag)) {
				t.Errorf("tag %s: media %s (visible at %s) was never published", w.tr.Tag, id,
					w.tr.VisibleAt.Format(time.StampMilli))
			}
		}
	}
	checkOrder(t, srv, mem)
	// Gap markers: only when Retention could cut something; in the gap workloads one is forced and counted.
	var counted float64
	for _, r := range runs {
		counted += counterValue(t, r.m.gaps)
	}
	ngaps := len(mem.gaps())
	if sc.gap && ngaps == 0 {
		t.Errorf("no gap marker although a burst beyond Retention arrived during a publisher stall")
	}
	var seenObs, postObs uint64
	for _, r := range runs {
		seenObs += histogramCount(t, r.m.seenToPublish)
		postObs += histogramCount(t, r.m.postToPublish)
	}
	if total := uint64(len(mem.snapshot()) - ngaps); seenObs != total || postObs != total {
		t.Errorf("latency histograms observed %d (seen) and %d (post) media, want one per acknowledged media (%d)",
			seenObs, postObs, total)
	}
	if counted != float64(ngaps) {
		t.Errorf("tagstream_gaps_total = %v over all runs, but %d gap markers were acknowledged", counted, ngaps)
	}
	checkGapPlacement(t, truth, mem.snapshot(), func(tt []testenv.Truth) bool {
		for i := range tt {
			if oracle.mayBeCut(tt, i) {
				return true
			}
		}
		return false
	})
	oracle.mu.Lock()
	for _, v := range oracle.violations {
		t.Error(v)
	}
	oracle.mu.Unlock()
	t.Logf("seed %d: published %d media, %d gap markers, %d optional media missing, %d runs", sc.seed, len(got), ngaps, missing, len(runs))
}

// deleted reports whether id is a deleted media.
func deleted(truth []testenv.Truth, id string) bool {
	for _, tr := range truth {
		if tr.MediaID == id {
			return !tr.DeletedAt.IsZero()
		}
	}
	return false
}

// checkGapPlacement checks every gap marker: its FromCursor is the cursor of one of the tag's media, the tag could
// have lost media to retention (cuttable) or that media was deleted (the documented false alarm: the poller cannot
// tell a user's deletion of a tag's oldest media from a retention cut), every media of the tag published before it
// is at or below that media, and every one published after it is above.
func checkGapPlacement(t *testing.T, truth []testenv.Truth, events []*schema.Event, cuttable func([]testenv.Truth) bool) {
	t.Helper()
	pos := make(map[string]int) // media id -> index in its tag's truth
	byTag := make(map[string][]testenv.Truth)
	for _, tr := range truth {
		pos[tr.MediaID] = len(byTag[tr.Tag])
		byTag[tr.Tag] = append(byTag[tr.Tag], tr)
	}
	for gi, g := range events {
		if g.Gap == nil {
			continue
		}
		tt := byTag[g.Subject]
		from := cursorIndex(tt, g.Gap.FromCursor)
		if from < 0 {
			t.Errorf("gap marker of %s: FromCursor %q is no media's cursor", g.Subject, g.Gap.FromCursor)
			continue
		}
		if !cuttable(tt) && tt[from].DeletedAt.IsZero() {
			t.Errorf("gap marker of %s although retention could not cut anything and its cursor's media was not "+
				"deleted", g.Subject)
		}
		for ei, e := range events {
			if e.Data == nil || e.Subject != g.Subject {
				continue
			}
			i := pos[e.Data.MediaID]
			if (ei < gi && i > from) || (ei > gi && i <= from) {
				t.Errorf("gap marker of %s from media %d: media %d published on the wrong side of it", g.Subject,
					from, i)
				break
			}
		}
	}
}

// histogramCount reads the sample count of a histogram.
func histogramCount(t *testing.T, h prometheus.Histogram) uint64 {
	t.Helper()
	var m dtoMetric
	if err := h.Write(&m); err != nil {
		t.Fatalf("read histogram: %v", err)
	}
	return m.GetHistogram().GetSampleCount()
}
