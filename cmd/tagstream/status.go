package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/tagstream/tagstream/internal/config"
	"github.com/tagstream/tagstream/internal/status"
)

const statusHelp = `
Show what a running tagstream is doing, read from its /status (the metrics-addr it runs with, given here by
--metrics-addr, TAGSTREAM_METRICS_ADDR or the config file): whether it is ready (each failing check named); per
tag its owner, cursor (or the saved cursor it resumes from), last and next poll, estimated posting rate, lag, gaps
and state, such as "catching up: 3 pages so far, 99 media pending", sorted by lag, longest first; per token its
fingerprint, budget left and state. --json prints the report as /status serves it, for scripts.

Exit status:
  0  the report was printed (ready or not: its first line says)
  1  something answered at the address, but not a tagstream
  2  a bad setting (no metrics-addr)
  3  nothing answered at the address: is tagstream running, with that metrics-addr?`

// reportSource is where status reads a report from. Today it is one running instance's /status
// (instanceSource). When the command runs group mode (package group; not wired into run yet), a second source
// will read the group's bucket (members, and own.<tag> naming the member that owns each tag), fetch each
// member's report and merge them, each tag's Owner naming its member; the table and --json stay as they are.
type reportSource interface {
	Report(ctx context.Context) (status.Report, error)
	String() string
}

// instanceSource reads the /status of one running tagstream.
type instanceSource struct{ addr string }

func (s instanceSource) Report(ctx context.Context) (status.Report, error) {
	return status.Fetch(ctx, &http.Client{}, s.addr)
}

func (s instanceSource) String() string {
	u, err := status.StatusURL(s.addr)
	if err != nil {
		return s.addr
	}
	return u
}

func runStatus(c *cli, args []string) int {
	fs := c.newFlagSet("status", "[flags]", statusHelp)
	asJSON := fs.Bool("json", false, "print the report as JSON, as /status serves it")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for the answer")
	loader := config.NewLoader(fs, config.GroupStatus, config.Needs{}, config.Defaults())
	if code, stop := c.parseFlags(fs, args); stop {
		return code
	}
	cfg, err := loader.Load(c.environ)
	if err != nil {
		return c.loadFailure(loader, err)
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(c.stderr, "tagstream status: warning: %s\n", w)
	}
	if cfg.MetricsAddr == "" {
		return c.configFailure(&config.Error{Key: "metrics-addr", Problem: "status reads a running tagstream's /status: " +
			"give the metrics-addr it runs with (--metrics-addr 127.0.0.1:9464, TAGSTREAM_METRICS_ADDR or --config)"})
	}
	if _, err := status.StatusURL(cfg.MetricsAddr); err != nil {
		return c.configFailure(&config.Error{Key: "metrics-addr", Problem: err.Error()})
	}
	if *timeout <= 0 {
		return c.configFailure(&config.Error{Key: "timeout", Origin: "--timeout", Problem: "must be positive"})
	}
	var src reportSource = instanceSource{addr: cfg.MetricsAddr}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	r, err := src.Report(ctx)
	switch {
	case errors.Is(err, status.ErrNotStatus):
		fmt.Fprintf(c.stderr, "tagstream status: %v\n", err)
		return exitFailure
	case err != nil:
		fmt.Fprintf(c.stderr, "tagstream status: nothing answered at %s: %s\n  is tagstream running, with --metrics-addr %s?\n",
			src, dialCause(err, *timeout), cfg.MetricsAddr)
		return exitUnreachable
	}
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return exitFailure
		}
		return exitOK
	}
	if err := status.WriteTable(c.stdout, r, r.Time); err != nil {
		return exitFailure
	}
	return exitOK
}

// dialCause words why a request got no answer: refused, timed out, an unknown host.
func dialCause(err error, timeout time.Duration) string {
	var dns *net.DNSError
	var ne net.Error
	switch {
	case errors.As(err, &dns):
		return "cannot resolve " + dns.Name
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return fmt.Sprintf("no answer within %s", timeout)
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err.Error()
	}
	return err.Error()
}
