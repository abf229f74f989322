package pipeline

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/tagstream/tagstream/internal/config"
	"github.com/tagstream/tagstream/internal/testkit"
	"github.com/tagstream/tagstream/poller/checkpoint"
)

// TestQuietTagsWriteNoStateAndAreStartedFromTheRecordAfterARestart: with the bolt state file, the first polls of
// tags that found nothing new since the start write no state (the start instants are recorded once instead);
// media posted to such a tag while tagstream is down are published by the next process although it starts an
// hour "later": the recorded instant, not its own, is where that tag starts.
func TestQuietTagsWriteNoStateAndAreStartedFromTheRecordAfterARestart(t *testing.T) {
	t.Parallel()
	tags := []string{"sunset", "tea"}
	f := newFixture(t, nil, tags...)
	published := func() []string { return fileMediaIDs(t, f.cfg.Output) }
	start := f.cfg.StartedAt

	r := f.start(t)
	r.waitPolled(t, len(tags))
	time.Sleep(time.Until(start.Add(1100 * time.Millisecond))) // what follows is posted after the start instant
	f.sim.Post("sunset", 3)
	testkit.Eventually(t, 30*time.Second, "the first life's events", func() bool { return len(published()) == 3 })
	if err := r.stop(t); err != nil {
		t.Fatalf("first life: %v", err)
	}
	b, err := checkpoint.OpenBolt(filepath.Join(f.cfg.StateDir, config.CheckpointFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := b.Tags(context.Background())
	_ = b.Close()
	if err != nil || len(stored) != 1 || stored[0] != "sunset" {
		t.Fatalf("states in the file after the first life: %v, %v; want sunset's alone (tea found nothing new)", stored, err)
	}

	since := time.Now()
	f.sim.Post("tea", 4) // posted while tagstream is down, to the tag that has no state
	f.cfg.StartedAt = time.Now().Add(time.Hour)
	r = f.start(t)
	want := expectedSince(f.sim, since)
	testkit.Eventually(t, 30*time.Second, "tea's media", func() bool { return len(published()) >= 3+len(want) })
	if err := r.stop(t); err != nil {
		t.Fatalf("second life: %v", err)
	}
	seen := publishedOnce(t, published(), want)
	if len(seen) != 3+len(want) {
		t.Errorf("published %d media, want %d", len(seen), 3+len(want))
	}
}
