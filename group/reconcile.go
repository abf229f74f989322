package group

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// errContended marks a compare-and-set that kept losing to other members' writes: retried at the next reconcile.
var errContended = errors.New("group: contended")

// shareQuantum is the granularity of stored fractions: values are rounded down to it, so that a sum that must
// not exceed 1 is not pushed over it by floating-point error.
const shareQuantum = 1e-4

// shareSlack is the smallest change of a fraction worth a write.
const shareSlack = 0.01

// plan is what one reconcile does, computed under the lock from the view.
type plan struct {
	keep    []string          // owned tags that stay
	release map[string]uint64 // owned tags to give up (owner record revision), after the poller stopped them
	claim   []claim           // tags to take
	lost    []string          // tags dropped on a cursor conflict, to check
	targets map[string]float64
}

type claim struct {
	tag string
	rev uint64 // the record's revision to write over; 0 = absent (create)
}

// reconcile moves this instance toward its share of the group: first everything that shrinks (tags handed off or
// removed, token shares given back) is applied to the poller and only then released in the buckets; then what
// grows (tags taken, shares grown into the space others released) is written to the buckets and only then
// applied. So the poller never polls a tag it does not own, and never spends more of a token than this instance's
// stored share, whose sum over the group never exceeds 1.
func (c *JetStream) reconcile(ctx context.Context, p Poller) error {
	if !c.LeaseValid() {
		c.m.leaseValid.Set(0)
		// Suspended: poll nothing and spend nothing until the lease is renewed. The claims and stored shares stay:
		// they are this incarnation's until the server expires its key, and if it did, the heartbeat finds out.
		return c.apply(ctx, p, nil, nil)
	}
	c.mu.Lock()
	if !c.v.membersReady || !c.v.stateReady || !c.self.joined {
		c.log.Debug("reconcile waits for the watches", "members_ready", c.v.membersReady, "state_ready", c.v.stateReady)
		c.mu.Unlock()
		return nil
	}
	pl := c.planLocked()
	// lower is each stored share after the shrinks of this round; the poller's shares drop to it first.
	lower := make(map[string]float64, len(c.stored))
	shrunk := make(map[string]float64, len(c.appliedShares))
	for _, t := range c.cfg.Tokens {
		fp := t.Fingerprint
		lower[fp] = c.reservedLocked(fp)
		if shouldShrink(lower[fp], pl.targets[fp]) {
			lower[fp] = pl.targets[fp]
		}
		if f := min(c.appliedShares[fp], lower[fp]); f > 0 {
			shrunk[fp] = f
		}
	}
	c.mu.Unlock()

	// Shrink: stop tags that go, lower shares; then release them in the group.
	if err := c.apply(ctx, p, pl.keep, shrunk); err != nil {
		return err
	}
	c.release(ctx, pl.release)
	if err := c.writeShares(ctx, lower, false); err != nil {
		return err
	}
	verified := c.verifyLost(ctx, pl.lost)

	// Grow: take tags and grow shares in the group; then hand them to the poller.
	claimed, claimErr := c.claim(ctx, pl.claim)
	shareErr := c.writeShares(ctx, pl.targets, true)
	tags := slices.Concat(pl.keep, claimed, verified)
	slices.Sort(tags)
	tags = slices.Compact(tags)
	c.mu.Lock()
	final := make(map[string]float64)
	for fp, f := range c.stored {
		if f > 0 {
			final[fp] = f
		}
	}
	c.mu.Unlock()
	if err := c.apply(ctx, p, tags, final); err != nil {
		return err
	}
	c.sweep(ctx)
	return errors.Join(claimErr, shareErr)
}

// eligibleLocked returns the names of the live members that can poll (they hold a token), sorted, this instance
// included once it joined.
func (c *JetStream) eligibleLocked() []string {
	names := make([]string, 0, len(c.v.members)+1)
	for name, m := range c.v.members {
		if name != c.cfg.Name && len(m.rec.Tokens) > 0 {
			names = append(names, name)
		}
	}
	if c.self.joined && len(c.cfg.Tokens) > 0 {
		names = append(names, c.cfg.Name)
	}
	sort.Strings(names)
	return names
}

// planLocked decides which owned tags stay, which go and which are taken, and each token's target share.
func (c *JetStream) planLocked() plan {
	me := c.cfg.Name
	rz := newRendezvous(c.eligibleLocked())
	pl := plan{release: make(map[string]uint64)}
	for tag, rev := range c.mine {
		if ov, ok := c.v.owners[tag]; ok && ov.rev > rev {
			delete(c.mine, tag) // rewritten or deleted by another member since: not ours any more
			delete(c.lost, tag)
			continue
		}
		tv, ok := c.v.tags[tag]
		if w := rz.owner(tag); !ok || !tv.active() || w != me {
			pl.release[tag] = rev
			continue
		}
		if c.lost[tag] {
			pl.lost = append(pl.lost, tag)
			continue
		}
		pl.keep = append(pl.keep, tag)
	}
	slices.Sort(pl.keep)
	unowned := 0
	for tag, tv := range c.v.tags {
		if !tv.active() {
			continue
		}
		if _, ok := c.mine[tag]; ok {
			continue
		}
		ov, seen := c.v.owners[tag]
		ownedLive := seen && !ov.gone && c.v.live(ov.rec.Member, ov.rec.Inc) && ov.rec.Member != me
		if !ownedLive {
			unowned++
		}
		if rz.owner(tag) != me {
			continue
		}
		switch {
		case !seen:
			pl.claim = append(pl.claim, claim{tag: tag})
		case ov.gone:
			pl.claim = append(pl.claim, claim{tag: tag, rev: ov.rev})
		case ov.rec.Member == me && ov.rec.Inc == c.self.inc:
			c.mine[tag] = ov.rev // written by this incarnation (a claim whose answer was lost)
			pl.keep = append(pl.keep, tag)
		case ov.rec.Member == me || c.v.dead(ov.rec.Member, ov.rec.Inc, ov.rec.Join):
			pl.claim = append(pl.claim, claim{tag: tag, rev: ov.rev})
		}
	}
	slices.SortFunc(pl.claim, func(a, b claim) int {
		if a.tag < b.tag {
			return -1
		}
		if a.tag > b.tag {
			return 1
		}
		return 0
	})
	c.m.unowned.Set(float64(unowned))
	pl.targets = c.targetsLocked(pl)
	return pl
}

// targetsLocked computes this instance's target fraction of each of its tokens: the demand of its tags (their
// poll rates by the square-root rule over all the group's tags under the pooled budget) over the demand of every
// live member holding the token.
func (c *JetStream) targetsLocked(pl plan) map[string]float64 {
	me := c.cfg.Name
	owner := make(map[string]string) // tag -> live member
	for _, t := range pl.keep {
		owner[t] = me
	}
	for _, cl := range pl.claim {
		owner[cl.tag] = me
	}
	for tag, ov := range c.v.owners {
		if _, ok := owner[tag]; ok || ov.gone || ov.rec.Member == me || !c.v.live(ov.rec.Member, ov.rec.Inc) {
			continue
		}
		if tv, ok := c.v.tags[tag]; ok && tv.active() {
			owner[tag] = ov.rec.Member
		}
	}
	// Rates of every active tag; an unknown one gets the mean of the known ones (the poller's prior).
	tags := make([]string, 0, len(c.v.tags))
	var known, sum float64
	for tag, tv := range c.v.tags {
		if !tv.active() {
			continue
		}
		tags = append(tags, tag)
		if r, ok := c.v.rates[tag]; ok {
			known++
			sum += r
		}
	}
	prior := 1 / (4 * c.cfg.MaxInterval.Seconds())
	if known > 0 {
		prior = max(sum/known, 1e-9)
	}
	rates := make([]float64, len(tags))
	for i, tag := range tags {
		r, ok := c.v.rates[tag]
		if !ok {
			r = prior
		}
		rates[i] = r
	}
	// The pooled budget (polls per second) and each token's holders, over the live members. A token's budget is
	// the limit the API reported to a member (the highest, while a change reaches the members one by one), else
	// its configured one.
	holders := make(map[string][]string)
	budgets := make(map[string]float64)
	reported := make(map[string]float64)
	addTokens := func(name string, toks []tokenRecord) {
		for _, t := range toks {
			holders[t.Fingerprint] = append(holders[t.Fingerprint], name)
			if t.WindowSeconds > 0 {
				budgets[t.Fingerprint] = max(budgets[t.Fingerprint], float64(t.RequestsPerHour)/t.WindowSeconds)
				if t.APILimit > 0 {
					reported[t.Fingerprint] = max(reported[t.Fingerprint], float64(t.APILimit)/t.WindowSeconds)
				}
			}
		}
	}
	for name, m := range c.v.members {
		if name != me {
			addTokens(name, m.rec.Tokens)
		}
	}
	addTokens(me, c.tokenRecords())
	var budget float64
	for fp, b := range budgets {
		if r, ok := reported[fp]; ok {
			b = r
		}
		budget += b
	}
	f := pollRates(rates, budget*c.cfg.BudgetFactor, demandParams{
		minIv: c.cfg.MinInterval.Seconds(), maxIv: c.cfg.MaxInterval.Seconds(), pageSize: float64(c.cfg.PageSize),
	})
	demand := make(map[string]float64)
	for i, tag := range tags {
		if m, ok := owner[tag]; ok {
			demand[m] += f[i]
		}
	}
	c.demand = demand
	targets := make(map[string]float64, len(c.cfg.Tokens))
	for _, t := range c.cfg.Tokens {
		hs := holders[t.Fingerprint]
		sort.Strings(hs)
		targets[t.Fingerprint] = quantize(divide(slices.Compact(hs), demand)[me])
	}
	return targets
}

// reservedLocked returns this incarnation's fraction of token fp as the group may still hold it: the value it
// last stored, or more when the watch, at or past the revision of that write, shows more (a shrink whose answer was
// lost and that did not land).
func (c *JetStream) reservedLocked(fp string) float64 {
	cur := c.stored[fp]
	sv := c.v.shares[fp]
	if e, ok := sv.rec.Shares[c.cfg.Name]; ok && e.Inc == c.self.inc && sv.rev >= c.storedRev[fp] && e.Fraction > cur {
		return e.Fraction
	}
	return cur
}

// shouldShrink reports whether a stored share moves down to target: by at least half the slack, or to zero.
func shouldShrink(stored, target float64) bool {
	return target < stored && (stored-target >= shareSlack/2 || target == 0)
}

// shouldGrow reports whether a stored share moves up to target: by at least half the slack, or from zero.
func shouldGrow(stored, target float64) bool {
	return target > stored && (target-stored >= shareSlack/2 || stored == 0)
}

func quantize(f float64) float64 {
	return math.Floor(max(0, min(1, f))/shareQuantum+1e-9) * shareQuantum
}

// release deletes the owner records of tags this instance gave up (compare-and-set on the record's revision, so a
// record already rewritten by another member is left alone), and forgets them.
func (c *JetStream) release(ctx context.Context, tags map[string]uint64) {
	if len(tags) == 0 {
		return
	}
	items := slices.Collect(maps.Keys(tags))
	_ = forEach(ctx, c.cfg.Concurrency, items, func(ctx context.Context, tag string) error {
		octx, cancel := c.opCtx(ctx)
		defer cancel()
		err := c.state.Delete(octx, prefixOwner+tagKey(tag), jetstream.LastRevision(tags[tag]))
		if err != nil && !isConflict(err) && !isGone(err) {
			c.log.Warn("release: could not delete the owner record (retrying)", "tag", tag, "err", err)
			return nil
		}
		c.mu.Lock()
		if c.mine[tag] == tags[tag] {
			delete(c.mine, tag)
			delete(c.lost, tag)
		}
		c.mu.Unlock()
		return nil
	})
	c.log.Debug("released tags", "count", len(tags))
}

// claim writes this incarnation as the owner of each tag (create-if-absent, or compare-and-set over a released
// or dead owner's record) and returns the tags taken.
func (c *JetStream) claim(ctx context.Context, claims []claim) ([]string, error) {
	if len(claims) == 0 {
		return nil, nil
	}
	c.mu.Lock()
	rec := ownerRecord{V: recordVersion, Member: c.cfg.Name, Inc: c.self.inc, Join: c.self.join, Since: time.Now().UTC()}
	c.mu.Unlock()
	value := encode(rec)
	var taken []string
	var failed error
	_ = forEach(ctx, c.cfg.Concurrency, claims, func(ctx context.Context, cl claim) error {
		key := prefixOwner + tagKey(cl.tag)
		var rev uint64
		var err error
		octx, cancel := c.opCtx(ctx)
		defer cancel()
		if cl.rev == 0 {
			rev, err = c.state.Create(octx, key, value)
		} else {
			rev, err = c.state.Update(octx, key, value, cl.rev)
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		switch {
		case err == nil:
			c.mine[cl.tag] = rev
			taken = append(taken, cl.tag)
		case isConflict(err):
			// Another member wrote the record first; the watch brings its value.
			c.log.Debug("claim lost", "tag", cl.tag, "rev", cl.rev, "err", err)
		default:
			failed = fmt.Errorf("group: claim %q: %w", cl.tag, err)
		}
		return nil
	})
	if len(taken) > 0 {
		c.log.Info("took tags", "count", len(taken))
	}
	return taken, failed
}

// verifyLost reads the owner record of each tag dropped on a cursor conflict: the tags this incarnation still owns
// are returned (to be handed to the poller again, which reads their cursors afresh), the others forgotten.
func (c *JetStream) verifyLost(ctx context.Context, tags []string) []string {
	var keep []string
	for _, tag := range tags {
		octx, cancel := c.opCtx(ctx)
		e, err := c.state.Get(octx, prefixOwner+tagKey(tag))
		cancel()
		var rec ownerRecord
		if err == nil {
			rec, err = decode[ownerRecord](e.Value())
		}
		c.mu.Lock()
		switch {
		case err == nil && rec.Member == c.cfg.Name && rec.Inc == c.self.inc:
			c.mine[tag] = e.Revision()
			delete(c.lost, tag)
			keep = append(keep, tag)
		case err == nil || isGone(err):
			delete(c.mine, tag)
			delete(c.lost, tag)
		}
		c.mu.Unlock()
		if err != nil && !isGone(err) {
			c.log.Warn("cannot read a lost tag's owner (retrying)", "tag", tag, "err", err)
		}
	}
	return keep
}

// writeShares moves this incarnation's stored fraction of each of its tokens toward targets: when grow is false
// only downward, when true only upward and never so far that the stored fractions of the token sum above 1
// (entries of dead incarnations are dropped in the same write). Each write is a compare-and-set on the token key's
// revision. A share shrinks in the group only after the poller already spends less (reconcile's order), and the
// poller spends more only after the share grew in the group.
func (c *JetStream) writeShares(ctx context.Context, targets map[string]float64, grow bool) error {
	var errs []error
	for _, t := range c.cfg.Tokens {
		fp := t.Fingerprint
		c.mu.Lock()
		cur := c.stored[fp]
		if !grow {
			cur = c.reservedLocked(fp)
		}
		target := targets[fp]
		sv := c.v.shares[fp]
		c.mu.Unlock()
		if grow && !shouldGrow(cur, target) || !grow && target >= cur {
			continue
		}
		if err := c.writeShare(ctx, fp, target, grow, sv); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (c *JetStream) writeShare(ctx context.Context, fp string, target float64, grow bool, sv shareView) error {
	key := prefixToken + fp
	for attempt := 0; ; attempt++ {
		c.mu.Lock()
		name, inc, join := c.cfg.Name, c.self.inc, c.self.join
		cur := c.stored[fp]
		rec := shareRecord{V: recordVersion, Shares: make(map[string]shareEntry)}
		var others float64
		for n, e := range sv.rec.Shares {
			if n == name || c.v.dead(n, e.Inc, e.Join) {
				continue // this member's entry is rewritten below; dead incarnations' entries are dropped
			}
			rec.Shares[n] = e
			others += e.Fraction
		}
		c.mu.Unlock()
		want := target
		if grow {
			want = quantize(min(target, 1-others))
			if want <= cur {
				return nil // the others have not given enough back yet
			}
		}
		if want > 0 {
			rec.Shares[name] = shareEntry{Inc: inc, Join: join, Fraction: want}
		}
		var err error
		var rev uint64
		octx, cancel := c.opCtx(ctx)
		if sv.rev == 0 {
			rev, err = c.state.Create(octx, key, encode(rec))
		} else {
			rev, err = c.state.Update(octx, key, encode(rec), sv.rev)
		}
		cancel()
		if err == nil || !grow && !isConflict(err) {
			// A shrink whose answer was lost may or may not be stored: either way this member spends at most want
			// from now on. If it was not stored, reservedLocked sees the old value in the watch and the shrink is
			// written again.
			c.mu.Lock()
			c.stored[fp] = want
			if err == nil {
				c.storedRev[fp] = rev
			}
			c.mu.Unlock()
		}
		if err == nil {
			return nil
		}
		if !isConflict(err) {
			return fmt.Errorf("group: token %s share: %w", fp, err)
		}
		if attempt >= 3 {
			// A replica answering the reads lags behind the writes: the watch brings the record soon.
			return fmt.Errorf("group: token %s share: %w: %w", fp, errContended, err)
		}
		octx, cancel = c.opCtx(ctx)
		e, gerr := c.state.Get(octx, key)
		cancel()
		switch {
		case gerr == nil:
			sr, derr := decode[shareRecord](e.Value())
			if derr != nil {
				return fmt.Errorf("group: token %s share: %w", fp, derr)
			}
			sv = shareView{rec: sr, rev: e.Revision()}
		case isGone(gerr):
			sv = shareView{}
			if e != nil {
				sv.rev = e.Revision()
			}
		default:
			return fmt.Errorf("group: token %s share: %w", fp, gerr)
		}
	}
}

// sweep deletes, about once a minute, the tag records of tags removed longer than Config.Retention ago, with their
// cursor (through Config.Cursors), owner record and rate estimate. Each removed tag is swept by its rendezvous
// owner; the tag record is deleted first by compare-and-set, so a tag added again meanwhile keeps its cursor.
func (c *JetStream) sweep(ctx context.Context) {
	now := time.Now()
	every := min(time.Minute, max(c.cfg.Rebalance, c.cfg.Retention/4))
	c.mu.Lock()
	if now.Sub(c.lastSweep) < every {
		c.mu.Unlock()
		return
	}
	c.lastSweep = now
	rz := newRendezvous(c.eligibleLocked())
	type gone struct {
		tag string
		rev uint64
	}
	var due []gone
	for tag, tv := range c.v.tags {
		if !tv.active() && now.Sub(tv.rec.Removed) >= c.cfg.Retention && rz.owner(tag) == c.cfg.Name {
			due = append(due, gone{tag, tv.rev})
		}
	}
	c.mu.Unlock()
	_ = forEach(ctx, c.cfg.Concurrency, due, func(ctx context.Context, g gone) error {
		ctx, cancel := c.opCtx(ctx)
		defer cancel()
		if err := c.state.Delete(ctx, prefixTag+tagKey(g.tag), jetstream.LastRevision(g.rev)); err != nil {
			if !isConflict(err) && !isGone(err) {
				c.log.Warn("sweep: could not delete a removed tag", "tag", g.tag, "err", err)
			}
			return nil
		}
		if c.cfg.Cursors != nil {
			if _, _, err := c.cfg.Cursors.Get(ctx, g.tag); err != nil {
				c.log.Warn("sweep: could not read a removed tag's cursor", "tag", g.tag, "err", err)
			} else if err := c.cfg.Cursors.Delete(ctx, g.tag); err != nil {
				c.log.Warn("sweep: could not delete a removed tag's cursor", "tag", g.tag, "err", err)
			}
		}
		_ = c.state.Purge(ctx, prefixRate+tagKey(g.tag))
		_ = c.state.Purge(ctx, prefixOwner+tagKey(g.tag))
		c.log.Info("removed tag's retention ended: cursor deleted", "tag", g.tag)
		return nil
	})
}

// writeRates stores, every Config.Rebalance, the reported rate estimates of the tags this instance owns that
// changed by more than a tenth since last stored, or were last stored ten minutes ago.
func (c *JetStream) writeRates(ctx context.Context) {
	t := time.NewTicker(c.cfg.Rebalance)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now().UTC()
		c.mu.Lock()
		var due []string
		for tag, r := range c.reported {
			if _, ok := c.mine[tag]; !ok || math.IsNaN(r) || math.IsInf(r, 0) || r < 0 {
				continue
			}
			w, ok := c.written[tag]
			if !ok || math.Abs(r-w.Rate) > 0.1*max(w.Rate, 1e-6) || now.Sub(w.At) > 10*time.Minute {
				due = append(due, tag)
			}
		}
		recs := make(map[string]rateRecord, len(due))
		for _, tag := range due {
			recs[tag] = rateRecord{V: recordVersion, Rate: c.reported[tag], At: now}
		}
		for tag := range c.written {
			if _, ok := c.mine[tag]; !ok {
				delete(c.written, tag)
			}
		}
		c.mu.Unlock()
		_ = forEach(ctx, c.cfg.Concurrency, due, func(ctx context.Context, tag string) error {
			ctx, cancel := c.opCtx(ctx)
			defer cancel()
			if _, err := c.state.Put(ctx, prefixRate+tagKey(tag), encode(recs[tag])); err != nil {
				c.log.Debug("rate estimate not stored", "tag", tag, "err", err)
				return nil
			}
			c.mu.Lock()
			c.written[tag] = recs[tag]
			c.mu.Unlock()
			return nil
		})
	}
}

// Status implements Coordinator.
func (c *JetStream) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := Status{
		Group:       c.cfg.Group,
		Self:        c.cfg.Name,
		Joined:      c.self.joined,
		Incarnation: c.self.inc,
		LeaseValid:  c.LeaseValid(),
		LeaseUntil:  c.leaseUntil(),
		Lease:       c.cfg.Lease,
		Epoch:       c.epoch,
		Members:     []MemberStatus{},
		Unowned:     []string{},
		Tokens:      []TokenStatus{},
	}
	st.LeaseSeconds = c.cfg.Lease.Seconds() // for the JSON of /status: Lease is not serialised
	owned := make(map[string][]string)
	for tag, ov := range c.v.owners {
		if tv, ok := c.v.tags[tag]; ok && tv.active() && !ov.gone && ov.rec.Member != c.cfg.Name && c.v.live(ov.rec.Member, ov.rec.Inc) {
			owned[ov.rec.Member] = append(owned[ov.rec.Member], tag)
		}
	}
	owned[c.cfg.Name] = slices.Clone(c.applied)
	for name, m := range c.v.members {
		tags := owned[name]
		slices.Sort(tags)
		if tags == nil {
			tags = []string{}
		}
		st.Members = append(st.Members, MemberStatus{
			Name: name, Self: name == c.cfg.Name, Started: m.rec.Started, Heartbeat: m.heartbeat,
			Tags: tags, Demand: c.demand[name], StatusURL: m.rec.StatusURL,
		})
	}
	slices.SortFunc(st.Members, func(a, b MemberStatus) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	all := make(map[string]bool)
	for _, tags := range owned {
		for _, t := range tags {
			all[t] = true
		}
	}
	for tag, tv := range c.v.tags {
		switch {
		case !tv.active():
			st.Removed = append(st.Removed, RemovedTag{Tag: tag, Removed: tv.rec.Removed, Until: tv.rec.Removed.Add(c.cfg.Retention)})
		case !all[tag]:
			st.Unowned = append(st.Unowned, tag)
		}
	}
	slices.Sort(st.Unowned)
	slices.SortFunc(st.Removed, func(a, b RemovedTag) int {
		if a.Tag < b.Tag {
			return -1
		}
		if a.Tag > b.Tag {
			return 1
		}
		return 0
	})
	fps := slices.Sorted(maps.Keys(c.v.shares))
	for _, fp := range fps {
		ts := TokenStatus{Fingerprint: fp, Shares: make(map[string]float64)}
		for n, e := range c.v.shares[fp].rec.Shares {
			ts.Shares[n] = e.Fraction
			ts.Total += e.Fraction
		}
		st.Tokens = append(st.Tokens, ts)
	}
	return st
}
