package poller

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tagstream/tagstream/internal/testkit"
	"github.com/tagstream/tagstream/poller/checkpoint"
	"github.com/tagstream/tagstream/testenv"
)

// countingBolt is a Bolt that counts the reads and writes of each tag.
type countingBolt struct {
	*checkpoint.Bolt
	mu   sync.Mutex
	gets map[string]int
	puts map[string]int
}

func (c *countingBolt) Get(ctx context.Context, tag string) (checkpoint.State, bool, error) {
	c.mu.Lock()
	c.gets[tag]++
	c.mu.Unlock()
	return c.Bolt.Get(ctx, tag)
}

func (c *countingBolt) Put(ctx context.Context, tag string, s checkpoint.State) error {
	c.mu.Lock()
	c.puts[tag]++
	c.mu.Unlock()
	return c.Bolt.Put(ctx, tag, s)
}

func (c *countingBolt) counts(tag string) (gets, puts int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gets[tag], c.puts[tag]
}

func openCountingBolt(t *testing.T, path string) *countingBolt {
	t.Helper()
	b, err := checkpoint.OpenBolt(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &countingBolt{Bolt: b, gets: map[string]int{}, puts: map[string]int{}}
}

// mediaIDs returns the ids of truths.
func mediaIDs(trs []testenv.Truth) []string {
	out := make([]string, 0, len(trs))
	for _, tr := range trs {
		out = append(out, tr.MediaID)
	}
	return out
}

// wantOnly waits until every media of want was published by pub and checks that nothing else of tags was.
func wantOnly(t *testing.T, pub *memPublisher, want []string, tags []string) {
	t.Helper()
	testkit.Eventually(t, 20*time.Second, "the media posted since the start", func() bool {
		got := pub.mediaCount()
		for _, id := range want {
			if got[id] == 0 {
				return false
			}
		}
		return true
	})
	got := pub.mediaCount()
	for _, e := range pub.snapshot() {
		if e.Data == nil || !slices.Contains(tags, e.Subject) {
			continue
		}
		if id := e.Data.MediaID; !slices.Contains(want, id) {
			t.Errorf("tag %s: media %s published, not posted since the start", e.Subject, id)
		} else if got[id] > 1 {
			t.Errorf("tag %s: media %s published %d times", e.Subject, id, got[id])
		}
	}
}

// TestQuietFirstPollsWriteNothingAndARestartStartsThemFromTheRecordedInstant runs a cold start on a Bolt store
// with Config.StartLog: the first polls of quiet tags (an empty feed, a feed of media older than the start) write
// no state and read none, and keep theirs in memory (a media tagged late after the first poll is published, as
// from a written cursor). The process stops; media are posted to a tag that never wrote a state and to a tag
// that is new in the next process's list. The next process, started an hour "later", publishes the first tag's
// media (the recorded instant wins over its own) and not the new tag's (it starts from its own instant).
func TestQuietFirstPollsWriteNothingAndARestartStartsThemFromTheRecordedInstant(t *testing.T) {
	t.Parallel()
	sim := testenv.Config{PlainHTTP: true, Tokens: []string{"rec-tok-1", "rec-tok-2"}, Tags: []testenv.TagConfig{
		{Name: "rec_empty"}, {Name: "rec_old", Initial: 12}, {Name: "rec_late", Initial: 3}, {Name: "rec_new"},
	}}
	srv := startSim(t, sim)
	first := []string{"rec_empty", "rec_old", "rec_late"}
	cfg := testConfig(srv, sim.Tokens, first) // starts after the Initial media
	start := cfg.StartTime
	path := filepath.Join(t.TempDir(), "state.db")
	store := openCountingBolt(t, path)
	cfg.StartLog = store.Bolt
	r := startPoller(t, cfg, store)
	waitPolled(t, r.p)
	waitPolled(t, r.p)
	for _, tag := range first {
		gets, puts := store.counts(tag)
		if gets != 0 || puts != 0 {
			t.Errorf("tag %s: %d reads and %d writes of its checkpoint over two polls that found nothing new; want none",
				tag, gets, puts)
		}
		if _, ok, _ := store.Bolt.Get(context.Background(), tag); ok {
			t.Errorf("tag %s: a state was written", tag)
		}
	}
	// A media tagged late after the first poll: a written cursor would have it published; so must the kept one.
	late := srv.PostLate("rec_late", time.Hour)
	wantOnly(t, r.pub, []string{late.MediaID}, []string{"rec_late"})
	testkit.Eventually(t, 20*time.Second, "rec_late's state, written after its first publish", func() bool {
		_, ok, _ := store.Bolt.Get(context.Background(), "rec_late")
		return ok
	})
	// AddTag's tags are not in the record: the first poll writes its state.
	if err := r.p.AddTag("rec_added"); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 20*time.Second, "the added tag's first checkpoint", func() bool {
		_, ok, _ := store.Bolt.Get(context.Background(), "rec_added")
		return ok
	})
	// Posts after the start instant (created_time has a resolution of one second) and after the process ended.
	time.Sleep(time.Until(start.Add(1100 * time.Millisecond)))
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	posted := mediaIDs(srv.Post("rec_old", 4))
	posted = append(posted, mediaIDs(srv.Post("rec_empty", 2))...)
	srv.Post("rec_new", 3)

	second := append(slices.Clone(first), "rec_new")
	cfg2 := testConfig(srv, sim.Tokens, second)
	cfg2.StartTime = time.Now().Add(time.Hour) // a later process: the recorded instant must win where it holds
	store2 := openCountingBolt(t, path)
	t.Cleanup(func() { _ = store2.Close() })
	cfg2.StartLog = store2.Bolt
	r2 := startPoller(t, cfg2, store2)
	wantOnly(t, r2.pub, posted, []string{"rec_old", "rec_empty"})
	waitPolled(t, r2.p, "rec_new")
	if got := r2.pub.mediaCount(); len(got) != len(posted) {
		t.Errorf("the second process published %d media, want the %d posted to the recorded tags (none of rec_new's, "+
			"posted before its own start)", len(got), len(posted))
	}
	rec, err := store2.Starts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if at := rec["rec_late"]; !at.Equal(start) {
		t.Errorf("recorded start of rec_late = %v, want the first process's %v (kept while the tag is listed)", at, start)
	}
	if at := rec["rec_new"]; !at.Equal(cfg2.StartTime) {
		t.Errorf("recorded start of rec_new = %v, want its own %v", at, cfg2.StartTime)
	}
	if _, ok := rec["rec_added"]; ok {
		t.Error("rec_added, not in the second process's list, is still in the record")
	}
}

// TestWithoutStartLogEveryFirstPollWrites: a Bolt store without Config.StartLog (a wrapper, a test) writes every
// first poll's state, as before.
func TestWithoutStartLogEveryFirstPollWrites(t *testing.T) {
	t.Parallel()
	tags := []string{"nolog_a", "nolog_b"}
	sim := testenv.Config{PlainHTTP: true, Tokens: []string{"nolog-tok"}, Tags: []testenv.TagConfig{{Name: "nolog_a"}, {Name: "nolog_b", Initial: 4}}}
	srv := startSim(t, sim)
	store := openCountingBolt(t, filepath.Join(t.TempDir(), "state.db"))
	t.Cleanup(func() { _ = store.Close() })
	r := startPoller(t, testConfig(srv, sim.Tokens, tags), store)
	waitStarted(t, r, tags)
	for _, tag := range tags {
		if gets, _ := store.counts(tag); gets == 0 {
			t.Errorf("tag %s: the first poll did not read its checkpoint", tag)
		}
	}
}
