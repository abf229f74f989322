package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tagstream/tagstream/group"
)

// poll is one feed request of one instance, as its proxy saw it.
type poll struct {
	Member     string
	Tag        string
	Start, End time.Time
	Status     int
}

// pollLog collects the feed requests of every instance.
type pollLog struct {
	mu   sync.Mutex
	recs []poll
}

func (l *pollLog) add(p poll) {
	l.mu.Lock()
	l.recs = append(l.recs, p)
	l.mu.Unlock()
}

// records returns the requests ordered by start.
func (l *pollLog) records() []poll {
	l.mu.Lock()
	out := slices.Clone(l.recs)
	l.mu.Unlock()
	sort.SliceStable(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out
}

// proxy serves plain HTTP on loopback and forwards to the simulator, recording every feed request as member's.
type proxy struct {
	srv *http.Server
	url string
}

func startProxy(target *url.URL, member string, log *pollLog) (*proxy, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme = target.Scheme
			r.Out.URL.Host = target.Host
			r.Out.Host = target.Host
		},
		Transport: tr,
		// The request URL holds the access token: errors are answered, never logged.
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, _ error) { w.WriteHeader(http.StatusBadGateway) },
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &proxy{url: "http://" + ln.Addr().String() + "/v1"}
	p.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tag, feed := feedTag(r.URL.EscapedPath())
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		rp.ServeHTTP(sw, r)
		if feed {
			log.add(poll{Member: member, Tag: tag, Start: start, End: time.Now(), Status: sw.status})
		}
	})}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

func (p *proxy) close() { _ = p.srv.Close() }

// feedTag returns the tag of a /v1/tags/{tag}/media/recent path.
func feedTag(escapedPath string) (string, bool) {
	rest, ok := strings.CutPrefix(escapedPath, "/v1/tags/")
	if !ok {
		return "", false
	}
	rest, ok = strings.CutSuffix(strings.TrimSuffix(rest, ".json"), "/media/recent")
	if !ok || strings.Contains(rest, "/") {
		return "", false
	}
	tag, err := url.PathUnescape(rest)
	return tag, err == nil
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// instance is one tagstream process with its proxy to the simulator.
type instance struct {
	name        string
	args        []string
	logPath     string
	metricsAddr string
	cmd         *exec.Cmd
	done        chan struct{}
	waitErr     error
}

// freeAddr returns a free loopback address.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// start starts the process (again) with its output appended to its log.
func (in *instance) start(bin string) error {
	f, err := os.OpenFile(in.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	fmt.Fprintf(f, "\n===== bench/group: %s started at %s =====\n", in.name, time.Now().UTC().Format(time.RFC3339Nano))
	in.cmd = exec.Command(bin, in.args...)
	in.cmd.Stdout, in.cmd.Stderr = f, f
	in.cmd.Env = cleanEnv()
	in.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := in.cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", in.name, err)
	}
	in.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		in.waitErr = cmd.Wait()
		f.Close()
		close(done)
	}(in.cmd, in.done)
	return nil
}

// cleanEnv is the environment without TAGSTREAM_* settings (the test command exports some).
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TAGSTREAM_") {
			env = append(env, kv)
		}
	}
	return env
}

func (in *instance) running() bool {
	if in.done == nil {
		return false
	}
	select {
	case <-in.done:
		return false
	default:
		return true
	}
}

// signal sends sig and waits up to timeout for the exit; it reports whether the process ended.
func (in *instance) signal(sig syscall.Signal, timeout time.Duration) bool {
	if !in.running() {
		return true
	}
	_ = in.cmd.Process.Signal(sig)
	select {
	case <-in.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// stop ends the process with SIGTERM (SIGKILL after 30 s).
func (in *instance) stop() {
	if !in.signal(syscall.SIGTERM, 30*time.Second) {
		in.signal(syscall.SIGKILL, 10*time.Second)
	}
}

// waitReady waits until /readyz answers 200.
func (in *instance) waitReady(ctx context.Context, timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if !in.running() {
			return fmt.Errorf("%s exited before it was ready (see %s)", in.name, in.logPath)
		}
		resp, err := client.Get("http://" + in.metricsAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not ready within %s (see %s)", in.name, timeout, in.logPath)
}

// groupStatus is the part of /status this harness reads.
type groupStatus struct {
	Group *group.Status `json:"group"`
}

// ownTags returns the tags the instance's /status says it owns.
func (in *instance) ownTags() ([]string, error) {
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + in.metricsAddr + "/status")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var st groupStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, err
	}
	if st.Group == nil {
		return nil, errors.New(`no "group" in /status`)
	}
	for _, m := range st.Group.Members {
		if m.Self || m.Name == st.Group.Self {
			return m.Tags, nil
		}
	}
	return nil, errors.New("not a member yet")
}

// metric returns the sum of a metric family's samples from /metrics.
func (in *instance) metric(name string) (float64, error) {
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + in.metricsAddr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	sum := 0.0
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum, nil
}

// newToken returns a random access token shaped like the API's.
func newToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "1" + hex.EncodeToString(b[:3]) + "." + hex.EncodeToString(b[3:])
}

// randomID returns 8 hex digits for names unique to a run.
func randomID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// cluster is the three-node nats-server cluster of scripts/nats-cluster.sh.
type cluster struct {
	urls, ctl, dir string
	own            bool // started by this harness (stopped at the end)
}

// openCluster uses the cluster the environment names (TAGSTREAM_NATS_CLUSTER_URLS, _CTL, _DIR) or starts one with
// scripts/nats-cluster.sh in dir.
func openCluster(repo, dir string) (*cluster, error) {
	c := &cluster{urls: os.Getenv("TAGSTREAM_NATS_CLUSTER_URLS"), ctl: os.Getenv("TAGSTREAM_NATS_CLUSTER_CTL"),
		dir: os.Getenv("TAGSTREAM_NATS_CLUSTER_DIR")}
	if c.urls != "" && c.ctl != "" && c.dir != "" {
		return c, nil
	}
	c = &cluster{ctl: filepath.Join(repo, "scripts", "nats-cluster.sh"), dir: filepath.Join(dir, "nats-cluster"), own: true}
	out, err := exec.Command(c.ctl, "up", c.dir).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("scripts/nats-cluster.sh up: %v\n%s", err, out)
	}
	env, err := os.ReadFile(filepath.Join(c.dir, "env"))
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(env), "\n") {
		if v, ok := strings.CutPrefix(line, "export TAGSTREAM_NATS_CLUSTER_URLS="); ok {
			c.urls = strings.TrimSpace(v)
		}
	}
	if c.urls == "" {
		return nil, errors.New("scripts/nats-cluster.sh wrote no URLs")
	}
	return c, nil
}

func (c *cluster) close() {
	if c.own {
		_ = exec.Command(c.ctl, "down", c.dir).Run()
	}
}

// readStream returns, per Nats-Msg-Id, the stored time of its first copy and how many copies the stream holds.
func readStream(ctx context.Context, js jetstream.JetStream, name string) (map[string]time.Time, int, error) {
	s, err := js.Stream(ctx, name)
	if err != nil {
		return nil, 0, fmt.Errorf("stream %s: %w", name, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("stream %s info: %w", name, err)
	}
	out := map[string]time.Time{}
	repeats := 0
	if info.State.Msgs == 0 {
		return out, 0, nil
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, 0, fmt.Errorf("stream %s consumer: %w", name, err)
	}
	it, err := c.Messages()
	if err != nil {
		return nil, 0, fmt.Errorf("stream %s messages: %w", name, err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for {
		m, err := it.Next()
		if err != nil {
			return nil, 0, fmt.Errorf("stream %s after %d messages (last seq %d): %w", name, len(out)+repeats, info.State.LastSeq, err)
		}
		md, err := m.Metadata()
		if err != nil {
			return nil, 0, err
		}
		id := m.Headers().Get(jetstream.MsgIDHeader)
		if _, ok := out[id]; ok {
			repeats++
		} else {
			out[id] = md.Timestamp
		}
		if md.Sequence.Stream >= info.State.LastSeq {
			return out, repeats, nil
		}
	}
}
