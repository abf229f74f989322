package poller

import (
	"context"
	"fmt"
	"time"
)

// prepareStore runs before Run's first poll when the store is this process's alone (Config.StartLog): it lists
// the stored tags once and marks the scheduled tags it does not list absent (nobody else writes the store, so
// they have no state until a poll of this process writes one: neither the start-up load nor their first poll
// reads them; at a cold start of 100,000 tags, 200,000 reads fewer), and records the start instants (see
// recordStarts). When the listing fails, every tag is read as before.
func (p *Poller) prepareStore(ctx context.Context) error {
	if p.cfg.StartLog == nil {
		return nil
	}
	if tags, err := p.store.Tags(ctx); err == nil {
		stored := make(map[string]bool, len(tags))
		for _, tag := range tags {
			stored[tag] = true
		}
		p.mu.Lock()
		for _, ts := range p.sched.all {
			// Only a tag no poll reached: Run starts again after an earlier Run, say.
			if !stored[ts.name] && !ts.loaded && ts.lastTry == 0 && ts.pending == nil && !ts.removed {
				ts.absent = true
			}
		}
		p.mu.Unlock()
	}
	return p.recordStarts(ctx)
}

// recordStarts makes the start instant of every scheduled tag durable in one write, before the first poll, when
// the store keeps a start record (Config.StartLog) and tags start from an instant (StartNow,
// StartSince). A tag that the record covers and whose first poll finds nothing new then writes no state of its own
// (at a cold start of 100,000 quiet tags, 100,000 writes fewer): its state stays in memory, and a restart that
// finds no state of the tag starts it from the recorded instant again, so nothing posted since is missed.
//
// The record read back first wins for the tags it holds, when older than their own instant: a tag that a
// previous process started at T0 and that has no state of its own still starts from T0 (and stays recorded with
// it). Tags not in the record start from their own instant, as before. The record is replaced by the tags
// scheduled now: a tag that left the tag list leaves the record at the next start.
//
// Tags added while Run runs (AddTag, Assign) are not covered: their first poll writes, as before. When the
// record cannot be written, no tag is covered; when it cannot be read, Run fails rather than start the tags it
// holds from a later instant.
func (p *Poller) recordStarts(ctx context.Context) error {
	log := p.cfg.StartLog
	if log == nil || p.cfg.Start == StartBackfill {
		return nil
	}
	old, err := log.Starts(ctx)
	if err != nil {
		return fmt.Errorf("poller: cannot start: read the start record: %w", err)
	}
	p.mu.Lock()
	for tag, at := range old {
		ts := p.sched.tags[tag]
		if ts == nil || ts.removed || ts.covered {
			continue
		}
		if own := p.startOfLocked(tag); at.Before(own) {
			if p.recorded == nil {
				p.recorded = make(map[string]time.Time)
			}
			p.recorded[tag] = at
		}
	}
	starts := make(map[string]time.Time, len(p.sched.all))
	tags := make([]*tagState, 0, len(p.sched.all))
	for _, ts := range p.sched.all {
		if !ts.removed {
			starts[ts.name] = p.startOfLocked(ts.name)
			tags = append(tags, ts)
		}
	}
	p.mu.Unlock()
	if err := log.SetStarts(ctx, starts); err != nil {
		p.log.Warn("start record not written: every tag's first poll writes its state", "err", p.client.red.String(err.Error()))
		return nil
	}
	p.mu.Lock()
	for _, ts := range tags {
		ts.covered = !ts.removed
	}
	p.mu.Unlock()
	return nil
}
