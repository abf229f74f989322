package group

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// reset empties the members part and/or the state part of the view and marks it not ready.
func (v *view) reset(members, state bool) {
	if members {
		v.membersReady = false
		v.members = make(map[string]memberView)
		v.memberSeq = 0
	}
	if state {
		v.stateReady = false
		v.tags = make(map[string]tagView)
		v.owners = make(map[string]ownerView)
		v.rates = make(map[string]float64)
		v.shares = make(map[string]shareView)
	}
}

// watch keeps one part of the view up to date from a watch of kv (every key, in revision order) until ctx ends. A
// watch that ends (its subscription closed) is started again from scratch; meanwhile that part of the view is
// not ready and the coordinator changes nothing.
func (c *JetStream) watch(ctx context.Context, kv jetstream.KeyValue, isMembers bool) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		var floor uint64
		if isMembers {
			// Every revision up to the stream's last sequence now is reflected once the initial values are in.
			st, err := kv.Status(ctx)
			if err == nil {
				if bs, ok := st.(*jetstream.KeyValueBucketStatus); ok {
					floor = bs.StreamInfo().State.LastSeq
				}
			}
			if err != nil {
				c.log.Warn("watch: bucket status", "bucket", kv.Bucket(), "err", err)
				if sleepCtx(ctx, backoff) != nil {
					return
				}
				backoff = min(2*backoff, c.cfg.Heartbeat)
				continue
			}
		}
		w, err := kv.WatchAll(ctx)
		if err != nil {
			c.log.Warn("watch: start", "bucket", kv.Bucket(), "err", err)
			if sleepCtx(ctx, backoff) != nil {
				return
			}
			backoff = min(2*backoff, c.cfg.Heartbeat)
			continue
		}
		backoff = 100 * time.Millisecond
		c.mu.Lock()
		c.v.reset(isMembers, !isMembers)
		c.mu.Unlock()
		c.consume(ctx, w, isMembers, floor)
		_ = w.Stop()
	}
}

// consume applies a watch's entries to the view until the watch ends or ctx ends.
func (c *JetStream) consume(ctx context.Context, w jetstream.KeyWatcher, isMembers bool, floor uint64) {
	for {
		var e jetstream.KeyValueEntry
		var ok bool
		select {
		case <-ctx.Done():
			return
		case e, ok = <-w.Updates():
		}
		if !ok {
			if ctx.Err() == nil {
				c.log.Warn("watch ended: starting it again", "members", isMembers)
			}
			return
		}
		c.mu.Lock()
		var changed bool
		if e == nil {
			if isMembers {
				c.v.membersReady = true
				c.v.memberSeq = max(c.v.memberSeq, floor)
			} else {
				c.v.stateReady = true
			}
			changed = true
		} else if isMembers {
			changed = c.v.applyMember(e)
		} else {
			changed = c.v.applyState(e)
		}
		ready := c.v.membersReady && c.v.stateReady
		if ready {
			c.m.members.Set(float64(len(c.v.members)))
		}
		c.mu.Unlock()
		if changed {
			c.signal()
		}
	}
}

// applyMember folds one members-bucket entry into the view. It reports whether membership changed (a heartbeat
// of a known incarnation does not).
func (v *view) applyMember(e jetstream.KeyValueEntry) bool {
	v.memberSeq = max(v.memberSeq, e.Revision())
	name := e.Key()
	old, had := v.members[name]
	if e.Operation() != jetstream.KeyValuePut {
		delete(v.members, name)
		return had
	}
	rec, err := decode[memberRecord](e.Value())
	if err != nil || rec.Inc == "" {
		delete(v.members, name)
		return had
	}
	v.members[name] = memberView{rec: rec, rev: e.Revision(), heartbeat: e.Created()}
	return !had || old.rec.Inc != rec.Inc || len(old.rec.Tokens) != len(rec.Tokens)
}

// applyState folds one state-bucket entry into the view. It reports whether the change matters to the assignment
// (rate estimates do not: they are used at the next periodic rebalance).
func (v *view) applyState(e jetstream.KeyValueEntry) bool {
	prefix, rest := splitKey(e.Key())
	put := e.Operation() == jetstream.KeyValuePut
	switch prefix {
	case prefixTag:
		tag, ok := keyTag(rest)
		if !ok {
			return false
		}
		rec, err := decode[tagRecord](e.Value())
		if !put || err != nil {
			delete(v.tags, tag)
			return true
		}
		v.tags[tag] = tagView{rec: rec, rev: e.Revision()}
		return true
	case prefixOwner:
		tag, ok := keyTag(rest)
		if !ok {
			return false
		}
		rec, err := decode[ownerRecord](e.Value())
		if !put || err != nil {
			v.owners[tag] = ownerView{rev: e.Revision(), gone: true}
			return true
		}
		v.owners[tag] = ownerView{rec: rec, rev: e.Revision()}
		return true
	case prefixRate:
		tag, ok := keyTag(rest)
		if !ok {
			return false
		}
		rec, err := decode[rateRecord](e.Value())
		if !put || err != nil {
			delete(v.rates, tag)
			return false
		}
		v.rates[tag] = rec.Rate
		return false
	case prefixToken:
		rec, err := decode[shareRecord](e.Value())
		if !put || err != nil {
			v.shares[rest] = shareView{rev: e.Revision()}
			return true
		}
		v.shares[rest] = shareView{rec: rec, rev: e.Revision()}
		return true
	}
	return false
}

// dead reports whether the incarnation inc of member name, which joined at revision join, is certainly gone: the
// view reflects the members bucket at or after its join and no longer holds it. An incarnation the view may not
// have seen yet is not dead.
func (v *view) dead(name, inc string, join uint64) bool {
	if join > v.memberSeq {
		return false
	}
	m, ok := v.members[name]
	return !ok || m.rec.Inc != inc
}

// live reports whether the view holds incarnation inc of member name.
func (v *view) live(name, inc string) bool {
	m, ok := v.members[name]
	return ok && m.rec.Inc == inc
}
