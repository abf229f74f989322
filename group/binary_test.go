package group

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tagstream/tagstream/internal/groupkit"
	"github.com/tagstream/tagstream/internal/testkit"
)

func TestGroupOnTheNATSServerBinary(t *testing.T) {
	// Skipped without the cluster; TAGSTREAM_INTEGRATION=1 (the test command, which starts it) requires it.
	cl := groupkit.NeedCluster(t, os.Getenv("TAGSTREAM_INTEGRATION") == "1")
	var b [4]byte
	_, _ = rand.Read(b[:])
	group := "bin" + hex.EncodeToString(b[:]) // the cluster is shared: a group of its own
	_, js := connect(t, cl.URLs)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = js.DeleteKeyValue(ctx, StateBucket(group))
		_ = js.DeleteKeyValue(ctx, MembersBucket(group))
	})
	o := newOracle()
	tags := makeTags(12)
	var ms []*member
	for i := range 3 {
		cfg := baseConfig(group, fmt.Sprintf("m%d", i+1))
		cfg.Tags = tags
		ms = append(ms, startMember(t, cl.URLs, cfg, o))
	}
	waitCovered(t, "three members owning every tag", ms, tags, ms...)

	t.Run("a member killed: its tags resume elsewhere after the lease", func(t *testing.T) {
		killed := ms[0]
		killed.c.stalled.Store(true) // no heartbeat, no release: as after kill -9
		ms = ms[1:]
		waitCovered(t, "the two others owning every tag", ms, tags, ms...)
	})
	parent := t
	t.Run("a fourth member receives tags", func(t *testing.T) {
		ms = append(ms, startMember(parent, cl.URLs, baseConfig(group, "m4"), o)) // runs until the whole test ends
		waitCovered(t, "three live members owning every tag, the new one some", ms, tags, ms...)
	})
	t.Run("a nats-server node stopped and brought back", func(t *testing.T) {
		n := leaderNode(t, js, "KV_"+MembersBucket(group))
		cl.NodeOrFail(t, "stop", n)
		restarted := false
		t.Cleanup(func() {
			if !restarted { // never leave the shared cluster a node short
				cl.NodeOrFail(t, "start", n)
			}
		})
		addTagsEventually(t, js, group, "while_down")
		tags = append(tags, "while_down")
		waitCovered(t, "every tag owned with a node down", ms, tags, ms...)
		cl.NodeOrFail(t, "start", n)
		restarted = true
		addTagsEventually(t, js, group, "back")
		tags = append(tags, "back")
		waitCovered(t, "every tag owned after the node came back", ms, tags, ms...)
	})
	waitShares(t, ms)
	o.check(t)
}

// leaderNode returns the number (1..3) of the node that leads stream; the script names its nodes n1..n3.
func leaderNode(t *testing.T, js jetstream.JetStream, stream string) int {
	t.Helper()
	var n int
	testkit.Eventually(t, waitLong, "a leader for "+stream, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var err error
		n, err = groupkit.LeaderNode(ctx, js, stream)
		return err == nil
	})
	return n
}
