package publisher

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/tagstream/tagstream/internal/testkit"
	"github.com/tagstream/tagstream/schema"
)

// TestMain runs more tests at once than there are cores: most of them wait for a broker (a restart, a
// reconnect, an acknowledgement).
func TestMain(m *testing.M) {
	testkit.ParallelWaiters(8)
	os.Exit(m.Run())
}

const cassette = "../testdata/instagram-v1/elixtagram__tags_ts_media_recent__2015-09-29T2006.cassette.json"

// fixtureEvents returns the normalized media of the recorded #ts page (realistic 1-2 KB events).
func fixtureEvents(tb testing.TB) []*schema.Event {
	tb.Helper()
	page, err := schema.DecodePage(200, "application/json", []byte(testkit.Cassette(tb, cassette)[0].Body))
	if err != nil {
		tb.Fatalf("decode page: %v", err)
	}
	fetched := time.Date(2015, 9, 29, 20, 6, 0, 0, time.UTC)
	events := make([]*schema.Event, 0, len(page.Media))
	for i := range page.Media {
		e, err := schema.Normalize(&page.Media[i], schema.Sighting{Tag: "ts", Cursor: page.Pagination.MinTagID,
			Source: schema.DefaultSource, FetchedAt: fetched})
		if err != nil {
			tb.Fatalf("normalize media %d: %v", i, err)
		}
		events = append(events, e)
	}
	if len(events) == 0 {
		tb.Fatal("cassette holds no media")
	}
	return events
}

// testLogger logs to the test output at warn level (errors and retries only).
func testLogger(t testing.TB) *slog.Logger {
	t.Helper()
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// counter reads a counter of the publisher metrics registered in reg.
func counter(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if !labelsMatch(m, labels) {
				continue
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			case m.Histogram != nil:
				sum += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return sum
}

func labelsMatch(m *dto.Metric, want map[string]string) bool {
	for k, v := range want {
		found := false
		for _, lp := range m.GetLabel() {
			if lp.GetName() == k && lp.GetValue() == v {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// natsServer is an in-process nats-server that a test can stop and restart on the same port and store.
type natsServer struct {
	t    testing.TB
	opts *server.Options
	s    *server.Server
}

// startNATS starts an in-process JetStream server on a free port with a t.TempDir store (testkit.NATSOptions).
// maxPayload 0 keeps the default (1 MiB).
func startNATS(t testing.TB, maxPayload int32) *natsServer {
	t.Helper()
	opts := testkit.NATSOptions(t)
	opts.MaxPayload = maxPayload
	return runNATS(t, opts)
}

// runNATS starts an in-process server with opts (testkit.RunNATS, which sets opts.Port, so that restarts reuse
// the port) and stops it when the test ends.
func runNATS(t testing.TB, opts *server.Options) *natsServer {
	t.Helper()
	ns := &natsServer{t: t, opts: opts}
	ns.start()
	t.Cleanup(ns.stop)
	return ns
}

func (ns *natsServer) start() {
	ns.t.Helper()
	ns.s = testkit.RunNATS(ns.t, ns.opts)
}

func (ns *natsServer) stop() {
	if ns.s != nil {
		ns.s.Shutdown()
		ns.s.WaitForShutdown()
		ns.s = nil
	}
}

// restart stops the server (its clients see the connection drop) and starts it again on the same port and store.
func (ns *natsServer) restart() {
	ns.t.Helper()
	ns.stop()
	ns.start()
}

func (ns *natsServer) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", ns.opts.Port) }

// connect dials the server with the publisher's connection options (reconnect forever, quick backoff).
func (ns *natsServer) connect(t testing.TB) *nats.Conn {
	t.Helper()
	opts, err := ConnConfig{URLs: []string{ns.url()}, ReconnectWait: 20 * time.Millisecond,
		MaxReconnectWait: 200 * time.Millisecond}.Options(testLogger(t))
	if err != nil {
		t.Fatalf("conn options: %v", err)
	}
	nc, err := nats.Connect(ns.url(), opts...)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// subscribe subscribes to subject on a connection of its own, keeping up to n messages, and returns once the
// server holds the subscription (a flush round trip), so that nothing published afterwards is missed.
func (ns *natsServer) subscribe(t testing.TB, subject string, n int) <-chan *nats.Msg {
	t.Helper()
	sub := ns.connect(t)
	ch := make(chan *nats.Msg, n)
	s, err := sub.ChanSubscribe(subject, ch)
	if err != nil {
		t.Fatalf("subscribe to %s: %v", subject, err)
	}
	t.Cleanup(func() { _ = s.Unsubscribe() })
	if err := sub.Flush(); err != nil {
		t.Fatalf("subscribe to %s: flush: %v", subject, err)
	}
	return ch
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
