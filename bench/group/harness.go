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
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tagstream/tagstream/group"
	"github.com/tagstream/tagstream/internal/groupkit"
)

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
	groupkit.Cluster
	own bool // started by this harness (stopped at the end)
}

// openCluster uses the cluster the environment names (TAGSTREAM_NATS_CLUSTER_URLS, _CTL, _DIR) or starts one with
// scripts/nats-cluster.sh in dir.
func openCluster(repo, dir string) (*cluster, error) {
	if c, ok := groupkit.ClusterFromEnv(); ok {
		return &cluster{Cluster: c}, nil
	}
	c := &cluster{Cluster: groupkit.Cluster{Ctl: filepath.Join(repo, "scripts", "nats-cluster.sh"), Dir: filepath.Join(dir, "nats-cluster")}, own: true}
	out, err := exec.Command(c.Ctl, "up", c.Dir).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("scripts/nats-cluster.sh up: %v\n%s", err, out)
	}
	env, err := os.ReadFile(filepath.Join(c.Dir, "env"))
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(env), "\n") {
		if v, ok := strings.CutPrefix(line, "export TAGSTREAM_NATS_CLUSTER_URLS="); ok {
			c.URLs = strings.TrimSpace(v)
		}
	}
	if c.URLs == "" {
		return nil, errors.New("scripts/nats-cluster.sh wrote no URLs")
	}
	return c, nil
}

func (c *cluster) close() {
	if c.own {
		_ = exec.Command(c.Ctl, "down", c.Dir).Run()
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
