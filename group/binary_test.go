package group

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tagstream/tagstream/internal/testkit"
)

// binaryCluster is the three-node nats-server cluster started by scripts/nats-cluster.sh (the test command starts
// it and exports its URLs).
type binaryCluster struct {
	urls, ctl, dir string
}

// needBinaryCluster returns the cluster, skips the test without one, and fails it when TAGSTREAM_INTEGRATION=1
// (the test command) promised one.
func needBinaryCluster(t *testing.T) binaryCluster {
	t.Helper()
	c := binaryCluster{
		urls: os.Getenv("TAGSTREAM_NATS_CLUSTER_URLS"),
		ctl:  os.Getenv("TAGSTREAM_NATS_CLUSTER_CTL"),
		dir:  os.Getenv("TAGSTREAM_NATS_CLUSTER_DIR"),
	}
	if c.urls == "" || c.ctl == "" || c.dir == "" {
		if os.Getenv("TAGSTREAM_INTEGRATION") == "1" {
			t.Fatal("TAGSTREAM_INTEGRATION=1 but TAGSTREAM_NATS_CLUSTER_URLS, _CTL or _DIR is empty: the test command " +
				"(scripts/test.sh) starts a three-node nats-server cluster with scripts/nats-cluster.sh and exports them")
		}
		t.Skip("no three-node nats-server cluster: run scripts/test.sh, or scripts/nats-cluster.sh up DIR && . DIR/env")
	}
	return c
}

// node runs the cluster script's action (start, stop, kill) on node n (1..3).
func (c binaryCluster) node(t *testing.T, action string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, c.ctl, action, strconv.Itoa(n), c.dir).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s %d: %v\n%s", c.ctl, action, n, err, out)
	}
}

func TestGroupOnTheNATSServerBinary(t *testing.T) {
	cl := needBinaryCluster(t)
	var b [4]byte
	_, _ = rand.Read(b[:])
	group := "bin" + hex.EncodeToString(b[:]) // the cluster is shared: a group of its own
	_, js := connect(t, cl.urls)
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
		ms = append(ms, startMember(t, cl.urls, cfg, o))
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
		ms = append(ms, startMember(parent, cl.urls, baseConfig(group, "m4"), o)) // runs until the whole test ends
		waitCovered(t, "three live members owning every tag, the new one some", ms, tags, ms...)
	})
	t.Run("a nats-server node stopped and brought back", func(t *testing.T) {
		n := leaderNode(t, js, "KV_"+MembersBucket(group))
		cl.node(t, "stop", n)
		restarted := false
		t.Cleanup(func() {
			if !restarted { // never leave the shared cluster a node short
				cl.node(t, "start", n)
			}
		})
		addTagsEventually(t, js, group, "while_down")
		tags = append(tags, "while_down")
		waitCovered(t, "every tag owned with a node down", ms, tags, ms...)
		cl.node(t, "start", n)
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
		s, err := js.Stream(ctx, stream)
		if err != nil {
			return false
		}
		si, err := s.Info(ctx)
		if err != nil || si.Cluster == nil || !strings.HasPrefix(si.Cluster.Leader, "n") {
			return false
		}
		n, err = strconv.Atoi(strings.TrimPrefix(si.Cluster.Leader, "n"))
		return err == nil && n >= 1 && n <= 3
	})
	return n
}
