package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/tagstream/tagstream/internal/config"
	"github.com/tagstream/tagstream/internal/pipeline"
)

const runHelp = `
Poll the configured tags and publish one CloudEvents event per new media until SIGINT or SIGTERM. Every setting
is validated before any work starts; a bad setting exits with status 2 and one line that names it. A broker that
cannot be reached is an outage, not a bad setting: tagstream keeps trying to reach it (with backoff, logging each
failure; /readyz says why) and starts polling once it answers. On a signal tagstream stops polling, waits for the
broker to acknowledge what is in flight, saves the cursors and exits 0; a second signal exits at once. Started
again with the same state it resumes where it stopped.

With --group NAME (and checkpoint-store jetstream-kv, nats-url listing the cluster's servers) the instance joins a
group of identical instances that share the group's tags and the tokens' budgets through JetStream KV buckets:
tags given are added to the group's set (none are needed), each tag is polled by one live member, and on a
signal the instance commits its last polls and leaves so that the others take its tags at once (docs/group.md).

SIGHUP re-reads the config file (--config or TAGSTREAM_CONFIG) and applies its tags without a restart: a single
instance then polls exactly the new list (added tags start at once, removed ones stop after their poll in flight;
every cursor is kept); in group mode the file's tags are added to the group's set (tagstream tags remove takes
tags out). Other changed settings are logged as needing a restart; an invalid file is logged and ignored.`

func runRun(c *cli, args []string) int {
	fs := c.newFlagSet("run", "[flags]", runHelp)
	loader := config.NewLoader(fs, config.GroupAll, config.Needs{Tags: true, Tokens: true}, config.Defaults())
	pprofAddr := fs.String("pprof-addr", "", "serve Go's profiling endpoints (/debug/pprof/) here, for measuring; "+
		"off by default, keep it on loopback")
	if code, stop := c.parseFlags(fs, args); stop {
		return code
	}
	cfg, err := loader.Load(c.environ)
	if err != nil {
		return c.loadFailure(loader, err)
	}
	logger := newLogger(c.stderr, cfg.LogFormat, cfg.LogLevel)
	if *pprofAddr != "" {
		stopPprof, err := servePprof(*pprofAddr, logger)
		if err != nil {
			logger.Error("--pprof-addr", "err", err)
			return exitUsage
		}
		defer stopPprof()
	}
	for _, w := range cfg.Warnings {
		logger.Warn(w)
	}
	base, cancel := context.WithCancel(context.Background())
	defer cancel()
	if c.stop != nil {
		go func() {
			select {
			case <-c.stop:
				cancel()
			case <-base.Done():
			}
		}()
	}
	ctx, stop := signal.NotifyContext(base, os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := c.hup
	if hup == nil {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGHUP)
		defer signal.Stop(ch)
		hup = ch
	}

	p, err := pipeline.New(ctx, cfg, pipeline.Deps{Logger: logger, Version: Version(), Stdout: c.stdout})
	if err != nil {
		return c.failure(cfg, err)
	}
	// After the first signal, a second one kills the process; a stuck shutdown is ended by a watchdog.
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-done:
			return
		case <-ctx.Done():
		}
		stop()
		// Polling gets shutdown-timeout to finish its publishes, the publisher as long again to flush.
		t := time.NewTimer(2*cfg.ShutdownTimeout + 5*time.Second)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			logger.Error("shutdown took too long; exiting without a clean stop", "shutdown_timeout", cfg.ShutdownTimeout)
			os.Exit(exitFailure)
		}
	}()
	go reloadOnHUP(ctx, hup, loader, c.environ, cfg, p, logger)
	if err := p.Run(ctx); err != nil {
		if isConfigError(err) {
			return c.configFailure(err)
		}
		logger.Error("tagstream stopped with an error", "err", cfg.Redactor().String(err.Error()))
		return exitFailure
	}
	logger.Info("tagstream stopped cleanly")
	return exitOK
}

// reloadOnHUP re-reads the configuration on every signal from hup until ctx ends and hands it to the pipeline
// (see Pipeline.Reload). Without a config file there is nothing to re-read; an invalid file keeps the running
// configuration. Every outcome is logged.
func reloadOnHUP(ctx context.Context, hup <-chan os.Signal, loader *config.Loader, environ []string, cfg *config.Config,
	p *pipeline.Pipeline, logger *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		if cfg.ConfigFile == "" {
			logger.Warn("SIGHUP: no config file to re-read (start with --config to change the tags this way)")
			continue
		}
		next, err := loader.Load(environ)
		if err != nil {
			logger.Error("SIGHUP: the config file cannot be used; the running configuration stays", "file", cfg.ConfigFile,
				"err", cfg.Redactor().String(err.Error()))
			continue
		}
		if err := p.Reload(ctx, next); err != nil && ctx.Err() == nil {
			logger.Error("SIGHUP: the tags were not changed", "err", cfg.Redactor().String(err.Error()))
		}
	}
}
