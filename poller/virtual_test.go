package poller

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tagstream/tagstream/poller/checkpoint"
	"github.com/tagstream/tagstream/schema"
)

// virtualAPI is an in-process upstream for tests that run the whole poller inside a testing/synctest bubble, so
// that minutes of polling take milliseconds and every figure is on the bubble's virtual clock: Poisson feeds
// (materialized lazily up to the time of each request, so the media of a feed become visible exactly at their
// arrival instants), exclusive numeric min_tag_id and max_tag_id cursors, and a sliding window per token with
// X-Ratelimit-Limit and X-Ratelimit-Remaining as the API sent them. It answers in the calling goroutine after
// latency (virtual), and is safe for concurrent use.
type virtualAPI struct {
	window  time.Duration
	limit   int
	latency time.Duration

	mu       sync.Mutex
	feeds    map[string]*vfeed
	tokens   map[string]*vtoken
	requests int
	limited  int
	seq      int64
}

type vfeed struct {
	name  string
	rate  float64
	next  time.Time
	rng   *rand.Rand
	items []vitem // oldest first
}

type vitem struct {
	id      string
	seq     int64
	created int64 // unix seconds (the API's created_time)
	visible time.Time
}

type vtoken struct {
	sent     []time.Time // requests counted in the window, oldest first
	requests int
}

// newVirtualAPI returns an upstream with a limit of limit requests per window per token.
func newVirtualAPI(limit int, window, latency time.Duration) *virtualAPI {
	return &virtualAPI{window: window, limit: limit, latency: latency, feeds: map[string]*vfeed{},
		tokens: map[string]*vtoken{}, seq: 1_000_000}
}

// addTag adds a feed posting at rate media per second from now on.
func (v *virtualAPI) addTag(name string, rate float64, seed uint64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	f := &vfeed{name: name, rate: rate, rng: rand.New(rand.NewPCG(seed, uint64(len(v.feeds))+1))}
	f.next = time.Now().Add(f.gap())
	v.feeds[name] = f
}

// post adds n media to a feed at once, now (a burst).
func (v *virtualAPI) post(name string, n int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	f := v.feeds[name]
	v.advance(f, time.Now())
	for range n {
		v.appendItem(f, time.Now())
	}
}

func (f *vfeed) gap() time.Duration {
	if f.rate <= 0 {
		return 1000 * time.Hour
	}
	return time.Duration(f.rng.ExpFloat64() / f.rate * 1e9)
}

func (v *virtualAPI) appendItem(f *vfeed, at time.Time) {
	v.seq += 1 + int64(f.rng.IntN(50))
	f.items = append(f.items, vitem{id: fmt.Sprintf("%d_%s", v.seq, f.name), seq: v.seq, created: at.Unix(), visible: at})
}

// advance materializes the arrivals of f up to now. Caller holds v.mu.
func (v *virtualAPI) advance(f *vfeed, now time.Time) {
	for !f.next.After(now) {
		v.appendItem(f, f.next)
		f.next = f.next.Add(f.gap())
	}
}

// truth returns every media posted up to now, by id.
func (v *virtualAPI) truth() map[string]vitem {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := map[string]vitem{}
	now := time.Now()
	for _, f := range v.feeds {
		v.advance(f, now)
		for _, it := range f.items {
			out[it.id] = it
		}
	}
	return out
}

// tagOf returns the tag a media id of this upstream belongs to.
func tagOf(id string) string {
	_, tag, _ := strings.Cut(id, "_")
	return tag
}

// stats returns the requests answered (rate-limited ones included) and the rate-limited ones.
func (v *virtualAPI) stats() (requests, limited int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.requests, v.limited
}

// sentBetween counts the requests of every token in [from, to) that are still in their window.
func (v *virtualAPI) sentBetween(from, to time.Time) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	n := 0
	for _, tok := range v.tokens {
		for _, at := range tok.sent {
			if !at.Before(from) && at.Before(to) {
				n++
			}
		}
	}
	return n
}

// RoundTrip answers GET {base}/tags/{tag}/media/recent.
func (v *virtualAPI) RoundTrip(req *http.Request) (*http.Response, error) {
	if v.latency > 0 {
		t := time.NewTimer(v.latency)
		select {
		case <-t.C:
		case <-req.Context().Done():
			t.Stop()
			return nil, req.Context().Err()
		}
	}
	parts := strings.Split(req.URL.Path, "/")
	if len(parts) < 4 || parts[len(parts)-1] != "recent" {
		return v.reply(req, 400, nil, `{"meta":{"code":400,"error_type":"APINotFoundError","error_message":"invalid path"}}`), nil
	}
	tag := parts[len(parts)-3]
	q := req.URL.Query()
	now := time.Now()
	v.mu.Lock()
	defer v.mu.Unlock()
	tok := v.tokens[q.Get("access_token")]
	if tok == nil {
		tok = &vtoken{}
		v.tokens[q.Get("access_token")] = tok
	}
	for len(tok.sent) > 0 && !tok.sent[0].After(now.Add(-v.window)) {
		tok.sent = tok.sent[1:]
	}
	v.requests++
	if len(tok.sent) >= v.limit {
		v.limited++
		h := http.Header{"X-Ratelimit-Limit": {strconv.Itoa(v.limit)}, "X-Ratelimit-Remaining": {"0"}}
		return v.reply(req, 429, h, `{"meta":{"code":429,"error_type":"OAuthRateLimitException","error_message":"The maximum number of requests per hour has been exceeded."}}`), nil
	}
	tok.sent = append(tok.sent, now)
	tok.requests++
	h := http.Header{"X-Ratelimit-Limit": {strconv.Itoa(v.limit)},
		"X-Ratelimit-Remaining": {strconv.Itoa(v.limit - len(tok.sent))}}
	count, _ := strconv.Atoi(q.Get("count"))
	if count <= 0 || count > 33 {
		count = 33
	}
	minSeq, maxSeq := int64(math.MinInt64), int64(math.MaxInt64)
	if s := q.Get("min_tag_id"); s != "" {
		minSeq, _ = strconv.ParseInt(s, 10, 64)
	}
	if s := q.Get("max_tag_id"); s != "" {
		maxSeq, _ = strconv.ParseInt(s, 10, 64)
	}
	var page []vitem
	more := false
	if f := v.feeds[tag]; f != nil {
		v.advance(f, now)
		for i := len(f.items) - 1; i >= 0; i-- {
			it := f.items[i]
			if it.seq >= maxSeq {
				continue
			}
			if it.seq <= minSeq {
				break
			}
			if len(page) == count {
				more = true
				break
			}
			page = append(page, it)
		}
	}
	var b bytes.Buffer
	b.WriteString(`{"pagination":{`)
	if len(page) > 0 {
		oldest, newest := page[len(page)-1].seq, page[0].seq
		if more {
			fmt.Fprintf(&b, `"next_max_tag_id":"%d","next_url":"https://api.invalid/v1/tags/%s/media/recent?max_tag_id=%d",`, oldest, tag, oldest)
		}
		fmt.Fprintf(&b, `"min_tag_id":"%d"`, newest)
	}
	b.WriteString(`},"meta":{"code":200},"data":[`)
	for i, it := range page {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":"%s","type":"image","created_time":"%d","tags":["%s"]}`, it.id, it.created, tag)
	}
	b.WriteString(`]}`)
	return v.reply(req, 200, h, b.String()), nil
}

func (v *virtualAPI) reply(req *http.Request, status int, h http.Header, body string) *http.Response {
	if h == nil {
		h = http.Header{}
	}
	h.Set("Content-Type", "application/json")
	return &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)), Request: req}
}

// ackPublisher records when each media was first acknowledged (on the bubble's clock) and how often.
type ackPublisher struct {
	mu    sync.Mutex
	first map[string]time.Time
	count map[string]int
	gaps  int
	delay time.Duration // virtual time one Publish takes
}

func newAckPublisher() *ackPublisher {
	return &ackPublisher{first: map[string]time.Time{}, count: map[string]int{}}
}

func (a *ackPublisher) Publish(ctx context.Context, events []*schema.Event) error {
	if a.delay > 0 {
		t := time.NewTimer(a.delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, e := range events {
		if e.Data == nil {
			a.gaps++
			continue
		}
		if _, ok := a.first[e.Data.MediaID]; !ok {
			a.first[e.Data.MediaID] = now
		}
		a.count[e.Data.MediaID]++
	}
	return nil
}

// virtualRun is one run of the whole poller against a virtualAPI inside a synctest bubble.
type virtualRun struct {
	api     *virtualAPI
	pub     *ackPublisher
	p       *Poller
	started time.Time
	rates   map[string]float64
	budget  float64 // requests per second the tokens allow
}

// zipfRates returns n tags named prefix0001... with rates top / i^exponent.
func zipfRates(prefix string, n int, top, exponent float64) map[string]float64 {
	out := map[string]float64{}
	width := len(strconv.Itoa(n))
	for i := range n {
		out[fmt.Sprintf("%s%0*d", prefix, width, i+1)] = top / math.Pow(float64(i+1), exponent)
	}
	return out
}

// lstar is the square-root optimum of the mean wait for Poisson rates and a budget of requests per second.
func lstar(rates map[string]float64, budget float64) float64 {
	var s, r float64
	for _, x := range rates {
		s += math.Sqrt(x)
		r += x
	}
	return s * s / (2 * budget * r)
}

// latencyStats summarizes the post-to-acknowledgement latencies of the media visible in [from, to).
type latencyStats struct {
	posted, arrived, dup int
	mean, p99, max       float64
	worstTag             string
	worstMean            float64
}

func (r *virtualRun) latency(from, to time.Time) latencyStats {
	truth := r.api.truth()
	r.pub.mu.Lock()
	defer r.pub.mu.Unlock()
	var st latencyStats
	var ls []float64
	perTag := map[string][2]float64{}
	for id, it := range truth {
		if it.visible.Before(from) || !it.visible.Before(to) {
			continue
		}
		st.posted++
		at, ok := r.pub.first[id]
		if !ok {
			continue
		}
		st.arrived++
		if r.pub.count[id] > 1 {
			st.dup++
		}
		l := at.Sub(it.visible).Seconds()
		ls = append(ls, l)
		st.mean += l
		pt := perTag[tagOf(id)]
		perTag[tagOf(id)] = [2]float64{pt[0] + l, pt[1] + 1}
	}
	if len(ls) == 0 {
		return st
	}
	st.mean /= float64(len(ls))
	sort.Float64s(ls)
	st.p99 = ls[min(len(ls)-1, int(math.Ceil(0.99*float64(len(ls))))-1)]
	st.max = ls[len(ls)-1]
	for tag, pt := range perTag {
		if m := pt[0] / pt[1]; m > st.worstMean {
			st.worstMean, st.worstTag = m, tag
		}
	}
	return st
}

func (s latencyStats) String() string {
	return fmt.Sprintf("posted %d arrived %d dup %d mean %.2fs p99 %.2fs max %.2fs worst %s %.2fs",
		s.posted, s.arrived, s.dup, s.mean, s.p99, s.max, s.worstTag, s.worstMean)
}

// virtualWorkload describes a run: tags and rates, tokens and their budget per window.
type virtualWorkload struct {
	rates   map[string]float64
	idle    int // further tags that never post
	tokens  int
	limit   int           // requests per window per token
	window  time.Duration // the rate-limit window (the poller is told it)
	latency time.Duration // per request
	seed    uint64
	mut     func(*Config)
}

// startVirtual builds the upstream and the poller and starts Run; it must be called inside a synctest bubble.
// The returned stop ends Run and waits for it.
func startVirtual(t *testing.T, w virtualWorkload, store checkpoint.Store) (*virtualRun, func()) {
	t.Helper()
	api := newVirtualAPI(w.limit, w.window, w.latency)
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range w.rates {
			if !yield(n) {
				return
			}
		}
	})
	for i, n := range names {
		api.addTag(n, w.rates[n], w.seed+uint64(i))
	}
	return restartVirtual(t, w, api, newAckPublisher(), store)
}

// restartVirtual starts a poller of workload w against an existing upstream, publisher and store (a restart).
func restartVirtual(t *testing.T, w virtualWorkload, api *virtualAPI, pub *ackPublisher, store checkpoint.Store) (*virtualRun, func()) {
	t.Helper()
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range w.rates {
			if !yield(n) {
				return
			}
		}
	})
	cfg := Config{
		BaseURL:         "https://api.instagram.invalid/v1",
		Transport:       api,
		RequestsPerHour: w.limit,
		RateWindow:      w.window,
		Tags:            names,
	}
	for i := range w.idle {
		cfg.Tags = append(cfg.Tags, fmt.Sprintf("idle%07d", i))
	}
	for i := range w.tokens {
		cfg.Tokens = append(cfg.Tokens, Token{Value: fmt.Sprintf("virtual-token-%04d", i)})
	}
	if w.mut != nil {
		w.mut(&cfg)
	}
	if store == nil {
		store = newValueStore()
	}
	p, err := New(cfg, pub, store, nil, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	r := &virtualRun{api: api, pub: pub, p: p, started: time.Now(), rates: w.rates,
		budget: float64(w.tokens*w.limit) / w.window.Seconds()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	return r, func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}

// valueStore is a checkpoint.Store that keeps each tag's State as a value, its slices copied in and out and its
// Updated without the monotonic reading (as every store keeps it). The virtual-time tests that start without a
// store of their own use it: they test the scheduler and the budget over thousands of polls, and checkpoint.Memory's
// JSON encoding of each state read and written was a third of their CPU under -race. The stores' encoding is
// tested by poller/checkpoint's conformance tests; the real-HTTP tests here and the virtual restarts use
// checkpoint.Memory.
type valueStore struct {
	mu     sync.Mutex
	states map[string]checkpoint.State
	closed bool
}

var _ checkpoint.Store = (*valueStore)(nil)

func newValueStore() *valueStore { return &valueStore{states: map[string]checkpoint.State{}} }

func cloneState(s checkpoint.State) checkpoint.State {
	s.Recent, s.Segments = slices.Clone(s.Recent), slices.Clone(s.Segments)
	s.Updated, s.Since = s.Updated.Round(0), s.Since.Round(0)
	return s
}

// lock locks v for one call: it fails with ctx's error, or with checkpoint.ErrClosed once v is closed.
func (v *valueStore) lock(ctx context.Context) (unlock func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		return nil, checkpoint.ErrClosed
	}
	return v.mu.Unlock, nil
}

func (v *valueStore) Get(ctx context.Context, tag string) (checkpoint.State, bool, error) {
	unlock, err := v.lock(ctx)
	if err != nil {
		return checkpoint.State{}, false, err
	}
	defer unlock()
	s, ok := v.states[tag]
	return cloneState(s), ok, nil
}

func (v *valueStore) Put(ctx context.Context, tag string, s checkpoint.State) error {
	unlock, err := v.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	v.states[tag] = cloneState(s)
	return nil
}

func (v *valueStore) Delete(ctx context.Context, tag string) error {
	unlock, err := v.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	delete(v.states, tag)
	return nil
}

func (v *valueStore) Tags(ctx context.Context) ([]string, error) {
	unlock, err := v.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	return slices.Sorted(maps.Keys(v.states)), nil
}

func (v *valueStore) Close() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.closed = true
	return nil
}
