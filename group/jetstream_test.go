package group

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tagstream/tagstream/internal/testkit"
)

func TestThreeMembersOwnEveryTagExactlyOnce(t *testing.T) {
	t.Parallel()
	urls := sharedURLs(t)
	o := newOracle()
	tags := makeTags(30)
	group := uniq("exclusive")
	var ms []*member
	for i := range 3 {
		cfg := baseConfig(group, fmt.Sprintf("m%d", i+1))
		if i == 0 {
			cfg.Tags = tags
		}
		ms = append(ms, startMember(t, urls, cfg, o))
	}
	waitCovered(t, "30 tags spread over three members", ms, tags, ms...)
	waitShares(t, ms)
	o.check(t)

	// Every member's status agrees with what the pollers poll (tags may still move while the late joiners settle).
	testkit.Eventually(t, waitLong, "every member's status showing the same owners", func() bool {
		owners, dup := ownership(ms)
		if dup || len(owners) != len(tags) {
			return false
		}
		for _, m := range ms {
			st := m.c.Status()
			if len(st.Members) != 3 || len(st.Unowned) != 0 {
				return false
			}
			for _, ms := range st.Members {
				for _, tag := range ms.Tags {
					if owners[tag] != ms.Name {
						return false
					}
				}
			}
		}
		return true
	})
	testkit.Eventually(t, waitLong, "the stored shares of each token summing to about 1 in m1's status", func() bool {
		st := ms[0].c.Status()
		for _, tok := range st.Tokens {
			if tok.Total > 1+1e-9 {
				t.Fatalf("token %s: stored shares sum to %.4f", tok.Fingerprint, tok.Total)
			}
			if tok.Total < 0.97 {
				return false
			}
		}
		return len(st.Tokens) == len(testTokens)
	})
	if got := testutilGauge(t, ms[0], "tagstream_group_members"); got != 3 {
		t.Errorf("tagstream_group_members = %v, want 3", got)
	}
	var owned float64
	for _, m := range ms {
		owned += testutilGauge(t, m, "tagstream_group_owned_tags")
	}
	if owned != 30 {
		t.Errorf("tagstream_group_owned_tags summed over the members = %v, want 30", owned)
	}
}

func TestMembershipChanges(t *testing.T) {
	t.Parallel()
	urls := sharedURLs(t)
	tags := makeTags(24)
	t.Run("a fourth member receives tags", func(t *testing.T) {
		o := newOracle()
		group := uniq("join")
		var ms []*member
		for i := range 3 {
			cfg := baseConfig(group, fmt.Sprintf("m%d", i+1))
			cfg.Tags = tags
			ms = append(ms, startMember(t, urls, cfg, o))
		}
		waitCovered(t, "three members owning every tag", ms, tags, ms...)
		ms = append(ms, startMember(t, urls, baseConfig(group, "m4"), o))
		waitCovered(t, "four members owning every tag, the new one some", ms, tags, ms...)
		waitShares(t, ms)
		o.check(t)
	})
	t.Run("a member that leaves gracefully hands its tags over at once", func(t *testing.T) {
		o := newOracle()
		group := uniq("leave")
		var ms []*member
		for i := range 3 {
			cfg := baseConfig(group, fmt.Sprintf("m%d", i+1))
			cfg.Tags = tags
			// A lease far above the wait below: the tags can only move in time because the member left.
			cfg.Lease = 5 * time.Minute
			cfg.Heartbeat = time.Second
			ms = append(ms, startMember(t, urls, cfg, o))
		}
		waitCovered(t, "three members owning every tag", ms, tags, ms...)
		leaving := ms[1]
		had := leaving.p.tags()
		leaving.leave(t)
		if got := leaving.p.tags(); len(got) != 0 {
			t.Fatalf("the leaving member's poller still has %v after Run returned", got)
		}
		rest := []*member{ms[0], ms[2]}
		owners := waitCovered(t, "the two others owning every tag", rest, tags, rest...)
		for _, tag := range had {
			if owners[tag] == leaving.name {
				t.Fatalf("tag %s still owned by the member that left", tag)
			}
		}
		if _, err := ms[0].js.KeyValue(context.Background(), MembersBucket(group)); err != nil {
			t.Fatal(err)
		}
		kv, _ := ms[0].js.KeyValue(context.Background(), MembersBucket(group))
		if _, err := kv.Get(context.Background(), leaving.name); err == nil {
			t.Fatalf("the leaving member's key is still there")
		}
		waitShares(t, rest)
		o.check(t)
	})
}

// testutilGauge reads a gauge or counter without labels from a member's registry.
func testutilGauge(t *testing.T, m *member, name string) float64 {
	t.Helper()
	mfs, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, mt := range mf.GetMetric() {
			if g := mt.GetGauge(); g != nil {
				return g.GetValue()
			}
			if c := mt.GetCounter(); c != nil {
				return c.GetValue()
			}
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

func TestPausedMemberLosesItsTagsAfterTheLease(t *testing.T) {
	t.Parallel()
	urls := sharedURLs(t)
	o := newOracle()
	group := uniq("pause")
	tags := makeTags(18)
	var ms []*member
	for i := range 3 {
		cfg := baseConfig(group, fmt.Sprintf("m%d", i+1))
		cfg.Tags = tags
		ms = append(ms, startMember(t, urls, cfg, o))
	}
	waitCovered(t, "three members owning every tag", ms, tags, ms...)
	victim := ms[0]
	had := victim.p.tags()
	oldInc := victim.c.Status().Incarnation
	victim.c.stalled.Store(true) // no heartbeat, no reconcile: a process stopped by SIGSTOP
	testkit.Eventually(t, waitLong, "the paused member's lease to lapse", func() bool { return !victim.c.LeaseValid() })
	rest := []*member{ms[1], ms[2]}
	owners := waitCovered(t, "the two others owning every tag, the paused member's too", rest, tags, rest...)
	for _, tag := range had {
		if owners[tag] == victim.name {
			t.Fatalf("tag %s still with the paused member", tag)
		}
	}
	if got := victim.p.tags(); len(got) != len(had) {
		t.Fatalf("a paused member changed nothing, yet its poller now has %v", got)
	}

	// It wakes up: it must stop polling before anything else, then join again as a new incarnation.
	victim.p.mu.Lock()
	var first *Assignment
	victim.p.hook = func(_ context.Context, a Assignment) error {
		if first == nil {
			first = &a
		}
		return nil
	}
	victim.p.mu.Unlock()
	victim.c.stalled.Store(false)
	victim.c.signal()
	testkit.Eventually(t, waitLong, "the woken member's first assignment", func() bool {
		victim.p.mu.Lock()
		defer victim.p.mu.Unlock()
		return first != nil
	})
	if len(first.Tags) != 0 {
		t.Fatalf("the woken member's first assignment holds %v, want nothing", first.Tags)
	}
	for _, ts := range first.Tokens {
		if ts.Fraction != 0 {
			t.Fatalf("the woken member's first assignment spends token %s at %.3f, want 0", ts.Fingerprint, ts.Fraction)
		}
	}
	waitCovered(t, "all three owning every tag again", ms, tags, ms...)
	testkit.Eventually(t, waitLong, "a new incarnation", func() bool {
		st := victim.c.Status()
		return st.Joined && st.LeaseValid && st.Incarnation != oldInc
	})
	waitShares(t, ms)
	o.check(t)
}

func TestLostTagIsHandedBackWhileStillOwned(t *testing.T) {
	t.Parallel()
	urls := sharedURLs(t)
	cfg := baseConfig(uniq("lost"), "m1")
	cfg.Tags = []string{"coffee"}
	m := startMember(t, urls, cfg, nil)
	testkit.Eventually(t, waitLong, "the member polling coffee", func() bool { return len(m.p.tags()) == 1 })
	var mu sync.Mutex
	var seen [][]string
	m.p.mu.Lock()
	m.p.hook = func(_ context.Context, a Assignment) error {
		mu.Lock()
		seen = append(seen, a.Tags)
		mu.Unlock()
		return nil
	}
	m.p.mu.Unlock()
	m.c.Lost("coffee")
	testkit.Eventually(t, waitLong, "coffee taken away and handed back", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) >= 2 && len(seen[0]) == 0 && slices.Equal(seen[len(seen)-1], []string{"coffee"})
	})
}

func TestNewJetStream(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("a lease that differs from the group's is refused", func(t *testing.T) {
		urls := sharedURLs(t)
		_, js := connect(t, urls)
		cfg := baseConfig(uniq("leasecheck"), "m1")
		if _, err := NewJetStream(ctx, js, cfg, nil, nil); err != nil {
			t.Fatal(err)
		}
		cfg.Lease = 3 * time.Second
		if _, err := NewJetStream(ctx, js, cfg, nil, nil); !errors.Is(err, ErrConfig) {
			t.Fatalf("lease 3s on a group created with 2s: %v, want ErrConfig", err)
		}
		cfg.Lease = 0 // the group's
		c, err := NewJetStream(ctx, js, cfg, nil, nil)
		if err != nil || c.Lease() != 2*time.Second {
			t.Fatalf("zero lease: %v, lease %v; want the group's 2s", err, c.Lease())
		}
	})
	t.Run("on a single server the buckets get one replica", func(t *testing.T) {
		s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
		if err != nil {
			t.Fatal(err)
		}
		go s.Start()
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatal("server not ready")
		}
		t.Cleanup(s.Shutdown)
		_, js := connect(t, s.ClientURL())
		group := uniq("single")
		if _, err := NewJetStream(ctx, js, baseConfig(group, "m1"), nil, nil); err != nil {
			t.Fatal(err)
		}
		for _, b := range []string{StateBucket(group), MembersBucket(group)} {
			kv, err := js.KeyValue(ctx, b)
			if err != nil {
				t.Fatal(err)
			}
			st, err := kv.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if r := st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.Replicas; r != 1 {
				t.Errorf("bucket %s: %d replicas, want 1", b, r)
			}
		}
	})
	t.Run("a nil JetStream is refused", func(t *testing.T) {
		if _, err := NewJetStream(ctx, nil, baseConfig("x", "y"), nil, nil); !errors.Is(err, ErrConfig) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("the buckets of a group on the cluster have three replicas", func(t *testing.T) {
		urls := sharedURLs(t)
		_, js := connect(t, urls)
		group := uniq("replicas")
		if _, err := NewJetStream(ctx, js, baseConfig(group, "m1"), nil, nil); err != nil {
			t.Fatal(err)
		}
		kv, _ := js.KeyValue(ctx, MembersBucket(group))
		st, _ := kv.Status(ctx)
		if bs := st.(*jetstream.KeyValueBucketStatus); bs.StreamInfo().Config.Replicas != 3 || bs.TTL() != 2*time.Second || bs.LimitMarkerTTL() == 0 {
			t.Fatalf("members bucket: %+v", bs.StreamInfo().Config)
		}
	})
}
