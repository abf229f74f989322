package poller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tagstream/tagstream/internal/testkit"
	"github.com/tagstream/tagstream/poller/checkpoint"
	"github.com/tagstream/tagstream/schema"
	"github.com/tagstream/tagstream/testenv"
)

// The tests of Assign, the gate, token shares and checkpoint conflicts: the primitives group mode drives. They
// run the poller against the simulator over loopback HTTP and observe it through hooks in the transport and the
// store, never through elapsed time.

const assignWait = 20 * time.Second

// assignTransport counts the requests per token and per tag, and can hold the requests of one tag until
// released.
type assignTransport struct {
	next http.RoundTripper

	mu       sync.Mutex
	byToken  map[string]int
	byTag    map[string]int
	holdTag  string
	started  chan string   // receives the held tag when one of its requests arrives
	released chan struct{} // closed to let held requests go on
}

func newAssignTransport() *assignTransport {
	return &assignTransport{next: http.DefaultTransport, byToken: map[string]int{}, byTag: map[string]int{}}
}

func (a *assignTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	tok := req.URL.Query().Get("access_token")
	parts := strings.Split(req.URL.Path, "/")
	tag := ""
	if len(parts) >= 3 {
		tag = parts[len(parts)-3] // .../tags/{tag}/media/recent
	}
	a.mu.Lock()
	a.byToken[tok]++
	a.byTag[tag]++
	var started chan string
	var released chan struct{}
	if tag == a.holdTag {
		started, released = a.started, a.released
	}
	a.mu.Unlock()
	if released != nil {
		select {
		case started <- tag:
		default:
		}
		select {
		case <-released:
		case <-req.Context().Done():
			return nil, req.Context().Err()
		}
	}
	return a.next.RoundTrip(req)
}

// hold makes the next requests of tag wait; it returns a channel that receives tag when one arrives, and the
// function that lets them go on.
func (a *assignTransport) hold(tag string) (<-chan string, func()) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.holdTag = tag
	a.started = make(chan string, 1)
	a.released = make(chan struct{})
	rel := a.released
	var once sync.Once
	return a.started, func() {
		once.Do(func() {
			a.mu.Lock()
			a.holdTag = ""
			a.mu.Unlock()
			close(rel)
		})
	}
}

func (a *assignTransport) tokenCount(tok string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.byToken[tok]
}

func (a *assignTransport) tagCount(tag string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.byTag[tag]
}

// hookStore wraps a Memory store: it records the Gets and Puts per tag, and can refuse the Puts of one tag with
// checkpoint.ErrConflict or run a hook after a Get.
type hookStore struct {
	checkpoint.Store

	mu       sync.Mutex
	gets     map[string]int
	puts     map[string]int
	conflict string                // Puts of this tag fail with ErrConflict
	afterGet func(tag string)      // called after every Get, when set
	log      []string              // "put <tag>" in order
	onPut    func(tag string) bool // when set and true, the Put is refused with ErrConflict
}

func newHookStore(t *testing.T) *hookStore {
	t.Helper()
	m := checkpoint.NewMemory()
	t.Cleanup(func() { _ = m.Close() })
	return &hookStore{Store: m, gets: map[string]int{}, puts: map[string]int{}}
}

func (h *hookStore) Get(ctx context.Context, tag string) (checkpoint.State, bool, error) {
	st, ok, err := h.Store.Get(ctx, tag)
	h.mu.Lock()
	h.gets[tag]++
	after := h.afterGet
	h.mu.Unlock()
	if after != nil {
		after(tag)
	}
	return st, ok, err
}

func (h *hookStore) Put(ctx context.Context, tag string, s checkpoint.State) error {
	h.mu.Lock()
	refuse := h.conflict == tag
	h.mu.Unlock()
	if refuse {
		return fmt.Errorf("%w: test: tag %q written by another instance", checkpoint.ErrConflict, tag)
	}
	if err := h.Store.Put(ctx, tag, s); err != nil {
		return err
	}
	h.mu.Lock()
	h.puts[tag]++
	h.log = append(h.log, "put "+tag)
	h.mu.Unlock()
	return nil
}

func (h *hookStore) counts(tag string) (gets, puts int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.gets[tag], h.puts[tag]
}

func (h *hookStore) set(f func(h *hookStore)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f(h)
}

// assignRig is a poller with its simulator, transport hook, hook store and publisher, not yet running.
type assignRig struct {
	srv    *testenv.Server
	tr     *assignTransport
	store  *hookStore
	pub    *memPublisher
	p      *Poller
	tokens []string
	logs   *testkit.SyncBuffer
	cancel context.CancelFunc
	done   chan error
}

// newAssignRig builds a poller over a simulator serving tags with the given tokens; adjust may change the config
// (tags, gate, conflict callback) before New.
func newAssignRig(t *testing.T, tokens, simTags []string, adjust func(*Config)) *assignRig {
	t.Helper()
	simCfg := testenv.Config{PlainHTTP: true, Tokens: tokens, TimeScale: 3600, Seed: 11}
	for _, tag := range simTags {
		simCfg.Tags = append(simCfg.Tags, testenv.TagConfig{Name: tag})
	}
	srv, err := testenv.New(simCfg)
	if err != nil {
		t.Fatalf("testenv.New: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("testenv.Start: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	r := &assignRig{srv: srv, tr: newAssignTransport(), store: newHookStore(t), pub: &memPublisher{}, tokens: tokens}
	cfg := Config{
		StartTime:      time.Now().Add(StartSkew + time.Second),
		BaseURL:        srv.URL(),
		RateWindow:     time.Second,
		MinInterval:    20 * time.Millisecond,
		MaxInterval:    200 * time.Millisecond,
		RequestTimeout: 5 * time.Second,
		BackoffInitial: 5 * time.Millisecond,
		BackoffMax:     100 * time.Millisecond,
		Transport:      r.tr,
	}
	for _, tok := range tokens {
		cfg.Tokens = append(cfg.Tokens, Token{Value: tok})
	}
	if adjust != nil {
		adjust(&cfg)
	}
	logs := &testkit.SyncBuffer{}
	r.logs = logs
	r.p, err = New(cfg, r.pub, r.store, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		r.stop(t)
		if t.Failed() {
			t.Logf("poller log (tail):\n%s", tail(logs.String(), 4000))
		}
	})
	return r
}

func (r *assignRig) run() {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan error, 1)
	go func() { r.done <- r.p.Run(ctx) }()
}

func (r *assignRig) stop(t *testing.T) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	if err := testkit.Receive(t, r.done, assignWait, "Run to return"); err != nil {
		t.Errorf("Run: %v", err)
	}
}

func (r *assignRig) assign(t *testing.T, a Assignment) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), assignWait)
	defer cancel()
	if err := r.p.Assign(ctx, a); err != nil {
		t.Fatalf("Assign: %v", err)
	}
}

// statusOf returns the status of tag and whether the poller polls it.
func statusOf(p *Poller, tag string) (TagStatus, bool) {
	for _, st := range p.Status() {
		if st.Tag == tag {
			return st, true
		}
	}
	return TagStatus{}, false
}

// pollsOf waits until tag finished n more polls than when it was called.
func pollsOf(t *testing.T, p *Poller, tag string, n int) {
	t.Helper()
	for range n {
		waitPolled(t, p, tag)
	}
}

func TestAssignRemovalWaitsForTheInFlightPoll(t *testing.T) {
	r := newAssignRig(t, []string{"tok-a"}, []string{"keep", "gone"}, func(c *Config) { c.Tags = []string{"keep", "gone"} })
	r.run()
	testkit.Eventually(t, assignWait, "the first poll of both tags", func() bool {
		_, p1 := r.store.counts("keep")
		_, p2 := r.store.counts("gone")
		return p1 > 0 && p2 > 0
	})

	started, release := r.tr.hold("gone")
	defer release()
	testkit.Receive(t, started, assignWait, "a request of the tag to remove")
	posted := r.srv.Post("gone", 3) // the held poll publishes these once it goes on
	_, putsBefore := r.store.counts("gone")

	done := make(chan error, 1)
	go func() { done <- r.p.Assign(context.Background(), Assignment{Tags: []string{"keep"}}) }()
	testkit.Eventually(t, assignWait, "the tag to leave the status", func() bool {
		_, ok := statusOf(r.p, "gone")
		return !ok
	})
	select {
	case err := <-done:
		t.Fatalf("Assign returned (%v) while a poll of the removed tag was in flight", err)
	default:
	}
	release()
	if err := testkit.Receive(t, done, assignWait, "Assign to return"); err != nil {
		t.Fatalf("Assign: %v", err)
	}

	_, putsAfter := r.store.counts("gone")
	if putsAfter != putsBefore+1 {
		t.Errorf("the in-flight poll wrote %d checkpoints before Assign returned, want 1", putsAfter-putsBefore)
	}
	got := r.pub.mediaCount()
	for _, tr := range posted {
		if got[tr.MediaID] != 1 {
			t.Errorf("media %s of the removed tag published %d times before Assign returned, want 1", tr.MediaID, got[tr.MediaID])
		}
	}
	requests := r.tr.tagCount("gone")
	r.srv.Post("gone", 2)
	pollsOf(t, r.p, "keep", 3)
	if n := r.tr.tagCount("gone"); n != requests {
		t.Errorf("%d requests of the removed tag after Assign returned, want none", n-requests)
	}
	if _, puts := r.store.counts("gone"); puts != putsAfter {
		t.Errorf("%d checkpoint writes of the removed tag after Assign returned, want none", puts-putsAfter)
	}
}

func TestAssignTokenShares(t *testing.T) {
	tokens := []string{"tok-one", "tok-two"}
	fp1, fp2 := Fingerprint(tokens[0]), Fingerprint(tokens[1])
	tags := []string{"a", "b", "c"}

	t.Run("a token with a zero share sends no request, and a share given later puts it to use", func(t *testing.T) {
		r := newAssignRig(t, tokens, tags, nil)
		r.assign(t, Assignment{Tags: tags, Shares: map[string]float64{fp1: 1}}) // tok-two missing: 0
		r.run()
		pollsOf(t, r.p, "a", 5)
		if n := r.tr.tokenCount(tokens[1]); n != 0 {
			t.Fatalf("%d requests with the token whose share is 0, want none", n)
		}
		if r.tr.tokenCount(tokens[0]) == 0 {
			t.Fatal("no request with the token that has a share")
		}
		for _, ts := range r.p.TokenStatus() {
			want := map[string]float64{fp1: 1, fp2: 0}[ts.Fingerprint]
			if ts.Share != want {
				t.Errorf("TokenStatus of %s: Share %v, want %v", ts.Fingerprint, ts.Share, want)
			}
		}

		r.assign(t, Assignment{Tags: tags, Shares: map[string]float64{fp1: 0, fp2: 1}})
		before := r.tr.tokenCount(tokens[0])
		testkit.Eventually(t, assignWait, "requests with the token given a share", func() bool {
			return r.tr.tokenCount(tokens[1]) > 0
		})
		pollsOf(t, r.p, "a", 5)
		// Requests that took the token before Assign returned may still reach the API: at most one per worker.
		if n := r.tr.tokenCount(tokens[0]) - before; n > r.p.cfg.Workers {
			t.Errorf("%d requests with the token after its share went to 0, want at most the %d in flight", n, r.p.cfg.Workers)
		}
	})

	t.Run("a token paced at a fraction sends that fraction of its pace", func(t *testing.T) {
		var now time.Duration
		clk := clock{wall: time.Now, elapsed: func() time.Duration { return now }}
		// 1,010 a second less the reserve (11) is a pace of 999 a second.
		cfg := Config{RateWindow: time.Second, Tokens: []Token{{Value: tokens[0], RequestsPerHour: 1010}}}
		m, err := newMetrics(nil)
		if err != nil {
			t.Fatal(err)
		}
		pool := newTokenPool(cfg, clk, slog.New(slog.DiscardHandler), m)
		for _, tc := range []struct {
			share float64
			want  int // requests over 10 virtual seconds, at 999 a second times the share
		}{{0.25, 2497}, {1, 9990}, {0, 0}} {
			pool.setShares(map[string]float64{fp1: tc.share})
			sent := 0
			end := now + 10*time.Second
			for ; now < end; now += time.Millisecond {
				for {
					tk, _ := pool.tryAcquire(clk.mono())
					if tk == nil {
						break
					}
					sent++
				}
			}
			if tc.want == 0 && sent != 0 || sent < tc.want-tokenBurst || sent > tc.want+tokenBurst {
				t.Errorf("share %v: %d requests in 10 s, want %d (± the burst of %d)", tc.share, sent, tc.want, tokenBurst)
			}
		}
	})
}

func TestAssignGate(t *testing.T) {
	var open atomic.Bool

	t.Run("a closed gate sends no request", func(t *testing.T) {
		open.Store(false)
		var looked atomic.Int64
		r := newAssignRig(t, []string{"tok-g"}, []string{"x", "y"}, func(c *Config) {
			c.Gate = func() bool { looked.Add(1); return open.Load() }
		})
		r.assign(t, Assignment{Tags: []string{"x", "y"}})
		r.run()
		testkit.Eventually(t, assignWait, "the dispatcher to look at the closed gate again and again", func() bool {
			return looked.Load() > 5
		})
		if n := r.tr.tokenCount("tok-g"); n != 0 {
			t.Fatalf("%d requests while the gate was closed, want none", n)
		}
		open.Store(true)
		pollsOf(t, r.p, "x", 2)
		for _, st := range r.p.Status() {
			if st.LastError != "" {
				t.Errorf("tag %s: LastError %q: a closed gate is not a failed poll", st.Tag, st.LastError)
			}
		}
	})

	t.Run("a gate that closes during a poll's own read ends it without a request", func(t *testing.T) {
		open.Store(true)
		var gateLooks atomic.Int64
		r := newAssignRig(t, []string{"tok-i"}, []string{"x"}, func(c *Config) {
			c.Gate = func() bool { gateLooks.Add(1); return open.Load() }
		})
		r.assign(t, Assignment{Tags: []string{"x"}})
		var arm atomic.Bool
		var requestsAtClose atomic.Int64
		closed := make(chan struct{})
		r.store.set(func(h *hookStore) {
			h.afterGet = func(tag string) {
				if tag == "x" && arm.CompareAndSwap(true, false) {
					open.Store(false)
					requestsAtClose.Store(int64(r.tr.tagCount("x")))
					close(closed)
				}
			}
		})
		arm.Store(true) // the first poll has no known state: it reads the checkpoint
		r.run()
		testkit.Receive(t, closed, assignWait, "the poll's read that closes the gate")
		testkit.Eventually(t, assignWait, "the poll to end", func() bool {
			st, _ := statusOf(r.p, "x")
			return !st.NextPoll.IsZero()
		})
		looked := gateLooks.Load()
		testkit.Eventually(t, assignWait, "the dispatcher to look at the closed gate again", func() bool {
			return gateLooks.Load() > looked+3
		})
		if n := r.tr.tagCount("x"); n != int(requestsAtClose.Load()) {
			t.Fatalf("%d requests after the gate closed during the poll's read, want none", n-int(requestsAtClose.Load()))
		}
		if st, _ := statusOf(r.p, "x"); st.LastError != "" {
			t.Errorf("LastError %q: a closed gate is not a failed poll", st.LastError)
		}
		open.Store(true)
		pollsOf(t, r.p, "x", 1)
	})
}

func TestAssignConflict(t *testing.T) {
	lost := make(chan string, 8)
	r := newAssignRig(t, []string{"tok-c"}, []string{"mine", "taken"}, func(c *Config) {
		c.OnConflict = func(tag string) { lost <- tag }
	})
	tags := []string{"mine", "taken"}
	r.assign(t, Assignment{Tags: tags, Claim: true})
	r.run()
	testkit.Eventually(t, assignWait, "the first poll of both tags", func() bool {
		_, p1 := r.store.counts("mine")
		_, p2 := r.store.counts("taken")
		return p1 > 0 && p2 > 0
	})

	r.store.set(func(h *hookStore) { h.conflict = "taken" })
	r.srv.Post("taken", 2) // something to commit
	if got := testkit.Receive(t, lost, assignWait, "OnConflict"); got != "taken" {
		t.Fatalf("OnConflict(%q), want taken", got)
	}
	if _, ok := statusOf(r.p, "taken"); ok {
		t.Error("the conflicting tag is still polled")
	}
	if _, ok := r.p.Rates()["taken"]; ok {
		t.Error("Rates still reports the conflicting tag")
	}
	if err := r.p.Ready(); errors.Is(err, ErrCheckpointWrites) {
		t.Errorf("Ready = %v: a conflict is another owner, not a failing store", err)
	}
	requests := r.tr.tagCount("taken")
	pollsOf(t, r.p, "mine", 3)
	if n := r.tr.tagCount("taken"); n != requests {
		t.Errorf("%d requests of the conflicting tag after it was dropped, want none (no retry)", n-requests)
	}

	// An assignment that still lists it (made before the coordinator heard of the conflict) does not bring it
	// back; one without it and then one with it again (the owner record says it is still ours) does.
	r.assign(t, Assignment{Tags: tags})
	if _, ok := statusOf(r.p, "taken"); ok {
		t.Fatal("Assign brought back a tag dropped on a conflict before an assignment without it")
	}
	r.store.set(func(h *hookStore) { h.conflict = "" })
	r.assign(t, Assignment{Tags: []string{"mine"}})
	gets, _ := r.store.counts("taken")
	r.assign(t, Assignment{Tags: tags, Claim: true})
	if g, _ := r.store.counts("taken"); g <= gets {
		t.Error("the tag taken again was not read afresh")
	}
	pollsOf(t, r.p, "taken", 1)
	select {
	case tag := <-lost:
		t.Errorf("OnConflict(%q) again", tag)
	default:
	}
}

func TestAssignAddsTags(t *testing.T) {
	r := newAssignRig(t, []string{"tok-d"}, []string{"old", "seeded", "fresh"}, nil)
	ctx := context.Background()
	if err := r.store.Store.Put(ctx, "old", checkpoint.State{Cursor: "c1", RateMedia: 30, RateSeconds: 60}); err != nil {
		t.Fatal(err)
	}
	if err := r.store.Store.Put(ctx, "seeded", checkpoint.State{Cursor: "c2"}); err != nil {
		t.Fatal(err)
	}

	t.Run("an invalid tag fails Assign before anything changes", func(t *testing.T) {
		err := r.p.Assign(ctx, Assignment{Tags: []string{"old", "not a tag"}})
		if !errors.Is(err, ErrInvalidTag) || !errors.Is(err, schema.ErrInvalidTag) {
			t.Fatalf("Assign: %v, want an error wrapping ErrInvalidTag", err)
		}
		if len(r.p.Status()) != 0 {
			t.Errorf("tags polled after a failed Assign: %v", r.p.Status())
		}
	})

	t.Run("added tags are read and claimed, and seeded where their checkpoint has no estimate", func(t *testing.T) {
		r.assign(t, Assignment{Tags: []string{"fresh", "old", "seeded"}, Claim: true,
			Rates: map[string]float64{"seeded": 2, "old": 100}})
		for tag, wantPuts := range map[string]int{"old": 1, "seeded": 1, "fresh": 0} {
			gets, puts := r.store.counts(tag)
			if gets != 1 || puts != wantPuts {
				t.Errorf("tag %s: %d reads and %d writes, want 1 and %d (the claim of a stored checkpoint)", tag, gets, puts, wantPuts)
			}
		}
		st, _ := statusOf(r.p, "old")
		if st.SavedCursor != "c1" {
			t.Errorf("old: SavedCursor %q, want c1 (read by Assign)", st.SavedCursor)
		}
		rates := r.p.Rates()
		for tag, want := range map[string]float64{"old": 0.5, "seeded": 2} {
			if got := rates[tag]; got < 0.95*want || got > 1.05*want {
				t.Errorf("Rates()[%s] = %v, want about %v", tag, got, want)
			}
		}
		if !slices.Equal(sortedKeys(rates), []string{"fresh", "old", "seeded"}) {
			t.Errorf("Rates() covers %v, want the three tags", sortedKeys(rates))
		}
	})

	t.Run("added tags are due within the time the budget takes to poll each once", func(t *testing.T) {
		budget := r.p.budgetLocked()
		limit := time.Now().Add(time.Duration(max(r.p.cfg.MinInterval.Seconds(), 3/budget)*1e9) + time.Second)
		for _, st := range r.p.Status() {
			if st.NextPoll.After(limit) {
				t.Errorf("tag %s due at %v, after %v", st.Tag, st.NextPoll, limit)
			}
		}
	})
}

func TestAssignBeforeRunKeepsTheAddedTagsDueSoon(t *testing.T) {
	// A budget of one request a second shared by a busy tag and a silent one: the silent tag's own interval is
	// about a quarter of an hour, but Assign makes it due within the seconds the budget takes to poll both once.
	r := newAssignRig(t, []string{"tok-e"}, []string{"busy", "quiet"}, func(c *Config) {
		c.MinInterval, c.MaxInterval, c.RateWindow, c.RequestsPerHour = time.Second, time.Hour, time.Hour, 3600
	})
	ctx := context.Background()
	for tag, st := range map[string]checkpoint.State{
		"busy":  {Cursor: "c1", RateMedia: 36000, RateSeconds: 3600},
		"quiet": {Cursor: "c2", RateSeconds: 36000},
	} {
		if err := r.store.Store.Put(ctx, tag, st); err != nil {
			t.Fatal(err)
		}
	}
	r.assign(t, Assignment{Tags: []string{"busy", "quiet"}, Claim: true})
	r.run()
	testkit.Eventually(t, assignWait, "the checkpoints read at Run's start", func() bool {
		return r.logs.Contains("checkpoints read")
	})
	st, _ := statusOf(r.p, "quiet")
	if limit := time.Now().Add(30 * time.Second); st.LastAttempt.IsZero() && st.NextPoll.After(limit) {
		t.Errorf("the tag Assign added is due at %v, after %v: Run's start put it back to its own interval", st.NextPoll, limit)
	}
}

func sortedKeys(m map[string]float64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
