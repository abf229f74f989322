package poller

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tagstream/tagstream/poller/checkpoint"
	"github.com/tagstream/tagstream/schema"
	"github.com/tagstream/tagstream/testenv"
)

// countingPublisher acknowledges everything and closes a channel when a tag reached a number of media.
type countingPublisher struct {
	mu     sync.Mutex
	counts map[string]int
	want   map[string]int
	done   map[string]chan struct{}
}

func (c *countingPublisher) Publish(_ context.Context, events []*schema.Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range events {
		if e.Data == nil {
			continue
		}
		c.counts[e.Subject]++
		if ch, ok := c.done[e.Subject]; ok && c.counts[e.Subject] == c.want[e.Subject] {
			close(ch)
		}
	}
	return nil
}

// expect returns a channel closed when tag has n more media published than now.
func (c *countingPublisher) expect(tag string, n int) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan struct{})
	c.want[tag] = c.counts[tag] + n
	c.done[tag] = ch
	return ch
}

// BenchmarkCatchUp posts a burst of Pages pages of media to one tag among Quiet quiet ones while the poller runs
// against the simulator over HTTP, and reports how long the burst took to be published (catchup-s) against the
// least the budget allows (min-s: the pages of the burst at the pool's request rate, each read once) and their
// ratio. The catch-up reads each page about twice (once to locate its segment, once to publish it) and shares
// the budget with the quiet tags, so a ratio near 2 is the design; well above 2 means the walk is starved.
//
//	go test -run '^$' -bench CatchUp -benchtime 3x ./poller
func BenchmarkCatchUp(b *testing.B) {
	for _, pages := range []int{40, 200} {
		b.Run(fmt.Sprintf("pages=%d", pages), func(b *testing.B) { benchCatchUp(b, pages, 20) })
	}
}

func benchCatchUp(b *testing.B, pages, quiet int) {
	tokens := []string{"catchup-bench-1", "catchup-bench-2"}
	tags := []string{"burst"}
	for i := range quiet {
		tags = append(tags, fmt.Sprintf("quiet%02d", i))
	}
	simCfg := testenv.Config{PlainHTTP: true, Tokens: tokens, TimeScale: 360, RequestsPerHour: 600, Seed: 3}
	for _, tag := range tags {
		simCfg.Tags = append(simCfg.Tags, testenv.TagConfig{Name: tag, Rate: 0.2})
	}
	srv, err := testenv.New(simCfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	cfg := Config{
		BaseURL:         srv.URL(),
		RateWindow:      srv.RateWindow(), // 10 s: 600 requests per token, 60 a second
		RequestsPerHour: srv.RequestsPerHour(),
		Tags:            tags,
		MinInterval:     100 * time.Millisecond,
		MaxInterval:     5 * time.Second,
	}
	for _, tok := range tokens {
		cfg.Tokens = append(cfg.Tokens, Token{Value: tok})
	}
	pub := &countingPublisher{counts: map[string]int{}, want: map[string]int{}, done: map[string]chan struct{}{}}
	p, err := New(cfg, pub, checkpoint.NewMemory(), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- p.Run(ctx) }()
	defer func() {
		cancel()
		<-runDone
	}()
	// Every tag had its first poll: the burst is then new media behind a cursor.
	for started := false; !started; {
		started = true
		for _, st := range p.Status() {
			if st.LastPoll.IsZero() {
				started = false
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	rate := p.pool.sustainableRate()
	n := pages * DefaultPageSize
	var total time.Duration
	b.ResetTimer()
	for range b.N {
		done := pub.expect("burst", n)
		start := time.Now()
		srv.Post("burst", n)
		select {
		case <-done:
		case <-time.After(5 * time.Minute):
			b.Fatalf("the burst of %d pages was not published within 5 minutes", pages)
		}
		total += time.Since(start)
	}
	b.StopTimer()
	minimum := float64(pages) / rate
	b.ReportMetric(total.Seconds()/float64(b.N), "catchup-s")
	b.ReportMetric(minimum, "min-s")
	b.ReportMetric(total.Seconds()/float64(b.N)/minimum, "ratio")
}
