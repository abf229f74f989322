package main

import (
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/tagstream/tagstream/testenv"
)

func TestLStar(t *testing.T) {
	tests := []struct {
		name   string
		rates  []float64
		budget float64
		want   float64
	}{
		// Σ√r = 1 + 2 = 3, Σr = 5: 9 / (2·1·5) = 0.9 s. By hand: f = (1/3, 2/3) polls/s, mean wait
		// (1·1.5 + 4·0.75) / 5 = 0.9 s.
		{"two tags, rates 1 and 4, one request per second", []float64{1, 4}, 1, 0.9},
		// One tag polled every 2 s waits 1 s on average.
		{"one tag polled every two seconds", []float64{2}, 0.5, 1},
		{"equal rates give half the round-robin cycle", []float64{3, 3, 3, 3}, 2, 1},
		{"tags that never post do not count", []float64{1, 4, 0}, 1, 0.9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := LStar(tt.rates, tt.budget); math.Abs(got-tt.want) > 1e-12 {
				t.Errorf("LStar(%v, %v) = %v, want %v", tt.rates, tt.budget, got, tt.want)
			}
		})
	}
	for _, tt := range []struct {
		name   string
		rates  []float64
		budget float64
	}{
		{"no budget", []float64{1}, 0},
		{"no posts", []float64{0, 0}, 1},
		{"no tags", nil, 1},
	} {
		t.Run(tt.name+" is not a number", func(t *testing.T) {
			if got := LStar(tt.rates, tt.budget); !math.IsNaN(got) {
				t.Errorf("LStar = %v, want NaN", got)
			}
		})
	}
}

func TestLStarIsTheMeanWaitOfTheSquareRootRuleAndBeatsRoundRobin(t *testing.T) {
	rates := []float64{8, 2, 0.5, 0.1, 0.01}
	const budget = 3.0
	meanWait := func(freq []float64) float64 {
		var num, den float64
		for i, r := range rates {
			num += r / (2 * freq[i])
			den += r
		}
		return num / den
	}
	var sqrtSum float64
	for _, r := range rates {
		sqrtSum += math.Sqrt(r)
	}
	sqrtRule, uniform := make([]float64, len(rates)), make([]float64, len(rates))
	for i, r := range rates {
		sqrtRule[i] = budget * math.Sqrt(r) / sqrtSum
		uniform[i] = budget / float64(len(rates))
	}
	lstar := LStar(rates, budget)
	if got := meanWait(sqrtRule); math.Abs(got-lstar) > 1e-9 {
		t.Errorf("mean wait under the square-root rule = %v, L* = %v", got, lstar)
	}
	if rr := meanWait(uniform); rr <= lstar {
		t.Errorf("round-robin mean wait %v is not above L* %v", rr, lstar)
	}
}

func TestPercentileIsNearestRank(t *testing.T) {
	seq := func(n int) []time.Duration {
		out := make([]time.Duration, n)
		for i := range out {
			out[i] = time.Duration(i+1) * time.Second
		}
		return out
	}
	tests := []struct {
		name   string
		values []time.Duration
		p      float64
		want   time.Duration
	}{
		{"p99 of ten values is the largest", seq(10), 99, 10 * time.Second},
		{"p50 of ten values is the fifth", seq(10), 50, 5 * time.Second},
		{"p99 of a hundred values is the 99th", seq(100), 99, 99 * time.Second},
		{"p99 of one value is that value", seq(1), 99, time.Second},
		{"no values give zero", nil, 99, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.values, tt.p); got != tt.want {
				t.Errorf("percentile = %v, want %v", got, tt.want)
			}
		})
	}
}

// at returns t0 plus s seconds.
var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

func TestJoinClassifiesEveryPostedMedia(t *testing.T) {
	truth := []testenv.Truth{
		{Tag: "a", MediaID: "a0", VisibleAt: at(-5)},                    // before the run: not counted
		{Tag: "a", MediaID: "a1", VisibleAt: at(1)},                     // before a's first poll (3 s), missing
		{Tag: "a", MediaID: "a2", VisibleAt: at(4)},                     // arrived after 2 s
		{Tag: "a", MediaID: "a3", VisibleAt: at(6)},                     // after the first poll, missing: a loss
		{Tag: "a", MediaID: "a4", VisibleAt: at(7), DeletedAt: at(7.5)}, // deleted: not counted
		{Tag: "b", MediaID: "b1", VisibleAt: at(2)},                     // before b's first arrival, missing
		{Tag: "b", MediaID: "b2", VisibleAt: at(5)},                     // arrived twice, first after 1 s
		{Tag: "b", MediaID: "b3", VisibleAt: at(8)},                     // after b's first arrival, missing: a loss
		{Tag: "c", MediaID: "c1", VisibleAt: at(3)},                     // nothing of c arrived, no first poll
		{Tag: "a", MediaID: "a5", VisibleAt: at(10)},                    // after the run: not counted
	}
	arrivals := map[mediaKey]arrival{
		{"a", "a2"}: {At: at(6), Count: 1},
		{"b", "b2"}: {At: at(6), Count: 2},
	}
	firstPoll := map[string]time.Time{"a": at(3)}
	got := join(truth, at(0), at(10), arrivals, firstPoll)
	want := []outcome{
		{Tag: "a", Visible: at(1), Missing: missingBeforeFirstPoll},
		{Tag: "a", Visible: at(4), Latency: 2 * time.Second, Copies: 1},
		{Tag: "a", Visible: at(6), Missing: missingAfterFirstPoll},
		{Tag: "b", Visible: at(2), Missing: missingBeforeFirstPoll},
		{Tag: "b", Visible: at(5), Latency: time.Second, Copies: 2},
		{Tag: "b", Visible: at(8), Missing: missingAfterFirstPoll},
		{Tag: "c", Visible: at(3), Missing: missingTagNeverPolled},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("join:\n got %+v\nwant %+v", got, want)
	}
}

func TestSummariseSplitsByPostingTime(t *testing.T) {
	outs := []outcome{
		{Tag: "hot", Visible: at(1), Latency: 1 * time.Second, Copies: 1},
		{Tag: "hot", Visible: at(2), Latency: 3 * time.Second, Copies: 1},
		{Tag: "cold", Visible: at(5), Latency: 20 * time.Second, Copies: 3},
		{Tag: "hot", Visible: at(6), Missing: missingBeforeFirstPoll},
		{Tag: "cold", Visible: at(95), Latency: 4 * time.Second, Copies: 1},
		{Tag: "hot", Visible: at(96), Latency: 2 * time.Second, Copies: 1},
		{Tag: "hot", Visible: at(97), Missing: missingAfterFirstPoll},
		{Tag: "x", Visible: at(98), Missing: missingTagNeverPolled},
	}
	first := summarise(outs, window{"first", at(0), at(90)}, 10*time.Second)
	wantFirst := latencyStats{
		Posted: 4, Delivered: 3, Duplicates: 2, MissingBeforeFirstPoll: 1,
		Mean: 8 * time.Second, P50: 3 * time.Second, P99: 20 * time.Second, Max: 20 * time.Second,
		WorstTag: "cold", WorstTagMean: 20 * time.Second, WorstTagN: 1, OverBound: 1,
	}
	if first != wantFirst {
		t.Errorf("first window:\n got %+v\nwant %+v", first, wantFirst)
	}
	after := summarise(outs, window{"after", at(90), at(100)}, 0)
	wantAfter := latencyStats{
		Posted: 4, Delivered: 2, MissingAfterFirstPoll: 1, MissingTagNeverPolled: 1,
		Mean: 3 * time.Second, P50: 2 * time.Second, P99: 4 * time.Second, Max: 4 * time.Second,
		WorstTag: "cold", WorstTagMean: 4 * time.Second, WorstTagN: 1,
	}
	if after != wantAfter {
		t.Errorf("after window:\n got %+v\nwant %+v", after, wantAfter)
	}
	if got := after.Missing(); got != 2 {
		t.Errorf("Missing() = %d, want 2", got)
	}
	if empty := summarise(outs, window{"empty", at(200), at(300)}, 0); empty != (latencyStats{}) {
		t.Errorf("a window without media: %+v, want zero figures", empty)
	}
}

func TestValueAtInterpolatesBetweenSamples(t *testing.T) {
	s := []counterSample{{at(0), 0}, {at(10), 100}, {at(20), 100}}
	tests := []struct {
		name string
		t    time.Time
		want float64
	}{
		{"before the first sample it is the first value", at(-1), 0},
		{"halfway it is halfway", at(5), 50},
		{"on a sample it is the sample", at(10), 100},
		{"after the last sample it is the last value", at(30), 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := valueAt(s, tt.t); got != tt.want {
				t.Errorf("valueAt = %v, want %v", got, tt.want)
			}
		})
	}
	if !math.IsNaN(valueAt(nil, at(0))) {
		t.Error("valueAt without samples is not NaN")
	}
}

func TestPeakRateFindsTheBusiestSpan(t *testing.T) {
	// One request per second, except 90 in the 60 s from 60 to 120.
	var s []counterSample
	v := 0.0
	for sec := 0; sec <= 240; sec += 10 {
		s = append(s, counterSample{at(float64(sec)), v})
		if sec >= 60 && sec < 120 {
			v += 15
		} else {
			v += 10
		}
	}
	if got := peakRate(s, time.Minute); math.Abs(got-1.5) > 1e-9 {
		t.Errorf("peakRate = %v, want 1.5", got)
	}
	if got := peakRate(s[:3], time.Minute); got != 0 {
		t.Errorf("peakRate over 20 s of samples = %v, want 0 (no span of a minute)", got)
	}
}

func TestRestartingCounterStaysCumulative(t *testing.T) {
	var c restartingCounter
	for i, v := range []float64{0, 5, 9, 2, 4, 1} { // restarts after 9 and after 4
		c.add(at(float64(i)), v)
	}
	var got []float64
	for _, s := range c.series {
		got = append(got, s.Value)
	}
	want := []float64{0, 5, 9, 11, 13, 14}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("series = %v, want %v", got, want)
	}
}

func TestAllNewestArrivedIgnoresMediaBeforeTheFirstPoll(t *testing.T) {
	truth := []testenv.Truth{
		{Tag: "a", MediaID: "a1", VisibleAt: at(1)},
		{Tag: "a", MediaID: "a2", VisibleAt: at(5)},
		{Tag: "b", MediaID: "b1", VisibleAt: at(2)},  // before b's first poll
		{Tag: "c", MediaID: "c1", VisibleAt: at(20)}, // after the end
	}
	rec := newRecorder()
	fp := map[string]time.Time{"a": at(0), "b": at(3)}
	if allNewestArrived(truth, at(0), at(10), rec, fp) {
		t.Fatal("nothing arrived, yet everything counts as arrived")
	}
	rec.add("a", "a1", at(6))
	if allNewestArrived(truth, at(0), at(10), rec, fp) {
		t.Fatal("a's newest media has not arrived, yet everything counts as arrived")
	}
	rec.add("a", "a2", at(6))
	if !allNewestArrived(truth, at(0), at(10), rec, fp) {
		t.Fatal("a's newest media arrived and b's only media predates b's first poll, yet the wait goes on")
	}
	if allNewestArrived(truth, at(0), at(10), rec, nil) {
		t.Fatal("without first polls b's media must arrive too")
	}
}

func TestUseSeriesCutsTheSpanIntoSlices(t *testing.T) {
	// Two requests per second for the first 30 s, then one; a budget of 2 requests per second.
	s := []counterSample{{at(0), 0}, {at(30), 60}, {at(60), 90}, {at(75), 105}}
	got := useSeries(s, at(0), at(75), 2, 30*time.Second)
	if want := []float64{1, 0.5}; !reflect.DeepEqual(got, want) { // the last 15 s are not a whole slice
		t.Errorf("useSeries = %v, want %v", got, want)
	}
}

func TestTagMeansAveragesEachTagsDeliveredMediaInTheWindows(t *testing.T) {
	outs := []outcome{
		{Tag: "hot", Visible: at(10), Latency: 50 * time.Second, Copies: 1},  // in no window
		{Tag: "hot", Visible: at(95), Latency: 1 * time.Second, Copies: 1},   // first window
		{Tag: "hot", Visible: at(99), Latency: 3 * time.Second, Copies: 2},   // first window, a copy counts once
		{Tag: "hot", Visible: at(100), Latency: 40 * time.Second, Copies: 1}, // the first window ends before it
		{Tag: "cold", Visible: at(250), Latency: 10 * time.Second, Copies: 1},
		{Tag: "cold", Visible: at(260), Missing: missingAfterFirstPoll}, // no latency: not counted
		{Tag: "gone", Visible: at(270), Missing: missingBeforeFirstPoll},
	}
	ws := []window{{"a", at(90), at(100)}, {"b", at(200), at(300)}}
	perTag, all := tagMeans(outs, ws)
	// hot: (1 + 3) / 2 = 2 s; cold: 10 s alone; all: (1 + 3 + 10) / 3 = 4.667 s.
	want := map[string]tagLatency{"hot": {Media: 2, MeanS: 2}, "cold": {Media: 1, MeanS: 10}}
	if !reflect.DeepEqual(perTag, want) {
		t.Errorf("per tag = %+v, want %+v", perTag, want)
	}
	if all.Media != 3 || math.Abs(all.MeanS-14.0/3) > 1e-9 {
		t.Errorf("all = %+v, want 3 media, mean 4.667 s", all)
	}
	if perTag, all := tagMeans(outs, nil); len(perTag) != 0 || all != (tagLatency{}) {
		t.Errorf("without windows: %+v, %+v; want nothing", perTag, all)
	}
}
