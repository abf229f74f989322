//go:build integration

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tagstream/tagstream/publisher"
	"github.com/tagstream/tagstream/schema"
	"github.com/tagstream/tagstream/testenv"
)

// window is a span of time around a fault (a kill -9, a broker restart) within which a Kafka duplicate is
// explained: the publisher wrote a batch that was not checkpointed, or kafka-go retried a write.
type window struct {
	What     string
	From, To time.Time
}

// checkOptions says what a run is checked against.
type checkOptions struct {
	Sink          string    // "jetstream" or "kafka"
	SubjectPrefix string    // JetStream: every tag's events must be on SubjectPrefix.<EncodeTag(tag)>
	Since         time.Time // latency is reported for media that became visible at or after Since
	// DupWindows (Kafka only) are the fault windows: a repeated media is accepted when its first copy was read
	// within one of them (widened by DupSlack, default 10 s). On JetStream every repeat is an error.
	DupWindows []window
	DupSlack   time.Duration
}

// latencyStats summarizes the time from post (the simulator's VisibleAt) to event.
type latencyStats struct {
	N             int
	P50, P95, Max time.Duration
}

func (l latencyStats) String() string {
	return fmt.Sprintf("n=%d p50=%s p95=%s max=%s", l.N, l.P50.Round(time.Millisecond), l.P95.Round(time.Millisecond), l.Max.Round(time.Millisecond))
}

// checkReport is what check found; the test logs it (and bench/e2e.md records the figures).
type checkReport struct {
	Events        int // media events read
	Media         int // distinct media among them
	Expected      int // ground-truth media that had to arrive (not deleted)
	DeletedUnseen int // deleted media that never arrived (not required)
	Gaps          int
	DupByID       int // events whose id was seen before
	DupByMedia    int // events whose (tag, media id) was seen before
	DupInWindows  int // Kafka repeats explained by a fault window
	Latency       latencyStats
	LatencyBasis  string // what the event time is: broker timestamp or consume time
	NoTimestamp   int    // records whose broker timestamp is unset (Kafka CreateTime 0, i.e. 1970)
	Partitions    int    // Kafka partitions that hold events
}

func (r checkReport) String() string {
	s := fmt.Sprintf("%d events, %d media (%d expected, %d deleted unseen), duplicates by id %d / by media %d (%d within fault windows), gaps %d; post-to-event (%s): %s",
		r.Events, r.Media, r.Expected, r.DeletedUnseen, r.DupByID, r.DupByMedia, r.DupInWindows, r.Gaps, r.LatencyBasis, r.Latency)
	if r.Partitions > 0 {
		s += fmt.Sprintf("; tags spread over %d partitions", r.Partitions)
	}
	if r.NoTimestamp > 0 {
		s += fmt.Sprintf("; %d records without a broker timestamp", r.NoTimestamp)
	}
	return s
}

// truthKey identifies a media in one tag's feed.
type truthKey struct{ tag, media string }

// check compares what a consumer read with the simulator's ground truth and reports every difference with
// t.Errorf: events missing or unknown, per-tag order, duplicates (none on JetStream; on Kafka only within fault
// windows), event attributes, and field values against the source media (GET /v1/media/{id}).
func check(t *testing.T, s *sim, got []received, o checkOptions) checkReport {
	t.Helper()
	rep, problems := verify(s, got, o, t.Logf)
	for i, p := range problems {
		if i == 20 {
			t.Errorf("... and %d more problems", len(problems)-20)
			break
		}
		t.Error(p)
	}
	return rep
}

// verify is check without the testing.T: it returns the report and the problems found, and logs explained
// repeats with logf.
func verify(s *sim, got []received, o checkOptions, logf func(string, ...any)) (checkReport, []string) {
	if o.DupSlack == 0 {
		o.DupSlack = 10 * time.Second
	}
	truth := s.GroundTruth()
	index := make(map[truthKey]int, len(truth)) // position in its tag's feed
	pos := map[string]int{}
	for _, tr := range truth {
		index[truthKey{tr.Tag, tr.MediaID}] = pos[tr.Tag]
		pos[tr.Tag]++
	}
	byKey := make(map[truthKey]testenv.Truth, len(truth))
	for _, tr := range truth {
		byKey[truthKey{tr.Tag, tr.MediaID}] = tr
	}

	var rep checkReport
	rep.LatencyBasis = "broker timestamp"
	if o.Sink == "kafka" {
		rep.LatencyBasis = "consume time"
	}
	first := map[truthKey]received{}
	seenID := map[string]bool{}
	lastIdx := map[string]int{} // per tag: feed index of the last new media, for the order check
	tagPartition := map[string]int{}
	var problems []string
	problem := func(format string, args ...any) {
		problems = append(problems, fmt.Sprintf(format, args...))
	}
	var dups []received
	for _, r := range got {
		ev := r.Event
		if r.BrokerTime.Before(time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)) {
			rep.NoTimestamp++
		}
		if ev.Type == schema.GapEventType {
			rep.Gaps++
			problem("%s: unexpected gap marker for tag %q (the simulator keeps every media)", r.Where, ev.Subject)
			continue
		}
		rep.Events++
		d := ev.Data
		if ev.Type != schema.MediaEventType || d == nil {
			problem("%s: event %s has type %q and data %v", r.Where, ev.ID, ev.Type, d != nil)
			continue
		}
		tag := ev.Subject
		key := truthKey{tag, d.MediaID}
		switch {
		case ev.SpecVersion != "1.0":
			problem("%s: specversion %q", r.Where, ev.SpecVersion)
		case d.Tag != tag:
			problem("%s: subject %q but data.tag %q", r.Where, tag, d.Tag)
		case ev.ID != schema.EventID(tag, d.MediaID):
			problem("%s: id %s is not EventID(%q, %q)", r.Where, ev.ID, tag, d.MediaID)
		case o.Sink == "jetstream" && r.Subject != publisher.Subject(o.SubjectPrefix, tag):
			problem("%s: subject %q, want %q for tag %q", r.Where, r.Subject, publisher.Subject(o.SubjectPrefix, tag), tag)
		case o.Sink == "kafka" && r.Key != tag:
			problem("%s: key %q, want the tag %q", r.Where, r.Key, tag)
		}
		if o.Sink == "kafka" {
			if p, ok := tagPartition[tag]; ok && p != r.Partition {
				problem("%s: tag %q is in partitions %d and %d", r.Where, tag, p, r.Partition)
			}
			tagPartition[tag] = r.Partition
		}
		if seenID[ev.ID] {
			rep.DupByID++
		}
		seenID[ev.ID] = true
		idx, known := index[key]
		if !known {
			problem("%s: media %s under tag %q is not in the simulator's ground truth", r.Where, d.MediaID, tag)
			continue
		}
		if _, dup := first[key]; dup {
			rep.DupByMedia++
			dups = append(dups, r)
			continue
		}
		first[key] = r
		if last, ok := lastIdx[tag]; ok && idx < last {
			problem("%s: tag %q out of order: media %s (feed position %d) after feed position %d", r.Where, tag, d.MediaID, idx, last)
		}
		lastIdx[tag] = idx
	}
	rep.Media = len(first)
	parts := map[int]bool{}
	for _, p := range tagPartition {
		parts[p] = true
	}
	rep.Partitions = len(parts)

	// Duplicates.
	for _, r := range dups {
		key := truthKey{r.Event.Subject, r.Event.Data.MediaID}
		if o.Sink != "kafka" {
			problem("%s: duplicate of media %s (tag %q) first read at %s", r.Where, key.media, key.tag, first[key].Where)
			continue
		}
		at := eventTime(first[key])
		explained := false
		for _, w := range o.DupWindows {
			if !at.Before(w.From.Add(-o.DupSlack)) && !at.After(w.To.Add(o.DupSlack)) {
				explained = true
				break
			}
		}
		if explained {
			rep.DupInWindows++
			if rep.DupInWindows > 3 {
				continue
			}
			logf("repeat within a fault window: media %s (tag %q) at %s, first copy at %s read %s", key.media, key.tag, r.Where, first[key].Where, at.Format("15:04:05.000"))
		} else {
			problem("%s: duplicate of media %s (tag %q; first copy %s at %s) outside every fault window", r.Where, key.media, key.tag, first[key].Where, at.Format(time.RFC3339Nano))
		}
	}

	// Missing.
	var missing []string
	for _, tr := range truth {
		if _, ok := first[truthKey{tr.Tag, tr.MediaID}]; ok {
			continue
		}
		if !tr.DeletedAt.IsZero() {
			rep.DeletedUnseen++
			continue
		}
		elsewhere := ""
		for _, r := range got {
			if r.Event.Data != nil && r.Event.Data.MediaID == tr.MediaID {
				elsewhere += fmt.Sprintf(" [an event for it at %s under subject %q]", r.Where, r.Event.Subject)
			}
		}
		missing = append(missing, fmt.Sprintf("%s/%s (position %d, visible %s)%s", tr.Tag, tr.MediaID, index[truthKey{tr.Tag, tr.MediaID}], tr.VisibleAt.Format("15:04:05.000"), elsewhere))
	}
	rep.Expected = len(truth) - rep.DeletedUnseen
	if len(missing) > 0 {
		problem("%d of %d media missing, e.g. %s", len(missing), rep.Expected, strings.Join(missing[:min(5, len(missing))], ", "))
	}

	// Field values against the source and latency.
	var lat []time.Duration
	for key, r := range first {
		tr := byKey[key]
		if tr.VisibleAt.Before(o.Since) {
			continue
		}
		lat = append(lat, eventTime(r).Sub(tr.VisibleAt))
	}
	rep.Latency = summarize(lat)
	problems = append(problems, compareWithSource(s, first, byKey)...)
	return rep, problems
}

// eventTime is when an event reached the consumer side: the consume time when a live consumer recorded it,
// otherwise the broker's timestamp.
func eventTime(r received) time.Time {
	if !r.ConsumedAt.IsZero() {
		return r.ConsumedAt
	}
	return r.BrokerTime
}

// summarize returns nearest-rank percentiles.
func summarize(d []time.Duration) latencyStats {
	if len(d) == 0 {
		return latencyStats{}
	}
	slices.Sort(d)
	rank := func(p float64) time.Duration {
		i := int(p*float64(len(d))+0.999999) - 1
		return d[max(0, min(i, len(d)-1))]
	}
	return latencyStats{N: len(d), P50: rank(0.50), P95: rank(0.95), Max: d[len(d)-1]}
}

// sourceMedia is the part of the API's media object the checker compares, decoded independently of schema.
type sourceMedia struct {
	ID          string   `json:"id"`
	Type        string   `json:"type"`
	CreatedTime string   `json:"created_time"`
	Link        string   `json:"link"`
	Filter      string   `json:"filter"`
	Tags        []string `json:"tags"`
	Caption     *struct {
		Text string `json:"text"`
	} `json:"caption"`
	User struct {
		ID       json.RawMessage `json:"id"`
		Username string          `json:"username"`
		FullName string          `json:"full_name"`
	} `json:"user"`
	Likes struct {
		Count int64 `json:"count"`
	} `json:"likes"`
	Comments struct {
		Count int64 `json:"count"`
	} `json:"comments"`
}

// compareWithSource fetches every media from the simulator and compares the fields of its event.
func compareWithSource(s *sim, first map[truthKey]received, byKey map[truthKey]testenv.Truth) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	keys := make([]truthKey, 0, len(first))
	for k := range first {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].tag != keys[j].tag {
			return keys[i].tag < keys[j].tag
		}
		return keys[i].media < keys[j].media
	})
	var (
		mu       sync.Mutex
		problems []string
		wg       sync.WaitGroup
		work     = make(chan truthKey)
	)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range work {
				src, err := fetchMedia(ctx, s, k.media, w)
				var p []string
				if err != nil {
					p = []string{fmt.Sprintf("source of media %s: %v", k.media, err)}
				} else {
					p = compareMedia(first[k], byKey[k], src)
				}
				mu.Lock()
				problems = append(problems, p...)
				mu.Unlock()
			}
		}()
	}
	for _, k := range keys {
		work <- k
	}
	close(work)
	wg.Wait()
	return problems
}

// compareMedia lists the differences between an event and its source media.
func compareMedia(r received, tr testenv.Truth, src sourceMedia) []string {
	d := r.Event.Data
	var p []string
	diff := func(field string, got, want any) {
		p = append(p, fmt.Sprintf("%s: media %s %s = %#v, source has %#v", r.Where, d.MediaID, field, got, want))
	}
	caption := ""
	if src.Caption != nil {
		caption = src.Caption.Text
	}
	if d.Caption != caption {
		diff("caption", d.Caption, caption)
	}
	if src.ID != d.MediaID {
		diff("media_id", d.MediaID, src.ID)
	}
	if d.Type != src.Type {
		diff("type", d.Type, src.Type)
	}
	uid := string(src.User.ID)
	if u, err := strconv.Unquote(uid); err == nil {
		uid = u
	}
	if d.User.ID != uid {
		diff("user.id", d.User.ID, uid)
	}
	if d.User.Username != src.User.Username {
		diff("user.username", d.User.Username, src.User.Username)
	}
	if d.User.FullName != src.User.FullName {
		diff("user.full_name", d.User.FullName, src.User.FullName)
	}
	secs, err := strconv.ParseInt(src.CreatedTime, 10, 64)
	switch {
	case err != nil:
		diff("created_time (source unreadable)", d.CreatedAt, src.CreatedTime)
	case d.CreatedAt.Unix() != secs || !d.CreatedAt.Equal(time.Unix(secs, 0)):
		diff("created_at", d.CreatedAt.Format(time.RFC3339Nano), src.CreatedTime)
	case tr.CreatedTime.Unix() != secs:
		diff("created_time (ground truth)", tr.CreatedTime.Unix(), secs)
	case !r.Event.Time.Equal(d.CreatedAt):
		diff("time attribute", r.Event.Time, d.CreatedAt)
	}
	if d.Link != src.Link {
		diff("link", d.Link, src.Link)
	}
	if d.Filter != src.Filter {
		diff("filter", d.Filter, src.Filter)
	}
	if !slices.Equal(d.Tags, src.Tags) && (len(d.Tags) != 0 || len(src.Tags) != 0) {
		diff("tags", d.Tags, src.Tags)
	}
	if d.Likes != src.Likes.Count {
		diff("likes", d.Likes, src.Likes.Count)
	}
	if d.Comments != src.Comments.Count {
		diff("comments", d.Comments, src.Comments.Count)
	}
	return p
}

// errRetry marks an answer worth retrying (rate limit, fault).
var errRetry = errors.New("retry")

// fetchMedia gets GET /v1/media/{id} with the verifier tokens (starting with the worker's, moving on to the next
// after each failure), retrying rate-limit and fault answers until ctx ends. Errors never contain the URL (it holds
// the token).
func fetchMedia(ctx context.Context, s *sim, id string, worker int) (sourceMedia, error) {
	client := s.Client()
	var last error
	for attempt := 0; ; attempt++ {
		tok := s.verifiers[(worker+attempt)%len(s.verifiers)]
		u := s.URL() + "/media/" + url.PathEscape(id) + "?access_token=" + url.QueryEscape(tok)
		src, err := fetchMediaOnce(ctx, client, u)
		if err == nil || !errors.Is(err, errRetry) {
			return src, err
		}
		last = err
		select {
		case <-ctx.Done():
			return sourceMedia{}, fmt.Errorf("gave up: %w (last: %v)", ctx.Err(), last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func fetchMediaOnce(ctx context.Context, client *http.Client, u string) (sourceMedia, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return sourceMedia{}, errors.New("bad request")
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL holds the token
		}
		return sourceMedia{}, fmt.Errorf("%w: %v", errRetry, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return sourceMedia{}, fmt.Errorf("%w: read: %v", errRetry, err)
	}
	if resp.StatusCode != http.StatusOK {
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
			return sourceMedia{}, fmt.Errorf("%w: status %d", errRetry, resp.StatusCode)
		}
		return sourceMedia{}, fmt.Errorf("status %d: %.200s", resp.StatusCode, body)
	}
	var env struct {
		Data *sourceMedia `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil || env.Data == nil {
		return sourceMedia{}, fmt.Errorf("%w: undecodable media answer (%v)", errRetry, err)
	}
	return *env.Data, nil
}
