package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tagstream/tagstream/internal/config"
	"github.com/tagstream/tagstream/internal/pipeline"
	"github.com/tagstream/tagstream/poller"
)

const checkHelp = `
Validate the configuration, then reach what run would use, through the same constructors and probes: the API
(one request with the first token, reporting its budget but never the token), the broker (server, then the stream
or topic run would publish to) and the checkpoint store. It publishes, creates and locks nothing.

Exit status:
  0  everything passed: run would start polling at once
  1  a check failed: the API refused the token, a stream or topic that must exist is missing, ...
  2  the configuration is invalid (one line names the setting)
  3  only a broker could not be reached (refused, timed out, unknown host): an outage, not a setting; run would
     keep trying until it answers`

func runCheck(c *cli, args []string) int {
	fs := c.newFlagSet("check", "[flags]", checkHelp)
	loader := config.NewLoader(fs, config.GroupAll, config.Needs{Tags: true, Tokens: true}, config.Defaults())
	if code, stop := c.parseFlags(fs, args); stop {
		return code
	}
	cfg, err := loader.Load(c.environ)
	if err != nil {
		return c.loadFailure(loader, err)
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(c.stdout, "warn  %s\n", w)
	}
	file := "no config file"
	if cfg.ConfigFile != "" {
		file = "file " + cfg.ConfigFile
	}
	fmt.Fprintf(c.stdout, "ok    config: %s, %s, %s, sink %s\n", file, plural(len(cfg.Tags), "tag"), plural(len(cfg.Credentials), "token"), cfg.Sink)

	ctx, cancel := context.WithTimeout(context.Background(), cfg.RequestTimeout+2*cfg.ConnectTimeout+5*time.Second)
	defer cancel()
	failed, unreachable := false, false
	for _, r := range pipeline.Check(ctx, cfg, pipeline.Deps{Version: Version()}) {
		switch {
		case r.Err == nil:
			fmt.Fprintf(c.stdout, "ok    %s: %s\n", r.Name, r.Detail)
		case r.Unreachable():
			unreachable = true
			c.printFailure(r)
		default:
			failed = true
			c.printFailure(r)
		}
	}
	switch {
	case failed:
		return exitFailure
	case unreachable:
		return exitUnreachable
	}
	return exitOK
}

// printFailure prints a failed check: what failed (for the API, the cause before the request it ended), then
// what it means on an indented line.
func (c *cli) printFailure(r pipeline.CheckResult) {
	var pe *poller.ProbeError
	if errors.As(r.Err, &pe) {
		fmt.Fprintf(c.stdout, "FAIL  %s: %v (GET %s)\n", r.Name, pe.Err, pe.URL)
	} else {
		fmt.Fprintf(c.stdout, "FAIL  %s: %v\n", r.Name, r.Err)
	}
	if r.Hint != "" {
		fmt.Fprintf(c.stdout, "      %s\n", r.Hint)
	}
}

// plural returns "1 tag", "2 tags".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
