// Package pipeline turns tagstream's configuration into running components: the checkpoint store, the
// publisher of the configured sink, the poller and the status endpoints. The command parses flags, builds a
// config.Config and calls New and Run (run, demo) or Check (check); tail and the demo read events back with
// NewConsumer. Every translation of a setting into a library's configuration lives here, once, so that what check
// approves is what run builds.
//
// A broker that cannot be reached is an outage, not a configuration problem: Run keeps trying to reach it with
// exponential backoff (never giving up; each failure is logged at WARN with the redacted address and the time of
// the next attempt) while /readyz reports it, and polls only once the broker and the checkpoint store are open.
// Problems that a restart cannot fix are returned as *config.Error values naming the setting.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/tagstream/tagstream/group"
	"github.com/tagstream/tagstream/internal/config"
	"github.com/tagstream/tagstream/internal/redact"
	"github.com/tagstream/tagstream/internal/status"
	"github.com/tagstream/tagstream/poller"
	"github.com/tagstream/tagstream/poller/checkpoint"
	"github.com/tagstream/tagstream/publisher"
)

// Deps are what a Pipeline takes from its caller besides the configuration. The zero value is ready to use.
type Deps struct {
	// Logger receives the log of every component; nil discards it.
	Logger *slog.Logger
	// Registry receives every metric and is served on /metrics; nil means a new registry with the Go and process
	// collectors.
	Registry *prometheus.Registry
	// Version is the version reported on /status; empty reports none.
	Version string
	// Stdout is where sink=stdout writes; nil means os.Stdout.
	Stdout io.Writer
	// NATSConn, when set, is the NATS connection of the NATS sinks and the JetStream KV store instead of one
	// dialed from nats-url. The caller keeps ownership: the pipeline never closes it.
	NATSConn *nats.Conn
	// RateWindow is the window the requests-per-hour budget refers to (poller.Config.RateWindow); 0 means an hour.
	// A simulator that runs a scaled hour needs the same scale here.
	RateWindow time.Duration
	// APIBackoff, when its fields are set, shapes the poller's backoff between retries of a request and between
	// probes of an API that is down (poller.Config.BackoffInitial and BackoffMax); zero means the poller's defaults
	// (500 ms up to 60 s). Tests shorten it.
	APIBackoff struct{ Initial, Max time.Duration }
	// WrapPublisher, when set, wraps the publisher the poller hands its events to (to observe hand-offs).
	WrapPublisher func(poller.Publisher) poller.Publisher
	// DialBackOff returns the backoff between attempts to reach the broker at start-up; nil means exponential
	// from 500 ms up to 30 s with jitter, never giving up.
	DialBackOff func() backoff.BackOff
}

// Pipeline is the wired process: checkpoint store, sink, poller and status endpoints. Build it with New, then call
// Run once (a second call returns an error); Close releases it when Run is not called. Its methods are safe for
// concurrent use.
type Pipeline struct {
	cfg      *config.Config
	deps     Deps
	log      *slog.Logger
	reg      *prometheus.Registry
	red      *redact.Redactor
	status   *status.Server       // nil when metrics-addr is empty
	dead     publisher.DeadLetter // the default dead-letter file, or nil
	closers  []func() error       // released last by Close, in reverse order
	instance string               // host/pid, the owner of every tag on /status
	started  chan struct{}        // closed when polling starts
	running  atomic.Bool          // Run was called

	mu      sync.Mutex
	sink    *sink
	store   checkpoint.Store
	poller  *poller.Poller
	coord   *group.JetStream    // group mode only
	js      jetstream.JetStream // with checkpoint-store jetstream-kv
	conn    *nats.Conn          // the connection the pipeline dialed (nil when none, or when Deps.NATSConn is used)
	dialErr error               // why the last attempt to reach the broker failed
	closed  bool
}

// New builds what needs no broker: the status listener (a busy address is a configuration error), the local
// checkpoint store (bolt: it takes the state directory's lock; memory), the default dead-letter file and the file
// or stdout sink. It dials nothing and polls nothing: Run does. On error everything opened is closed again;
// errors that a restart cannot fix are *config.Error values (errors.Is(err, config.ErrInvalid)).
func New(ctx context.Context, cfg *config.Config, deps Deps) (_ *Pipeline, err error) {
	p := &Pipeline{cfg: cfg, deps: deps, log: deps.Logger, reg: deps.Registry, red: cfg.Redactor(),
		started: make(chan struct{}), instance: instanceName()}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.reg == nil {
		p.reg = prometheus.NewRegistry()
		p.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	if p.deps.Stdout == nil {
		p.deps.Stdout = os.Stdout
	}
	defer func() {
		if err != nil {
			p.Close()
			err = p.classify(err)
		}
	}()

	if err := p.registerMetrics(p.reg); err != nil {
		return nil, fmt.Errorf("pipeline: metrics: %w", err)
	}
	// The status listener first: a busy address is a configuration problem found before any work.
	if cfg.MetricsAddr != "" {
		p.status = status.New(status.Config{
			Addr:     cfg.MetricsAddr,
			Gatherer: p.reg,
			Checks:   p.checks(),
			Report:   p.report,
			Logger:   p.log,
		})
		if err := p.status.Listen(); err != nil {
			return nil, &config.Error{Key: "metrics-addr", Problem: err.Error(), Err: err}
		}
	}
	if err := p.openDeadLetterFile(); err != nil {
		return nil, err
	}
	if !cfg.Sink.IsBroker() {
		s, err := openLocalSink(cfg, p.deps.Stdout, p.log, p.reg)
		if err != nil {
			return nil, err
		}
		p.sink = s
	}
	switch cfg.CheckpointStore {
	case config.StoreMemory:
		p.store = checkpoint.NewMemory()
		p.log.Warn("checkpoint-store=memory: cursors are lost on exit; a restart starts each tag afresh")
	case config.StoreBolt:
		if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
			return nil, &config.Error{Key: "state-dir", Problem: err.Error(), Err: err}
		}
		// Many tags persist at once (one Put per poll that found media, and every first poll that found some, or
		// of a tag added while running; see poller.Config.StartLog): let
		// concurrent Puts share one fsynced transaction. Each Put still returns only when durable; a lone writer
		// waits at most 30 ms more (bench/checkpoint.md). 30 ms rather than 10 (and 2 before that): the first
		// round of 100,000 tags commits a third as many transactions (scale100k side by side: 0.205 -> 0.193
		// CPU-s per 1,000 requests, the busy tags' latency unchanged; bench/wholebinary.md, "gcpu").
		b, err := checkpoint.OpenBolt(filepath.Join(cfg.StateDir, config.CheckpointFile), &checkpoint.BoltOptions{GroupCommit: 30 * time.Millisecond})
		if err != nil {
			return nil, err
		}
		p.store = b
	}
	return p, nil
}

// instanceName names this process on /status: host/pid.
func instanceName() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return fmt.Sprintf("%s/%d", host, os.Getpid())
}

// openDeadLetterFile opens <state-dir>/dead-letters.ndjson for the broker sinks when the dead-letter setting is
// empty. With no state directory either, the publisher logs, counts and drops refused events; the log says so.
func (p *Pipeline) openDeadLetterFile() error {
	cfg := p.cfg
	if !cfg.Sink.IsBroker() || cfg.DeadLetter != "" {
		return nil
	}
	if cfg.StateDir == "" {
		p.log.Warn("no dead-letter destination: events the broker refuses will be logged and dropped; set dead-letter or state-dir")
		return nil
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return &config.Error{Key: "state-dir", Problem: err.Error(), Err: err}
	}
	path := filepath.Join(cfg.StateDir, config.DeadLetterFile)
	d, err := publisher.OpenDeadLetterFile(path)
	if err != nil {
		return &config.Error{Key: "state-dir", Problem: err.Error(), Err: err}
	}
	p.dead = d
	p.closers = append(p.closers, d.Close)
	p.log.Info("dead letters go to a file", "path", path)
	return nil
}

// Run reaches the broker (retrying until it answers or ctx ends), opens what needs it, polls until ctx ends, and
// then flushes the publisher and closes everything. It returns nil on a clean stop, also when ctx ends while the
// broker is still unreachable; a *config.Error when the broker refuses the settings (a stream or topic that must
// exist, credentials); another error when polling failed (every token retired).
func (p *Pipeline) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return errors.New("pipeline: Run called twice")
	}
	g, gctx := errgroup.WithContext(ctx)
	if p.status != nil {
		g.Go(func() error { return p.status.Run(gctx) })
	}
	g.Go(func() error {
		if err := p.connect(gctx); err != nil {
			if ctx.Err() != nil {
				return nil // stopped while connecting
			}
			return err
		}
		close(p.started)
		attrs := []any{"tags", len(p.cfg.Tags), "tokens", len(p.cfg.Credentials), "sink", p.SinkName(),
			"checkpoint_store", p.cfg.CheckpointStore}
		if p.cfg.CheckpointStore == config.StoreBolt {
			attrs = append(attrs, "state_dir", p.cfg.StateDir)
		}
		if p.cfg.Group != "" {
			attrs = append(attrs, "group", p.cfg.Group)
		}
		p.log.Info("tagstream running", append(attrs, "metrics_addr", p.StatusAddr())...)
		pl, coord := p.currentPoller(), p.currentCoordinator()
		var err error
		if coord != nil {
			err = p.runGroup(gctx, pl, coord)
		} else {
			err = pl.Run(gctx)
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("poller: %w", err)
		}
		return nil
	})
	err := g.Wait()
	if ctx.Err() != nil {
		p.log.Info("stopping: polling stopped, flushing the publisher and closing the checkpoint store")
	}
	if cerr := p.Close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	return err
}

// Started returns a channel that is closed once the broker is reached and polling starts.
func (p *Pipeline) Started() <-chan struct{} { return p.started }

// TagStatus returns the poller's view of every tag; nil before polling starts.
func (p *Pipeline) TagStatus() []poller.TagStatus {
	if pl := p.currentPoller(); pl != nil {
		return pl.Status()
	}
	return nil
}

// TokenStatus returns the poller's view of every token (never a token itself); nil before polling starts.
func (p *Pipeline) TokenStatus() []poller.TokenStatus {
	if pl := p.currentPoller(); pl != nil {
		return pl.TokenStatus()
	}
	return nil
}

// SinkName describes where events go ("jetstream stream TAGSTREAM", "kafka topic x", "stdout"); before the
// broker is reached, the sink setting.
func (p *Pipeline) SinkName() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sink != nil {
		return p.sink.name
	}
	return string(p.cfg.Sink)
}

// StatusAddr returns the bound address of the status endpoints, or "" when metrics-addr is empty.
func (p *Pipeline) StatusAddr() string {
	if p.status == nil {
		return ""
	}
	return p.status.Addr()
}

func (p *Pipeline) currentPoller() *poller.Poller {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.poller
}

// Close flushes the publisher (waiting at most shutdown-timeout), closes the checkpoint store and releases the
// connection and files; it is idempotent. A publisher that cannot flush (the broker is away) is only a warning:
// cursors move only after acknowledgements, so the unacknowledged events are fetched and published again after a
// restart.
func (p *Pipeline) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	s, store, conn := p.sink, p.store, p.conn
	p.mu.Unlock()

	var errs []error
	if p.status != nil {
		p.status.Close()
	}
	if s != nil {
		done := make(chan error, 1)
		go func() { done <- s.pub.Close() }()
		timeout := p.cfg.ShutdownTimeout
		if timeout <= 0 {
			timeout = 10 * time.Second
		}
		t := time.NewTimer(timeout)
		select {
		case err := <-done:
			if err != nil {
				p.log.Warn("the publisher did not flush cleanly; unacknowledged events will be published again after a restart", "err", p.red.String(err.Error()))
			}
		case <-t.C:
			p.log.Warn("the publisher did not flush within shutdown-timeout; unacknowledged events will be published again after a restart", "shutdown_timeout", timeout)
		}
		t.Stop()
	}
	if store != nil {
		if err := store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close checkpoint store: %w", err))
		}
	}
	if conn != nil {
		conn.Close()
	}
	for i := len(p.closers) - 1; i >= 0; i-- {
		if err := p.closers[i](); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
