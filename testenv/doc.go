// Package testenv is a simulator of the (defunct) Instagram v1 API as a tag poller met it, built from the seed
// document, the recorded responses in shared/fixtures/instagram-v1 and the notes on the API. It serves real HTTP
// (HTTPS by default, with a CA made at start and written to ca.pem) and is fast enough that benchmarks of a client
// measure the client: every media is encoded to JSON once, when it is posted, and a page is assembled from those
// bytes.
//
// # Endpoints
//
//	GET  /v1/tags/{tag}/media/recent?count&min_tag_id&max_tag_id   (min_id / max_id are deprecated aliases)
//	GET  /v1/tags/{tag}                                             {"media_count","name"}
//	GET  /v1/tags/search?q=                                         known tags starting with q
//	GET  /v1/media/popular                                          the 20 media seen last over all tags
//	GET  /v1/media/{id}
//	GET, POST, DELETE /v1/media/{id}/likes                          POST with _method=PUT|DELETE is PUT|DELETE
//
// Every path may end in ".json" (/v1/tags/{tag}/media/recent.json, /v1/tags/{tag}.json), which the API accepted
// and python-instagram 1.3.2, the most used client of the time, appended to every request; the answer is the
// same as without it.
//
// Every answer is the envelope {"meta":{"code":...},"data":...}; with callback=name it is wrapped as JSONP,
// name(...); (the HTTP status stays that of the answer). The headers of the recorded answers are set
// (Cache-Control, Pragma, Expires, Vary, Content-Language) along with X-Ratelimit-Limit and X-Ratelimit-Remaining.
//
// # Tag media: semantics clients rely on
//
// A tag's feed is ordered by when a media was tagged, not by created_time: PostLate puts a media with an old
// created_time at the head. GET /v1/tags/{tag}/media/recent returns the newest count media (default 20; a count
// above 33 gives 33; 0 or a negative count gives the default; a non-integer is an error) that are strictly newer
// than min_tag_id (newer or equal with Config.InclusiveMin) and strictly older than max_tag_id, newest first.
//
// The pagination block has, in the recorded order: next_max_tag_id (the cursor of the oldest item on the page),
// deprecation_warning, next_max_id (the same as next_max_tag_id), next_min_id and min_tag_id (the cursor of the
// newest item on the page) and next_url. next_max_tag_id, next_max_id and next_url are present only when older
// items within the bounds remain; next_url is the base URL with the caller's own credential parameter (like the
// real API, it embeds the caller's access_token), the caller's count and min_tag_id if given, and max_tag_id. On an
// empty page only deprecation_warning is present. An unknown (well-formed) tag gives an empty page.
//
// Cursors are opaque to clients. CursorNumeric cursors are 16-19 digit decimals unrelated to media ids that start
// just below 10^16, so a feed crosses from 16 to 17 digits in its first hundred items; the simulator compares
// client cursors as integers of any size (never through float64, never as strings of different lengths).
// CursorOpaque cursors look like "AQ..." and carry a check: a forged or mistyped one is malformed. Any cursor with
// the right syntax is accepted even if no media has it: it is a point in the feed. Truth.Cursor is the cursor a
// media has in its tag's feed, i.e. the min_tag_id of a page whose newest item it is.
//
// Config.Retention keeps only the newest N media of each tag servable: a cursor older than that gives what is
// left, without an error, which is how a client that fell behind meets a gap. Delete removes a media: pages
// around it shift by one, as recorded in 2015.
//
// # Errors
//
// Error answers have the API's meta envelope and an HTTP status equal to meta.code:
//
//	400 OAuthParameterException    no access_token and no client_id, or an unknown client_id
//	400 OAuthAccessTokenException  unknown or revoked access_token
//	400 APINotFoundError           unknown path (not 404), unknown media id, method not supported
//	400 APIInvalidParametersError  non-integer count, malformed cursor, bad callback, bad _method, bad query string
//	503 OAuthRateLimitException    over the limit (Over503, the seed's answer)
//	429 OAuthRateLimitException    over the limit (Over429; Over429Flat gives the flat 2017 body without meta and
//	                               without X-Ratelimit headers)
//
// # Limits
//
// Each access token, and each client id used without a token, has its own sliding window of one simulated hour in
// which it may make Config.RequestsPerHour requests (default 5000), as the real API allowed per real hour.
// Config.TimeScale compresses the simulated hour and nothing else: the window lasts one real hour divided by
// TimeScale (Server.RateWindow; igsim -time-scale 60 makes it one real minute, 3600 one real second). The counts
// are not scaled, so a client reads the numbers the real API sent, in per-hour units:
//
//   - X-Ratelimit-Limit is Config.RequestsPerHour (5000) at every TimeScale.
//   - X-Ratelimit-Remaining is Config.RequestsPerHour minus the requests the credential made in the last
//     RateWindow, the answered one included: 4999 on the first request, 0 on the 5000th.
//   - The next request within the same RateWindow is over the limit: it gets the OverLimit answer with Remaining
//     0 (Over429Flat sends neither header, as recorded in 2017). A request is allowed again as soon as the oldest
//     counted one is RateWindow old; refused requests are not counted and do not extend the window.
//   - Every authenticated request counts, errors included. Requests with an unknown credential are not counted
//     and carry Remaining equal to the limit. Requests answered by an injected fault (Faults) are not counted
//     and carry no headers, except Slow and Truncated ones, which are answered (and counted) after the fault.
//
// So a compressed hour looks to a client exactly like a real one, except that it lasts RateWindow: a client that
// paces itself from the headers must be told that its budget refers to RateWindow, not to an hour (tagstream:
// poller.Config.RateWindow = Server.RateWindow(), which igsim prints at start). A client that assumes an hour
// spends only 1/TimeScale of its budget; one told a window shorter than RateWindow runs into the limit. Posting
// rates, slow answers, fault schedules and revocation times are real time, not scaled.
//
// # Workload
//
// Each tag has a Poisson posting rate (SetRate changes it), Initial media at creation, and can receive bursts
// (Post), late tagging (PostLate) and deletions (Delete). Media are image, video or carousel with every key of the
// recorded 2015-2017 media objects; captions mix scripts, emoji, combining marks, newlines, quotes, backslashes
// and markup; caption and location are sometimes null. Content, cursors and Poisson gaps are deterministic from
// Config.Seed (wall-clock times are not). GroundTruth returns, and Config.GroundTruth receives as NDJSON, every
// media posted with its cursor and the time it became visible, and a second line with deleted_at for a deletion.
//
// # Faults
//
// Config.Faults and SetFaults inject, per request by probability or by schedule: 503 with the envelope, 503 with
// an HTML body, 500, 429, slow answers, connection resets and truncated JSON (a complete HTTP answer whose body is
// cut in half). RevokeTokenAt revokes a token at a given time; Down resets every connection for a while. Faults do
// not apply to the admin endpoint and do not count against the rate limit.
//
// # Control
//
// The Go methods of Server are mirrored by an admin endpoint (AdminURL) taking JSON POSTs; see adminHandler's
// routes in admin.go. Access tokens never appear in logs, errors or Stats (credentials are named by index and a
// SHA-256 fingerprint).
package testenv
