package check

import (
	"bufio"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/tagstream/tagstream/internal/testkit"
	"github.com/tagstream/tagstream/internal/testkit/simkit"
	"github.com/tagstream/tagstream/publisher"
)

// pendingMetric is a metric that the alerts or the dashboard name before the binary exports it.
type pendingMetric struct {
	Name   string
	Type   string
	Labels []string // label names, sorted, as docs/operations.md lists them
	Status string   // who adds it, or that it is a proposal
	Where  []string // the files under deploy/ that may name it
}

const (
	mainRules  = "prometheus/tagstream.rules.yml"
	groupRules = "prometheus/tagstream-group.rules.yml"
	dashFile   = "grafana/tagstream.json"
)

// pendingMetrics is the allowance of the check that every metric named in deploy/ is exported: each line is a
// metric that is not exported yet, says why, and where it may be named. The check fails for any other metric the
// binary does not export, for a pending metric named elsewhere, for a pending metric that nothing names, and for
// a pending metric the binary exports by now: then delete its line here (and "pending" in docs/operations.md).
var pendingMetrics = []pendingMetric{}

// prometheusSeries are series that Prometheus itself adds to every scrape, not the binary.
var prometheusSeries = map[string]string{"up": "1 when the last scrape of the target succeeded"}

// family is one metric family of an exposition: its type, label names and samples (name to summed value).
type family struct {
	typ     string
	labels  map[string]bool
	samples map[string]float64
}

// sortedLabels returns the family's label names without le and quantile, sorted: "{a,b}" or "".
func (f *family) sortedLabels() string {
	var ls []string
	for l := range f.labels {
		if l != "le" && l != "quantile" {
			ls = append(ls, l)
		}
	}
	if len(ls) == 0 {
		return ""
	}
	slices.Sort(ls)
	return "{" + strings.Join(ls, ",") + "}"
}

// parseExposition reads the Prometheus text format: # TYPE lines open a family, sample lines belong to the last
// one opened.
func parseExposition(r io.Reader) (map[string]*family, error) {
	fams := map[string]*family{}
	var cur *family
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, typ, _ := strings.Cut(rest, " ")
			cur = &family{typ: typ, labels: map[string]bool{}, samples: map[string]float64{}}
			fams[name] = cur
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if cur == nil {
			return nil, fmt.Errorf("sample before any # TYPE line: %q", line)
		}
		end := strings.IndexAny(line, "{ ")
		if end < 0 {
			return nil, fmt.Errorf("bad sample line %q", line)
		}
		name, rest := line[:end], line[end:]
		if strings.HasPrefix(rest, "{") {
			labels, after, err := parseLabels(rest[1:])
			if err != nil {
				return nil, fmt.Errorf("%q: %w", line, err)
			}
			for _, l := range labels {
				cur.labels[l] = true
			}
			rest = after
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return nil, fmt.Errorf("no value in %q", line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("value of %q: %w", line, err)
		}
		cur.samples[name] += v
	}
	return fams, sc.Err()
}

// parseLabels reads `a="x",b="y\"z"}` and returns the label names and what follows the closing brace.
func parseLabels(s string) ([]string, string, error) {
	var names []string
	for {
		s = strings.TrimLeft(s, " ,")
		if strings.HasPrefix(s, "}") {
			return names, s[1:], nil
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 || len(s) < eq+2 || s[eq+1] != '"' {
			return nil, "", fmt.Errorf("bad label at %q", s)
		}
		names = append(names, strings.TrimSpace(s[:eq]))
		i := eq + 2
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] == '\\' {
				i++
			}
		}
		if i >= len(s) {
			return nil, "", fmt.Errorf("unterminated label value")
		}
		s = s[i+1:]
	}
}

// fromGatherer turns gathered families into the same form as parseExposition's.
func fromGatherer(t *testing.T, g prometheus.Gatherer) map[string]*family {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	fams := map[string]*family{}
	for _, mf := range mfs {
		f := &family{typ: strings.ToLower(mf.GetType().String()), labels: map[string]bool{}, samples: map[string]float64{}}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				f.labels[lp.GetName()] = true
			}
		}
		switch mf.GetType() {
		case dto.MetricType_HISTOGRAM:
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				f.samples[mf.GetName()+s] = 0
			}
			f.labels["le"] = true
		case dto.MetricType_SUMMARY:
			f.samples[mf.GetName()+"_sum"], f.samples[mf.GetName()+"_count"] = 0, 0
		default:
			f.samples[mf.GetName()] = 0
		}
		fams[mf.GetName()] = f
	}
	return fams
}

// buildTagstream builds cmd/tagstream (with -race when the tests run with it) into a temporary directory, under a
// name that no name-based kill of "tagstream" processes on a shared machine matches.
func buildTagstream(t *testing.T) string {
	t.Helper()
	return testkit.Binary(t, "github.com/tagstream/tagstream/cmd/tagstream", raceEnabled, "ts-deploy-check")
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// runBinary starts bin with args (and no TAGSTREAM_* variable of the test's environment) until the test ends, then
// stops it with SIGINT. It returns its combined output and a channel closed when it exited.
func runBinary(t *testing.T, bin string, args ...string) (*testkit.SyncBuffer, <-chan struct{}, func() error) {
	t.Helper()
	var out testkit.SyncBuffer
	cmd := exec.Command(bin, args...)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TAGSTREAM_") {
			env = append(env, kv)
		}
	}
	cmd.Env, cmd.Stdout, cmd.Stderr = env, &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(time.Minute):
			cmd.Process.Kill()
			<-exited
			t.Errorf("%s %s did not stop within a minute of SIGINT", filepath.Base(bin), args[0])
		}
		if t.Failed() {
			t.Logf("the output of %s %s:\n%s", filepath.Base(bin), args[0], out.String())
		}
	})
	return &out, exited, func() error { <-exited; return waitErr }
}

// scrapeUntil scrapes http://addr/metrics until ready holds for its families (or the process exited) and returns
// those families.
func scrapeUntil(t *testing.T, addr, what string, out *testkit.SyncBuffer, exited <-chan struct{}, wait func() error,
	ready func(fams map[string]*family) bool) map[string]*family {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	var fams map[string]*family
	var lastErr error
	// Every 50 ms, not 5: each scrape has the -race binary render its whole /metrics, and what the tests wait
	// for (counters above zero, a lease held, tags owned) lasts once reached.
	testkit.EventuallyEvery(t, 2*time.Minute, 50*time.Millisecond, what, func() bool {
		select {
		case <-exited:
			return true // reported below
		default:
		}
		resp, err := client.Get("http://" + addr + "/metrics")
		if err != nil {
			lastErr = err
			return false
		}
		defer resp.Body.Close()
		fams, lastErr = parseExposition(resp.Body)
		return lastErr == nil && ready(fams)
	})
	select {
	case <-exited:
		t.Fatalf("the process exited early (%v); last scrape error %v; its output:\n%s", wait(), lastErr, out.String())
	default:
	}
	return fams
}

// sample returns the value of sample in family f of fams (summed over its series), 0 when there is none.
func sample(fams map[string]*family, f, name string) float64 {
	if fams[f] == nil {
		return 0
	}
	return fams[f].samples[name]
}

// scrapeDemo runs `tagstream demo` (the simulator, an embedded JetStream server and the real pipeline) with
// --metrics-addr, waits until its /metrics holds the series that only appear once media flowed (the token
// budgets, the latency histograms, the publisher's acknowledgements) and returns the families of that scrape.
func scrapeDemo(t *testing.T, bin string) map[string]*family {
	t.Helper()
	addr := freeAddr(t)
	out, exited, wait := runBinary(t, bin, "demo", "--duration", "10m", "--plain", "--refresh", "1h", "--drain", "1s",
		"--tokens", "2", "--requests-per-hour", "36000", "--rate-scale", "4", "--seed", "14", "--log-level", "warn",
		"--metrics-addr", addr) // a larger budget and rates: the first polls and the first events come sooner
	return scrapeUntil(t, addr, "media published by the demo on its /metrics", out, exited, wait, func(fams map[string]*family) bool {
		return sample(fams, "tagstream_media_published_total", "tagstream_media_published_total") > 0 &&
			sample(fams, "tagstream_post_to_publish_seconds", "tagstream_post_to_publish_seconds_count") > 0 &&
			sample(fams, "tagstream_publisher_acks_total", "tagstream_publisher_acks_total") > 0 &&
			fams["tagstream_token_budget_remaining"] != nil
	})
}

// scrapeGroup runs the binary as a member of a group (`run --group`, its cursors and the group in JetStream)
// against an in-process nats-server and the simulator, waits until its /metrics shows it holding its lease,
// owning the tags and holding a share of each token, and returns the families of that scrape.
func scrapeGroup(t *testing.T, bin string) map[string]*family {
	t.Helper()
	tokens := []string{"deploycheck-token-0001-aaaaaaaaaaaa", "deploycheck-token-0002-bbbbbbbbbbbb"}
	sim := simkit.StartSim(t, simkit.SimOptions{Tokens: tokens, Tags: []string{"sunset", "coffee"}})
	ns := testkit.StartNATS(t)
	addr := freeAddr(t)
	out, exited, wait := runBinary(t, bin, "run", "--group", "deploycheck", "--group-member", "m1",
		"--checkpoint-store", "jetstream-kv", "--nats-url", ns.ClientURL(), "--sink", "jetstream",
		"--api-url", sim.URL(), "--ca-file", sim.CAFile(), "--tokens-file", testkit.WriteTokens(t, tokens...),
		"--tags", "sunset,coffee", "--min-interval", "200ms", "--max-interval", "1s",
		"--state-dir", t.TempDir(), "--metrics-addr", addr, "--log-level", "warn")
	return scrapeUntil(t, addr, "the group member holding its lease, both tags and both tokens' shares on its /metrics", out, exited, wait,
		func(fams map[string]*family) bool {
			return sample(fams, "tagstream_group_lease_valid", "tagstream_group_lease_valid") == 1 &&
				sample(fams, "tagstream_group_owned_tags", "tagstream_group_owned_tags") == 2 &&
				sample(fams, "tagstream_group_token_share", "tagstream_group_token_share") > 1.9 &&
				sample(fams, "tagstream_group_rebalances_total", "tagstream_group_rebalances_total") > 0
		})
}

// exportedFamilies returns what the binary exports: the families on /metrics of a running demo and of a running
// group member (`run --group`: the group metrics exist only in group mode), plus the families a running pipeline
// registers but creates only on a rare event. Those come from the publisher's own constructor (the one the binary
// calls) with each lazily created series touched once: waiting for a dead letter in the demo is not possible, and a
// descriptor of the real code is closer to the binary than a list kept by hand.
func exportedFamilies(t *testing.T) map[string]*family {
	t.Helper()
	bin := buildTagstream(t)
	var fams, grp map[string]*family
	t.Run("scrape", func(t *testing.T) { // the two binaries run at once: each mostly waits for its first polls
		t.Run("demo", func(t *testing.T) { t.Parallel(); fams = scrapeDemo(t, bin) })
		t.Run("group member", func(t *testing.T) { t.Parallel(); grp = scrapeGroup(t, bin) })
	})
	if fams == nil || grp == nil {
		t.FailNow()
	}
	for name, f := range grp {
		if fams[name] == nil {
			fams[name] = f
			continue
		}
		for l := range f.labels {
			fams[name].labels[l] = true
		}
		for s := range f.samples {
			if _, ok := fams[name].samples[s]; !ok {
				fams[name].samples[s] = f.samples[s]
			}
		}
	}
	reg := prometheus.NewRegistry()
	m := publisher.NewMetrics(reg)
	m.DeadLetters.WithLabelValues("jetstream", "file")
	rare := fromGatherer(t, reg)
	for name, f := range rare {
		if fams[name] == nil {
			t.Logf("%s: not on the demo's /metrics (no such event yet), taken from publisher.NewMetrics", name)
			fams[name] = f
		}
	}
	return fams
}

// namedMetrics returns, per file under deploy/, the metric names its expressions select.
func namedMetrics(t *testing.T) map[string]map[string][]string {
	t.Helper()
	named := map[string]map[string][]string{} // file -> metric -> where
	note := func(file, where, expr string) {
		names, err := metricNames(expr)
		if err != nil {
			t.Fatalf("%s, %s: %v in %q", file, where, err, expr)
		}
		if named[file] == nil {
			named[file] = map[string][]string{}
		}
		for _, n := range names {
			named[file][n] = append(named[file][n], where)
		}
	}
	for _, base := range ruleFiles(t) {
		file := "prometheus/" + base
		for _, g := range readRules(t, base).Groups {
			for _, r := range g.Rules {
				note(file, "rule "+r.Alert+r.Record, r.Expr)
			}
		}
	}
	for _, e := range dashboardExprs(t, readDashboard(t)) {
		note(dashFile, e.where, e.resolved)
	}
	return named
}

// TestEveryMetricNamedIsExported checks every metric that an alert rule or a dashboard panel names against the
// /metrics of the running binary, so that neither can drift from the code, and checks the allowance of pending
// metrics both ways. It also checks that docs/operations.md lists every exported tagstream metric with its labels.
func TestEveryMetricNamedIsExported(t *testing.T) {
	named := namedMetrics(t)
	fams := exportedFamilies(t)
	samples := map[string]bool{}
	for _, f := range fams {
		for s := range f.samples {
			samples[s] = true
		}
	}
	pending := map[string]pendingMetric{}
	for _, p := range pendingMetrics {
		pending[p.Name] = p
	}

	t.Run("every metric named is exported or pending", func(t *testing.T) {
		for _, file := range slices.Sorted(maps.Keys(named)) {
			for _, name := range slices.Sorted(maps.Keys(named[file])) {
				where := named[file][name]
				switch p, isPending := pending[name]; {
				case samples[name], prometheusSeries[name] != "":
				case isPending && slices.Contains(p.Where, file):
				case isPending:
					t.Errorf("%s names the pending metric %s (%s), allowed only in %q", file, name, where[0], p.Where)
				default:
					t.Errorf("%s names %s (%s), which the binary does not export and which is not pending", file, name, where[0])
				}
			}
		}
	})
	t.Run("every pending metric is still missing and still named", func(t *testing.T) {
		for _, p := range pendingMetrics {
			if fams[p.Name] != nil || samples[p.Name] {
				t.Errorf("%s is exported now: delete its line from pendingMetrics (deploy/check/metrics_test.go) and "+
					"its \"pending\" note from docs/operations.md", p.Name)
			}
			used := false
			for _, file := range p.Where {
				used = used || len(named[file][p.Name]) > 0
			}
			if !used {
				t.Errorf("pending metric %s is named nowhere in %q: delete its line", p.Name, p.Where)
			}
		}
	})
	t.Run("docs/operations.md lists every metric with its labels", func(t *testing.T) {
		b, err := os.ReadFile(operationsDoc)
		if err != nil {
			t.Fatal(err)
		}
		doc := string(b)
		for _, name := range slices.Sorted(maps.Keys(fams)) {
			if !strings.HasPrefix(name, "tagstream_") {
				continue
			}
			want := "`" + name + fams[name].sortedLabels() + "`"
			if !strings.Contains(doc, want) {
				t.Errorf("docs/operations.md does not list %s (%s) as %s", name, fams[name].typ, want)
			}
		}
		for _, p := range pendingMetrics {
			want := "`" + p.Name + "`"
			if len(p.Labels) > 0 {
				want = "`" + p.Name + "{" + strings.Join(p.Labels, ",") + "}`"
			}
			if !strings.Contains(doc, want) {
				t.Errorf("docs/operations.md does not list the pending metric %s as %s", p.Name, want)
			}
		}
	})
}

func TestParseExposition(t *testing.T) {
	text := `# HELP a_total A.
# TYPE a_total counter
a_total{outcome="ok"} 3
a_total{outcome="a \"quoted\" }, value"} 2
# TYPE h_seconds histogram
h_seconds_bucket{le="0.5"} 1
h_seconds_bucket{le="+Inf"} 2
h_seconds_sum 0.7
h_seconds_count 2
# TYPE g gauge
g 1.5e+00
`
	fams, err := parseExposition(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, family, typ, labels string
		samples                   map[string]float64
	}{
		{"a counter with a tricky label value", "a_total", "counter", "{outcome}", map[string]float64{"a_total": 5}},
		{"a histogram keeps its three sample names", "h_seconds", "histogram", "", map[string]float64{"h_seconds_bucket": 3, "h_seconds_sum": 0.7, "h_seconds_count": 2}},
		{"a gauge without labels", "g", "gauge", "", map[string]float64{"g": 1.5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fams[tt.family]
			if f == nil {
				t.Fatalf("no family %s in %v", tt.family, fams)
			}
			if f.typ != tt.typ || f.sortedLabels() != tt.labels || fmt.Sprint(f.samples) != fmt.Sprint(tt.samples) {
				t.Errorf("got %s %s %v, want %s %s %v", f.typ, f.sortedLabels(), f.samples, tt.typ, tt.labels, tt.samples)
			}
		})
	}
}
