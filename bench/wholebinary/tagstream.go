package main

import (
	"bufio"
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
	"time"
)

// tagstreamProc runs the built binary as a user would: `tagstream run` with a YAML file for the tag list (100,000
// tags do not fit a command line), tokens in a 0600 file, everything else as flags. Restarts reuse the state
// directory.
type tagstreamProc struct {
	binary      string
	dir         string
	args        []string
	metricsAddr string
	client      *http.Client
	proc        *child
	runs        []*child // every process started, in order
	logPath     string
}

// tagstreamConfig is what the harness passes to the binary.
type tagstreamConfig struct {
	Binary          string
	Dir             string
	APIURL          string
	Tags            []string
	Tokens          []string
	RequestsPerHour int
	SinkArgs        []string
	RateWindow      time.Duration // --rate-window, the window RequestsPerHour counts over (0: the binary's default, an hour)
	MaxInterval     time.Duration // 0: the binary's default
	Extra           []string      // -ts-flag values, after everything else (the flag package keeps the last)
}

func newTagstream(cfg tagstreamConfig) (*tagstreamProc, error) {
	tokFile := filepath.Join(cfg.Dir, "tagstream-tokens")
	if err := os.WriteFile(tokFile, []byte(strings.Join(cfg.Tokens, "\n")+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("tagstream tokens file: %w", err)
	}
	confFile := filepath.Join(cfg.Dir, "tagstream.yaml")
	if err := writeTagsConfig(confFile, cfg.Tags); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	ts := &tagstreamProc{
		binary:      cfg.Binary,
		dir:         cfg.Dir,
		metricsAddr: "127.0.0.1:" + strconv.Itoa(port),
		client:      &http.Client{Timeout: 30 * time.Second},
		logPath:     filepath.Join(cfg.Dir, "tagstream.log"),
	}
	ts.args = []string{"run",
		"--config", confFile,
		"--api-url", cfg.APIURL,
		"--tokens-file", tokFile,
		"--requests-per-hour", strconv.Itoa(cfg.RequestsPerHour),
		"--state-dir", filepath.Join(cfg.Dir, "state"),
		"--metrics-addr", ts.metricsAddr,
	}
	if cfg.RateWindow > 0 {
		ts.args = append(ts.args, "--rate-window", cfg.RateWindow.String())
	}
	if cfg.MaxInterval > 0 {
		ts.args = append(ts.args, "--max-interval", cfg.MaxInterval.String())
	}
	ts.args = append(ts.args, cfg.SinkArgs...)
	ts.args = append(ts.args, cfg.Extra...)
	return ts, nil
}

// writeTagsConfig writes a YAML file holding only the tag list.
func writeTagsConfig(path string, tags []string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("tagstream config: %w", err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	fmt.Fprintln(w, "# written by bench/wholebinary")
	fmt.Fprintln(w, "tags:")
	for _, t := range tags {
		fmt.Fprintf(w, "  - %s\n", t)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("tagstream config: %w", err)
	}
	return f.Close()
}

// commandLine is the command as the report shows it (paths shortened, no secret: tokens are in a file).
func (ts *tagstreamProc) commandLine() string {
	parts := []string{"tagstream"}
	for _, a := range ts.args {
		a = strings.ReplaceAll(a, ts.dir+"/", "$TMP/")
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// start starts the binary and waits until /readyz answers 200.
func (ts *tagstreamProc) start(ctx context.Context) error {
	cmd := exec.Command(ts.binary, ts.args...)
	cmd.Env = append(os.Environ(), "TAGSTREAM_TOKENS=")
	p, err := startChild(fmt.Sprintf("tagstream run #%d", len(ts.runs)+1), cmd, ts.logPath, nil)
	if err != nil {
		return err
	}
	ts.proc = p
	ts.runs = append(ts.runs, p)
	wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	err = waitUntil(wctx, 50*time.Millisecond, func() (bool, error) {
		if !p.running() {
			return false, fmt.Errorf("tagstream exited (%v) before it was ready; log: %s", p.waitErr, ts.logPath)
		}
		resp, err := ts.client.Get("http://" + ts.metricsAddr + "/readyz")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		p.kill()
		return fmt.Errorf("tagstream not ready: %w", err)
	}
	return nil
}

// metrics returns the sum of the samples of each wanted metric family from /metrics, by name and, when the name
// has the form family{label="value"}, by that series alone.
func (ts *tagstreamProc) metrics(ctx context.Context) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+ts.metricsAddr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := ts.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return parseMetrics(resp.Body)
}

// parseMetrics reads the Prometheus text format: it returns every sample by its full series text
// (`name{labels}`), plus the sum per family name.
func parseMetrics(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		series := line[:i]
		out[series] = v
		if j := strings.IndexByte(series, '{'); j >= 0 {
			out[series[:j]] += v
		}
	}
	return out, sc.Err()
}

// statusTag is the part of a tag's /status entry the harness reads.
type statusTag struct {
	Tag      string    `json:"tag"`
	LastPoll time.Time `json:"last_poll"`
}

// status returns the tags of /status.
func (ts *tagstreamProc) status(ctx context.Context) ([]statusTag, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+ts.metricsAddr+"/status", nil)
	if err != nil {
		return nil, err
	}
	resp, err := ts.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var st struct {
		Tags []statusTag `json:"tags"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	return st.Tags, nil
}

// usage returns the CPU time of every tagstream process so far (exited ones from their rusage, the running one
// from /proc) and the highest peak resident set among them.
func (ts *tagstreamProc) usage() (usage, error) {
	var total usage
	for _, p := range ts.runs {
		var u usage
		var err error
		if p.running() {
			u, err = procUsage(p.pid())
		} else {
			u, err = p.exitedUsage()
		}
		if err != nil {
			return total, err
		}
		total.CPU += u.CPU
		total.MaxRSS = max(total.MaxRSS, u.MaxRSS)
		total.Samples++
	}
	return total, nil
}

// logTail returns the last n lines of the binary's log (it never holds a token).
func (ts *tagstreamProc) logTail(n int) string {
	b, err := os.ReadFile(ts.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
