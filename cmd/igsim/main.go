// Command igsim runs the Instagram v1 API simulator (package testenv) until SIGINT or SIGTERM.
//
// It prints the API base URL, the CA file to trust (HTTPS) and the admin URL. Access tokens come from a file
// (-tokens-file, one per line, '#' comments) or the IGSIM_TOKENS environment variable (comma or whitespace
// separated); they are never printed. With neither tokens nor client ids, igsim makes one token and writes it to a
// file readable only by the user, whose path it prints.
//
// Example:
//
//	IGSIM_TOKENS=devtoken igsim -plain-http -addr 127.0.0.1:8080 -tags 'coffee=0.5,tbt=2:100' -cursors opaque
//
// # A compressed hour
//
// -time-scale compresses the rate-limit window and nothing else: with -time-scale 60 each token may make
// -rate-limit requests (default 5000) per real minute instead of per hour. X-Ratelimit-Limit still says 5000 and
// X-Ratelimit-Remaining counts down from 4999 within the minute, the numbers the real API sent per hour, so a
// client's pacing reads what it would read from the real API, and must be told that the hour lasts a minute: for
// tagstream, poller.Config.RateWindow = 1m. igsim prints the window at start ("igsim: limit 5000 requests per
// 1m0s"). Posting rates (-tags), -slow-delay and -fault-schedule stay in real time.
//
//	IGSIM_TOKENS=devtoken igsim -plain-http -time-scale 60 -tags 'coffee=50:1000'   # one simulated hour per minute
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tagstream/tagstream/testenv"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "igsim:", err)
		os.Exit(2)
	}
}

// options are the parsed command line.
type options struct {
	cfg        testenv.Config
	truthPath  string
	tokensFile string
	logLevel   string
}

// parse reads the command line and the environment into a Config. It never puts a token in an error.
func parse(args []string, getenv func(string) string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("igsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &o.cfg
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:0", "API listen address")
	fs.StringVar(&c.AdminAddr, "admin-addr", "", "admin listen address (default: API host, any port)")
	fs.BoolVar(&c.PlainHTTP, "plain-http", false, "serve plain HTTP instead of HTTPS")
	fs.StringVar(&c.CertDir, "cert-dir", "", "directory for ca.pem (default: a temporary directory removed at exit)")
	fs.StringVar(&o.tokensFile, "tokens-file", "", "file of accepted access tokens, one per line (also $IGSIM_TOKENS)")
	clientIDs := fs.String("client-ids", "", "accepted client ids, comma separated (also $IGSIM_CLIENT_IDS)")
	fs.IntVar(&c.RequestsPerHour, "rate-limit", 5000,
		"requests per simulated hour per token or client id (a sliding window of 1h / -time-scale real time),\n"+
			"the value of X-Ratelimit-Limit")
	fs.Float64Var(&c.TimeScale, "time-scale", 1,
		"simulated seconds per real second, for the rate-limit window only: 60 makes the hour one real minute\n"+
			"(X-Ratelimit-* keep counting per hour: give the client the scaled window, e.g. tagstream's\n"+
			"poller RateWindow 1m; igsim prints it at start)")
	overLimit := fs.String("over-limit", "503", "answer over the limit: 503, 429 or 429flat")
	cursors := fs.String("cursors", "numeric", "cursor style: numeric or opaque")
	fs.BoolVar(&c.InclusiveMin, "inclusive-min", false, "min_tag_id also returns the boundary item")
	fs.IntVar(&c.Retention, "retention", 0, "newest media per tag that can be served (0 = unlimited)")
	fs.Int64Var(&c.Seed, "seed", 1, "seed of media content, cursors and arrivals")
	tags := fs.String("tags", "", "tags as name=rate[:initial],... (rate in media per second)")
	initial := fs.Int("initial", 50, "initial media of tags given without :initial")
	fs.StringVar(&o.truthPath, "ground-truth", "", "write the ground truth as NDJSON to this file ('-' = stdout)")
	f := &c.Faults
	fs.Float64Var(&f.Down503Envelope, "fault-503-envelope", 0, "probability of a 503 with the envelope")
	fs.Float64Var(&f.Down503HTML, "fault-503-html", 0, "probability of a 503 with an HTML body")
	fs.Float64Var(&f.Error500, "fault-500", 0, "probability of a 500")
	fs.Float64Var(&f.RateLimit429, "fault-429", 0, "probability of a 429 OAuthRateLimitException")
	fs.Float64Var(&f.Slow, "fault-slow", 0, "probability of a slow answer")
	fs.Float64Var(&f.Reset, "fault-reset", 0, "probability of a connection reset")
	fs.Float64Var(&f.Truncated, "fault-truncated", 0, "probability of truncated JSON")
	fs.DurationVar(&f.SlowDelay, "slow-delay", 2*time.Second, "delay of a slow answer")
	schedule := fs.String("fault-schedule", "", "scheduled faults as Kind@start+duration,... relative to start, e.g. Reset@10s+5s")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	var err error
	if c.OverLimit, err = testenv.ParseOverLimit(*overLimit); err != nil {
		return nil, err
	}
	if c.Cursors, err = testenv.ParseCursorStyle(*cursors); err != nil {
		return nil, err
	}
	if c.Tags, err = parseTags(*tags, *initial); err != nil {
		return nil, err
	}
	if c.Faults.Schedule, err = parseSchedule(*schedule, time.Now()); err != nil {
		return nil, err
	}
	if o.tokensFile != "" {
		b, err := os.ReadFile(o.tokensFile)
		if err != nil {
			return nil, fmt.Errorf("tokens file: %w", err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			if line != "" && !strings.HasPrefix(line, "#") {
				c.Tokens = append(c.Tokens, line)
			}
		}
	}
	c.Tokens = append(c.Tokens, splitList(getenv("IGSIM_TOKENS"))...)
	c.ClientIDs = append(splitList(*clientIDs), splitList(getenv("IGSIM_CLIENT_IDS"))...)
	return o, nil
}

func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' || r == '\r' })
}

// commaItems returns the items of a comma-separated list, trimmed, without the empty ones.
func commaItems(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// parseTags reads name=rate[:initial],...
func parseTags(s string, initial int) ([]testenv.TagConfig, error) {
	var out []testenv.TagConfig
	for _, item := range commaItems(s) {
		name, spec, ok := strings.Cut(item, "=")
		if !ok {
			return nil, fmt.Errorf("tag %q: want name=rate[:initial]", item)
		}
		tc := testenv.TagConfig{Name: strings.TrimPrefix(strings.TrimSpace(name), "#"), Initial: initial}
		rate, init, hasInit := strings.Cut(spec, ":")
		r, err := strconv.ParseFloat(strings.TrimSpace(rate), 64)
		if err != nil {
			return nil, fmt.Errorf("tag %q: rate: %w", tc.Name, err)
		}
		tc.Rate = r
		if hasInit {
			n, err := strconv.Atoi(strings.TrimSpace(init))
			if err != nil {
				return nil, fmt.Errorf("tag %q: initial: %w", tc.Name, err)
			}
			tc.Initial = n
		}
		out = append(out, tc)
	}
	return out, nil
}

// parseSchedule reads Kind@start+duration,... with start relative to now.
func parseSchedule(s string, now time.Time) ([]testenv.ScheduledFault, error) {
	var out []testenv.ScheduledFault
	for _, item := range commaItems(s) {
		kind, rest, ok := strings.Cut(item, "@")
		at, dur, ok2 := strings.Cut(rest, "+")
		if !ok || !ok2 {
			return nil, fmt.Errorf("fault schedule %q: want Kind@start+duration", item)
		}
		a, err := time.ParseDuration(at)
		if err != nil {
			return nil, fmt.Errorf("fault schedule %q: start: %w", item, err)
		}
		d, err := time.ParseDuration(dur)
		if err != nil {
			return nil, fmt.Errorf("fault schedule %q: duration: %w", item, err)
		}
		out = append(out, testenv.ScheduledFault{Kind: kind, At: now.Add(a), For: d})
	}
	return out, nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	o, err := parse(args, getenv, stderr)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("log level %q: %w", o.logLevel, err)
	}
	o.cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	var tokenFile string
	if len(o.cfg.Tokens) == 0 && len(o.cfg.ClientIDs) == 0 {
		tok, path, err := makeToken()
		if err != nil {
			return err
		}
		o.cfg.Tokens, tokenFile = []string{tok}, path
		defer os.RemoveAll(filepath.Dir(path))
	}
	switch o.truthPath {
	case "":
	case "-":
		o.cfg.GroundTruth = stdout
	default:
		f, err := os.Create(o.truthPath)
		if err != nil {
			return fmt.Errorf("ground truth: %w", err)
		}
		defer f.Close()
		o.cfg.GroundTruth = f
	}
	s, err := testenv.New(o.cfg)
	if err != nil {
		return err
	}
	if err := s.Start(); err != nil {
		return err
	}
	defer s.Close()
	out := stdout
	if o.truthPath == "-" {
		out = stderr
	}
	fmt.Fprintf(out, "igsim: API   %s\n", s.URL())
	if s.CAFile() != "" {
		fmt.Fprintf(out, "igsim: CA    %s\n", s.CAFile())
	}
	fmt.Fprintf(out, "igsim: admin %s\n", s.AdminURL())
	fmt.Fprintf(out, "igsim: limit %d requests per %s per token (one simulated hour)\n", s.RequestsPerHour(), s.RateWindow())
	if tokenFile != "" {
		fmt.Fprintf(out, "igsim: token %s (generated; pass it as access_token)\n", tokenFile)
	}
	<-ctx.Done()
	fmt.Fprintln(out, "igsim: stopping")
	return s.Close()
}

// makeToken makes a random token and writes it to a new private file.
func makeToken() (tok, path string, err error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", fmt.Errorf("token: %w", err)
	}
	tok = "igsim." + hex.EncodeToString(b[:])
	dir, err := os.MkdirTemp("", "igsim-token-")
	if err != nil {
		return "", "", fmt.Errorf("token: %w", err)
	}
	path = filepath.Join(dir, "access_token")
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", "", fmt.Errorf("token: %w", err)
	}
	return tok, path, nil
}
