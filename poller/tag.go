package poller

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tagstream/tagstream/poller/checkpoint"
	"github.com/tagstream/tagstream/schema"
)

// gapReason is the Reason of the gap markers the poller publishes.
const gapReason = "the API no longer serves the media between these cursors (retention or deletion); they were not published"

// poll runs one poll of ts and reports it to the scheduler. Errors are logged here, once.
//
// A poll either writes the acknowledged state of an earlier poll whose checkpoint write failed (and nothing else:
// that batch is not fetched or published again), or runs one step on the tag (first poll, catch-up or head walk)
// and writes the state the step decided. When that write fails, the state stays in memory (tagState.pending) and
// the next polls retry the write alone, with the per-tag backoff.
func (p *Poller) poll(ctx, commitCtx context.Context, ts *tagState) error {
	if !p.gateOpen() {
		p.mu.Lock()
		ts.early = false
		p.sched.requeue(ts)
		p.mu.Unlock()
		p.signal()
		return nil
	}
	began := p.clk.mono()

	p.mu.Lock()
	pending := ts.pending
	r := &pollRun{p: p, ctx: ctx, commitCtx: commitCtx, tag: ts.name, early: ts.early}
	ts.early = false
	switch {
	case ts.plain:
		r.known = &checkpoint.State{Cursor: ts.cursor}
		if ts.headID != "" {
			r.known.Recent = []string{ts.headID}
		}
	case ts.absent && pending == nil:
		r.absent = true
	}
	covered := ts.covered
	p.mu.Unlock()
	var o observation
	var err error
	if pending != nil {
		o = observation{backlog: true, write: pending}
	} else {
		o, err = r.step()
	}
	if err == nil && o.write != nil && covered && mayKeep(o) {
		// A covered first poll that found nothing new: the start record makes the start instant durable, so
		// the state stays in memory (see recordStarts).
		o.cursor, o.kept, o.headID = o.write.Cursor, true, lastOf(o.write.Recent)
		o.write = nil
	}
	if err == nil && o.write != nil {
		// The rate estimate goes with the cursor, so that a restart resumes with it.
		p.mu.Lock()
		o.write.RateMedia, o.write.RateSeconds = ts.cnt, ts.dur
		p.mu.Unlock()
		if o.hist {
			o.write.RateMedia, o.write.RateSeconds = o.histMedia, o.histSeconds
		}
		err = p.commit(commitCtx, ts.name, *o.write)
		if errors.Is(err, checkpoint.ErrConflict) {
			p.conflict(ts, err)
			return err
		}
		if err == nil {
			o.cursor, o.segments = o.write.Cursor, len(o.write.Segments)
			o.wrote, o.plain = true, plainState(o.write)
			o.write = nil
		}
	}
	o.err = err
	p.mu.Lock()
	o.requests, o.pages, o.elapsed = r.requests, r.pages, p.clk.mono()-began
	if err != nil && (ctx.Err() != nil || errors.Is(err, errNoSpareToken) || errors.Is(err, errGateClosed)) && o.write == nil {
		// Shutting down, the gate closed, or an early poll found no token to spare: the poll was cut short before
		// it began or nothing moved; the tag keeps its due time.
		p.sched.requeue(ts)
		p.mu.Unlock()
		switch {
		case errors.Is(err, errNoSpareToken):
			return nil
		case errors.Is(err, errGateClosed):
			p.signal() // the dispatcher waits for the gate, then polls the tag
			return nil
		}
		p.m.polls.Inc()
		return err
	}
	p.m.polls.Inc()
	if r.early {
		p.m.earlyPolls.Inc()
	}

	now := p.clk.mono()
	cu, ended := p.sched.done(ts, o, now)
	if g := ts.gauges; g != nil {
		if err == nil {
			g.lastPoll.Set(float64(p.cfg.Clock().UnixNano()) / 1e9)
		}
		g.interval.Set(p.sched.interval(ts))
	}
	var cuLog catchUp
	if cu != nil {
		cuLog = *cu
	}
	first := ts.fails == 1
	// The dispatcher sleeps until the next due tag: wake it only when this one is due before that.
	wake := ts.hidx >= 0 && ts.due < p.wakeAt
	p.mu.Unlock()
	if wake {
		p.signal()
	}
	switch {
	case cu != nil && ended:
		p.log.Info("catch-up done", "tag", ts.name, "pages", cuLog.pages, "media", cuLog.published,
			"seconds", (now - cuLog.since).Round(time.Millisecond).Seconds())
	case cu != nil:
		p.log.Info("catch-up started: more new media than one poll reads", "tag", ts.name, "pages", cuLog.pages,
			"media_pending", cuLog.pending)
	}
	switch {
	case err != nil && o.write != nil:
		p.log.Debug("checkpoint write failed; the acknowledged state is kept and its write retried", "tag", ts.name, "err", err)
	case err != nil:
		level := p.log.Debug
		if first {
			level = p.log.Warn
		}
		level("poll failed; the cursor did not move", "tag", ts.name, "err", err)
	}
	return err
}

// mayKeep reports whether the state a first poll decided to write may stay in memory when the store's start record
// covers the tag: a first poll from the start instant (not a backfill) that published nothing (no media, no gap
// marker) and left no catch-up, so that its state is a cursor and at most the id of the media at it, which
// polls use without reading the store (kept). A restart before the tag writes a state starts it from the
// recorded instant again: the media created since then (less StartSkew) are published then, as its first poll
// would have; the one difference is a media tagged late (created before the start, tagged after this poll),
// which that restarted first poll judges by its created_time (see StartSkew).
func mayKeep(o observation) bool {
	w := o.write
	return o.first && o.published == 0 && o.gaps == 0 && len(w.Segments) == 0 && w.Since.IsZero() && len(w.Recent) <= 1
}

// pollRun is one poll of one tag: what each of its steps needs.
type pollRun struct {
	p         *Poller
	ctx       context.Context // fetching: ends at once at shutdown
	commitCtx context.Context // publishing: ends Config.ShutdownTimeout after shutdown
	tag       string
	requests  int               // requests sent, retries and probes included
	pages     int               // pages received
	known     *checkpoint.State // the tag's stored state when this process knows it (plainState), else nil
	absent    bool              // the store has no state of the tag (prepareStore): a first poll, without a read
	early     bool              // an early poll: its first request takes a token only if one is ready at once
}

// plainState reports whether st holds nothing but a cursor (and the rate estimate) — no recent ids, segments or
// start instant, like every silent tag's — so that the poller can keep it in memory and spare the read.
func plainState(st *checkpoint.State) bool {
	return len(st.Recent) == 0 && len(st.Segments) == 0 && st.Since.IsZero()
}

// page fetches one page of the tag.
func (r *pollRun) page(q query) (*schema.Page, error) {
	q.tag, q.probes = r.tag, &r.requests
	q.spare = r.early && r.requests == 0
	page, err := r.p.client.page(r.ctx, q)
	if err == nil {
		r.pages++
	}
	return page, err
}

// step polls the tag once: a first poll, a catch-up step on the oldest backlog segment, or a walk from the head.
// The observation's write is the state to persist (nil: nothing to write).
func (r *pollRun) step() (observation, error) {
	if r.known != nil {
		return r.pollHead(*r.known)
	}
	if r.absent {
		if !r.p.gateOpen() {
			return observation{}, errGateClosed
		}
		return r.firstPoll()
	}
	st, ok, err := r.p.store.Get(r.commitCtx, r.tag)
	if err != nil {
		return observation{}, fmt.Errorf("poller: tag %q: read checkpoint: %w", r.tag, err)
	}
	if !r.p.gateOpen() {
		// Checked again after the read, which adopted the stored revision: a process paused between the check
		// at the poll's start and the read must not fetch anything now.
		return observation{}, errGateClosed
	}
	switch {
	case !ok:
		return r.firstPoll()
	case len(st.Segments) > 0:
		return r.catchUp(st)
	}
	return r.pollHead(st)
}

// walked is the result of a walk down a tag's feed.
type walked struct {
	items       []*schema.Media // new media, newest first, without repeats or known ids
	cursors     []string        // the min_tag_id of the page each item came from
	seen        []time.Time     // when the page each item came from was received
	batch       map[string]bool // ids of every media returned; nil while none was
	head        string          // min_tag_id of the first non-empty page: the cursor of the newest media returned
	oldest      string          // next_max_tag_id of the last non-empty page: the cursor of the oldest media returned
	split       string          // next_max_tag_id after page splitAt: where an incomplete walk's backlog is split
	upper       string          // the walk's max_tag_id bound ("" = the head)
	lastMin     string          // min_tag_id of the last non-empty page: the cursor of its newest media
	lastCount   int             // media on that page
	complete    bool            // the last page said nothing older remains within the bounds
	pages       int
	fetched     int // media returned, repeats included
	noID        int // media returned without an id: they cannot be published, de-duplicated or remembered
	sawBoundary bool
	splitItems  int     // len(items) after page splitAt: the media located above the split
	headID      string  // id of the first media returned: the media at head
	reachedOld  bool    // a walk with a time bound ended at a page whose oldest media is older than the bound
	created     []int64 // created_time (unix seconds) of every media returned, feed order (walkSpec.history)
}

// walkSpec says which part of a tag's feed a walk reads and what it keeps.
type walkSpec struct {
	min      string          // exclusive lower bound: the committed cursor ("" = none)
	max      string          // exclusive upper bound ("" = the head)
	maxPages int             // pages read at most
	splitAt  int             // the walk's split is the lower end of this page
	keep     bool            // collect the new media (false: only read and bound them)
	known    map[string]bool // ids already published (State.Recent): not kept
	boundary string          // id of the media at min, whose return marks an inclusive upstream
	// since, when not 0, is a time bound (unix seconds): media created before it are not kept, and the walk ends
	// after a page whose oldest media was created before it.
	since int64
	// history records the created_time of every media returned (walked.created), for a first rate estimate.
	history bool
}

// walk fetches pages newer than s.min and older than s.max, newest first, following next_max_tag_id on the
// configured base URL (never next_url), until a page says nothing older remains or s.maxPages pages were read.
func (r *pollRun) walk(s walkSpec) (walked, error) {
	p := r.p
	w := walked{upper: s.max} // batch is made at the first media: most pages at scale are empty
	max := s.max
	for {
		page, err := r.page(query{min: s.min, max: max, count: p.cfg.PageSize})
		if err != nil {
			return w, err
		}
		w.pages++
		if w.pages > 1 {
			p.m.catchupPages.Inc()
		}
		pg := page.Pagination
		pageCursor := firstOf(pg.MinTagID, pg.NextMinID)
		seenAt := time.Now() // for tagstream_seen_to_publish_seconds: a duration, on the monotonic clock
		if w.head == "" {
			w.head = pageCursor // the first page, or the first non-empty one after empty pages
		}
		for i := range page.Media {
			m := &page.Media[i]
			if strings.TrimSpace(m.ID) == "" {
				// Without an id a media can be neither an event (its id derives from the media id) nor a member
				// of the recent set, where "" would switch off the boundary check of every later poll.
				w.noID++
				continue
			}
			if s.boundary != "" && m.ID == s.boundary {
				w.sawBoundary = true
			}
			if w.headID == "" {
				w.headID = m.ID
			}
			if w.batch[m.ID] {
				continue // a repeat across pages (an inclusive max_tag_id, or a shifted page)
			}
			if w.batch == nil {
				w.batch = make(map[string]bool, len(page.Media))
			}
			w.batch[m.ID] = true
			created, known := createdUnix(m.CreatedTime)
			if s.history && known {
				w.created = append(w.created, created)
			}
			if s.since != 0 && known && created < s.since {
				continue // created before the start instant
			}
			if s.keep && !s.known[m.ID] {
				if !p.cfg.AttachRaw {
					m.Raw = nil // Raw aliases the page's body: without it the body is freed while the walk goes on
				}
				w.items = append(w.items, m)
				w.cursors = append(w.cursors, pageCursor)
				w.seen = append(w.seen, seenAt)
			}
		}
		w.fetched += len(page.Media)
		if len(page.Media) > 0 {
			w.lastMin, w.lastCount = pageCursor, len(page.Media)
		}
		next := firstOf(pg.NextMaxTagID, pg.NextMaxID)
		if next == "" && pg.NextURL != "" {
			// More remains but the cursor fields are missing: read max_tag_id out of next_url (never request it;
			// it names a host and embeds a token). Treating the walk as complete here would move the cursor past
			// media never fetched.
			next = maxFromNextURL(pg.NextURL)
			if next == "" {
				return w, fmt.Errorf("poller: tag %q: page %d says more media remain but names no cursor to reach them",
					r.tag, w.pages)
			}
		}
		if next != "" {
			if len(page.Media) > 0 {
				w.oldest = next
			}
			if w.pages <= s.splitAt {
				w.split = next
			}
		}
		if w.pages == s.splitAt {
			w.splitItems = len(w.items)
		}
		if s.since != 0 && oldestBefore(page.Media, s.since) {
			// Everything below this page was created before the start instant too (late-tagged media aside).
			w.complete, w.reachedOld = true, true
			return w, nil
		}
		// An empty page that still says more remains (next_url) is walked past, not taken for the end: that
		// would skip the media below it for good.
		if pg.NextURL == "" || next == "" || next == max {
			w.complete = true
			return w, nil
		}
		if w.pages >= s.maxPages {
			return w, nil
		}
		max = next
	}
}

// maxFromNextURL returns the max_tag_id (or max_id) of a next_url, "" when it has none or does not parse. The
// URL embeds a token: it is never logged or put in an error.
func maxFromNextURL(next string) string {
	u, err := url.Parse(next)
	if err != nil {
		return ""
	}
	q := u.Query()
	return firstOf(q.Get("max_tag_id"), q.Get("max_id"))
}

// createdUnix reads a media's created_time: Unix seconds as the API sent them (or an RFC 3339 time, as in
// 2010-2011). ok is false when it cannot be read.
func createdUnix(v string) (sec int64, ok bool) {
	v = strings.TrimSpace(v)
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return n, true
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
		return int64(math.Floor(f)), true
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t.Unix(), true
	}
	return 0, false
}

// oldestBefore reports whether the last media of a page whose created_time can be read was created before since.
func oldestBefore(media []schema.Media, since int64) bool {
	for i := len(media) - 1; i >= 0; i-- {
		if c, ok := createdUnix(media[i].CreatedTime); ok {
			return c < since
		}
	}
	return false
}

func firstOf(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// firstPoll starts a tag that has no checkpoint: from the start instant (StartNow, StartSince) or with a
// backfill.
func (r *pollRun) firstPoll() (observation, error) {
	p := r.p
	if p.cfg.Start != StartBackfill {
		return r.sinceStep(checkpoint.State{Since: p.startOf(r.tag)}, "", true)
	}
	n := p.cfg.BackfillPages
	keep := n <= p.cfg.CatchUpPages
	w, err := r.walk(walkSpec{maxPages: n, splitAt: n, keep: keep, history: true})
	if err != nil {
		return observation{}, err
	}
	if !keep && w.complete && w.pages <= p.cfg.CatchUpPages {
		// The whole feed turned out to fit in one publishing poll: walk it again keeping the media and publish it
		// now. Starting from an empty cursor instead would leave nothing to detect a retention cut against
		// until the first publish (see Gaps).
		if w, err = r.walk(walkSpec{maxPages: p.cfg.CatchUpPages, splitAt: p.cfg.CatchUpPages, keep: true}); err != nil {
			return observation{}, err
		}
		if !w.complete {
			// It grew beyond one poll's worth meanwhile: everything it holds is still the backfill, so start
			// from the bottom (the empty cursor) and let catch-up work it off.
			return observation{backlog: true, write: &checkpoint.State{}}, nil
		}
		keep = true
	}
	if keep {
		return r.publish(checkpoint.State{Cursor: w.head}, w, nil, r.firstObservation(w, time.Time{}))
	}
	// A deep backfill: remember where it starts and let the catch-up machinery work it off oldest first.
	//
	// The cursor must sit just below the backfill, not on its oldest media: w.oldest is the cursor OF the oldest
	// media of page n, and an exclusive min_tag_id would never return that media again (the backfill lost one
	// media). So ask for the one media just older than page n and start at its cursor, with its id in Recent: an
	// inclusive upstream returns it again and the id removes it, exactly like StartNow's head. When nothing
	// older is served any more, the empty cursor means "everything still served is new".
	st := checkpoint.State{}
	if !w.complete {
		below, err := r.page(query{max: w.oldest, count: 1})
		if err != nil {
			return observation{}, err
		}
		if len(below.Media) > 0 {
			st.Cursor = firstOf(below.Pagination.MinTagID, below.Pagination.NextMinID)
			st.Recent = []string{below.Media[0].ID}
		}
	}
	o := r.firstObservation(w, time.Time{})
	o.head, o.backlog, o.write = false, true, &st
	return o, nil
}

// sinceStep publishes the media created at or after st.Since (less StartSkew) between max ("" = the head) and
// the bottom of the feed, for a tag that has no cursor yet: the first poll (max "") and, when the new media
// span more than CatchUpPages pages, the catch-up of the oldest segment. It walks down until a page ends with
// media created before the bound, or the feed ends. A walk that needs more than CatchUpPages+1 pages publishes
// nothing: its lower end becomes an older segment, and st.Since stays so that the catch-up keeps the bound.
// A walk that completes publishes its media and sets the cursor to the newest media it returned (its id joins
// State.Recent even when that media was created before the bound, so that an inclusive upstream's repeat of it
// is removed); the segments newer than it are then caught up by cursor.
//
// With StartSince, a walk that reaches the end of the feed before media as old as the bound publishes a gap
// marker first: the API may no longer serve media posted since the start time, or the tag has none older; it
// cannot tell which.
func (r *pollRun) sinceStep(st checkpoint.State, max string, first bool) (observation, error) {
	p := r.p
	bound := st.Since.Add(-StartSkew).Unix()
	w, err := r.walk(walkSpec{max: max, maxPages: p.cfg.CatchUpPages + 1, splitAt: p.cfg.CatchUpPages, keep: true,
		since: bound, history: first})
	if err != nil {
		return observation{}, err
	}
	o := observation{head: max == "", backlog: max != "", cursor: st.Cursor}
	if first {
		o = r.firstObservation(w, st.Since)
	}
	if !w.complete {
		st.Segments = append(slices.Clone(st.Segments), w.split)
		o.backlog, o.truncated, o.write, o.located = true, true, &st, w.splitItems
		return o, nil
	}
	if max != "" {
		st.Segments = slices.Clone(st.Segments[:len(st.Segments)-1])
	}
	var gap *schema.Event
	if p.cfg.Start == StartSince && !w.reachedOld && w.fetched > 0 {
		gap = schema.NewGap(r.tag, p.cfg.Source, schema.Gap{
			ToCursor: firstOf(w.oldest, w.lastMin), Missing: -1, DetectedAt: p.cfg.Clock(),
			Reason: "the API serves no media of this tag as old as the start time " +
				st.Since.UTC().Format(time.RFC3339) + ": older ones posted since then may no longer be served (or there are none)",
		})
		p.log.Info("start time: the API serves nothing as old; a gap marker says so", "tag", r.tag, "start", st.Since)
	}
	if w.head != "" {
		st.Cursor, st.Since = w.head, time.Time{}
	}
	if len(st.Segments) == 0 {
		st.Since = time.Time{}
	}
	o, err = r.publish(st, w, gap, o)
	if err != nil {
		return o, err
	}
	if w.headID != "" && lastOf(o.write.Recent) != w.headID {
		// The media at the cursor was created before the bound (or is a late-tagged one): remember it anyway.
		o.write.Recent = p.recent(o.write.Recent, []*schema.Media{{ID: w.headID}})
	}
	return o, nil
}

// firstObservation is the scheduler's observation of a tag's first poll, with a first estimate of its posting
// rate from the created_time of the media the walk returned (a page of media carries its own history): the media
// seen over the span from the oldest of them to now, or, when the walk reached the end of the feed, over the
// span since the start instant if that is older (every media since then was seen). A media older than the one
// below it in the feed was tagged late and is left out. created_time has a resolution of one second: the
// oldest media is taken to be half a second newer than it says, and a span is at least half a second.
func (r *pollRun) firstObservation(w walked, since time.Time) observation {
	o := observation{head: true, first: true}
	now := r.p.cfg.Clock()
	var n int
	var oldest int64
	for i, c := range w.created {
		if i+1 < len(w.created) && c < w.created[i+1] {
			continue // tagged late: its created_time says nothing about the rate
		}
		n++
		oldest = c
	}
	from := time.Unix(oldest, int64(time.Second/2))
	feedEnd := w.complete && !w.reachedOld
	var cnt float64
	var start time.Time
	switch {
	case feedEnd && !since.IsZero() && (n == 0 || since.Before(from)):
		cnt, start = float64(n), since
	case n > 1:
		cnt, start = float64(n-1), from
	default:
		return o // nothing to go by: the tag starts from the mean rate of all tags
	}
	o.hist, o.histMedia, o.histSeconds = true, cnt, max(0.5, now.Sub(start).Seconds())
	return o
}

// pollHead walks from the head down to the committed cursor. A backlog deeper than CatchUpPages is not published
// now: its lower end becomes the first catch-up segment.
func (r *pollRun) pollHead(st checkpoint.State) (observation, error) {
	p := r.p
	w, err := r.walk(walkSpec{min: st.Cursor, maxPages: p.cfg.CatchUpPages + 1, splitAt: p.cfg.CatchUpPages,
		keep: true, known: recentSet(st.Recent), boundary: lastOf(st.Recent)})
	if err != nil {
		return observation{}, err
	}
	if w.sawBoundary && st.Cursor != "" {
		p.inclusive.Store(true)
	}
	o := observation{head: true, found: len(w.items), cursor: st.Cursor}
	if !w.complete {
		st.Segments = append(st.Segments[:0:0], w.split)
		p.log.Debug("backlog deeper than CatchUpPages: catching up", "tag", r.tag, "pages", w.pages)
		o.truncated, o.backlog, o.write, o.located = true, true, &st, w.splitItems
		return o, nil
	}
	probe := st.Cursor != "" && !w.sawBoundary &&
		(p.inclusive.Load() || w.pages > 1 || w.fetched >= p.cfg.PageSize)
	return r.finish(st, w, probe, o)
}

// catchUp works on the oldest backlog segment: the media between the committed cursor and the segment's upper
// cursor. When that walk does not reach the cursor either, its lower end becomes a new, older segment.
func (r *pollRun) catchUp(st checkpoint.State) (observation, error) {
	p := r.p
	seg := st.Segments[len(st.Segments)-1]
	if st.Cursor == "" && !st.Since.IsZero() {
		return r.sinceStep(st, seg, false)
	}
	w, err := r.walk(walkSpec{min: st.Cursor, max: seg, maxPages: p.cfg.CatchUpPages + 1,
		splitAt: p.cfg.CatchUpPages, keep: true, known: recentSet(st.Recent), boundary: lastOf(st.Recent)})
	if err != nil {
		return observation{}, err
	}
	if w.sawBoundary && st.Cursor != "" {
		p.inclusive.Store(true)
	}
	o := observation{backlog: true, cursor: st.Cursor}
	if !w.complete {
		st.Segments = append(slices.Clone(st.Segments), w.split)
		o.write, o.located = &st, w.splitItems
		return o, nil
	}
	st.Segments = slices.Clone(st.Segments[:len(st.Segments)-1])
	if w.oldest == "" && len(w.items) == 0 {
		w.oldest = seg // for the gap marker's ToCursor
	}
	return r.finish(st, w, st.Cursor != "" && !w.sawBoundary, o)
}

// finish completes a walk that reached the committed cursor: it checks for a gap when asked to, and publishes the
// new media oldest first (after a gap marker, if any).
func (r *pollRun) finish(st checkpoint.State, w walked, probe bool, o observation) (observation, error) {
	p := r.p
	var gap *schema.Event
	if probe {
		missing, err := r.probeGap(st, w)
		if err != nil {
			return observation{}, err
		}
		if missing {
			gap = schema.NewGap(r.tag, p.cfg.Source, schema.Gap{
				FromCursor: st.Cursor, ToCursor: firstOf(w.oldest, w.head), Missing: -1, Reason: gapReason, DetectedAt: p.cfg.Clock(),
			})
			p.log.Warn("gap: the API no longer serves part of the backlog", "tag", r.tag)
			if len(w.items) == 0 {
				// Nothing older than the walk's lower end is served any more: everything the API still has is
				// new, which is what an empty cursor means.
				st.Cursor = ""
			}
		}
	}
	if len(w.items) > 0 && w.head != "" {
		st.Cursor = w.head
	} else if len(w.items) == 0 && gap == nil {
		if w.head != "" && o.head && w.head != st.Cursor {
			st.Cursor = w.head // only known media up to the head: skip them next time
		} else if !o.backlog {
			o.cursor = st.Cursor
			return o, nil // nothing new, nothing to write
		}
	}
	return r.publish(st, w, gap, o)
}

// probeGap reports whether the API may have dropped media between the committed cursor and the lowest media of a
// complete walk w down to it (retention): it asks for the media just below the walk's last page (or below the
// walk's upper bound when the walk found nothing). Any media there that the walk did not return is the media at
// the cursor or an older one, so the feed still reaches the cursor and nothing in between was cut. No such media
// means the media at the cursor is gone too: a gap. (When exactly the media at the cursor was dropped and nothing
// newer, or the user deleted it and nothing older exists, this reports a gap that lost nothing; the marker says
// Missing -1, unknown.)
//
// An earlier version asked for the media just older than the cursor and trusted the answer only when State.Recent
// proved that one had existed (two ids or more): with RecentIDs 1, or a tag that had published a single media,
// the probe never ran and a retention cut lost media silently.
func (r *pollRun) probeGap(st checkpoint.State, w walked) (bool, error) {
	if st.Cursor == "" {
		return false, nil
	}
	below, count := w.lastMin, min(w.lastCount+1, 33)
	if below == "" {
		// The walk found nothing between the cursor and its upper bound. A head walk that found nothing lost
		// nothing; a catch-up walk asks for the media just below its segment.
		if w.upper == "" {
			return false, nil
		}
		below, count = w.upper, 1
	}
	page, err := r.page(query{max: below, count: count})
	if err != nil {
		return false, err
	}
	for i := range page.Media {
		if !w.batch[page.Media[i].ID] {
			return false, nil
		}
	}
	return true, nil
}

// publish hands the walk's media (and a gap marker) to the publisher oldest first and, once the publisher
// acknowledged them all, returns st with the ids added to the recent set as the state to write.
func (r *pollRun) publish(st checkpoint.State, w walked, gap *schema.Event, o observation) (observation, error) {
	p := r.p
	fetched := p.cfg.Clock()
	events := make([]*schema.Event, 0, len(w.items)+1)
	seen := make([]time.Time, 0, len(w.items)+1) // parallel to events: when the media's page was received
	if gap != nil {
		events = append(events, gap)
		seen = append(seen, time.Time{})
	}
	var newest time.Time
	skipped := 0
	for i := len(w.items) - 1; i >= 0; i-- {
		ev, err := schema.Normalize(w.items[i], schema.Sighting{
			Tag: r.tag, Cursor: w.cursors[i], Source: p.cfg.Source, FetchedAt: fetched, AttachRaw: p.cfg.AttachRaw,
		})
		if err != nil {
			skipped++
			continue
		}
		if ev.Time.After(newest) {
			newest = ev.Time
		}
		events = append(events, ev)
		seen = append(seen, w.seen[i])
	}
	if skipped += w.noID; skipped > 0 {
		p.log.Warn("media without an id skipped: the API sent media that cannot be identified", "tag", r.tag, "count", skipped)
	}
	if len(events) > 0 {
		start := time.Now()
		err := p.pub.Publish(r.commitCtx, events)
		p.m.publishSeconds.Observe(time.Since(start).Seconds())
		if err != nil {
			return observation{}, fmt.Errorf("poller: tag %q: publish %d events: %w", r.tag, len(events), err)
		}
		ack, ackWall := time.Now(), p.cfg.Clock()
		for i, e := range events {
			if e.Gap != nil {
				p.m.gaps.Inc()
				o.gaps++
				continue
			}
			o.published++
			p.m.published.Inc()
			if !e.Time.IsZero() {
				p.m.postToPublish.Observe(max(0, ackWall.Sub(e.Time).Seconds()))
			}
			if !seen[i].IsZero() {
				p.m.seenToPublish.Observe(max(0, ack.Sub(seen[i]).Seconds()))
			}
		}
	}
	st.Recent = p.recent(st.Recent, w.items)
	o.newest, o.write = newest, &st
	o.backlog = len(st.Segments) > 0 || (o.backlog && !o.head)
	return o, nil
}

// recent returns old followed by the ids of items (given newest first) oldest first, keeping the newest RecentIDs.
// The last id is always the media at the committed cursor.
func (p *Poller) recent(old []string, items []*schema.Media) []string {
	out := make([]string, 0, min(p.cfg.RecentIDs, len(old)+len(items)))
	total := len(old) + len(items)
	skip := max(0, total-p.cfg.RecentIDs)
	for i, id := range old {
		if i >= skip {
			out = append(out, id)
		}
	}
	for i := len(items) - 1; i >= 0; i-- {
		if len(old)+(len(items)-1-i) >= skip {
			out = append(out, items[i].ID)
		}
	}
	return out
}

// recentSet is the set of ids; nil (an empty set that allocates nothing) when there are none.
func recentSet(ids []string) map[string]bool {
	if len(ids) == 0 {
		return nil
	}
	m := make(map[string]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	return m
}

func lastOf(ids []string) string {
	if len(ids) == 0 {
		return ""
	}
	return ids[len(ids)-1]
}
