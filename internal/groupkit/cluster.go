package groupkit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Cluster is the three-node nats-server cluster of scripts/nats-cluster.sh: its client URLs, its control script
// and its work directory.
type Cluster struct {
	URLs, Ctl, Dir string
}

// MissingCluster says what to do when ClusterFromEnv finds no cluster.
const MissingCluster = "TAGSTREAM_NATS_CLUSTER_URLS, _CTL or _DIR is empty: the test command (scripts/test.sh) starts " +
	"a three-node nats-server cluster with scripts/nats-cluster.sh and exports them (by hand: scripts/nats-cluster.sh " +
	"up DIR && . DIR/env)"

// ClusterFromEnv returns the cluster TAGSTREAM_NATS_CLUSTER_URLS, _CTL and _DIR name (as scripts/test.sh exports
// them), and whether all three are set.
func ClusterFromEnv() (Cluster, bool) {
	c := Cluster{
		URLs: os.Getenv("TAGSTREAM_NATS_CLUSTER_URLS"),
		Ctl:  os.Getenv("TAGSTREAM_NATS_CLUSTER_CTL"),
		Dir:  os.Getenv("TAGSTREAM_NATS_CLUSTER_DIR"),
	}
	return c, c.URLs != "" && c.Ctl != "" && c.Dir != ""
}

// Node runs the cluster script's action (start, stop, kill) on node n (1..3), for up to two minutes.
func (c Cluster) Node(action string, n int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, c.Ctl, action, strconv.Itoa(n), c.Dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s %d: %v\n%s", c.Ctl, action, n, err, out)
	}
	return nil
}

// LeaderNode returns the number (1..3) of the node that leads stream now (the script names its nodes n1..n3); it
// is an error while the stream has no leader. Callers that wait for one call it again.
func LeaderNode(ctx context.Context, js jetstream.JetStream, stream string) (int, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, err
	}
	si, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	if si.Cluster == nil || !strings.HasPrefix(si.Cluster.Leader, "n") {
		return 0, errors.New("stream " + stream + " has no leader named n1..n3")
	}
	n, err := strconv.Atoi(strings.TrimPrefix(si.Cluster.Leader, "n"))
	if err != nil || n < 1 || n > 3 {
		return 0, fmt.Errorf("stream %s: leader %q is not n1..n3", stream, si.Cluster.Leader)
	}
	return n, nil
}

// TB is the part of testing.TB that NeedCluster and NodeOrFail use (groupkit does not import "testing").
type TB interface {
	Helper()
	Fatal(args ...any)
	Skip(args ...any)
}

// NeedCluster returns the cluster the environment names (ClusterFromEnv) for a test. Without one it fails the
// test when required (TAGSTREAM_INTEGRATION=1: the test command promised one) and skips it otherwise.
func NeedCluster(t TB, required bool) Cluster {
	t.Helper()
	c, ok := ClusterFromEnv()
	if !ok {
		if required {
			t.Fatal("TAGSTREAM_INTEGRATION is set but " + MissingCluster)
		}
		t.Skip("no three-node nats-server cluster: run scripts/test.sh, or scripts/nats-cluster.sh up DIR && . DIR/env")
	}
	return c
}

// NodeOrFail runs Node and fails the test on an error.
func (c Cluster) NodeOrFail(t TB, action string, n int) {
	t.Helper()
	if err := c.Node(action, n); err != nil {
		t.Fatal(err)
	}
}
