package poller

import (
	"context"
	"testing"
	"time"
)

// TestAssignedStartsAreWhereATagWithoutACheckpointStarts checks Assignment.Starts: under StartNow a tag that Assign
// adds without a checkpoint publishes from its own instant (in group mode, when the tag entered the group's set),
// not from Config.StartTime; StartSince keeps its instant.
func TestAssignedStartsAreWhereATagWithoutACheckpointStarts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		start     StartFrom
		withStart bool
		want      int // times each media posted before the configured start is published
	}{
		{"a tag given a start publishes what was posted since then", StartNow, true, 1},
		{"a tag given no start starts at the configured start", StartNow, false, 0},
		{"an explicit start time wins over the one given", StartSince, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startSimWithTags(t, []string{"tok-a"}, nil)
			added := time.Now()
			posted := srv.Post("moved", 3)
			cfg := testConfig(srv, []string{"tok-a"}, nil)
			// The configured start is after the media (less StartSkew): only a start of the tag's own finds them.
			cfg.Start, cfg.StartTime = tc.start, time.Now().Add(StartSkew+time.Second)
			r := startPoller(t, cfg, nil)
			a := Assignment{Tags: []string{"moved"}}
			if tc.withStart {
				a.Starts = map[string]time.Time{"moved": added}
			}
			ctx, cancel := context.WithTimeout(context.Background(), assignWait)
			defer cancel()
			if err := r.p.Assign(ctx, a); err != nil {
				t.Fatalf("Assign: %v", err)
			}
			waitStarted(t, r, []string{"moved"})
			got := r.pub.mediaCount()
			for _, tr := range posted {
				if n := got[tr.MediaID]; n != tc.want {
					t.Errorf("media %s published %d times, want %d", tr.MediaID, n, tc.want)
				}
			}
			checkOrder(t, srv, r.pub)
		})
	}
}
