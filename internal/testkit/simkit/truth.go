package simkit

import (
	"time"

	"github.com/tagstream/tagstream/testenv"
)

// ExpectedSince returns the media ids the simulator made visible at or after since and has not deleted: what a
// run that polled from since on must publish.
func ExpectedSince(sim *testenv.Server, since time.Time) map[string]bool {
	want := map[string]bool{}
	for _, tr := range sim.GroundTruth() {
		if !tr.VisibleAt.Before(since) && tr.DeletedAt.IsZero() {
			want[tr.MediaID] = true
		}
	}
	return want
}
