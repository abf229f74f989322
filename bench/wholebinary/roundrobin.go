package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tagstream/tagstream/schema"
)

// roundRobin is the baseline: it polls the tags in a fixed cycle, one request every 1/Budget seconds over its own
// tokens in turn, and records when it first saw each media. A poll that finds a full page of new media walks back
// through older pages (each page one more request of the same budget) before the cycle moves on. Like tagstream
// with --start now, a tag's first poll only sets its cursor.
type roundRobin struct {
	cfg roundRobinConfig
	rec *recorder

	mu        sync.Mutex
	firstPoll map[string]time.Time

	requests atomic.Int64
	failed   atomic.Int64 // transport errors and non-200 answers
	limited  atomic.Int64 // 429 and 503 answers
}

// roundRobinConfig configures the baseline.
type roundRobinConfig struct {
	// APIURL is the simulator's base URL, ending in /v1.
	APIURL string
	// Tokens are the baseline's own tokens, used in turn.
	Tokens []string
	// Tags are polled in this order, over and over.
	Tags []string
	// Budget is the total pace in requests per second.
	Budget float64
	// PageSize is the count asked per page; 0 means 33.
	PageSize int
	// Client makes the requests; nil means a client with a 10 s timeout.
	Client *http.Client
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// rrTag is the baseline's state of one tag.
type rrTag struct {
	name    string
	started bool   // the first poll happened
	cursor  string // min_tag_id of the next poll ("" = everything is new)
}

func newRoundRobin(cfg roundRobinConfig, rec *recorder) *roundRobin {
	if cfg.PageSize == 0 {
		cfg.PageSize = 33
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &roundRobin{cfg: cfg, rec: rec, firstPoll: map[string]time.Time{}}
}

// firstPolls returns when each tag's first poll ended.
func (rr *roundRobin) firstPolls() map[string]time.Time {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	out := make(map[string]time.Time, len(rr.firstPoll))
	for k, v := range rr.firstPoll {
		out[k] = v
	}
	return out
}

// pacer hands out request slots at a fixed rate. After a stall it lets at most burst slots through back to back,
// then goes on at the rate (the same shape as tagstream's token buckets).
type pacer struct {
	interval time.Duration
	next     time.Time
	burst    int
}

// reserve takes the next slot at now and returns how long to wait for it (zero or less: go at once).
func (p *pacer) reserve(now time.Time) time.Duration {
	if p.next.IsZero() {
		p.next = now
	}
	if floor := now.Add(-time.Duration(p.burst-1) * p.interval); p.next.Before(floor) {
		p.next = floor
	}
	d := p.next.Sub(now)
	p.next = p.next.Add(p.interval)
	return d
}

// wait takes the next slot and waits for it.
func (p *pacer) wait(ctx context.Context, now func() time.Time) error {
	d := p.reserve(now())
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// run polls until ctx ends.
func (rr *roundRobin) run(ctx context.Context) error {
	if len(rr.cfg.Tags) == 0 || len(rr.cfg.Tokens) == 0 || !(rr.cfg.Budget > 0) {
		return fmt.Errorf("round-robin: needs tags, tokens and a positive budget")
	}
	tags := make([]*rrTag, len(rr.cfg.Tags))
	for i, n := range rr.cfg.Tags {
		tags[i] = &rrTag{name: n}
	}
	p := &pacer{interval: time.Duration(float64(time.Second) / rr.cfg.Budget), burst: 3}
	tok := 0
	request := func(tag string, q url.Values) (*schema.Page, time.Time, error) {
		if err := p.wait(ctx, rr.cfg.Now); err != nil {
			return nil, time.Time{}, err
		}
		q.Set("access_token", rr.cfg.Tokens[tok%len(rr.cfg.Tokens)])
		tok++
		page, at, err := rr.fetch(ctx, tag, q)
		return page, at, err
	}
	for i := 0; ; i = (i + 1) % len(tags) {
		if err := rr.poll(ctx, tags[i], request); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// A failed request costs its slot; the tag is polled again next cycle from the same cursor.
			continue
		}
	}
}

// poll polls one tag: the newest page after its cursor and, while a page is full, the next older one.
func (rr *roundRobin) poll(ctx context.Context, t *rrTag, request func(string, url.Values) (*schema.Page, time.Time, error)) error {
	q := url.Values{"count": {strconv.Itoa(rr.cfg.PageSize)}}
	if t.cursor != "" {
		q.Set("min_tag_id", t.cursor)
	}
	page, at, err := request(t.name, q)
	if err != nil {
		return err
	}
	if !t.started {
		t.started = true
		if page.Pagination.MinTagID != "" {
			t.cursor = page.Pagination.MinTagID
		}
		rr.mu.Lock()
		rr.firstPoll[t.name] = at
		rr.mu.Unlock()
		return nil
	}
	newest := page.Pagination.MinTagID
	for {
		for i := range page.Media {
			rr.rec.add(t.name, page.Media[i].ID, at)
		}
		if len(page.Media) < rr.cfg.PageSize || page.Pagination.NextMaxTagID == "" {
			break
		}
		q := url.Values{"count": {strconv.Itoa(rr.cfg.PageSize)}, "max_tag_id": {page.Pagination.NextMaxTagID}}
		if t.cursor != "" {
			q.Set("min_tag_id", t.cursor)
		}
		if page, at, err = request(t.name, q); err != nil {
			return err // the cursor stays: the next poll starts over from it
		}
	}
	if newest != "" {
		t.cursor = newest
	}
	return nil
}

// fetch makes one request and decodes the page; at is when the answer was read.
func (rr *roundRobin) fetch(ctx context.Context, tag string, q url.Values) (*schema.Page, time.Time, error) {
	u := rr.cfg.APIURL + "/tags/" + url.PathEscape(tag) + "/media/recent?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("round-robin: request for %s", tag)
	}
	rr.requests.Add(1)
	resp, err := rr.cfg.Client.Do(req)
	if err != nil {
		rr.failed.Add(1)
		return nil, time.Time{}, fmt.Errorf("round-robin: %s: request failed", tag) // the error would hold the URL and its token
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	resp.Body.Close()
	at := rr.cfg.Now()
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		rr.limited.Add(1)
	}
	if err != nil || resp.StatusCode != http.StatusOK {
		rr.failed.Add(1)
		return nil, time.Time{}, fmt.Errorf("round-robin: %s: status %d", tag, resp.StatusCode)
	}
	page, err := schema.DecodePage(resp.StatusCode, resp.Header.Get("Content-Type"), body)
	if err != nil {
		rr.failed.Add(1)
		return nil, time.Time{}, fmt.Errorf("round-robin: %s: %w", tag, err)
	}
	return page, at, nil
}
