//go:build integration

package e2e

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tagstream/tagstream/internal/groupkit"
	"github.com/tagstream/tagstream/poller/checkpoint"
)

// TestGroupCheckersFindWhatIsWrong runs the checks of TestGroupOnTheCluster on made-up observations: a cursor
// history that moves backwards, is emptied or deleted is reported, and so are two members' requests for one tag
// that overlap; what a correct run produces passes. Without it a check that found nothing would make the group
// test pass.
func TestGroupCheckersFindWhatIsWrong(t *testing.T) {
	t.Run("cursor histories", func(t *testing.T) {
		put := func(rev uint64, cursor string) cursorWrite {
			return cursorWrite{Rev: rev, Op: jetstream.KeyValuePut, Cursor: cursor}
		}
		for _, tc := range []struct {
			name   string
			writes []cursorWrite
			want   string // a problem containing this; "" = none
		}{
			{"a cursor that only moves forward passes, across 16 to 17 digits", []cursorWrite{put(1, ""), put(2, "9999999999999999"),
				put(5, "9999999999999999"), put(9, "10000000000000001")}, ""},
			{"a cursor moved backwards is reported", []cursorWrite{put(1, "10000000000000005"), put(3, "10000000000000004")}, "moved backwards"},
			{"a cursor moved back by a digit count is reported", []cursorWrite{put(1, "10000000000000001"), put(2, "9999999999999999")}, "moved backwards"},
			{"a cursor emptied is reported", []cursorWrite{put(1, "10000000000000005"), put(2, "")}, "emptied"},
			{"a cursor deleted is reported", []cursorWrite{put(1, "10000000000000005"), {Rev: 2, Op: jetstream.KeyValueDelete}}, "KeyValueDeleteOp"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				w := &cursorWatch{byKey: map[string][]cursorWrite{checkpoint.KVKey("東京"): tc.writes}}
				n, problems := w.check([]string{"東京"})
				if n != len(tc.writes) {
					t.Errorf("checked %d writes, want %d", n, len(tc.writes))
				}
				reportedAs(t, problems, tc.want)
			})
		}
	})

	t.Run("requests of one tag by two members", func(t *testing.T) {
		t0 := time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC)
		at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
		req := func(member string, from, to int) groupkit.Poll {
			return groupkit.Poll{Member: member, Tag: "hot", Start: at(from), End: at(to), Status: 200}
		}
		for _, tc := range []struct {
			name    string
			recs    []groupkit.Poll
			exempt  map[string]time.Time
			changes int
			want    string
		}{
			{"a handoff after the last request ended passes", []groupkit.Poll{req("m1", 0, 100), req("m1", 500, 600), req("m2", 700, 800)}, nil, 1, ""},
			{"a new owner's request while the old one's is in flight is reported", []groupkit.Poll{req("m1", 0, 100), req("m1", 500, 900),
				req("m2", 700, 800)}, nil, 1, "still in flight"},
			{"a killed member's request in flight is not counted", []groupkit.Poll{req("m1", 500, 900), req("m2", 700, 800)},
				map[string]time.Time{"m1": at(600)}, 1, ""},
			{"a paused member's requests after its resume are checked", []groupkit.Poll{req("m2", 0, 100), req("m1", 500, 900), req("m2", 700, 800)},
				map[string]time.Time{"m1": at(400)}, 2, "still in flight"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				changes, problems := groupkit.Polls(tc.recs).Handoffs(tc.exempt)
				if changes["hot"] != tc.changes {
					t.Errorf("%d owner changes, want %d", changes["hot"], tc.changes)
				}
				reportedAs(t, problems, tc.want)
			})
		}
	})

	t.Run("feed paths name their tag", func(t *testing.T) {
		for path, want := range map[string]string{
			"/v1/tags/hot/media/recent":                     "hot",
			"/v1/tags/%E6%9D%B1%E4%BA%AC/media/recent":      "東京",
			"/v1/tags/%E6%9D%B1%E4%BA%AC/media/recent.json": "東京",
			"/v1/tags/hot":  "",
			"/v1/media/123": "",
		} {
			tag, ok := groupkit.FeedTag(path)
			if tag != want || ok != (want != "") {
				t.Errorf("feedTag(%q) = %q, %v, want %q", path, tag, ok, want)
			}
		}
	})
}

// reportedAs fails unless problems holds one containing want, or is empty when want is "".
func reportedAs(t *testing.T, problems []string, want string) {
	t.Helper()
	if want == "" {
		if len(problems) > 0 {
			t.Errorf("problems in a correct run: %q", problems)
		}
		return
	}
	if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, want) }) {
		t.Errorf("no problem mentions %q; problems: %q", want, problems)
	}
}
