package group

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/tagstream/tagstream/internal/testkit"
)

// TestAssignmentsSayWhenEachTagWasAdded checks Assignment.Added: every tag of an assignment comes with the instant
// it entered the group's set (where the poller starts a tag without a cursor), the same for every later
// assignment, whichever member holds it.
func TestAssignmentsSayWhenEachTagWasAdded(t *testing.T) {
	t.Parallel()
	urls := sharedURLs(t)
	_, js := connect(t, urls)
	name := uniq("added")
	ctx := context.Background()
	before := time.Now()
	if err := AddTags(ctx, js, name, "first"); err != nil {
		t.Fatal(err)
	}
	between := time.Now()
	m := startMember(t, urls, baseConfig(name, "m1"), nil)
	added := func() map[string]time.Time {
		m.p.mu.Lock()
		defer m.p.mu.Unlock()
		return m.p.a.Added
	}
	testkit.Eventually(t, waitLong, "the first tag", func() bool { return slices.Equal(m.p.tags(), []string{"first"}) })
	first := added()["first"]
	if first.Before(before) || first.After(between) {
		t.Fatalf("Added[first] = %v, want between %v and %v", first, before, between)
	}

	if err := AddTags(ctx, js, name, "second"); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	testkit.Eventually(t, waitLong, "both tags", func() bool { return slices.Equal(m.p.tags(), []string{"first", "second"}) })
	got := added()
	if !got["first"].Equal(first) {
		t.Errorf("Added[first] changed from %v to %v when another tag was added", first, got["first"])
	}
	if s := got["second"]; s.Before(between) || s.After(after) {
		t.Errorf("Added[second] = %v, want between %v and %v", s, between, after)
	}

	// Another member taking the tags over sees the same instants.
	m2 := startMember(t, urls, baseConfig(name, "m2"), nil)
	m.leave(t)
	testkit.Eventually(t, waitLong, "m2 to hold both tags", func() bool { return slices.Equal(m2.p.tags(), []string{"first", "second"}) })
	m2.p.mu.Lock()
	defer m2.p.mu.Unlock()
	for _, tag := range []string{"first", "second"} {
		if !m2.p.a.Added[tag].Equal(got[tag]) {
			t.Errorf("m2 sees Added[%s] = %v, m1 saw %v", tag, m2.p.a.Added[tag], got[tag])
		}
	}
}
