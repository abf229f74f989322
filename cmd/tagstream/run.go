package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/tagstream/tagstream/internal/config"
)

const runHelp = `
Poll the configured tags and publish one CloudEvents event per new media until SIGINT or SIGTERM. Every setting
is validated (and the broker dialed) before any work starts; a bad setting exits with status 2 and one line that
names it. On a signal tagstream stops polling, waits for the broker to acknowledge what is in flight, saves the
cursors and exits 0; a second signal exits at once. Started again with the same state it resumes where it stopped.`

func runRun(c *cli, args []string) int {
	fs := c.newFlagSet("run", "[flags]", runHelp)
	loader := config.NewLoader(fs, config.GroupAll, config.Needs{Tags: true, Tokens: true}, config.Defaults())
	if code, stop := c.parseFlags(fs, args); stop {
		return code
	}
	cfg, err := loader.Load(c.environ)
	if err != nil {
		return c.configFailure(err)
	}
	logger := newLogger(c.stderr, cfg.LogFormat, cfg.LogLevel)
	for _, w := range cfg.Warnings {
		logger.Warn(w)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := config.CheckReachable(ctx, cfg); err != nil {
		return c.configFailure(err)
	}
	red := newRedactor(cfg)

	p, err := newPipeline(ctx, cfg, logger, pipelineOptions{stdout: c.stdout})
	if err != nil {
		var se *startupError
		if errors.As(err, &se) || isConfigError(err) {
			return c.configFailure(errors.New(red.String(err.Error())))
		}
		if ctx.Err() != nil {
			return exitOK // stopped by a signal while connecting
		}
		fmt.Fprintf(c.stderr, "tagstream: %s\n", red.String(err.Error()))
		return exitFailure
	}

	// After the first signal, a second one kills the process; a stuck shutdown is ended by a watchdog.
	go func() {
		<-ctx.Done()
		stop()
		// Polling gets shutdown-timeout to finish its publishes, the publisher as long again to flush.
		t := time.NewTimer(2*cfg.ShutdownTimeout + 5*time.Second)
		defer t.Stop()
		<-t.C
		logger.Error("shutdown took too long; exiting without a clean stop", "shutdown_timeout", cfg.ShutdownTimeout)
		os.Exit(exitFailure)
	}()
	if err := p.run(ctx); err != nil {
		logger.Error("tagstream stopped with an error", "err", red.String(err.Error()))
		return exitFailure
	}
	logger.Info("tagstream stopped cleanly")
	return exitOK
}
