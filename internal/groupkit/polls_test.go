package groupkit

import (
	"strings"
	"testing"
	"time"
)

func TestGapsOfOneTag(t *testing.T) {
	at := time.Date(2026, 12, 1, 6, 0, 10, 0, time.UTC)
	s := func(sec float64) time.Time { return at.Add(time.Duration(sec * float64(time.Second))) }
	l := &PollLog{}
	for _, p := range []Poll{ // added out of order: Records orders them by start
		{Member: "m3", Tag: "x", Start: s(4)},
		{Member: "m1", Tag: "x", Start: s(-6)},
		{Member: "m1", Tag: "x", Start: s(-2)},
		{Member: "m2", Tag: "y", Start: s(-1)},
		{Member: "m1", Tag: "x", Start: s(0.5)}, // the old owner finishing (SIGTERM): not the new owner's
		{Member: "m3", Tag: "x", Start: s(3)},
	} {
		l.Add(p)
	}
	recs := l.Records()
	t.Run("the gap across the event runs from the last poll before it to the new owner's first", func(t *testing.T) {
		g, ok := recs.GapAcross("x", "m1", at)
		if !ok || g != 5*time.Second {
			t.Errorf("GapAcross = %v, %v, want 5s, true", g, ok)
		}
		if gs := recs.GapsAcross([]string{"x", "z"}, "m1", at); len(gs) != 1 || gs["x"] != 5*time.Second {
			t.Errorf("GapsAcross = %v, want only x: 5s", gs)
		}
	})
	t.Run("the new owner's first poll is found after the event", func(t *testing.T) {
		p, ok := recs.FirstPoll("x", "m1", at)
		if !ok || p.Member != "m3" || !p.Start.Equal(s(3)) {
			t.Errorf("FirstPoll = %+v, %v", p, ok)
		}
		if p, ok := recs.FirstPollBy("m1", "x", at); !ok || !p.Start.Equal(s(0.5)) {
			t.Errorf("FirstPollBy = %+v, %v", p, ok)
		}
		if recs.PolledBy("m2", "x", s(-10)) {
			t.Errorf("PolledBy: m2 never polled x")
		}
	})
	t.Run("the longest gap between polls in a span counts consecutive polls only", func(t *testing.T) {
		if g := recs.LongestGapBetween("x", s(-10), at); g != 4*time.Second {
			t.Errorf("LongestGapBetween = %v, want 4s", g)
		}
	})
	t.Run("the longest gap of a span counts its edges too", func(t *testing.T) {
		if g, tag := recs.LongestGap([]string{"x", "y"}, s(-2), s(10)); g != 11*time.Second || tag != "y" {
			t.Errorf("LongestGap = %v, %q, want 11s (y from its only poll to the end), y", g, tag)
		}
		if g, tag := recs.LongestGap([]string{"x"}, s(-10), at); g != 4*time.Second || tag != "x" {
			t.Errorf("LongestGap = %v, %q, want 4s, x", g, tag)
		}
	})
	t.Run("a tag never polled before the event has no gap", func(t *testing.T) {
		if _, ok := recs.GapAcross("z", "m1", at); ok {
			t.Errorf("GapAcross found a gap for a tag without polls")
		}
	})
}

func TestHandoffsFindAnOverlap(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	req := func(member string, from, to int) Poll {
		return Poll{Member: member, Tag: "hot", Start: at(from), End: at(to), Status: 200}
	}
	overlap := Polls{req("m1", 0, 100), req("m1", 500, 900), req("m2", 700, 800)}
	changes, problems := overlap.Handoffs(nil)
	if changes["hot"] != 1 || len(problems) != 1 || !strings.Contains(problems[0], "still in flight") {
		t.Errorf("Handoffs = %v, %q, want one change and one overlap", changes, problems)
	}
	if _, problems := overlap.Handoffs(map[string]time.Time{"m1": at(600)}); len(problems) != 0 {
		t.Errorf("a killed member's request in flight was counted: %q", problems)
	}
	if _, problems := (Polls{req("m1", 0, 100), req("m2", 700, 800)}).Handoffs(nil); len(problems) != 0 {
		t.Errorf("a clean handoff was reported: %q", problems)
	}
}

func TestFeedTag(t *testing.T) {
	for _, tc := range []struct {
		path, tag string
		ok        bool
	}{
		{"/v1/tags/coffee/media/recent", "coffee", true},
		{"/v1/tags/%E6%9D%B1%E4%BA%AC/media/recent", "東京", true},
		{"/v1/tags/coffee/media/recent.json", "coffee", true},
		{"/v1/tags/a%2Fb/media/recent", "a/b", true},
		{"/v1/tags/coffee", "", false},
		{"/v1/tags/a/b/media/recent", "", false},
		{"/v1/media/123", "", false},
		{"/media/recent", "", false},
	} {
		tag, ok := FeedTag(tc.path)
		if tag != tc.tag || ok != tc.ok {
			t.Errorf("FeedTag(%q) = %q, %v, want %q, %v", tc.path, tag, ok, tc.tag, tc.ok)
		}
	}
}
