package pipeline

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tagstream/tagstream/internal/config"
	"github.com/tagstream/tagstream/internal/testkit"
	"github.com/tagstream/tagstream/internal/testkit/simkit"
	"github.com/tagstream/tagstream/poller"
	"github.com/tagstream/tagstream/schema"
	"github.com/tagstream/tagstream/testenv"
)

// The tokens of the tests; none may ever appear in any output.
var secretTokens = []string{"1111111.aaaasecrettokenaaaa0001", "2222222.bbbbsecrettokenbbbb0002", "3333333.ccccsecrettokencccc0003"}

// fixture is a simulator plus a validated configuration that polls it quickly.
type fixture struct {
	sim  *testenv.Server
	cfg  *config.Config
	logs *testkit.SyncBuffer
}

// TestMain runs more tests at once than there are cores: most of them wait for a broker, a lease or a poll of
// the simulator.
func TestMain(m *testing.M) {
	testkit.ParallelWaiters(8)
	os.Exit(m.Run())
}

// newFixture starts a simulator with tags and returns a configuration for it with the given sink settings
// applied by edit. The status endpoints listen on a free port.
func newFixture(t *testing.T, edit func(*config.Config), tags ...string) *fixture {
	t.Helper()
	f := &fixture{
		sim:  simkit.StartSim(t, simkit.SimOptions{Tokens: secretTokens[:2], ClientIDs: secretTokens[2:], Tags: tags}),
		logs: &testkit.SyncBuffer{},
	}
	cfg := config.Defaults()
	cfg.APIURL = f.sim.URL()
	cfg.CAFile = f.sim.CAFile()
	cfg.Tags = tags
	cfg.Credentials = []config.Credential{{Value: secretTokens[0]}, {Value: secretTokens[1]}}
	cfg.StateDir = filepath.Join(t.TempDir(), "state")
	cfg.MetricsAddr = "127.0.0.1:0"
	cfg.MinInterval = 200 * time.Millisecond
	cfg.MaxInterval = time.Second
	cfg.ShutdownTimeout = 5 * time.Second
	cfg.RateWindow = time.Second // the tokens' budget paces no test here (the simulator counts per hour)
	cfg.Sink = config.SinkFile
	cfg.Output = filepath.Join(t.TempDir(), "events.ndjson")
	// start=now publishes what was created since the start, less poller.StartSkew: start after simkit's Initial
	// media (the newest made the instant the simulator started); the tests count only what they post.
	cfg.StartedAt = time.Now().Add(poller.StartSkew + time.Second)
	if edit != nil {
		edit(&cfg)
	}
	if err := config.Validate(&cfg, config.GroupAll, config.Needs{Tags: true, Tokens: true}); err != nil {
		t.Fatalf("config: %v", err)
	}
	f.cfg = &cfg
	t.Cleanup(func() {
		for _, tok := range secretTokens {
			if strings.Contains(f.logs.String(), tok) {
				t.Errorf("the log contains a token")
			}
		}
		if t.Failed() {
			t.Logf("log:\n%s", f.logs.String())
		}
	})
	return f
}

// deps are the dependencies of the fixture's pipelines: the log goes to f.logs, broker dials retry every 20 ms,
// and the poller's retries and probes of a failing API start at 20 ms and wait at most 200 ms.
func (f *fixture) deps() Deps {
	d := Deps{
		Logger:      slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Version:     "test",
		DialBackOff: func() backoff.BackOff { return backoff.NewConstantBackOff(20 * time.Millisecond) },
	}
	d.APIBackoff.Initial, d.APIBackoff.Max = 20*time.Millisecond, 200*time.Millisecond
	return d
}

// running is a pipeline whose Run goroutine the test controls.
type running struct {
	*Pipeline
	cancel context.CancelFunc
	done   chan error
}

// start builds the pipeline and runs it until the test stops it (or ends).
func (f *fixture) start(t *testing.T) *running {
	t.Helper()
	p, err := New(t.Context(), f.cfg, f.deps())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Pipeline: p, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		testkit.Receive(t, r.done, 30*time.Second, "the pipeline to stop")
	})
	return r
}

// stop cancels Run and returns its result.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	err := testkit.Receive(t, r.done, 30*time.Second, "the pipeline to stop")
	r.done <- err // for the cleanup
	return err
}

// waitPolled waits until every tag was polled once (its cursor set at the head).
func (r *running) waitPolled(t *testing.T, tags int) {
	t.Helper()
	testkit.Receive(t, r.Started(), 30*time.Second, "polling to start")
	testkit.Eventually(t, 30*time.Second, "the first poll of every tag", func() bool {
		st := r.TagStatus()
		n := 0
		for _, s := range st {
			if !s.LastPoll.IsZero() && s.Cursor != "" {
				n++
			}
		}
		return n == tags
	})
}

// get fetches a status endpoint and returns its code and body.
func (r *running) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + r.StatusAddr() + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, tok := range secretTokens {
		if strings.Contains(string(b), tok) {
			t.Errorf("%s shows a token", path)
		}
	}
	return resp.StatusCode, string(b)
}

// expectedSince returns the media ids the simulator made visible at or after since.
// publishedOnce counts each media id in ids and reports every wanted one that was not published exactly once.
func publishedOnce(t *testing.T, ids []string, want map[string]bool) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for _, id := range ids {
		seen[id]++
	}
	for id := range want {
		if seen[id] != 1 {
			t.Errorf("media %s published %d times, want once", id, seen[id])
		}
	}
	return seen
}

func expectedSince(sim *testenv.Server, since time.Time) map[string]bool {
	want := map[string]bool{}
	for _, tr := range sim.GroundTruth() {
		if !tr.VisibleAt.Before(since) && tr.DeletedAt.IsZero() {
			want[tr.MediaID] = true
		}
	}
	return want
}

// fileMediaIDs returns the media ids of the complete lines of an NDJSON events file, in order (a line the
// publisher is writing at that moment is not complete yet).
func fileMediaIDs(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	if i := strings.LastIndexByte(string(b), '\n'); i >= 0 {
		b = b[:i+1]
	} else {
		b = nil
	}
	var ids []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		ev, err := schema.UnmarshalEvent([]byte(line))
		if err != nil {
			t.Fatalf("bad line %q: %v", line, err)
		}
		if ev.Data != nil {
			ids = append(ids, ev.Data.MediaID)
		}
	}
	return ids
}

func TestRunPublishesToJetStreamAndReportsReadiness(t *testing.T) {
	t.Parallel()
	ns := testkit.StartNATS(t)
	tags := []string{"sunset", "new_york"}
	f := newFixture(t, func(c *config.Config) {
		c.Sink, c.NATSURL, c.SubjectPrefix, c.Stream = config.SinkJetStream, ns.ClientURL(), "ig.media", "IGTEST"
		c.Credentials = append(c.Credentials, config.Credential{Value: secretTokens[2], ClientID: true})
	}, tags...)
	r := f.start(t)
	r.waitPolled(t, len(tags))
	cons, err := NewConsumer(t.Context(), f.cfg, ConsumerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	since := time.Now()
	f.sim.Post("sunset", 40)
	f.sim.Post("new_york", 5)
	want := expectedSince(f.sim, since)
	got := map[string]int{}
	for len(got) < len(want) {
		m, err := cons.Next(testkit.Context(t, 30*time.Second))
		if err != nil {
			t.Fatalf("after %d of %d events: %v", len(got), len(want), err)
		}
		if m.Event == nil || m.Event.Data == nil {
			t.Fatalf("%s is not a media event: %v", m.Where(), m.Err)
		}
		got[m.Event.Data.MediaID]++
	}
	for id := range want {
		if got[id] != 1 {
			t.Errorf("media %s arrived %d times", id, got[id])
		}
	}
	for _, path := range []string{"/readyz", "/healthz", "/metrics", "/status"} {
		if code, body := r.get(t, path); code != http.StatusOK {
			t.Errorf("%s answered %d: %s", path, code, body)
		}
	}
	if _, body := r.get(t, "/metrics"); !strings.Contains(body, "tagstream_publisher_published_total") {
		t.Errorf("/metrics lacks the publisher's metrics")
	}
	if _, body := r.get(t, "/status"); !strings.Contains(body, `"client_id": true`) || !strings.Contains(body, `"sink": "jetstream stream IGTEST"`) {
		t.Errorf("/status = %s", body)
	}
	if err := r.stop(t); err != nil {
		t.Errorf("Run = %v, want nil after a stop", err)
	}
}

func TestRunWaitsForABrokerThatIsDownAtStart(t *testing.T) {
	t.Parallel()
	opts := testkit.NATSOptions(t)
	_, port, _ := net.SplitHostPort(testkit.FreeAddr(t))
	opts.Port = atoi(t, port)
	tags := []string{"sunset"}
	f := newFixture(t, func(c *config.Config) {
		c.Sink, c.NATSURL, c.Stream = config.SinkJetStream, "nats://127.0.0.1:"+port, "LATE"
		c.CheckpointStore, c.KVBucket = config.StoreJetStreamKV, "late_cursors"
		// The stop at the end meets a broker that is gone: a poll in flight then waits for its cursor, and the
		// publisher for its flush, each until the shutdown timeout.
		c.ShutdownTimeout = 500 * time.Millisecond
	}, tags...)
	r := f.start(t)

	// While the broker is away: every attempt is logged with the next one, /readyz says why, nothing is polled.
	testkit.Eventually(t, 30*time.Second, "three failed attempts logged", func() bool {
		return strings.Count(f.logs.String(), "the broker cannot be reached; trying again") >= 3
	})
	if !strings.Contains(f.logs.String(), "next_attempt_in=") || !strings.Contains(f.logs.String(), "level=WARN") {
		t.Errorf("a failed attempt is not a WARN naming the next attempt:\n%s", f.logs.String())
	}
	code, body := r.get(t, "/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "not ready broker: cannot reach nats://127.0.0.1:"+port) {
		t.Errorf("/readyz answered %d:\n%s", code, body)
	}
	if n := f.sim.Stats().Requests; n != 0 {
		t.Errorf("%d API requests while the broker was away: polling must wait for it", n)
	}
	if _, body := r.get(t, "/metrics"); !strings.Contains(body, "\ntagstream_broker_up 0\n") {
		t.Errorf("tagstream_broker_up is not 0 while the broker is away")
	}

	// The broker comes: polling starts and events arrive.
	ns := testkit.RunNATS(t, opts)
	r.waitPolled(t, len(tags))
	testkit.Eventually(t, 30*time.Second, "readiness", func() bool { c, _ := r.get(t, "/readyz"); return c == http.StatusOK })
	if _, body := r.get(t, "/metrics"); !strings.Contains(body, "\ntagstream_broker_up 1\n") {
		t.Errorf("tagstream_broker_up is not 1 once the broker answers")
	}
	cons, err := NewConsumer(t.Context(), f.cfg, ConsumerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	f.sim.Post("sunset", 3)
	for i := range 3 {
		if _, err := cons.Next(testkit.Context(t, 30*time.Second)); err != nil {
			t.Fatalf("event %d: %v", i+1, err)
		}
	}

	// The broker goes away again: the gauge and /readyz say so.
	ns.Shutdown()
	testkit.Eventually(t, 30*time.Second, "tagstream_broker_up 0 after the broker stopped", func() bool {
		_, body := r.get(t, "/metrics")
		return strings.Contains(body, "\ntagstream_broker_up 0\n")
	})
	// The store check answers at once (the client would buffer a read until the check timed out).
	if code, body := r.get(t, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "not ready broker") ||
		!strings.Contains(body, "not ready checkpoint-store: not connected to nats://127.0.0.1:"+port) {
		t.Errorf("/readyz answered %d while the broker is away:\n%s", code, body)
	}
	if err := r.stop(t); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
}

func TestReadinessFollowsTheAPI(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil, "sunset")
	r := f.start(t)
	r.waitPolled(t, 1)
	testkit.Eventually(t, 30*time.Second, "readiness", func() bool { c, _ := r.get(t, "/readyz"); return c == http.StatusOK })

	// Every request fails: after a few failures in a row the API counts as down and /readyz says so.
	f.sim.SetFaults(testenv.Faults{Error500: 1})
	testkit.Eventually(t, 60*time.Second, "/readyz not ready while the API is down", func() bool {
		code, body := r.get(t, "/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "not ready poller: poller: the API is considered down")
	})
	if _, body := r.get(t, "/metrics"); !strings.Contains(body, "\ntagstream_broker_up 1\n") {
		t.Errorf("tagstream_broker_up is not 1 while only the API is down (the file sink is writable)")
	}

	// The API answers again: ready again, with nothing to restart.
	f.sim.SetFaults(testenv.Faults{})
	testkit.Eventually(t, 60*time.Second, "/readyz ready once the API answers", func() bool {
		code, _ := r.get(t, "/readyz")
		return code == http.StatusOK
	})
}

func TestAStopWhileTheBrokerIsUnreachableIsClean(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *config.Config) {
		c.Sink, c.NATSURL = config.SinkJetStream, "nats://"+testkit.FreeAddr(t)
	}, "sunset")
	r := f.start(t)
	testkit.Eventually(t, 30*time.Second, "a failed attempt", func() bool {
		return strings.Contains(f.logs.String(), "the broker cannot be reached")
	})
	if err := r.stop(t); err != nil {
		t.Errorf("Run = %v, want nil: a stop while waiting for the broker is clean", err)
	}
}

func TestRunResumesWhereItStoppedWithNothingLostOrRepeated(t *testing.T) {
	t.Parallel()
	tags := []string{"sunset", "coffee", "tea"}
	f := newFixture(t, nil, tags...)
	published := func() []string { return fileMediaIDs(t, f.cfg.Output) }

	r := f.start(t)
	r.waitPolled(t, len(tags))
	since := time.Now()
	f.sim.Post("coffee", 80) // a burst of several pages
	f.sim.Post("sunset", 5)
	testkit.Eventually(t, 30*time.Second, "the first life's events", func() bool { return len(published()) == 85 })
	if err := r.stop(t); err != nil {
		t.Fatalf("first life: %v", err)
	}
	firstLife := len(published())

	// The fixture's start instant is a second after it was made (to leave simkit's initial media out), and the
	// first life may end before it. tea published nothing, so it has no cursor: with the bolt file's start record
	// the second life judges its media by created_time, as a first poll does. Media posted while tagstream is
	// down are posted after the start instant, as they are when a real process started earlier.
	if d := time.Until(f.cfg.StartedAt.Add(-poller.StartSkew)); d > 0 {
		time.Sleep(d + time.Second) // created_time counts whole seconds
	}
	f.sim.Post("sunset", 70) // posted while tagstream is down
	f.sim.Post("tea", 2)
	r = f.start(t)
	want := expectedSince(f.sim, since)
	testkit.Eventually(t, 30*time.Second, "every posted media", func() bool { return len(published()) >= len(want) })
	if err := r.stop(t); err != nil {
		t.Fatalf("second life: %v", err)
	}
	seen := publishedOnce(t, published(), want)
	if len(seen) != len(want) || firstLife >= len(want) {
		t.Errorf("published %d media (%d in the first life), want %d", len(seen), firstLife, len(want))
	}
}

func TestConfigurationProblemsFoundAtStartAreConfigErrors(t *testing.T) {
	t.Parallel()
	ns := testkit.StartNATS(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() })
	tests := []struct {
		name    string
		edit    func(*config.Config)
		wantKey string
		want    string
	}{
		{"a metrics address in use", func(c *config.Config) { c.MetricsAddr = busy.Addr().String() }, "metrics-addr", "address already in use"},
		{"a stream that must exist but does not", func(c *config.Config) {
			c.Sink, c.NATSURL, c.CreateStream = config.SinkJetStream, ns.ClientURL(), false
		}, "stream", "CreateStream is off"},
		{"a named stream that must exist but does not", func(c *config.Config) {
			c.Sink, c.NATSURL, c.Stream, c.CreateStream = config.SinkJetStream, ns.ClientURL(), "NOPE", false
		}, "stream", "NOPE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, tt.edit, "sunset")
			p, err := New(t.Context(), f.cfg, f.deps())
			if err == nil {
				err = p.Run(t.Context())
			}
			var ce *config.Error
			if !errors.As(err, &ce) || ce.Key != tt.wantKey || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want a configuration error on %s saying %q", err, tt.wantKey, tt.want)
			}
		})
	}
}

func TestASecondPipelineOnTheSameStateDirectoryIsAConfigError(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil, "sunset")
	first, err := New(t.Context(), f.cfg, f.deps())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	cfg2 := *f.cfg
	cfg2.MetricsAddr = ""
	_, err = New(t.Context(), &cfg2, f.deps())
	var ce *config.Error
	if !errors.As(err, &ce) || ce.Key != "state-dir" || !strings.Contains(err.Error(), "another tagstream") {
		t.Fatalf("error = %v, want a configuration error on state-dir naming another tagstream", err)
	}
}

func TestDefaultDeadLetterIsAFileInTheStateDir(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		edit     func(*config.Config)
		wantFile bool
	}{
		{"a broker sink with no dead-letter key writes refused events to the state dir",
			func(c *config.Config) { c.Sink, c.KafkaBrokers = config.SinkKafka, []string{"127.0.0.1:9"} }, true},
		{"jetstream likewise", func(c *config.Config) { c.Sink = config.SinkJetStream }, true},
		{"a configured dead-letter subject wins", func(c *config.Config) { c.Sink, c.DeadLetter = config.SinkJetStream, "tagstream.dead" }, false},
		{"the file sink never refuses an event", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, tt.edit, "sunset")
			p, err := New(t.Context(), f.cfg, f.deps())
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			_, err = os.Stat(filepath.Join(f.cfg.StateDir, config.DeadLetterFile))
			if (err == nil) != tt.wantFile {
				t.Errorf("dead-letter file: %v, want one: %v", err, tt.wantFile)
			}
		})
	}
}

func TestCheckReachesTheAPIAndTheBrokerAndChangesNothing(t *testing.T) {
	t.Parallel()
	ns := testkit.StartNATS(t)
	tests := []struct {
		name            string
		edit            func(*config.Config)
		revoke          bool
		wantFailed      []string // checks that fail
		wantUnreachable bool
		want            string
	}{
		{"a good configuration passes every check", func(c *config.Config) { c.Sink, c.NATSURL = config.SinkJetStream, ns.ClientURL() },
			false, nil, false, "run creates stream TAGSTREAM"},
		{"a revoked token fails the API check", func(c *config.Config) { c.Sink, c.NATSURL = config.SinkJetStream, ns.ClientURL() },
			true, []string{"api"}, false, "invalid or revoked"},
		{"a stream that must exist but does not fails the sink check", func(c *config.Config) {
			c.Sink, c.NATSURL, c.CreateStream = config.SinkJetStream, ns.ClientURL(), false
		}, false, []string{"sink"}, false, "create-stream is off"},
		{"an unreachable broker is reported as such", func(c *config.Config) {
			c.Sink, c.NATSURL, c.CheckpointStore = config.SinkJetStream, "nats://"+testkit.FreeAddr(t), config.StoreJetStreamKV
		}, false, []string{"sink", "state"}, true, "no servers available"},
		{"the file sink needs no broker", nil, false, nil, false, "events will be appended"},
		{"an API that cannot be reached is a failure, not an outage run waits for", func(c *config.Config) {
			c.APIURL = "https://" + testkit.FreeAddr(t) + "/v1"
		}, false, []string{"api"}, false, "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, tt.edit, "sunset")
			if tt.revoke {
				f.sim.RevokeToken(secretTokens[0])
			}
			var failed []string
			var text strings.Builder
			for _, r := range Check(testkit.Context(t, 30*time.Second), f.cfg, f.deps()) {
				text.WriteString(r.Name + ": " + r.Detail + " " + errText(r.Err) + "\n")
				if r.Err != nil {
					failed = append(failed, r.Name)
					if r.Unreachable() != tt.wantUnreachable {
						t.Errorf("%s: unreachable = %v, want %v (%v)", r.Name, r.Unreachable(), tt.wantUnreachable, r.Err)
					}
				}
			}
			if strings.Join(failed, ",") != strings.Join(tt.wantFailed, ",") || !strings.Contains(text.String(), tt.want) {
				t.Errorf("failed checks %v, want %v; report:\n%s", failed, tt.wantFailed, text.String())
			}
			for _, tok := range secretTokens {
				if strings.Contains(text.String(), tok) {
					t.Errorf("the report shows a token")
				}
			}
		})
	}
	// check creates nothing.
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	for n := range js.StreamNames(t.Context()).Name() {
		t.Errorf("check created stream %s", n)
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestTheCallersConnectionAndPublisherWrapperAreUsed(t *testing.T) {
	t.Parallel()
	ns := testkit.StartNATS(t)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	f := newFixture(t, func(c *config.Config) {
		// An address nobody listens on: only Deps.NATSConn can make this work.
		c.Sink, c.NATSURL, c.CheckpointStore = config.SinkJetStream, "nats://"+testkit.FreeAddr(t), config.StoreJetStreamKV
	}, "sunset")
	handedOff := make(chan int, 100)
	deps := f.deps()
	deps.NATSConn = nc
	deps.WrapPublisher = func(next poller.Publisher) poller.Publisher {
		return poller.PublisherFunc(func(ctx context.Context, events []*schema.Event) error {
			err := next.Publish(ctx, events)
			if err == nil {
				handedOff <- len(events)
			}
			return err
		})
	}
	p, err := New(t.Context(), f.cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	r := &running{Pipeline: p, cancel: cancel, done: done}
	r.waitPolled(t, 1)
	f.sim.Post("sunset", 4)
	if n := testkit.Receive(t, handedOff, 30*time.Second, "a hand-off through the wrapper"); n != 4 {
		t.Errorf("the wrapper saw a batch of %d events, want 4", n)
	}
	cancel()
	if err := testkit.Receive(t, done, 30*time.Second, "the pipeline to stop"); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if !nc.IsConnected() {
		t.Errorf("the pipeline closed the caller's connection")
	}
}
