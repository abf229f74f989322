package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/tagstream/tagstream/internal/config"
	"github.com/tagstream/tagstream/internal/status"
	"github.com/tagstream/tagstream/poller"
	"github.com/tagstream/tagstream/poller/checkpoint"
	"github.com/tagstream/tagstream/publisher"
)

// pipeline is the wired process: checkpoint store -> publisher -> poller, plus the status endpoints.
type pipeline struct {
	cfg    *config.Config
	log    *slog.Logger
	reg    *prometheus.Registry
	store  checkpoint.Store
	sink   *sink
	poller *poller.Poller
	status *status.Server // nil when metrics-addr is empty
	closed bool
}

// pipelineOptions lets the demo adjust what run takes from the configuration.
type pipelineOptions struct {
	stdout     io.Writer                                  // sink=stdout writes here
	nc         *nats.Conn                                 // an open NATS connection to reuse (nil: dial one when needed)
	rateWindow time.Duration                              // poller.Config.RateWindow (the simulator's scaled hour); 0 = an hour
	pub        func(publisher.Publisher) poller.Publisher // wraps the publisher (the demo observes hand-offs)
}

// startupError marks a failure while building the pipeline that is a configuration problem (exit status 2).
type startupError struct {
	key string
	err error
}

func (e *startupError) Error() string { return fmt.Sprintf("config: %s: %v", e.key, e.err) }
func (e *startupError) Unwrap() error { return e.err }

// classifyStartup turns a constructor error into a *startupError naming the setting when it is a configuration
// problem, and returns other errors unchanged.
func classifyStartup(cfg *config.Config, err error) error {
	key := ""
	switch {
	case errors.Is(err, publisher.ErrNoStream):
		key = "stream"
	case errors.Is(err, publisher.ErrTopicNotFound):
		key = "kafka-topic"
	case errors.Is(err, poller.ErrNoTokens):
		key = "tokens-file"
	case errors.Is(err, poller.ErrInvalidTag):
		key = "tags"
	case errors.Is(err, checkpoint.ErrLocked):
		key = "state-dir"
	case errors.Is(err, publisher.ErrConfig), errors.Is(err, poller.ErrConfig):
		key = "config"
	case errors.Is(err, nats.ErrNoServers), errors.Is(err, nats.ErrAuthorization), errors.Is(err, nats.ErrAuthExpired),
		errors.Is(err, nats.ErrAuthRevoked), errors.Is(err, nats.ErrTimeout):
		key = "nats-url"
	}
	if key == "" {
		return err
	}
	return &startupError{key: key, err: err}
}

// newPipeline opens the store and the sink, builds the poller and binds the status listener. It does no
// polling; call run. On error everything opened so far is closed.
func newPipeline(ctx context.Context, cfg *config.Config, logger *slog.Logger, opt pipelineOptions) (_ *pipeline, err error) {
	p := &pipeline{cfg: cfg, log: logger, reg: prometheus.NewRegistry()}
	p.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	defer func() {
		if err != nil {
			p.close()
			err = classifyStartup(cfg, err)
		}
	}()

	// The status listener first: a busy address is a configuration problem found before any work.
	if cfg.MetricsAddr != "" {
		p.status = status.New(status.Config{
			Addr:     cfg.MetricsAddr,
			Gatherer: p.reg,
			Checks:   p.checks(),
			Report:   p.report,
			Logger:   logger,
		})
		if err := p.status.Listen(); err != nil {
			return nil, &startupError{key: "metrics-addr", err: err}
		}
	}

	// The sink (it may open the NATS connection that the KV store shares).
	nc := opt.nc
	s, err := openSink(ctx, cfg, nc, opt.stdout, logger, p.reg)
	if err != nil {
		return nil, err
	}
	p.sink = s
	if nc == nil {
		nc = s.nc
	}

	// The checkpoint store.
	switch cfg.CheckpointStore {
	case config.StoreMemory:
		p.store = checkpoint.NewMemory()
		logger.Warn("checkpoint-store=memory: cursors are lost on exit; a restart starts each tag afresh")
	case config.StoreJetStreamKV:
		if nc == nil {
			c, err := publisher.Connect(ctx, natsConnConfig(cfg), logger)
			if err != nil {
				return nil, err
			}
			p.sink.close = append(p.sink.close, func() error { c.Close(); return nil })
			nc = c
		}
		js, err := jetstream.New(nc)
		if err != nil {
			return nil, err
		}
		kv, err := checkpoint.NewJetStreamKV(ctx, js, checkpoint.KVConfig{Bucket: cfg.KVBucket, Replicas: cfg.Replicas})
		if err != nil {
			return nil, err
		}
		p.store = kv
	default:
		if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
			return nil, &startupError{key: "state-dir", err: err}
		}
		// Many tags persist at once (one Put per poll that found media): let concurrent Puts share one fsync.
		// Each Put still returns only when durable; a lone writer waits at most 2 ms more (bench/checkpoint.md).
		b, err := checkpoint.OpenBolt(filepath.Join(cfg.StateDir, checkpointFile), &checkpoint.BoltOptions{GroupCommit: 2 * time.Millisecond})
		if err != nil {
			return nil, err
		}
		p.store = b
	}

	// The poller.
	pcfg := pollerConfig(cfg)
	pcfg.RateWindow = opt.rateWindow
	var pub poller.Publisher = p.sink.pub
	if opt.pub != nil {
		pub = opt.pub(p.sink.pub)
	}
	pl, err := poller.New(pcfg, pub, p.store, logger, p.reg)
	if err != nil {
		return nil, err
	}
	p.poller = pl
	return p, nil
}

// pollerConfig maps the settings onto the poller's configuration.
func pollerConfig(cfg *config.Config) poller.Config {
	pc := poller.Config{
		BaseURL:           cfg.APIURL,
		AllowInsecureHTTP: cfg.AllowInsecureHTTP,
		CAFile:            cfg.CAFile,
		RequestsPerHour:   cfg.RequestsPerHour,
		Tags:              append([]string(nil), cfg.Tags...),
		PageSize:          cfg.PageSize,
		CatchUpPages:      cfg.CatchUpPages,
		BackfillPages:     cfg.BackfillPages,
		MinInterval:       cfg.MinInterval,
		MaxInterval:       cfg.MaxInterval,
		RequestTimeout:    cfg.RequestTimeout,
		ShutdownTimeout:   cfg.ShutdownTimeout,
		Source:            cfg.Source,
		AttachRaw:         cfg.AttachRaw,
	}
	if cfg.Start == "backfill" {
		pc.Start = poller.StartBackfill
	}
	for _, c := range cfg.Credentials {
		pc.Tokens = append(pc.Tokens, poller.Token{Value: c.Value, ClientID: c.ClientID})
	}
	return pc
}

// run polls until ctx ends, then flushes the publisher and closes the store. It returns nil on a clean stop.
func (p *pipeline) run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	pollCtx, stopPolling := context.WithCancel(gctx)
	defer stopPolling()
	g.Go(func() error {
		err := p.poller.Run(pollCtx)
		if err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("poller: %w", err)
		}
		return nil
	})
	if p.status != nil {
		g.Go(func() error { return p.status.Run(gctx) })
	}
	p.log.Info("tagstream running", "tags", len(p.cfg.Tags), "tokens", len(p.cfg.Credentials), "sink", p.sink.name,
		"checkpoint_store", p.cfg.CheckpointStore, "metrics_addr", p.statusAddr())
	err := g.Wait()
	if ctx.Err() != nil {
		p.log.Info("stopping: polling stopped, flushing the publisher and closing the checkpoint store")
	}
	if cerr := p.close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	return err
}

func (p *pipeline) statusAddr() string {
	if p.status == nil {
		return ""
	}
	return p.status.Addr()
}

// close flushes the publisher (waiting at most shutdown-timeout), then closes the connection and the store; it
// is idempotent. A publisher that cannot flush (the broker is away) is only a warning: cursors move only after
// acknowledgements, so the unacknowledged events are fetched and published again after a restart.
func (p *pipeline) close() error {
	if p.closed {
		return nil
	}
	p.closed = true
	var errs []error
	if p.status != nil {
		p.status.Close()
	}
	if p.sink != nil {
		if p.sink.pub != nil {
			pub := p.sink.pub
			done := make(chan error, 1)
			go func() { done <- pub.Close() }()
			timeout := durationOr(p.cfg.ShutdownTimeout, 10*time.Second)
			select {
			case err := <-done:
				if err != nil {
					p.log.Warn("the publisher did not flush cleanly; unacknowledged events will be published again after a restart", "err", err)
				}
			case <-time.After(timeout):
				p.log.Warn("the publisher did not flush within shutdown-timeout; unacknowledged events will be published again after a restart", "shutdown_timeout", timeout)
			}
			p.sink.pub = nil
		}
		if err := p.sink.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close the broker connection: %w", err))
		}
	}
	if p.store != nil {
		if err := p.store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close checkpoint store: %w", err))
		}
	}
	return errors.Join(errs...)
}

// checks are the readiness conditions of /readyz.
func (p *pipeline) checks() []status.Check {
	return []status.Check{
		{Name: "broker", Func: func(ctx context.Context) error {
			if p.sink == nil {
				return errors.New("not connected yet")
			}
			return p.sink.ready(ctx)
		}},
		{Name: "tokens", Func: func(context.Context) error {
			if p.poller == nil {
				return errors.New("poller not started")
			}
			return usableToken(p.poller.TokenStatus(), time.Now())
		}},
		{Name: "checkpoint-store", Func: func(ctx context.Context) error {
			if p.store == nil || p.closed {
				return errors.New("not open")
			}
			// A Get of a tag that is never polled: cheap for any number of tags.
			_, _, err := p.store.Get(ctx, "_tagstream_readyz")
			return err
		}},
	}
}

// usableToken returns nil when at least one token is neither retired nor parked.
func usableToken(ts []poller.TokenStatus, now time.Time) error {
	retired, parked := 0, 0
	var until time.Time
	for _, t := range ts {
		switch {
		case t.Retired:
			retired++
		case t.ParkedUntil.After(now):
			parked++
			if until.IsZero() || t.ParkedUntil.Before(until) {
				until = t.ParkedUntil
			}
		default:
			return nil
		}
	}
	if len(ts) == 0 {
		return errors.New("no tokens")
	}
	if parked > 0 {
		return fmt.Errorf("%d tokens parked (first back at %s), %d retired", parked, until.UTC().Format(time.RFC3339), retired)
	}
	return fmt.Errorf("all %d tokens retired", retired)
}

// report builds the /status body.
func (p *pipeline) report() status.Report {
	r := status.Report{Version: Version(), Sink: p.cfg.Sink}
	if p.sink != nil {
		r.Sink = p.sink.name
	}
	if p.poller == nil {
		return r
	}
	for _, t := range p.poller.Status() {
		r.Tags = append(r.Tags, status.TagStatus{
			Tag: t.Tag, Cursor: t.Cursor, Segments: t.Segments, LastPoll: t.LastPoll, LastAttempt: t.LastAttempt, NextPoll: t.NextPoll,
			RateEstimate: t.RateEstimate, LagSeconds: t.Lag.Seconds(), Published: t.Published, Gaps: t.Gaps,
			LastError: t.LastError,
		})
	}
	for _, t := range p.poller.TokenStatus() {
		r.Tokens = append(r.Tokens, status.TokenStatus{
			Index: t.Index, Fingerprint: t.Fingerprint, ClientID: t.ClientID, Limit: t.Limit, Remaining: t.Remaining,
			ParkedUntil: t.ParkedUntil, Retired: t.Retired,
		})
	}
	return r
}
