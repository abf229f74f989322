package group

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
)

// JetStream is a Coordinator that keeps a group's membership, tag set, ownership, rate estimates and token
// division in two JetStream key-value buckets (see the package documentation). Build it with NewJetStream; it is
// safe for concurrent use and does not own the NATS connection.
type JetStream struct {
	cfg     Config
	js      jetstream.JetStream
	members jetstream.KeyValue
	state   jetstream.KeyValue
	log     *slog.Logger
	m       *metrics

	// base and deadline hold the lease by the monotonic clock: the lease is valid while time.Since(base) is below
	// deadline (nanoseconds; 0 = no lease).
	base     time.Time
	deadline atomic.Int64
	running  atomic.Bool
	kick     chan struct{}
	// stalled makes the heartbeat and reconcile loops skip their work, as if the process were paused (tests).
	stalled atomic.Bool

	mu   sync.Mutex
	v    view
	self self
	// mine maps each tag whose owner record this incarnation wrote to that record's revision.
	mine map[string]uint64
	// lost are tags the poller dropped on a cursor conflict, to check.
	lost map[string]bool
	// applied is what the poller was last told (tags sorted), with the epoch.
	applied       []string
	appliedShares map[string]float64
	epoch         uint64
	// stored is this incarnation's fraction of each token as it last wrote it to the group (never below
	// appliedShares), and storedRev the revision of its last write that was acknowledged.
	stored    map[string]float64
	storedRev map[string]uint64
	// demand is the last computed demand of each live member (polls per second), for Status.
	demand map[string]float64
	// apiLimits are the token limits the API reported (ReportLimits), by fingerprint.
	apiLimits map[string]int
	// reported are the poller's latest rate estimates; written what was last stored per tag.
	reported  map[string]float64
	written   map[string]rateRecord
	lastSweep time.Time
}

var _ Coordinator = (*JetStream)(nil)

// self is this instance's membership.
type self struct {
	joined  bool
	inc     string
	join    uint64 // revision of the member key's creation
	rev     uint64 // last revision of the member key
	started time.Time
}

// view is the group as this instance's watches last saw it.
type view struct {
	membersReady, stateReady bool
	members                  map[string]memberView
	// memberSeq is the highest members-bucket revision the view reflects: a record naming an incarnation that
	// joined at or before it, and that is not in members, is dead.
	memberSeq uint64
	tags      map[string]tagView
	owners    map[string]ownerView
	rates     map[string]float64
	shares    map[string]shareView
}

type memberView struct {
	rec       memberRecord
	rev       uint64
	heartbeat time.Time
}

type tagView struct {
	rec tagRecord
	rev uint64
}

func (t tagView) active() bool { return t.rec.Removed.IsZero() }

type ownerView struct {
	rec  ownerRecord
	rev  uint64
	gone bool // a delete marker: released
}

type shareView struct {
	rec shareRecord
	rev uint64
}

// NewJetStream validates cfg and binds to (or creates) the group's buckets on js. logger nil discards logs; reg nil
// registers no metrics. It fails with an error wrapping ErrConfig for a bad setting, including a Lease that
// differs from the existing group's.
func NewJetStream(ctx context.Context, js jetstream.JetStream, cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*JetStream, error) {
	if js == nil {
		return nil, fmt.Errorf("%w: nil JetStream", ErrConfig)
	}
	cfg, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	state, err := openState(ctx, js, cfg.Group, cfg.Replicas, true)
	if err != nil {
		return nil, err
	}
	members, lease, err := openMembers(ctx, js, cfg.Group, cfg.Replicas, cfg.Lease, true)
	if err != nil {
		return nil, err
	}
	if cfg, err = cfg.withLease(lease); err != nil {
		return nil, err
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	c := &JetStream{
		cfg:           cfg,
		js:            js,
		members:       members,
		state:         state,
		log:           logger.With("group", cfg.Group, "member", cfg.Name),
		m:             m,
		base:          time.Now(),
		kick:          make(chan struct{}, 1),
		mine:          make(map[string]uint64),
		lost:          make(map[string]bool),
		appliedShares: make(map[string]float64),
		stored:        make(map[string]float64),
		storedRev:     make(map[string]uint64),
		demand:        make(map[string]float64),
		reported:      make(map[string]float64),
		written:       make(map[string]rateRecord),
	}
	c.v.reset(true, true)
	return c, nil
}

// Name returns this instance's member name.
func (c *JetStream) Name() string { return c.cfg.Name }

// Lease returns the group's membership lease.
func (c *JetStream) Lease() time.Duration { return c.cfg.Lease }

// LeaseValid implements Coordinator.
func (c *JetStream) LeaseValid() bool {
	d := c.deadline.Load()
	return d > 0 && int64(time.Since(c.base)) < d
}

// leaseUntil returns when the lease lapses (zero without one).
func (c *JetStream) leaseUntil() time.Time {
	d := c.deadline.Load()
	if d == 0 {
		return time.Time{}
	}
	return c.base.Add(time.Duration(d)).Round(0)
}

// extendLease sets the lease's end from a renewal sent at sent: the server cannot expire the key before
// sent+Lease; a quarter of the lease is kept as a margin for the servers' clocks and the expiry timer.
func (c *JetStream) extendLease(sent time.Time) {
	c.deadline.Store(int64(sent.Sub(c.base) + c.cfg.Lease - c.cfg.Lease/4))
}

// Lost implements Coordinator.
func (c *JetStream) Lost(tag string) {
	c.mu.Lock()
	_, ok := c.mine[tag]
	if ok {
		c.lost[tag] = true
	}
	c.mu.Unlock()
	if ok {
		c.log.Warn("cursor write refused: checking the tag's owner", "tag", tag)
		c.signal()
	}
}

// ReportRates implements Coordinator.
func (c *JetStream) ReportRates(rates map[string]float64) {
	c.mu.Lock()
	c.reported = maps.Clone(rates)
	c.mu.Unlock()
}

// ReportLimits hands the group the limit per Config.RateWindow that the API reports (X-Ratelimit-Limit) for each
// token, by fingerprint; a token missing from limits, or at 0, keeps the last limit reported, or else its
// configured RequestsPerHour. The group divides a token's budget by what the API said when any member reported
// it: each member's record carries its reports (renewed with every heartbeat), and a changed limit is divided
// afresh at once. A token's fractions sum to at most 1 whatever the limit, and the poller paces each fraction of
// the limit it sees itself, so a wrong limit here never overspends a token: it only skews the division by demand.
// The map is not retained; call it with ReportRates.
func (c *JetStream) ReportLimits(limits map[string]int) {
	c.mu.Lock()
	changed := false
	for _, t := range c.cfg.Tokens {
		l, ok := limits[t.Fingerprint]
		if !ok || l <= 0 || c.apiLimits[t.Fingerprint] == l {
			continue
		}
		if c.apiLimits == nil {
			c.apiLimits = make(map[string]int)
		}
		c.apiLimits[t.Fingerprint] = l
		changed = true
		c.log.Info("token limit reported by the API", "fingerprint", t.Fingerprint, "limit", l,
			"configured", t.RequestsPerHour, "window", c.cfg.RateWindow)
	}
	c.mu.Unlock()
	if changed {
		c.signal()
	}
}

func (c *JetStream) signal() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Run implements Coordinator. It returns ErrRunning when called twice, and nil otherwise: a broker that cannot be
// reached is waited for (the instance polls nothing meanwhile), and Config.Tags are added to the set before it
// joins (retried until they are).
func (c *JetStream) Run(ctx context.Context, p Poller) error {
	if !c.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	for len(c.cfg.Tags) > 0 {
		actx, cancel := context.WithTimeout(ctx, max(10*time.Second, 2*c.cfg.Lease))
		err := addTags(actx, c.state, c.cfg.Tags)
		cancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		c.log.Warn("cannot add the configured tags to the group yet (retrying)", "err", err)
		if sleepCtx(ctx, c.cfg.Heartbeat) != nil {
			return nil
		}
	}
	bg, stop := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { c.watch(bg, c.members, true) })
	wg.Go(func() { c.watch(bg, c.state, false) })
	wg.Go(func() { c.writeRates(bg) })
	defer func() {
		stop()
		wg.Wait()
	}()

	for ctx.Err() == nil {
		if err := c.join(ctx); err != nil {
			break
		}
		lostInc := make(chan struct{})
		hbCtx, stopHB := context.WithCancel(ctx)
		var hb sync.WaitGroup
		hb.Go(func() { c.heartbeat(hbCtx, lostInc) })
		c.loop(ctx, p, lostInc)
		stopHB()
		hb.Wait()
		if ctx.Err() != nil {
			c.leave(p)
			break
		}
		c.log.Warn("membership lost (its lease expired): polling stopped, joining again")
		c.abandon(p)
	}
	return nil
}

// join writes this instance's member key (create-if-absent) with a new incarnation, waiting while the name is
// held by a live member (a previous incarnation that was killed keeps it until its lease expires). It returns
// ctx.Err() when ctx ends first.
func (c *JetStream) join(ctx context.Context) error {
	if err := c.waitReady(ctx); err != nil {
		return err
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	c.mu.Lock()
	rec := memberRecord{V: recordVersion, Inc: hex.EncodeToString(b[:]), Started: time.Now().UTC(), Tokens: c.tokenRecords(),
		StatusURL: c.cfg.StatusURL}
	c.mu.Unlock()
	warned := false
	for {
		sent := time.Now()
		octx, cancel := c.opCtx(ctx)
		rev, err := c.members.Create(octx, c.cfg.Name, encode(rec))
		cancel()
		if err == nil {
			c.mu.Lock()
			c.self = self{joined: true, inc: rec.Inc, join: rev, rev: rev, started: rec.Started}
			c.mu.Unlock()
			c.extendLease(sent)
			c.m.leaseValid.Set(1)
			c.log.Info("joined the group", "incarnation", rec.Inc, "lease", c.cfg.Lease)
			c.signal()
			return nil
		}
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, jetstream.ErrKeyExists):
			if c.adoptJoin(ctx, rec.Inc, rec.Started) {
				return nil
			}
			if !warned {
				c.log.Warn("member name in use: waiting until its lease expires (a live instance with the same name waits forever)",
					"lease", c.cfg.Lease)
				warned = true
			}
		default:
			c.log.Warn("cannot join the group yet", "err", err)
		}
		if err := sleepCtx(ctx, c.cfg.Heartbeat); err != nil {
			return err
		}
	}
}

// adoptJoin handles a create whose answer was lost but that was stored: when the member key holds this very
// incarnation, it is ours; a renewal then establishes the lease. It reports whether the member joined.
func (c *JetStream) adoptJoin(ctx context.Context, inc string, started time.Time) bool {
	gctx, cancel := c.opCtx(ctx)
	e, err := c.members.Get(gctx, c.cfg.Name)
	cancel()
	if err != nil {
		return false
	}
	if rec, err := decode[memberRecord](e.Value()); err != nil || rec.Inc != inc {
		return false
	}
	c.mu.Lock()
	c.self = self{joined: true, inc: inc, join: e.Revision(), rev: e.Revision(), started: started}
	c.mu.Unlock()
	if err := c.renew(ctx); err != nil {
		c.mu.Lock()
		c.self.joined = false
		c.mu.Unlock()
		return false
	}
	c.log.Info("joined the group", "incarnation", inc, "lease", c.cfg.Lease)
	c.signal()
	return true
}

// waitReady waits until both watches delivered their initial values.
func (c *JetStream) waitReady(ctx context.Context) error {
	for {
		c.mu.Lock()
		ready := c.v.membersReady && c.v.stateReady
		c.mu.Unlock()
		if ready {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.kick:
		}
	}
}

// tokenRecords describes this instance's tokens for its member record; c.mu must be held.
func (c *JetStream) tokenRecords() []tokenRecord {
	out := make([]tokenRecord, len(c.cfg.Tokens))
	for i, t := range c.cfg.Tokens {
		out[i] = tokenRecord{Fingerprint: t.Fingerprint, RequestsPerHour: t.RequestsPerHour, WindowSeconds: c.cfg.RateWindow.Seconds(),
			APILimit: c.apiLimits[t.Fingerprint]}
	}
	return out
}

// heartbeat renews the membership every Config.Heartbeat by a compare-and-set on the member key's revision. It
// closes lost and returns when the key is gone or was replaced (the lease expired server-side).
func (c *JetStream) heartbeat(ctx context.Context, lost chan<- struct{}) {
	t := time.NewTicker(c.cfg.Heartbeat)
	defer t.Stop()
	failing := false
	for {
		if !c.stalled.Load() {
			err := c.renew(ctx)
			switch {
			case err == nil:
				if failing {
					c.log.Info("membership renewed again")
					failing = false
				}
			case ctx.Err() != nil:
				return
			case isConflict(err) || isGone(err):
				close(lost)
				c.signal()
				return
			default:
				if !failing {
					c.log.Warn("membership renewal failed (retrying; polling stops when the lease lapses)", "err", err,
						"lease_until", c.leaseUntil())
					failing = true
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// renew rewrites the member key over its last revision.
func (c *JetStream) renew(ctx context.Context) error {
	c.mu.Lock()
	rec := memberRecord{V: recordVersion, Inc: c.self.inc, Join: c.self.join, Started: c.self.started, Tokens: c.tokenRecords(),
		StatusURL: c.cfg.StatusURL}
	rev := c.self.rev
	c.mu.Unlock()
	wasValid := c.LeaseValid() || c.deadline.Load() == 0 // no "again" for the first lease
	rctx, cancel := context.WithTimeout(ctx, c.cfg.Heartbeat)
	defer cancel()
	sent := time.Now()
	newRev, err := c.members.Update(rctx, c.cfg.Name, encode(rec), rev)
	if isConflict(err) {
		// A renewal whose answer was lost may have been stored: if the key still holds this incarnation, write over
		// its revision next time (the lease is extended only by a renewal whose answer arrived).
		gctx, gcancel := c.opCtx(ctx)
		e, gerr := c.members.Get(gctx, c.cfg.Name)
		gcancel()
		if gerr == nil {
			if cur, derr := decode[memberRecord](e.Value()); derr == nil && cur.Inc == rec.Inc {
				c.mu.Lock()
				c.self.rev = e.Revision()
				c.mu.Unlock()
				return fmt.Errorf("group: renewal raced a renewal of our own: %w", errContended)
			}
		}
		if gerr != nil && !isGone(gerr) {
			return gerr
		}
	}
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.self.rev = newRev
	c.mu.Unlock()
	c.extendLease(sent)
	c.m.leaseValid.Set(1)
	if !wasValid {
		c.log.Info("lease held again: resuming")
		c.signal()
	}
	return nil
}

// loop reconciles on every change, every Config.Rebalance and when the lease lapses, until ctx ends or the
// membership is lost.
func (c *JetStream) loop(ctx context.Context, p Poller, lostInc <-chan struct{}) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	retry := 100 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			return
		case <-lostInc:
			return
		case <-c.kick:
		case <-timer.C:
		}
		next := c.cfg.Rebalance
		if !c.stalled.Load() {
			if err := c.reconcile(ctx, p); err != nil {
				if ctx.Err() != nil {
					return
				}
				if errors.Is(err, errContended) {
					c.log.Debug("rebalance contended (retrying)", "err", err)
				} else {
					c.log.Warn("rebalance incomplete (retrying)", "err", err)
				}
				next = retry
				retry = min(2*retry, c.cfg.Heartbeat)
			} else {
				retry = 100 * time.Millisecond
			}
		}
		if c.LeaseValid() {
			next = min(next, time.Duration(c.deadline.Load())-time.Since(c.base)+time.Millisecond)
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(max(next, time.Millisecond))
	}
}

// apply hands the poller tags and shares unless it already has exactly them.
func (c *JetStream) apply(ctx context.Context, p Poller, tags []string, shares map[string]float64) error {
	c.mu.Lock()
	same := slices.Equal(tags, c.applied) && sharesEqual(shares, c.appliedShares)
	if same {
		c.mu.Unlock()
		return nil
	}
	c.epoch++
	a := Assignment{Epoch: c.epoch, Tags: slices.Clone(tags), Tokens: make([]TokenShare, len(c.cfg.Tokens))}
	for i, t := range c.cfg.Tokens {
		a.Tokens[i] = TokenShare{Fingerprint: t.Fingerprint, Fraction: shares[t.Fingerprint]}
	}
	prev := make(map[string]bool, len(c.applied))
	for _, t := range c.applied {
		prev[t] = true
	}
	for _, t := range tags {
		if r, ok := c.v.rates[t]; ok && !prev[t] {
			if a.Rates == nil {
				a.Rates = make(map[string]float64)
			}
			a.Rates[t] = r
		}
		if tv, ok := c.v.tags[t]; ok && !tv.rec.Added.IsZero() {
			if a.Added == nil {
				a.Added = make(map[string]time.Time)
			}
			a.Added[t] = tv.rec.Added
		}
	}
	c.mu.Unlock()

	actx, cancel := context.WithTimeout(ctx, c.cfg.ApplyTimeout)
	defer cancel()
	if err := p.Apply(actx, a); err != nil {
		return fmt.Errorf("group: apply epoch %d: %w", a.Epoch, err)
	}
	c.mu.Lock()
	c.applied = a.Tags
	c.appliedShares = maps.Clone(shares)
	c.mu.Unlock()
	c.m.rebalances.Inc()
	c.m.owned.Set(float64(len(a.Tags)))
	for _, ts := range a.Tokens {
		c.m.share.WithLabelValues(ts.Fingerprint).Set(ts.Fraction)
	}
	c.log.Debug("assignment applied", "epoch", a.Epoch, "tags", len(a.Tags))
	return nil
}

func sharesEqual(a, b map[string]float64) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	for k, v := range b {
		if a[k] != v {
			return false
		}
	}
	return true
}

// abandon gives up everything after the membership was lost: the poller stops, and the claims and shares of the
// dead incarnation are forgotten (the other members judge them dead already).
func (c *JetStream) abandon(p Poller) {
	c.deadline.Store(0)
	c.m.leaseValid.Set(0)
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.ApplyTimeout)
	defer cancel()
	if err := c.apply(ctx, p, nil, nil); err != nil {
		c.log.Error("poller did not stop its tags", "err", err)
	}
	c.mu.Lock()
	c.self.joined = false
	c.mine = make(map[string]uint64)
	c.lost = make(map[string]bool)
	c.stored = make(map[string]float64)
	c.storedRev = make(map[string]uint64)
	c.mu.Unlock()
}

// leave is the graceful exit: the poller stops (its last commits done), then the tags and shares are given up and
// the member key deleted, so that the others take over at once.
func (c *JetStream) leave(p Poller) {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.ApplyTimeout+2*c.cfg.Lease)
	defer cancel()
	if err := c.apply(ctx, p, nil, nil); err != nil {
		c.log.Error("poller did not confirm it stopped; leaving anyway (cursor writes stay fenced)", "err", err)
	}
	c.mu.Lock()
	mine := maps.Clone(c.mine)
	c.mine = make(map[string]uint64)
	rev := c.self.rev
	c.mu.Unlock()
	c.release(ctx, mine)
	zero := make(map[string]float64)
	if err := c.writeShares(ctx, zero, false); err != nil {
		c.log.Warn("could not give back token shares (they return when the lease expires)", "err", err)
	}
	octx, ocancel := c.opCtx(ctx)
	defer ocancel()
	if err := c.members.Delete(octx, c.cfg.Name, jetstream.LastRevision(rev)); err != nil && !isGone(err) && !isConflict(err) {
		c.log.Warn("could not delete the member key (it expires with the lease)", "err", err)
	}
	c.deadline.Store(0)
	c.m.leaseValid.Set(0)
	c.m.owned.Set(0)
	c.mu.Lock()
	c.self.joined = false
	c.mu.Unlock()
	c.log.Info("left the group", "tags", len(mine))
}

// opCtx bounds one request to the group's buckets: half the lease, at least a second. A request written to a
// connection whose server just stopped gets no answer (NATS requests are at most once), and a context with a
// deadline of its own gets no default timeout from the client library.
func (c *JetStream) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, max(time.Second, c.cfg.Lease/2))
}

// sleepCtx waits d or until ctx ends (retry pacing inside the coordinator, never in tests).
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// forEach runs f on every item with at most Config.Concurrency at once and returns the first error.
func forEach[T any](ctx context.Context, limit int, items []T, f func(context.Context, T) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(limit)
	for _, it := range items {
		g.Go(func() error { return f(gctx, it) })
	}
	return g.Wait()
}
