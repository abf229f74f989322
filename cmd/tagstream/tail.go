package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/tagstream/tagstream/internal/config"
	"github.com/tagstream/tagstream/internal/consume"
	"github.com/tagstream/tagstream/internal/pipeline"
)

const tailHelp = `
Consume the events the pipeline published and print them, one line each (or the raw CloudEvents JSON with
--json). Reads JetStream with an ephemeral ordered consumer, core NATS with a plain subscription (new events
only) or Kafka with a reader per partition. --tag narrows to some tags: a subject filter on NATS, the event's
subject on Kafka. Stops on Ctrl-C, after --max events, or after --idle without events (the first event is given
at least --connect-timeout: a Kafka reader's first fetch dials the partition's leader).

Exit status: 0 stopped (Ctrl-C, --max, --idle); 1 the broker failed while reading; 2 a bad setting; 3 the broker
could not be reached (nothing listens at its address, or it timed out), said at once with the address.`

// tailOptions are the tail-only flags.
type tailOptions struct {
	tags          string
	fromBeginning bool
	json          bool
	max           int
	idle          time.Duration
}

func runTail(c *cli, args []string) int {
	fs := c.newFlagSet("tail", "[flags]", tailHelp)
	var o tailOptions
	fs.StringVar(&o.tags, "tag", "", "only events of these tags (comma-separated)")
	fs.BoolVar(&o.fromBeginning, "from-beginning", false, "start with the oldest stored event instead of new ones only")
	fs.BoolVar(&o.json, "json", false, "print each event as raw CloudEvents JSON (one per line)")
	fs.IntVar(&o.max, "max", 0, "stop after this many events (0 = no limit)")
	fs.DurationVar(&o.idle, "idle", 0, "stop when no event arrived for this long, the first at least for --connect-timeout (0 = never)")
	loader := config.NewLoader(fs, config.GroupSink|config.GroupOps, config.Needs{}, config.Defaults())
	if code, stop := c.parseFlags(fs, args); stop {
		return code
	}
	cfg, err := loader.Load(c.environ)
	if err != nil {
		return c.loadFailure(loader, err)
	}
	if o.max < 0 {
		return c.configFailure(&config.Error{Key: "max", Origin: "--max", Problem: "must not be negative"})
	}
	switch cfg.Sink {
	case config.SinkFile, config.SinkStdout:
		return c.configFailure(&config.Error{Key: "sink", Origin: "--sink", Problem: "tail reads jetstream, nats or kafka; for a file use tail -f"})
	case config.SinkNATS:
		if o.fromBeginning {
			return c.configFailure(&config.Error{Key: "from-beginning", Origin: "--from-beginning", Problem: "core NATS keeps no history; use --sink jetstream"})
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := config.CheckReachable(ctx, cfg); err != nil {
		return c.tailFailure(cfg, err)
	}
	logger := newLogger(c.stderr, cfg.LogFormat, cfg.LogLevel)
	for _, w := range cfg.Warnings {
		logger.Warn(w)
	}
	opts := pipeline.ConsumerOptions{Tags: splitComma(o.tags), Logger: logger}
	if o.fromBeginning {
		opts.Start = consume.StartFirst
	}
	cons, err := pipeline.NewConsumer(ctx, cfg, opts)
	if err != nil {
		if errors.Is(err, consume.ErrNoStream) || errors.Is(err, consume.ErrNoTopic) {
			err = fmt.Errorf("%w: has the pipeline run yet?", err)
		}
		return c.tailFailure(cfg, err)
	}
	defer cons.Close()

	p := newPrinter(c.stdout, o.json)
	defer p.flush()
	for n := 0; o.max == 0 || n < o.max; n++ {
		next, cancel := ctx, context.CancelFunc(func() {})
		if o.idle > 0 {
			next, cancel = context.WithTimeout(ctx, idleWait(n, o.idle, cfg.ConnectTimeout))
		}
		m, err := cons.Next(next)
		cancel()
		switch {
		case ctx.Err() != nil:
			return exitOK // interrupted
		case o.idle > 0 && errors.Is(err, context.DeadlineExceeded):
			return exitOK // idle
		case err != nil:
			p.flush()
			return c.tailFailure(cfg, err)
		}
		p.print(m)
	}
	return exitOK
}

// idleWait is how long tail waits for event n (from 0) under --idle: idle, and for the first event at least the
// connect timeout, so that a reader still dialing (Kafka fetches lazily, a partition at a time) does not end tail
// before anything could come.
func idleWait(n int, idle, connect time.Duration) time.Duration {
	if n == 0 {
		return max(idle, connect)
	}
	return idle
}

// tailFailure prints err; a broker that cannot be reached exits 3 with a hint, anything else 1 (a configuration
// problem found late, 2).
func (c *cli) tailFailure(cfg *config.Config, err error) int {
	msg := cfg.Redactor().String(err.Error())
	switch {
	case pipeline.IsUnreachable(err):
		fmt.Fprintf(c.stderr, "tagstream tail: %s\n  is the broker running? tagstream demo --keep-running starts a NATS server; check --sink and its address\n", msg)
		return exitUnreachable
	case isConfigError(err):
		return c.configFailure(err)
	}
	fmt.Fprintf(c.stderr, "tagstream tail: %s\n", msg)
	return exitFailure
}

// printer prints events one per line.
type printer struct {
	w    *bufio.Writer
	json bool
}

func newPrinter(w io.Writer, json bool) *printer {
	return &printer{w: bufio.NewWriter(w), json: json}
}

// print writes one event: its structured JSON with --json, else a line for people. Each line is flushed, so that
// a reader of a pipe sees events as they come.
func (p *printer) print(m consume.Message) {
	if p.json {
		p.w.Write(m.JSON)
	} else {
		p.w.WriteString(prettyLine(m))
	}
	p.w.WriteByte('\n')
	p.w.Flush()
}

func (p *printer) flush() { p.w.Flush() }

// prettyLine describes an event on one line: time, tag, type, media id, user, caption and link; a gap marker
// says what is missing; a record that is not an event is shown clipped. Every text from the event is escaped
// (the caption quoted, the rest with control characters made visible), so that an event cannot drive the
// terminal.
func prettyLine(m consume.Message) string {
	e := m.Event
	if e == nil {
		return "?  unreadable event: " + printable(clip(string(m.JSON), 120))
	}
	when := ""
	if !e.Time.IsZero() {
		when = e.Time.UTC().Format("2006-01-02 15:04:05")
	}
	if g := e.Gap; g != nil {
		missing := "unknown"
		if g.Missing >= 0 {
			missing = fmt.Sprint(g.Missing)
		}
		return printable(fmt.Sprintf("%s  #%s  GAP  %s media missing between cursors %s and %s: %s", when, e.Subject, missing, g.FromCursor, g.ToCursor, g.Reason))
	}
	d := e.Data
	caption := strings.Join(strings.Fields(d.Caption), " ")
	return fmt.Sprintf("%s  #%-16s %-8s %-24s @%-16s %q  %s", when, printable(e.Subject), printable(d.Type), printable(d.MediaID),
		printable(d.User.Username), clip(caption, 60), printable(d.Link))
}

// clip shortens s to at most n runes, marking the cut.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// splitComma splits a comma-separated list, dropping empty items.
func splitComma(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
