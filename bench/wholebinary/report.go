package main

import (
	"fmt"
	"math"
	"runtime"
	"strings"
	"time"
)

// markdown renders the run as a section of bench/wholebinary.md.
func (res *result) markdown() string {
	o, sc := res.o, res.o.scenario
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("\n## %s, sink %s, %s: %s UTC\n\n", sc.Name, o.sink, o.duration, res.started.UTC().Format("2006-01-02 15:04"))
	if o.note != "" {
		p("%s\n\n", o.note)
	}
	p("```\ngo run ./bench/wholebinary %s\n```\n\n", shellJoin(o.args))
	if sc.Latency {
		p("- Workload: %s. B = %s requests/s, Σr = %.2f media/s, **L\\* = %.3f s**.\n", sc.What, num(res.budget), sc.TotalRate(), res.lstar)
	} else {
		p("- Workload: %s. B = %s requests/s, Σr = %.2f media/s (L\\* does not apply: --min-interval, not the budget, "+
			"bounds the active tags).\n", sc.What, num(res.budget), sc.TotalRate())
	}
	p("- tagstream commit %s, %s, %d CPUs; load average %s at the start, %s at the end.\n",
		res.commit, goVersion(), runtime.NumCPU(), res.loadStart, res.loadEnd)
	p("- `%s`\n", res.tsCommand)
	if w := o.rateWindow(); w > 0 {
		p("- **Compressed hour**: the simulator runs `-time-scale %d`, so its rate-limit window (one simulated hour) lasts %s; "+
			"each token may make %d requests in it (X-Ratelimit-Limit %d, Remaining counted the same way: per-hour units, as the "+
			"real API sent them), the same B as the uncompressed workload. tagstream gets `--requests-per-hour %d --rate-window %s`. "+
			"Any overspend within a window is refused with a rate-limit answer.\n",
			o.timeScale, w, sc.RequestsPerHour/o.timeScale, sc.RequestsPerHour/o.timeScale, sc.RequestsPerHour/o.timeScale, w)
	}
	if !res.restarted.IsZero() {
		p("- Restarted (SIGTERM, then started again on the same state directory) %s after the start.\n",
			res.restarted.Sub(res.started).Round(time.Second))
	}
	drain := fmt.Sprintf("every tag's newest media had arrived %s after the end", res.drainTook.Round(time.Second))
	if !res.drained {
		drain = fmt.Sprintf("**the grace of %s ran out**: what had not arrived by then is MISSING", o.grace)
	}
	p("- After the %s the posts stopped; %s.\n", o.duration, drain)
	if sc.WatchFirstPolls {
		p("- tagstream's `/status` showed the first poll of %d of the %d tags (the split of the missing media is exact for those).\n",
			res.watchedFP, sc.TagCount())
	} else {
		p("- A tag's first poll is taken to be its first delivered media (`/status` is not sampled for %s tags).\n", num(float64(sc.TagCount())))
	}
	if res.samplerErr != "" {
		p("- Sampler: %s.\n", res.samplerErr)
	}
	switch {
	case res.chartErr != "":
		p("- **Charts not drawn**: %s.\n", res.chartErr)
	case len(res.charts) > 0:
		files := make([]string, len(res.charts))
		for i, f := range res.charts {
			files[i] = "`" + f + "`"
		}
		p("- Charts (`go run ./bench/wholebinary -replot %s` draws them again): %s.\n", res.charts[0], strings.Join(files[1:], ", "))
	}
	p("\nPost-to-event latency (tagstream: event read from the broker; round-robin: page received), by when the media was posted:\n\n")
	p("| window | side | posted | arrived | missing: before the tag's first poll / after it / tag never polled | mean | mean / L\\* | p50 | p99 | max | worst tag's mean (media) |\n")
	p("|---|---|---:|---:|---|---:|---:|---:|---:|---:|---|\n")
	sides := []*sideResult{&res.ts}
	if res.rr.ran {
		sides = append(sides, &res.rr)
	}
	for i, w := range res.windows {
		for _, s := range sides {
			st := s.stats[i]
			missing := fmt.Sprintf("%d / %d / %d", st.MissingBeforeFirstPoll, st.MissingAfterFirstPoll, st.MissingTagNeverPolled)
			if st.MissingAfterFirstPoll > 0 || st.MissingTagNeverPolled > 0 {
				missing = "**MISSING** " + missing
			}
			worst := "-"
			if st.WorstTag != "" {
				worst = fmt.Sprintf("%s %s (%d)", st.WorstTag, dur(st.WorstTagMean), st.WorstTagN)
			}
			p("| %s | %s | %d | %d | %s | %s | %s | %s | %s | %s | %s |\n", w.Name, s.name, st.Posted, st.Delivered,
				missing, dur(st.Mean), res.lratio(st.Mean), dur(st.P50), dur(st.P99), dur(st.Max), worst)
		}
	}
	secs := o.duration.Seconds()
	warmSecs := (o.duration - warmup).Seconds()
	budgetReq := res.budget * secs
	p("\nBudget and cost over the %s (B × duration = %s requests):\n\n", o.duration, num(budgetReq))
	p("| figure | tagstream |")
	if res.rr.ran {
		p(" round-robin |")
	}
	p("\n|---|---:|")
	if res.rr.ran {
		p("---:|")
	}
	p("\n")
	row := func(name, ts, rr string) {
		p("| %s | %s |", name, ts)
		if res.rr.ran {
			p(" %s |", rr)
		}
		p("\n")
	}
	all := len(res.windows) - 1
	perMedia := func(s *sideResult) string {
		if !s.ran || s.stats[all].Delivered == 0 {
			return "-"
		}
		return fmt.Sprintf("%.3f", s.requests/float64(s.stats[all].Delivered))
	}
	copies := func(s *sideResult) string {
		if !s.ran {
			return "-"
		}
		return fmt.Sprint(s.stats[all].Duplicates)
	}
	overBound := func(s *sideResult) string {
		if !s.ran {
			return "-"
		}
		return fmt.Sprint(s.stats[all].OverBound)
	}
	row("requests (simulator's count)", num(res.ts.requests), num(res.rr.requests))
	row("budget use, whole run", pct(res.ts.requests/budgetReq), pct(res.rr.requests/budgetReq))
	row("budget use after the first 90 s", pct(res.ts.requestsWarm/(res.budget*warmSecs)), pct(res.rr.requestsWarm/(res.budget*warmSecs)))
	if w := o.rateWindow(); w > 0 && o.duration >= w {
		winReq := res.budget * w.Seconds()
		row(fmt.Sprintf("budget use over the last full window (%s)", w), pct(res.ts.lastWindow/winReq), pct(res.rr.lastWindow/winReq))
	}
	series := func(s *sideResult) string {
		if !s.ran {
			return "-"
		}
		parts := make([]string, len(s.useSeries))
		for i, u := range s.useSeries {
			parts[i] = fmt.Sprintf("%.0f", 100*u)
		}
		return strings.Join(parts, " ")
	}
	row(fmt.Sprintf("budget use (%%) per %s slice", seriesStep), series(&res.ts), series(&res.rr))
	row("budget use from tagstream's /metrics", pct(res.ts.metricsReqs/budgetReq), "-")
	row("peak use of one token over ~60 s", pct(res.ts.peakToken), "-")
	row("rate-limit answers (simulator / tagstream's /metrics)", fmt.Sprintf("%s / %s", num(res.ts.limited), num(res.ts.metricsLimit)), num(res.rr.limited))
	row("requests per media that arrived", perMedia(&res.ts), perMedia(&res.rr))
	row("media arrived more than once (extra copies)", copies(&res.ts), copies(&res.rr))
	row("gap markers / messages that are not events", fmt.Sprintf("%d / %d", res.ts.gaps, res.ts.bad), "-")
	row("media later than --max-interval + 10 s", overBound(&res.ts), overBound(&res.rr))
	if res.ts.lagP99 > 0 {
		row("broker to consumer, p99 (part of tagstream's latency)", dur(res.ts.lagP99), "-")
	}
	row("highest tagstream_schedule_overload", fmt.Sprintf("%.2f", res.overload), "-")
	cores := res.ts.cpu.CPU.Seconds() / secs
	row("CPU (tagstream processes)", fmt.Sprintf("%.1f s = %.3f of a core; %.3f s per 1,000 requests, %.3f s per 1,000 media",
		res.ts.cpu.CPU.Seconds(), cores, perThousand(res.ts.cpu.CPU.Seconds(), res.ts.requests),
		perThousand(res.ts.cpu.CPU.Seconds(), float64(res.ts.stats[all].Delivered))), "in the harness")
	row("peak resident memory (VmHWM)", mib(res.ts.cpu.MaxRSS), "-")
	p("\nThe simulator (cmd/igsim, its own process) served %s requests: %.1f CPU-s = %.3f of a core, %.3f CPU-s per 1,000 "+
		"requests, peak resident %s. The harness (", num(res.simServed), res.sim.CPU.Seconds(), res.sim.CPU.Seconds()/secs,
		perThousand(res.sim.CPU.Seconds(), res.simServed), mib(res.sim.MaxRSS))
	switch o.sink {
	case "jetstream":
		p("in-process nats-server, ")
	}
	if res.rr.ran {
		p("round-robin poller, ")
	}
	p("consumer, samplers) used %.1f CPU-s = %.3f of a core.\n", res.harnessCPU.Seconds(), res.harnessCPU.Seconds()/secs)
	if res.ts.bad > 0 {
		p("\n**%d messages on the sink were not events**; the first: %s\n", res.ts.bad, res.ts.badFirst)
	}
	p("\nTargets (issue #11):\n\n")
	for _, t := range res.targets() {
		p("- %s\n", t)
	}
	return b.String()
}

// lratio is a mean as a multiple of L*, for the latency workloads.
func (res *result) lratio(mean time.Duration) string {
	if !res.o.scenario.Latency {
		return "-"
	}
	return ratio(mean.Seconds() / res.lstar)
}

// targets checks the figures against issue #11's targets.
func (res *result) targets() []string {
	var out []string
	all := len(res.windows) - 1
	st := res.ts.stats
	check := func(ok bool, text string) {
		mark := "met"
		if !ok {
			mark = "**not met**"
		}
		out = append(out, fmt.Sprintf("%s: %s", text, mark))
	}
	zipf := res.o.scenario.Latency
	if zipf {
		first := st[0].Mean.Seconds() / res.lstar
		check(first <= 1.40, fmt.Sprintf("first 90 s mean at most 1.40 L* (%.2f)", first))
		for i := 1; i < all; i++ {
			if strings.HasPrefix(res.windows[i].Name, "first 90 s after") {
				r := st[i].Mean.Seconds() / res.lstar
				check(r <= 1.40, fmt.Sprintf("%s mean at most 1.40 L* (%.2f)", res.windows[i].Name, r))
				continue
			}
			r := st[i].Mean.Seconds() / res.lstar
			check(r <= 1.10, fmt.Sprintf("%s (steady) mean at most 1.10 L* (%.2f)", res.windows[i].Name, r))
		}
	}
	use := res.ts.requests / (res.budget * res.o.duration.Seconds())
	check(use >= 0.97, fmt.Sprintf("budget use at least 97 %% (%s)", pct(use)))
	if w := res.o.rateWindow(); w > 0 && res.o.duration >= w {
		lw := res.ts.lastWindow / (res.budget * w.Seconds())
		check(lw >= 0.97, fmt.Sprintf("budget use over the last full %s window at least 97 %% (%s)", w, pct(lw)))
	}
	check(res.ts.limited == 0, fmt.Sprintf("zero rate-limit answers (%s)", num(res.ts.limited)))
	check(st[all].MissingAfterFirstPoll == 0 && st[all].MissingTagNeverPolled == 0,
		fmt.Sprintf("nothing lost after a tag's first poll (%d)", st[all].MissingAfterFirstPoll+st[all].MissingTagNeverPolled))
	out = append(out, fmt.Sprintf("posted since the process start, missing: %d (%d of them before their tag's first poll: --start now)",
		st[all].Missing(), st[all].MissingBeforeFirstPoll))
	if !zipf {
		cores := res.ts.cpu.CPU.Seconds() / res.o.duration.Seconds()
		check(cores <= 0.2, fmt.Sprintf("at most 0.2 of a core (%.3f)", cores))
		limit := int64(256 << 20)
		if res.o.scenario.Inactive >= 1_000_000 {
			limit = 1 << 30
		}
		check(res.ts.cpu.MaxRSS <= limit, fmt.Sprintf("at most %s resident (%s)", mib(limit), mib(res.ts.cpu.MaxRSS)))
	}
	return out
}

// shellJoin quotes args for a POSIX shell where needed, so that the printed command can be pasted.
func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r))
		}) < 0 {
			out[i] = a
			continue
		}
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(out, " ")
}

func dur(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	default:
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
}

func ratio(r float64) string {
	if math.IsNaN(r) || math.IsInf(r, 0) || r == 0 {
		return "-"
	}
	return fmt.Sprintf("**%.2fx**", r)
}

func pct(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "-"
	}
	return fmt.Sprintf("%.1f %%", 100*f)
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

func perThousand(cpu, requests float64) float64 {
	if requests <= 0 {
		return math.NaN()
	}
	return cpu / requests * 1000
}

// num prints a count with thousands separators (and up to 4 significant digits for a fraction).
func num(f float64) string {
	if math.IsNaN(f) {
		return "-"
	}
	if f != math.Trunc(f) && math.Abs(f) < 1000 {
		return fmt.Sprintf("%.4g", f)
	}
	s := fmt.Sprintf("%.0f", f)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
