package publisher

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tagstream/tagstream/internal/testkit"
	"github.com/tagstream/tagstream/poller"
)

// The publishers satisfy the poller's contract (the poller never imports this package; the check lives here).
var (
	_ poller.Publisher = (*Kafka)(nil)
	_ poller.Publisher = (*JetStream)(nil)
	_ poller.Publisher = (*NATS)(nil)
	_ poller.Publisher = (*File)(nil)
	_ poller.Publisher = Publisher(nil)

	_ Deliverer = (*Kafka)(nil)
	_ Deliverer = (*JetStream)(nil)
	_ Deliverer = (*NATS)(nil)
	_ Deliverer = (*File)(nil)
)

// tagStream is a stream of the events of several tags published at once, each tag by its own goroutine in media
// id order (testkit.MediaEvents), as concurrent pollers publish; run can take the broker away in the middle, an
// outage every at-least-once publisher must survive.
type tagStream struct {
	tags         []string      // each published by its own goroutine, in order
	batches      int           // Publish calls per tag
	perBatch     int           // events per call
	captionBytes int           // size of each event's caption
	restartAfter int           // completed Publish calls (all tags together) before restart is called
	timeout      time.Duration // bound of each Publish call
	// afterRestart, when set, makes the stream open-ended: each tag goes on publishing past batches until restart
	// returned, and then this many calls more, so that the stream spans the whole outage however long the broker
	// takes to go down (a real Kafka broker acknowledges through its controlled shutdown).
	afterRestart int
}

// run publishes the stream with p, calls restart (unless nil) once restartAfter Publish calls have returned, and
// fails the test if any Publish call fails (each must ride out an outage by retrying). It returns once every call
// returned, with the number of calls each tag made (batches, or more with afterRestart).
func (rs tagStream) run(t *testing.T, p Publisher, restart func()) map[string]int {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(rs.tags))
	progress := make(chan struct{}, len(rs.tags)*rs.batches)
	restarted := make(chan struct{})
	openEnded := rs.afterRestart > 0 && restart != nil
	counts := make([]int, len(rs.tags))
	for i, tag := range rs.tags {
		wg.Go(func() {
			stopAt := -1 // with openEnded: the call count at which this tag stops, once the restart is over
			for b := 0; b < rs.batches || openEnded && (stopAt < 0 || b < stopAt); b++ {
				if openEnded && stopAt < 0 {
					select {
					case <-restarted:
						stopAt = max(b+rs.afterRestart, rs.batches)
					default:
					}
				}
				ctx, cancel := context.WithTimeout(context.Background(), rs.timeout)
				err := p.Publish(ctx, testkit.MediaEvents(tag, b*rs.perBatch, rs.perBatch, rs.captionBytes))
				cancel()
				if err != nil {
					errs <- fmt.Errorf("tag %s batch %d: %w", tag, b, err)
					return
				}
				counts[i] = b + 1
				select {
				case progress <- struct{}{}:
				default: // an open-ended stream outgrows the buffer; only the first restartAfter calls are awaited
				}
			}
		})
	}
	if restart != nil {
		for i := range rs.restartAfter { // let the stream get going, then take the broker away mid-stream
			testkit.Receive(t, progress, rs.timeout, fmt.Sprintf("Publish call %d of the stream", i+1))
		}
		restart()
		close(restarted)
		// A stream that ended before the broker came back tested no restart mid-stream: it must be longer.
		if returned := rs.restartAfter + len(progress); !openEnded && returned >= len(rs.tags)*rs.batches {
			t.Fatalf("all %d Publish calls returned before the restart was over: the stream is too short", returned)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	out := make(map[string]int, len(rs.tags))
	for i, tag := range rs.tags {
		out[tag] = counts[i]
	}
	return out
}

// total is the number of events of the stream.
func (rs tagStream) total() int { return len(rs.tags) * rs.batches * rs.perBatch }

// inTagOrder fails the test unless mediaID is the media id due next for tag in a tagStream read back in order
// ("0_1", "1_1", …); next counts what was read per tag.
func inTagOrder(t *testing.T, next map[string]int, tag, mediaID string) {
	t.Helper()
	if want := fmt.Sprintf("%d_1", next[tag]); mediaID != want {
		t.Fatalf("tag %q: media %s where %s was due (order broken)", tag, mediaID, want)
	}
	next[tag]++
}
