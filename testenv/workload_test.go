package testenv

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tagstream/tagstream/internal/testkit"
)

func TestRetentionLeavesGapsForOldCursors(t *testing.T) {
	t.Parallel()
	cfg := plain(TagConfig{Name: "ret", Initial: 30})
	cfg.Retention = 10
	s := start(t, cfg)
	tr := truthOf(s, "ret")
	tests := []struct {
		name   string
		params url.Values
		want   int
		more   bool
	}{
		{"the head serves only the retained media", auth("count", "33"), 10, false},
		{"an old min_tag_id gives what is left", auth("count", "33", "min_tag_id", tr[3].Cursor), 10, false},
		{"a max_tag_id older than the retained media gives nothing", auth("max_tag_id", tr[15].Cursor), 0, false},
		{"a max_tag_id inside the retained media pages normally", auth("count", "4", "max_tag_id", tr[29].Cursor), 4, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := recent(t, s, "ret", tc.params)
			if len(p.items) != tc.want || (p.pag["next_url"] != "") != tc.more {
				t.Errorf("%d media, next_url %q; want %d, more=%v", len(p.items), p.pag["next_url"], tc.want, tc.more)
			}
		})
	}
	// Memory stays bounded while posting far beyond the retention; the ground truth keeps everything.
	s.Post("ret", 100)
	if p := recent(t, s, "ret", auth("count", "33")); len(p.items) != 10 {
		t.Errorf("%d media after a burst, want 10", len(p.items))
	}
	if n := len(truthOf(s, "ret")); n != 130 {
		t.Errorf("ground truth has %d media, want 130", n)
	}
}

func TestBurstIsFoundByWalkingBetweenCursors(t *testing.T) {
	t.Parallel()
	s := start(t, plain(TagConfig{Name: "burst", Initial: 5}))
	headCursor := recent(t, s, "burst", auth("count", "1")).pag["min_tag_id"]
	posted := s.Post("burst", 40)
	if len(posted) != 40 {
		t.Fatalf("Post returned %d truths", len(posted))
	}
	for i := 1; i < len(posted); i++ {
		if cmpDecimal(posted[i-1].Cursor, posted[i].Cursor) >= 0 {
			t.Fatalf("burst cursors not increasing at %d", i)
		}
	}
	// A poller asks for what is newer than its cursor, then walks back within the bound.
	var got []string
	params := auth("count", "33", "min_tag_id", headCursor)
	for {
		p := recent(t, s, "burst", params)
		got = append(got, p.ids()...)
		if p.pag["next_max_tag_id"] == "" {
			break
		}
		params = auth("count", "33", "min_tag_id", headCursor, "max_tag_id", p.pag["next_max_tag_id"])
	}
	want := make([]string, 0, 40)
	for i := len(posted) - 1; i >= 0; i-- {
		want = append(want, posted[i].MediaID)
	}
	if !equalStrings(got, want) {
		t.Errorf("walked %d media, want the 40 of the burst", len(got))
	}
}

func TestDeletionShiftsThePageAndIsRecorded(t *testing.T) {
	t.Parallel()
	var sink testkit.SyncBuffer
	cfg := plain(TagConfig{Name: "del", Initial: 10})
	cfg.GroundTruth = &sink
	s := start(t, cfg)
	before := recent(t, s, "del", auth("count", "5")).ids()
	victim := before[2]
	if !s.Delete("del", victim) {
		t.Fatal("Delete returned false")
	}
	if s.Delete("del", victim) {
		t.Error("deleting twice returned true")
	}
	if s.Delete("nosuchtag", victim) {
		t.Error("deleting from an unknown tag returned true")
	}
	after := recent(t, s, "del", auth("count", "5")).ids()
	if after[2] == victim || after[2] != before[3] || len(after) != 5 {
		t.Errorf("page after deletion %v (before %v)", after, before)
	}
	if e := decode(t, get(t, s, "/media/"+victim, auth())); e.Meta.ErrorType != errNotFound {
		t.Errorf("deleted media by id: %+v", e.Meta)
	}
	var deleted Truth
	for _, tr := range s.GroundTruth() {
		if tr.MediaID == victim {
			deleted = tr
		}
	}
	if deleted.DeletedAt.IsZero() {
		t.Error("ground truth has no DeletedAt")
	}
	lines := truthLines(t, &sink)
	if len(lines) != 11 || lines[10].MediaID != victim || lines[10].DeletedAt.IsZero() {
		t.Errorf("NDJSON has %d lines, last %+v", len(lines), lines[len(lines)-1])
	}
	var info struct {
		Data struct {
			MediaCount int `json:"media_count"`
		} `json:"data"`
	}
	mustUnmarshal(t, get(t, s, "/tags/del", auth()).body, &info)
	if info.Data.MediaCount != 9 {
		t.Errorf("media_count %d after a deletion, want 9", info.Data.MediaCount)
	}
}

func TestLateTaggingPutsAnOldMediaAtTheHead(t *testing.T) {
	t.Parallel()
	s := start(t, plain(TagConfig{Name: "late", Initial: 5}))
	tr := s.PostLate("late", 72*time.Hour)
	if !tr.Late || time.Since(tr.CreatedTime) < 71*time.Hour {
		t.Fatalf("truth %+v", tr)
	}
	p := recent(t, s, "late", auth("count", "2"))
	if p.items[0].ID != tr.MediaID || p.pag["min_tag_id"] != tr.Cursor {
		t.Fatalf("head %s cursor %s, want %s %s", p.items[0].ID, p.pag["min_tag_id"], tr.MediaID, tr.Cursor)
	}
	head, _ := strconv.ParseInt(p.items[0].CreatedTime, 10, 64)
	next, _ := strconv.ParseInt(p.items[1].CreatedTime, 10, 64)
	if head >= next {
		t.Errorf("the head's created_time %d is not older than the next item's %d", head, next)
	}
}

func TestSameSeedGivesTheSameMedia(t *testing.T) {
	t.Parallel()
	mk := func(seed int64, style CursorStyle) ([]string, []string) {
		cfg := plain(TagConfig{Name: "det", Initial: 20}, TagConfig{Name: "other", Initial: 3})
		cfg.Seed, cfg.Cursors = seed, style
		s := start(t, cfg)
		s.Post("det", 5)
		var ids, cursors []string
		for _, tr := range truthOf(s, "det") {
			ids = append(ids, tr.MediaID)
			cursors = append(cursors, tr.Cursor)
		}
		var captions []string
		for _, it := range recent(t, s, "det", auth("count", "33")).items {
			c := "<null>"
			if it.Caption != nil {
				c = it.Caption.Text
			}
			captions = append(captions, it.ID+" "+it.Type+" "+c)
		}
		return append(ids, cursors...), captions
	}
	for _, style := range []CursorStyle{CursorNumeric, CursorOpaque} {
		t.Run(style.String()+" cursors", func(t *testing.T) {
			a1, c1 := mk(11, style)
			a2, c2 := mk(11, style)
			b1, d1 := mk(12, style)
			if !equalStrings(a1, a2) || !equalStrings(c1, c2) {
				t.Error("the same seed gave different media, cursors or captions")
			}
			if equalStrings(a1, b1) || equalStrings(c1, d1) {
				t.Error("different seeds gave the same media")
			}
		})
	}
}

func TestPoissonArrivalsFollowTheRate(t *testing.T) {
	t.Parallel()
	s := start(t, plain(TagConfig{Name: "live", Rate: 200}, TagConfig{Name: "idle"}))
	testkit.Eventually(t, waitTimeout, "media arrive at rate 200/s", func() bool { return len(truthOf(s, "live")) >= 20 })
	s.SetRate("idle", 200)
	testkit.Eventually(t, waitTimeout, "SetRate starts an idle tag", func() bool { return len(truthOf(s, "idle")) >= 5 })
	s.AddTag(TagConfig{Name: "added", Rate: 200})
	testkit.Eventually(t, waitTimeout, "a tag added at run time gets media", func() bool { return len(truthOf(s, "added")) >= 5 })
	if len(truthOf(s, "nosuch")) != 0 {
		t.Error("an unknown tag has truth")
	}
	p := recent(t, s, "live", auth("count", "33"))
	if len(p.items) == 0 {
		t.Error("no media served for a live tag")
	}
}

func TestInitialMediaAreSpreadOverThePast(t *testing.T) {
	t.Parallel()
	s := start(t, plain(TagConfig{Name: "init", Initial: 50}))
	tr := truthOf(s, "init")
	if len(tr) != 50 {
		t.Fatalf("%d initial media", len(tr))
	}
	for i := 1; i < len(tr); i++ {
		if tr[i].CreatedTime.Before(tr[i-1].CreatedTime) {
			t.Errorf("initial media %d created before %d", i, i-1)
		}
	}
	if !tr[0].CreatedTime.Before(tr[49].CreatedTime) {
		t.Error("initial media all have the same created_time")
	}
}

func TestMediaVarietyCoversTypesAndNulls(t *testing.T) {
	t.Parallel()
	s := start(t, plain(TagConfig{Name: "variety", Initial: 300}))
	seen := map[string]bool{}
	var walk func(params url.Values)
	walk = func(params url.Values) {
		a := get(t, s, "/tags/variety/media/recent", params)
		var body struct {
			Data []map[string]any `json:"data"`
			Pag  struct {
				Next string `json:"next_max_tag_id"`
			} `json:"pagination"`
		}
		mustUnmarshal(t, a.body, &body)
		for _, m := range body.Data {
			seen["type:"+m["type"].(string)] = true
			if m["caption"] == nil {
				seen["caption:null"] = true
			} else {
				text := m["caption"].(map[string]any)["text"].(string)
				for _, probe := range []string{"\n", "\"", "<", "\\"} {
					if bytes.Contains([]byte(text), []byte(probe)) {
						seen["caption has "+probe] = true
					}
				}
			}
			if m["location"] == nil {
				seen["location:null"] = true
			} else if _, ok := m["location"].(map[string]any)["id"].(float64); ok {
				seen["location:numeric id"] = true
			}
			if uip, _ := m["users_in_photo"].([]any); len(uip) > 0 {
				seen["users_in_photo"] = true
			}
		}
		if body.Pag.Next != "" {
			walk(auth("count", "33", "max_tag_id", body.Pag.Next))
		}
	}
	walk(auth("count", "33"))
	for _, want := range []string{"type:image", "type:video", "type:carousel", "caption:null", "location:null",
		"location:numeric id", "users_in_photo", "caption has \n", "caption has \"", "caption has <", "caption has \\"} {
		if !seen[want] {
			t.Errorf("300 media have no %q", want)
		}
	}
}

// truthLines decodes the NDJSON ground truth written to b.
func truthLines(t *testing.T, b *testkit.SyncBuffer) []Truth {
	t.Helper()
	var out []Truth
	sc := bufio.NewScanner(strings.NewReader(b.String()))
	for sc.Scan() {
		var tr Truth
		if err := json.Unmarshal(sc.Bytes(), &tr); err != nil {
			t.Fatalf("NDJSON line %q: %v", sc.Text(), err)
		}
		out = append(out, tr)
	}
	return out
}

func TestGroundTruthNDJSONMatchesGroundTruth(t *testing.T) {
	t.Parallel()
	var sink testkit.SyncBuffer
	cfg := plain(TagConfig{Name: "gt1", Initial: 4}, TagConfig{Name: "gt2", Initial: 3})
	cfg.GroundTruth = &sink
	s := start(t, cfg)
	s.Post("gt1", 2)
	s.PostLate("gt2", time.Hour)
	lines := truthLines(t, &sink)
	truth := s.GroundTruth()
	if len(lines) != len(truth) || len(truth) != 10 {
		t.Fatalf("%d NDJSON lines, %d truths, want 10", len(lines), len(truth))
	}
	byID := map[string]Truth{}
	for _, l := range lines {
		byID[l.MediaID] = l
	}
	for _, tr := range truth {
		l := byID[tr.MediaID]
		if l.Cursor != tr.Cursor || l.Tag != tr.Tag || !l.VisibleAt.Equal(tr.VisibleAt) || !l.CreatedTime.Equal(tr.CreatedTime) || l.Late != tr.Late {
			t.Errorf("NDJSON %+v differs from %+v", l, tr)
		}
	}
	// GroundTruth is per tag in tag order.
	if truth[0].Tag != "gt1" || truth[len(truth)-1].Tag != "gt2" || !truth[len(truth)-1].Late {
		t.Errorf("order: first %s, last %s late=%v", truth[0].Tag, truth[len(truth)-1].Tag, truth[len(truth)-1].Late)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestAFailingGroundTruthSinkDoesNotStopTheServer(t *testing.T) {
	t.Parallel()
	cfg := plain(TagConfig{Name: "fw", Initial: 2})
	cfg.GroundTruth = failingWriter{}
	s := start(t, cfg)
	s.Post("fw", 3)
	if p := recent(t, s, "fw", auth()); len(p.items) != 5 {
		t.Errorf("%d media", len(p.items))
	}
}
