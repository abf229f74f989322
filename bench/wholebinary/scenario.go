package main

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// tagRate is one tag the simulator posts to, with its Poisson rate in media per second.
type tagRate struct {
	Name string
	Rate float64
}

// scenario is one workload of issue #11.
type scenario struct {
	// Name is the -scenario value.
	Name string
	// What describes the workload in one line for the report.
	What string
	// Active are the tags the simulator posts to (the rates L* is computed from).
	Active []tagRate
	// Latency marks the workloads whose latency is the point (ratios to L* and the latency targets are
	// reported); the scale workloads measure budget use and cost, and their two active tags are held back by
	// --min-interval, not by the budget.
	Latency bool
	// Inactive is the number of further tags tagstream polls that never receive a media (the simulator answers an
	// unknown tag with an empty page).
	Inactive int
	// Tokens is the number of access tokens tagstream gets; the round-robin baseline gets as many of its own.
	Tokens int
	// RequestsPerHour is each token's budget; the simulator's limit per token over its (real) hour window and
	// tagstream's --requests-per-hour.
	RequestsPerHour int
	// Duration is the default measured duration.
	Duration time.Duration
	// Sink is the default sink.
	Sink string
	// Baseline runs the round-robin poller alongside by default.
	Baseline bool
	// WatchFirstPolls samples tagstream's /status until every tag had its first poll (exact start-now losses);
	// off for huge tag counts, where /status is megabytes.
	WatchFirstPolls bool
	// MaxInterval, when set, is passed as --max-interval (the binary's default otherwise).
	MaxInterval time.Duration
	// MetricsEvery, when set, is how often tagstream's /metrics is scraped (default: every second, with the
	// simulator's counters). The scale workloads scrape it every 15 s, as a Prometheus server would: their /metrics
	// holds two series per token (2,000 at 1,000 tokens), and scraping that every second cost about 6 % of
	// tagstream's CPU, an observer's cost that no deployment pays.
	MetricsEvery time.Duration
	// RestartAt, when set, stops tagstream with SIGTERM this long after its start and starts it again on the same
	// state.
	RestartAt time.Duration
}

// Budget is the total request budget B in requests per second.
func (s scenario) Budget() float64 {
	return float64(s.Tokens) * float64(s.RequestsPerHour) / 3600
}

// Rates returns the posting rates of the active tags.
func (s scenario) Rates() []float64 {
	out := make([]float64, len(s.Active))
	for i, t := range s.Active {
		out[i] = t.Rate
	}
	return out
}

// TotalRate is Σr_i.
func (s scenario) TotalRate() float64 {
	sum := 0.0
	for _, t := range s.Active {
		sum += t.Rate
	}
	return sum
}

// TagCount is the number of tags tagstream polls.
func (s scenario) TagCount() int { return len(s.Active) + s.Inactive }

// zipfTags returns n tags named prefix0001... with rates top / i^exponent.
func zipfTags(prefix string, n int, top, exponent float64) []tagRate {
	width := len(fmt.Sprint(n))
	out := make([]tagRate, n)
	for i := range out {
		out[i] = tagRate{
			Name: fmt.Sprintf("%s%0*d", prefix, width, i+1),
			Rate: top / math.Pow(float64(i+1), exponent),
		}
	}
	return out
}

// inactiveTagName is the name of the i-th tag that receives nothing.
func inactiveTagName(i, n int) string {
	return fmt.Sprintf("idle%0*d", len(fmt.Sprint(n)), i+1)
}

// scenarios are the workloads of issue #11 by name.
var scenarios = map[string]scenario{
	"zipf50": {
		Name:            "zipf50",
		Latency:         true,
		What:            "50 tags, Zipf rates r_i = 8 / i^1.1 media/s, 3 tokens at 1 request/s each",
		Active:          zipfTags("zipf", 50, 8, 1.1),
		Tokens:          3,
		RequestsPerHour: 3600,
		Duration:        5 * time.Minute,
		Sink:            "jetstream",
		Baseline:        true,
		WatchFirstPolls: true,
	},
	"zipf1000": {
		Name:            "zipf1000",
		Latency:         true,
		What:            "1,000 tags, Zipf rates r_i = 8 / i^1.1 media/s, 20 tokens at 1 request/s each",
		Active:          zipfTags("zipf", 1000, 8, 1.1),
		Tokens:          20,
		RequestsPerHour: 3600,
		Duration:        5 * time.Minute,
		Sink:            "jetstream",
		Baseline:        true,
		WatchFirstPolls: true,
	},
	"scale100k": {
		Name:            "scale100k",
		What:            "100,002 tags (two active: 8 and 3.73 media/s, the rest never post), 1,000 tokens at 5,000 requests/hour each",
		Active:          zipfTags("zipf", 2, 8, 1.1),
		Inactive:        100_000,
		Tokens:          1000,
		RequestsPerHour: 5000,
		Duration:        3 * time.Minute,
		Sink:            "file",
		MetricsEvery:    15 * time.Second,
	},
	"scale1m": {
		Name: "scale1m",
		What: "1,000,002 tags (two active: 8 and 3.73 media/s), 1,000 tokens at 5,000 requests/hour each; " +
			"--max-interval 15m (each tag is polled about every 12 minutes)",
		Active:          zipfTags("zipf", 2, 8, 1.1),
		Inactive:        1_000_000,
		Tokens:          1000,
		RequestsPerHour: 5000,
		Duration:        3 * time.Minute,
		Sink:            "file",
		MetricsEvery:    15 * time.Second,
		MaxInterval:     15 * time.Minute,
	},
	"restart": {
		Name:    "restart",
		Latency: true,
		What: "zipf50's workload (50 tags, r_i = 8 / i^1.1, 3 tokens at 1 request/s); tagstream stopped with " +
			"SIGTERM 2 min after its start and started again on the same state",
		Active:          zipfTags("zipf", 50, 8, 1.1),
		Tokens:          3,
		RequestsPerHour: 3600,
		Duration:        5 * time.Minute,
		Sink:            "jetstream",
		Baseline:        true,
		WatchFirstPolls: true,
		RestartAt:       2 * time.Minute,
	},
}

// scenarioNames lists the scenarios for the usage text.
func scenarioNames() string {
	names := make([]string, 0, len(scenarios))
	for n := range scenarios {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, "|")
}
