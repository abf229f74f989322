package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"golang.org/x/term"

	"github.com/tagstream/tagstream/internal/config"
	"github.com/tagstream/tagstream/internal/pipeline"
	"github.com/tagstream/tagstream/poller"
	"github.com/tagstream/tagstream/testenv"
)

const demoHelp = `
Run the whole pipeline on this machine with nothing installed: the Instagram v1 API simulator (HTTPS, several
tags posting at skewed Poisson rates, bursts of a few pages and a sprinkle of faults), an embedded NATS JetStream
server, several generated tokens, and a consumer that reads every event back. A live view shows per tag the
events, rate and time from post to event, the budget left per token and a few sample events (a plain line every
few seconds when stdout is not a terminal). At the end (--duration, or Ctrl-C) it stops posting, lets the
pipeline catch up and prints a summary checked against the simulator's ground truth: events, missing,
duplicates, latency. Exit status 1 when an event is missing.

--nats-url points it at an external NATS server (JetStream enabled); --sink kafka --kafka-brokers at Kafka.

--keep-running turns the demo into a sandbox for your own tagstream commands: after the summary the simulator
(its tags posting again) and the embedded NATS server stay up until Ctrl-C, and --dir holds their tokens, the
simulator's CA and tagstream.yaml, the settings that point check, run, tail and status at them.`

// demoTag is one tag of the demo workload: a skewed spread of posting rates.
type demoTag struct {
	name string
	rate float64 // media per second
}

var demoTags = []demoTag{
	{"sunset", 2.5}, {"coffee", 1.2}, {"nofilter", 0.6}, {"travel", 0.3},
	{"foodporn", 0.15}, {"catsofinstagram", 0.08}, {"berlin", 0.04}, {"rainbow", 0.02},
}

type demoOptions struct {
	duration        time.Duration
	sink            string // jetstream or kafka
	natsURL         string
	kafkaBrokers    string
	kafkaTopic      string
	subjectPrefix   string
	tokens          int
	requestsPerHour int
	rateScale       float64
	seed            int64
	faults          bool
	bursts          bool
	metricsAddr     string
	plain           bool
	interval        time.Duration
	drain           time.Duration
	logLevel        string
	keepRunning     bool
	dir             string
}

func runDemo(c *cli, args []string) int {
	fs := c.newFlagSet("demo", "[flags]", demoHelp)
	var o demoOptions
	fs.DurationVar(&o.duration, "duration", 0, "how long the workload runs (0 = until Ctrl-C)")
	fs.StringVar(&o.sink, "sink", "jetstream", "where the demo publishes: jetstream (embedded server unless --nats-url) or kafka (needs --kafka-brokers)")
	fs.StringVar(&o.natsURL, "nats-url", "", "an external NATS server with JetStream instead of the embedded one")
	fs.StringVar(&o.kafkaBrokers, "kafka-brokers", "", "Kafka brokers host:port, comma-separated, for --sink kafka")
	fs.StringVar(&o.kafkaTopic, "kafka-topic", "tagstream.demo", "Kafka topic for --sink kafka (created if missing)")
	fs.StringVar(&o.subjectPrefix, "subject-prefix", "tagstream.demo", "NATS subject prefix of the demo's events")
	fs.IntVar(&o.tokens, "tokens", 4, "how many tokens the simulator issues and the pool uses")
	fs.IntVar(&o.requestsPerHour, "requests-per-hour", 5000, "budget per token")
	fs.Float64Var(&o.rateScale, "rate-scale", 1, "multiplies every tag's posting rate")
	fs.Int64Var(&o.seed, "seed", 0, "simulator seed (0 = random)")
	fs.BoolVar(&o.faults, "faults", true, "inject occasional API faults (500, HTML 503, 429, resets, truncated bodies)")
	fs.BoolVar(&o.bursts, "bursts", true, "post occasional bursts of several pages to one tag")
	fs.StringVar(&o.metricsAddr, "metrics-addr", "", "serve /metrics, /healthz, /readyz and /status here too")
	fs.BoolVar(&o.plain, "plain", false, "print a plain line every few seconds even on a terminal")
	fs.DurationVar(&o.interval, "refresh", 0, "refresh interval of the view (default 500ms on a terminal, 5s otherwise)")
	fs.DurationVar(&o.drain, "drain", 30*time.Second, "how long the end of the demo waits for the last events")
	fs.StringVar(&o.logLevel, "log-level", "warn", "level of the pipeline's log: "+orList(config.Values("log-level")))
	fs.BoolVar(&o.keepRunning, "keep-running", false, "after the summary, keep the simulator and the embedded NATS server up for your own\n"+
		"      tagstream commands until Ctrl-C, and write --dir/tagstream.yaml, the settings that point them there")
	fs.StringVar(&o.dir, "dir", "", "with --keep-running: the sandbox's directory (tokens, CA, settings, run's state); emptied\n"+
		"      when an earlier --keep-running made it (default $XDG_STATE_HOME/tagstream/sandbox, else\n"+
		"      ~/.local/state/tagstream/sandbox)")
	if code, stop := c.parseFlags(fs, args); stop {
		return code
	}
	if err := o.validate(); err != nil {
		return c.configFailure(err)
	}
	if o.keepRunning {
		if o.dir == "" {
			o.dir = defaultSandboxDir(c.environ)
		}
		if err := prepareSandbox(o.dir); err != nil {
			return c.configFailure(err)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d := &demo{c: c, o: o}
	code, err := d.run(ctx)
	if err != nil {
		fmt.Fprintf(c.stderr, "tagstream demo: %v\n", err)
	}
	return code
}

func (o *demoOptions) validate() error {
	bad := func(key, format string, args ...any) error {
		return &config.Error{Key: key, Origin: "--" + key, Problem: fmt.Sprintf(format, args...)}
	}
	switch {
	case o.duration < 0:
		return bad("duration", "must not be negative")
	case !slices.Contains(demoSinks, o.sink):
		return bad("sink", "%q: the demo runs with %s", o.sink, orList(demoSinks))
	case config.SinkKind(o.sink) == config.SinkKafka && o.kafkaBrokers == "":
		return bad("kafka-brokers", "--sink kafka needs --kafka-brokers")
	case o.tokens < 1 || o.tokens > 1000:
		return bad("tokens", "%d is out of range 1..1000", o.tokens)
	case o.requestsPerHour < 10:
		return bad("requests-per-hour", "%d is below 10", o.requestsPerHour)
	case o.rateScale <= 0 || o.rateScale > 1000 || math.IsNaN(o.rateScale):
		return bad("rate-scale", "%v is out of range (0, 1000]", o.rateScale)
	case o.interval < 0:
		return bad("refresh", "must not be negative")
	case o.drain <= 0:
		return bad("drain", "must be positive")
	case o.dir != "" && !o.keepRunning:
		return bad("dir", "only --keep-running keeps a sandbox directory")
	case o.keepRunning && (o.sink != string(config.SinkJetStream) || o.natsURL != ""):
		return bad("keep-running", "keeps the simulator and the embedded NATS server: it goes without --sink kafka and --nats-url")
	}
	if !slices.Contains(config.Values("log-level"), o.logLevel) {
		return bad("log-level", "%q is not one of %s", o.logLevel, strings.Join(config.Values("log-level"), ", "))
	}
	return nil
}

// demoSinks are the values of the demo's --sink.
var demoSinks = []string{string(config.SinkJetStream), string(config.SinkKafka)}

// orList returns "a, b or c".
func orList(values []string) string {
	if n := len(values); n > 1 {
		return strings.Join(values[:n-1], ", ") + " or " + values[n-1]
	}
	return strings.Join(values, "")
}

// demo holds the running pieces.
type demo struct {
	c     *cli
	o     demoOptions
	sim   *testenv.Server
	ns    *server.Server
	cfg   *config.Config
	stats *demoStats
	view  *demoView
	logs  *logRing
	start time.Time

	mu    sync.Mutex
	pipe  *pipeline.Pipeline // nil until built
	phase string
}

// The phases of the demo, as the view shows them.
const (
	phaseStarting  = "starting the pipeline: reaching the broker"
	phaseFirstPoll = "waiting for the first poll of every tag"
	phaseRunning   = "running"
	phaseDraining  = "posting stopped; waiting for the last events"
	phaseDone      = "done"
)

func (d *demo) setPhase(p string) {
	d.mu.Lock()
	d.phase = p
	d.mu.Unlock()
}

func (d *demo) pipeline() *pipeline.Pipeline {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pipe
}

// frame gathers what the view shows at now, including what the demo is waiting for until events flow.
func (d *demo) frame(now time.Time) viewFrame {
	d.mu.Lock()
	phase, pipe := d.phase, d.pipe
	d.mu.Unlock()
	d.stats.resolve(d.sim.GroundTruth())
	rates := d.stats.rates(now)
	events, dups, gaps := d.stats.totals()
	sum := d.stats.summary(nil)
	f := viewFrame{elapsed: now.Sub(d.start), phase: phase, api: d.cfg.APIURL, sink: d.cfg.NATSURL, events: events,
		dups: dups, gaps: gaps, p50: sum.p50, p95: sum.p95, samples: d.stats.sampleLines(), now: now}
	if d.cfg.Sink == config.SinkKafka {
		f.sink = "kafka " + strings.Join(d.cfg.KafkaBrokers, ",")
	}
	if d.logs != nil {
		f.logs = d.logs.lines()
	}
	intervals, states := map[string]string{}, map[string]string{}
	polled := 0
	if pipe != nil {
		f.sink = pipe.SinkName()
		f.tokens = pipe.TokenStatus()
		for _, s := range pipe.Report().Tags {
			intervals[s.Tag] = "-"
			if !s.LastAttempt.IsZero() && s.NextPoll.After(s.LastAttempt) {
				intervals[s.Tag] = fmtDur(s.NextPoll.Sub(s.LastAttempt))
			}
			if !s.LastPoll.IsZero() {
				polled++
			}
			states[s.Tag] = s.State
		}
	}
	var posting float64
	for _, t := range demoTags {
		r := t.rate * d.o.rateScale
		posting += r
		f.rate += rates[t.name]
		n, p50, p95 := d.stats.tagRow(t.name)
		f.tags = append(f.tags, viewTag{name: t.name, posted: r, events: n, rate: rates[t.name], p50: p50, p95: p95,
			pollEvery: cmp.Or(intervals[t.name], "-"), state: printable(cmp.Or(states[t.name], "-"))})
	}
	switch {
	case phase == phaseStarting:
		f.waiting = fmt.Sprintf("waiting for the broker (%s); polling starts once it answers", f.sink)
	case phase == phaseFirstPoll:
		f.waiting = fmt.Sprintf("waiting for the first poll of every tag (%d of %d): it puts the cursor at the head", polled, len(demoTags))
	case phase == phaseRunning && events == 0:
		f.waiting = fmt.Sprintf("waiting for the first event: the tags post %.1f media/s from now on", posting)
	}
	return f
}

func randomToken() string {
	b := make([]byte, 20)
	rand.Read(b)
	return fmt.Sprintf("%d.%s", 1000000+mrand.IntN(9000000), hex.EncodeToString(b))
}

// run runs the demo and returns the exit status.
func (d *demo) run(ctx context.Context) (int, error) {
	o := d.o
	tmp, err := os.MkdirTemp("", "tagstream-demo-")
	if err != nil {
		return exitFailure, err
	}
	defer os.RemoveAll(tmp)
	if o.seed == 0 {
		o.seed = mrand.Int64N(1 << 40)
		d.o.seed = o.seed
	}
	stateDir := filepath.Join(tmp, "state") // the simulator is new each time: so are the cursors
	keep := tmp                             // where the simulator's CA and the NATS store go
	if o.keepRunning {
		if keep, err = filepath.Abs(o.dir); err != nil {
			return exitFailure, err
		}
	}

	// Logs: on a terminal they go to a ring shown in the view, elsewhere to stderr.
	tty := !o.plain && isTerminal(d.c.stdout)
	interval := o.interval
	if interval == 0 {
		interval = 5 * time.Second
		if tty {
			interval = 500 * time.Millisecond
		}
	}
	var logW io.Writer = d.c.stderr
	if tty {
		d.logs = newLogRing(5)
		logW = d.logs
	}
	logger := newLogger(logW, "text", o.logLevel)

	// 1. The simulator, with every tag still and a cursor style that is opaque and inclusive.
	tokens := make([]string, o.tokens)
	creds := make([]config.Credential, o.tokens)
	for i := range tokens {
		tokens[i] = randomToken()
		creds[i] = config.Credential{Value: tokens[i]}
	}
	var tagCfgs []testenv.TagConfig
	var tags []string
	for _, t := range demoTags {
		tagCfgs = append(tagCfgs, testenv.TagConfig{Name: t.name, Initial: 40})
		tags = append(tags, t.name)
	}
	d.sim, err = testenv.New(testenv.Config{
		CertDir:         filepath.Join(keep, "sim"),
		Tokens:          tokens,
		RequestsPerHour: o.requestsPerHour,
		Cursors:         testenv.CursorOpaque,
		InclusiveMin:    true,
		Seed:            o.seed,
		Tags:            tagCfgs,
		Logger:          logger.With("component", "simulator"),
	})
	if err != nil {
		return exitFailure, fmt.Errorf("simulator: %w", err)
	}
	if err := d.sim.Start(); err != nil {
		return exitFailure, fmt.Errorf("simulator: %w", err)
	}
	defer d.sim.Close()

	// 2. The broker: an embedded JetStream server unless one was given.
	natsURL := o.natsURL
	if config.SinkKind(o.sink) == config.SinkJetStream && natsURL == "" {
		d.ns, err = startEmbeddedNATS(filepath.Join(keep, "nats"))
		if err != nil {
			return exitFailure, err
		}
		defer d.ns.Shutdown()
		natsURL = d.ns.ClientURL()
	}

	// 3. The configuration, validated like run's.
	cfg := config.Defaults()
	cfg.APIURL = d.sim.URL()
	cfg.CAFile = d.sim.CAFile()
	cfg.Tags = tags
	cfg.Credentials = creds
	cfg.RequestsPerHour = o.requestsPerHour
	cfg.MinInterval = time.Second
	cfg.MaxInterval = 5 * time.Second
	cfg.RequestTimeout = 5 * time.Second
	cfg.Sink = config.SinkKind(o.sink)
	cfg.NATSURL = natsURL
	cfg.SubjectPrefix = o.subjectPrefix
	cfg.Stream = "TAGSTREAM_DEMO"
	cfg.KafkaBrokers = splitComma(o.kafkaBrokers)
	cfg.KafkaTopic = o.kafkaTopic
	cfg.KafkaCreateTopic = true
	cfg.StateDir = stateDir
	cfg.MetricsAddr = o.metricsAddr
	cfg.ShutdownTimeout = 5 * time.Second
	cfg.Source = "/tagstream/demo"
	// start=now publishes what was created since the start, less poller.StartSkew: start after the Initial media
	// (the newest was made the instant the simulator started), which the demo does not count as posted.
	cfg.StartedAt = time.Now().Add(poller.StartSkew + time.Second)
	if err := config.Validate(&cfg, config.GroupAll, config.Needs{Tags: true, Tokens: true}); err != nil {
		return exitUsage, err
	}
	if err := config.CheckReachable(ctx, &cfg); err != nil {
		return exitUnreachable, err
	}
	d.cfg = &cfg
	red := cfg.Redactor()

	// The view from now on, saying what the demo waits for until events flow; it is finished (the last frame
	// left on the screen) before the summary or an error is printed.
	d.stats = newDemoStats(tags)
	d.start = time.Now()
	d.setPhase(phaseStarting)
	d.view = newDemoView(d.c.stdout, tty, d.frame)
	viewCtx, stopView := context.WithCancel(context.Background())
	viewDone := make(chan struct{})
	go func() {
		defer close(viewDone)
		d.view.loop(viewCtx, interval)
	}()
	finishView := func() {
		stopView()
		<-viewDone
		d.view.finish(time.Now())
	}
	defer finishView()

	// 4. The pipeline; once it polls, the consumer that reads every event back (before anything is published:
	// the first poll of each tag only sets its cursor).
	pipe, err := pipeline.New(ctx, &cfg, pipeline.Deps{Logger: logger, Version: Version(), Stdout: io.Discard})
	if err != nil {
		return exitFailure, errors.New(red.String(err.Error()))
	}
	d.mu.Lock()
	d.pipe = pipe
	d.mu.Unlock()
	runCtx, stopPipeline := context.WithCancel(context.Background())
	defer stopPipeline()
	pipeEnded := make(chan struct{})
	var pipeErr error
	go func() {
		pipeErr = pipe.Run(runCtx)
		close(pipeEnded)
	}()
	select {
	case <-pipe.Started():
	case <-pipeEnded:
		return exitFailure, fmt.Errorf("pipeline: %s", red.String(fmt.Sprint(pipeErr)))
	case <-ctx.Done():
		stopPipeline()
		<-pipeEnded
		return exitOK, nil
	}
	consumeCtx, stopConsumer := context.WithCancel(context.Background())
	defer stopConsumer()
	consumerDone, err := d.startConsumer(consumeCtx, logger)
	if err != nil {
		stopPipeline()
		<-pipeEnded
		return exitFailure, errors.New(red.String(err.Error()))
	}

	// 5. Wait until every tag had its first poll (its cursor is set at the head), then start posting.
	d.setPhase(phaseFirstPoll)
	if err := d.waitFirstPolls(ctx, pipeEnded, &pipeErr); err != nil {
		stopPipeline()
		<-pipeEnded
		if ctx.Err() != nil {
			return exitOK, nil
		}
		return exitFailure, errors.New(red.String(err.Error()))
	}
	workStart := time.Now()
	d.stats.setWorkStart(workStart)
	for _, t := range demoTags {
		d.sim.SetRate(t.name, t.rate*o.rateScale)
	}
	if o.faults {
		d.sim.SetFaults(testenv.Faults{Error500: 0.01, Down503HTML: 0.005, RateLimit429: 0.005, Reset: 0.005, Truncated: 0.005})
	}
	workCtx := ctx
	if o.duration > 0 {
		var cancel context.CancelFunc
		workCtx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	burstsDone := make(chan struct{})
	go func() {
		defer close(burstsDone)
		if o.bursts {
			d.burstLoop(workCtx, o.seed)
		}
	}()

	// 6. The live view until the end of the workload.
	d.setPhase(phaseRunning)
	select {
	case <-workCtx.Done():
	case <-pipeEnded:
	}
	<-burstsDone
	interrupted := ctx.Err() != nil

	// 7. Stop posting and faults, let the pipeline catch up, then stop it cleanly.
	for _, t := range demoTags {
		d.sim.SetRate(t.name, 0)
	}
	d.sim.SetFaults(testenv.Faults{})
	workEnd := time.Now()
	d.stats.setWorkEnd(workEnd)
	d.setPhase(phaseDraining)
	drainCtx, cancelDrain := context.WithTimeout(context.Background(), o.drain)
	if interrupted {
		// A second Ctrl-C during the drain ends it at once.
		var cancel context.CancelFunc
		drainCtx, cancel = signal.NotifyContext(drainCtx, os.Interrupt, syscall.SIGTERM)
		defer cancel()
	}
	d.drain(drainCtx)
	cancelDrain()
	stopPipeline()
	<-pipeEnded
	stopConsumer()
	<-consumerDone
	d.stats.resolve(d.sim.GroundTruth())

	// 8. The summary, below the last frame.
	d.setPhase(phaseDone)
	finishView()
	sum := d.stats.summary(d.sim.GroundTruth())
	d.printSummary(sum, workEnd.Sub(workStart))
	code, err := exitOK, error(nil)
	switch {
	case pipeErr != nil:
		code, err = exitFailure, fmt.Errorf("pipeline: %s", red.String(pipeErr.Error()))
	case sum.missing > 0:
		code = exitFailure
	}
	if o.keepRunning {
		if serr := d.serveSandbox(tokens); serr != nil {
			return exitFailure, errors.Join(err, fmt.Errorf("sandbox: %w", serr))
		}
	}
	return code, err
}

// waitFirstPolls waits until every tag has been polled successfully once (its cursor is at the head).
func (d *demo) waitFirstPolls(ctx context.Context, pipeEnded <-chan struct{}, pipeErr *error) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	deadline := time.After(60 * time.Second)
	for {
		done := 0
		for _, s := range d.pipeline().TagStatus() {
			if !s.LastPoll.IsZero() && s.Cursor != "" {
				done++
			}
		}
		if done == len(d.cfg.Tags) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-pipeEnded:
			err := *pipeErr
			if err == nil {
				err = errors.New("stopped")
			}
			return fmt.Errorf("pipeline ended before the first polls: %w", err)
		case <-deadline:
			return fmt.Errorf("only %d of %d tags were polled within a minute", done, len(d.cfg.Tags))
		case <-t.C:
		}
	}
}

// burstLoop posts a burst of one to four pages to a random tag every 15-30 seconds, and now and then a media
// tagged late (an old photo at the head of the feed).
func (d *demo) burstLoop(ctx context.Context, seed int64) {
	r := mrand.New(mrand.NewPCG(uint64(seed), 7))
	for {
		wait := time.Duration(15+r.IntN(16)) * time.Second
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		tag := demoTags[r.IntN(len(demoTags))].name
		n := 20 + r.IntN(110)
		d.sim.Post(tag, n)
		d.sim.PostLate(demoTags[r.IntN(len(demoTags))].name, time.Duration(1+r.IntN(300))*24*time.Hour)
		d.view.note(fmt.Sprintf("burst: %d media posted to #%s at once", n, tag))
	}
}

// drain waits until every media posted during the workload was consumed, or ctx ends.
func (d *demo) drain(ctx context.Context) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		truth := d.sim.GroundTruth()
		d.stats.resolve(truth)
		if d.stats.summary(truth).missing == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (d *demo) printSummary(s demoSummary, workload time.Duration) {
	w := d.c.stdout
	fmt.Fprintf(w, "\nSummary (workload %s, seed %d, sink %s):\n", workload.Round(time.Second), d.o.seed, d.pipe.SinkName())
	fmt.Fprintf(w, "  events consumed      %d (of %d media posted during the workload)\n", s.consumed, s.expected)
	fmt.Fprintf(w, "  missing              %d\n", s.missing)
	fmt.Fprintf(w, "  duplicates           %d\n", s.duplicates)
	fmt.Fprintf(w, "  gap markers          %d\n", s.gaps)
	fmt.Fprintf(w, "  post to event        p50 %s  p95 %s  max %s\n", fmtDur(s.p50), fmtDur(s.p95), fmtDur(s.max))
	st := d.sim.Stats()
	var outcomes []string
	for _, k := range sortedKeys(st.ByOutcome) {
		outcomes = append(outcomes, fmt.Sprintf("%s %d", k, st.ByOutcome[k]))
	}
	fmt.Fprintf(w, "  API requests         %d (%s)\n", st.Requests, strings.Join(outcomes, ", "))
	if s.missing > 0 {
		fmt.Fprintf(w, "  MISSING media ids    %s\n", strings.Join(s.missingIDs, " "))
	}
}

// startEmbeddedNATS starts an in-process nats-server with JetStream on a free loopback port.
func startEmbeddedNATS(dir string) (*server.Server, error) {
	ns, err := server.NewServer(&server.Options{
		Host:      "127.0.0.1",
		Port:      -1,
		JetStream: true,
		StoreDir:  dir,
		NoLog:     true,
		NoSigs:    true,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("embedded nats: not ready within 10s")
	}
	return ns, nil
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
