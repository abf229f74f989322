package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/tagstream/tagstream/testenv"
)

// result holds everything the report needs.
type result struct {
	o          *options
	started    time.Time // T0: just before tagstream was started
	restarted  time.Time // T1: when tagstream got SIGTERM for the restart (zero without)
	end        time.Time // T0 + duration
	loadStart  string
	loadEnd    string
	commit     string
	tsCommand  string
	budget     float64
	lstar      float64
	windows    []window
	steady     []window      // the windows after the first 90 s of each start (the per-tag means of the charts)
	chartStep  time.Duration // the budget chart's slice
	ts, rr     sideResult
	sim        usage
	simServed  float64 // requests the simulator served over [T0, end]
	harnessCPU time.Duration
	overload   float64
	drained    bool          // every side's newest media per tag arrived within the grace
	drainTook  time.Duration // how long that took after the end
	samplerErr string
	watchedFP  int      // tags whose first poll /status showed (exact start-now losses)
	charts     []string // the files written by writeCharts (the JSON first)
	chartErr   string   // why they could not be written
}

// sideResult is what one side (tagstream or the baseline) did.
type sideResult struct {
	name         string
	ran          bool
	stats        []latencyStats        // one per window
	requests     float64               // simulator count over [T0, end]
	requestsWarm float64               // over [T0+warmup, end]
	lastWindow   float64               // requests over the last full rate-limit window [end-W, end] of a compressed run
	useSeries    []float64             // budget use per seriesStep slice of the span
	chartUse     []float64             // budget use per chartStep slice of the span
	perTag       map[string]tagLatency // mean latency per tag over the steady windows
	steady       tagLatency            // mean latency over the steady windows
	whole        tagLatency            // mean latency over the whole run
	metricsReqs  float64               // tagstream's own count over [T0, end] (tagstream only)
	limited      float64               // rate-limit answers over [T0, end], simulator count
	metricsLimit float64               // tagstream's own count of them
	peakToken    float64               // highest 60 s rate of one token over its budget (tagstream only)
	gaps, bad    int
	badFirst     string
	lagP99       time.Duration
	cpu          usage
}

// run performs one benchmark run and appends its section to o.out.
func run(ctx context.Context, o *options, stdout, stderr io.Writer) (err error) {
	sc := o.scenario
	logf := func(format string, args ...any) {
		fmt.Fprintf(stderr, "[wholebinary %s] %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, args...))
	}
	dir, err := os.MkdirTemp("", "wholebinary-")
	if err != nil {
		return err
	}
	if o.keep {
		logf("temporary directory (kept; it holds generated tokens): %s", dir)
	} else {
		defer os.RemoveAll(dir)
	}

	tsBin, simBin := filepath.Join(dir, "tagstream"), filepath.Join(dir, "igsim")
	builds := [][2]string{{tsBin, "./cmd/tagstream"}, {simBin, "./cmd/igsim"}}
	if o.tsBinary != "" {
		tsBin, builds = o.tsBinary, builds[1:]
	}
	logf("building %s (no -race)", builds)
	for _, b := range builds {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", b[0], b[1])
		cmd.Stdout, cmd.Stderr = stderr, stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build %s: %w", b[1], err)
		}
	}

	tsTokens, rrTokens := makeTokens(sc.Tokens), makeTokens(sc.Tokens)
	simTokens := append(append([]string(nil), tsTokens...), rrTokens...)
	sim, err := startSimulator(ctx, simConfig{
		Binary: simBin, Dir: dir, Tags: sc.Active, Tokens: simTokens, RequestsPerHour: sc.RequestsPerHour / o.timeScale,
		TimeScale: o.timeScale, Seed: o.seed,
	})
	if err != nil {
		return err
	}
	defer func() {
		if serr := sim.proc.stop(30 * time.Second); serr != nil && err == nil {
			err = serr
		}
	}()
	logf("simulator %s (admin %s), %d tags posting, %d tokens", sim.apiURL, sim.adminURL, len(sc.Active), len(simTokens))

	var sinkArgs []string
	var ns *server.Server
	eventsFile := filepath.Join(dir, "events.ndjson")
	kafkaTopic := fmt.Sprintf("wholebinary.%s.%d", sc.Name, time.Now().UnixNano())
	switch o.sink {
	case "jetstream":
		ns, err = startNATS(filepath.Join(dir, "nats"))
		if err != nil {
			return err
		}
		defer ns.Shutdown()
		sinkArgs = []string{"--sink", "jetstream", "--nats-url", ns.ClientURL()}
	case "kafka":
		sinkArgs = []string{"--sink", "kafka", "--kafka-brokers", o.kafkaBrokers, "--kafka-topic", kafkaTopic,
			"--kafka-create-topic", "--kafka-partitions", "1"}
	case "file":
		sinkArgs = []string{"--sink", "file", "--output", eventsFile}
	}

	tags := make([]string, 0, sc.TagCount())
	for _, t := range sc.Active {
		tags = append(tags, t.Name)
	}
	for i := range sc.Inactive {
		tags = append(tags, inactiveTagName(i, sc.Inactive))
	}
	extra, pprofBase := o.tsFlags, ""
	if o.profile.File != "" {
		args, base, err := pprofArgs()
		if err != nil {
			return err
		}
		extra, pprofBase = append(args, o.tsFlags...), base
	}
	ts, err := newTagstream(tagstreamConfig{
		Binary: tsBin, Dir: dir, APIURL: sim.apiURL, Tags: tags, Tokens: tsTokens,
		RequestsPerHour: sc.RequestsPerHour / o.timeScale, RateWindow: o.rateWindow(), SinkArgs: sinkArgs,
		MaxInterval: o.maxInterval, Extra: extra,
	})
	if err != nil {
		return err
	}
	defer func() {
		if ts.proc != nil && ts.proc.running() {
			ts.proc.kill()
		}
	}()

	res := &result{o: o, loadStart: loadAverage(), commit: gitCommit(), tsCommand: ts.commandLine(),
		budget: sc.Budget(), lstar: LStar(sc.Rates(), sc.Budget())}
	res.ts.name, res.rr.name = "tagstream", "round-robin"

	simU0, err := procUsage(sim.proc.pid())
	if err != nil {
		return fmt.Errorf("simulator usage: %w", err)
	}
	smp := newSampler(sim, ts, sc.Tokens)
	self0 := selfCPU()
	res.started = time.Now()
	if err := smp.baseline(ctx, res.started); err != nil {
		return err
	}
	logf("starting tagstream (%d tags, %d tokens, B = %.4g requests/s, L* = %.3f s, sink %s)",
		len(tags), sc.Tokens, res.budget, res.lstar, o.sink)
	if err := ts.start(ctx); err != nil {
		return err
	}
	res.ts.ran = true

	rec, rrRec := newRecorder(), newRecorder()
	var cons consumer
	switch o.sink {
	case "jetstream":
		c, err := startJetStreamConsumer(ctx, ns.ClientURL(), "TAGSTREAM", rec)
		if err != nil {
			return err
		}
		cons = c
	case "kafka":
		cons = startKafkaConsumer(o.kafkaBrokers, kafkaTopic, rec)
	case "file":
		cons = startFileConsumer(eventsFile, rec)
	}
	defer cons.close()

	bgCtx, stopBG := context.WithCancel(ctx)
	var bg sync.WaitGroup
	defer func() { stopBG(); bg.Wait() }()

	var rr *roundRobin
	if o.baseline {
		rrTags := make([]string, 0, len(tags))
		rrTags = append(rrTags, tags...)
		rr = newRoundRobin(roundRobinConfig{APIURL: sim.apiURL, Tokens: rrTokens, Tags: rrTags, Budget: res.budget}, rrRec)
		res.rr.ran = true
		bg.Add(1)
		go func() { defer bg.Done(); _ = rr.run(bgCtx) }()
	}
	if pprofBase != "" {
		bg.Add(1)
		go func() {
			defer bg.Done()
			if err := takeProfile(bgCtx, o.profile, pprofBase, res.started, logf); err != nil && bgCtx.Err() == nil {
				logf("%v", err)
			}
		}()
	}
	smpCtx, stopSampler := context.WithCancel(bgCtx)
	smpDone := make(chan struct{})
	go func() { defer close(smpDone); smp.run(smpCtx, time.Second, max(time.Second, sc.MetricsEvery)) }()
	defer func() { stopSampler(); <-smpDone }()
	var fpw *firstPollWatcher
	if sc.WatchFirstPolls {
		fpw = watchFirstPolls(bgCtx, ts, len(tags), 500*time.Millisecond)
	}

	res.end = res.started.Add(o.duration)
	if o.restartAt > 0 {
		if err := sleepUntil(ctx, res.started.Add(o.restartAt)); err != nil {
			return err
		}
		res.restarted = time.Now()
		logf("restart: SIGTERM to tagstream")
		if err := ts.proc.stop(90 * time.Second); err != nil {
			return fmt.Errorf("restart: %w; log:\n%s", err, ts.logTail(30))
		}
		if err := ts.start(ctx); err != nil {
			return fmt.Errorf("restart: %w; log:\n%s", err, ts.logTail(30))
		}
		logf("restart: tagstream ready again after %s", time.Since(res.restarted).Round(time.Millisecond))
	}
	if err := sleepUntil(ctx, res.end); err != nil {
		return err
	}

	// The end of the measured span: usage and counters now.
	stopSampler()
	<-smpDone
	smp.sample(ctx)
	if res.ts.cpu, err = ts.usage(); err != nil {
		return fmt.Errorf("tagstream usage: %w", err)
	}
	simU1, err := procUsage(sim.proc.pid())
	if err != nil {
		return fmt.Errorf("simulator usage: %w", err)
	}
	res.sim = usage{CPU: simU1.CPU - simU0.CPU, MaxRSS: simU1.MaxRSS}
	res.harnessCPU = selfCPU() - self0
	res.loadEnd = loadAverage()
	if !ts.proc.running() {
		return fmt.Errorf("tagstream exited during the run (%v); log:\n%s", ts.proc.waitErr, ts.logTail(30))
	}

	// Drain: no new media from now on; wait until each side has the newest media of every tag that it could have.
	logf("measured span over; stopping the posts and waiting up to %s for media in flight", o.grace)
	for _, t := range sc.Active {
		if err := sim.setRate(ctx, t.Name, 0); err != nil {
			return err
		}
	}
	truth, err := sim.truth(ctx)
	if err != nil {
		return err
	}
	tsFirst := func() map[string]time.Time {
		if fpw != nil {
			return fpw.firstPolls()
		}
		return nil
	}
	rrFirst := func() map[string]time.Time {
		if rr != nil {
			return rr.firstPolls()
		}
		return nil
	}
	drainCtx, cancelDrain := context.WithTimeout(ctx, o.grace)
	err = waitUntil(drainCtx, 250*time.Millisecond, func() (bool, error) {
		if !ts.proc.running() {
			return false, fmt.Errorf("tagstream exited while draining (%v); log:\n%s", ts.proc.waitErr, ts.logTail(30))
		}
		ok := allNewestArrived(truth, res.started, res.end, rec, tsFirst())
		if rr != nil {
			ok = ok && allNewestArrived(truth, res.started, res.end, rrRec, rrFirst())
		}
		return ok, nil
	})
	cancelDrain()
	res.drainTook = time.Since(res.end)
	switch {
	case err == nil:
		res.drained = true
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		logf("grace of %s over: some media never arrived (reported as MISSING)", o.grace)
	default:
		return err
	}
	stopBG()
	bg.Wait()

	logf("stopping tagstream (SIGTERM)")
	if err := ts.proc.stop(90 * time.Second); err != nil {
		logf("tagstream stop: %v; log tail:\n%s", err, ts.logTail(20))
	}
	fctx, cancelF := context.WithTimeout(ctx, 2*time.Minute)
	if err := cons.finish(fctx); err != nil {
		logf("consumer did not read everything the sink holds: %v", err)
	}
	cancelF()

	res.analyse(truth, rec, rrRec, smp, tsFirst(), rrFirst(), rr)
	var fp int
	if fpw != nil {
		fp = len(fpw.firstPolls())
	}
	res.watchedFP = fp
	var chartErr error
	if o.charts != "" {
		res.charts, chartErr = writeCharts(res.chartRun(), o.charts)
		if chartErr != nil {
			res.chartErr = chartErr.Error()
			logf("charts: %v", chartErr)
		} else {
			logf("charts: %s", strings.Join(res.charts, ", "))
		}
	}
	section := res.markdown()
	fmt.Fprint(stdout, section)
	if o.out != "" {
		f, err := os.OpenFile(o.out, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("results file: %w", err)
		}
		if _, err := io.WriteString(f, section); err != nil {
			f.Close()
			return fmt.Errorf("results file: %w", err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("results file: %w", err)
		}
		logf("appended to %s", o.out)
	}
	return chartErr
}

// allNewestArrived reports whether, for every tag, the newest media that became visible in [from, to) after the
// tag's first poll (when known) has arrived. Each side delivers a tag's media oldest first, so the newest one
// arriving means the poll that carried it is done.
func allNewestArrived(truth []testenv.Truth, from, to time.Time, rec *recorder, firstPoll map[string]time.Time) bool {
	newest := map[string]testenv.Truth{}
	for _, tr := range truth {
		if !tr.DeletedAt.IsZero() || tr.VisibleAt.Before(from) || !tr.VisibleAt.Before(to) {
			continue
		}
		if fp, ok := firstPoll[tr.Tag]; ok && tr.VisibleAt.Before(fp) {
			continue
		}
		if cur, ok := newest[tr.Tag]; !ok || tr.VisibleAt.After(cur.VisibleAt) {
			newest[tr.Tag] = tr
		}
	}
	for _, tr := range newest {
		if !rec.has(mediaKey{tr.Tag, tr.MediaID}) {
			return false
		}
	}
	return true
}

// analyse fills the figures from what the run recorded.
func (res *result) analyse(truth []testenv.Truth, rec, rrRec *recorder, smp *sampler, tsFirst, rrFirst map[string]time.Time, rr *roundRobin) {
	t0, end := res.started, res.end
	res.windows = []window{{Name: "first 90 s", From: t0, To: t0.Add(warmup)}}
	if res.restarted.IsZero() {
		res.steady = []window{{Name: "after 90 s", From: t0.Add(warmup), To: end}}
		res.windows = append(res.windows, res.steady...)
	} else {
		t1 := res.restarted
		res.steady = []window{
			{Name: "90 s to restart", From: t0.Add(warmup), To: t1},
			{Name: "after that", From: t1.Add(warmup), To: end},
		}
		res.windows = append(res.windows, res.steady[0],
			window{Name: "first 90 s after restart", From: t1, To: t1.Add(warmup)},
			res.steady[1])
	}
	whole := window{Name: "whole run", From: t0, To: end}
	res.windows = append(res.windows, whole)
	bound := res.o.maxInterval
	if bound == 0 {
		bound = 5 * time.Minute
	}
	bound += 10 * time.Second // a poll's own duration and the publish
	fill := func(side *sideResult, r *recorder, fp map[string]time.Time) {
		outs := join(truth, t0, end, r.snapshot(), fp)
		for _, w := range res.windows {
			side.stats = append(side.stats, summarise(outs, w, bound))
		}
		side.perTag, side.steady = tagMeans(outs, res.steady)
		_, side.whole = tagMeans(outs, []window{whole})
		r.mu.Lock()
		side.gaps, side.bad, side.badFirst = r.gaps, r.bad, r.badFirst
		r.mu.Unlock()
		side.lagP99 = r.lagP99()
	}
	fill(&res.ts, rec, tsFirst)
	smp.mu.Lock()
	defer smp.mu.Unlock()
	span := func(s []counterSample, from, to time.Time) float64 { return valueAt(s, to) - valueAt(s, from) }
	warm := t0.Add(warmup)
	res.ts.requests = span(smp.tsRequests, t0, end)
	res.ts.requestsWarm = math.Round(span(smp.tsRequests, warm, end))
	w := res.o.rateWindow()
	lastWin := end.Add(-w)
	if w > 0 && !lastWin.Before(t0) {
		res.ts.lastWindow = math.Round(span(smp.tsRequests, lastWin, end))
	}
	res.ts.useSeries = useSeries(smp.tsRequests, t0, end, res.budget, seriesStep)
	res.chartStep = chartSliceStep(smp.tsRequests, t0, end)
	res.ts.chartUse = useSeries(smp.tsRequests, t0, end, res.budget, res.chartStep)
	res.ts.limited = span(smp.tsLimited, t0, end)
	res.ts.metricsReqs = span(smp.metricsReqs.series, t0, end)
	res.ts.metricsLimit = span(smp.metricsLimit.series, t0, end)
	perTokenBudget := float64(res.o.scenario.RequestsPerHour) / 3600
	for _, s := range smp.perToken {
		res.ts.peakToken = max(res.ts.peakToken, peakRate(s, time.Minute)/perTokenBudget)
	}
	res.simServed = span(smp.tsRequests, t0, end) + span(smp.rrRequests, t0, end)
	res.overload = smp.overloadMax
	if smp.errors > 0 {
		res.samplerErr = fmt.Sprintf("%d failed samples, first: %s", smp.errors, smp.firstErr)
	}
	if rr != nil {
		fill(&res.rr, rrRec, rrFirst)
		res.rr.requests = span(smp.rrRequests, t0, end)
		res.rr.requestsWarm = math.Round(span(smp.rrRequests, warm, end))
		if w > 0 && !lastWin.Before(t0) {
			res.rr.lastWindow = math.Round(span(smp.rrRequests, lastWin, end))
		}
		res.rr.useSeries = useSeries(smp.rrRequests, t0, end, res.budget, seriesStep)
		res.rr.chartUse = useSeries(smp.rrRequests, t0, end, res.budget, res.chartStep)
		res.rr.limited = span(smp.rrLimited, t0, end)
	}
}

// makeTokens returns n random access tokens for this run only (never printed, never stored outside the
// temporary directory).
func makeTokens(n int) []string {
	out := make([]string, n)
	for i := range out {
		var b [16]byte
		_, _ = rand.Read(b[:])
		out[i] = "wb." + hex.EncodeToString(b[:])
	}
	return out
}

// startNATS starts an in-process nats-server with JetStream on a free loopback port.
func startNATS(storeDir string) (*server.Server, error) {
	ns, err := server.NewServer(&server.Options{
		ServerName: "wholebinary",
		Host:       "127.0.0.1",
		Port:       -1,
		JetStream:  true,
		StoreDir:   storeDir,
		NoLog:      true,
		NoSigs:     true,
	})
	if err != nil {
		return nil, fmt.Errorf("nats-server: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("nats-server not ready within 30 s")
	}
	return ns, nil
}

// sleepUntil waits until t or until ctx ends: the scenario's own durations, the only fixed waits of the harness.
func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// gitCommit names the checked-out commit, with "+dirty" when the tree has changes.
func gitCommit() string {
	out, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(strings.TrimSpace(string(st))) > 0 {
		c += "+dirty"
	}
	return c
}

// goVersion is the toolchain that built the binaries.
func goVersion() string { return runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH }
