// Command wholebinary is the whole-binary benchmark of issue #11: the built tagstream binary against the API
// simulator over real HTTP, publishing to a real broker, with a plain round-robin poller at the same budget in the
// same run as the baseline. It joins every event read back from the broker with the simulator's ground truth and
// reports post-to-event latency against the square-root optimum L*, budget use, rate-limit answers, requests per
// media, media that never arrived, and what tagstream, the simulator and the harness cost in CPU and memory.
//
//	go run ./bench/wholebinary -scenario zipf50|zipf1000|scale100k|scale1m|restart [-duration 5m]
//	    [-sink jetstream|kafka|file] [-out bench/wholebinary.md] [-charts bench/charts]
//	go run ./bench/wholebinary -replot bench/charts/zipf50-jetstream.json
//
// After a run it draws two charts into -charts (chart.go): each tag's mean latency against its posting rate, with
// the square-root optimum, and budget use over time; it saves what they are drawn from as JSON beside them, which
// -replot draws again without running.
//
// Processes: the simulator is cmd/igsim in its own process (so that its CPU and memory are its own); tagstream is
// the binary built from ./cmd/tagstream without -race; the broker is an in-process nats-server with JetStream
// (sink jetstream), the Kafka of TAGSTREAM_KAFKA_BROKERS (sink kafka, e.g. from scripts/brokers.sh) or a file
// (sink file). Everything listens on loopback; every process started is stopped on every exit path.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// warmup is the span after a (re)start reported apart: the scheduler has no rate estimates yet.
const warmup = 90 * time.Second

// defaultChartsDir is where a run's charts go by default.
const defaultChartsDir = "bench/charts"

// options are the parsed command line.
type options struct {
	scenario     scenario
	duration     time.Duration
	sink         string
	out          string
	baseline     bool
	grace        time.Duration
	restartAt    time.Duration
	maxInterval  time.Duration
	seed         int64
	keep         bool
	tsFlags      []string
	kafkaBrokers string
	note         string
	charts       string // directory of the charts ("" = none)
	replot       string // a saved run to draw again instead of running
	timeScale    int    // the simulator's -time-scale: the rate-limit window is one hour / timeScale (1 = a real hour)
	tsBinary     string // a tagstream binary built beforehand ("" = build ./cmd/tagstream)
	profile      profileConfig
	args         []string // the command line as given, for the report
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	o, err := parseFlags(os.Args[1:], os.Getenv, os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "wholebinary:", err)
		os.Exit(2)
	}
	if o.replot != "" {
		paths, err := replot(o.replot, o.charts)
		if err != nil {
			fmt.Fprintln(os.Stderr, "wholebinary:", err)
			os.Exit(1)
		}
		fmt.Println(strings.Join(paths, "\n"))
		return
	}
	if err := run(ctx, o, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "wholebinary:", err)
		os.Exit(1)
	}
}

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, " ") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("wholebinary", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("scenario", "", "workload: "+scenarioNames())
	duration := fs.Duration("duration", 0, "measured duration (default: the scenario's)")
	sink := fs.String("sink", "", "jetstream, kafka or file (default: the scenario's)")
	out := fs.String("out", "bench/wholebinary.md", "markdown file the results section is appended to (\"\" = stdout only)")
	baseline := fs.String("baseline", "auto", "run the round-robin baseline: auto (the scenario decides), on or off")
	grace := fs.Duration("grace", 0, "after the duration, how long to wait for media still in flight (default: --max-interval + 30s)")
	restartAt := fs.Duration("restart-at", 0, "restart tagstream this long after its start (default: the scenario's; restart only)")
	maxInterval := fs.Duration("max-interval", 0, "tagstream --max-interval (default: the scenario's, else the binary's)")
	seed := fs.Int64("seed", 1, "simulator seed (media, cursors, Poisson gaps)")
	keep := fs.Bool("keep", false, "keep the temporary directory (logs, state; it holds the generated tokens)")
	kafka := fs.String("kafka-brokers", getenv("TAGSTREAM_KAFKA_BROKERS"), "Kafka bootstrap address for sink kafka")
	note := fs.String("note", "", "a note printed under the section title (e.g. which binary this is)")
	charts := fs.String("charts", defaultChartsDir, "directory the run's charts (PNG) and their data (JSON) are written to (\"\" = none); "+
		"with -replot, default: the JSON's directory")
	replotFile := fs.String("replot", "", "draw the charts again from a saved run (the JSON of -charts) instead of running")
	timeScale := fs.Int("time-scale", 1, "compress the rate-limit window to one hour / N: the simulator runs -time-scale N with a limit of "+
		"the workload's requests per hour / N per (simulated) hour, and tagstream gets the same --requests-per-hour and "+
		"--rate-window 1h/N, so B is unchanged and the simulator refuses any overspend within a window")
	tsBinary := fs.String("tagstream-bin", "", "run this tagstream binary instead of building ./cmd/tagstream (e.g. another commit's, for a side-by-side run)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of tagstream to this file (passes --pprof-addr to the binary; "+
		"read it with go tool pprof BINARY FILE)")
	profileAt := fs.Duration("cpuprofile-at", 0, "when the profile's window starts after tagstream's start (default: the end of the warm-up)")
	profileFor := fs.Duration("cpuprofile-for", time.Minute, "how long the profile's window lasts")
	var tsFlags stringList
	fs.Var(&tsFlags, "ts-flag", "extra flag for `tagstream run`, e.g. -ts-flag=--start=backfill (repeatable)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: go run ./bench/wholebinary -scenario NAME [flags]\n"+
			"       go run ./bench/wholebinary -replot bench/charts/NAME-SINK.json [-charts DIR]\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *replotFile != "" {
		o := &options{replot: *replotFile, args: args}
		var err error
		fs.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "charts":
				o.charts = *charts
			case "replot":
			default:
				if err == nil {
					err = fmt.Errorf("-replot draws a saved run: -%s does not apply", f.Name)
				}
			}
		})
		if err != nil {
			return nil, err
		}
		return o, nil
	}
	sc, ok := scenarios[*name]
	if !ok {
		return nil, fmt.Errorf("-scenario %q: want one of %s", *name, scenarioNames())
	}
	o := &options{scenario: sc, duration: sc.Duration, sink: sc.Sink, out: *out, baseline: sc.Baseline,
		restartAt: sc.RestartAt, maxInterval: sc.MaxInterval, seed: *seed, keep: *keep, tsFlags: tsFlags,
		kafkaBrokers: *kafka, note: *note, charts: *charts, args: args, timeScale: *timeScale, tsBinary: *tsBinary,
		profile: profileConfig{File: *cpuProfile, At: *profileAt, Window: *profileFor}}
	if o.timeScale < 1 || sc.RequestsPerHour%o.timeScale != 0 {
		return nil, fmt.Errorf("-time-scale %d: want a whole number of at least 1 that divides the workload's %d requests per hour",
			o.timeScale, sc.RequestsPerHour)
	}
	if *duration != 0 {
		o.duration = *duration
	}
	if *sink != "" {
		o.sink = *sink
	}
	switch *baseline {
	case "auto":
	case "on":
		o.baseline = true
	case "off":
		o.baseline = false
	default:
		return nil, fmt.Errorf("-baseline %q: want auto, on or off", *baseline)
	}
	if *restartAt != 0 {
		if sc.RestartAt == 0 {
			return nil, fmt.Errorf("-restart-at: only the restart scenario restarts")
		}
		o.restartAt = *restartAt
	}
	if *maxInterval != 0 {
		o.maxInterval = *maxInterval
	}
	switch o.sink {
	case "jetstream", "file":
	case "kafka":
		if o.kafkaBrokers == "" {
			return nil, errors.New("-sink kafka needs -kafka-brokers or TAGSTREAM_KAFKA_BROKERS (scripts/brokers.sh up DIR && . DIR/env)")
		}
	default:
		return nil, fmt.Errorf("-sink %q: want jetstream, kafka or file", o.sink)
	}
	if o.duration <= warmup {
		return nil, fmt.Errorf("-duration %s: must be longer than the %s warm-up window", o.duration, warmup)
	}
	if o.restartAt > 0 && o.restartAt+warmup >= o.duration {
		return nil, fmt.Errorf("-restart-at %s: the %s after the restart must end before -duration %s", o.restartAt, warmup, o.duration)
	}
	o.grace = *grace
	if o.grace == 0 {
		mi := o.maxInterval
		if mi == 0 {
			mi = 5 * time.Minute // the binary's default --max-interval
		}
		o.grace = mi + 30*time.Second
	}
	return o, nil
}

// rateWindow is the rate-limit window of a compressed run (-time-scale N: one hour / N), 0 for a real hour.
func (o *options) rateWindow() time.Duration {
	if o.timeScale <= 1 {
		return 0
	}
	return time.Hour / time.Duration(o.timeScale)
}
