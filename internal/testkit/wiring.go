package testkit

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// NATSOptions are the options of an in-process nats-server with JetStream on a free loopback port (Port -1) and
// a store in a new t.TempDir(). Pass them, changed, to RestartNATS to bring a server back on the same port and
// store.
func NATSOptions(t testing.TB) *server.Options {
	t.Helper()
	return &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true}
}

// StartNATS starts an in-process nats-server with JetStream (NATSOptions) and shuts it down when the test ends.
func StartNATS(t testing.TB) *server.Server {
	t.Helper()
	return RunNATS(t, NATSOptions(t))
}

// RunNATS starts an in-process nats-server with opts, waits until it accepts clients and shuts it down when the
// test ends. After it returns, opts.Port holds the port the server listens on, so that the same opts start it
// again on that port.
func RunNATS(t testing.TB, opts *server.Options) *server.Server {
	t.Helper()
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("nats-server: %v", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		t.Fatal("nats-server not ready for connections within 10 s")
	}
	t.Cleanup(ns.Shutdown)
	if addr, ok := ns.Addr().(*net.TCPAddr); ok {
		opts.Port = addr.Port
	}
	return ns
}

// FreeAddr returns a loopback host:port that was free a moment ago (nobody listens on it).
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free address: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// WriteTokens writes a tokens file readable only by its owner, one entry per line, and returns its path.
func WriteTokens(t testing.TB, entries ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(p, []byte("# test tokens\n"+strings.Join(entries, "\n")+"\n"), 0o600); err != nil {
		t.Fatalf("write tokens: %v", err)
	}
	return p
}

// Context returns a context that ends after timeout or when the test ends, whichever comes first: a bound on a
// blocking call that must not hang the test, never a timing assertion.
func Context(t testing.TB, timeout time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	t.Cleanup(cancel)
	return ctx
}
