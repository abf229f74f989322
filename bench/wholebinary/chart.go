package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// The charts of a run (issue #14): post-to-event latency against each tag's posting rate, and budget use over
// time. They are drawn from a chartRun, which the harness saves as JSON next to the PNGs so that -replot can draw
// them again without re-running the workload. Drawing goes in two steps: a chartRun becomes a figure (plain data:
// the title, the axes and every series's points), and a figure becomes a PNG; the tests check the first step by
// hand and the second by decoding the image.

// chartRun is what the charts of one run are drawn from: the saved JSON.
type chartRun struct {
	// Scenario and Sink name the run (and the files).
	Scenario string `json:"scenario"`
	Sink     string `json:"sink"`
	// Command is the command line that made the run.
	Command string `json:"command"`
	// Commit is the checked-out commit of the run.
	Commit string `json:"commit"`
	// Started is when tagstream was started (second 0 of the budget chart).
	Started time.Time `json:"started"`
	// DurationS is the measured span in seconds.
	DurationS float64 `json:"duration_s"`
	// WarmupS is the span after a (re)start reported apart (no rate estimates yet), in seconds.
	WarmupS float64 `json:"warmup_s"`
	// RestartS is when tagstream was restarted, in seconds since the start; 0 without a restart.
	RestartS float64 `json:"restart_s,omitempty"`
	// Budget is B, the total budget in requests per second.
	Budget float64 `json:"budget_per_s"`
	// TagsPolled is N, the number of tags each side polls (those that never post included).
	TagsPolled int `json:"tags_polled"`
	// LStarS is the square-root optimum's mean wait L* in seconds.
	LStarS float64 `json:"lstar_s"`
	// Latency says whether the latency chart applies: on the scale workloads --min-interval, not the budget, bounds
	// the two active tags, and only the budget chart is drawn.
	Latency bool `json:"latency"`
	// LatencyWindow says which media the Steady figures and the per-tag means are over.
	LatencyWindow string `json:"latency_window"`
	// SliceS is the length of one slice of the budget-use series, in seconds.
	SliceS float64 `json:"slice_s"`
	// Tagstream and RoundRobin are the two sides.
	Tagstream  chartSide `json:"tagstream"`
	RoundRobin chartSide `json:"round_robin"`
	// Tags are the tags that post, by falling rate.
	Tags []chartTag `json:"tags"`
}

// chartSide is what one side did.
type chartSide struct {
	// Ran is false for a side that did not run (the baseline of the scale workloads).
	Ran bool `json:"ran"`
	// Steady is the mean latency over the media of LatencyWindow; Whole over every media posted in the run.
	Steady tagLatency `json:"steady"`
	Whole  tagLatency `json:"whole"`
	// BudgetUse is the fraction of B spent in each whole slice of SliceS from the start.
	BudgetUse []float64 `json:"budget_use"`
	// BudgetUseWhole is the fraction of B spent over the whole span.
	BudgetUseWhole float64 `json:"budget_use_whole"`
}

// chartTag is one tag that posts, with each side's mean latency over the media of LatencyWindow.
type chartTag struct {
	Tag        string     `json:"tag"`
	Rate       float64    `json:"rate_per_s"`
	Tagstream  tagLatency `json:"tagstream"`
	RoundRobin tagLatency `json:"round_robin"`
}

// chartSliceStep is the slice length of the budget chart: 10 s when the samples are at most 2 s apart on average
// over [from, to), else the report's 30 s.
func chartSliceStep(samples []counterSample, from, to time.Time) time.Duration {
	n := 0
	for _, s := range samples {
		if !s.At.Before(from) && !s.At.After(to) {
			n++
		}
	}
	if n < 2 || to.Sub(from)/time.Duration(n-1) > 2*time.Second {
		return seriesStep
	}
	return 10 * time.Second
}

// chartRun gathers the figures of an analysed run for its charts.
func (res *result) chartRun() chartRun {
	sc := res.o.scenario
	cr := chartRun{
		Scenario:      sc.Name,
		Sink:          res.o.sink,
		Command:       "go run ./bench/wholebinary " + shellJoin(res.o.args),
		Commit:        res.commit,
		Started:       res.started.UTC().Truncate(time.Millisecond),
		DurationS:     res.o.duration.Seconds(),
		WarmupS:       warmup.Seconds(),
		Budget:        res.budget,
		TagsPolled:    sc.TagCount(),
		LStarS:        finite(res.lstar),
		Latency:       sc.Latency,
		LatencyWindow: "posted after the first 90 s",
		SliceS:        res.chartStep.Seconds(),
	}
	if !res.restarted.IsZero() {
		cr.RestartS = res.restarted.Sub(res.started).Seconds()
		cr.LatencyWindow = "posted outside the first 90 s after each start"
	}
	secs := res.o.duration.Seconds()
	side := func(s *sideResult) chartSide {
		if !s.ran {
			return chartSide{}
		}
		use := make([]float64, len(s.chartUse))
		for i, u := range s.chartUse {
			use[i] = finite(u) // NaN without samples; JSON has no NaN
		}
		return chartSide{Ran: true, Steady: s.steady, Whole: s.whole, BudgetUse: use,
			BudgetUseWhole: finite(s.requests / (res.budget * secs))}
	}
	cr.Tagstream, cr.RoundRobin = side(&res.ts), side(&res.rr)
	for _, t := range sc.Active {
		cr.Tags = append(cr.Tags, chartTag{Tag: t.Name, Rate: t.Rate,
			Tagstream: res.ts.perTag[t.Name], RoundRobin: res.rr.perTag[t.Name]})
	}
	sort.SliceStable(cr.Tags, func(i, j int) bool { return cr.Tags[i].Rate > cr.Tags[j].Rate })
	return cr
}

// finite returns f, or 0 for NaN and infinities (JSON has no such numbers).
func finite(f float64) float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return f
}

// sqrtRuleWaits returns each tag's expected mean wait under the square-root rule: with the budget split as
// f_i = B·√r_i / Σ√r_j polls per second, a media of tag i waits 1/(2 f_i) = Σ√r_j / (2·B·√r_i) on average. A
// tag that never posts gets no polls and NaN.
func sqrtRuleWaits(rates []float64, budget float64) []float64 {
	var sqrtSum float64
	for _, r := range rates {
		if r > 0 {
			sqrtSum += math.Sqrt(r)
		}
	}
	out := make([]float64, len(rates))
	for i, r := range rates {
		if r <= 0 || !(budget > 0) {
			out[i] = math.NaN()
			continue
		}
		out[i] = sqrtSum / (2 * budget * math.Sqrt(r))
	}
	return out
}

// roundRobinWait is the mean wait of a round-robin poller that polls each of n tags once per cycle of n/B seconds
// (one page per poll): n/(2B).
func roundRobinWait(n int, budget float64) float64 { return float64(n) / (2 * budget) }

// seriesKind is how a series is drawn.
type seriesKind int

const (
	seriesPoints seriesKind = iota // markers, no line
	seriesLine                     // a polyline through the points
	seriesSteps                    // each point's value held until the next point's x
)

// series is one thing drawn on a figure, with its legend text.
type series struct {
	Label  string
	Kind   seriesKind
	Points []xy
	Color  color.RGBA
	Dashed bool
	Glyph  int // seriesPoints: 0 circle, 1 triangle
}

// xy is one point of a series.
type xy struct{ X, Y float64 }

// figure is one chart as data, before any drawing.
type figure struct {
	Title                  string
	XLabel, YLabel         string
	LogX, LogY             bool
	XMin, XMax, YMin, YMax float64
	Series                 []series
	// LegendTop places the legend at the top right of the data area, else at the bottom right.
	LegendTop bool
	// XStep and YStep, when positive, label a linear axis at their multiples (else gonum's default ticks).
	XStep, YStep float64
}

// Colours of the Okabe-Ito palette, which reads in colour-blind vision too.
var (
	colTagstream  = color.RGBA{0, 114, 178, 255} // blue
	colRoundRobin = color.RGBA{213, 94, 0, 255}  // vermillion
	colOptimum    = color.RGBA{0, 0, 0, 255}
	colTarget     = color.RGBA{0, 158, 115, 255} // bluish green
	colReference  = color.RGBA{128, 128, 128, 255}
)

// errNothingToDraw: a chart would have no data.
var errNothingToDraw = errors.New("nothing to draw")

// runTitle is the first line of both titles.
func (cr chartRun) runTitle() string {
	return fmt.Sprintf("%s on %s, %s: B = %s requests/s, N = %s tags", cr.Scenario, cr.Sink,
		time.Duration(cr.DurationS*float64(time.Second)).Round(time.Second), num(cr.Budget), num(float64(cr.TagsPolled)))
}

// latencyFigure is the chart of each tag's mean post-to-event latency against its posting rate, with the
// square-root optimum's expected wait per tag and round-robin's in theory.
func latencyFigure(cr chartRun) (figure, error) {
	f := figure{
		Title:  cr.runTitle() + fmt.Sprintf(", L* = %.2f s", cr.LStarS),
		XLabel: "posting rate of the tag, r_i (media/s, log scale)",
		YLabel: "mean latency of the tag's media (s, log scale)",
		LogX:   true, LogY: true, LegendTop: true,
	}
	ratio := func(s chartSide, t tagLatency) string {
		if !s.Ran || t.Media == 0 || !(cr.LStarS > 0) {
			return "-"
		}
		return fmt.Sprintf("%.2fx", t.MeanS/cr.LStarS)
	}
	f.Title += fmt.Sprintf("\nmean / L*, media %s: tagstream %s, round-robin %s (whole run: %s, %s)", cr.LatencyWindow,
		ratio(cr.Tagstream, cr.Tagstream.Steady), ratio(cr.RoundRobin, cr.RoundRobin.Steady),
		ratio(cr.Tagstream, cr.Tagstream.Whole), ratio(cr.RoundRobin, cr.RoundRobin.Whole))
	tags := make([]chartTag, 0, len(cr.Tags))
	for _, t := range cr.Tags {
		if t.Rate > 0 && !math.IsInf(t.Rate, 0) {
			tags = append(tags, t)
		}
	}
	sort.SliceStable(tags, func(i, j int) bool { return tags[i].Rate < tags[j].Rate })
	rates := make([]float64, len(tags))
	for i, t := range tags {
		rates[i] = t.Rate
	}
	points := func(label string, side chartSide, get func(chartTag) tagLatency, c color.RGBA, glyph int) {
		if !side.Ran {
			return
		}
		s := series{Label: label, Kind: seriesPoints, Color: c, Glyph: glyph}
		for _, t := range tags {
			if l := get(t); l.Media > 0 && l.MeanS > 0 && !math.IsInf(l.MeanS, 0) {
				s.Points = append(s.Points, xy{t.Rate, l.MeanS})
			}
		}
		if len(s.Points) > 0 {
			f.Series = append(f.Series, s)
		}
	}
	points("tagstream (event read from the broker)", cr.Tagstream, func(t chartTag) tagLatency { return t.Tagstream }, colTagstream, 0)
	points("round-robin (page received)", cr.RoundRobin, func(t chartTag) tagLatency { return t.RoundRobin }, colRoundRobin, 1)
	if len(f.Series) == 0 {
		return figure{}, fmt.Errorf("latency chart: %w: no tag with a delivered media", errNothingToDraw)
	}
	opt := series{Label: "square-root optimum: 1/(2 f_i), f_i = B·√r_i / Σ√r_j", Kind: seriesLine, Color: colOptimum}
	for i, w := range sqrtRuleWaits(rates, cr.Budget) {
		if w > 0 && !math.IsInf(w, 0) {
			opt.Points = append(opt.Points, xy{rates[i], w})
		}
	}
	f.XMin, f.XMax, f.YMin, f.YMax = math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	grow := func(p xy) {
		f.XMin, f.XMax = min(f.XMin, p.X), max(f.XMax, p.X)
		f.YMin, f.YMax = min(f.YMin, p.Y), max(f.YMax, p.Y)
	}
	if len(opt.Points) > 0 {
		f.Series = append(f.Series, opt)
	}
	if rr := roundRobinWait(cr.TagsPolled, cr.Budget); cr.RoundRobin.Ran && rr > 0 && !math.IsInf(rr, 0) {
		// Its ends are set below, once the x range is known.
		f.Series = append(f.Series, series{Label: fmt.Sprintf("round-robin in theory, N/(2B) = %.2f s (one page per poll)", rr),
			Kind: seriesLine, Color: colRoundRobin, Dashed: true, Points: []xy{{0, rr}, {0, rr}}})
	}
	for _, s := range f.Series {
		for _, p := range s.Points {
			if p.X > 0 {
				grow(p)
			}
		}
	}
	// A margin of a factor 1.5 on each side of a log axis, and room at the top for the legend: the top right
	// (hot tags that waited long) is where the square-root rule and round-robin leave the chart empty.
	f.XMin, f.XMax = f.XMin/1.5, f.XMax*1.5
	f.YMin, f.YMax = f.YMin/1.5, f.YMax*3
	for i := range f.Series {
		if f.Series[i].Dashed {
			f.Series[i].Points[0].X, f.Series[i].Points[1].X = f.XMin, f.XMax
		}
	}
	return f, nil
}

// budgetFigure is the chart of the budget each side spent per slice of the run.
func budgetFigure(cr chartRun) (figure, error) {
	f := figure{
		Title: cr.runTitle() + fmt.Sprintf("\nbudget use per %s slice; whole run: tagstream %s, round-robin %s",
			time.Duration(cr.SliceS*float64(time.Second)), sidePct(cr.Tagstream), sidePct(cr.RoundRobin)),
		XLabel: "time since tagstream's start (s)",
		YLabel: "fraction of the budget B spent in the slice",
		XMin:   0, XMax: cr.DurationS, YMin: 0, YMax: 1.25,
		XStep: timeStep(cr.DurationS), YStep: 0.2,
	}
	steps := func(label string, side chartSide, c color.RGBA) {
		if !side.Ran || len(side.BudgetUse) == 0 {
			return
		}
		s := series{Label: label, Kind: seriesSteps, Color: c}
		for i, u := range side.BudgetUse {
			s.Points = append(s.Points, xy{float64(i) * cr.SliceS, finite(u)})
			f.YMax = max(f.YMax, finite(u)*1.1)
		}
		last := s.Points[len(s.Points)-1]
		s.Points = append(s.Points, xy{float64(len(side.BudgetUse)) * cr.SliceS, last.Y})
		f.Series = append(f.Series, s)
	}
	steps("tagstream", cr.Tagstream, colTagstream)
	steps("round-robin", cr.RoundRobin, colRoundRobin)
	if len(f.Series) == 0 {
		return figure{}, fmt.Errorf("budget chart: %w: no budget-use slice", errNothingToDraw)
	}
	hline := func(label string, y float64, c color.RGBA, dashed bool) {
		f.Series = append(f.Series, series{Label: label, Kind: seriesLine, Color: c, Dashed: dashed,
			Points: []xy{{f.XMin, y}, {f.XMax, y}}})
	}
	hline("the whole budget B", 1, colOptimum, false)
	hline("target: 97 % of B", 0.97, colTarget, true)
	vline := func(label string, x float64) {
		if x > f.XMin && x < f.XMax {
			f.Series = append(f.Series, series{Label: label, Kind: seriesLine, Color: colReference, Dashed: true,
				Points: []xy{{x, f.YMin}, {x, f.YMax}}})
		}
	}
	vline(fmt.Sprintf("end of the first %.0f s", cr.WarmupS), cr.WarmupS)
	if cr.RestartS > 0 {
		vline("restart", cr.RestartS)
	}
	return f, nil
}

func sidePct(s chartSide) string {
	if !s.Ran {
		return "-"
	}
	return pct(s.BudgetUseWhole)
}

// chartWidth and chartHeight are the size of a PNG in pixels, at chartDPI.
const (
	chartWidth  = 1000
	chartHeight = 600
	chartDPI    = 100
)

// render draws a figure as a PNG of chartWidth × chartHeight pixels.
func render(f figure) ([]byte, error) {
	for _, v := range []float64{f.XMin, f.XMax, f.YMin, f.YMax} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("render %q: axis range [%v, %v] × [%v, %v] is not finite", f.Title, f.XMin, f.XMax, f.YMin, f.YMax)
		}
	}
	if !(f.XMin < f.XMax) || !(f.YMin < f.YMax) || (f.LogX && !(f.XMin > 0)) || (f.LogY && !(f.YMin > 0)) {
		return nil, fmt.Errorf("render %q: axis range [%v, %v] × [%v, %v] is empty or not positive on a log axis",
			f.Title, f.XMin, f.XMax, f.YMin, f.YMax)
	}
	p := plot.New()
	for _, sty := range []*text.Style{&p.Title.TextStyle, &p.X.Label.TextStyle, &p.Y.Label.TextStyle,
		&p.X.Tick.Label, &p.Y.Tick.Label, &p.Legend.TextStyle} {
		sty.Font.Variant = "Sans"
	}
	p.Title.Text = f.Title
	p.Title.Padding = vg.Points(8)
	p.X.Label.Text, p.Y.Label.Text = f.XLabel, f.YLabel
	// A log axis is drawn as a linear axis of log10 of the values with ticks labelled in the values: gonum's
	// LogScale places the glyph box of a centred axis label at the arithmetic middle of the range, which on a log
	// axis is near its top, and pads the data area by as much.
	tx, ty := func(v float64) float64 { return v }, func(v float64) float64 { return v }
	if f.LogX {
		tx, p.X.Tick.Marker = math.Log10, logTicks{}
	}
	if f.LogY {
		ty, p.Y.Tick.Marker = math.Log10, logTicks{}
	}
	if !f.LogX && f.XStep > 0 {
		p.X.Tick.Marker = stepTicks(f.XStep)
	}
	if !f.LogY && f.YStep > 0 {
		p.Y.Tick.Marker = stepTicks(f.YStep)
	}
	p.Add(plotter.NewGrid())
	p.Legend.Top = f.LegendTop
	p.Legend.XOffs, p.Legend.YOffs = -vg.Points(12), vg.Points(6)
	if f.LegendTop {
		p.Legend.YOffs = -vg.Points(6)
	}
	p.Legend.ThumbnailWidth = vg.Points(24)
	for _, s := range f.Series {
		if len(s.Points) == 0 {
			continue
		}
		xys := make(plotter.XYs, len(s.Points))
		for i, pt := range s.Points {
			xys[i] = plotter.XY{X: tx(pt.X), Y: ty(pt.Y)}
		}
		ls := draw.LineStyle{Color: s.Color, Width: vg.Points(1.5)}
		if s.Dashed {
			ls.Dashes = []vg.Length{vg.Points(6), vg.Points(4)}
		}
		switch s.Kind {
		case seriesPoints:
			sc, err := plotter.NewScatter(xys)
			if err != nil {
				return nil, fmt.Errorf("render %q: %s: %w", f.Title, s.Label, err)
			}
			sc.GlyphStyle = draw.GlyphStyle{Color: s.Color, Radius: vg.Points(3.5), Shape: draw.CircleGlyph{}}
			if s.Glyph == 1 {
				sc.GlyphStyle.Shape = draw.TriangleGlyph{}
			}
			p.Add(sc)
			p.Legend.Add(s.Label, sc)
		case seriesLine, seriesSteps:
			l, err := plotter.NewLine(xys)
			if err != nil {
				return nil, fmt.Errorf("render %q: %s: %w", f.Title, s.Label, err)
			}
			l.LineStyle = ls
			if s.Kind == seriesSteps {
				l.StepStyle = plotter.PostStep
			}
			p.Add(l)
			p.Legend.Add(s.Label, l)
		}
	}
	// After Add, which widens the axes to the data.
	p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = tx(f.XMin), tx(f.XMax), ty(f.YMin), ty(f.YMax)
	c := vgimg.NewWith(vgimg.UseWH(chartWidth*vg.Inch/chartDPI, chartHeight*vg.Inch/chartDPI), vgimg.UseDPI(chartDPI))
	p.Draw(draw.New(c))
	// BestSpeed: a chart of flat colours compresses well anyway, and the default level took most of a render's CPU.
	var b bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(&b, c.Image()); err != nil {
		return nil, fmt.Errorf("render %q: %w", f.Title, err)
	}
	return b.Bytes(), nil
}

// logTicks marks an axis of log10 values at 1, 2 and 5 times each power of ten (labelled with the value) and at
// the other digits (not labelled).
type logTicks struct{}

// Ticks returns the ticks between log10 values logLo and logHi.
func (logTicks) Ticks(logLo, logHi float64) []plot.Tick {
	if !(logLo < logHi) || math.IsInf(logLo, 0) || math.IsInf(logHi, 0) {
		return nil
	}
	const slack = 1e-9 // a bound that is a tick itself, e.g. log10(30), must not fall out by rounding
	var out []plot.Tick
	for e := int(math.Floor(logLo)); e <= int(math.Ceil(logHi)); e++ {
		for m := 1; m <= 9; m++ {
			v, _ := strconv.ParseFloat(fmt.Sprintf("%de%d", m, e), 64) // exact decimal, e.g. 0.2 and not 0.2000…1
			lv := math.Log10(v)
			if lv < logLo-slack || lv > logHi+slack {
				continue
			}
			t := plot.Tick{Value: lv}
			if m == 1 || m == 2 || m == 5 {
				t.Label = strconv.FormatFloat(v, 'f', -1, 64)
			}
			out = append(out, t)
		}
	}
	return out
}

// stepTicks labels a linear axis at the multiples of a step, with an unlabelled tick halfway between.
type stepTicks float64

// Ticks returns the ticks between lo and hi.
func (st stepTicks) Ticks(lo, hi float64) []plot.Tick {
	step := float64(st)
	if !(step > 0) || !(lo <= hi) || (hi-lo)/step > 1000 {
		return nil
	}
	var out []plot.Tick
	for i := math.Ceil(lo/step*2 - 1e-9); i/2*step <= hi+1e-9*step; i++ {
		v := i/2*step + 0 // + 0 turns the -0 of math.Ceil(-1e-9) into 0
		t := plot.Tick{Value: v}
		if math.Mod(i, 2) == 0 {
			t.Label = strconv.FormatFloat(v, 'f', decimals(step), 64)
		}
		out = append(out, t)
	}
	return out
}

// decimals is the number of decimals that show a multiple of step (0.2: 1, 0.25: 2).
func decimals(step float64) int {
	for d := 0; d < 6; d++ {
		if math.Abs(step*math.Pow10(d)-math.Round(step*math.Pow10(d))) < 1e-9 {
			return d
		}
	}
	return 6
}

// timeStep is a step in seconds that labels a span of seconds 5 to 12 times, at multiples of a minute from two
// minutes up.
func timeStep(span float64) float64 {
	for _, s := range []float64{5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200} {
		if span/s <= 12 {
			return s
		}
	}
	return 14400
}

// chartName checks that a scenario or sink name read from a saved run is fit for a file name.
var chartName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// chartFiles returns the paths of the JSON and the two PNGs of a run in dir.
func chartFiles(dir string, cr chartRun) (jsonPath, latencyPNG, budgetPNG string, err error) {
	for _, n := range []string{cr.Scenario, cr.Sink} {
		if !chartName.MatchString(n) {
			return "", "", "", fmt.Errorf("charts: scenario and sink must be plain names, got %q", n)
		}
	}
	base := filepath.Join(dir, cr.Scenario+"-"+cr.Sink)
	return base + ".json", base + "-latency.png", base + "-budget.png", nil
}

// drawCharts draws the PNGs of a run into dir and returns their paths: the budget chart always, the latency chart
// for the workloads where it applies.
func drawCharts(cr chartRun, dir string) ([]string, error) {
	_, latPath, budPath, err := chartFiles(dir, cr)
	if err != nil {
		return nil, err
	}
	var figs []figure
	var paths []string
	if cr.Latency {
		f, err := latencyFigure(cr)
		if err != nil {
			return nil, err
		}
		figs, paths = append(figs, f), append(paths, latPath)
	}
	f, err := budgetFigure(cr)
	if err != nil {
		return nil, err
	}
	figs, paths = append(figs, f), append(paths, budPath)
	for i, f := range figs {
		png, err := render(f)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(paths[i], png, 0o644); err != nil {
			return nil, fmt.Errorf("charts: %w", err)
		}
	}
	return paths, nil
}

// writeCharts saves the run as JSON in dir (created when missing) and draws its PNGs there. It returns the paths
// written, the JSON first.
func writeCharts(cr chartRun, dir string) ([]string, error) {
	jsonPath, _, _, err := chartFiles(dir, cr)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("charts: %w", err)
	}
	b, err := json.MarshalIndent(cr, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("charts: %w", err)
	}
	if err := os.WriteFile(jsonPath, append(b, '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("charts: %w", err)
	}
	pngs, err := drawCharts(cr, dir)
	return append([]string{jsonPath}, pngs...), err
}

// readChartRun reads and checks a run saved by writeCharts.
func readChartRun(path string) (chartRun, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return chartRun{}, fmt.Errorf("replot: %w", err)
	}
	var cr chartRun
	if err := json.Unmarshal(b, &cr); err != nil {
		return chartRun{}, fmt.Errorf("replot %s: not a saved run: %w", path, err)
	}
	var problems []string
	if !(cr.Budget > 0) {
		problems = append(problems, "budget_per_s must be positive")
	}
	if !(cr.DurationS > 0) {
		problems = append(problems, "duration_s must be positive")
	}
	if !(cr.SliceS > 0) {
		problems = append(problems, "slice_s must be positive")
	}
	if cr.TagsPolled < 0 {
		problems = append(problems, "tags_polled must not be negative")
	}
	if len(problems) > 0 {
		return chartRun{}, fmt.Errorf("replot %s: %s", path, strings.Join(problems, "; "))
	}
	return cr, nil
}

// replot draws the PNGs of a saved run into dir ("" = next to the JSON) and returns their paths.
func replot(path, dir string) ([]string, error) {
	cr, err := readChartRun(path)
	if err != nil {
		return nil, err
	}
	if dir == "" {
		dir = filepath.Dir(path)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("replot: %w", err)
	}
	return drawCharts(cr, dir)
}
