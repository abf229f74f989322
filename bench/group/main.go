// Command group measures tagstream's group mode (issue #13) with the built binary on a three-node nats-server
// cluster against the API simulator:
//
//   - budget: the zipf50 workload of bench/wholebinary (50 tags, r_i = 8 / i^1.1 media/s, 3 tokens at 1 request/s
//     each) polled by one instance, then by three instances in a group with the same tokens and tags: budget use,
//     rate-limit answers and mean post-to-event latency against L* for the pooled budget.
//   - failover: three instances in a group on the same workload; in turn one is killed with kill -9 and one is
//     stopped with SIGTERM (each started again afterwards under its name): the time from the signal to the first
//     poll of each of its tags by its new owner, and the longest time one of those tags went unpolled.
//
// Usage:
//
//	go run ./bench/group [-scenario budget|failover|all] [-duration 4m] [-instances 1,3] [-window 1m]
//	    [-lease 8s] [-repeat 2] [-out bench/group.md]
//
// The simulator (testenv, in-process, plain HTTP) serves a compressed hour: its rate-limit window is -window (1m)
// and tagstream runs with the same --rate-window, so each token's limit is checked over many whole windows and a
// single request over it is refused and counted. Each instance reaches the simulator through a recording proxy of
// its own, which is how every poll is known by instance, tag and time. The cluster is the one the environment names
// (TAGSTREAM_NATS_CLUSTER_URLS, _CTL, _DIR, as scripts/test.sh exports them), else one started with
// scripts/nats-cluster.sh in the temporary directory. Latency is the JetStream stored time of a media's event minus
// the simulator's VisibleAt.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	scenario string
	duration time.Duration
	warmup   time.Duration
	grace    time.Duration
	lease    time.Duration
	settle   time.Duration
	window   time.Duration
	foRate   float64 // requests per second per token in the failover run
	repeat   int
	counts   []int // instances of the budget runs
	out      string
	keep     bool
	note     string
	args     []string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	o, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "group:", err)
		os.Exit(2)
	}
	if err := runBench(ctx, o, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "group:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("group", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{args: args}
	fs.StringVar(&o.scenario, "scenario", "all", "budget, failover or all")
	fs.DurationVar(&o.duration, "duration", 4*time.Minute, "measured span of each budget run")
	fs.DurationVar(&o.warmup, "warmup", 90*time.Second, "the start of a budget run reported apart (no rate estimates yet)")
	fs.DurationVar(&o.grace, "grace", 2*time.Minute, "after a run, how long to wait for media still in flight")
	fs.DurationVar(&o.lease, "lease", 8*time.Second, "--group-lease of the failover run (8s is the group default)")
	fs.DurationVar(&o.settle, "settle", 40*time.Second, "failover: time after the start before the first event (half of it between events)")
	fs.DurationVar(&o.window, "window", time.Minute, "the compressed hour: the simulator's rate-limit window and tagstream's --rate-window "+
		"(each token allows 1 request/s: 60 per minute); 1h is the real API's")
	fs.Float64Var(&o.foRate, "failover-rate", 1, "failover: each token's requests per second (1 = the budget runs'; more shows "+
		"failover with polls no longer spread by the budget)")
	fs.IntVar(&o.repeat, "repeat", 2, "failover: how many kill -9 and SIGTERM events each")
	instances := fs.String("instances", "1,3", "budget: the runs, by number of instances (1: a single instance without --group)")
	fs.StringVar(&o.out, "out", "bench/group.md", "markdown file the results section is appended to (\"\" = stdout only)")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (logs; it holds the generated tokens)")
	fs.StringVar(&o.note, "note", "", "a note printed under the section title")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	for _, f := range strings.Split(*instances, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 9 {
			return nil, fmt.Errorf("-instances %q: want a comma-separated list of 1..9", *instances)
		}
		o.counts = append(o.counts, n)
	}
	switch o.scenario {
	case "budget", "failover", "all":
	default:
		return nil, fmt.Errorf("-scenario %q: want budget, failover or all", o.scenario)
	}
	if o.duration <= o.warmup {
		return nil, fmt.Errorf("-duration %s must be longer than -warmup %s", o.duration, o.warmup)
	}
	if o.window < 10*time.Second || o.window > time.Hour || o.window%time.Second != 0 {
		return nil, fmt.Errorf("-window %s: want whole seconds in 10s..1h", o.window)
	}
	if o.foRate <= 0 || o.foRate*o.window.Seconds() < 1 {
		return nil, fmt.Errorf("-failover-rate %v: want a positive rate of at least one request per window", o.foRate)
	}
	if o.repeat < 1 || o.lease < time.Second {
		return nil, errors.New("-repeat must be at least 1 and -lease at least 1s")
	}
	return o, nil
}

func runBench(ctx context.Context, o *options, stdout, stderr io.Writer) error {
	repo, err := os.Getwd()
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(repo, "scripts", "nats-cluster.sh")); err != nil {
		return errors.New("run it from the repository root (go run ./bench/group)")
	}
	dir, err := os.MkdirTemp("", "bench-group-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintf(stderr, "group: keeping %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	logf := func(format string, args ...any) {
		fmt.Fprintf(stderr, "[%s] %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, args...))
	}
	bin := filepath.Join(dir, "tagstream")
	logf("building ./cmd/tagstream")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/tagstream").CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	cl, err := openCluster(repo, dir)
	if err != nil {
		return err
	}
	defer cl.close()
	nc, js, err := connectJetStream(cl.URLs)
	if err != nil {
		return err
	}
	defer nc.Close()
	b := &bench{bin: bin, dir: dir, cl: cl, js: js, tags: zipfTags("zipf", 50, 8, 1.1), tokens: 3,
		perWindow: int(o.window.Seconds()), window: o.window, seed: 1, log: logf}

	var budgets []budgetResult
	var fo *failoverResult
	if o.scenario == "budget" || o.scenario == "all" {
		for _, n := range o.counts {
			res, err := b.budgetRun(ctx, n, o.duration, o.warmup, o.grace)
			if err != nil {
				return fmt.Errorf("budget run with %d instance(s): %w", n, err)
			}
			logf("%s: budget use %.1f %% (after warm-up %.1f %%), %d refused, steady mean %s = %.2fx L*", res.Name,
				100*res.UseAll, 100*res.UseSteady, res.Limited, res.Steady.Mean.Round(time.Millisecond),
				res.Steady.Mean.Seconds()/res.LStar)
			budgets = append(budgets, res)
		}
	}
	if o.scenario == "failover" || o.scenario == "all" {
		fb := *b
		fb.perWindow = int(o.foRate * o.window.Seconds())
		res, err := fb.failoverRun(ctx, o.lease, o.settle, o.grace, o.repeat)
		if err != nil {
			return fmt.Errorf("failover run: %w", err)
		}
		fo = &res
	}
	section := report(o, b, budgets, fo)
	fmt.Fprint(stdout, section)
	if o.out != "" {
		f, err := os.OpenFile(o.out, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := f.WriteString(section); err != nil {
			return err
		}
	}
	return nil
}

// report renders one markdown section.
func report(o *options, b *bench, budgets []budgetResult, fo *failoverResult) string {
	var s strings.Builder
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Fprintf(&s, "\n## %s: %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"), o.scenario)
	fmt.Fprintf(&s, "`go run ./bench/group %s` — load average %s\n\n", strings.Join(o.args, " "), strings.Join(strings.Fields(string(load))[:3], " "))
	if o.note != "" {
		fmt.Fprintf(&s, "%s\n\n", o.note)
	}
	B := b.budget()
	fmt.Fprintf(&s, "Workload: %d Zipf tags (r_i = 8 / i^1.1 media/s), %d tokens, simulator window %s, `--rate-window %s`.\n\n",
		len(b.tags), b.tokens, b.window, b.window)
	if len(budgets) > 0 {
		fmt.Fprintf(&s, "Budget runs: each token at %d requests per %s (B = %.2f requests/s); L* = %.2f s.\n\n", b.perWindow, b.window,
			B, LStar(b.rates(), B))
		s.WriteString("| run | budget use (whole span / after warm-up) | requests, refused over the limit | mean post-to-event: first " +
			"span / after (p50, p99) | mean / L* after warm-up | missing after warm-up | events stored twice |\n|---|---|---|---|---|---|---|\n")
		for _, r := range budgets {
			what := "one instance (no group)"
			if r.Instances > 1 {
				what = fmt.Sprintf("%d instances, one group", r.Instances)
			}
			fmt.Fprintf(&s, "| %s, %s | %.1f %% / **%.1f %%** | %d, **%d** | %s / %s (%s, %s) | **%.2fx** | %d of %d | %d |\n",
				what, r.Span.Round(time.Second), 100*r.UseAll, 100*r.UseSteady, r.Requests, r.Limited,
				r.Warm.Mean.Round(time.Millisecond), r.Steady.Mean.Round(time.Millisecond), r.Steady.P50.Round(time.Millisecond),
				r.Steady.P99.Round(time.Millisecond), r.Steady.Mean.Seconds()/r.LStar, r.Steady.Missing,
				r.Steady.N+r.Steady.Missing, r.Repeats)
		}
		fmt.Fprintf(&s, "\nWarm-up: the first %s of each run (no rate estimates yet).\n\n", o.warmup)
	}
	if fo != nil {
		fmt.Fprintf(&s, "Failover, three instances, lease %s, each token at %d requests per %s (B = %.2f requests/s):\n\n", fo.Lease,
			fo.PerWindow, b.window, float64(b.tokens)*float64(fo.PerWindow)/b.window.Seconds())
		s.WriteString("| event | member | its tags | every one owned again after the signal | first poll of a moved tag by its new owner " +
			"after the signal: p50 / max | exit after SIGTERM | longest a moved tag went unpolled across the event (its longest gap " +
			"in the minute before) |\n|---|---|---|---|---|---|---|\n")
		for _, ev := range fo.Events {
			exit := "-"
			if ev.Kind == "SIGTERM" {
				exit = ev.Exit.Round(time.Millisecond).String()
			}
			missing := ""
			if len(ev.Missing) > 0 {
				missing = fmt.Sprintf(" (%d tags not polled again in time)", len(ev.Missing))
			}
			fmt.Fprintf(&s, "| %s | %s | %d | **%s** | %s / **%s**%s | %s | %s (%s) |\n", ev.Kind, ev.Victim, ev.Tags,
				ev.Owned.Round(time.Millisecond), ev.P50.Round(time.Millisecond), ev.Max.Round(time.Millisecond), missing, exit,
				ev.Gap.Round(time.Millisecond), ev.Before.Round(time.Millisecond))
		}
		fmt.Fprintf(&s, "\nOver the run: %d requests of the shared tokens, **%d refused** over the limit; %d media visible after "+
			"the first settle on the stream, %d missing; %d events stored twice.\n", fo.Requests, fo.Limited, fo.Media, fo.Lost, fo.Repeats)
	}
	return s.String()
}
