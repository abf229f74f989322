package poller

import (
	"testing"
	"testing/synctest"
	"time"
)

// runVirtualReport runs w for d inside a bubble and logs the figures the whole-binary harness reports.
func runVirtualReport(t *testing.T, w virtualWorkload, d time.Duration) (first, steady latencyStats, use float64, limited int) {
	synctest.Test(t, func(t *testing.T) {
		r, stop := startVirtual(t, w, nil)
		time.Sleep(d)
		reqs, lim := r.api.stats()
		// Let media posted before the end arrive.
		time.Sleep(time.Minute)
		stop()
		ls := lstar(r.rates, r.budget)
		first = r.latency(r.started, r.started.Add(90*time.Second))
		steady = r.latency(r.started.Add(90*time.Second), r.started.Add(d))
		use = float64(reqs-lim) / (r.budget * d.Seconds())
		limited = lim
		t.Logf("L* %.3fs budget %.1f req/s", ls, r.budget)
		t.Logf("first 90s: %.2fx L*  %v", first.mean/ls, first)
		t.Logf("steady:    %.2fx L*  %v", steady.mean/ls, steady)
		t.Logf("budget use %.1f%%, rate-limited %d", 100*use, lim)
	})
	return
}

func TestVirtualZipf50Report(t *testing.T) {
	runVirtualReport(t, virtualWorkload{rates: zipfRates("zipf", 50, 8, 1.1), tokens: 3, limit: 600,
		window: 10 * time.Minute, latency: 5 * time.Millisecond, seed: 1}, 5*time.Minute)
}
