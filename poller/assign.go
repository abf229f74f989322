package poller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/tagstream/tagstream/poller/checkpoint"
	"github.com/tagstream/tagstream/schema"
)

// Assignment is what Assign makes the poller poll, and with which budget: in group mode, the coordinator's
// assignment of this instance (see package group); for a single instance, a new tag list (SIGHUP).
type Assignment struct {
	// Tags are the tags to poll, exactly; the others stop. Repeats are ignored.
	Tags []string
	// Shares, when not nil, sets the fraction of each token's limit (per Config.RateWindow) this instance may
	// spend, by token Fingerprint: a token paced at fraction f sends at most f times its limit; a token missing
	// from Shares, or at 0, sends nothing. Fractions are clamped to [0, 1]. Nil leaves the shares as they are
	// (every token whole until a first Assign sets them).
	Shares map[string]float64
	// Rates seeds the posting-rate estimate (media per second) of tags that Assign adds, when their checkpoint
	// carries no estimate of its own. Assign does not modify it.
	Rates map[string]float64
	// Starts holds, by tag, the instant a tag that Assign adds starts from when it has no checkpoint yet, under
	// StartNow, in place of Config.StartTime: in group mode the instant the tag entered the group's set
	// (group.Assignment.Added), so that a tag's start is a property of the group and not of whichever instance
	// polls it first. A zero or missing instant means Config.StartTime; StartSince and StartBackfill ignore it.
	// Assign does not modify it.
	Starts map[string]time.Time
	// Claim writes the checkpoint of every added tag that has one back unchanged, right after reading it: from
	// then on a previous owner that still holds the old revision of a shared store (checkpoint.JetStreamKV) fails
	// its next write with checkpoint.ErrConflict. Group mode sets it; a single instance does not need it.
	Claim bool
}

// errGateClosed ends a poll that found Config.Gate closed: nothing was sent or written, and the tag stays due.
var errGateClosed = errors.New("poller: gate closed: polling is paused")

// gateRecheck is how often the dispatcher looks at a closed gate again.
const gateRecheck = 100 * time.Millisecond

// seedSeconds is how many seconds of observation a rate seed (Assignment.Rates) is worth: as much as the
// estimator's shortest time constant, so that the tag's own polls take over within minutes.
const seedSeconds = rateTau

// claimTries is how often Assign reads and writes back an added tag's checkpoint when the write conflicts (the
// previous owner's last commit landing in between) before it gives the tag up as conflicted.
const claimTries = 3

// readConcurrency bounds the checkpoint reads (and claim writes) of one Assign.
const readConcurrency = 16

// Assign makes the poller poll exactly a.Tags with the token shares a.Shares, whether Run is running or not. It
// returns when all of this holds:
//
//   - Every request that takes a token from now on is paced by the new shares (a lowered share is in force before
//     Assign returns; a raised one at once too).
//   - No poll of a tag outside a.Tags is in flight: a poll under way finished (its batch published and its
//     checkpoint written) or was abandoned without a write (Run ended). No checkpoint of such a tag is written
//     after Assign returns. The stored checkpoints stay, so adding a tag again resumes where it stopped.
//   - Every tag of a.Tags that was not polled is added: its checkpoint was read afresh (and written back with
//     Claim), and its first poll is due soon, the added tags spread over the time the budget takes to poll each
//     once (not over a whole round). A checkpoint that cannot be read is read again by the tag's first poll.
//
// A tag dropped on a checkpoint conflict (see Config.OnConflict) is not added again until an Assign without it: the
// coordinator first takes it away, checks the tag's owner, and lists it again only when this instance still owns
// it. When ctx ends first, Assign returns ctx.Err(): the shares are set, the tags to remove are no longer
// scheduled, and the added tags may be missing; the next Assign completes the change. A tag that
// schema.ValidateTag refuses fails Assign with an error wrapping ErrInvalidTag before anything changes. Assign
// is safe for concurrent use with every other method, but calls of Assign must not overlap.
func (p *Poller) Assign(ctx context.Context, a Assignment) error {
	want := make(map[string]bool, len(a.Tags))
	for i, tag := range a.Tags {
		if err := schema.ValidateTag(tag); err != nil {
			return fmt.Errorf("poller: Assign: Tags[%d]: %w", i, err)
		}
		want[tag] = true
	}
	if a.Shares != nil {
		p.pool.setShares(a.Shares)
	}

	p.mu.Lock()
	if p.conflicted == nil {
		p.conflicted = make(map[string]bool)
	}
	for tag := range p.conflicted {
		if !want[tag] {
			delete(p.conflicted, tag)
		}
	}
	var settling, added []string
	for _, ts := range slices.Clone(p.sched.all) {
		if !ts.removed && !want[ts.name] {
			p.sched.remove(ts.name)
			if _, still := p.sched.tags[ts.name]; still {
				settling = append(settling, ts.name)
			}
		}
	}
	for tag := range want {
		ts, ok := p.sched.tags[tag]
		switch {
		case p.conflicted[tag]:
		case !ok:
			added = append(added, tag)
		case ts.removed:
			// Removed earlier while its poll was in flight: wait for that poll, then add the tag afresh.
			settling = append(settling, tag)
			added = append(added, tag)
		}
	}
	budget := p.budgetLocked()
	p.mu.Unlock()
	p.signal()
	slices.Sort(added)
	if a.Shares != nil {
		p.rebalance() // plan with the new budget now rather than at the next maintenance round
	}

	if err := p.waitSettled(ctx, settling); err != nil {
		return err
	}
	if len(added) == 0 {
		return nil
	}
	reads, err := p.readAdded(ctx, added, a.Claim)
	if err != nil {
		return err
	}

	clk := p.clk.reading()
	p.mu.Lock()
	spread := p.sched.minIv
	if budget > 0 {
		spread = min(p.sched.maxIv, max(spread, float64(len(added))/budget))
	}
	var fresh []*tagState
	for i, tag := range added {
		r := reads[i]
		if r.conflict {
			p.conflicted[tag] = true
			continue
		}
		ts := p.sched.add(tag, clk.mono, budget)
		ts.covered = false // the start record holds the tags of Run's start: an added tag's first poll writes
		p.addGauges(ts)
		if at := a.Starts[tag]; !at.IsZero() {
			if p.starts == nil {
				p.starts = make(map[string]time.Time)
			}
			p.starts[tag] = at
		}
		switch {
		case r.ok:
			p.sched.load(tag, r.st, clk)
		case r.read:
			ts.loaded = true // nothing stored: the first poll starts the tag (and reads again, to be sure)
		}
		if seed, ok := a.Rates[tag]; ok && ts.dur <= 0 && seed >= 0 {
			ts.cnt, ts.dur = seed*seedSeconds, seedSeconds
		}
		fresh = append(fresh, ts)
	}
	p.sched.rebalance(p.budgetLocked())
	for _, ts := range fresh {
		iv := min(spread, p.sched.interval(ts))
		p.sched.assignDue(ts, clk.mono+time.Duration(float64(ts.phase)*iv*1e9))
	}
	p.mu.Unlock()
	p.signal()
	for i, tag := range added {
		if reads[i].conflict {
			p.log.Warn("tag not taken: its checkpoint kept changing under the claim (another instance still writes it)",
				"tag", tag)
			if p.cfg.OnConflict != nil {
				p.cfg.OnConflict(tag)
			}
		}
	}
	return nil
}

// waitSettled waits until none of tags is in the schedule any more (each was removed while its poll was in flight,
// and that poll has ended), or ctx ends.
func (p *Poller) waitSettled(ctx context.Context, tags []string) error {
	for {
		p.mu.Lock()
		busy := slices.ContainsFunc(tags, func(tag string) bool {
			_, ok := p.sched.tags[tag]
			return ok
		})
		var ch chan struct{}
		if busy {
			if p.settle == nil {
				p.settle = make(chan struct{})
			}
			ch = p.settle
		}
		p.mu.Unlock()
		if !busy {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("poller: Assign: waiting for the polls of removed tags: %w", ctx.Err())
		case <-ch:
		}
	}
}

// dropped is called by the scheduler (with p.mu held) for every tag that leaves the schedule: its series go, and
// whoever waits in Assign looks again.
func (p *Poller) dropped(ts *tagState) {
	p.dropGauges(ts)
	delete(p.starts, ts.name)
	delete(p.recorded, ts.name) // added again, it starts as a tag the record does not hold
	if p.settle != nil {
		close(p.settle)
		p.settle = nil
	}
}

// addedRead is the checkpoint read of a tag that Assign adds.
type addedRead struct {
	st       checkpoint.State
	read     bool // the store answered
	ok       bool // a state is stored (and was read)
	conflict bool // the claim write kept conflicting
}

// readAdded reads the checkpoint of each tag (and writes it back unchanged when claim is set), a few at once. A
// read that fails leaves the tag to its first poll, which reads it again and reports the error; only the end of
// ctx fails the call.
func (p *Poller) readAdded(ctx context.Context, tags []string, claim bool) ([]addedRead, error) {
	out := make([]addedRead, len(tags))
	sem := make(chan struct{}, readConcurrency)
	var wg sync.WaitGroup
	for i, tag := range tags {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return nil, fmt.Errorf("poller: Assign: reading checkpoints: %w", ctx.Err())
		}
		wg.Go(func() {
			defer func() { <-sem }()
			out[i] = p.readOne(ctx, tag, claim)
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("poller: Assign: reading checkpoints: %w", err)
	}
	return out, nil
}

func (p *Poller) readOne(ctx context.Context, tag string, claim bool) addedRead {
	for range claimTries {
		st, ok, err := p.store.Get(ctx, tag)
		if err != nil {
			p.log.Debug("checkpoint of an added tag not read; its first poll reads it", "tag", tag, "err", err)
			return addedRead{}
		}
		if !ok || !claim {
			return addedRead{st: st, read: true, ok: ok}
		}
		err = p.store.Put(ctx, tag, st)
		switch {
		case err == nil:
			return addedRead{st: st, read: true, ok: true}
		case errors.Is(err, checkpoint.ErrConflict):
			p.m.checkpointConflicts.WithLabelValues(writeClaim).Inc()
		default:
			// The first poll reads the state again (adopting its revision); its commit is fenced all the same.
			p.log.Debug("claim write of an added tag failed; its first poll reads the checkpoint again", "tag", tag, "err", err)
			return addedRead{}
		}
	}
	return addedRead{conflict: true}
}

// conflict drops ts after its checkpoint write was refused with checkpoint.ErrConflict (err): another writer owns
// the tag now. The write is not retried and nothing of the poll is kept; Config.OnConflict hears of it.
func (p *Poller) conflict(ts *tagState, err error) {
	p.m.checkpointConflicts.WithLabelValues(writePoll).Inc()
	p.mu.Lock()
	if p.conflicted == nil {
		p.conflicted = make(map[string]bool)
	}
	// A tag removed while this poll was in flight is already taken away by the Assign under way: that is the
	// assignment without it, so a later one that lists it again adds it afresh (the coordinator does not send a
	// second assignment without it).
	if !ts.removed {
		p.conflicted[ts.name] = true
	}
	if cur, ok := p.sched.tags[ts.name]; ok && cur == ts {
		ts.inFlight = false
		p.sched.drop(ts)
	}
	p.mu.Unlock()
	p.signal()
	p.log.Warn("checkpoint written by another instance: tag dropped (it is polled elsewhere now)", "tag", ts.name,
		"err", err)
	if p.cfg.OnConflict != nil {
		p.cfg.OnConflict(ts.name)
	}
}

// startOf returns the instant tag starts from when it has no checkpoint (StartNow and StartSince): the one the
// store's start record held for it when Run started, when older (see recordStarts); else under StartNow the one
// Assignment.Starts gave it; else Config.StartTime.
func (p *Poller) startOf(tag string) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.startOfLocked(tag)
}

// startOfLocked is startOf for a caller that holds p.mu.
func (p *Poller) startOfLocked(tag string) time.Time {
	if at, ok := p.recorded[tag]; ok {
		return at
	}
	if p.cfg.Start != StartNow {
		return p.startTime
	}
	if at, ok := p.starts[tag]; ok {
		return at
	}
	return p.startTime
}

// gateOpen reports whether Config.Gate allows polling.
func (p *Poller) gateOpen() bool { return p.cfg.Gate == nil || p.cfg.Gate() }

// Rates returns the current posting-rate estimate (media per second) of every tag the poller polls.
func (p *Poller) Rates() map[string]float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]float64, len(p.sched.tags))
	for _, ts := range p.sched.all {
		if !ts.removed {
			out[ts.name] = p.sched.rate(ts)
		}
	}
	return out
}

// assignDue moves a queued tag's due time to due (monotonic clock).
func (s *scheduler) assignDue(ts *tagState, due time.Duration) {
	if ts.hidx < 0 || due == ts.due {
		return
	}
	ts.due = due
	s.queue.items[ts.hidx].due = due
	s.queue.Fix(int(ts.hidx))
}
