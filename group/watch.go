package group

import (
	"context"
	"fmt"
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
// watch that ends (its subscription closed) or falls behind is started again from scratch; meanwhile that part of
// the view is not ready and the coordinator changes nothing.
//
// A watch is an ordered consumer held by one server: when that server stops, the client library recreates it only
// after missing idle heartbeats for ten seconds or more, and may fail to while the cluster elects leaders. So every
// Config.Heartbeat the stream's last sequence is read from its leader, and a watch that has not delivered it
// within three heartbeats is replaced.
func (c *JetStream) watch(ctx context.Context, kv jetstream.KeyValue, isMembers bool) {
	backoff := 100 * time.Millisecond
	retry := func() bool {
		if sleepCtx(ctx, backoff) != nil {
			return false
		}
		backoff = min(2*backoff, c.cfg.Heartbeat)
		return true
	}
	for ctx.Err() == nil {
		// Every revision up to the stream's last sequence now is reflected once the initial values are in.
		octx, cancel := c.opCtx(ctx)
		floor, err := lastSeq(octx, kv)
		cancel()
		if err != nil {
			c.log.Warn("watch: bucket status", "bucket", kv.Bucket(), "err", err)
			if !retry() {
				return
			}
			continue
		}
		wctx, stop := context.WithCancel(ctx) // the watch lives until stop
		w, err := c.startWatch(wctx, kv)
		if err != nil {
			stop()
			c.log.Warn("watch: start", "bucket", kv.Bucket(), "err", err)
			if !retry() {
				return
			}
			continue
		}
		backoff = 100 * time.Millisecond
		c.consume(ctx, kv, w, isMembers, floor)
		_ = w.Stop()
		stop()
		// Until the next watch delivered its initial values the view is not trusted.
		c.mu.Lock()
		c.v.reset(isMembers, !isMembers)
		c.mu.Unlock()
	}
}

// startWatch starts a watch of every key of kv that lives until ctx ends. The client library gives the request
// that creates the watch's consumer no timeout of its own when ctx has no deadline (and ctx must not have one: it
// also ends the watch), so an unanswered request is abandoned here after opCtx's timeout.
func (c *JetStream) startWatch(ctx context.Context, kv jetstream.KeyValue) (jetstream.KeyWatcher, error) {
	type result struct {
		w   jetstream.KeyWatcher
		err error
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan result, 1)
	go func() {
		w, err := kv.WatchAll(sctx)
		done <- result{w, err}
	}()
	tctx, tcancel := c.opCtx(ctx)
	defer tcancel()
	select {
	case r := <-done:
		if r.err != nil {
			cancel()
			return nil, r.err
		}
		context.AfterFunc(ctx, cancel)
		return r.w, nil
	case <-tctx.Done():
		cancel()
		if r := <-done; r.err == nil {
			_ = r.w.Stop()
		}
		return nil, fmt.Errorf("group: watch %s: no answer within %s", kv.Bucket(), max(time.Second, c.cfg.Lease/2))
	}
}

// lastSeq reads the last sequence of kv's stream from the stream's leader.
func lastSeq(ctx context.Context, kv jetstream.KeyValue) (uint64, error) {
	st, err := kv.Status(ctx)
	if err != nil {
		return 0, err
	}
	if bs, ok := st.(*jetstream.KeyValueBucketStatus); ok {
		return bs.StreamInfo().State.LastSeq, nil
	}
	return 0, nil
}

// consume applies a watch's entries to the view until the watch ends, falls behind, or ctx ends.
func (c *JetStream) consume(ctx context.Context, kv jetstream.KeyValue, w jetstream.KeyWatcher, isMembers bool, floor uint64) {
	probe := time.NewTicker(c.cfg.Heartbeat)
	defer probe.Stop()
	seen := floor // the highest revision this watch delivered, or that its initial values cover
	initialized := false
	started := time.Now()
	var pending uint64 // a last sequence read from the leader, not delivered yet
	var pendingSince time.Time
	for {
		var e jetstream.KeyValueEntry
		var ok bool
		select {
		case <-ctx.Done():
			return
		case <-probe.C:
			if !initialized {
				if time.Since(started) > 3*c.cfg.Heartbeat {
					c.log.Warn("watch delivered no initial values: starting it again", "bucket", kv.Bucket())
					return
				}
				continue
			}
			if pending != 0 && seen < pending && time.Since(pendingSince) > 3*c.cfg.Heartbeat {
				c.log.Warn("watch fell behind the stream: starting it again", "bucket", kv.Bucket(),
					"delivered", seen, "stream_last", pending)
				return
			}
			if pending == 0 || seen >= pending {
				pctx, cancel := context.WithTimeout(ctx, c.cfg.Heartbeat)
				last, err := lastSeq(pctx, kv)
				cancel()
				if err == nil && last > seen {
					pending, pendingSince = last, time.Now()
				} else if err == nil {
					pending = 0
				}
			}
			continue
		case e, ok = <-w.Updates():
		}
		if !ok {
			if ctx.Err() == nil {
				c.log.Warn("watch ended: starting it again", "bucket", kv.Bucket())
			}
			return
		}
		c.mu.Lock()
		var changed bool
		switch {
		case e == nil:
			initialized = true
			if isMembers {
				c.v.membersReady = true
				c.v.memberSeq = max(c.v.memberSeq, floor)
			} else {
				c.v.stateReady = true
			}
			changed = true
		case isMembers:
			seen = max(seen, e.Revision())
			changed = c.v.applyMember(e)
		default:
			seen = max(seen, e.Revision())
			changed = c.v.applyState(e)
		}
		if c.v.membersReady && c.v.stateReady {
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
