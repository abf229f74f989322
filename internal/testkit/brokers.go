package testkit

import (
	"net"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/twmb/franz-go/pkg/kfake"
)

// ConnectNATS connects to the NATS server at url with opts (nats.go's defaults when none) and closes the
// connection when the test ends. It fails the test when the server does not accept the connection.
func ConnectNATS(t testing.TB, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("connect to nats-server %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// FakeKafka starts an in-process Kafka cluster (kfake) of one broker, with opts added, and returns its bootstrap
// addresses. The cluster stops when the test ends.
func FakeKafka(t testing.TB, opts ...kfake.Opt) []string {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// FreePort returns the port of FreeAddr, for a server that takes a port rather than an address.
func FreePort(t testing.TB) int {
	t.Helper()
	addr, err := net.ResolveTCPAddr("tcp", FreeAddr(t))
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	return addr.Port
}
