package main

import (
	"math"
	"testing"
	"time"

	"github.com/tagstream/tagstream/schema"
	"github.com/tagstream/tagstream/testenv"
)

func TestLStar(t *testing.T) {
	for _, tc := range []struct {
		name   string
		rates  []float64
		budget float64
		want   float64
	}{
		{"one tag waits half the poll interval", []float64{2}, 1, 0.5},
		{"two equal tags share the budget", []float64{1, 1}, 1, 1},
		{"a skewed pair by the square-root rule", []float64{4, 1}, 1, 0.9},
		{"tags that never post are left out", []float64{4, 1, 0}, 1, 0.9},
		{"no budget gives NaN", []float64{1}, 0, math.NaN()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := LStar(tc.rates, tc.budget)
			if math.IsNaN(tc.want) != math.IsNaN(got) || (!math.IsNaN(got) && math.Abs(got-tc.want) > 1e-9) {
				t.Errorf("LStar(%v, %v) = %v, want %v", tc.rates, tc.budget, got, tc.want)
			}
		})
	}
}

func TestLatencyJoinsTheWindowsMedia(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC)
	truth := []testenv.Truth{
		{Tag: "a", MediaID: "1", VisibleAt: t0},
		{Tag: "a", MediaID: "2", VisibleAt: t0.Add(time.Second)},
		{Tag: "b", MediaID: "3", VisibleAt: t0.Add(2 * time.Second)},
		{Tag: "b", MediaID: "4", VisibleAt: t0.Add(3 * time.Second), DeletedAt: t0.Add(4 * time.Second)},
		{Tag: "b", MediaID: "5", VisibleAt: t0.Add(10 * time.Second)}, // after the window
	}
	stored := map[string]time.Time{
		schema.EventID("a", "1"): t0.Add(time.Second),
		schema.EventID("a", "2"): t0.Add(4 * time.Second),
	}
	got := latency(truth, stored, t0, t0.Add(10*time.Second))
	want := latencyResult{N: 2, Missing: 1, Mean: 2 * time.Second, P50: time.Second, P99: 3 * time.Second}
	if got != want {
		t.Errorf("latency = %+v, want %+v", got, want)
	}
}

func TestGapsOfOneTag(t *testing.T) {
	at := time.Date(2026, 12, 1, 6, 0, 10, 0, time.UTC)
	s := func(sec float64) time.Time { return at.Add(time.Duration(sec * float64(time.Second))) }
	recs := []poll{
		{Member: "m1", Tag: "x", Start: s(-6)},
		{Member: "m1", Tag: "x", Start: s(-2)},
		{Member: "m2", Tag: "y", Start: s(-1)},
		{Member: "m1", Tag: "x", Start: s(0.5)}, // the old owner finishing (SIGTERM): not the new owner's
		{Member: "m3", Tag: "x", Start: s(3)},
		{Member: "m3", Tag: "x", Start: s(4)},
	}
	t.Run("the gap across the event runs from the last poll before it to the new owner's first", func(t *testing.T) {
		g, ok := gapAcross(recs, "x", "m1", at)
		if !ok || g != 5*time.Second {
			t.Errorf("gapAcross = %v, %v, want 5s, true", g, ok)
		}
	})
	t.Run("the new owner's first poll is found after the event", func(t *testing.T) {
		p, ok := firstPollAfter(recs, "x", "m1", at)
		if !ok || p.Member != "m3" || !p.Start.Equal(s(3)) {
			t.Errorf("firstPollAfter = %+v, %v", p, ok)
		}
	})
	t.Run("the longest gap in a span counts consecutive polls only", func(t *testing.T) {
		if g := longestGapIn(recs, "x", s(-10), at); g != 4*time.Second {
			t.Errorf("longestGapIn = %v, want 4s", g)
		}
	})
	t.Run("a tag never polled before the event has no gap", func(t *testing.T) {
		if _, ok := gapAcross(recs, "z", "m1", at); ok {
			t.Errorf("gapAcross found a gap for a tag without polls")
		}
	})
}

func TestFeedTag(t *testing.T) {
	for _, tc := range []struct {
		path, tag string
		ok        bool
	}{
		{"/v1/tags/coffee/media/recent", "coffee", true},
		{"/v1/tags/%E6%9D%B1%E4%BA%AC/media/recent", "東京", true},
		{"/v1/tags/coffee/media/recent.json", "coffee", true},
		{"/v1/tags/coffee", "", false},
		{"/v1/media/123", "", false},
	} {
		tag, ok := feedTag(tc.path)
		if tag != tc.tag || ok != tc.ok {
			t.Errorf("feedTag(%q) = %q, %v, want %q, %v", tc.path, tag, ok, tc.tag, tc.ok)
		}
	}
}
