package main

import (
	"context"
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
signal the instance commits its last polls and leaves so that the others take its tags at once (docs/group.md).`

func runRun(c *cli, args []string) int {
	fs := c.newFlagSet("run", "[flags]", runHelp)
	loader := config.NewLoader(fs, config.GroupAll, config.Needs{Tags: true, Tokens: true}, config.Defaults())
	if code, stop := c.parseFlags(fs, args); stop {
		return code
	}
	cfg, err := loader.Load(c.environ)
	if err != nil {
		return c.loadFailure(loader, err)
	}
	logger := newLogger(c.stderr, cfg.LogFormat, cfg.LogLevel)
	for _, w := range cfg.Warnings {
		logger.Warn(w)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

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
