// Package group lets several identical tagstream instances share one set of tags and one pool of tokens, so
// that no single process is a point of failure. The instances coordinate through JetStream key-value buckets on the
// broker's own replicated store (R3 on a three-node cluster) and the server's primitives only: create-if-absent,
// compare-and-set on revisions, a bucket TTL with expiry markers, and watches. Nothing here stands in for consensus:
// every decision that must be exclusive is a compare-and-set that the cluster's RAFT group orders.
//
// A Coordinator (JetStream is the implementation; see docs/group.md for operators) runs beside the poller and
// drives it through Poller.Apply with an Assignment: the tags this instance owns and the fraction of each token it
// may spend.
//
// # Buckets and keys
//
// Group G uses two buckets, created on first use (3 replicas, or 1 on a JetStream that is not clustered):
//
//	tagstream-group-G-members    TTL = the lease, limit markers kept 1 min, history 1
//	  <member name>              {"v":1,"inc":"<random>","join":<rev>,"started":<time>,"tokens":[{"fp":..,"rph":..,"window_s":..,"api_rph":..}],
//	                             "status_url":"<where its /status is served, if it says>"}
//
//	tagstream-group-G            history 1, no TTL
//	  tag.<tag>                  {"v":1,"added":<time>} or, removed, {"v":1,"added":..,"removed":<time>}
//	  own.<tag>                  {"v":1,"member":"<name>","inc":"<inc>","join":<rev>,"since":<time>}
//	  rate.<tag>                 {"v":1,"r":<media per second>,"at":<time>}
//	  tok.<token fingerprint>    {"v":1,"shares":{"<name>":{"inc":"<inc>","join":<rev>,"f":<fraction>}}}
//
// <tag> is the tag's unpadded base64url encoding (as checkpoint.KVKey), so any valid tag is a valid key. The
// cursors stay in the checkpoint store's own bucket (checkpoint.JetStreamKV); the rate estimates sit beside them
// in the group's bucket, one small key per tag, because every member reads all of them and the cursor values
// (with their recent-id lists) are far larger and written on every poll.
//
// # Membership
//
// A member joins by creating its key (create-if-absent) with a new random incarnation, and renews it every
// Config.Heartbeat (a quarter of the lease by default) by compare-and-set on the key's revision. The bucket's TTL
// is the lease: a key not renewed for a lease expires, and the expiry marker tells every watch. A member considers
// its lease valid until the send time of its last acknowledged renewal plus three quarters of the lease, by its
// monotonic clock: the server cannot expire the key before that, and the last quarter is a margin for the servers'
// clocks (a new stream leader judges the key's age by its own clock) and the expiry timer. A renewal that finds
// the key gone or replaced means this incarnation is dead: the member applies an empty assignment, forgets its
// claims and shares, and joins again as a new incarnation. A name held by a live key cannot be taken: a restarted
// instance waits until its killed predecessor's key expired.
//
// Whether a record names a dead incarnation is judged from the watch of the members bucket: the record carries the
// incarnation and the revision at which it joined; it is dead when the watch has seen that revision (or a later
// state of the bucket) and the member's key is gone or holds another incarnation. A member the watch has not seen
// yet is never judged dead, so a lagging watch delays takeovers but never causes a wrong one.
//
// # Ownership
//
// Tags are spread over the live members that hold a token by rendezvous (highest-random-weight) hashing of (tag,
// member name): every member computes the same owner from the same member list; a joining member takes about 1/n
// of the tags from the others and a leaving member's tags spread over the rest, nothing else moves. A name keeps
// its tags across restarts.
//
// The rendezvous owner takes a tag by writing own.<tag>: create-if-absent when there is none (or it was released),
// compare-and-set over the revision of a dead incarnation's record. When the rendezvous owner of a tag becomes
// another member (one joined), the current owner first applies an assignment without the tag, which returns only
// when its poller has finished or abandoned the tag's in-flight poll, and then deletes its record by
// compare-and-set; the new owner takes it from there. A graceful leave does the same for every tag at once and
// then deletes the member key, so the others take over immediately. A killed member's tags wait for its lease.
// A tag removed from the set is released the same way.
//
// A tag's start is a property of the group: Assignment.Added carries the instant the tag entered the set (its
// record's "added"), and the poller starts a tag that has no cursor yet there under start=now, whichever member
// polls it first and whenever that member started. A tag that moves before its first commit, or waits for an
// owner, loses nothing posted since it was added.
//
// # Fencing
//
// Ownership decides who polls; the cursor store decides whose commit counts. checkpoint.JetStreamKV writes a
// cursor only over the revision its store last read or wrote (checkpoint.ErrConflict otherwise). A new owner
// claims a tag by reading its cursor and writing it back unchanged (the claim write): from then on an earlier
// owner that still holds the old revision — paused past its lease, cut off, or not yet aware of the handoff — fails
// its next commit with ErrConflict and must drop the tag. Because every commit is a compare-and-set over the
// revision read, two writers can never interleave a cursor backwards, whatever the timing. Since the poller reads
// a tag's state at the start of every poll (which adopts the current revision), it must also check LeaseValid
// after that read: a process paused between its check and its read then sees its lease gone when it wakes, before
// it fetches anything.
//
// # Tokens: explicit fractions, sum at most one
//
// A token is not handed to one instance whole: whole tokens move the budget in steps of one token, so with few
// tokens (three tokens over three instances, one of which holds the busy tags) the division cannot follow demand,
// and an instance without a token cannot poll its tags at all. Instead every member holding a token spends an
// explicit fraction of its hourly budget, and the fractions follow demand:
//
//   - Demand. Every member computes, from the stored rate estimates of all the group's tags (the mean for a tag
//     without one), each tag's poll rate under the pooled budget by the poller's own square-root rule with its
//     floor and ceiling (pollRates); a member's demand is the sum over the tags it owns. Its target fraction of a
//     token is its demand over the demand of all live members holding the token (an equal split when nobody has
//     any). Each member's scheduler, given that budget, then solves the square-root rule for its own tags with the
//     same multiplier as the global solution, so the group polls as one process would with the pooled budget, up
//     to estimation error and the moments of change. A token's part of the pooled budget is the limit the API
//     reports for it (X-Ratelimit-Limit, handed over by ReportLimits and carried in the member records' "api_rph";
//     the highest reported, while a change reaches the members one by one), else its configured RequestsPerHour.
//   - Safety. tok.<fingerprint> holds every member's fraction in one key, rewritten by compare-and-set, and a
//     member writes only its own entry and never so that the entries sum above 1. A member lowers its poller's
//     pace before it lowers its stored fraction, and raises its stored fraction before its poller's pace; it grows
//     only into what the others have already given back. The entries of dead incarnations are dropped (by a member
//     that grows) only once their key is gone, when they have stopped spending by their own clock. So the paces
//     the pollers actually use never sum above the token's limit, also while members join, leave, die or pause.
//   - Residual. Each member's pacing bucket allows a burst of 3 requests, so n members can exceed a token's rate by
//     3n requests in a window; the poller plans to spend only Config.BudgetFactor (0.9) of its budget.
//
// Shares are recomputed on every membership or ownership change and every Config.Rebalance; a stored fraction
// moves only when its target differs by half a percent point or more, or goes to or from zero.
//
// # The poller's side of the contract
//
// The command builds the coordinator (NewJetStream), hands it an adapter of *poller.Poller (Poller) and runs both;
// the poller needs these abilities:
//
//  1. Apply(ctx, a): for every tag in a.Tags it does not poll yet (Assignment.Diff): read the cursor (store.Get),
//     write it back unchanged when there is one (store.Put: the claim write; on ErrConflict read and write again),
//     seed its rate estimate from a.Rates when present, and schedule a first poll soon (not after a whole round:
//     the tag may have waited a lease already). For every tag it polls that a.Tags lacks: stop scheduling it and
//     wait until no poll of it is in flight (its batch committed, or abandoned without a commit when ctx ends).
//     For every token: pace it at a.Share(fingerprint) times its hourly limit (the configured budget or
//     X-Ratelimit-Limit), 0 meaning unused; requests started afterwards follow the new pace. Return when all of
//     that holds.
//  2. Before starting a poll, and again right after the poll's store.Get returned, check LeaseValid; when it is
//     false, end the poll without any request or commit (the coordinator's next Apply takes the tags away).
//     Before taking a token for a request, check LeaseValid too (a process that woke from a pause must not spend
//     a share the group already gave away).
//  3. A commit that fails with checkpoint.ErrConflict: drop the tag at once (no retry: another instance owns it),
//     forget it (so that a later Apply listing it counts as new), and call Lost(tag).
//  4. About every ten seconds, ReportRates with the rate estimate of each tag it polls (TagStatus.RateEstimate),
//     and JetStream.ReportLimits with the X-Ratelimit-Limit the API answered for each token (TokenStatus.Limit of
//     the tokens with a Remaining).
//
// # Another backend
//
// Kafka's group membership and a compacted offsets topic can implement the same Coordinator: members join a
// consumer group whose assignor hands out partitions of a "tags" topic (one tag per key) and token shares; the
// generation id plays the incarnation; cursors are committed to a compacted topic with the generation as the fence
// (a zombie's commit is refused by the group coordinator, as ErrConflict here); LeaseValid is "the last heartbeat
// answered within session.timeout.ms". Nothing outside this package depends on JetStream.
package group
