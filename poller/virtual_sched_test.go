package poller

import (
	"fmt"
	"os"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tagstream/tagstream/poller/checkpoint"
)

// runVirtualReport runs w for d inside a bubble and logs the figures the whole-binary harness reports.
func runVirtualReport(t *testing.T, w virtualWorkload, d time.Duration) (first, steady latencyStats, use float64, limited, overloaded int) {
	synctest.Test(t, func(t *testing.T) {
		r, stop := startVirtual(t, w, nil)
		for range int(d / time.Second) {
			time.Sleep(time.Second)
			r.p.mu.Lock()
			if r.p.overload {
				overloaded++
			}
			r.p.mu.Unlock()
		}
		reqs, lim := r.api.stats()
		if testing.Verbose() {
			logSchedule(t, r)
		}
		// Let media posted before the end arrive (a quiet tag of zipf1000 waits up to about 3 minutes): wait for
		// the last of them, at most 5 minutes, rather than always 5 minutes of polling that changes no figure.
		for waited := time.Duration(0); waited < 5*time.Minute; waited += 5 * time.Second {
			if st := r.latency(r.started, r.started.Add(d)); st.arrived == st.posted {
				break
			}
			time.Sleep(5 * time.Second)
		}
		stop()
		ls := lstar(r.rates, r.budget)
		first = r.latency(r.started, r.started.Add(90*time.Second))
		steady = r.latency(r.started.Add(90*time.Second), r.started.Add(d))
		use = float64(reqs-lim) / (r.budget * d.Seconds())
		limited = lim
		t.Logf("L* %.3fs budget %.1f req/s", ls, r.budget)
		t.Logf("first 90s: %.2fx L*  %v", first.mean/ls, first)
		t.Logf("steady:    %.2fx L*  %v", steady.mean/ls, steady)
		t.Logf("budget use %.1f%%, rate-limited %d, seconds overloaded %d", 100*use, lim, overloaded)
		if testing.Verbose() {
			for from := time.Duration(0); from < d; from += 15 * time.Second {
				st := r.latency(r.started.Add(from), r.started.Add(from+15*time.Second))
				sent := r.api.sentBetween(r.started.Add(from), r.started.Add(from+15*time.Second))
				t.Logf("  [%3.0fs,%3.0fs): %.2fx L*  %v  budget %.0f%%", from.Seconds(), (from + 15*time.Second).Seconds(), st.mean/ls, st,
					100*float64(sent)/(r.budget*15))
			}
		}
	})
	return
}

// TestVirtualZipf50Report is the model of the whole-binary headline (zipf50, 3 tokens at 1 request/s): after the
// first 90 s the mean stays within 1.25x L*, the pool spends at least 97 % of the budget with no rate-limit answer,
// and the scheduler never reports itself overloaded while its estimates form (#11.4).
func TestVirtualZipf50Report(t *testing.T) {
	t.Parallel()
	w := virtualWorkload{rates: zipfRates("zipf", 50, 8, 1.1), tokens: 3, limit: 600,
		window: 10 * time.Minute, latency: 5 * time.Millisecond, seed: 1}
	first, steady, use, limited, overloaded := runVirtualReport(t, w, 5*time.Minute)
	ls := lstar(w.rates, float64(w.tokens*w.limit)/w.window.Seconds())
	for _, st := range []latencyStats{first, steady} {
		if st.posted == 0 || st.arrived != st.posted || st.dup != 0 {
			t.Errorf("%d media posted, %d arrived, %d twice; want all, once each", st.posted, st.arrived, st.dup)
		}
	}
	if r := first.mean / ls; r > 1.40 {
		t.Errorf("first 90 s mean %.2fx L*, want at most 1.40x", r)
	}
	if r := steady.mean / ls; r > 1.25 {
		t.Errorf("steady mean %.2fx L*, want at most 1.25x", r)
	}
	if use < 0.97 || limited != 0 {
		t.Errorf("budget use %.1f%% with %d rate-limit answers, want at least 97%% and none", 100*use, limited)
	}
	if overloaded != 0 {
		t.Errorf("the scheduler said it was overloaded for %d s while its estimates formed; the budget covers this workload", overloaded)
	}
}

// logSchedule logs, per tag, the true and estimated rates, the planned interval, the average cost of a poll.
func logSchedule(t *testing.T, r *virtualRun) {
	r.p.mu.Lock()
	defer r.p.mu.Unlock()
	s := r.p.sched
	for _, ts := range s.all {
		f := s.freq(ts)
		t.Logf("%-10s true %6.3f est %6.3f iv %6.2fs cost %.2f", ts.name, r.rates[ts.name], s.rate(ts), 1/f, ts.cost)
	}
	t.Logf("lambda %v overloaded %v scale %v prior %v", s.lambda, s.overloaded, s.scale, s.priorRate)
}

func TestVirtualZipf50Warmup(t *testing.T) {
	t.Parallel()
	reportOnly(t)
	synctest.Test(t, func(t *testing.T) {
		w := virtualWorkload{rates: zipfRates("zipf", 50, 8, 1.1), tokens: 3, limit: 600,
			window: 10 * time.Minute, latency: 5 * time.Millisecond, seed: 1}
		r, stop := startVirtual(t, w, nil)
		for _, at := range []time.Duration{20 * time.Second, 40 * time.Second, 70 * time.Second} {
			time.Sleep(at - time.Since(r.started))
			t.Logf("=== at %s", at)
			logSchedule(t, r)
		}
		stop()
	})
}

// TestVirtualZipf50Seeds runs the zipf50 workload with several seeds and logs the mean ratios (a tuning report).
func TestVirtualZipf50Seeds(t *testing.T) {
	t.Parallel()
	reportOnly(t)
	var f, s, u float64
	const n = 6
	for seed := range uint64(n) {
		first, steady, use, _, _ := runVirtualReport(t, virtualWorkload{rates: zipfRates("zipf", 50, 8, 1.1), tokens: 3,
			limit: 600, window: 10 * time.Minute, latency: 5 * time.Millisecond, seed: seed + 1}, 5*time.Minute)
		ls := lstar(zipfRates("zipf", 50, 8, 1.1), 3)
		f += first.mean / ls / n
		s += steady.mean / ls / n
		u += use / n
	}
	t.Logf("MEAN over %d seeds: first 90s %.3fx, steady %.3fx, budget use %.1f%%", n, f, s, 100*u)
}

// TestVirtualRestartReport stops the poller 2 minutes into zipf50 and starts another on the same checkpoints:
// it logs the first 90 s after the restart against L* (a report: run with -v).
func TestVirtualRestartReport(t *testing.T) {
	t.Parallel()
	reportOnly(t)
	synctest.Test(t, func(t *testing.T) {
		w := virtualWorkload{rates: zipfRates("zipf", 50, 8, 1.1), tokens: 3, limit: 600,
			window: 10 * time.Minute, latency: 5 * time.Millisecond, seed: 1}
		store := checkpoint.NewMemory()
		r, stop := startVirtual(t, w, store)
		time.Sleep(2 * time.Minute)
		stop()
		restarted := time.Now()
		logSchedule(t, r)
		r2, stop2 := restartVirtual(t, w, r.api, r.pub, store)
		time.Sleep(40 * time.Second)
		t.Logf("=== 40 s after the restart")
		logSchedule(t, r2)
		time.Sleep(3*time.Minute - 40*time.Second)
		r2.api.mu.Lock()
		for _, f := range r2.api.feeds {
			f.rate = 0
		}
		r2.api.mu.Unlock()
		time.Sleep(time.Minute)
		stop2()
		ls := lstar(r.rates, r.budget)
		after := r2.latency(restarted, restarted.Add(90*time.Second))
		later := r2.latency(restarted.Add(90*time.Second), restarted.Add(3*time.Minute))
		t.Logf("first 90 s after the restart: %.2fx L*  %v", after.mean/ls, after)
		t.Logf("after that:                   %.2fx L*  %v", later.mean/ls, later)
		a := r2.perTag(restarted.Add(15*time.Second), restarted.Add(75*time.Second))
		b := r2.perTag(restarted.Add(90*time.Second), restarted.Add(180*time.Second))
		for _, tag := range []string{"zipf01", "zipf02", "zipf03", "zipf05", "zipf10", "zipf20", "zipf30", "zipf40", "zipf50"} {
			t.Logf("%s: 15-75 s %.2f s, 90-180 s %.2f s", tag, a[tag], b[tag])
		}
		for from := time.Duration(0); from < 90*time.Second; from += 15 * time.Second {
			st := r2.latency(restarted.Add(from), restarted.Add(from+15*time.Second))
			t.Logf("  [%3.0fs,%3.0fs): %.2fx L*  %v", from.Seconds(), (from + 15*time.Second).Seconds(), st.mean/ls, st)
		}
	})
}

// perTag returns the mean latency per tag of the media visible in [from, to).
func (r *virtualRun) perTag(from, to time.Time) map[string]float64 {
	truth := r.api.truth()
	r.pub.mu.Lock()
	defer r.pub.mu.Unlock()
	sum, n := map[string]float64{}, map[string]float64{}
	for id, it := range truth {
		if it.visible.Before(from) || !it.visible.Before(to) {
			continue
		}
		if at, ok := r.pub.first[id]; ok {
			sum[tagOf(id)] += at.Sub(it.visible).Seconds()
			n[tagOf(id)]++
		}
	}
	for k := range sum {
		sum[k] /= n[k]
	}
	return sum
}

// TestVirtualScaleReport is scale100k at a tenth: 2 active tags among 10,000 on 100 tokens at 5,000 an hour.
func TestVirtualScaleReport(t *testing.T) {
	t.Parallel()
	reportOnly(t)
	synctest.Test(t, func(t *testing.T) {
		w := virtualWorkload{rates: zipfRates("zipf", 2, 8, 1.1), idle: 10_000, tokens: 100, limit: 5000,
			window: time.Hour, latency: 2 * time.Millisecond, seed: 1}
		r, stop := startVirtual(t, w, nil)
		prev := 0
		var slices []string
		for range 6 {
			time.Sleep(30 * time.Second)
			n, _ := r.api.stats()
			slices = append(slices, fmt.Sprintf("%.0f", 100*float64(n-prev)/(r.budget*30)))
			prev = n
		}
		t.Logf("budget use per 30 s: %v", slices)
		reqs, lim := r.api.stats()
		logSchedule2(t, r)
		time.Sleep(10 * time.Second)
		stop()
		first := r.latency(r.started, r.started.Add(90*time.Second))
		steady := r.latency(r.started.Add(90*time.Second), r.started.Add(3*time.Minute))
		t.Logf("first 90s %v", first)
		t.Logf("steady    %v", steady)
		t.Logf("budget use %.1f%%, limited %d, early polls %v", 100*float64(reqs)/(r.budget*180), lim, counterValue(t, r.p.m.earlyPolls))
	})
}

func logSchedule2(t *testing.T, r *virtualRun) {
	r.p.mu.Lock()
	defer r.p.mu.Unlock()
	s := r.p.sched
	for _, name := range []string{"zipf1", "zipf2", "idle0000000", "idle0000001"} {
		ts := s.tags[name]
		t.Logf("%-12s est %8.4f low %8.4f iv %6.2fs cost %.2f backlog %v due-last %v", name, s.rate(ts), s.rateLow(ts), s.interval(ts), ts.cost, ts.backlog, ts.due-ts.lastTry)
	}
	var plan float64
	for _, ts := range s.all {
		plan += float64(ts.cost) / s.interval(ts)
	}
	r.p.pool.mu.Lock()
	waiting := len(r.p.pool.waiters)
	r.p.pool.mu.Unlock()
	t.Logf("lambda %v overloaded %v prior %v planned %.1f req/s of %.1f, %d requests waiting", s.lambda, s.overloaded, s.priorRate, plan, r.p.pool.rateSum, waiting)
}

// TestVirtualZipf1000Seeds runs the zipf1000 workload (1,000 tags, 20 tokens at 1 request/s) with a few seeds and
// logs the mean ratios to L* (a tuning report: run with -v).
func TestVirtualZipf1000Seeds(t *testing.T) {
	t.Parallel()
	reportOnly(t)
	var f, s, u float64
	const n = 4
	for seed := range uint64(n) {
		first, steady, use, _, _ := runVirtualReport(t, virtualWorkload{rates: zipfRates("zipf", 1000, 8, 1.1), tokens: 20,
			limit: 600, window: 10 * time.Minute, latency: 5 * time.Millisecond, seed: seed + 1}, 3*time.Minute)
		ls := lstar(zipfRates("zipf", 1000, 8, 1.1), 20)
		f += first.mean / ls / n
		s += steady.mean / ls / n
		u += use / n
	}
	t.Logf("MEAN over %d seeds: first 90s %.3fx, steady %.3fx, budget use %.1f%%", n, f, s, 100*u)
}

// TestVirtualZipf1000HourSeeds is TestVirtualZipf1000Seeds with the real API's one-hour window (3,600 requests
// per token an hour, as the whole-binary benchmark runs it without -time-scale): the start burst's credit is a
// share of the limit per window, six times more requests here than in the ten-minute window.
func TestVirtualZipf1000HourSeeds(t *testing.T) {
	t.Parallel()
	reportOnly(t)
	var f, s, u float64
	n := 4
	if os.Getenv("TAGSTREAM_SEEDS") == "1" {
		n = 1
	}
	for seed := range uint64(n) {
		first, steady, use, _, _ := runVirtualReport(t, virtualWorkload{rates: zipfRates("zipf", 1000, 8, 1.1), tokens: 20,
			limit: 3600, window: time.Hour, latency: 5 * time.Millisecond, seed: seed + 1}, 3*time.Minute)
		ls := lstar(zipfRates("zipf", 1000, 8, 1.1), 20)
		f += first.mean / ls / float64(n)
		s += steady.mean / ls / float64(n)
		u += use / float64(n)
	}
	t.Logf("MEAN over %d seeds: first 90s %.3fx, steady %.3fx, budget use %.1f%%", n, f, s, 100*u)
}

// reportOnly skips a tuning report unless TAGSTREAM_REPORT is set: the reports run minutes of virtual time and
// assert nothing, so they stay out of the unit tests (go test -v and -json included).
// Run one with TAGSTREAM_REPORT=1 go test -run TestVirtualZipf1000Seeds -v ./poller/.
func reportOnly(t *testing.T) {
	t.Helper()
	if os.Getenv("TAGSTREAM_REPORT") == "" {
		t.Skip("a tuning report: set TAGSTREAM_REPORT=1 and run with -v")
	}
}
