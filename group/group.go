package group

import (
	"context"
	"errors"
	"time"
)

// Coordinator shares a named group's tags and tokens among the group's live instances. One runs in each
// instance, beside its poller. The JetStream implementation is JetStream (NewJetStream); another backend (Kafka's
// group membership and a compacted offsets topic) implements the same five methods.
//
// Implementations are safe for concurrent use. Run is called once; the other methods may be called at any time,
// before, during or after Run.
type Coordinator interface {
	// Run joins the group and drives p until ctx ends: it calls p.Apply with this instance's assignment whenever
	// the assignment changes. When ctx ends it leaves the group gracefully: it applies an empty assignment (so
	// the poller finishes or abandons its in-flight polls and commits nothing after), gives up its tags and token
	// shares, withdraws its membership so that the others take over at once, and returns nil. It returns an
	// error only when the group cannot be used at all (see each implementation).
	Run(ctx context.Context, p Poller) error
	// LeaseValid reports whether this instance's membership lease is certainly still held, by the local monotonic
	// clock. The poller must check it before it starts a poll and again after it read a tag's cursor, and must
	// neither start a request nor read a cursor for a new poll while it is false: an instance that was paused
	// (GC, SIGSTOP, a cut network) past its lease wakes up with LeaseValid false, before its coordinator had a
	// chance to run. It is false before Run joined the group.
	LeaseValid() bool
	// Lost tells the coordinator that the poller dropped tag because a cursor write was refused
	// (checkpoint.ErrConflict: another instance wrote the tag's cursor). The coordinator checks the tag's owner
	// record: if this instance still owns the tag (the conflicting write came from a previous owner that had not
	// yet stopped), a following Apply lists the tag again and the poller treats it as new (it reads the cursor
	// afresh); otherwise the tag stays away.
	Lost(tag string)
	// ReportRates hands the poller's per-tag posting-rate estimates (media per second) to the group. The
	// coordinator stores those of the tags this instance owns, beside the cursors, so that every instance can
	// divide the token budget by the square-root rule over the whole group's tags, and so that the next owner of a
	// tag starts from its estimate (Assignment.Rates). The map is not retained; call it about every ten seconds.
	ReportRates(rates map[string]float64)
	// Status returns a snapshot of the group as this instance sees it.
	Status() Status
}

// Poller is the part of a poller that a Coordinator drives. The command adapts *poller.Poller to it.
type Poller interface {
	// Apply makes the poller poll exactly a.Tags, pacing each token by a.Tokens. It must return only when both
	// hold:
	//   - no poll of a tag outside a.Tags is in flight any more: its batch was published and its cursor
	//     committed, or it was abandoned without committing. After Apply returns, the poller writes no cursor of
	//     such a tag.
	//   - every request started from now on is paced by the new shares: a token's rate is Fraction times its
	//     hourly budget, and a token with Fraction 0 (or missing from a.Tokens) is not used at all.
	// A tag in a.Tags that the poller does not poll yet is new: the poller reads its cursor from the store (the
	// read is the fencing point, see the package documentation) and polls it soon (not after a full round).
	// Apply returns ctx.Err() if ctx ends first; the coordinator then treats the old tags and shares as still in
	// use and tries again. Apply is called from one goroutine at a time.
	Apply(ctx context.Context, a Assignment) error
}

// PollerFunc adapts a function to a Poller.
type PollerFunc func(ctx context.Context, a Assignment) error

// Apply calls f(ctx, a).
func (f PollerFunc) Apply(ctx context.Context, a Assignment) error { return f(ctx, a) }

// Assignment is what one instance polls and with which budget. It is a complete snapshot, not a delta: the poller
// compares it with what it polls.
type Assignment struct {
	// Epoch grows with every Apply of one coordinator (for logs and status).
	Epoch uint64 `json:"epoch"`
	// Tags are the tags this instance owns and must poll, sorted.
	Tags []string `json:"tags"`
	// Tokens holds one share per configured token (Config.Tokens), in that order.
	Tokens []TokenShare `json:"tokens"`
	// Rates holds the group's stored posting-rate estimate (media per second) of tags in Tags that have one, to
	// seed the scheduler of a tag this instance just took over. The poller must not modify it.
	Rates map[string]float64 `json:"-"`
	// Added holds, for the tags in Tags whose record has one, when the tag entered the group's set (tags add, or a
	// member's configured tags). A tag without a cursor starts there rather than at the start of whichever
	// process polls it first, so that the media posted while it waited for an owner, or while an owner that
	// never committed held it, are published too (see the package documentation). The poller must not modify it.
	Added map[string]time.Time `json:"-"`
}

// Diff returns the tags of a that prev does not hold (to start polling: read their cursors afresh) and those of
// prev that a does not hold (to stop polling), both sorted. Both assignments' Tags must be sorted, as the
// coordinator hands them.
func (a Assignment) Diff(prev Assignment) (added, removed []string) {
	i, j := 0, 0
	for i < len(a.Tags) || j < len(prev.Tags) {
		switch {
		case j == len(prev.Tags) || i < len(a.Tags) && a.Tags[i] < prev.Tags[j]:
			added = append(added, a.Tags[i])
			i++
		case i == len(a.Tags) || prev.Tags[j] < a.Tags[i]:
			removed = append(removed, prev.Tags[j])
			j++
		default:
			i++
			j++
		}
	}
	return added, removed
}

// Share returns the fraction a grants the token with fingerprint fp (0 when a does not name it).
func (a Assignment) Share(fp string) float64 {
	for _, ts := range a.Tokens {
		if ts.Fingerprint == fp {
			return ts.Fraction
		}
	}
	return 0
}

// TokenShare is the part of one token's budget that an instance may spend.
type TokenShare struct {
	// Fingerprint names the token (poller.Fingerprint of its value); never the token itself.
	Fingerprint string `json:"fingerprint"`
	// Fraction of the token's hourly budget this instance may spend, in [0, 1]. Across the group the fractions of
	// one token never sum above 1, also while they change.
	Fraction float64 `json:"fraction"`
}

// Token describes one token of the pool to the coordinator: its fingerprint and its budget, never its value.
type Token struct {
	// Fingerprint is poller.Fingerprint of the token's value. Instances that share a token must see the same
	// fingerprint, so they must be given the same token value.
	Fingerprint string
	// RequestsPerHour is the token's budget per Config.RateWindow; 0 means 5000.
	RequestsPerHour int
}

// Status is a snapshot of a group as one instance sees it, for /status.
type Status struct {
	Group string `json:"group"`
	// Self is this instance's member name.
	Self string `json:"self"`
	// Joined reports whether this instance is a member now; Incarnation tells its joins apart (a new random value
	// each time it joins).
	Joined      bool   `json:"joined"`
	Incarnation string `json:"incarnation,omitempty"`
	// LeaseValid is Coordinator.LeaseValid; LeaseUntil is when the lease lapses unless renewed.
	LeaseValid bool      `json:"lease_valid"`
	LeaseUntil time.Time `json:"lease_until,omitzero"`
	// Lease is the group's membership lease (the longest time a killed instance's tags wait for a new owner);
	// LeaseSeconds is the same in seconds, for JSON.
	Lease        time.Duration `json:"-"`
	LeaseSeconds float64       `json:"lease_seconds"`
	// Epoch is the epoch of the last assignment applied.
	Epoch uint64 `json:"epoch"`
	// Members are the live members, sorted by name, with the tags each owns.
	Members []MemberStatus `json:"members"`
	// Unowned are the tags of the set with no live owner (moving between owners, or waiting for one).
	Unowned []string `json:"unowned"`
	// Removed are the tags removed from the set whose cursors are still kept.
	Removed []RemovedTag `json:"removed,omitempty"`
	// Tokens shows how each token's budget is divided among the members.
	Tokens []TokenStatus `json:"tokens"`
}

// MemberStatus is one live member in a Status.
type MemberStatus struct {
	Name string `json:"name"`
	// Self marks this instance.
	Self bool `json:"self,omitempty"`
	// Started is when the member (this incarnation) joined; Heartbeat is its last renewal seen.
	Started   time.Time `json:"started"`
	Heartbeat time.Time `json:"heartbeat"`
	// Tags are the tags it owns, sorted.
	Tags []string `json:"tags"`
	// Demand is the poll rate (polls per second) the square-root rule gives its tags under the pooled budget.
	Demand float64 `json:"demand_polls_per_second"`
	// StatusURL is where the member serves its /status, as it advertises it (Config.StatusURL); empty when it
	// advertises none.
	StatusURL string `json:"status_url,omitempty"`
}

// RemovedTag is a tag removed from the set whose cursor is kept until Until.
type RemovedTag struct {
	Tag     string    `json:"tag"`
	Removed time.Time `json:"removed"`
	Until   time.Time `json:"until"`
}

// TokenStatus shows one token's division.
type TokenStatus struct {
	Fingerprint string `json:"fingerprint"`
	// Shares maps a member name to the fraction of the token it holds, as stored in the group.
	Shares map[string]float64 `json:"shares"`
	// Total is the sum of Shares (never above 1).
	Total float64 `json:"total"`
}

// Errors of the package.
var (
	// ErrConfig is wrapped by every validation error of NewJetStream; the message names the field.
	ErrConfig = errors.New("group: invalid config")
	// ErrInvalidTag is wrapped (beside schema.ErrInvalidTag) by the tag-set functions for a tag that
	// schema.ValidateTag refuses.
	ErrInvalidTag = errors.New("group: invalid tag")
	// ErrRunning is returned by Run when it is already running or has run.
	ErrRunning = errors.New("group: Run called twice")
	// ErrNoGroup is returned by ListTags and RemoveTags when the group's bucket does not exist.
	ErrNoGroup = errors.New("group: no such group")
)
