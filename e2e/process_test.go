//go:build integration

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tagstream/tagstream/internal/redact"
	"github.com/tagstream/tagstream/internal/testkit"
)

// process is a child process whose output goes to a log file and whose end is observed once.
type process struct {
	name    string
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
}

// startProcess starts cmd with stdout and stderr appended to logPath.
func startProcess(t *testing.T, name string, cmd *exec.Cmd, logPath string) *process {
	t.Helper()
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatalf("%s log: %v", name, err)
	}
	fmt.Fprintf(f, "\n===== e2e: %s started at %s =====\n", name, time.Now().UTC().Format(time.RFC3339Nano))
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &process{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p
}

// startReady starts cmd as startProcess does and waits up to timeout until ready reports true. It fails the test
// when the process exits first or is still not ready when timeout passes; both messages point to logPath.
func startReady(t *testing.T, name string, cmd *exec.Cmd, logPath string, timeout time.Duration, ready func() bool) *process {
	t.Helper()
	p := startProcess(t, name, cmd, logPath)
	ok := waitFor(timeout, func() bool { return !p.running() || ready() })
	if !p.running() {
		t.Fatalf("%s exited with status %d at start; see %s", name, p.exitCode(), logPath)
	}
	if !ok {
		t.Fatalf("%s not ready within %v; see %s", name, timeout, logPath)
	}
	return p
}

// running reports whether the process has not exited yet.
func (p *process) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// signal sends sig and waits up to timeout for the exit; it returns the exit code (-1 for a death by signal) and
// whether the process ended in time.
func (p *process) signal(sig syscall.Signal, timeout time.Duration) (code int, ended bool) {
	if p.running() {
		_ = p.cmd.Process.Signal(sig)
	}
	select {
	case <-p.done:
	case <-time.After(timeout):
		return 0, false
	}
	return p.exitCode(), true
}

// exitCode returns the exit status after the process ended (-1 when a signal killed it).
func (p *process) exitCode() int {
	var ee *exec.ExitError
	if p.waitErr == nil {
		return 0
	}
	if errors.As(p.waitErr, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// killNow ends the process with SIGKILL and waits for it.
func (p *process) killNow() {
	if p.running() {
		_ = p.cmd.Process.Kill()
	}
	<-p.done
}

// tagstream runs the built binary for one test, across restarts on the same state directory.
type tagstream struct {
	t           *testing.T
	sim         *sim
	args        []string
	logPath     string
	metricsAddr string
	proc        *process
	starts      int
}

// tagstreamOptions adds to the common flags of newTagstream.
type tagstreamOptions struct {
	Sink        []string // the sink flags (--sink ... and its broker settings)
	Extra       []string // more flags (they override the common ones, as the flag package keeps the last)
	MinInterval time.Duration
}

// newTagstream prepares (without starting) a tagstream run against s: backfill from the start so that every
// media the simulator ever showed must arrive, small intervals, a state directory kept across restarts.
func newTagstream(t *testing.T, s *sim, o tagstreamOptions) *tagstream {
	t.Helper()
	dir := t.TempDir()
	if o.MinInterval == 0 {
		o.MinInterval = 250 * time.Millisecond
	}
	ts := &tagstream{
		t:           t,
		sim:         s,
		logPath:     filepath.Join(dir, "tagstream.log"),
		metricsAddr: testkit.FreeAddr(t),
	}
	ts.args = []string{"run",
		"--api-url", s.URL(),
		"--ca-file", s.CAFile(),
		"--tokens-file", s.tokensFile,
		"--tags", strings.Join(s.tagNames(), ","),
		"--requests-per-hour", strconv.Itoa(s.realRequestsPerHour()),
		"--state-dir", filepath.Join(dir, "state"),
		"--metrics-addr", ts.metricsAddr,
		"--start", "backfill",
		"--backfill-pages", "20",
		"--min-interval", o.MinInterval.String(),
		"--max-interval", "2s",
		"--request-timeout", "5s",
		"--shutdown-timeout", "10s",
		"--log-format", "text",
	}
	ts.args = append(ts.args, o.Sink...)
	ts.args = append(ts.args, o.Extra...)
	t.Cleanup(ts.cleanup)
	return ts
}

// start starts the binary and waits until /readyz answers 200. A metrics port that another process took between
// testkit.FreeAddr and the bind (other packages' tests run at the same time) is replaced by a new one, twice at most.
func (ts *tagstream) start() {
	ts.t.Helper()
	for attempt := 1; ; attempt++ {
		ts.launch()
		if attempt == 3 || !ts.metricsPortTaken(60*time.Second) {
			break
		}
		ts.t.Logf("metrics address %s was taken before tagstream bound it: trying another", ts.metricsAddr)
		old := ts.metricsAddr
		ts.metricsAddr = testkit.FreeAddr(ts.t)
		for i, a := range ts.args {
			if a == old {
				ts.args[i] = ts.metricsAddr
			}
		}
	}
	ts.waitReady(60 * time.Second)
}

// metricsPortTaken waits until the process is ready or has exited, and reports whether it exited because its
// metrics address was in use.
func (ts *tagstream) metricsPortTaken(timeout time.Duration) bool {
	var taken bool
	testkit.Eventually(ts.t, timeout, "tagstream to be ready or to exit", func() bool {
		if !ts.proc.running() {
			tail := ts.logTail(3)
			taken = ts.proc.exitCode() == 2 && strings.Contains(tail, "metrics-addr") && strings.Contains(tail, "address already in use")
			return true
		}
		code, _ := ts.readyz()
		return code == http.StatusOK
	})
	return taken
}

// launch starts the binary without waiting for anything.
func (ts *tagstream) launch() {
	t := ts.t
	t.Helper()
	if ts.proc != nil && ts.proc.running() {
		t.Fatalf("tagstream is already running")
	}
	ts.starts++
	cmd := exec.Command(binPath, ts.args...)
	cmd.Env = append(os.Environ(), "GORACE=halt_on_error=0 exitcode=66")
	ts.proc = startProcess(t, fmt.Sprintf("tagstream run #%d", ts.starts), cmd, ts.logPath)
}

// readyz returns the status code and body of /readyz (0 when it does not answer).
func (ts *tagstream) readyz() (int, string) {
	client := &http.Client{Timeout: time.Second}
	resp, err := client.Get("http://" + ts.metricsAddr + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitReady polls /readyz until it answers 200; the process exiting first fails the test.
func (ts *tagstream) waitReady(timeout time.Duration) {
	t := ts.t
	t.Helper()
	testkit.Eventually(t, timeout, "tagstream to be ready", func() bool {
		if !ts.proc.running() {
			t.Fatalf("tagstream exited with status %d before it was ready; log:\n%s", ts.proc.exitCode(), ts.logTail(40))
		}
		code, _ := ts.readyz()
		return code == http.StatusOK
	})
}

// logContains reports whether the process log holds s.
func (ts *tagstream) logContains(s string) bool {
	b, err := os.ReadFile(ts.logPath)
	return err == nil && bytes.Contains(b, []byte(s))
}

// stop sends SIGTERM and requires exit status 0 within 30 seconds.
func (ts *tagstream) stop() {
	t := ts.t
	t.Helper()
	code, ended := ts.proc.signal(syscall.SIGTERM, 30*time.Second)
	if !ended {
		ts.proc.killNow()
		t.Fatalf("tagstream did not exit within 30 s of SIGTERM; log:\n%s", ts.logTail(40))
	}
	if code != 0 {
		t.Fatalf("tagstream exited with status %d after SIGTERM, want 0; log:\n%s", code, ts.logTail(40))
	}
}

// kill9 ends the process with SIGKILL, as a crash would, and returns when it is gone.
func (ts *tagstream) kill9() time.Time {
	at := time.Now()
	ts.proc.killNow()
	return at
}

// metric returns the sum of the samples of a Prometheus metric family from /metrics (0 when absent).
func (ts *tagstream) metric(name string) (float64, error) {
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + ts.metricsAddr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		fields := strings.Fields(line)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("metric %s: %w", name, err)
		}
		sum += v
	}
	return sum, sc.Err()
}

// checkEndpointsForTokens fetches /metrics and /status and fails the test if either shows a token.
func (ts *tagstream) checkEndpointsForTokens() {
	t := ts.t
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	for _, path := range []string{"/metrics", "/status"} {
		resp, err := client.Get("http://" + ts.metricsAddr + path)
		if err != nil {
			t.Errorf("GET %s: %v", path, err)
			continue
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: status %d, %v", path, resp.StatusCode, err)
			continue
		}
		for i, sec := range ts.sim.secrets() {
			if bytes.Contains(b, []byte(sec)) {
				t.Errorf("%s shows access token #%d", path, i)
			}
		}
	}
}

// waitFor checks cond every 100 ms until it is true or timeout passes; it reports whether cond became true (the
// caller decides whether that fails the test, testkit.Eventually fails it at once).
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			return cond()
		case <-tick.C:
		}
	}
	return true
}

// hold keeps the scenario as it is for d (a workload running, a broker away) unless the test's context ends. It is
// a duration of the scenario, never a wait for a condition: those use waitFor or testkit.Eventually.
func hold(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// logTail returns the last n lines of the process log.
func (ts *tagstream) logTail(n int) string {
	b, err := os.ReadFile(ts.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	// A failing test never prints a token it found.
	return redact.New(ts.sim.secrets()...).String(strings.Join(lines, "\n"))
}

// cleanup kills a process still running and checks the whole log: no token, no data race.
func (ts *tagstream) cleanup() {
	t := ts.t
	if ts.proc != nil && ts.proc.running() {
		ts.proc.killNow()
	}
	b, err := os.ReadFile(ts.logPath)
	if err != nil {
		if ts.starts > 0 {
			t.Errorf("read tagstream log: %v", err)
		}
		return
	}
	for i, sec := range ts.sim.secrets() {
		if bytes.Contains(b, []byte(sec)) {
			t.Errorf("tagstream's output contains access token #%d", i)
		}
	}
	if bytes.Contains(b, []byte("WARNING: DATA RACE")) {
		t.Errorf("the race detector reported a data race in tagstream; log:\n%s", ts.logTail(80))
	}
	if t.Failed() {
		t.Logf("tagstream log (last 60 lines of %d runs):\n%s", ts.starts, ts.logTail(60))
	}
}
