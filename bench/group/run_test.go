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
