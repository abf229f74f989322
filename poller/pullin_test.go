package poller

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// pullInScenario builds a scheduler of n tags with mixed rates, some with catch-up work, all polled once and
// queued with planned intervals far longer than the plan's, so that pullIn moves most of them.
func pullInScenario(n int, seed uint64) *scheduler {
	s := testScheduler(2*time.Second, 5*time.Minute)
	rng := rand.New(rand.NewPCG(seed, 1))
	for i := range n {
		ts := s.add(fmt.Sprintf("tag%06d", i), epoch, 100)
		if rng.IntN(10) > 0 {
			setRate(s, ts, rng.Float64()*rng.Float64())
		}
		ts.backlog = rng.IntN(20) == 0
		ts.cost = 1 + float32(rng.IntN(3))
		ts.lastTry = epoch + time.Duration(rng.IntN(60))*time.Second
		ts.planned = 1e6
		s.fresh--
	}
	return s
}

// TestPullInReadsWhatRebalanceWorkedOut checks that pullIn right after rebalance (reading each tag's frequency
// from rebalance's scratch) moves exactly the due times that working each tag's interval out again moves: under
// the square-root rule, at the ceiling and in overload.
func TestPullInReadsWhatRebalanceWorkedOut(t *testing.T) {
	for _, tc := range []struct {
		name   string
		budget float64
	}{
		{"under the square-root rule", 40},
		{"every tag at its ceiling", 1e6},
		{"overloaded: every tag at its floor, slowed", 0.5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := epoch + time.Minute
			fast, slow := pullInScenario(2000, 7), pullInScenario(2000, 7)
			fast.rebalance(tc.budget)
			slow.rebalance(tc.budget)
			if !fast.filled {
				t.Fatal("rebalance did not leave its per-tag figures for pullIn")
			}
			slow.filled = false // pullIn works every tag's interval out again
			fast.pullIn(now)
			slow.pullIn(now)
			if fast.filled {
				t.Error("pullIn left the figures marked current: a later pullIn without rebalance would read stale ones")
			}
			moved := 0
			for i, f := range fast.all {
				sl := slow.all[i]
				if f.due != sl.due || f.planned != sl.planned {
					t.Fatalf("tag %s: due %v, planned %v; working the interval out again gives due %v, planned %v",
						f.name, f.due, f.planned, sl.due, sl.planned)
				}
				if f.planned != 1e6 {
					moved++
				}
			}
			if moved == 0 {
				t.Fatal("no tag was pulled in: the scenario checks nothing")
			}
		})
	}
}

// BenchmarkMaintenance measures the scheduler's part of one maintenance round over 100,000 tags (it runs about
// once a second): rebalance, then pullIn.
func BenchmarkMaintenance(b *testing.B) {
	s := pullInScenario(100_000, 1)
	now := epoch + time.Minute
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s.rebalance(1000 + float64(i%7))
		s.pullIn(now)
	}
}
