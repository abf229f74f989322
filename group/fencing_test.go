package group

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/tagstream/tagstream/internal/testkit"
	"github.com/tagstream/tagstream/poller/checkpoint"
)

// cursorPoller is a fake poller that does with a real cursor store what the poller must do with an assignment: a
// tag it did not poll yet is claimed by reading its cursor and writing it back unchanged (the claim write, which
// fences off any earlier owner that still holds the old revision).
type cursorPoller struct {
	name   string
	store  *checkpoint.JetStreamKV
	mu     sync.Mutex
	tags   []string
	claims chan string
}

func (p *cursorPoller) Apply(ctx context.Context, a Assignment) error {
	p.mu.Lock()
	old := slices.Clone(p.tags)
	p.mu.Unlock()
	for _, tag := range a.Tags {
		if slices.Contains(old, tag) {
			continue
		}
		for {
			st, ok, err := p.store.Get(ctx, tag)
			if err != nil {
				return err
			}
			if !ok {
				break
			}
			if err := p.store.Put(ctx, tag, st); err == nil {
				break
			} else if !errors.Is(err, checkpoint.ErrConflict) {
				return err
			}
			// An earlier owner committed between the read and the claim write: read again.
		}
		select {
		case p.claims <- tag:
		default:
		}
	}
	p.mu.Lock()
	p.tags = slices.Clone(a.Tags)
	p.mu.Unlock()
	return nil
}

func (p *cursorPoller) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.tags)
}

func (p *cursorPoller) has(tag string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Contains(p.tags, tag)
}

func TestStaleOwnerCannotCommitAfterATakeover(t *testing.T) {
	t.Parallel()
	urls := sharedURLs(t)
	ctx := context.Background()
	group := uniq("fence")
	tags := makeTags(6)
	_, js := connect(t, urls)
	setup, err := checkpoint.NewJetStreamKV(ctx, js, checkpoint.KVConfig{Bucket: group + "-cursors", Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range tags {
		putCursor(t, setup, tag, checkpoint.State{Cursor: "10"})
	}
	start := func(name string) (*JetStream, *cursorPoller) {
		_, js := connect(t, urls)
		store, err := checkpoint.NewJetStreamKV(ctx, js, checkpoint.KVConfig{Bucket: group + "-cursors"})
		if err != nil {
			t.Fatal(err)
		}
		cfg := baseConfig(group, name)
		cfg.Tags = tags
		c, err := NewJetStream(ctx, js, cfg, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		p := &cursorPoller{name: name, store: store, claims: make(chan string, 64)}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { _ = c.Run(rctx, p); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
		return c, p
	}
	c1, p1 := start("m1")
	c2, p2 := start("m2")
	var tag string
	// Half each, disjoint: the hand-over from m1 (which held all six first) is over. Before that, a tag m1 has
	// given back but still lists would be claimed by m2 while m1's lease is valid.
	testkit.Eventually(t, waitLong, "m1 and m2 holding three tags each", func() bool {
		if p1.count() != len(tags)/2 || p2.count() != len(tags)/2 {
			return false
		}
		n := 0
		for _, tg := range tags {
			if p1.has(tg) != p2.has(tg) {
				n++
				if p1.has(tg) {
					tag = tg
				}
			}
		}
		return n == len(tags) && tag != ""
	})

	// m1 read tag's cursor for a poll, and is paused (SIGSTOP) before it commits.
	before, _, err := p1.store.Get(ctx, tag)
	if err != nil {
		t.Fatal(err)
	}
	for len(p2.claims) > 0 { // claims of the first distribution
		<-p2.claims
	}
	c1.stalled.Store(true)
	testkit.Eventually(t, waitLong, "m2 claiming "+tag+" after m1's lease", func() bool {
		for {
			select {
			case got := <-p2.claims:
				if got == tag {
					return true
				}
			default:
				return false
			}
		}
	})
	if c1.LeaseValid() {
		t.Fatal("m1's lease still valid after m2 took its tag")
	}

	// m1 wakes up and commits what it fetched before the pause: refused.
	late := before
	late.Cursor = "15"
	if err := p1.store.Put(ctx, tag, late); !errors.Is(err, checkpoint.ErrConflict) {
		t.Fatalf("the stale owner's commit: %v, want ErrConflict", err)
	}
	c1.Lost(tag)
	// m2 commits its own poll; m1 resumes and the group settles.
	if err := p2.store.Put(ctx, tag, checkpoint.State{Cursor: "20"}); err != nil {
		t.Fatalf("the new owner's commit: %v", err)
	}
	c1.stalled.Store(false)
	c1.signal()
	testkit.Eventually(t, waitLong, "m1 back in the group", func() bool { return c1.LeaseValid() && len(c1.Status().Members) == 2 })
	st, _, err := setup.Get(ctx, tag)
	if err != nil || st.Cursor != "20" {
		t.Fatalf("%s's cursor: %+v %v, want 20 (never backwards)", tag, st, err)
	}
	// The tag may go back to m1 (it is its rendezvous owner): then m1 claims it from where m2 left it.
	testkit.Eventually(t, waitLong, tag+" polled by exactly one member", func() bool { return p1.has(tag) != p2.has(tag) })
	if p1.has(tag) {
		if st, _, err := p1.store.Get(ctx, tag); err != nil || st.Cursor != "20" {
			t.Fatalf("m1 took %s back at %+v %v, want cursor 20", tag, st, err)
		}
	}
	_ = c2
}
