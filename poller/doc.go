// Package poller finds every new media under many Instagram v1 tags, once, as soon as a pool of rate-limited tokens
// allows, and hands each to a Publisher as a CloudEvents event without ever moving a tag's cursor past media the
// publisher has not acknowledged.
//
// # Design
//
// A dispatcher takes the tag that is due first from the scheduler's heap and hands it to one of Config.Workers
// goroutines (not one goroutine per tag). The worker runs one poll: it reads the tag's checkpoint.State, walks the
// tag's feed through the API client, publishes what is new and writes the new state. The scheduler then decides
// when the tag is due again from what the poll found. Everything a poll needs beyond that (recent ids, catch-up
// segments) lives in the checkpoint store, so the poller keeps only a few scheduling numbers per tag in memory.
//
// The API client is the one HTTP boundary. Requests are built on Config.BaseURL (see CheckBaseURL: https, except
// a loopback host or AllowInsecureHTTP; TLS 1.2 minimum; an extra CA from CAFile) as
// {base}/tags/{tag}/media/recent?count=33&min_tag_id=C[&max_tag_id=M]; a server's next_url is never followed (it
// embeds a token and a host) and no redirect is followed either, to another host or the same one (the query with
// the credential would be dropped or exposed). Answers are decoded with schema.DecodePage and classified: rate
// limited (429, or 503 with the API's envelope: the seed's answer), token invalid (OAuthAccessTokenException, a
// missing scope, an unknown client id), permanent (other 4xx, a redirect: not retried) and transient (5xx, an HTML
// 503, network errors, resets, truncated bodies, timeouts: retried with backoff within the same poll, up to
// MaxAttempts). Tokens never appear in errors, logs, metrics or statuses: a *url.Error's URL is rebuilt without
// its query, a server's message is redacted before it is cut to its display length (so no fragment of an echoed
// token survives the cut), and tokens are named by index and Fingerprint. Probe sends one request through the very
// same code and says what failed in a *ProbeError. Requests go over HTTP/1.1 keep-alive connections, each request
// written and its answer read in the goroutine of its poll (h1Transport: net/http's wire format without
// http.Transport's two goroutines per connection, the request line and header rendered once per base URL, and of
// each answer's header only the fields the poller reads kept; readResponse reads answers as http.ReadResponse does,
// which its tests check answer by answer); with a proxy named in the environment (HTTPS_PROXY, HTTP_PROXY,
// NO_PROXY) they go through http.Transport.
//
// The token pool keeps a token bucket per token (burst 3, refilled at the token's limit per RateWindow:
// RequestsPerHour, or X-Ratelimit-Limit once the API sent it). A rate-limit answer parks the token for a
// full-jitter delay drawn from its own exponential backoff (cenkalti/backoff/v4, MaxElapsedTime 0), or for
// Retry-After (seconds or an HTTP date) when longer; a rejected token is retired (logged once, counted) and the
// rest go on. Tokens sit in a heap by the time they are next ready, so taking one costs O(log tokens); when none
// is ready a request waits on a timer, never spins. The pool's sustainable rate (the sum of the live tokens'
// paces: limits less reserves, per window) is the scheduler's budget.
//
// # Pacing by what the API says is left
//
// Each answer's X-Ratelimit-Remaining (per hour, as the real API sent it; per RateWindow in general) caps the
// token's bucket: after an answer that says R requests are left, the token hands out at most R - reserve before it
// refills, where the reserve is 1% of the limit and at least two bursts (6 requests; at most half the limit:
// reserveOf). There is no other margin. The bucket refills at the limit less the reserve, spread over the window
// (paceOf), so a token's window holds about its limit less the reserve: 99% of a 5,000 requests/hour budget is
// spent, Remaining comes down to the reserve without reaching 0, and no token stops at the end of a window (refilled
// at the whole limit, every token of a cold start reached the reserve 36 s before its first hour ended, all at once,
// and the sliding window repeated that stop every hour). The reserve is the safety margin: it covers the requests in
// flight whose answers have not come yet (at most a burst, or the rate times the round trip), the burst a fresh
// bucket starts with, and clock and latency differences between the API and the poller, each worth a few requests at
// these rates. It also makes the pool yield to whatever else spends the same token: another client, or this process
// before a restart, whose requests are still in the API's window. A token whose Remaining is at or below the reserve
// waits until its bucket refilled past the difference (one refill interval per request below it), so its rate
// follows what the window gives back. A rate-limit answer that comes anyway parks the token as above.
// tagstream_budget_use_ratio shows the share of the allowed requests spent over the last minute,
// tagstream_token_budget_limit each token's limit.
//
// Time comes from two clocks. Config.Clock, the wall clock, stamps what people and other systems read: checkpoint
// times, events, statuses. Everything that waits (due times, token buckets and parking, backoffs) runs on the
// monotonic clock, read as the time since the poller was built, so a step of the wall clock (NTP) neither
// freezes nor rushes polling.
//
// # Health and readiness
//
// After a few transient failures in a row with no success the API counts as down and the whole client backs off:
// one probe request per growing, jittered delay (at most 8 s apart) until one succeeds. A failure episode is
// logged at WARN once when it starts (the URL without credentials and the cause) and at INFO once when it ends,
// never per request. Ready reports what keeps the poller from making progress: not running, every token retired,
// the API down (since when, and the last cause) or a checkpoint store that fails writes.
//
// # Order of work for one tag
//
// Fetch every new page, normalize, publish the batch (oldest first), wait until the publisher acknowledged every
// event, and only then write the tag's checkpoint.State. A crash or a failed publish in between leaves the old
// state, so the next poll fetches and publishes the same media again (event ids are deterministic, so brokers and
// consumers drop the repeat). When the write itself fails after an acknowledged publish, the new state stays in
// memory and the tag's next polls write it alone, with the per-tag backoff: the batch is neither fetched nor
// published again (a crash meanwhile repeats it once, as above). Failed writes are counted
// (tagstream_checkpoint_write_failures_total) and shown (tagstream_checkpoint_store_failing, Ready).
//
// The media of one poll are held in memory until the publisher acknowledged them: at most CatchUpPages+1 pages,
// bounded by MaxCatchUpPages (about 175 KiB per page of 33 media).
//
// # Cursor and diff
//
// State.Cursor is the cursor of the newest media published (the min_tag_id of the first page of the walk that
// published it). A poll asks for media newer than it and walks older pages with max_tag_id set to the previous
// page's next_max_tag_id until a page has no next_url. Cursors are opaque strings, stored and sent back verbatim,
// never compared. An upstream whose min_tag_id is inclusive returns the media at the cursor again; that media, and
// every repeat across pages or polls, is removed by id: State.Recent keeps the ids of the last RecentIDs media
// published (the last one is the media at the cursor), and one walk removes repeats among its own pages. The
// created_time of a media is never used as a cursor (late-tagged media carry an old one at the head of the feed).
//
// # Catch-up
//
// One walk reads at most L+1 pages, L = CatchUpPages (the extra page is slack for an inclusive boundary media and
// for pages that shift). When the new media span more, the poll publishes nothing (newer media must not go out
// before older ones of the same tag) and records in State.Segments the cursor of the oldest media of page L: the
// lower, not yet located part of the backlog lies between State.Cursor and that cursor. The following polls work
// on the oldest segment (the last element): they walk from the segment's cursor down toward State.Cursor; a walk
// that again needs more than L+1 pages appends the lower end of its page L as a new, older segment; a walk that
// reaches State.Cursor publishes its media oldest first, moves State.Cursor to the newest of them and drops the
// segment. Because every segment spans exactly L pages when it is found, the walk that publishes it always fits
// in L+1 pages, so the work always progresses. When the segments are used up the next poll walks from the head
// again. Every part of a deep backlog is therefore read about twice (once to locate it, once to publish it),
// memory stays bounded by L+1 pages, and a crash at any point resumes from the stored segments. While segments
// remain the tag is polled at the catch-up pace (see Scheduling). A catch-up is logged at INFO when it starts
// (tag, pages read, media pending) and when its last media are published (tag, pages, media, seconds), and
// TagStatus.CatchUp shows it meanwhile.
//
// # Gaps
//
// An upstream with limited retention (the simulator's Config.Retention) stops serving the oldest media: a walk
// then ends before it reaches State.Cursor, and nothing in the answer says so. After a walk that could have
// overrun retention (more than one page, a full page, any catch-up walk, or an inclusive upstream whose boundary
// media did not come back) the poller asks for the media just below the walk's last page. Any media there that
// the walk did not return is the media at the cursor or an older one: the feed still reaches the cursor. If there
// is none, the media at the cursor was dropped too and the media between it and the walk may be lost: the poller
// publishes a gap marker (schema.NewGap, Missing -1 = unknown) before the walk's media and counts
// tagstream_gaps_total. Nothing is lost silently. (Limits: with an empty cursor — a tag that started on an empty
// feed and has published nothing, or right after a gap that left nothing — there is nothing to compare with, so a
// cut goes unseen; an exclusive upstream whose retention is smaller than a page can cut the cursor while the walk
// stays under a full page, which goes unseen; a cut exactly at the cursor, or a user's deletion of the oldest
// media of the tag, reports a gap that lost nothing.)
//
// # First start
//
// A tag without a checkpoint starts at Config.StartTime (StartNow: by default the instant New was called; the
// command passes the instant the process started; StartSince: an earlier instant). Under StartNow a tag that
// Assign adds with an instant in Assignment.Starts starts there instead: group mode passes the instant the tag
// entered the group's set, so that a tag that moves to another instance before its first commit (its first owner
// stopped, crashed or paused) starts where it would have, not at the new owner's start. Its first poll walks down
// from the head and publishes, oldest first, the media whose created_time is at or after the start instant less
// StartSkew (2 s: created_time has a resolution of one second, and the API's clock may differ a little), until
// a page ends with media created before that or the feed ends. When that takes more than CatchUpPages pages the
// catch-up machinery works it off (see Catch-up); the start instant is kept in State.Since until a cursor
// exists, so a restart meanwhile resumes it. The newest media returned becomes the cursor (its id joins
// State.Recent even when it is older than the start, for an inclusive upstream). An empty feed stores an empty
// cursor: everything that appears is new. A media tagged late (an old created_time at the head of the feed)
// between the start and the tag's first poll is not published; from the first poll on every media that appears
// at the head is, whatever its created_time. With StartSince, a walk that reaches the end of the feed before
// media as old as the start publishes a gap marker first: the API may no longer serve media posted since then
// (or the tag has none older; nothing in an answer tells which).
//
// With Config.StartLog (the bolt state file, which only this process writes), Run records the start instant of
// every tag once, in one write, before the first poll. A first poll that then finds nothing new (no media since
// the start, no gap, no catch-up) keeps its state (the cursor, and the id of the media at it) in memory instead of
// writing it; the tag writes its first state when it first publishes. A restart that finds no state of such a tag
// starts it from the recorded instant (or its own, if earlier), so nothing posted since is missed; only a media
// tagged late between that first poll and the restart is judged by its created_time again. Tags that Run finds
// without a state are not read by the start-up load nor by their first poll. At a cold start of 100,000 quiet
// tags that is 100,000 writes and 200,000 reads fewer. Tags added while running write their first state as
// before.
//
// StartBackfill publishes the newest BackfillPages pages first: in one poll when BackfillPages <= CatchUpPages,
// otherwise by storing as the cursor the cursor of the media just below the backfill (with its id in
// State.Recent, for an inclusive upstream) and letting catch-up work it off.
//
// # Odd pagination
//
// A page whose next_url says more remains but that lacks next_max_tag_id (and next_max_id) is walked on with the
// max_tag_id read out of next_url (the URL itself is never requested); when it names none the poll fails rather
// than skip the rest. An empty page that still has a next_url is walked past, not taken for the end.
//
// # Scheduling
//
// Each tag's posting rate r is estimated from what its polls find at the head: decayed sums of media found and
// seconds elapsed, with a time constant covering about 20 media (10 minutes for a busy tag, so the estimate follows
// a change within minutes; up to 6 hours for a quiet one), restarted by a burst, and taken as a lower bound when a
// walk was cut at CatchUpPages. The estimate is the posterior mean of a Gamma prior at the mean rate of all tags
// worth two media, or what the tag's own count says when that is more: with little history a tag is taken to
// post at about the mean rate, a few seconds of evidence move it, and where nearly every tag is silent the silent
// ones stay alike while a busy one is taken at its word. A tag's first poll already gives an estimate: the page it read carries its own history (the
// spread of the media's created_time; late-tagged media left out). The estimate is written with every checkpoint
// (State.RateMedia, State.RateSeconds) and read back when Run starts, with the saved cursors: a restart resumes
// with the estimates, schedules each tag's first poll within one planned interval (busy tags first), and counts
// the media its first poll finds over the time since the state was written.
//
// The budget is the pool's sustainable request rate. The scheduler plans 99% of it (90% while some tags were never
// polled: their first polls, spread evenly over one round, come at the planned pace), each tag's polls weighed by
// what they cost (its own decayed average of requests per poll: pages, gap probes, retries); the dispatcher
// spends the rest by polling a tag that is due soon early whenever no tag is due and a token's bucket is full
// (tagstream_early_polls_total). An early poll takes a token only if one is ready at once and no request waits
// for one (otherwise it is put back, due as before), and requests waiting for a token are served in the order
// they came: so the budget is spent in full, while requests never queue at the pool because of the early polls.
// (A queue at the pool delays every poll, which then finds more media and costs more; with first polls packed into
// the start and the plan at 97% of the budget, the first round of 100,000 tags left a queue that took minutes to
// drain. After the first round, a plan of 97% left 3-4% of the budget unspent at scale: some request nearly
// always waited, so the early polls could not take it.)
//
// The first round goes faster than the budget where that is free. A token that starts cold has an empty window at
// the API, so Run gives each token a start credit of 1% of its limit (50 requests of 5,000 an hour) that it may
// send beyond its bucket while some tags were never polled, and spreads the first polls over (tags - credit) /
// budget, at most twice as fast as the budget: 1,000 tags on 20 tokens of 3,600 an hour take 28 s instead of
// 55 s, and a media posted before its tag's first poll waits that much less. The credit a token spent is taken
// off its refill, evenly, from the end of the first round until an hour after the start, so that its first
// window at the API holds no more than without the burst (the X-Ratelimit-Remaining cap applies throughout): the
// hour's budget is the same, spent earlier, and until that hour is over the pool spends up to 1% less. A token
// whose first answer shows requests the pool did not send (a restart within the hour, another client) gets no
// credit, and neither does a token shared with a group. The second polls are spread over their interval by
// phase (the wider the faster the first round went), so that the quiet tags polled within seconds of one
// another do not come due together a round later.
//
// Poll frequencies follow the square-root rule, which minimises the mean time from post to hand-off:
// f = clamp(λ·sqrt(r), lo, 1/MinInterval), λ such that Σ cost·f is the planned budget;
// lo = max(1/MaxInterval, r_low/(0.7·PageSize)) keeps quiet tags polled (the floor) and busy tags within one page
// per poll, where r_low is a cautious estimate (the posterior's 10th percentile), so that a tag that merely
// looks busy after a few seconds does not claim the others' polls. If the floors alone need more than the
// budget, every tag is polled at its floor times budget/Σlo (slowed by the same factor): that is an overload.
// tagstream_schedule_overload shows the factor and one log line says so when it starts, another when the demand
// is back at or below 0.95 of the budget (the band keeps it from flapping). A token at 5,000 requests/hour keeps
// about 400 tags at the default MaxInterval of 5 minutes (5,000 × 5/60, less the margins); more tags need a
// larger MaxInterval, or the overload is reported.
//
// Tags with catch-up work get their fair part of the budget or 90% of what the other tags do not need for their
// floors, whichever is more, and their walks follow one another at that pace (not MinInterval apart: a walk
// goes on where the last one stopped); the square-root rule shares the rest. A
// backlog's media are all waiting already: quiet tags give up most of their polls above the floor while it
// lasts, busy tags keep one page per poll. BenchmarkCatchUp measures a catch-up against the least the budget
// allows.
//
// Next-poll times sit in a heap; a tag's deterministic jitter (a hash of its name) spreads the first polls evenly
// over one round of all tags at the planned budget and offsets equal intervals; due times are on the monotonic
// clock. When a tag's planned interval has become clearly shorter than the one its due time was set with (λ
// rose), the due time is brought in. A dispatch costs O(log tags); λ is recomputed
// about once a second in O(tags) per bisection step.
//
// # Shutdown and failures
//
// Run returns when its context ends: fetching stops at once, publishes in flight get Config.ShutdownTimeout to
// finish, and cursors only move after an acknowledgement. A failed poll (API down, publisher error, checkpoint
// error) leaves the cursor where it was and is retried with a per-tag backoff; when the API comes back nothing is
// skipped because the cursor never moved. Run returns an error wrapping ErrAllTokensRetired when the API rejected
// every token.
//
// # Changing tags and budgets while running (group mode)
//
// Assign makes a running (or not yet running) poller poll exactly a set of tags with a fraction of each token's
// budget: the primitives a group coordinator drives (package group; the adapter is in internal/pipeline). Removed
// tags stop, and Assign returns only once no poll of them is in flight, so that no cursor of theirs is written
// afterwards; added tags are read afresh from the store (with Assignment.Claim, a stored cursor is written back
// unchanged, which fences out a previous owner still holding the old revision of a shared store) and polled soon.
// A token's fraction paces it at that fraction of its limit; 0 leaves it unused. Config.Gate (the group's lease)
// is checked before every poll, after its checkpoint read and around taking a token: while it is closed nothing is
// sent. A checkpoint write refused with checkpoint.ErrConflict means another instance owns the tag: the poller
// drops it without retrying, calls Config.OnConflict, and leaves it out of later assignments until one without
// it; tagstream_checkpoint_conflicts_total counts such refusals (write="poll"), and those of Assign's claim
// writes (write="claim"). Rates returns the estimates a group shares, so that every member divides the budget over all the group's
// tags. A single instance uses Assign to apply an edited tag list (SIGHUP).
package poller
