package group

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tagstream/tagstream/internal/testkit"
)

// testCluster is a three-node nats-server cluster with JetStream, in process, on loopback ports. A node can be
// stopped and started again on the same ports and store.
type testCluster struct {
	t       testing.TB
	name    string
	nodes   [3]*server.Server
	opts    [3]*server.Options
	clients [3]int
	routes  [3]int
}

// startCluster starts three nodes and waits until JetStream has a meta leader and every node is current.
func startCluster(t testing.TB) *testCluster {
	t.Helper()
	c := &testCluster{t: t, name: "tsg-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))}
	if len(c.name) > 40 {
		c.name = c.name[:40]
	}
	ports := freePorts(t, 6)
	for i := range 3 {
		c.clients[i], c.routes[i] = ports[2*i], ports[2*i+1]
		dir := t.TempDir()
		var routes []*url.URL
		for j := range 3 {
			if j != i {
				routes = append(routes, &url.URL{Scheme: "nats-route", Host: fmt.Sprintf("127.0.0.1:%d", ports[2*j+1])})
			}
		}
		c.opts[i] = &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1",
			Port:       c.clients[i],
			NoLog:      true,
			NoSigs:     true,
			JetStream:  true,
			StoreDir:   dir,
			Cluster:    server.ClusterOpts{Name: c.name, Host: "127.0.0.1", Port: c.routes[i]},
			Routes:     routes,
		}
	}
	for i := range 3 {
		c.Start(i)
	}
	t.Cleanup(c.StopAll)
	c.WaitHealthy()
	return c
}

// needElections skips a test that stops nodes of its own cluster and waits out the raft elections that follow
// (nats-server's election timeout is 4 to 9 s and cannot be set from outside), unless TAGSTREAM_INTEGRATION=1: the
// test command (scripts/test.sh) runs it, a plain go test does not.
func needElections(t *testing.T) {
	t.Helper()
	if os.Getenv("TAGSTREAM_INTEGRATION") != "1" {
		t.Skip("stops cluster nodes and waits out nats-server's elections (4 to 9 s each): " +
			"run with TAGSTREAM_INTEGRATION=1, as scripts/test.sh does")
	}
}

// freePorts returns n distinct free loopback ports.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// Start starts node i (again) on its ports and store.
func (c *testCluster) Start(i int) {
	c.t.Helper()
	if c.nodes[i] != nil {
		return
	}
	o := *c.opts[i]
	s, err := server.NewServer(&o)
	if err != nil {
		c.t.Fatalf("node %d: %v", i+1, err)
	}
	go s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		c.t.Fatalf("node %d not ready for connections", i+1)
	}
	c.nodes[i] = s
}

// Stop shuts node i down and waits until it is gone.
func (c *testCluster) Stop(i int) {
	if s := c.nodes[i]; s != nil {
		s.Shutdown()
		s.WaitForShutdown()
		c.nodes[i] = nil
	}
}

// StopAll shuts every node down at once and waits until they are gone: one after the other, the nodes still up
// would hold elections for the streams of each node that left.
func (c *testCluster) StopAll() {
	var wg sync.WaitGroup
	for i := range c.nodes {
		wg.Go(func() { c.Stop(i) })
	}
	wg.Wait()
}

// WaitHealthy waits until every running node reports JetStream healthy (a meta leader, streams current).
func (c *testCluster) WaitHealthy() {
	c.t.Helper()
	testkit.Eventually(c.t, 60*time.Second, "a healthy JetStream cluster", func() bool {
		for _, s := range c.nodes {
			if s == nil {
				continue
			}
			if h := s.Healthz(nil); h.Status != "ok" {
				return false
			}
		}
		return true
	})
}

// WaitCurrent waits until every replica of every stream is current (caught up with its leader): a node that
// came back is then a full member again, and another node may be stopped without losing a stream's quorum.
// Healthz alone does not say so.
func (c *testCluster) WaitCurrent(js jetstream.JetStream) {
	c.t.Helper()
	testkit.Eventually(c.t, 2*time.Minute, "every stream replica current", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		names := js.StreamNames(ctx)
		for name := range names.Name() {
			s, err := js.Stream(ctx, name)
			if err != nil {
				return false
			}
			si, err := s.Info(ctx)
			if err != nil || si.Cluster == nil || si.Cluster.Leader == "" {
				return false
			}
			for _, r := range si.Cluster.Replicas {
				if !r.Current || r.Offline {
					return false
				}
			}
		}
		return names.Err() == nil
	})
}

// leaderOf returns the index of the node that leads stream.
func (c *testCluster) leaderOf(js jetstream.JetStream, stream string) int {
	c.t.Helper()
	var leader string
	testkit.Eventually(c.t, waitLong, "a leader for "+stream, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, stream)
		if err != nil {
			return false
		}
		si, err := s.Info(ctx)
		if err != nil || si.Cluster == nil {
			return false
		}
		leader = si.Cluster.Leader
		return leader != ""
	})
	for i, o := range c.opts {
		if o.ServerName == leader {
			return i
		}
	}
	c.t.Fatalf("stream %s led by unknown server %q", stream, leader)
	return -1
}

// URLs returns the client URLs of all three nodes, comma-separated.
func (c *testCluster) URLs() string {
	var us []string
	for _, p := range c.clients {
		us = append(us, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	return strings.Join(us, ",")
}

// connect opens a client connection to urls (every node) that reconnects forever, and its JetStream context.
func connect(t testing.TB, urls string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(urls, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond),
		nats.RetryOnFailedConnect(true))
	if err != nil {
		t.Fatalf("connect %s: %v", urls, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(10*time.Second))
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	testkit.Eventually(t, 60*time.Second, "JetStream account info through "+urls, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := js.AccountInfo(ctx)
		return err == nil
	})
	return nc, js
}
