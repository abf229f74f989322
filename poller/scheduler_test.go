package poller

import (
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/tagstream/tagstream/internal/testkit"
	"github.com/tagstream/tagstream/poller/checkpoint"
)

func testScheduler(minIv, maxIv time.Duration) *scheduler {
	return newScheduler(Config{MinInterval: minIv, MaxInterval: maxIv, PageSize: 33})
}

// setRate makes the tag's estimated rate r (media per second) with a long history.
func setRate(s *scheduler, ts *tagState, r float64) {
	ts.dur = 1e6
	b := s.priorWeight()
	ts.cnt = r*(ts.dur+b) - b*s.priorRate
}

// epoch is the start of the tests' monotonic timeline (any positive reading).
const epoch = time.Hour

func TestSquareRootRule(t *testing.T) {
	t.Parallel()
	s := testScheduler(time.Second, time.Hour)
	rates := []float64{0.01, 0.04, 0.25, 1}
	var tags []*tagState
	for i, r := range rates {
		ts := s.add(fmt.Sprintf("t%d", i), epoch, 1)
		setRate(s, ts, r)
		tags = append(tags, ts)
	}
	const budget = 0.5 // polls per second: no tag at a bound
	if ratio := s.rebalance(budget); ratio > 1 {
		t.Fatalf("rebalance reported overload %v", ratio)
	}
	var sum float64
	for _, ts := range tags {
		sum += s.freq(ts)
	}
	if math.Abs(sum-budget)/budget > 0.01 {
		t.Errorf("frequencies sum to %v, want the budget %v", sum, budget)
	}
	for i := 1; i < len(tags); i++ {
		got := s.freq(tags[i]) / s.freq(tags[0])
		want := math.Sqrt(rates[i] / rates[0])
		if math.Abs(got-want)/want > 0.01 {
			t.Errorf("frequency ratio of tag %d to tag 0 = %.3f, want sqrt of the rate ratio %.3f", i, got, want)
		}
	}
}

func TestFrequencyBounds(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		rate    float64
		budget  float64
		atLeast float64
		atMost  float64
	}{
		{"a silent tag is still polled at the floor", 0, 1e-9 + 2.0/3600, 1.0 / 3600, math.Inf(1)},
		{"a hot tag is polled often enough for one page per poll", 20, 0.9, 20 / (pageFill * 33), 1},
		{"a very hot tag is capped at MinInterval", 1000, 1000, 1, 1},
		{"ample budget polls every tag at MinInterval", 0.001, 1000, 1, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := testScheduler(time.Second, time.Hour)
			ts := s.add("x", epoch, 1)
			setRate(s, ts, tc.rate)
			other := s.add("y", epoch, 1)
			setRate(s, other, 0.001)
			s.rebalance(tc.budget)
			if f := s.freq(ts); f < tc.atLeast*0.999 || f > tc.atMost*1.001 {
				t.Errorf("frequency %v, want within [%v, %v]", f, tc.atLeast, tc.atMost)
			}
		})
	}
}

func TestOverloadSlowsEveryTagByTheSameFactor(t *testing.T) {
	t.Parallel()
	s := testScheduler(time.Second, time.Minute)
	var tags []*tagState
	for i := range 100 {
		ts := s.add(fmt.Sprintf("t%d", i), epoch, 1)
		setRate(s, ts, float64(i)/1000)
		tags = append(tags, ts)
	}
	var floors float64
	for _, ts := range tags {
		lo, _ := s.bounds(s.rate(ts))
		floors += lo
	}
	ratio := s.rebalance(floors / 4)
	if math.Abs(ratio-4) > 1e-9 {
		t.Fatalf("rebalance ratio = %v, want 4", ratio)
	}
	for _, ts := range tags {
		lo, _ := s.bounds(s.rate(ts))
		if f := s.freq(ts); math.Abs(f-lo/4)/(lo/4) > 1e-9 {
			t.Fatalf("tag %s polled at %v, want its floor %v slowed by 4", ts.name, f, lo)
		}
	}
}

// TestOverloadIsReported checks the metric and the single log line when the budget cannot cover the floors.
func TestOverloadIsReported(t *testing.T) {
	t.Parallel()
	logs := &testkit.SyncBuffer{}
	var tags []string
	for i := range 50 {
		tags = append(tags, fmt.Sprintf("tag%d", i))
	}
	cfg := Config{BaseURL: "https://h/v1", Tokens: []Token{{Value: "t", RequestsPerHour: 3600}}, Tags: tags,
		MinInterval: time.Second, MaxInterval: 10 * time.Second}
	p, err := New(cfg, &memPublisher{}, checkpoint.NewMemory(), slog.New(slog.NewTextHandler(logs, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	p.rebalance()
	p.rebalance()
	if g := counterValue(t, p.m.overload); g <= 1 {
		t.Errorf("tagstream_schedule_overload = %v, want the demand ratio above 1", g)
	}
	if n := strings.Count(logs.String(), "schedule overloaded"); n != 1 {
		t.Errorf("overload logged %d times, want once", n)
	}
	if err := p.AddTag("a/b"); err == nil {
		t.Errorf("AddTag accepted a tag with a slash")
	}
	for i := range 49 {
		p.RemoveTag(fmt.Sprintf("tag%d", i))
	}
	p.rebalance()
	if g := counterValue(t, p.m.overload); g != 0 {
		t.Errorf("after removing tags the overload gauge is %v, want 0", g)
	}
	if !strings.Contains(logs.String(), "no longer overloaded") {
		t.Errorf("the end of the overload was not logged")
	}
}

func TestAddAndRemoveTags(t *testing.T) {
	t.Parallel()
	s := testScheduler(time.Second, time.Minute)
	for _, name := range []string{"a", "b", "c"} {
		s.add(name, epoch, 100)
	}
	s.add("a", epoch, 100) // a repeat changes nothing
	if len(s.tags) != 3 || s.queue.Len() != 3 {
		t.Fatalf("%d tags, %d queued; want 3, 3", len(s.tags), s.queue.Len())
	}
	s.remove("b")
	if _, ok := s.tags["b"]; ok || s.queue.Len() != 2 || len(s.all) != 2 {
		t.Fatalf("removing a queued tag left it scheduled")
	}
	ts, _ := s.popDue(epoch + time.Hour)
	if ts == nil {
		t.Fatal("no tag due after an hour")
	}
	s.remove(ts.name) // in flight: dropped when done
	s.done(ts, observation{}, epoch+time.Hour)
	if _, ok := s.tags[ts.name]; ok || ts.hidx >= 0 {
		t.Fatalf("a tag removed while in flight was rescheduled")
	}
	ts, _ = s.popDue(epoch + time.Hour)
	s.remove(ts.name)
	s.add(ts.name, epoch, 100) // re-added while in flight: kept
	s.done(ts, observation{}, epoch+time.Hour)
	if _, ok := s.tags[ts.name]; !ok || ts.hidx < 0 {
		t.Fatalf("a tag re-added while in flight was dropped")
	}
}

func TestRateEstimate(t *testing.T) {
	t.Parallel()
	s := testScheduler(time.Second, time.Minute)
	ts := s.add("x", epoch, 1)
	now := epoch
	poll := func(found int, dt time.Duration, truncated bool) {
		now += dt
		s.popDue(now + time.Hour)
		s.done(ts, observation{head: true, found: found, truncated: truncated}, now)
		s.rebalance(1) // as the Poller does about once a second: it updates the shrinkage target
	}
	poll(0, 0, false)
	for range 600 { // an hour at 2 media per 5 s
		poll(2, 5*time.Second, false)
	}
	if r := s.rate(ts); math.Abs(r-0.4)/0.4 > 0.05 {
		t.Errorf("estimate after an hour at 0.4/s = %v", r)
	}
	for range 360 { // half an hour at 10 per 5 s: the estimate follows within minutes
		poll(10, 5*time.Second, false)
	}
	if r := s.rate(ts); math.Abs(r-2)/2 > 0.05 {
		t.Errorf("estimate half an hour after the rate rose to 2/s = %v", r)
	}
	for range 720 { // an hour of silence
		poll(0, 5*time.Second, false)
	}
	if r := s.rate(ts); r > 0.01 {
		t.Errorf("estimate after an hour of silence = %v, want near 0", r)
	}
	poll(40, 5*time.Second, false) // a burst on a quiet tag is followed at once
	if r := s.rate(ts); r < 4 {
		t.Errorf("estimate right after 40 media in 5 s on a quiet tag = %v, want about 8/s", r)
	}
	poll(660, 5*time.Second, true)
	if r := s.rate(ts); r < 132 {
		t.Errorf("a truncated count of 660 in 5 s left the estimate at %v, want at least 132/s", r)
	}
}

// TestNoStarvation runs an overloaded schedule in virtual time: every tag is still polled, about equally often.
func TestNoStarvation(t *testing.T) {
	t.Parallel()
	s := testScheduler(time.Second, 10*time.Second)
	const n = 500
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range n {
		ts := s.add(fmt.Sprintf("t%d", i), epoch, 5)
		setRate(s, ts, rng.ExpFloat64()/100)
	}
	const budget = 5.0 // polls per second; the floors alone need 50
	s.rebalance(budget)
	polls := make(map[string]int)
	now, free := epoch, epoch
	end := epoch + time.Hour
	for now < end {
		ts, wait := s.popDue(now)
		if ts == nil {
			now = max(now+wait, free)
			continue
		}
		polls[ts.name]++
		free = now + (time.Duration(float64(time.Second) / budget))
		s.done(ts, observation{}, now)
		now = max(now, free)
	}
	minPolls, maxPolls := math.MaxInt, 0
	for i := range n {
		c := polls[fmt.Sprintf("t%d", i)]
		minPolls, maxPolls = min(minPolls, c), max(maxPolls, c)
	}
	// An hour at 5 polls/s over 500 tags is 36 polls each.
	if minPolls < 30 || maxPolls > 40 {
		t.Errorf("polls per tag in an overloaded hour range over [%d, %d], want about 36 each", minPolls, maxPolls)
	}
}

// skewResult is the outcome of a simulated skewed workload.
type skewResult struct {
	meanWait   float64 // seconds from post to hand-off, measured
	optimum    float64 // L*, the square-root optimum with the true rates
	roundRobin float64 // mean wait of round-robin polling at the same budget
	polls      int
}

// simulateSkew runs the scheduler in virtual time against tags whose posting rates follow Zipf's law (rate of the
// k-th tag top/k), Poisson arrivals, and a budget of polls per second enforced like the token pool does (polls
// wait for budget in due order). The rates are learned from what the polls find, as in production.
func simulateSkew(n int, top, budget float64, warmup, measure time.Duration, seed uint64) skewResult {
	s := testScheduler(time.Second, time.Hour)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	rates := make(map[*tagState]float64, n)
	last := make(map[*tagState]time.Duration, n)
	var sumR, sumSqrt float64
	for i := range n {
		ts := s.add(fmt.Sprintf("tag%d", i), epoch, budget)
		r := top / float64(i+1)
		rates[ts] = r
		last[ts] = epoch
		sumR += r
		sumSqrt += math.Sqrt(r)
	}
	res := skewResult{
		optimum:    sumSqrt * sumSqrt / (2 * budget * sumR),
		roundRobin: float64(n) / (2 * budget),
	}
	s.rebalance(budget)
	var waitSum, items float64
	start := epoch + warmup
	end := start + measure
	now, free, nextRebalance := epoch, epoch, epoch+10*time.Second
	step := time.Duration(float64(time.Second) / budget)
	for now < end {
		if now >= nextRebalance {
			s.rebalance(budget)
			nextRebalance = now + 10*time.Second
		}
		ts, wait := s.popDue(now)
		if ts == nil {
			now = max(now+wait, free)
			continue
		}
		dt := (now - last[ts]).Seconds()
		k := poisson(rng, rates[ts]*dt)
		if now >= start {
			for range k {
				waitSum += rng.Float64() * dt // arrival uniform over the interval
			}
			items += float64(k)
			res.polls++
		}
		last[ts] = now
		s.done(ts, observation{head: true, found: k, truncated: k >= 21*33}, now)
		free = now + step
		now = max(now, free)
	}
	res.meanWait = waitSum / items
	return res
}

func poisson(rng *rand.Rand, lambda float64) int {
	if lambda > 30 {
		return max(0, int(math.Round(lambda+math.Sqrt(lambda)*rng.NormFloat64())))
	}
	l, k, p := math.Exp(-lambda), 0, 1.0
	for {
		p *= rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

// TestSkewedWorkloadNearOptimum checks in virtual time that the learned square-root schedule comes within 1.25x of
// the optimum L* and beats round-robin polling at the same scarce budget.
func TestSkewedWorkloadNearOptimum(t *testing.T) {
	t.Parallel()
	res := simulateSkew(1000, 1, 20, time.Hour, 2*time.Hour, 1)
	t.Logf("mean post-to-hand-off %.2fs, L* %.2fs (ratio %.3f), round-robin %.2fs, %d polls",
		res.meanWait, res.optimum, res.meanWait/res.optimum, res.roundRobin, res.polls)
	if res.meanWait > 1.25*res.optimum {
		t.Errorf("mean wait %.2fs is more than 1.25x the optimum %.2fs", res.meanWait, res.optimum)
	}
	if res.meanWait >= res.roundRobin {
		t.Errorf("mean wait %.2fs is no better than round-robin %.2fs", res.meanWait, res.roundRobin)
	}
}

func TestOverloadDoesNotFlapAboutTheBudget(t *testing.T) {
	t.Parallel()
	logs := &testkit.SyncBuffer{}
	cfg := Config{BaseURL: "https://h/v1", Tokens: []Token{{Value: "t"}}, Tags: []string{"a"}}
	p, err := New(cfg, &memPublisher{}, checkpoint.NewMemory(), slog.New(slog.NewTextHandler(logs, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	p.reportOverload(0.9, 1, 1)
	if g := counterValue(t, p.m.overload); g != 0 {
		t.Fatalf("gauge %v below the budget, want 0", g)
	}
	for _, ratio := range []float64{1.02, 0.98, 1.01, 0.97, 1.03, 0.96} {
		p.reportOverload(ratio, 1, 1)
		if g := counterValue(t, p.m.overload); g != ratio {
			t.Fatalf("gauge %v at a demand ratio of %v within the overload, want the ratio", g, ratio)
		}
	}
	p.reportOverload(0.95, 1, 1)
	if g := counterValue(t, p.m.overload); g != 0 {
		t.Errorf("gauge %v once the demand fell to 0.95, want 0", g)
	}
	if n, m := strings.Count(logs.String(), "schedule overloaded"), strings.Count(logs.String(), "no longer overloaded"); n != 1 || m != 1 {
		t.Errorf("overload logged %d times and its end %d times, want once each:\n%s", n, m, logs.String())
	}
}
