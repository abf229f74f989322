package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tagstream/tagstream/internal/testkit"
	"github.com/tagstream/tagstream/publisher"
	"github.com/tagstream/tagstream/schema"
	"github.com/tagstream/tagstream/testenv"
)

func TestParseProcStat(t *testing.T) {
	// A command name with spaces and a parenthesis, as /proc shows it.
	line := "4242 (tag stream) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 37 0 0 20 0 9 0 123 456789 1234 " +
		"18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
	got, err := parseProcStatCPU(line)
	if err != nil {
		t.Fatal(err)
	}
	if want := 287 * clockTick; got != want {
		t.Errorf("CPU = %v, want %v", got, want)
	}
	if _, err := parseProcStatCPU("4242 (short) S 1"); err == nil {
		t.Error("a cut line parsed without an error")
	}
}

func TestParseProcStatusKB(t *testing.T) {
	status := "Name:\ttagstream\nVmPeak:\t  900 kB\nVmHWM:\t   104448 kB\nVmRSS:\t  100000 kB\n"
	got, err := parseProcStatusKB(status, "VmHWM")
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(104448 * 1024); got != want {
		t.Errorf("VmHWM = %d, want %d", got, want)
	}
	if _, err := parseProcStatusKB(status, "VmSwap"); err == nil {
		t.Error("a missing key gave no error")
	}
}

func TestProcUsageOfThisProcess(t *testing.T) {
	u, err := procUsage(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if u.MaxRSS <= 0 {
		t.Errorf("VmHWM of this process = %d", u.MaxRSS)
	}
}

func TestParseMetricsSumsFamilies(t *testing.T) {
	text := `# HELP tagstream_requests_total Requests to the API by outcome.
# TYPE tagstream_requests_total counter
tagstream_requests_total{outcome="ok"} 120
tagstream_requests_total{outcome="rate_limited"} 3
tagstream_schedule_overload 1.5
`
	m, err := parseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]float64{
		"tagstream_requests_total":                         123,
		`tagstream_requests_total{outcome="rate_limited"}`: 3,
		"tagstream_schedule_overload":                      1.5,
	} {
		if m[k] != want {
			t.Errorf("%s = %v, want %v", k, m[k], want)
		}
	}
}

// mediaEvent builds the event tagstream publishes for one media.
func mediaEvent(t *testing.T, tag, id string) *schema.Event {
	t.Helper()
	ev, err := schema.Normalize(&schema.Media{ID: id, Type: "image", CreatedTime: "1700000000"}, schema.Sighting{Tag: tag})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestFileConsumerReadsLinesAsTheyAreAppended(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.ndjson")
	rec := newRecorder()
	c := startFileConsumer(path, rec) // the file does not exist yet
	defer c.close()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	line1 := mediaEvent(t, "coffee", "1_1").AppendJSON(nil)
	line2 := mediaEvent(t, "coffee", "2_1").AppendJSON(nil)
	// The first line whole, the second cut in two writes: it counts only once complete.
	if _, err := f.Write(append(append(line1, '\n'), line2[:10]...)); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "the first line is read", func() bool { return rec.has(mediaKey{"coffee", "1_1"}) })
	if rec.has(mediaKey{"coffee", "2_1"}) {
		t.Fatal("half a line was taken for an event")
	}
	if _, err := f.Write(append(line2[10:], "\nnot json\n"...)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.finish(ctx); err != nil {
		t.Fatal(err)
	}
	if !rec.has(mediaKey{"coffee", "2_1"}) {
		t.Error("the completed second line was not read")
	}
	if rec.bad != 1 {
		t.Errorf("bad lines = %d, want 1", rec.bad)
	}
}

func TestKafkaEventInBinaryMode(t *testing.T) {
	ev := mediaEvent(t, "東京", "7_9")
	m := kafka.Message{
		Value: ev.DataJSON(),
		Headers: []kafka.Header{
			{Key: publisher.HeaderSpecVersion, Value: []byte(ev.SpecVersion)},
			{Key: publisher.HeaderID, Value: []byte(ev.ID)},
			{Key: publisher.HeaderType, Value: []byte(ev.Type)},
			{Key: publisher.HeaderSource, Value: []byte(ev.Source)},
			{Key: publisher.HeaderSubject, Value: []byte(ev.Subject)},
			{Key: publisher.HeaderContentType, Value: []byte(ev.DataContentType)},
		},
	}
	got, err := kafkaEvent(m)
	if err != nil {
		t.Fatal(err)
	}
	if got.Data == nil || got.Data.Tag != "東京" || got.Data.MediaID != "7_9" || got.ID != ev.ID {
		t.Errorf("decoded %+v", got)
	}
	m.Headers = m.Headers[1:]
	if _, err := kafkaEvent(m); err == nil {
		t.Error("a record without ce_specversion decoded")
	}
}

func TestRoundRobinSeesEveryMediaAfterItsFirstPoll(t *testing.T) {
	sim, err := testenv.New(testenv.Config{
		PlainHTTP: true, Tokens: []string{"rr-token-1", "rr-token-2"}, Seed: 7,
		Tags: []testenv.TagConfig{{Name: "hot"}, {Name: "cold"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	before := sim.Post("hot", 5) // before the first poll: not counted, like --start now
	rec := newRecorder()
	rr := newRoundRobin(roundRobinConfig{
		APIURL: sim.URL(), Tokens: []string{"rr-token-1", "rr-token-2"}, Tags: []string{"hot", "cold"}, Budget: 500,
	}, rec)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rr.run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	testkit.Eventually(t, 10*time.Second, "both tags had their first poll", func() bool { return len(rr.firstPolls()) == 2 })
	// 80 media at once: more than two pages of 33, so the baseline must walk back.
	posted := append(sim.Post("hot", 80), sim.Post("cold", 1)...)
	testkit.Eventually(t, 10*time.Second, "every media posted after the first polls is seen", func() bool {
		for _, tr := range posted {
			if !rec.has(mediaKey{tr.Tag, tr.MediaID}) {
				return false
			}
		}
		return true
	})
	for _, tr := range before {
		if rec.has(mediaKey{tr.Tag, tr.MediaID}) {
			t.Errorf("media %s, posted before the first poll, was recorded", tr.MediaID)
		}
	}
	for k, a := range rec.snapshot() {
		if a.Count != 1 {
			t.Errorf("media %v seen %d times, want once", k, a.Count)
		}
	}
	if n := rr.failed.Load(); n != 0 {
		t.Errorf("%d requests failed", n)
	}
	if n := rr.limited.Load(); n != 0 {
		t.Errorf("%d rate-limit answers", n)
	}
}

func TestPacerSpacesRequestsAndBoundsTheBurst(t *testing.T) {
	p := &pacer{interval: 100 * time.Millisecond, burst: 3}
	var waits []time.Duration
	for range 3 {
		waits = append(waits, p.reserve(t0))
	}
	// After a stall of 10 s, three slots go at once (the burst), then the pace holds again.
	later := t0.Add(10 * time.Second)
	for range 4 {
		waits = append(waits, max(p.reserve(later), 0))
	}
	ms := time.Millisecond
	want := []time.Duration{0, 100 * ms, 200 * ms, 0, 0, 0, 100 * ms}
	if !reflect.DeepEqual(waits, want) {
		t.Errorf("waits = %v, want %v", waits, want)
	}
}

func TestMarkdownShowsMissingMediaLoudly(t *testing.T) {
	o := &options{scenario: scenarios["zipf50"], duration: 5 * time.Minute, sink: "jetstream", args: []string{"-scenario", "zipf50"}}
	res := &result{o: o, started: t0, end: t0.Add(5 * time.Minute), budget: 3, lstar: 5.56, drained: false}
	res.windows = []window{{"first 90 s", at(0), at(90)}, {"after 90 s", at(90), at(300)}, {"whole run", at(0), at(300)}}
	res.ts = sideResult{name: "tagstream", ran: true, requests: 900, stats: []latencyStats{
		{Posted: 10, Delivered: 9, MissingBeforeFirstPoll: 1, Mean: 7 * time.Second},
		{Posted: 10, Delivered: 9, MissingAfterFirstPoll: 1, Mean: 6 * time.Second},
		{Posted: 20, Delivered: 18, MissingBeforeFirstPoll: 1, MissingAfterFirstPoll: 1, Mean: 6500 * time.Millisecond},
	}}
	md := res.markdown()
	for _, want := range []string{
		"go run ./bench/wholebinary -scenario zipf50",
		"| after 90 s | tagstream | 10 | 9 | **MISSING** 0 / 1 / 0 |",
		"| first 90 s | tagstream | 10 | 9 | 1 / 0 / 0 |",
		"**1.26x**",
		"the grace of",
		"nothing lost after a tag's first poll (1): **not met**",
		"budget use at least 97 % (100.0 %): met",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("the report lacks %q:\n%s", want, md)
		}
	}
}

func TestShellJoinQuotesWhatAShellWouldSplit(t *testing.T) {
	got := shellJoin([]string{"-scenario", "zipf50", "-note", `Today's "before"`, "-ts-flag=--start=backfill", ""})
	want := `-scenario zipf50 -note 'Today'\''s "before"' -ts-flag=--start=backfill ''`
	if got != want {
		t.Errorf("shellJoin = %s\nwant         %s", got, want)
	}
}

func TestParseFlags(t *testing.T) {
	getenv := func(string) string { return "" }
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"an unknown scenario is refused", []string{"-scenario", "zipf7"}, "want one of"},
		{"kafka without brokers is refused", []string{"-scenario", "zipf50", "-sink", "kafka"}, "TAGSTREAM_KAFKA_BROKERS"},
		{"a run no longer than the warm-up is refused", []string{"-scenario", "zipf50", "-duration", "60s"}, "warm-up"},
		{"a restart too late for its 90 s is refused", []string{"-scenario", "restart", "-restart-at", "4m"}, "restart-at"},
		{"restart-at outside the restart scenario is refused", []string{"-scenario", "zipf50", "-restart-at", "1m"}, "only the restart"},
		{"a scenario with its defaults is accepted", []string{"-scenario", "scale100k"}, ""},
		{"a time scale that does not divide the hourly budget is refused", []string{"-scenario", "scale100k", "-time-scale", "7"}, "divides"},
		{"a time scale below one is refused", []string{"-scenario", "scale100k", "-time-scale", "0"}, "at least 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr strings.Builder
			o, err := parseFlags(tt.args, getenv, &stderr)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if o.sink != "file" || o.duration != 3*time.Minute || o.grace != 5*time.Minute+30*time.Second {
					t.Errorf("defaults: sink %s, duration %s, grace %s", o.sink, o.duration, o.grace)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestCompressedHourKeepsTheBudget checks that -time-scale shortens the window and divides the limit by the same
// factor, so that B (and L*) stay the uncompressed workload's and the simulator and tagstream are told alike.
func TestCompressedHourKeepsTheBudget(t *testing.T) {
	o, err := parseFlags([]string{"-scenario", "zipf50", "-time-scale", "12"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := o.rateWindow(); got != 5*time.Minute {
		t.Errorf("rate window %s, want 5m0s", got)
	}
	if limit := o.scenario.RequestsPerHour / o.timeScale; float64(limit)/o.rateWindow().Seconds() != 1 {
		t.Errorf("%d requests per %s: want 1 request/s per token, as uncompressed", limit, o.rateWindow())
	}
	ts, err := newTagstream(tagstreamConfig{Binary: "tagstream", Dir: t.TempDir(), RequestsPerHour: 300, RateWindow: o.rateWindow()})
	if err != nil {
		t.Fatal(err)
	}
	if cl := ts.commandLine(); !strings.Contains(cl, "--requests-per-hour 300 ") || !strings.Contains(cl, "--rate-window 5m0s") {
		t.Errorf("tagstream is not told the compressed window: %s", cl)
	}
	o, err = parseFlags([]string{"-scenario", "zipf50"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := o.rateWindow(); got != 0 {
		t.Errorf("uncompressed rate window %s, want 0 (the binary's default hour)", got)
	}
}

func TestParseFlagsReplot(t *testing.T) {
	getenv := func(string) string { return "" }
	tests := []struct {
		name       string
		args       []string
		wantCharts string
		wantErr    string
	}{
		{"a run draws into bench/charts by default", []string{"-scenario", "zipf50"}, "bench/charts", ""},
		{"a run without charts", []string{"-scenario", "zipf50", "-charts", ""}, "", ""},
		{"replot draws next to the JSON by default", []string{"-replot", "x/zipf50-jetstream.json"}, "", ""},
		{"replot into another directory", []string{"-replot", "x.json", "-charts", "/tmp/c"}, "/tmp/c", ""},
		{"replot with a run's flag is refused", []string{"-replot", "x.json", "-scenario", "zipf50"}, "", "-scenario does not apply"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags(tt.args, getenv, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o.charts != tt.wantCharts {
				t.Errorf("charts %q, want %q", o.charts, tt.wantCharts)
			}
		})
	}
}

func TestMarkdownNamesTheCharts(t *testing.T) {
	o := &options{scenario: scenarios["zipf50"], duration: 5 * time.Minute, sink: "jetstream", args: []string{"-scenario", "zipf50"}}
	res := &result{o: o, started: t0, end: t0.Add(5 * time.Minute), budget: 3, lstar: 5.56, drained: true,
		charts: []string{"bench/charts/zipf50-jetstream.json", "bench/charts/zipf50-jetstream-latency.png", "bench/charts/zipf50-jetstream-budget.png"}}
	res.windows = []window{{"whole run", at(0), at(300)}}
	res.ts = sideResult{name: "tagstream", ran: true, requests: 900, stats: []latencyStats{{Posted: 1, Delivered: 1, Mean: time.Second}}}
	want := "- Charts (`go run ./bench/wholebinary -replot bench/charts/zipf50-jetstream.json` draws them again): " +
		"`bench/charts/zipf50-jetstream-latency.png`, `bench/charts/zipf50-jetstream-budget.png`."
	if md := res.markdown(); !strings.Contains(md, want) {
		t.Errorf("the report lacks %q:\n%s", want, md)
	}
	res.charts, res.chartErr = nil, "render: boom"
	if md := res.markdown(); !strings.Contains(md, "**Charts not drawn**: render: boom.") {
		t.Errorf("the report hides a chart failure:\n%s", md)
	}
}

func TestScenariosMatchTheIssue(t *testing.T) {
	z := scenarios["zipf50"]
	if len(z.Active) != 50 || z.Budget() != 3 {
		t.Errorf("zipf50: %d tags, B = %v", len(z.Active), z.Budget())
	}
	if r := z.Active[9].Rate; r < 0.6353 || r > 0.6355 { // 8 / 10^1.1
		t.Errorf("zipf50 tag 10 rate %v, want 8/10^1.1", r)
	}
	if s := scenarios["zipf1000"]; len(s.Active) != 1000 || s.Budget() != 20 {
		t.Errorf("zipf1000: %d tags, B = %v", len(s.Active), s.Budget())
	}
	s := scenarios["scale100k"]
	if s.TagCount() != 100_002 || s.Tokens != 1000 || s.RequestsPerHour != 5000 {
		t.Errorf("scale100k: %d tags, %d tokens at %d/h", s.TagCount(), s.Tokens, s.RequestsPerHour)
	}
	if got := inactiveTagName(41, 100_000); got != "idle000042" {
		t.Errorf("inactive tag name %q", got)
	}
}
