//go:build integration

package e2e

import (
	"testing"
	"time"
)

// TestEndToEnd runs simulator -> tagstream -> broker -> consumer with a lively, skewed workload (Poisson posts, a
// burst deeper than one page, late tagging, a deletion) and checks the result against the ground truth: every
// media present, per-tag order, no duplicates, fields equal to the source, and the time from post to event.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		sink string
	}{
		{"every media reaches JetStream once, in tag order, with the source's fields", sinkJetStream},
		{"every media reaches a 3-partition Kafka topic keyed by tag, in tag order, with the source's fields", sinkKafka},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := newPipeline(t, pipelineOptions{Sink: tc.sink})
			p.start()
			ctx := t.Context()
			hold(ctx, 5*time.Second)
			p.sim.Post("coffee", 80) // a burst of more than two pages at once
			hold(ctx, 2*time.Second)
			p.sim.PostLate("東京", 72*time.Hour) // an old photo tagged now lands at the head
			gone := p.sim.Post("quiet_tag", 3)
			p.sim.Delete("quiet_tag", gone[1].MediaID) // deleted at once: may or may not be seen
			hold(ctx, 8*time.Second)
			rep := p.finish()
			if rep.DupByID != 0 || rep.DupByMedia != 0 {
				t.Errorf("duplicates without any fault: %d by id, %d by media", rep.DupByID, rep.DupByMedia)
			}
			if tc.sink == sinkKafka && rep.Partitions < 2 {
				t.Errorf("the 4 tags landed in %d partition(s): per-tag order across partitions was not exercised", rep.Partitions)
			}
		})
	}
}
