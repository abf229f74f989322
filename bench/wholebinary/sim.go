package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tagstream/tagstream/testenv"
)

// simulator is cmd/igsim running as its own process (so that its CPU and memory are its own), plain HTTP on
// loopback, driven through its admin endpoint.
type simulator struct {
	proc     *child
	apiURL   string // ends in /v1
	adminURL string // ends in /_admin
	client   *http.Client
}

// simConfig is what the harness asks of the simulator.
type simConfig struct {
	Binary          string
	Dir             string // for the tokens file and the log
	Tags            []tagRate
	Tokens          []string // every token it accepts (tagstream's and the baseline's)
	RequestsPerHour int      // the limit per token per simulated hour (X-Ratelimit-Limit)
	TimeScale       int      // simulated hours per real hour: the window lasts one hour / TimeScale (0 = 1)
	Seed            int64
}

// lineWatcher collects the igsim: API / admin lines of igsim's stdout.
type lineWatcher struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	api   string
	admin string
	ready chan struct{}
	once  sync.Once
}

func (w *lineWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.api != "" && w.admin != "" {
		return len(p), nil
	}
	w.buf.Write(p)
	for {
		line, err := w.buf.ReadString('\n')
		if err != nil {
			w.buf.Reset()
			w.buf.WriteString(line)
			break
		}
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == "igsim:" && f[1] == "API" {
			w.api = f[2]
		}
		if len(f) == 3 && f[0] == "igsim:" && f[1] == "admin" {
			w.admin = f[2]
		}
	}
	if w.api != "" && w.admin != "" {
		w.once.Do(func() { close(w.ready) })
	}
	return len(p), nil
}

// startSimulator starts igsim and waits until it printed its URLs.
func startSimulator(ctx context.Context, cfg simConfig) (*simulator, error) {
	tokFile := filepath.Join(cfg.Dir, "igsim-tokens")
	if err := os.WriteFile(tokFile, []byte(strings.Join(cfg.Tokens, "\n")+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("simulator tokens file: %w", err)
	}
	var spec strings.Builder
	for i, t := range cfg.Tags {
		if i > 0 {
			spec.WriteByte(',')
		}
		fmt.Fprintf(&spec, "%s=%s:0", t.Name, strconv.FormatFloat(t.Rate, 'g', 17, 64))
	}
	args := []string{
		"-plain-http", "-addr", "127.0.0.1:0",
		"-tokens-file", tokFile,
		"-rate-limit", strconv.Itoa(cfg.RequestsPerHour),
		"-time-scale", strconv.Itoa(max(1, cfg.TimeScale)),
		"-seed", strconv.FormatInt(cfg.Seed, 10),
		"-tags", spec.String(),
		"-log-level", "warn",
	}
	w := &lineWatcher{ready: make(chan struct{})}
	cmd := exec.Command(cfg.Binary, args...)
	cmd.Env = append(os.Environ(), "IGSIM_TOKENS=")
	proc, err := startChild("igsim", cmd, filepath.Join(cfg.Dir, "igsim.log"), w)
	if err != nil {
		return nil, err
	}
	t := time.NewTimer(60 * time.Second)
	defer t.Stop()
	select {
	case <-w.ready:
	case <-proc.done:
		return nil, fmt.Errorf("igsim exited before it listened (see %s)", filepath.Join(cfg.Dir, "igsim.log"))
	case <-t.C:
		proc.kill()
		return nil, fmt.Errorf("igsim did not print its URLs within 60 s")
	case <-ctx.Done():
		proc.kill()
		return nil, ctx.Err()
	}
	w.mu.Lock()
	s := &simulator{proc: proc, apiURL: w.api, adminURL: w.admin, client: &http.Client{Timeout: 60 * time.Second}}
	w.mu.Unlock()
	return s, nil
}

// getJSON fetches an admin route into v.
func (s *simulator) getJSON(ctx context.Context, route string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.adminURL+route, nil)
	if err != nil {
		return err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("simulator %s: %w", route, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("simulator %s: status %d: %s", route, resp.StatusCode, b)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// stats returns the simulator's request counts.
func (s *simulator) stats(ctx context.Context) (testenv.Stats, error) {
	var st testenv.Stats
	err := s.getJSON(ctx, "/stats", &st)
	return st, err
}

// truth returns every media posted so far.
func (s *simulator) truth(ctx context.Context) ([]testenv.Truth, error) {
	var tr []testenv.Truth
	err := s.getJSON(ctx, "/truth", &tr)
	return tr, err
}

// setRate changes a tag's posting rate.
func (s *simulator) setRate(ctx context.Context, tag string, rate float64) error {
	body, _ := json.Marshal(map[string]any{"tag": tag, "rate": rate})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.adminURL+"/rate", bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("simulator rate %s: %w", tag, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("simulator rate %s: status %d: %s", tag, resp.StatusCode, b)
	}
	return nil
}
