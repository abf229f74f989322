package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tagstream/tagstream/internal/status"
	"github.com/tagstream/tagstream/testenv"
)

// binary is the tagstream command built once for all tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tagstream-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "tagstream")
	buildArgs := []string{"build", "-o", binary}
	if raceEnabled {
		buildArgs = append(buildArgs, "-race")
	}
	build := exec.Command("go", append(buildArgs, ".")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build tagstream:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// secretTokens are the tokens of the tests; none of them may ever appear in any output.
var secretTokens = []string{"1111111.aaaasecrettokenaaaa0001", "2222222.bbbbsecrettokenbbbb0002", "3333333.ccccsecrettokencccc0003"}

// cleanEnv is the environment of the child processes: the test's own minus every TAGSTREAM_* variable (the
// test command exports broker addresses that must not leak into these tests).
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TAGSTREAM_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// result is the outcome of one finished command.
type result struct {
	code           int
	stdout, stderr string
}

// assertNoSecrets fails when any test token appears in text.
func assertNoSecrets(t *testing.T, what, text string) {
	t.Helper()
	for _, tok := range secretTokens {
		if strings.Contains(text, tok) || strings.Contains(text, tok[8:]) {
			t.Errorf("%s contains a token:\n%s", what, text)
		}
	}
}

// runCmd runs the binary to completion (killed after timeout) and checks that no token was printed.
func runCmd(t *testing.T, timeout time.Duration, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = cleanEnv(env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("tagstream %v did not finish within %s; stderr:\n%s", args, timeout, r.stderr)
	}
	assertNoSecrets(t, "stdout", r.stdout)
	assertNoSecrets(t, "stderr", r.stderr)
	return r
}

// proc is a tagstream process running in the background.
type proc struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	stdout bytes.Buffer
	stderr bytes.Buffer
	done   chan struct{}
	err    error
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func startCmd(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(binary, args...), done: make(chan struct{})}
	p.cmd.Env = cleanEnv(env...)
	p.cmd.Stdout = lockedWriter{&p.mu, &p.stdout}
	p.cmd.Stderr = lockedWriter{&p.mu, &p.stderr}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			_, stderr := p.output()
			if len(stderr) > 8000 {
				stderr = "..." + stderr[len(stderr)-8000:]
			}
			t.Logf("stderr of tagstream %s:\n%s", args[0], stderr)
		}
	})
	return p
}

func (p *proc) output() (string, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stdout.String(), p.stderr.String()
}

// stop sends SIGTERM and returns the exit status; the process must end within a generous bound.
func (p *proc) stop(t *testing.T) int {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("signal: %v", err)
	}
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		_, stderr := p.output()
		t.Fatalf("tagstream did not stop after SIGTERM; stderr:\n%s", stderr)
	}
	stdout, stderr := p.output()
	assertNoSecrets(t, "stdout", stdout)
	assertNoSecrets(t, "stderr", stderr)
	return p.cmd.ProcessState.ExitCode()
}

// startSim starts the simulator over HTTPS with the given tags (all still: rate 0 until the test sets one).
func startSim(t *testing.T, tags ...string) *testenv.Server {
	t.Helper()
	var tcs []testenv.TagConfig
	for _, tag := range tags {
		tcs = append(tcs, testenv.TagConfig{Name: tag, Initial: 25})
	}
	sim, err := testenv.New(testenv.Config{
		CertDir:      t.TempDir(),
		Tokens:       secretTokens[:2],
		ClientIDs:    secretTokens[2:],
		Cursors:      testenv.CursorOpaque,
		InclusiveMin: true,
		Seed:         42,
		Tags:         tcs,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	return sim
}

// startNATS starts an in-process nats-server with JetStream; the returned dir is its store.
func startNATS(t *testing.T) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(ns.Shutdown)
	return ns
}

// writeTokens writes a tokens file readable only by its owner.
func writeTokens(t *testing.T, lines ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "credentials")
	if err := os.WriteFile(p, []byte("# test tokens\n"+strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// deadAddr returns a loopback address nobody listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	return freeAddr(t)
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

// waitFor polls cond every 50 ms until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitPolled waits until /status shows every tag polled successfully (its cursor set at the head).
func waitPolled(t *testing.T, p *proc, addr string, tags int) {
	t.Helper()
	waitFor(t, 60*time.Second, "the first poll of every tag", func() bool {
		select {
		case <-p.done:
			_, stderr := p.output()
			t.Fatalf("tagstream exited early: %v\n%s", p.err, stderr)
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

// readNDJSON returns the media ids of the events in an NDJSON file, in order.
func readNDJSON(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ids []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e struct {
			Type string `json:"type"`
			Data struct {
				MediaID string `json:"media_id"`
			} `json:"data"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("bad line in %s: %v", path, err)
		}
		if e.Data.MediaID != "" {
			ids = append(ids, e.Data.MediaID)
		}
	}
	return ids
}

// expectedSince returns the media ids posted at or after since.
func expectedSince(sim *testenv.Server, since time.Time) map[string]bool {
	want := map[string]bool{}
	for _, tr := range sim.GroundTruth() {
		if !tr.VisibleAt.Before(since) && tr.DeletedAt.IsZero() {
			want[tr.MediaID] = true
		}
	}
	return want
}

func baseRunArgs(sim *testenv.Server, tokens, stateDir, metrics string, tags ...string) []string {
	return []string{"run",
		"--api-url", sim.URL(), "--ca-file", sim.CAFile(), "--tokens-file", tokens,
		"--tags", strings.Join(tags, ","), "--state-dir", stateDir, "--metrics-addr", metrics,
		"--min-interval", "200ms", "--max-interval", "1s", "--log-format", "json", "--log-level", "debug",
	}
}

// streamMediaIDs returns the media ids of every event stored in a JetStream stream, in stream order.
func streamMediaIDs(t *testing.T, url, stream string) []string {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return nil
	}
	info, err := st.Info(ctx)
	if err != nil || info.State.Msgs == 0 {
		return nil
	}
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for uint64(len(ids)) < info.State.Msgs {
		batch, err := cons.Fetch(int(info.State.Msgs)-len(ids), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			var e struct {
				Data struct {
					MediaID string `json:"media_id"`
				} `json:"data"`
			}
			json.Unmarshal(m.Data(), &e)
			ids = append(ids, e.Data.MediaID)
		}
		if n == 0 {
			t.Fatalf("stream %s: fetched %d of %d messages", stream, len(ids), info.State.Msgs)
		}
	}
	return ids
}

// metricValue returns the sum of a metric's samples on /metrics.
func metricValue(t *testing.T, addr, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, name+" ") || strings.HasPrefix(line, name+"{") {
			var v float64
			fmt.Sscanf(line[strings.LastIndexByte(line, ' ')+1:], "%g", &v)
			sum += v
		}
	}
	return sum
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
				return []string{"--sink", "file", "--output", out}, func() []string { return readNDJSON(t, out) }, false
			},
		},
		{
			name: "jetstream sink with the jetstream-kv checkpoint store",
			setup: func(t *testing.T, dir string) ([]string, func() []string, bool) {
				ns := startNATS(t)
				return []string{"--sink", "jetstream", "--nats-url", ns.ClientURL(), "--stream", "RESUME",
						"--checkpoint-store", "jetstream-kv", "--kv-bucket", "resume_cursors"},
					func() []string { return streamMediaIDs(t, ns.ClientURL(), "RESUME") }, true
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tags := []string{"sunset", "coffee", "tea"}
			sim := startSim(t, tags...)
			tokens := writeTokens(t, secretTokens[0], secretTokens[1])
			dir := t.TempDir()
			sinkArgs, published, dupMetric := tt.setup(t, dir)
			metrics := freeAddr(t)
			args := append(baseRunArgs(sim, tokens, filepath.Join(dir, "state"), metrics, tags...), sinkArgs...)

			// First life: wait for the first polls (the cursors start at the head), then post.
			p1 := startCmd(t, nil, args...)
			waitPolled(t, p1, metrics, len(tags))
			since := time.Now()
			rates := map[string]float64{"sunset": 8, "coffee": 3, "tea": 0.5}
			for tag, r := range rates {
				sim.SetRate(tag, r)
			}
			sim.Post("coffee", 80) // a burst of several pages
			waitFor(t, 30*time.Second, "events in the first life", func() bool { return len(published()) > 50 })
			if code := p1.stop(t); code != 0 {
				t.Fatalf("first run exited %d after SIGTERM, want 0", code)
			}
			firstLife := len(published())

			// While it is down, media keep arriving, including another burst.
			time.Sleep(time.Second)
			sim.Post("sunset", 70)

			// Second life on the same state: resume from the saved cursors.
			p2 := startCmd(t, nil, args...)
			waitPolled(t, p2, metrics, len(tags))
			time.Sleep(time.Second)
			for tag := range rates {
				sim.SetRate(tag, 0)
			}
			want := expectedSince(sim, since)
			waitFor(t, 60*time.Second, "every posted media published", func() bool {
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

			ids := published()
			seen := map[string]int{}
			for _, id := range ids {
				seen[id]++
			}
			for id, n := range seen {
				if n > 1 {
					t.Errorf("media %s published %d times", id, n)
				}
				if !want[id] {
					t.Errorf("media %s published but not posted during the test", id)
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

func TestASecondRunOnTheSameStateDirectoryExitsTwo(t *testing.T) {
	t.Parallel()
	sim := startSim(t, "sunset")
	tokens := writeTokens(t, secretTokens[0])
	dir := t.TempDir()
	metrics := freeAddr(t)
	args := append(baseRunArgs(sim, tokens, filepath.Join(dir, "state"), metrics, "sunset"), "--sink", "stdout")
	p := startCmd(t, nil, args...)
	waitPolled(t, p, metrics, 1)
	args2 := append(baseRunArgs(sim, tokens, filepath.Join(dir, "state"), freeAddr(t), "sunset"), "--sink", "stdout")
	r := runCmd(t, 30*time.Second, nil, args2...)
	if r.code != 2 || !strings.Contains(r.stderr, "state-dir") || !strings.Contains(r.stderr, "another tagstream") {
		t.Errorf("second run exited %d, want 2 naming state-dir:\n%s", r.code, r.stderr)
	}
	if code := p.stop(t); code != 0 {
		t.Errorf("first run exited %d", code)
	}
}

func TestRunExitsOneWhenEveryTokenIsRevoked(t *testing.T) {
	t.Parallel()
	sim := startSim(t, "sunset")
	sim.RevokeToken(secretTokens[0])
	sim.RevokeToken(secretTokens[1])
	tokens := writeTokens(t, secretTokens[0], secretTokens[1])
	dir := t.TempDir()
	args := append(baseRunArgs(sim, tokens, filepath.Join(dir, "state"), freeAddr(t), "sunset"), "--sink", "stdout")
	r := runCmd(t, 60*time.Second, nil, args...)
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\nstderr: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "retired") {
		t.Errorf("stderr does not say the tokens were retired:\n%s", r.stderr)
	}
}

func TestRunPublishesToJetStream(t *testing.T) {
	t.Parallel()
	tags := []string{"sunset", "new_york"}
	sim := startSim(t, tags...)
	ns := startNATS(t)
	tokens := writeTokens(t, secretTokens[0], "client_id:"+secretTokens[2])
	dir := t.TempDir()
	metrics := freeAddr(t)
	args := append(baseRunArgs(sim, tokens, filepath.Join(dir, "state"), metrics, tags...),
		"--sink", "jetstream", "--nats-url", ns.ClientURL(), "--subject-prefix", "ig.media", "--stream", "IGTEST")
	p := startCmd(t, nil, args...)
	waitPolled(t, p, metrics, len(tags))
	since := time.Now()
	sim.Post("sunset", 40)
	sim.Post("new_york", 5)
	want := expectedSince(sim, since)

	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	waitFor(t, 60*time.Second, "every event in the stream", func() bool {
		st, err := js.Stream(ctx, "IGTEST")
		return err == nil && st.CachedInfo().State.Msgs >= uint64(len(want))
	})

	// The endpoints: ready, metrics of poller and publisher, status with tags and tokens but no token.
	for _, path := range []string{"/readyz", "/metrics", "/healthz"} {
		resp, err := http.Get("http://" + metrics + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s answered %d: %s", path, resp.StatusCode, body)
		}
		assertNoSecrets(t, path, string(body))
		if path == "/metrics" && !bytes.Contains(body, []byte("tagstream_")) {
			t.Errorf("/metrics has no tagstream_ metric")
		}
	}
	r, _ := fetchStatus(metrics)
	if len(r.Tokens) != 2 || r.Tokens[1].Fingerprint == "" || !r.Tokens[1].ClientID {
		t.Errorf("status tokens = %+v", r.Tokens)
	}

	// tail reads the events back, filtered by tag.
	res := runCmd(t, 30*time.Second, nil, "tail", "--nats-url", ns.ClientURL(), "--subject-prefix", "ig.media",
		"--from-beginning", "--tag", "new_york", "--json", "--idle", "2s")
	if res.code != 0 {
		t.Fatalf("tail exited %d: %s", res.code, res.stderr)
	}
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if len(lines) != 5 {
		t.Errorf("tail --tag new_york printed %d events, want 5:\n%s", len(lines), res.stdout)
	}
	for _, l := range lines {
		if !strings.Contains(l, `"subject":"new_york"`) {
			t.Errorf("tail printed an event of another tag: %s", l)
		}
	}
	res = runCmd(t, 30*time.Second, nil, "tail", "--nats-url", ns.ClientURL(), "--subject-prefix", "ig.media",
		"--from-beginning", "--max", "3")
	if res.code != 0 || strings.Count(res.stdout, "\n") != 3 || !strings.Contains(res.stdout, "#sunset") {
		t.Errorf("tail --max 3 exited %d with:\n%s\n%s", res.code, res.stdout, res.stderr)
	}

	if code := p.stop(t); code != 0 {
		_, stderr := p.output()
		t.Fatalf("exit %d after SIGTERM; stderr:\n%s", code, stderr)
	}
	// Every posted media is in the stream exactly once.
	cons, err := js.OrderedConsumer(ctx, "IGTEST", jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	batch, err := cons.FetchNoWait(10000)
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		var e struct {
			Data struct {
				MediaID string `json:"media_id"`
			} `json:"data"`
		}
		json.Unmarshal(m.Data(), &e)
		got[e.Data.MediaID]++
	}
	for id := range want {
		if got[id] != 1 {
			t.Errorf("media %s is in the stream %d times", id, got[id])
		}
	}
}

func TestBadConfigurationExitsWithStatusTwo(t *testing.T) {
	t.Parallel()
	sim := startSim(t, "sunset")
	good := writeTokens(t, secretTokens[0])
	shared := writeTokens(t, secretTokens[0])
	os.Chmod(shared, 0o644)
	empty := writeTokens(t)
	dir := t.TempDir()
	unknownKey := filepath.Join(dir, "unknown.yaml")
	os.WriteFile(unknownKey, []byte("tags: [sunset]\nsink: stdout\npoll-every: 5s\n"), 0o600)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	common := func(extra ...string) []string {
		return append([]string{"run", "--api-url", sim.URL(), "--ca-file", sim.CAFile(), "--state-dir", filepath.Join(dir, "state")}, extra...)
	}
	tests := []struct {
		name string
		args []string
		env  []string
		want []string
	}{
		{"an unknown key in the file names the key and its line", common("--config", unknownKey, "--tokens-file", good), nil, []string{"poll-every", "line 3", "unknown key"}},
		{"a missing config file", common("--config", filepath.Join(dir, "none.yaml")), nil, []string{"config", "no such file"}},
		{"an unknown flag", common("--token", "x"), nil, []string{"flag provided but not defined: -token"}},
		{"a bad API URL", []string{"run", "--api-url", "ftp://x/v1", "--tags", "a", "--tokens-file", good, "--sink", "stdout"}, nil, []string{"api-url", "https://"}},
		{"plain http to a remote host", []string{"run", "--api-url", "http://api.example.com/v1", "--tags", "a", "--tokens-file", good, "--sink", "stdout"}, nil, []string{"api-url", "plain http"}},
		{"no tokens", common("--tags", "sunset", "--sink", "stdout"), nil, []string{"tokens-file", "no tokens"}},
		{"an empty tokens file", common("--tags", "sunset", "--sink", "stdout", "--tokens-file", empty), nil, []string{"tokens-file", "holds no token"}},
		{"a tokens file others can read", common("--tags", "sunset", "--sink", "stdout", "--tokens-file", shared), nil, []string{"tokens-file", "chmod 600"}},
		{"a bad token in TAGSTREAM_TOKENS", common("--tags", "sunset", "--sink", "stdout"), []string{"TAGSTREAM_TOKENS=abc def"}, []string{"TAGSTREAM_TOKENS", "value not shown"}},
		{"no tags", common("--tokens-file", good, "--sink", "stdout"), nil, []string{"tags", "no tags"}},
		{"an empty tag", common("--tags", "sunset,,tea", "--tokens-file", good, "--sink", "stdout"), nil, []string{"tags", "empty tag"}},
		{"an invalid tag", common("--tags", "new york", "--tokens-file", good, "--sink", "stdout"), nil, []string{"tags", "only letters"}},
		{"an invalid tag from the environment", common("--tokens-file", good, "--sink", "stdout"), []string{"TAGSTREAM_TAGS=a/b"}, []string{"TAGSTREAM_TAGS", "only letters"}},
		{"a bad duration", common("--tags", "sunset", "--tokens-file", good, "--sink", "stdout", "--min-interval", "soon"), nil, []string{"min-interval", "not a duration"}},
		{"an unknown sink", common("--tags", "sunset", "--tokens-file", good, "--sink", "kinesis"), nil, []string{"sink", "not one of"}},
		{"a NATS server that cannot be reached", common("--tags", "sunset", "--tokens-file", good, "--nats-url", "nats://"+deadAddr(t)), nil, []string{"nats-url", "connection refused"}},
		{"a Kafka broker that cannot be reached", common("--tags", "sunset", "--tokens-file", good, "--sink", "kafka", "--kafka-brokers", deadAddr(t)), nil, []string{"kafka-brokers", "connection refused"}},
		{"a metrics address in use", common("--tags", "sunset", "--tokens-file", good, "--sink", "stdout", "--metrics-addr", busy.Addr().String()), nil, []string{"metrics-addr", "address already in use"}},
		{"a CA file that is not PEM", common("--tags", "sunset", "--tokens-file", good, "--sink", "stdout", "--ca-file", good), nil, []string{"ca-file", "no PEM"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCmd(t, 30*time.Second, tt.env, tt.args...)
			if r.code != 2 {
				t.Fatalf("exit status %d, want 2\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr does not contain %q:\n%s", w, r.stderr)
				}
			}
			if tt.name != "an unknown flag" && strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
				t.Errorf("the message spans several lines:\n%s", r.stderr)
			}
		})
	}
	if st := sim.Stats(); st.Requests != 0 {
		t.Errorf("a bad configuration made %d API requests; validation must come before any work", st.Requests)
	}
}

func TestCheckReachesTheAPIAndTheBroker(t *testing.T) {
	t.Parallel()
	sim := startSim(t, "sunset")
	ns := startNATS(t)
	good := writeTokens(t, secretTokens[0])
	revoked := writeTokens(t, secretTokens[1])
	sim.RevokeToken(secretTokens[1])
	dir := t.TempDir()
	args := func(tokens string, extra ...string) []string {
		return append([]string{"check", "--api-url", sim.URL(), "--ca-file", sim.CAFile(), "--tags", "sunset",
			"--tokens-file", tokens, "--state-dir", dir, "--nats-url", ns.ClientURL()}, extra...)
	}
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     []string
	}{
		{"a good configuration passes every check", args(good), 0, []string{"ok    config", "ok    api", "budget", "of 5000 left", "ok    sink", "run creates stream", "ok    state"}},
		{"a revoked token fails the API check", args(revoked), 1, []string{"FAIL  api", "invalid or revoked", "ok    sink"}},
		{"a stream that must exist but does not fails the sink check", args(good, "--create-stream=false"), 1, []string{"ok    api", "FAIL  sink", "create-stream is off"}},
		{"the file sink needs no broker", args(good, "--sink", "file", "--output", filepath.Join(dir, "out.ndjson")), 0, []string{"ok    sink: events will be appended"}},
		{"an invalid configuration exits 2", args(good, "--page-size", "100"), 2, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCmd(t, 60*time.Second, nil, tt.args...)
			if r.code != tt.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, tt.wantCode, r.stdout, r.stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("stdout does not contain %q:\n%s", w, r.stdout)
				}
			}
		})
	}
	// check publishes nothing.
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	names := js.StreamNames(context.Background())
	for n := range names.Name() {
		t.Errorf("check created stream %s", n)
	}
}

func TestDemoEndsWithASummaryAndNothingMissing(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("the demo runs for about 15 seconds")
	}
	r := runCmd(t, 120*time.Second, nil, "demo", "--duration", "10s", "--seed", "7")
	if r.code != 0 {
		t.Fatalf("demo exited %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	for _, w := range []string{"Summary", "missing              0", "duplicates           0", "post to event", "budget-left="} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("demo output does not contain %q:\n%s", w, r.stdout)
		}
	}
	var consumed, posted int
	for _, l := range strings.Split(r.stdout, "\n") {
		if strings.Contains(l, "events consumed") {
			fmt.Sscanf(strings.TrimSpace(l), "events consumed %d (of %d", &consumed, &posted)
		}
	}
	if consumed == 0 || consumed != posted {
		t.Errorf("demo consumed %d of %d posted media", consumed, posted)
	}
}

func TestVersionAndHelp(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		args     []string
		wantCode int
		stdout   []string
	}{
		{"version prints the version", []string{"version"}, 0, []string{"tagstream ", "go1."}},
		{"help lists the commands", []string{"--help"}, 0, []string{"demo", "run", "tail", "check", "version"}},
		{"run --help lists its flags", []string{"run", "--help"}, 0, []string{"-api-url", "-tokens-file", "-requests-per-hour", "default 5000", "-sink", "-kafka-brokers", "-state-dir", "-metrics-addr", "-ca-file", "-subject-prefix", "-nats-url", "-kafka-topic", "-config"}},
		{"demo --help explains the demo", []string{"demo", "--help"}, 0, []string{"-duration", "simulator"}},
		{"tail --help lists its flags", []string{"tail", "--help"}, 0, []string{"-tag", "-from-beginning", "-json"}},
		{"check --help explains the exit status", []string{"check", "--help"}, 0, []string{"Exit status"}},
		{"an unknown command is a usage error", []string{"frobnicate"}, 2, nil},
		{"no command is a usage error", nil, 2, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCmd(t, 30*time.Second, nil, tt.args...)
			if r.code != tt.wantCode {
				t.Fatalf("exit %d, want %d: %s %s", r.code, tt.wantCode, r.stdout, r.stderr)
			}
			for _, w := range tt.stdout {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("stdout does not contain %q:\n%s", w, r.stdout)
				}
			}
		})
	}
}

// kafkaClusters returns the Kafka clusters to test against: always an in-process kfake cluster, and the real
// broker of the test command when TAGSTREAM_KAFKA_BROKERS is set (required when TAGSTREAM_INTEGRATION=1).
func kafkaClusters(t *testing.T) map[string]string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	out := map[string]string{"kfake": strings.Join(c.ListenAddrs(), ",")}
	if real := os.Getenv("TAGSTREAM_KAFKA_BROKERS"); real != "" {
		// Other packages' tests may restart the shared broker: wait until it answers.
		waitFor(t, 90*time.Second, "the Kafka broker "+real, func() bool {
			c, err := net.DialTimeout("tcp", strings.Split(real, ",")[0], time.Second)
			if err == nil {
				c.Close()
			}
			return err == nil
		})
		out["apache kafka"] = real
	} else if os.Getenv("TAGSTREAM_INTEGRATION") == "1" {
		t.Error("TAGSTREAM_INTEGRATION=1 but TAGSTREAM_KAFKA_BROKERS is not set")
	}
	return out
}

func TestRunPublishesToKafkaAndTailReadsIt(t *testing.T) {
	t.Parallel()
	for name, brokers := range kafkaClusters(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tags := []string{"sunset", "coffee"}
			sim := startSim(t, tags...)
			tokens := writeTokens(t, secretTokens[0])
			dir := t.TempDir()
			topic := fmt.Sprintf("tagstream-test-%d", time.Now().UnixNano())
			kafkaArgs := []string{"--sink", "kafka", "--kafka-brokers", brokers, "--kafka-topic", topic}
			metrics := freeAddr(t)
			args := append(baseRunArgs(sim, tokens, filepath.Join(dir, "state"), metrics, tags...), kafkaArgs...)
			args = append(args, "--kafka-create-topic", "--kafka-partitions", "3", "--kafka-compression", "lz4")
			p := startCmd(t, nil, args...)
			waitPolled(t, p, metrics, len(tags))
			since := time.Now()
			sim.Post("sunset", 45)
			sim.Post("coffee", 4)
			want := expectedSince(sim, since)
			waitFor(t, 60*time.Second, "every event acknowledged", func() bool {
				return metricValue(t, metrics, "tagstream_media_published_total") >= float64(len(want))
			})
			if code := p.stop(t); code != 0 {
				t.Fatalf("run exited %d after SIGTERM", code)
			}

			tail := func(extra ...string) []string {
				t.Helper()
				r := runCmd(t, 60*time.Second, nil, append(append([]string{"tail"}, kafkaArgs...), extra...)...)
				if r.code != 0 {
					t.Fatalf("tail exited %d: %s", r.code, r.stderr)
				}
				return strings.Split(strings.TrimSpace(r.stdout), "\n")
			}
			lines := tail("--from-beginning", "--json", "--idle", "2s")
			got := map[string]int{}
			for _, l := range lines {
				var e struct {
					ID      string `json:"id"`
					Subject string `json:"subject"`
					Data    struct {
						MediaID string `json:"media_id"`
					} `json:"data"`
				}
				if err := json.Unmarshal([]byte(l), &e); err != nil {
					t.Fatalf("tail --json printed %q: %v", l, err)
				}
				got[e.Data.MediaID]++
			}
			for id := range want {
				if got[id] != 1 {
					t.Errorf("media %s read %d times from Kafka", id, got[id])
				}
			}
			coffee := tail("--from-beginning", "--tag", "coffee", "--idle", "2s")
			if len(coffee) != 4 {
				t.Errorf("tail --tag coffee printed %d lines, want 4:\n%s", len(coffee), strings.Join(coffee, "\n"))
			}
			for _, l := range coffee {
				if !strings.Contains(l, "#coffee") {
					t.Errorf("tail --tag coffee printed %q", l)
				}
			}
			r := runCmd(t, 60*time.Second, nil, append([]string{"check", "--api-url", sim.URL(), "--ca-file", sim.CAFile(),
				"--tags", "sunset", "--tokens-file", tokens, "--state-dir", dir}, kafkaArgs...)...)
			if r.code != 0 || !strings.Contains(r.stdout, "topic "+topic+" has 3 partitions") {
				t.Errorf("check exited %d:\n%s%s", r.code, r.stdout, r.stderr)
			}
		})
	}
}

func TestRunPublishesToCoreNATSFromAConfigFile(t *testing.T) {
	t.Parallel()
	sim := startSim(t, "sunset", "tea")
	ns := startNATS(t)
	tokens := writeTokens(t, secretTokens[0])
	dir := t.TempDir()
	metrics := freeAddr(t)
	cfgFile := filepath.Join(dir, "tagstream.yaml")
	yaml := fmt.Sprintf("api-url: %s\nca-file: %s\ntags: [sunset, tea]\ntokens-file: %s\nsink: nats\nnats-url: %s\n"+
		"subject-prefix: core.media\nstate-dir: %s\nmetrics-addr: %s\nmin-interval: 200ms\nmax-interval: 1s\n",
		sim.URL(), sim.CAFile(), tokens, ns.ClientURL(), filepath.Join(dir, "state"), metrics)
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	// Core NATS keeps nothing: the reader subscribes first.
	subs := ns.NumSubscriptions()
	tail := startCmd(t, nil, "tail", "--config", cfgFile, "--tag", "tea", "--max", "5")
	waitFor(t, 30*time.Second, "the tail subscription", func() bool { return ns.NumSubscriptions() > subs })

	p := startCmd(t, nil, "run", "--config", cfgFile)
	waitPolled(t, p, metrics, 2)
	sim.Post("sunset", 10)
	sim.Post("tea", 5)
	select {
	case <-tail.done:
	case <-time.After(60 * time.Second):
		t.Fatal("tail did not get 5 events")
	}
	out, _ := tail.output()
	if tail.cmd.ProcessState.ExitCode() != 0 || strings.Count(out, "  #tea ") != 5 || strings.Count(out, "\n") != 5 {
		t.Errorf("tail exited %d with:\n%s", tail.cmd.ProcessState.ExitCode(), out)
	}
	if code := p.stop(t); code != 0 {
		t.Errorf("run exited %d", code)
	}
}

func TestRunStopsWhileTheBrokerIsDownAndLosesNothing(t *testing.T) {
	t.Parallel()
	tags := []string{"sunset", "tea"}
	sim := startSim(t, tags...)
	store := t.TempDir()
	opts := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: store, NoLog: true, NoSigs: true}
	start := func(o *server.Options) *server.Server {
		ns, err := server.NewServer(o)
		if err != nil {
			t.Fatal(err)
		}
		go ns.Start()
		if !ns.ReadyForConnections(10 * time.Second) {
			t.Fatal("nats-server not ready")
		}
		return ns
	}
	ns := start(opts)
	t.Cleanup(func() { ns.Shutdown() })
	url := ns.ClientURL()
	opts.Port = ns.Addr().(*net.TCPAddr).Port

	tokens := writeTokens(t, secretTokens[0], secretTokens[1])
	dir := t.TempDir()
	metrics := freeAddr(t)
	args := append(baseRunArgs(sim, tokens, filepath.Join(dir, "state"), metrics, tags...),
		"--sink", "jetstream", "--nats-url", url, "--stream", "DOWN", "--shutdown-timeout", "2s")
	p1 := startCmd(t, nil, args...)
	waitPolled(t, p1, metrics, len(tags))
	since := time.Now()
	sim.Post("sunset", 10)
	waitFor(t, 30*time.Second, "the first events", func() bool { return len(streamMediaIDs(t, url, "DOWN")) == 10 })

	// The broker goes away; media keep arriving; readiness says why; a stop still ends the process.
	ns.Shutdown()
	ns.WaitForShutdown()
	sim.Post("tea", 7)
	sim.Post("sunset", 3)
	waitFor(t, 30*time.Second, "readyz to report the broker", func() bool {
		resp, err := http.Get("http://" + metrics + "/readyz")
		if err != nil {
			return false
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(body), "not ready broker")
	})
	if code := p1.stop(t); code != 0 {
		t.Errorf("run exited %d after SIGTERM with the broker down, want 0", code)
	}

	// The broker comes back on the same port and store; a restart publishes what was missed, once.
	ns = start(opts)
	p2 := startCmd(t, nil, args...)
	waitPolled(t, p2, metrics, len(tags))
	want := expectedSince(sim, since)
	waitFor(t, 60*time.Second, "every media in the stream", func() bool { return len(streamMediaIDs(t, url, "DOWN")) >= len(want) })
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
	if len(got) != len(want) {
		t.Errorf("the stream holds %d media, want %d", len(got), len(want))
	}
}

func TestTokensNeverAppearUnderFaultsAndRevocation(t *testing.T) {
	t.Parallel()
	tags := []string{"sunset", "tea"}
	sim := startSim(t, tags...)
	tokens := writeTokens(t, secretTokens[0], secretTokens[1], "client_id:"+secretTokens[2])
	dir := t.TempDir()
	metrics := freeAddr(t)
	args := append(baseRunArgs(sim, tokens, filepath.Join(dir, "state"), metrics, tags...),
		"--sink", "file", "--output", filepath.Join(dir, "out.ndjson"), "--request-timeout", "1s")
	p := startCmd(t, nil, args...)
	waitPolled(t, p, metrics, len(tags))
	sim.SetFaults(testenv.Faults{Error500: 0.15, Down503HTML: 0.1, Down503Envelope: 0.1, RateLimit429: 0.1, Reset: 0.1,
		Truncated: 0.1, Slow: 0.05, SlowDelay: 1500 * time.Millisecond})
	sim.SetRate("sunset", 5)
	sim.RevokeToken(secretTokens[1])
	sim.Down(500 * time.Millisecond)
	waitFor(t, 60*time.Second, "failed requests of every kind", func() bool {
		st := sim.Stats()
		return st.ByOutcome["fault_Reset"] > 0 && st.ByOutcome["fault_Truncated"] > 0 && st.ByOutcome["auth_error"] > 0
	})
	for _, path := range []string{"/metrics", "/status", "/readyz"} {
		resp, err := http.Get("http://" + metrics + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assertNoSecrets(t, path, string(body))
	}
	if code := p.stop(t); code != 0 {
		t.Errorf("run exited %d", code)
	}
	_, stderr := p.output()
	if !strings.Contains(stderr, "level") {
		t.Errorf("no log at all: the scan for tokens proves nothing:\n%s", stderr)
	}
}
