package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSqrtRuleWaitsByHand(t *testing.T) {
	// Rates 4, 1 and 0.25 media/s, B = 1 request/s: Σ√r = 2 + 1 + 0.5 = 3.5, so f = (4/7, 2/7, 1/7) polls/s and
	// the waits 1/(2f) are 0.875, 1.75 and 3.5 s. A tag that never posts is never polled.
	rates := []float64{4, 1, 0.25, 0}
	got := sqrtRuleWaits(rates, 1)
	want := []float64{0.875, 1.75, 3.5}
	for i, w := range want {
		if math.Abs(got[i]-w) > 1e-12 {
			t.Errorf("wait of tag %d (r = %v) = %v, want %v", i, rates[i], got[i], w)
		}
	}
	if !math.IsNaN(got[3]) {
		t.Errorf("wait of a tag that never posts = %v, want NaN", got[3])
	}
	// Weighted by the rates, the waits are L*: (4·0.875 + 1·1.75 + 0.25·3.5) / 5.25 = 6.125 / 5.25 = 1.1667 s.
	var sum float64
	for i, w := range want {
		sum += rates[i] * w
	}
	if l := LStar(rates, 1); math.Abs(sum/5.25-l) > 1e-12 {
		t.Errorf("rate-weighted mean of the waits %v, L* %v", sum/5.25, l)
	}
	if got := roundRobinWait(3, 1); got != 1.5 {
		t.Errorf("round-robin wait of 3 tags at 1 request/s = %v, want 1.5", got)
	}
}

// syntheticRun is a small saved run: three tags that post (4, 1 and 0.25 media/s) and one that does not, B = 1.
func syntheticRun() chartRun {
	return chartRun{
		Scenario: "tiny", Sink: "file", Command: "go run ./bench/wholebinary -scenario tiny", Commit: "abc",
		Started: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC), DurationS: 120, WarmupS: 90,
		Budget: 1, TagsPolled: 4, LStarS: LStar([]float64{4, 1, 0.25}, 1), Latency: true,
		LatencyWindow: "posted after the first 90 s", SliceS: 10,
		Tagstream: chartSide{Ran: true, Steady: tagLatency{Media: 90, MeanS: 1.4}, Whole: tagLatency{Media: 600, MeanS: 2.8},
			BudgetUse: []float64{1.1, 0.9, 0.8, 1, 1, 1, 0.95, 0.9, 1, 1, 0.97, 1}, BudgetUseWhole: 0.96},
		RoundRobin: chartSide{Ran: true, Steady: tagLatency{Media: 90, MeanS: 2.1}, Whole: tagLatency{Media: 600, MeanS: 2.2},
			BudgetUse: []float64{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, BudgetUseWhole: 1},
		Tags: []chartTag{
			{Tag: "a", Rate: 4, Tagstream: tagLatency{Media: 80, MeanS: 1}, RoundRobin: tagLatency{Media: 80, MeanS: 2}},
			{Tag: "b", Rate: 1, Tagstream: tagLatency{Media: 9, MeanS: 2}, RoundRobin: tagLatency{Media: 9, MeanS: 2.5}},
			{Tag: "c", Rate: 0.25, Tagstream: tagLatency{Media: 1, MeanS: 5}}, // nothing reached the baseline
		},
	}
}

func TestLatencyFigureDrawsEachTagAndTheOptimum(t *testing.T) {
	f, err := latencyFigure(syntheticRun())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		prefix string
		kind   seriesKind
		points []xy
	}{
		{"tagstream has a point per tag, by rising rate", "tagstream (event", seriesPoints, []xy{{0.25, 5}, {1, 2}, {4, 1}}},
		{"round-robin has no point for a tag without media", "round-robin (page", seriesPoints, []xy{{1, 2.5}, {4, 2}}},
		{"the optimum is 1/(2 f_i) at each tag's rate", "square-root optimum:", seriesLine, []xy{{0.25, 3.5}, {1, 1.75}, {4, 0.875}}},
		{"round-robin in theory is flat at N/(2B) across the axis", "round-robin in", seriesLine, []xy{{0.25 / 1.5, 2}, {4 * 1.5, 2}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s series
			for _, c := range f.Series {
				if strings.HasPrefix(c.Label, tt.prefix) {
					s = c
				}
			}
			if s.Label == "" {
				t.Fatalf("no series %q… in %v", tt.prefix, labels(f))
			}
			if s.Kind != tt.kind || !closePoints(s.Points, tt.points) {
				t.Errorf("%s: kind %d, points %v; want kind %d, %v", s.Label, s.Kind, s.Points, tt.kind, tt.points)
			}
		})
	}
	if !f.LogX || !f.LogY {
		t.Error("the axes are not logarithmic")
	}
	if f.XMin != 0.25/1.5 || f.XMax != 6 || f.YMin != 0.875/1.5 || f.YMax != 15 {
		t.Errorf("ranges x [%v, %v], y [%v, %v]", f.XMin, f.XMax, f.YMin, f.YMax)
	}
	// L* = 3.5² / (2·1·5.25) = 1.1667 s: 1.4 / L* = 1.20, 2.1 / L* = 1.80, 2.8 / L* = 2.40, 2.2 / L* = 1.89.
	for _, want := range []string{"tiny on file, 2m0s: B = 1 requests/s, N = 4 tags, L* = 1.17 s",
		"mean / L*, media posted after the first 90 s: tagstream 1.20x, round-robin 1.80x (whole run: 2.40x, 1.89x)"} {
		if !strings.Contains(f.Title, want) {
			t.Errorf("title %q lacks %q", f.Title, want)
		}
	}
}

func TestBudgetFigureStepsThroughTheSlices(t *testing.T) {
	cr := syntheticRun()
	cr.RoundRobin = chartSide{}
	cr.Tagstream.BudgetUse = []float64{2, 0.5}
	cr.DurationS, cr.SliceS, cr.RestartS = 25, 10, 12
	f, err := budgetFigure(cr)
	if err != nil {
		t.Fatal(err)
	}
	want := []series{
		{Label: "tagstream", Kind: seriesSteps, Color: colTagstream, Points: []xy{{0, 2}, {10, 0.5}, {20, 0.5}}},
		{Label: "the whole budget B", Kind: seriesLine, Color: colOptimum, Points: []xy{{0, 1}, {25, 1}}},
		{Label: "target: 97 % of B", Kind: seriesLine, Color: colTarget, Dashed: true, Points: []xy{{0, 0.97}, {25, 0.97}}},
		// The end of the warm-up (90 s) is past the 25 s: no line for it.
		{Label: "restart", Kind: seriesLine, Color: colReference, Dashed: true, Points: []xy{{12, 0}, {12, 2.2}}},
	}
	if !reflect.DeepEqual(f.Series, want) {
		t.Errorf("series:\n got %+v\nwant %+v", f.Series, want)
	}
	if f.YMax != 2.2 || f.XMax != 25 {
		t.Errorf("y up to %v (want 2.2: 10 %% above the highest slice), x up to %v", f.YMax, f.XMax)
	}
	if !strings.Contains(f.Title, "budget use per 10s slice; whole run: tagstream 96.0 %, round-robin -") {
		t.Errorf("title %q", f.Title)
	}
}

func TestFiguresWithNothingToDrawAreErrors(t *testing.T) {
	cr := syntheticRun()
	for i := range cr.Tags {
		cr.Tags[i].Tagstream, cr.Tags[i].RoundRobin = tagLatency{}, tagLatency{}
	}
	cr.Tagstream.BudgetUse, cr.RoundRobin.BudgetUse = nil, nil
	if _, err := latencyFigure(cr); !errors.Is(err, errNothingToDraw) {
		t.Errorf("latency chart without media: %v", err)
	}
	if _, err := budgetFigure(cr); !errors.Is(err, errNothingToDraw) {
		t.Errorf("budget chart without slices: %v", err)
	}
	if _, err := render(figure{LogX: true, XMin: 0, XMax: 1, YMin: 1, YMax: 2}); err == nil {
		t.Error("a log axis from 0 rendered without an error")
	}
}

func TestAScaleRunHasOnlyTheBudgetChart(t *testing.T) {
	t.Parallel() // drawing PNGs is the slowest part of the package
	cr := syntheticRun()
	cr.Latency = false
	dir := t.TempDir()
	paths, err := writeCharts(cr, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 2 || !strings.HasSuffix(paths[1], "tiny-file-budget.png") {
		t.Fatalf("paths %v, want the data and the budget chart alone", paths)
	}
	orig, err := os.ReadFile(paths[1])
	if err != nil {
		t.Fatal(err)
	}
	// Without a directory, replot draws next to the JSON: the same chart, over the first.
	beside, err := replot(paths[0], "")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(beside, paths[1:]) {
		t.Errorf("replot without -charts wrote %v, want %v", beside, paths[1:])
	}
	if got, err := os.ReadFile(paths[1]); err != nil || !bytes.Equal(got, orig) {
		t.Errorf("replot's %s differs from the run's (%v)", paths[1], err)
	}
}

// TestReplotDrawsTheSameFigures writes the data and two PNGs of the expected size, and replot draws the same PNGs
// from the saved data (one test: drawing PNGs is the slowest part of the package).
func TestReplotDrawsTheSameFigures(t *testing.T) {
	t.Parallel() // drawing PNGs is the slowest part of the package
	cr := syntheticRun()
	first := filepath.Join(t.TempDir(), "charts")
	paths, err := writeCharts(cr, first)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(first, "tiny-file.json"), filepath.Join(first, "tiny-file-latency.png"),
		filepath.Join(first, "tiny-file-budget.png")}
	if !reflect.DeepEqual(paths, want) {
		t.Fatalf("paths %v, want %v", paths, want)
	}
	for _, p := range paths[1:] {
		img := decodePNG(t, p)
		if b := img.Bounds(); b.Dx() != chartWidth || b.Dy() != chartHeight {
			t.Errorf("%s is %dx%d, want %dx%d", p, b.Dx(), b.Dy(), chartWidth, chartHeight)
		}
	}
	saved, err := readChartRun(paths[0])
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(saved, cr) {
		t.Errorf("the saved run reads back as\n%+v\nwant\n%+v", saved, cr)
	}
	for _, fig := range []func(chartRun) (figure, error){latencyFigure, budgetFigure} {
		a, errA := fig(cr)
		b, errB := fig(saved)
		if errA != nil || errB != nil || !reflect.DeepEqual(a, b) {
			t.Errorf("figure from the run and from the saved run differ (%v, %v):\n%+v\n%+v", errA, errB, a, b)
		}
	}
	again := t.TempDir()
	replotted, err := replot(paths[0], again)
	if err != nil {
		t.Fatal(err)
	}
	if len(replotted) != 2 {
		t.Fatalf("replot wrote %v, want two PNGs", replotted)
	}
	for i, p := range replotted {
		orig, err := os.ReadFile(paths[i+1])
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Base(p) != filepath.Base(paths[i+1]) || !bytes.Equal(orig, got) {
			t.Errorf("replot's %s is not the run's %s", p, paths[i+1])
		}
	}
	// Without a directory replot draws next to the JSON: TestAScaleRunHasOnlyTheBudgetChart.
}

func TestReplotRefusesWhatIsNotASavedRun(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name string
		path string
		want string
	}{
		{"a missing file", filepath.Join(dir, "none.json"), "no such file"},
		{"a file that is not JSON", write("bad.json", "not json"), "not a saved run"},
		{"a run without a budget", write("zero.json", `{"scenario":"a","sink":"file","duration_s":60,"slice_s":10}`), "budget_per_s must be positive"},
		{"a scenario name that is a path", write("path.json",
			`{"scenario":"../../etc","sink":"file","budget_per_s":1,"duration_s":60,"slice_s":10,"tagstream":{"ran":true,"budget_use":[1]}}`),
			"plain names"},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is refused", func(t *testing.T) {
			_, err := replot(tt.path, dir)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestChartRunGathersTheResult(t *testing.T) {
	sc := scenario{Name: "zipf3", Latency: true, Active: zipfTags("zipf", 3, 8, 1.1), Inactive: 2, Tokens: 1, RequestsPerHour: 3600}
	o := &options{scenario: sc, duration: 3 * time.Minute, sink: "jetstream", args: []string{"-scenario", "zipf3"}}
	res := &result{o: o, started: t0, restarted: at(100), budget: 1, lstar: LStar(sc.Rates(), 1), commit: "c0ffee", chartStep: 10 * time.Second}
	res.ts = sideResult{ran: true, requests: 171, chartUse: []float64{1, math.NaN()}, steady: tagLatency{4, 2}, whole: tagLatency{9, 3},
		perTag: map[string]tagLatency{"zipf1": {3, 1}, "zipf3": {1, 5}}}
	cr := res.chartRun()
	if cr.TagsPolled != 5 || cr.SliceS != 10 || cr.RestartS != 100 || cr.Command != "go run ./bench/wholebinary -scenario zipf3" {
		t.Errorf("run: %+v", cr)
	}
	if _, err := json.Marshal(cr); err != nil {
		t.Errorf("the run does not save: %v", err)
	}
	if !cr.Tagstream.Ran || cr.Tagstream.BudgetUseWhole != 171.0/180 || cr.RoundRobin.Ran || !reflect.DeepEqual(cr.Tagstream.BudgetUse, []float64{1, 0}) {
		t.Errorf("sides: %+v / %+v", cr.Tagstream, cr.RoundRobin)
	}
	var got []string
	for _, tg := range cr.Tags {
		got = append(got, tg.Tag)
	}
	if want := []string{"zipf1", "zipf2", "zipf3"}; !reflect.DeepEqual(got, want) {
		t.Errorf("tags %v, want %v (by falling rate, the idle ones left out)", got, want)
	}
	if cr.Tags[2].Tagstream != (tagLatency{1, 5}) || cr.Tags[1].Tagstream != (tagLatency{}) {
		t.Errorf("per-tag means: %+v", cr.Tags)
	}
}

func TestChartSliceStepFollowsTheSamples(t *testing.T) {
	every := func(step float64) []counterSample {
		var s []counterSample
		for x := 0.0; x <= 120; x += step {
			s = append(s, counterSample{At: at(x)})
		}
		return s
	}
	if got := chartSliceStep(every(1), at(0), at(120)); got != 10*time.Second {
		t.Errorf("samples every second: slice %s, want 10s", got)
	}
	if got := chartSliceStep(every(5), at(0), at(120)); got != seriesStep {
		t.Errorf("samples every 5 s: slice %s, want %s", got, seriesStep)
	}
}

func TestLogTicksLabelOneTwoAndFive(t *testing.T) {
	var labelled []string
	n := 0
	for _, tk := range (logTicks{}).Ticks(math.Log10(0.15), math.Log10(30)) {
		n++
		if tk.Label != "" {
			labelled = append(labelled, tk.Label)
		}
	}
	if want := []string{"0.2", "0.5", "1", "2", "5", "10", "20"}; !reflect.DeepEqual(labelled, want) {
		t.Errorf("labels %v, want %v", labelled, want)
	}
	if n != 20 { // 0.2-0.9 (8), 1-9 (9), 10-30 (3), nothing outside [0.15, 30]
		t.Errorf("%d ticks", n)
	}
}

func TestStepTicksLabelTheMultiplesOfTheStep(t *testing.T) {
	tests := []struct {
		name   string
		step   float64
		lo, hi float64
		want   []string
	}{
		{"a minute over ten minutes", timeStep(600), 0, 600, []string{"0", "60", "120", "180", "240", "300", "360", "420", "480", "540", "600"}},
		{"ten seconds over two minutes", timeStep(120), 0, 120, []string{"0", "10", "20", "30", "40", "50", "60", "70", "80", "90", "100", "110", "120"}},
		{"fractions of the budget", 0.2, 0, 1.25, []string{"0.0", "0.2", "0.4", "0.6", "0.8", "1.0", "1.2"}},
		{"a quarter needs two decimals", 0.25, 0.5, 1, []string{"0.50", "0.75", "1.00"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, tk := range stepTicks(tt.step).Ticks(tt.lo, tt.hi) {
				if tk.Label != "" {
					got = append(got, tk.Label)
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("labels %v, want %v", got, tt.want)
			}
		})
	}
}

func decodePNG(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return img
}

func labels(f figure) []string {
	var out []string
	for _, s := range f.Series {
		out = append(out, s.Label)
	}
	return out
}

func closePoints(a, b []xy) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Abs(a[i].X-b[i].X) > 1e-9 || math.Abs(a[i].Y-b[i].Y) > 1e-9 {
			return false
		}
	}
	return true
}
