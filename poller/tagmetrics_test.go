package poller

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tagstream/tagstream/internal/testkit"
	"github.com/tagstream/tagstream/poller/checkpoint"
)

// tagSeries returns the tags that have a series of the named family in reg, and the value of each.
func tagSeries(t *testing.T, reg *prometheus.Registry, family string) map[string]float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != family {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "tag" {
					out[l.GetValue()] = m.GetGauge().GetValue()
				}
			}
		}
	}
	return out
}

func TestPerTagSeriesAreCapped(t *testing.T) {
	tags := []string{"first", "second", "third"}
	srv := startSimWithTags(t, []string{"metrics-tok-1"}, append(slices.Clone(tags), "fourth"))
	cfg := testConfig(srv, []string{"metrics-tok-1"}, tags)
	cfg.TagMetrics = 2
	reg := prometheus.NewRegistry()
	store := checkpoint.NewMemory()
	started := time.Now()
	p, err := New(cfg, &memPublisher{}, store, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	keys := func(m map[string]float64) []string {
		var out []string
		for k := range m {
			out = append(out, k)
		}
		slices.Sort(out)
		return out
	}
	last := tagSeries(t, reg, "tagstream_tag_last_poll_timestamp_seconds")
	if got := keys(last); !slices.Equal(got, []string{"first", "second"}) {
		t.Fatalf("tags with series %v, want the first two configured", got)
	}
	for tag, v := range last {
		if v < float64(started.Unix()-1) || v > float64(time.Now().Unix()+1) {
			t.Errorf("last poll of %s before any poll = %v, want the poller's start", tag, v)
		}
	}
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	waitPolled(t, p)
	polled := time.Now()
	waitPolled(t, p)
	last = tagSeries(t, reg, "tagstream_tag_last_poll_timestamp_seconds")
	for tag, v := range last {
		if v < float64(polled.Unix()-1) {
			t.Errorf("last poll of %s = %v, want after %v", tag, v, polled.Unix())
		}
	}
	testkit.Eventually(t, 10*time.Second, "a planned interval for every tag with series", func() bool {
		iv := tagSeries(t, reg, "tagstream_tag_poll_interval_seconds")
		return len(iv) == 2 && iv["first"] >= cfg.MinInterval.Seconds() && iv["second"] >= cfg.MinInterval.Seconds()
	})
	p.RemoveTag("first")
	if err := p.AddTag("fourth"); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "the removed tag's series to go and the added one to take its place", func() bool {
		return slices.Equal(keys(tagSeries(t, reg, "tagstream_tag_last_poll_timestamp_seconds")), []string{"fourth", "second"}) &&
			slices.Equal(keys(tagSeries(t, reg, "tagstream_tag_poll_interval_seconds")), []string{"fourth", "second"})
	})
}

// TestPerTagSeriesGoWithATagRemovedInFlight removes a tag with series of its own while its poll is in flight:
// the series go at once, and a tag added right after takes its place (before, the slot stayed taken until the
// poll was done, and the added tag never got series: TestPerTagSeriesAreCapped failed now and then).
func TestPerTagSeriesGoWithATagRemovedInFlight(t *testing.T) {
	cfg := Config{BaseURL: "https://api.instagram.invalid/v1", Tags: []string{"first", "second"}, TagMetrics: 2,
		Tokens: []Token{{Value: "metrics-tok-2"}}}
	reg := prometheus.NewRegistry()
	p, err := New(cfg, &memPublisher{}, checkpoint.NewMemory(), nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	first, _ := p.sched.popDue(p.clk.mono() + time.Hour) // as the dispatcher does: the tag's poll is in flight
	p.mu.Unlock()
	p.RemoveTag(first.name)
	if err := p.AddTag("third"); err != nil {
		t.Fatal(err)
	}
	got := tagSeries(t, reg, "tagstream_tag_last_poll_timestamp_seconds")
	if _, ok := got["third"]; !ok || len(got) != 2 {
		t.Errorf("tags with series %v, want the one left and third", got)
	}
	p.mu.Lock()
	p.sched.done(first, observation{head: true, first: true}, p.clk.mono()+time.Hour) // the poll ends: dropped
	p.mu.Unlock()
	if got := tagSeries(t, reg, "tagstream_tag_last_poll_timestamp_seconds"); len(got) != 2 {
		t.Errorf("after the removed tag's poll: tags with series %v, want two", got)
	}
}
