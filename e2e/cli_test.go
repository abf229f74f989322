//go:build integration

package e2e

// The tests of this file run the built binary as a user would: signals, restarts on the same state, the status
// endpoints, tail and the demo. (The command's behaviour that needs no process of its own, exit statuses of bad
// configurations and check among them, is tested in-process in cmd/tagstream.)

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tagstream/tagstream/internal/status"
	"github.com/tagstream/tagstream/internal/testkit"
	"github.com/tagstream/tagstream/internal/testkit/simkit"
	"github.com/tagstream/tagstream/poller"
	"github.com/tagstream/tagstream/publisher"
	"github.com/tagstream/tagstream/schema"
	"github.com/tagstream/tagstream/testenv"
)

// cliTokens are the tokens of the tests of this file; none of them may ever appear in any output.
var cliTokens = []string{"1111111.aaaasecrettokenaaaa0001", "2222222.bbbbsecrettokenbbbb0002", "3333333.ccccsecrettokencccc0003"}

// cleanEnv is the environment of the child processes: the test's own minus every TAGSTREAM_* variable (the test
// command exports broker addresses, and TAGSTREAM_NATS_URL is a setting).
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TAGSTREAM_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// assertNoSecrets fails when any test token appears in text.
func assertNoSecrets(t *testing.T, what, text string) {
	t.Helper()
	for _, tok := range cliTokens {
		if strings.Contains(text, tok) || strings.Contains(text, tok[8:]) {
			t.Errorf("%s contains a token", what)
		}
	}
}

// result is the outcome of one finished command.
type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs the binary to completion (killed after timeout) and checks that no token was printed.
func runCLI(t *testing.T, timeout time.Duration, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Env = cleanEnv()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("tagstream %v did not finish within %s; stderr:\n%s", args, timeout, r.stderr)
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run %v: %v", args, err)
	}
	assertNoSecrets(t, "stdout", r.stdout)
	assertNoSecrets(t, "stderr", r.stderr)
	return r
}

// cliProc is a tagstream process running in the background, its stdout and stderr kept apart.
type cliProc struct {
	cmd    *exec.Cmd
	stdout testkit.SyncBuffer
	stderr testkit.SyncBuffer
	done   chan struct{}
}

func startCLI(t *testing.T, args ...string) *cliProc {
	t.Helper()
	p := &cliProc{cmd: exec.Command(binPath, args...), done: make(chan struct{})}
	p.cmd.Env = cleanEnv("GORACE=halt_on_error=0 exitcode=66")
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
		if strings.Contains(p.stderr.String(), "WARNING: DATA RACE") {
			t.Errorf("the race detector reported a data race in tagstream %s", args[0])
		}
		if t.Failed() {
			stderr := p.stderr.String()
			if len(stderr) > 8000 {
				stderr = "..." + stderr[len(stderr)-8000:]
			}
			t.Logf("stderr of tagstream %s:\n%s", args[0], stderr)
		}
	})
	return p
}

// stop sends SIGTERM and returns the exit status; the process must end within a generous bound.
func (p *cliProc) stop(t *testing.T) int {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("signal: %v", err)
	}
	testkit.Receive(t, p.done, 60*time.Second, "tagstream to stop after SIGTERM")
	assertNoSecrets(t, "stdout", p.stdout.String())
	assertNoSecrets(t, "stderr", p.stderr.String())
	return p.cmd.ProcessState.ExitCode()
}

// startCLISim starts the simulator with the tokens of this file (two access tokens, one client id).
func startCLISim(t *testing.T, tags ...string) *testenv.Server {
	t.Helper()
	return simkit.StartSim(t, simkit.SimOptions{Tokens: cliTokens[:2], ClientIDs: cliTokens[2:], Tags: tags})
}

// fetchStatus reads /status; ok is false while the endpoint does not answer.
func fetchStatus(addr string) (status.Report, bool) {
	var r status.Report
	resp, err := http.Get("http://" + addr + "/status")
	if err != nil {
		return r, false
	}
	defer resp.Body.Close()
	if json.NewDecoder(resp.Body).Decode(&r) != nil {
		return r, false
	}
	return r, true
}

// waitPolled waits until /status shows every tag polled successfully (its cursor set at the head).
func waitPolled(t *testing.T, p *cliProc, addr string, tags int) {
	t.Helper()
	testkit.Eventually(t, 60*time.Second, "the first poll of every tag", func() bool {
		select {
		case <-p.done:
			t.Fatalf("tagstream exited early (%v)", p.cmd.ProcessState)
		default:
		}
		r, ok := fetchStatus(addr)
		if !ok || len(r.Tags) != tags {
			return false
		}
		for _, tg := range r.Tags {
			if tg.LastPoll.IsZero() || tg.Cursor == "" {
				return false
			}
		}
		return true
	})
}

// unmarshalEventLine returns the media id of a structured event ("" for a gap marker).
func unmarshalEventLine(b []byte) (string, error) {
	ev, err := schema.UnmarshalEvent(b)
	if err != nil || ev.Data == nil {
		return "", err
	}
	return ev.Data.MediaID, nil
}

// streamMediaIDs returns the media ids of every event in a JetStream stream, in stream order.
func streamMediaIDs(t *testing.T, url, stream string) []string {
	t.Helper()
	var ids []string
	for _, r := range readStream(t, url, stream, publisher.DefaultSubjectPrefix, false) {
		if r.Event.Data != nil {
			ids = append(ids, r.Event.Data.MediaID)
		}
	}
	return ids
}

// metricValue returns the sum of a metric's samples on /metrics.
func metricValue(t *testing.T, addr, name string) float64 {
	t.Helper()
	ts := &tagstream{metricsAddr: addr}
	v, err := ts.metric(name)
	if err != nil {
		t.Fatalf("metric %s: %v", name, err)
	}
	return v
}

// startExtras returns the media a run started at start may publish besides those posted after it: a tag's first
// poll (poller.StartNow) also publishes media created up to poller.StartSkew before the start, and created_time
// has a resolution of one second.
func startExtras(sim *testenv.Server, start time.Time) map[string]bool {
	out := map[string]bool{}
	for _, tr := range sim.GroundTruth() {
		if !tr.CreatedTime.Before(start.Add(-poller.StartSkew - time.Second)) {
			out[tr.MediaID] = true
		}
	}
	return out
}

// containsAll reports whether ids holds every media of want.
func containsAll(ids []string, want map[string]bool) bool {
	have := make(map[string]bool, len(ids))
	for _, id := range ids {
		have[id] = true
	}
	for id := range want {
		if !have[id] {
			return false
		}
	}
	return true
}

func baseRunArgs(sim *testenv.Server, tokens, stateDir, metrics string, tags ...string) []string {
	return []string{"run",
		"--api-url", sim.URL(), "--ca-file", sim.CAFile(), "--tokens-file", tokens,
		"--tags", strings.Join(tags, ","), "--state-dir", stateDir, "--metrics-addr", metrics,
		"--min-interval", "200ms", "--max-interval", "1s", "--log-format", "json", "--log-level", "debug",
	}
}

func TestRunResumesAfterSIGTERMWithNothingLostOrRepeated(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// setup returns the sink flags and a function that lists the published media ids.
		setup func(t *testing.T, dir string) (args []string, published func() []string, dupMetric bool)
	}{
		{
			name: "file sink with the bolt checkpoint store",
			setup: func(t *testing.T, dir string) ([]string, func() []string, bool) {
				out := filepath.Join(dir, "events.ndjson")
				return []string{"--sink", "file", "--output", out}, func() []string { return testkit.FileMediaIDs(t, out) }, false
			},
		},
		{
			name: "jetstream sink with the jetstream-kv checkpoint store",
			setup: func(t *testing.T, dir string) ([]string, func() []string, bool) {
				ns := testkit.StartNATS(t)
				return []string{"--sink", "jetstream", "--nats-url", ns.ClientURL(), "--stream", "RESUME",
						"--checkpoint-store", "jetstream-kv", "--kv-bucket", "resume_cursors"},
					func() []string { return streamMediaIDs(t, ns.ClientURL(), "RESUME") }, true
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tags := []string{"sunset", "coffee", "tea"}
			sim := startCLISim(t, tags...)
			tokens := testkit.WriteTokens(t, cliTokens[0], cliTokens[1])
			dir := t.TempDir()
			sinkArgs, published, dupMetric := tt.setup(t, dir)
			metrics := testkit.FreeAddr(t)
			args := append(baseRunArgs(sim, tokens, filepath.Join(dir, "state"), metrics, tags...), sinkArgs...)

			// First life: wait for the first polls (the cursors start at the head), then post.
			procStart := time.Now()
			p1 := startCLI(t, args...)
			waitPolled(t, p1, metrics, len(tags))
			since := time.Now()
			rates := map[string]float64{"sunset": 8, "coffee": 3, "tea": 0.5}
			for tag, r := range rates {
				sim.SetRate(tag, r)
			}
			sim.Post("coffee", 80) // a burst of several pages
			testkit.Eventually(t, 30*time.Second, "events in the first life", func() bool { return len(published()) > 50 })
			if code := p1.stop(t); code != 0 {
				t.Fatalf("first run exited %d after SIGTERM, want 0", code)
			}
			firstLife := len(published())

			// While it is down, media keep arriving (the rates go on), including another burst.
			sim.Post("sunset", 70)

			// Second life on the same state: resume from the saved cursors; the posting stops once it polls.
			p2 := startCLI(t, args...)
			waitPolled(t, p2, metrics, len(tags))
			for tag := range rates {
				sim.SetRate(tag, 0)
			}
			want := simkit.ExpectedSince(sim, since)
			testkit.Eventually(t, 60*time.Second, "every posted media published", func() bool {
				got := map[string]bool{}
				for _, id := range published() {
					got[id] = true
				}
				for id := range want {
					if !got[id] {
						return false
					}
				}
				return true
			})
			if r, ok := fetchStatus(metrics); !ok || !r.Ready {
				t.Errorf("status not ready in the second life: %+v", r)
			}
			if dupMetric {
				// JetStream would hide a repeat from the stream; the publisher counts the ones it dropped.
				if n := metricValue(t, metrics, "tagstream_publisher_duplicates_total"); n != 0 {
					t.Errorf("the second life re-published %v events the stream already had", n)
				}
			}
			if code := p2.stop(t); code != 0 {
				t.Fatalf("second run exited %d after SIGTERM, want 0", code)
			}

			extras := startExtras(sim, procStart)
			seen := map[string]int{}
			ids := published()
			for _, id := range ids {
				seen[id]++
			}
			for id, n := range seen {
				if n > 1 {
					t.Errorf("media %s published %d times", id, n)
				}
				if !want[id] && !extras[id] {
					t.Errorf("media %s published but neither posted during the test nor created just before the start", id)
				}
			}
			for id := range want {
				if seen[id] == 0 {
					t.Errorf("media %s lost", id)
				}
			}
			if firstLife == 0 || firstLife >= len(ids) {
				t.Errorf("first life published %d of %d events: the test did not span a restart", firstLife, len(ids))
			}
			t.Logf("%d media posted, %d published (%d before the restart)", len(want), len(ids), firstLife)
		})
	}
}

func TestRunWaitsForABrokerAbsentAtStart(t *testing.T) {
	t.Parallel()
	p := newPipeline(t, pipelineOptions{Sink: sinkJetStream, NATSLater: true})
	p.launch()

	// The broker is away: tagstream stays up, says why on /readyz, logs each attempt, and does not poll.
	testkit.Eventually(t, 30*time.Second, "a failed attempt logged and /readyz saying why", func() bool {
		if !p.ts.proc.running() {
			t.Fatalf("tagstream exited with status %d while the broker was away; log:\n%s", p.ts.proc.exitCode(), p.ts.logTail(40))
		}
		code, body := p.ts.readyz()
		return code == http.StatusServiceUnavailable && strings.Contains(body, "not ready broker: cannot reach "+p.nats.URL()) &&
			p.ts.logContains("the broker cannot be reached; trying again")
	})
	hold(t.Context(), 20*time.Second) // the outage
	if !p.ts.proc.running() {
		t.Fatalf("tagstream exited with status %d while the broker was away; log:\n%s", p.ts.proc.exitCode(), p.ts.logTail(40))
	}
	if n := p.sim.Stats().Requests; n != 0 {
		t.Errorf("%d API requests while the broker was away: polling must wait for it", n)
	}
	if !p.ts.logContains("next_attempt_in=") {
		t.Errorf("the failed attempts do not say when the next one is:\n%s", p.ts.logTail(20))
	}

	// The broker starts on the port tagstream was given: it connects, polls, and every media arrives once; a
	// SIGTERM then exits 0 (finish checks both).
	p.nats.start()
	p.ts.waitReady(90 * time.Second)
	p.finish()
}

func TestRunStopsWhileTheBrokerIsDownAndLosesNothing(t *testing.T) {
	t.Parallel()
	tags := []string{"sunset", "tea"}
	sim := startCLISim(t, tags...)
	opts := testkit.NATSOptions(t)
	ns := testkit.RunNATS(t, opts) // opts.Port is now the server's port: a restart reuses it
	url := ns.ClientURL()

	tokens := testkit.WriteTokens(t, cliTokens[0], cliTokens[1])
	dir := t.TempDir()
	metrics := testkit.FreeAddr(t)
	args := append(baseRunArgs(sim, tokens, filepath.Join(dir, "state"), metrics, tags...),
		"--sink", "jetstream", "--nats-url", url, "--stream", "DOWN", "--shutdown-timeout", "2s")
	procStart := time.Now()
	p1 := startCLI(t, args...)
	waitPolled(t, p1, metrics, len(tags))
	since := time.Now()
	sim.Post("sunset", 10)
	first := simkit.ExpectedSince(sim, since)
	testkit.Eventually(t, 30*time.Second, "the first events", func() bool { return containsAll(streamMediaIDs(t, url, "DOWN"), first) })

	// The broker goes away; media keep arriving; readiness says why; a stop still ends the process.
	ns.Shutdown()
	ns.WaitForShutdown()
	sim.Post("tea", 7)
	sim.Post("sunset", 3)
	testkit.Eventually(t, 30*time.Second, "readyz to report the broker", func() bool {
		ts := &tagstream{metricsAddr: metrics}
		code, body := ts.readyz()
		return code == http.StatusServiceUnavailable && strings.Contains(body, "not ready broker")
	})
	if code := p1.stop(t); code != 0 {
		t.Errorf("run exited %d after SIGTERM with the broker down, want 0", code)
	}

	// The broker comes back on the same port and store; a restart publishes what was missed, once.
	testkit.RunNATS(t, opts)
	p2 := startCLI(t, args...)
	waitPolled(t, p2, metrics, len(tags))
	want := simkit.ExpectedSince(sim, since)
	testkit.Eventually(t, 60*time.Second, "every media in the stream", func() bool { return containsAll(streamMediaIDs(t, url, "DOWN"), want) })
	if code := p2.stop(t); code != 0 {
		t.Errorf("second run exited %d", code)
	}
	got := map[string]int{}
	for _, id := range streamMediaIDs(t, url, "DOWN") {
		got[id]++
	}
	for id := range want {
		if got[id] != 1 {
			t.Errorf("media %s is in the stream %d times", id, got[id])
		}
	}
	extras := startExtras(sim, procStart)
	for id := range got {
		if !want[id] && !extras[id] {
			t.Errorf("the stream holds media %s, neither posted during the test nor created just before the start", id)
		}
	}
}

func TestTokensNeverAppearUnderFaultsAndRevocation(t *testing.T) {
	t.Parallel()
	tags := []string{"sunset", "tea"}
	sim := startCLISim(t, tags...)
	tokens := testkit.WriteTokens(t, cliTokens[0], cliTokens[1], "client_id:"+cliTokens[2])
	dir := t.TempDir()
	metrics := testkit.FreeAddr(t)
	args := append(baseRunArgs(sim, tokens, filepath.Join(dir, "state"), metrics, tags...),
		"--sink", "file", "--output", filepath.Join(dir, "out.ndjson"), "--request-timeout", "1s")
	p := startCLI(t, args...)
	waitPolled(t, p, metrics, len(tags))
	sim.SetFaults(testenv.Faults{Error500: 0.15, Down503HTML: 0.1, Down503Envelope: 0.1, RateLimit429: 0.1, Reset: 0.1,
		Truncated: 0.1, Slow: 0.05, SlowDelay: 1500 * time.Millisecond})
	sim.SetRate("sunset", 5)
	sim.RevokeToken(cliTokens[1])
	sim.Down(500 * time.Millisecond)
	testkit.Eventually(t, 60*time.Second, "failed requests of every kind", func() bool {
		st := sim.Stats()
		return st.ByOutcome["fault_Reset"] > 0 && st.ByOutcome["fault_Truncated"] > 0 && st.ByOutcome["auth_error"] > 0
	})
	for _, path := range []string{"/metrics", "/status", "/readyz"} {
		resp, err := http.Get("http://" + metrics + path)
		if err != nil {
			t.Fatal(err)
		}
		var body bytes.Buffer
		body.ReadFrom(resp.Body)
		resp.Body.Close()
		assertNoSecrets(t, path, body.String())
	}
	if code := p.stop(t); code != 0 {
		t.Errorf("run exited %d", code)
	}
	if !strings.Contains(p.stderr.String(), "level") {
		t.Errorf("no log at all: the scan for tokens proves nothing:\n%s", p.stderr.String())
	}
}

// kafkaClusters returns the Kafka clusters to test against: an in-process kfake cluster and the real broker of the
// test command.
func kafkaClusters(t *testing.T) map[string]string {
	t.Helper()
	return map[string]string{"kfake": strings.Join(testkit.FakeKafka(t), ","), "apache kafka": env.KafkaBrokers}
}

func TestRunPublishesToKafkaAndTailReadsIt(t *testing.T) {
	t.Parallel()
	for name, brokers := range kafkaClusters(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tags := []string{"sunset", "coffee"}
			sim := startCLISim(t, tags...)
			tokens := testkit.WriteTokens(t, cliTokens[0])
			dir := t.TempDir()
			topic := topicName(t)
			kafkaArgs := []string{"--sink", "kafka", "--kafka-brokers", brokers, "--kafka-topic", topic}
			metrics := testkit.FreeAddr(t)
			args := append(baseRunArgs(sim, tokens, filepath.Join(dir, "state"), metrics, tags...), kafkaArgs...)
			args = append(args, "--kafka-create-topic", "--kafka-partitions", "3", "--kafka-compression", "lz4")
			procStart := time.Now()
			p := startCLI(t, args...)
			waitPolled(t, p, metrics, len(tags))
			since := time.Now()
			sim.Post("sunset", 45)
			sim.Post("coffee", 4)
			want := simkit.ExpectedSince(sim, since)

			tail := func(extra ...string) []string {
				t.Helper()
				r := runCLI(t, 60*time.Second, append(append([]string{"tail"}, kafkaArgs...), extra...)...)
				if r.code != 0 {
					t.Fatalf("tail exited %d: %s", r.code, r.stderr)
				}
				return strings.Split(strings.TrimSpace(r.stdout), "\n")
			}
			readAll := func() map[string]int {
				t.Helper()
				got := map[string]int{}
				for _, l := range tail("--from-beginning", "--json", "--idle", "2s") {
					if l == "" {
						continue
					}
					id, err := unmarshalEventLine([]byte(l))
					if err != nil {
						t.Fatalf("tail --json printed %q: %v", l, err)
					}
					got[id]++
				}
				return got
			}
			testkit.Eventually(t, 60*time.Second, "every event in Kafka", func() bool {
				got := readAll()
				for id := range want {
					if got[id] == 0 {
						return false
					}
				}
				return true
			})
			if code := p.stop(t); code != 0 {
				t.Fatalf("run exited %d after SIGTERM", code)
			}
			got := readAll()
			extras := startExtras(sim, procStart)
			tagOf := map[string]string{}
			for _, tr := range sim.GroundTruth() {
				tagOf[tr.MediaID] = tr.Tag
			}
			wantCoffee := 4
			for id, n := range got {
				switch {
				case want[id]:
				case extras[id]:
					if tagOf[id] == "coffee" {
						wantCoffee += n
					}
				default:
					t.Errorf("media %s read from Kafka, neither posted during the test nor created just before the start", id)
				}
			}
			for id := range want {
				if got[id] != 1 {
					t.Errorf("media %s read %d times from Kafka", id, got[id])
				}
			}
			coffee := tail("--from-beginning", "--tag", "coffee", "--idle", "2s")
			if len(coffee) != wantCoffee {
				t.Errorf("tail --tag coffee printed %d lines, want %d:\n%s", len(coffee), wantCoffee, strings.Join(coffee, "\n"))
			}
			for _, l := range coffee {
				if !strings.Contains(l, "#coffee") {
					t.Errorf("tail --tag coffee printed %q", l)
				}
			}
			r := runCLI(t, 60*time.Second, append([]string{"check", "--api-url", sim.URL(), "--ca-file", sim.CAFile(),
				"--tags", "sunset", "--tokens-file", tokens, "--state-dir", dir}, kafkaArgs...)...)
			if r.code != 0 || !strings.Contains(r.stdout, "topic "+topic+" has 3 partitions") {
				t.Errorf("check exited %d:\n%s%s", r.code, r.stdout, r.stderr)
			}
		})
	}
}

func TestRunPublishesToCoreNATSFromAConfigFile(t *testing.T) {
	t.Parallel()
	sim := startCLISim(t, "sunset", "tea")
	ns := testkit.StartNATS(t)
	tokens := testkit.WriteTokens(t, cliTokens[0])
	dir := t.TempDir()
	metrics := testkit.FreeAddr(t)
	cfgFile := filepath.Join(dir, "tagstream.yaml")
	yaml := fmt.Sprintf("api-url: %s\nca-file: %s\ntags: [sunset, tea]\ntokens-file: %s\nsink: nats\nnats-url: %s\n"+
		"subject-prefix: core.media\nstate-dir: %s\nmetrics-addr: %s\nmin-interval: 200ms\nmax-interval: 1s\n",
		sim.URL(), sim.CAFile(), tokens, ns.ClientURL(), filepath.Join(dir, "state"), metrics)
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	// Core NATS keeps nothing: the reader subscribes first.
	subs := ns.NumSubscriptions()
	tail := startCLI(t, "tail", "--config", cfgFile, "--tag", "tea", "--max", "5")
	testkit.Eventually(t, 30*time.Second, "the tail subscription", func() bool { return ns.NumSubscriptions() > subs })

	p := startCLI(t, "run", "--config", cfgFile)
	waitPolled(t, p, metrics, 2)
	sim.Post("sunset", 10)
	sim.Post("tea", 5)
	testkit.Receive(t, tail.done, 60*time.Second, "tail to get 5 events")
	out := tail.stdout.String()
	if tail.cmd.ProcessState.ExitCode() != 0 || strings.Count(out, "  #tea ") != 5 || strings.Count(out, "\n") != 5 {
		t.Errorf("tail exited %d with:\n%s", tail.cmd.ProcessState.ExitCode(), out)
	}
	if code := p.stop(t); code != 0 {
		t.Errorf("run exited %d", code)
	}
}

func TestDemoEndsWithASummaryAndNothingMissing(t *testing.T) {
	t.Parallel()
	r := runCLI(t, 120*time.Second, "demo", "--duration", "10s", "--seed", "7")
	if r.code != 0 {
		t.Fatalf("demo exited %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	for _, w := range []string{"Summary", "missing              0", "duplicates           0", "post to event", "budget-left="} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("demo output does not contain %q:\n%s", w, r.stdout)
		}
	}
}

func TestTheBinaryStatesWhatItEmbeds(t *testing.T) {
	t.Parallel()
	r := runCLI(t, 30*time.Second, "version")
	if r.code != 0 {
		t.Fatalf("version exited %d: %s", r.code, r.stderr)
	}
	for _, w := range []string{"tagstream ", "go\tgo1.", "mod\tgithub.com/tagstream/tagstream", "dep\tgithub.com/nats-io/nats.go\tv1.",
		"dep\tgithub.com/segmentio/kafka-go\tv0.", "dep\tgo.etcd.io/bbolt\tv1."} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("version does not print %q:\n%s", w, r.stdout)
		}
	}
	if raceBin && !strings.Contains(r.stdout, "build\t-race=true") {
		t.Errorf("version of a -race build does not say so:\n%s", r.stdout)
	}
}
