package poller

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tagstream/tagstream/internal/testkit"
	"github.com/tagstream/tagstream/poller/checkpoint"
	"github.com/tagstream/tagstream/testenv"
)

// TestWalkOddPagination walks crafted answers whose pagination the simulator never produces: the walk must neither
// stop early (which would move the cursor past media never fetched) nor follow next_url, nor leak the token.
func TestWalkOddPagination(t *testing.T) {
	type answer struct{ data, pagination string }
	cases := []struct {
		name     string
		pages    map[string]answer // by max_tag_id
		wantIDs  []string
		wantHead string
		wantMax  []string // max_tag_id of each request
		wantErr  bool
	}{
		{
			name: "a next_url without next_max_tag_id is followed by its cursor, on the configured host",
			pages: map[string]answer{
				"":   {`[{"id":"5_1"},{"id":"4_1"}]`, `"min_tag_id":"50","next_url":"https://evil.example/v1/x?access_token=TOKEN&max_tag_id=40"`},
				"40": {`[{"id":"3_1"}]`, `"min_tag_id":"30"`},
			},
			wantIDs: []string{"5_1", "4_1", "3_1"}, wantHead: "50", wantMax: []string{"", "40"},
		},
		{
			name: "an empty page that says more remains is walked past",
			pages: map[string]answer{
				"":   {`[{"id":"5_1"}]`, `"min_tag_id":"50","next_max_tag_id":"45","next_url":"https://h/x?max_tag_id=45"`},
				"45": {`[]`, `"next_max_tag_id":"35","next_url":"https://h/x?max_tag_id=35"`},
				"35": {`[{"id":"3_1"}]`, `"min_tag_id":"30"`},
			},
			wantIDs: []string{"5_1", "3_1"}, wantHead: "50", wantMax: []string{"", "45", "35"},
		},
		{
			name: "an empty first page that says more remains takes the head from the first non-empty one",
			pages: map[string]answer{
				"":   {`[]`, `"next_max_tag_id":"45","next_url":"https://h/x?max_tag_id=45"`},
				"45": {`[{"id":"4_1"}]`, `"min_tag_id":"40"`},
			},
			wantIDs: []string{"4_1"}, wantHead: "40", wantMax: []string{"", "45"},
		},
		{
			name: "media without an id are left out of the walk, so they never reach the recent set",
			pages: map[string]answer{
				"": {`[{"id":"5_1"},{"caption":null},{"id":""},{"id":"  "},{"id":"4_1"}]`, `"min_tag_id":"50"`},
			},
			wantIDs: []string{"5_1", "4_1"}, wantHead: "50", wantMax: []string{""},
		},
		{
			name: "a next_url that names no cursor fails the poll instead of skipping the rest",
			pages: map[string]answer{
				"": {`[{"id":"5_1"}]`, `"min_tag_id":"50","next_url":"https://h/x?access_token=TOKEN"`},
			},
			wantMax: []string{""}, wantErr: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var (
				mu   sync.Mutex
				maxs []string
			)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				m := r.URL.Query().Get("max_tag_id")
				mu.Lock()
				maxs = append(maxs, m)
				mu.Unlock()
				a, ok := tc.pages[m]
				if !ok {
					t.Errorf("unexpected request with max_tag_id %q", m)
					a = answer{`[]`, ``}
				}
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprintf(w, `{"meta":{"code":200},"data":%s,"pagination":{%s}}`, a.data,
					strings.ReplaceAll(a.pagination, "TOKEN", secretToken))
			}))
			t.Cleanup(srv.Close)
			p := newTestPoller(t, srv.URL+"/v1", nil)
			r := &pollRun{p: p, ctx: context.Background(), commitCtx: context.Background(), tag: "odd"}
			w, err := r.walk(walkSpec{min: "10", maxPages: 5, splitAt: 5, keep: true})
			mu.Lock()
			got := strings.Join(maxs, ",")
			mu.Unlock()
			if got != strings.Join(tc.wantMax, ",") {
				t.Errorf("requests with max_tag_id %q, want %q", got, strings.Join(tc.wantMax, ","))
			}
			if tc.wantErr {
				if err == nil {
					t.Fatalf("walk succeeded (complete %v), want an error", w.complete)
				}
				if strings.Contains(err.Error(), secretToken) {
					t.Errorf("error leaks the token: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, m := range w.items {
				ids = append(ids, m.ID)
			}
			if strings.Join(ids, ",") != strings.Join(tc.wantIDs, ",") || !w.complete || w.head != tc.wantHead {
				t.Errorf("walk = %v, complete %v, head %q; want %v, true, %q", ids, w.complete, w.head, tc.wantIDs,
					tc.wantHead)
			}
		})
	}
}

// TestGapAfterASingleMedia: a tag that has published a single media (so its checkpoint knows no media older than
// the cursor) still reports a retention cut with a gap marker, for both kinds of upstream.
func TestGapAfterASingleMedia(t *testing.T) {
	for _, inclusive := range []bool{false, true} {
		name := "an exclusive upstream that drops the media after the first one yields a gap marker"
		if inclusive {
			name = "an inclusive upstream that drops the media after the first one yields a gap marker"
		}
		t.Run(name, func(t *testing.T) {
			tags := []string{"lonely"}
			sim := testenv.Config{PlainHTTP: true, Tokens: []string{"lonely-tok"}, Retention: 40, InclusiveMin: inclusive,
				Tags: []testenv.TagConfig{{Name: "lonely"}}}
			srv := startSim(t, sim)
			cfg := testConfig(srv, sim.Tokens, tags)
			cfg.PageSize = 10
			store := checkpoint.NewMemory()
			first := startPoller(t, cfg, store)
			waitStarted(t, first, tags)
			srv.Post("lonely", 1)
			testkit.Eventually(t, 10*time.Second, "the first media", func() bool { return len(first.pub.mediaCount()) == 1 })
			if err := first.stop(); err != nil {
				t.Fatal(err)
			}
			srv.Post("lonely", 100) // 61 of them, and the first media, fall out of retention
			truth := srv.GroundTruth()
			servable := make(map[string]testenv.Truth)
			for _, tr := range truth[len(truth)-40:] {
				servable[tr.MediaID] = tr
			}
			r := startPoller(t, cfg, store)
			checkExactlyOnce(t, srv, r.pub, servable, nil, 20*time.Second)
			testkit.Eventually(t, 10*time.Second, "a gap marker", func() bool { return len(r.pub.gaps()) > 0 })
			// The counter moves once Publish returned, after the publisher saw the marker.
			testkit.Eventually(t, 10*time.Second, "gaps_total to count it", func() bool { return counterValue(t, r.p.m.gaps) > 0 })
			if n := counterValue(t, r.p.m.gaps); n != 1 {
				t.Errorf("gaps_total = %v, want 1", n)
			}
		})
	}
}

// TestDeepBackfill: a backfill of more pages than one poll publishes (BackfillPages > CatchUpPages) publishes
// exactly the newest BackfillPages pages, once and oldest first; a feed that turns out to be shorter is published
// whole and leaves a cursor behind.
func TestDeepBackfill(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		initial   int
		inclusive bool
		cursors   testenv.CursorStyle
		want      int
	}{
		{"an exclusive upstream gets exactly the backfill pages", 200, false, testenv.CursorNumeric, 50},
		{"an inclusive upstream gets exactly the backfill pages", 200, true, testenv.CursorNumeric, 50},
		{"opaque cursors get exactly the backfill pages", 200, false, testenv.CursorOpaque, 50},
		{"a feed of exactly the backfill is published whole", 50, false, testenv.CursorNumeric, 50},
		{"a feed shorter than one poll's worth is published whole", 15, true, testenv.CursorNumeric, 15},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tags := []string{"deep"}
			sim := testenv.Config{PlainHTTP: true, Tokens: []string{"deep-tok"}, InclusiveMin: tc.inclusive,
				Cursors: tc.cursors, Tags: []testenv.TagConfig{{Name: "deep", Initial: tc.initial}}}
			srv := startSim(t, sim)
			cfg := testConfig(srv, sim.Tokens, tags)
			cfg.PageSize = 10
			cfg.CatchUpPages = 2
			cfg.Start = StartBackfill
			cfg.BackfillPages = 5
			r := startPoller(t, cfg, nil)
			truth := srv.GroundTruth()
			want := make(map[string]testenv.Truth)
			for _, tr := range truth[len(truth)-tc.want:] {
				want[tr.MediaID] = tr
			}
			checkExactlyOnce(t, srv, r.pub, want, nil, 20*time.Second)
			// A few more polls publish nothing more, and the cursor ends at the head.
			polls := counterValue(t, r.p.m.polls)
			testkit.Eventually(t, 10*time.Second, "more polls", func() bool { return counterValue(t, r.p.m.polls) >= polls+3 })
			if n := len(r.pub.mediaCount()); n != tc.want {
				t.Errorf("%d media published, want %d", n, tc.want)
			}
			st, _, _ := r.store.Get(context.Background(), "deep")
			if st.Cursor != truth[len(truth)-1].Cursor || len(st.Segments) != 0 {
				t.Errorf("state = cursor %q, %d segments; want the head's cursor %q and none", st.Cursor,
					len(st.Segments), truth[len(truth)-1].Cursor)
			}
		})
	}
}
