//go:build integration

package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tagstream/tagstream/publisher"
	"github.com/tagstream/tagstream/schema"
	"github.com/tagstream/tagstream/testenv"
)

// TestCheckerFindsWhatIsWrong runs the checker of the end-to-end tests on the simulator alone: a perfect delivery
// (built by reading the simulator's feeds and normalizing them as tagstream would) passes, and each kind of damage
// a broken pipeline could do is reported. Without it, a checker that found nothing would make every test pass.
func TestCheckerFindsWhatIsWrong(t *testing.T) {
	t.Parallel()
	s := startSim(t, simOptions{Tags: []testenv.TagConfig{
		{Name: "sunset", Rate: 0, Initial: 45}, // two pages
		{Name: "東京", Rate: 0, Initial: 6},
	}})
	late := s.PostLate("東京", 48*time.Hour)
	gone := s.Post("sunset", 2)
	s.Delete("sunset", gone[0].MediaID)
	perfect := deliverFromSource(t, s, "sunset", "東京")
	if len(perfect) != 45+6+1+1 {
		t.Fatalf("the simulator's feeds hold %d media, want 53", len(perfect))
	}
	at := time.Now()
	for i := range perfect {
		perfect[i].BrokerTime = at
	}
	firstSunset := slices.IndexFunc(perfect, func(r received) bool { return r.Event.Subject == "sunset" })
	firstTokyo := slices.IndexFunc(perfect, func(r received) bool { return r.Event.Subject == "東京" })
	if firstSunset < 0 || firstTokyo < 0 {
		t.Fatalf("no media of one tag: %d, %d", firstSunset, firstTokyo)
	}
	if !slices.ContainsFunc(perfect, func(r received) bool { return r.Event.Data.MediaID == late.MediaID }) {
		t.Fatalf("the late-tagged media is not in the feed")
	}

	clone := func() []received {
		out := make([]received, len(perfect))
		for i, r := range perfect {
			ev := *r.Event
			d := *r.Event.Data
			ev.Data = &d
			r.Event = &ev
			out[i] = r
		}
		return out
	}
	kafkaView := func(rs []received) []received {
		for i := range rs {
			rs[i].Key = rs[i].Event.Subject
			rs[i].Subject = ""
			rs[i].Partition = 0
			if rs[i].Event.Subject == "東京" {
				rs[i].Partition = 2
			}
		}
		return rs
	}
	jsOpts := checkOptions{Sink: sinkJetStream, SubjectPrefix: subjectPrefix}
	for _, tc := range []struct {
		name string
		opts checkOptions
		got  func() []received
		want string // a problem containing this; "" = no problem
	}{
		{"a perfect JetStream delivery passes", jsOpts, clone, ""},
		{"a perfect Kafka delivery passes", checkOptions{Sink: sinkKafka}, func() []received { return kafkaView(clone()) }, ""},
		{"a missing media is reported", jsOpts, func() []received {
			rs := clone()
			return slices.Delete(rs, firstSunset+3, firstSunset+4)
		}, "missing"},
		{"two media of a tag out of feed order are reported", jsOpts, func() []received {
			rs := clone()
			rs[firstSunset+1], rs[firstSunset+2] = rs[firstSunset+2], rs[firstSunset+1]
			return rs
		}, "out of order"},
		{"a repeat on JetStream is reported", jsOpts, func() []received {
			rs := clone()
			return append(rs, rs[firstTokyo])
		}, "duplicate"},
		{"a Kafka repeat outside every fault window is reported", checkOptions{Sink: sinkKafka,
			DupWindows: []window{{What: "kill", From: at.Add(-time.Hour), To: at.Add(-time.Hour)}}}, func() []received {
			rs := kafkaView(clone())
			return append(rs, rs[firstTokyo])
		}, "outside every fault window"},
		{"a Kafka repeat within a fault window is accepted", checkOptions{Sink: sinkKafka,
			DupWindows: []window{{What: "kill", From: at, To: at}}}, func() []received {
			rs := kafkaView(clone())
			return append(rs, rs[firstTokyo])
		}, ""},
		{"one tag spread over two Kafka partitions is reported", checkOptions{Sink: sinkKafka}, func() []received {
			rs := kafkaView(clone())
			rs[firstSunset+5].Partition = 1
			return rs
		}, "partitions"},
		{"a caption changed by one byte is reported", jsOpts, func() []received {
			rs := clone()
			for i := range rs {
				if rs[i].Event.Data.Caption != "" {
					rs[i].Event.Data.Caption += " "
					break
				}
			}
			return rs
		}, "caption"},
		{"a wrong user is reported", jsOpts, func() []received {
			rs := clone()
			rs[firstTokyo].Event.Data.User.Username += "x"
			return rs
		}, "user.username"},
		{"a created time off by a second is reported", jsOpts, func() []received {
			rs := clone()
			rs[firstTokyo].Event.Data.CreatedAt = rs[firstTokyo].Event.Data.CreatedAt.Add(time.Second)
			return rs
		}, "created_at"},
		{"a wrong type is reported", jsOpts, func() []received {
			rs := clone()
			if rs[firstTokyo].Event.Data.Type == "video" {
				rs[firstTokyo].Event.Data.Type = "image"
			} else {
				rs[firstTokyo].Event.Data.Type = "video"
			}
			return rs
		}, "type"},
		{"an event on another tag's subject is reported", jsOpts, func() []received {
			rs := clone()
			rs[firstTokyo].Subject = publisher.Subject(subjectPrefix, "sunset")
			return rs
		}, "subject"},
		{"a media the API never showed is reported", jsOpts, func() []received {
			rs := clone()
			r := rs[firstTokyo]
			d := *r.Event.Data
			d.MediaID = "999_999"
			ev := *r.Event
			ev.Data = &d
			ev.ID = schema.EventID("東京", d.MediaID)
			r.Event = &ev
			return append(rs, r)
		}, "not in the simulator's ground truth"},
		{"a gap marker is reported", jsOpts, func() []received {
			rs := clone()
			g := schema.NewGap("sunset", "/e2e", schema.Gap{})
			return append(rs, received{Event: g, Where: "seq 999"})
		}, "gap"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, problems := verify(s, tc.got(), tc.opts, t.Logf)
			if tc.want == "" {
				if len(problems) > 0 {
					t.Errorf("%d problems in a delivery that should pass, e.g. %s", len(problems), problems[0])
				}
				if rep.DeletedUnseen != 1 {
					t.Errorf("deleted unseen = %d, want 1 (the media deleted before delivery)", rep.DeletedUnseen)
				}
				return
			}
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, tc.want) }) {
				t.Errorf("no problem mentions %q; problems: %q", tc.want, problems)
			}
		})
	}
}

// deliverFromSource reads each tag's whole feed from the simulator and returns the events tagstream should
// publish for it, oldest first per tag, as a consumer would read them back (encoded and decoded once).
func deliverFromSource(t *testing.T, s *sim, tags ...string) []received {
	t.Helper()
	var out []received
	for _, tag := range tags {
		var feed []received
		maxID := ""
		for page := 0; ; page++ {
			if page > 100 {
				t.Fatalf("tag %q: more than 100 pages", tag)
			}
			q := url.Values{"count": {"33"}, "access_token": {s.verifiers[0]}}
			if maxID != "" {
				q.Set("max_tag_id", maxID)
			}
			resp, err := s.Client().Get(s.URL() + "/tags/" + url.PathEscape(tag) + "/media/recent?" + q.Encode())
			if err != nil {
				t.Fatalf("tag %q page %d: request failed", tag, page)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("tag %q page %d: status %d, %v", tag, page, resp.StatusCode, err)
			}
			pg, err := schema.DecodePage(resp.StatusCode, resp.Header.Get("Content-Type"), body)
			if err != nil {
				t.Fatalf("tag %q page %d: %v", tag, page, err)
			}
			for i := range pg.Media {
				ev, err := schema.Normalize(&pg.Media[i], schema.Sighting{Tag: tag, Cursor: pg.Pagination.MinTagID, Source: "/e2e"})
				if err != nil {
					t.Fatalf("normalize: %v", err)
				}
				back, err := schema.UnmarshalEvent(ev.AppendJSON(nil))
				if err != nil {
					t.Fatalf("round trip of %s: %v", ev.ID, err)
				}
				feed = append(feed, received{Event: back, Subject: publisher.Subject(subjectPrefix, tag)})
			}
			if pg.Pagination.NextMaxTagID == "" {
				break
			}
			maxID = pg.Pagination.NextMaxTagID
		}
		slices.Reverse(feed)
		out = append(out, feed...)
	}
	for i := range out {
		out[i].Where = fmt.Sprintf("seq %d", i+1)
		out[i].Pos = int64(i + 1)
	}
	return out
}
