package poller

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tagstream/tagstream/internal/testkit"
	"github.com/tagstream/tagstream/poller/checkpoint"
)

// errStoreDown is the error of a failingStore's Put.
var errStoreDown = errors.New("test store: disk full")

// failingStore wraps a Store and fails every Put while failing is set, counting the failures.
type failingStore struct {
	checkpoint.Store
	mu       sync.Mutex
	failing  bool
	failures int
}

func (s *failingStore) Put(ctx context.Context, tag string, st checkpoint.State) error {
	s.mu.Lock()
	if s.failing {
		s.failures++
		s.mu.Unlock()
		return errStoreDown
	}
	s.mu.Unlock()
	return s.Store.Put(ctx, tag, st)
}

func (s *failingStore) set(failing bool) {
	s.mu.Lock()
	s.failing = failing
	s.mu.Unlock()
}

func (s *failingStore) failed() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failures
}

// TestFailingCheckpointWritesDoNotRepublish makes the checkpoint store fail every write after a publish: the
// acknowledged batch is kept in memory and only its write is retried, so the publisher sees each media once; Ready
// and the metrics show the failing store while it fails, and the cursor moves once it recovers.
func TestFailingCheckpointWritesDoNotRepublish(t *testing.T) {
	t.Parallel()
	tags := []string{"store_a", "store_b"}
	srv := startSimWithTags(t, []string{"store-tok"}, tags)
	store := &failingStore{Store: checkpoint.NewMemory()}
	t.Cleanup(func() { _ = store.Close() })
	r := startPoller(t, testConfig(srv, []string{"store-tok"}, tags), store)
	waitStarted(t, r, tags)
	since := time.Now()
	before, _, _ := store.Get(context.Background(), "store_a")

	store.set(true)
	srv.Post("store_a", 7)
	srv.Post("store_b", 3)
	testkit.Eventually(t, 20*time.Second, "both batches published and several writes failed", func() bool {
		return len(r.pub.mediaCount()) == 10 && store.failed() >= 6
	})
	if err := r.p.Ready(); !errors.Is(err, ErrCheckpointWrites) {
		t.Errorf("Ready while the store fails = %v, want ErrCheckpointWrites", err)
	}
	if g := counterValue(t, r.p.m.checkpointStoreFailing); g != 1 {
		t.Errorf("tagstream_checkpoint_store_failing = %v, want 1", g)
	}
	if n := counterValue(t, r.p.m.checkpointWriteFailures); n < 6 {
		t.Errorf("tagstream_checkpoint_write_failures_total = %v, want every failed write counted", n)
	}
	for id, n := range r.pub.mediaCount() {
		if n != 1 {
			t.Errorf("media %s published %d times while the store failed, want once", id, n)
		}
	}

	store.set(false)
	testkit.Eventually(t, 20*time.Second, "the cursor to move once the store recovers", func() bool {
		after, _, _ := store.Get(context.Background(), "store_a")
		return after.Cursor != before.Cursor && r.p.Ready() == nil
	})
	srv.Post("store_b", 2)
	checkExactlyOnce(t, srv, r.pub, expected(srv, tags, since), nil, 20*time.Second)
	if g := counterValue(t, r.p.m.checkpointStoreFailing); g != 0 {
		t.Errorf("tagstream_checkpoint_store_failing = %v after recovery, want 0", g)
	}
	if n := strings.Count(r.logs.String(), "checkpoint writes fail"); n != 1 {
		t.Errorf("the failing store was logged %d times, want once", n)
	}
}

// readCountingStore counts the reads of each tag.
type readCountingStore struct {
	checkpoint.Store
	mu    sync.Mutex
	reads map[string]int
}

func (s *readCountingStore) Get(ctx context.Context, tag string) (checkpoint.State, bool, error) {
	s.mu.Lock()
	s.reads[tag]++
	s.mu.Unlock()
	return s.Store.Get(ctx, tag)
}

func (s *readCountingStore) count(tag string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads[tag]
}

// TestPlainStatesAreNotReadAgain: a silent tag's state holds a cursor and nothing else; once written (or read at
// the start) the poller keeps it and polls without reading it again, while a tag with recent ids is read on
// every poll.
func TestPlainStatesAreNotReadAgain(t *testing.T) {
	tags := []string{"silent", "busy"}
	srv := startSimWithTags(t, []string{"plain-tok-1"}, tags)
	store := &readCountingStore{Store: checkpoint.NewMemory(), reads: map[string]int{}}
	r := startPoller(t, testConfig(srv, []string{"plain-tok-1"}, tags), store)
	waitStarted(t, r, tags)
	srv.Post("busy", 3)
	testkit.Eventually(t, 10*time.Second, "the busy tag's media", func() bool { return len(r.pub.snapshot()) == 3 })
	silent, busy := store.count("silent"), store.count("busy")
	for range 4 { // at least three polls that started after the counts were taken
		waitPolled(t, r.p)
	}
	if n := store.count("silent") - silent; n != 0 {
		t.Errorf("the silent tag's state was read %d times in three polls or more, want none", n)
	}
	if n := store.count("busy") - busy; n < 3 {
		t.Errorf("the busy tag's state (with recent ids) was read %d times in three polls or more, want every time", n)
	}
}
