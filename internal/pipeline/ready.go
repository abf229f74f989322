package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tagstream/tagstream/internal/status"
	"github.com/tagstream/tagstream/poller"
)

// checks are the readiness conditions of /readyz: the broker answers, a token is usable, the checkpoint store
// answers, and the poller runs (the API is not down, checkpoint writes succeed).
func (p *Pipeline) checks() []status.Check {
	checks := []status.Check{
		{Name: "broker", Func: p.brokerReady},
		{Name: "tokens", Func: func(context.Context) error {
			pl := p.currentPoller()
			if pl == nil {
				return errors.New("poller not started")
			}
			return usableToken(pl.TokenStatus(), time.Now())
		}},
		{Name: "checkpoint-store", Func: p.storeReady},
		{Name: "poller", Func: func(context.Context) error {
			pl := p.currentPoller()
			if pl == nil {
				return errors.New("not started")
			}
			return p.red.Error(pl.Ready())
		}},
	}
	if p.cfg.Group != "" {
		checks = append(checks, status.Check{Name: "group", Func: p.groupReady})
	}
	return checks
}

// brokerReady says whether the sink's broker answers; before it was reached, why it was not.
func (p *Pipeline) brokerReady(ctx context.Context) error {
	p.mu.Lock()
	s, dialErr, closed, started := p.sink, p.dialErr, p.closed, p.poller != nil
	p.mu.Unlock()
	switch {
	case closed:
		return errors.New("closed")
	case dialErr != nil && !started:
		return fmt.Errorf("cannot reach %s: %s", p.brokerAddr(), p.describe(dialErr))
	case s == nil:
		return errors.New("not connected yet")
	}
	return p.red.Error(s.ready(ctx))
}

// storeReady reads a key of a tag that is never polled: cheap for any number of tags. While the NATS connection of
// the JetStream KV store is down it answers at once.
func (p *Pipeline) storeReady(ctx context.Context) error {
	p.mu.Lock()
	store, dialErr, closed, js := p.store, p.dialErr, p.closed, p.js
	p.mu.Unlock()
	switch {
	case closed:
		return errors.New("closed")
	case store == nil && dialErr != nil:
		return fmt.Errorf("not open: cannot reach %s", p.brokerAddr())
	case store == nil:
		return errors.New("not open")
	case js != nil && !js.Conn().IsConnected():
		// A read would wait in the client's reconnect buffer until the check times out: say why at once.
		return fmt.Errorf("not connected to %s", p.brokerAddr())
	}
	_, _, err := store.Get(ctx, "_tagstream_readyz")
	return p.red.Error(err)
}

// usableToken returns nil when at least one token is neither retired nor parked.
func usableToken(ts []poller.TokenStatus, now time.Time) error {
	retired, parked := 0, 0
	var until time.Time
	for _, t := range ts {
		switch {
		case t.Retired:
			retired++
		case t.ParkedUntil.After(now):
			parked++
			if until.IsZero() || t.ParkedUntil.Before(until) {
				until = t.ParkedUntil
			}
		default:
			return nil
		}
	}
	if len(ts) == 0 {
		return errors.New("no tokens")
	}
	if parked > 0 {
		return fmt.Errorf("%d tokens parked (first back at %s), %d retired", parked, until.UTC().Format(time.RFC3339), retired)
	}
	return fmt.Errorf("all %d tokens retired", retired)
}

// Report returns what /status serves, without the readiness checks: the instance, the sink, every tag's line
// (state in words included) and every token's; no tags or tokens before polling starts.
func (p *Pipeline) Report() status.Report {
	r := p.report()
	for i := range r.Tags {
		r.Tags[i].State = r.Tags[i].Describe()
	}
	return r
}

// report builds the /status body.
func (p *Pipeline) report() status.Report {
	r := status.Report{Version: p.deps.Version, Instance: p.instance, Sink: p.SinkName()}
	owner := p.instance
	if gs, ok := p.GroupStatus(); ok {
		r.Group, owner = &gs, gs.Self
	}
	pl := p.currentPoller()
	if pl == nil {
		return r
	}
	for _, t := range pl.Status() {
		r.Tags = append(r.Tags, tagLine(t, owner))
	}
	for _, t := range pl.TokenStatus() {
		r.Tokens = append(r.Tokens, status.TokenStatus{
			Index: t.Index, Fingerprint: t.Fingerprint, ClientID: t.ClientID, Limit: t.Limit, Remaining: t.Remaining,
			ParkedUntil: t.ParkedUntil, Retired: t.Retired,
		})
	}
	return r
}

// tagLine is the /status line of a tag polled by this process (owner): the one translation of the poller's view
// into the report's.
func tagLine(t poller.TagStatus, owner string) status.TagStatus {
	line := status.TagStatus{
		Tag: t.Tag, Owner: owner, Cursor: t.Cursor, SavedCursor: t.SavedCursor, Segments: t.Segments,
		LastPoll: t.LastPoll, LastAttempt: t.LastAttempt, NextPoll: t.NextPoll, RateEstimate: t.Rate,
		LagSeconds: t.Lag.Seconds(), Published: t.Published, Gaps: t.Gaps, LastError: t.LastError,
	}
	if c := t.CatchUp; c != nil {
		line.CatchUp = &status.CatchUp{Since: c.Since, Pages: c.Pages, Pending: c.Pending}
	}
	return line
}
