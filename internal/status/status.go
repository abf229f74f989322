// Package status serves the operational HTTP endpoints of the tagstream command: Prometheus /metrics, /healthz
// (the process is alive), /readyz (every readiness check passes: broker connected, a usable token, checkpoint
// store open) and /status (a JSON report of every tag and token).
//
// The package knows nothing of the poller or the publishers: the command passes readiness checks and a report
// function. A Server is safe for concurrent use.
package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tagstream/tagstream/group"
)

// TagStatus is one tag's line of the status report.
type TagStatus struct {
	Tag string `json:"tag"`
	// Owner is the instance that polls the tag (Report.Instance; in group mode, the member that owns it).
	Owner string `json:"owner,omitempty"`
	// State says in words what the tag is doing ("ok", "catching up: 3 pages so far, 99 media pending", ...);
	// the server fills it (Describe) when the report function leaves it empty.
	State string `json:"state"`
	// Cursor is the cursor up to which the broker acknowledged the tag's media, as this process knows it: the
	// saved cursor, or a newer one whose checkpoint write is being retried; "" for a tag never polled before.
	Cursor string `json:"cursor"`
	// SavedCursor is the cursor in the checkpoint store: where a restart resumes. It is read when polling starts,
	// so a restarted tag shows its place before its first poll.
	SavedCursor string `json:"saved_cursor,omitempty"`
	// CatchUp describes the walk back through older pages under way; nil when none is.
	CatchUp      *CatchUp  `json:"catch_up,omitempty"`
	Segments     int       `json:"catch_up_segments"`
	LastPoll     time.Time `json:"last_poll,omitzero"`
	LastAttempt  time.Time `json:"last_attempt,omitzero"` // the last poll, successful or not; LastPoll is the last successful one
	NextPoll     time.Time `json:"next_poll,omitzero"`
	RateEstimate float64   `json:"rate_per_second"`
	LagSeconds   float64   `json:"lag_seconds"`
	Published    uint64    `json:"published"`
	Gaps         uint64    `json:"gaps"`
	LastError    string    `json:"last_error,omitempty"`
}

// CatchUp is a walk back through older pages (after downtime or a burst) that is under way.
type CatchUp struct {
	// Since is when the walk started.
	Since time.Time `json:"since"`
	// Pages is how many pages the walk fetched so far.
	Pages int `json:"pages"`
	// Pending is how many media the walk found and has not published yet.
	Pending int `json:"pending"`
}

// Describe says in words what the tag is doing, as State shows it: a catch-up under way first, then a failing
// last poll, a tag not polled yet (resuming from a saved cursor, or new), catch-up segments waiting, else "ok".
func (t TagStatus) Describe() string {
	switch {
	case t.CatchUp != nil:
		return fmt.Sprintf("catching up: %s so far, %d media pending", plural(t.CatchUp.Pages, "page"), t.CatchUp.Pending)
	case t.LastError != "" && t.LastAttempt.After(t.LastPoll):
		return "failing: " + t.LastError
	case t.LastPoll.IsZero() && t.SavedCursor != "":
		return "resuming from its saved cursor"
	case t.LastPoll.IsZero():
		return "waiting for its first poll"
	case t.Segments > 0:
		return fmt.Sprintf("catching up: %s to publish", plural(t.Segments, "segment"))
	}
	return "ok"
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// TokenStatus is one token's line of the status report. It never holds the token itself.
type TokenStatus struct {
	Index       int       `json:"index"`
	Fingerprint string    `json:"fingerprint"`
	ClientID    bool      `json:"client_id,omitempty"`
	Limit       int       `json:"limit"`
	Remaining   int       `json:"remaining"`
	ParkedUntil time.Time `json:"parked_until,omitzero"`
	Retired     bool      `json:"retired"`
}

// CheckResult is the outcome of one readiness check.
type CheckResult struct {
	Name  string `json:"name"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// Report is the body of /status.
type Report struct {
	Time    time.Time `json:"time"`
	Version string    `json:"version,omitempty"`
	// Instance names the process that made the report (host/pid).
	Instance string        `json:"instance,omitempty"`
	Sink     string        `json:"sink,omitempty"`
	Ready    bool          `json:"ready"`
	Checks   []CheckResult `json:"checks"`
	Tags     []TagStatus   `json:"tags"`
	Tokens   []TokenStatus `json:"tokens"`
	// Group is the group as this instance sees it, in group mode only (docs/group.md).
	Group *group.Status `json:"group,omitempty"`
}

// Check is one readiness condition. Func returns nil when the condition holds; its error text is shown on
// /readyz and /status, so it must not carry secrets.
type Check struct {
	Name string
	Func func(ctx context.Context) error
}

// Config configures a Server. The zero value serves /healthz only, with empty reports.
type Config struct {
	// Addr is the listen address ("127.0.0.1:9464", ":9464"); "127.0.0.1:0" picks a free port.
	Addr string
	// Gatherer serves /metrics; nil serves an empty registry.
	Gatherer prometheus.Gatherer
	// Checks decide /readyz; none means always ready.
	Checks []Check
	// Report fills the tags, tokens, version and sink of /status; nil reports none.
	Report func() Report
	// CheckTimeout bounds all checks of one request; default 2s.
	CheckTimeout time.Duration
	// Logger; nil discards.
	Logger *slog.Logger
}

// Server serves the endpoints. Build it with New, then Listen and Run.
type Server struct {
	cfg  Config
	mux  *http.ServeMux
	mu   sync.Mutex
	ln   net.Listener
	http *http.Server
}

// New builds a Server from cfg.
func New(cfg Config) *Server {
	if cfg.Gatherer == nil {
		cfg.Gatherer = prometheus.NewRegistry()
	}
	if cfg.CheckTimeout <= 0 {
		cfg.CheckTimeout = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux()}
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{}))
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.HandleFunc("GET /status", s.status)
	s.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "tagstream: /metrics /healthz /readyz /status\n")
	})
	return s
}

// Handler returns the HTTP handler of all endpoints (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.mux }

// Listen binds the listen address; an error here is a configuration problem (address in use).
func (s *Server) Listen() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("status: listen on %s: %w", s.cfg.Addr, err)
	}
	s.mu.Lock()
	s.ln = ln
	s.http = &http.Server{Handler: s.mux, ReadHeaderTimeout: 5 * time.Second}
	s.mu.Unlock()
	return nil
}

// Addr returns the bound address after Listen, or "".
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Run serves until ctx ends, then shuts the server down. It calls Listen first when that has not been done.
func (s *Server) Run(ctx context.Context) error {
	if s.Addr() == "" {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	s.mu.Lock()
	srv, ln := s.http, s.ln
	s.mu.Unlock()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.cfg.Logger.Info("status endpoints listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("status: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	<-errc
	return nil
}

// Close releases the listener; it is for a Server that was bound with Listen but will not Run (Run closes its
// listener itself when ctx ends).
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.http == nil {
		return nil
	}
	err := s.http.Close()
	if cerr := s.ln.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) {
		err = errors.Join(err, cerr)
	}
	return err
}

// runChecks evaluates every check concurrently within CheckTimeout.
func (s *Server) runChecks(ctx context.Context) ([]CheckResult, bool) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CheckTimeout)
	defer cancel()
	res := make([]CheckResult, len(s.cfg.Checks))
	var wg sync.WaitGroup
	for i, c := range s.cfg.Checks {
		wg.Go(func() {
			r := CheckResult{Name: c.Name, OK: true}
			if err := c.Func(ctx); err != nil {
				r.OK, r.Error = false, err.Error()
			}
			res[i] = r
		})
	}
	wg.Wait()
	ok := true
	for _, r := range res {
		ok = ok && r.OK
	}
	return res, ok
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	res, ok := s.runChecks(r.Context())
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	for _, c := range res {
		if c.OK {
			fmt.Fprintf(w, "ok %s\n", c.Name)
		} else {
			fmt.Fprintf(w, "not ready %s: %s\n", c.Name, c.Error)
		}
	}
	if ok {
		io.WriteString(w, "ready\n")
	}
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	var rep Report
	if s.cfg.Report != nil {
		rep = s.cfg.Report()
	}
	rep.Checks, rep.Ready = s.runChecks(r.Context())
	if rep.Time.IsZero() {
		rep.Time = time.Now().UTC()
	}
	if rep.Tags == nil {
		rep.Tags = []TagStatus{}
	}
	for i := range rep.Tags {
		if rep.Tags[i].State == "" {
			rep.Tags[i].State = rep.Tags[i].Describe()
		}
	}
	if rep.Tokens == nil {
		rep.Tokens = []TokenStatus{}
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		s.cfg.Logger.Debug("status: write report", "err", err)
	}
}
