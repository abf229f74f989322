package main

import (
	"math"
	"sort"
	"time"

	"github.com/tagstream/tagstream/testenv"
)

// LStar is the optimum mean wait of a media, in seconds, when tags with Poisson posting rates (media per second)
// share a budget of requests per second and every poll costs one request: the square-root rule gives
// L* = (Σ√r_i)² / (2·B·Σr_i). It returns NaN when the budget or the total rate is not positive.
func LStar(rates []float64, budget float64) float64 {
	var sqrtSum, sum float64
	for _, r := range rates {
		if r <= 0 {
			continue
		}
		sqrtSum += math.Sqrt(r)
		sum += r
	}
	if !(budget > 0) || !(sum > 0) {
		return math.NaN()
	}
	return sqrtSum * sqrtSum / (2 * budget * sum)
}

// mediaKey names one media of one tag.
type mediaKey struct {
	Tag     string
	MediaID string
}

// arrival is when one side (tagstream's events on the broker, or the round-robin poller) first had a media, and how
// often it had it.
type arrival struct {
	At    time.Time
	Count int
}

// window is a span of posting times: a media belongs to the window its VisibleAt falls in, [From, To).
type window struct {
	Name     string
	From, To time.Time
}

// missingKind says why a posted media never arrived.
type missingKind int

const (
	// notMissing: the media arrived.
	notMissing missingKind = iota
	// missingBeforeFirstPoll: it became visible before its tag's first successful poll (with --start now the first
	// poll only sets the cursor, so these are lost by design).
	missingBeforeFirstPoll
	// missingAfterFirstPoll: it became visible after its tag's first poll and never arrived: a loss.
	missingAfterFirstPoll
	// missingTagNeverPolled: nothing shows that its tag was ever polled (no first poll seen, nothing delivered).
	missingTagNeverPolled
)

// outcome is the fate of one posted media on one side.
type outcome struct {
	Tag     string
	Visible time.Time
	Latency time.Duration // arrival minus VisibleAt; meaningful when Missing == notMissing
	Missing missingKind
	Copies  int // times it arrived (1 = once; more = duplicates)
}

// join matches every media of truth that became visible in [from, to) (deleted media excluded) with its arrival.
// firstPoll gives, per tag, the end of the tag's first successful poll; for a tag without an entry the first poll is
// taken to be the earliest arrival of one of its media (an approximation that can only count a loss as a
// start-now loss when the loss falls before the first media that did arrive).
func join(truth []testenv.Truth, from, to time.Time, arrivals map[mediaKey]arrival, firstPoll map[string]time.Time) []outcome {
	fp := make(map[string]time.Time, len(firstPoll))
	for tag, at := range firstPoll {
		fp[tag] = at
	}
	earliest := map[string]time.Time{}
	for _, tr := range truth {
		if _, ok := firstPoll[tr.Tag]; ok {
			continue
		}
		if _, ok := arrivals[mediaKey{tr.Tag, tr.MediaID}]; !ok || tr.VisibleAt.Before(from) {
			continue
		}
		if e, seen := earliest[tr.Tag]; !seen || tr.VisibleAt.Before(e) {
			earliest[tr.Tag] = tr.VisibleAt
		}
	}
	for tag, at := range earliest {
		fp[tag] = at
	}
	var out []outcome
	for _, tr := range truth {
		if !tr.DeletedAt.IsZero() || tr.VisibleAt.Before(from) || !tr.VisibleAt.Before(to) {
			continue
		}
		o := outcome{Tag: tr.Tag, Visible: tr.VisibleAt}
		if a, ok := arrivals[mediaKey{tr.Tag, tr.MediaID}]; ok {
			o.Latency = a.At.Sub(tr.VisibleAt)
			o.Copies = a.Count
		} else {
			first, polled := fp[tr.Tag]
			switch {
			case !polled:
				o.Missing = missingTagNeverPolled
			case tr.VisibleAt.Before(first):
				o.Missing = missingBeforeFirstPoll
			default:
				o.Missing = missingAfterFirstPoll
			}
		}
		out = append(out, o)
	}
	return out
}

// latencyStats summarises the outcomes of one side in one window.
type latencyStats struct {
	Posted                 int
	Delivered              int
	Duplicates             int // extra copies beyond the first
	MissingBeforeFirstPoll int
	MissingAfterFirstPoll  int
	MissingTagNeverPolled  int
	Mean, P50, P99, Max    time.Duration
	WorstTag               string
	WorstTagMean           time.Duration
	WorstTagN              int
	OverBound              int // delivered later than the bound given to summarise (0 bound: not counted)
}

// Missing is every media of the window that never arrived.
func (s latencyStats) Missing() int {
	return s.MissingBeforeFirstPoll + s.MissingAfterFirstPoll + s.MissingTagNeverPolled
}

// summarise computes the figures of the outcomes whose VisibleAt falls in w. bound, when positive, counts the media
// that took longer than it (tagstream's --max-interval plus slack).
func summarise(outs []outcome, w window, bound time.Duration) latencyStats {
	var s latencyStats
	var lat []time.Duration
	type acc struct {
		sum time.Duration
		n   int
	}
	perTag := map[string]*acc{}
	for _, o := range outs {
		if o.Visible.Before(w.From) || !o.Visible.Before(w.To) {
			continue
		}
		s.Posted++
		switch o.Missing {
		case missingBeforeFirstPoll:
			s.MissingBeforeFirstPoll++
			continue
		case missingAfterFirstPoll:
			s.MissingAfterFirstPoll++
			continue
		case missingTagNeverPolled:
			s.MissingTagNeverPolled++
			continue
		}
		s.Delivered++
		if o.Copies > 1 {
			s.Duplicates += o.Copies - 1
		}
		lat = append(lat, o.Latency)
		a := perTag[o.Tag]
		if a == nil {
			a = &acc{}
			perTag[o.Tag] = a
		}
		a.sum += o.Latency
		a.n++
		if bound > 0 && o.Latency > bound {
			s.OverBound++
		}
	}
	if len(lat) == 0 {
		return s
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	var sum time.Duration
	for _, l := range lat {
		sum += l
	}
	s.Mean = sum / time.Duration(len(lat))
	s.P50 = percentile(lat, 50)
	s.P99 = percentile(lat, 99)
	s.Max = lat[len(lat)-1]
	tags := make([]string, 0, len(perTag))
	for t := range perTag {
		tags = append(tags, t)
	}
	sort.Strings(tags)
	for _, t := range tags {
		a := perTag[t]
		m := a.sum / time.Duration(a.n)
		if s.WorstTag == "" || m > s.WorstTagMean {
			s.WorstTag, s.WorstTagMean, s.WorstTagN = t, m, a.n
		}
	}
	return s
}

// percentile returns the nearest-rank p-th percentile of sorted (ascending, non-empty) values.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// counterSample is the value of a cumulative counter at a time.
type counterSample struct {
	At    time.Time
	Value float64
}

// valueAt returns the counter's value at t, interpolated linearly between the samples around it (the first or
// last sample outside their span). It returns NaN without samples.
func valueAt(samples []counterSample, t time.Time) float64 {
	if len(samples) == 0 {
		return math.NaN()
	}
	i := sort.Search(len(samples), func(i int) bool { return !samples[i].At.Before(t) })
	if i == 0 {
		return samples[0].Value
	}
	if i == len(samples) {
		return samples[len(samples)-1].Value
	}
	a, b := samples[i-1], samples[i]
	span := b.At.Sub(a.At)
	if span <= 0 {
		return b.Value
	}
	f := float64(t.Sub(a.At)) / float64(span)
	return a.Value + f*(b.Value-a.Value)
}

// peakRate returns the highest rate (per second) of a counter over any span of at least minSpan between two
// samples, using the shortest such span from each sample. It returns 0 when no span is long enough.
func peakRate(samples []counterSample, minSpan time.Duration) float64 {
	peak := 0.0
	j := 0
	for i := range samples {
		if j < i {
			j = i
		}
		for j < len(samples) && samples[j].At.Sub(samples[i].At) < minSpan {
			j++
		}
		if j == len(samples) {
			break
		}
		r := (samples[j].Value - samples[i].Value) / samples[j].At.Sub(samples[i].At).Seconds()
		peak = max(peak, r)
	}
	return peak
}

// seriesStep is the slice length of the budget-use series in the report.
const seriesStep = 30 * time.Second

// useSeries returns the budget use (requests over budget × step) of each whole slice of length step of [from, to).
func useSeries(samples []counterSample, from, to time.Time, budget float64, step time.Duration) []float64 {
	var out []float64
	for a := from; !a.Add(step).After(to); a = a.Add(step) {
		b := a.Add(step)
		out = append(out, (valueAt(samples, b)-valueAt(samples, a))/(budget*step.Seconds()))
	}
	return out
}

// tagLatency is the mean latency of one tag's delivered media.
type tagLatency struct {
	// Media is the number of delivered media the mean is over.
	Media int `json:"media"`
	// MeanS is their mean post-to-event latency in seconds; 0 without media.
	MeanS float64 `json:"mean_s"`
}

// tagMeans returns, per tag, the mean latency of the delivered media whose VisibleAt falls in one of the windows,
// and the same over all tags. Media that never arrived do not count (they have no latency); a tag without a
// delivered media in the windows has no entry.
func tagMeans(outs []outcome, ws []window) (map[string]tagLatency, tagLatency) {
	type acc struct {
		sum time.Duration
		n   int
	}
	perTag := map[string]*acc{}
	var all acc
	for _, o := range outs {
		if o.Missing != notMissing || !inAny(o.Visible, ws) {
			continue
		}
		a := perTag[o.Tag]
		if a == nil {
			a = &acc{}
			perTag[o.Tag] = a
		}
		a.sum += o.Latency
		a.n++
		all.sum += o.Latency
		all.n++
	}
	mean := func(a acc) tagLatency {
		if a.n == 0 {
			return tagLatency{}
		}
		return tagLatency{Media: a.n, MeanS: a.sum.Seconds() / float64(a.n)}
	}
	out := make(map[string]tagLatency, len(perTag))
	for t, a := range perTag {
		out[t] = mean(*a)
	}
	return out, mean(all)
}

// inAny reports whether t falls in one of the windows.
func inAny(t time.Time, ws []window) bool {
	for _, w := range ws {
		if !t.Before(w.From) && t.Before(w.To) {
			return true
		}
	}
	return false
}
