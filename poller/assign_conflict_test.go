package poller

import (
	"context"
	"testing"

	"github.com/tagstream/tagstream/internal/testkit"
)

// TestAssignConflictWhileItsTagIsRemoved is the sequence of a group member paused (SIGSTOP) past its lease: when it
// wakes, its coordinator applies an assignment without the tag whose poll is in flight (the lease is gone), and
// that poll's commit is then refused (another member owns the tag now). That assignment is the assignment without
// the tag: when the member later joins again and is given the tag back, the poller must poll it. (It kept the tag
// blocked as conflicted, and the coordinator, which skips an assignment equal to the last one, never sent another
// without it: the tag stayed owned and unpolled. Found by e2e's TestGroupOnTheCluster.)
func TestAssignConflictWhileItsTagIsRemoved(t *testing.T) {
	lost := make(chan string, 8)
	r := newAssignRig(t, []string{"tok-r"}, []string{"mine", "paused"}, func(c *Config) {
		c.OnConflict = func(tag string) { lost <- tag }
	})
	tags := []string{"mine", "paused"}
	r.assign(t, Assignment{Tags: tags, Claim: true})
	r.run()
	testkit.Eventually(t, assignWait, "the first poll of both tags", func() bool {
		_, p1 := r.store.counts("mine")
		_, p2 := r.store.counts("paused")
		return p1 > 0 && p2 > 0
	})

	started, release := r.tr.hold("paused")
	defer release()
	testkit.Receive(t, started, assignWait, "a request of the tag")
	r.srv.Post("paused", 2) // something to commit
	r.store.set(func(h *hookStore) { h.conflict = "paused" })
	done := make(chan error, 1)
	go func() { done <- r.p.Assign(context.Background(), Assignment{Tags: []string{"mine"}}) }()
	testkit.Eventually(t, assignWait, "the tag to leave the status", func() bool {
		_, ok := statusOf(r.p, "paused")
		return !ok
	})
	release()
	if got := testkit.Receive(t, lost, assignWait, "OnConflict"); got != "paused" {
		t.Fatalf("OnConflict(%q), want paused", got)
	}
	if err := testkit.Receive(t, done, assignWait, "Assign to return"); err != nil {
		t.Fatalf("Assign: %v", err)
	}

	r.store.set(func(h *hookStore) { h.conflict = "" })
	gets, _ := r.store.counts("paused")
	r.assign(t, Assignment{Tags: tags, Claim: true})
	if _, ok := statusOf(r.p, "paused"); !ok {
		t.Fatal("the tag assigned again after the assignment that removed it is not polled")
	}
	if g, _ := r.store.counts("paused"); g <= gets {
		t.Error("the tag taken again was not read afresh")
	}
	pollsOf(t, r.p, "paused", 1)
}
