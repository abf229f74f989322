package group

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Inspection is a group as its buckets hold it, read from outside (Inspect): the Status a member would show,
// without a Self (Self is empty, Joined and LeaseValid are false, Epoch is 0, and every member's Demand is 0:
// demand is computed by the members from their poll settings, which the buckets do not hold), plus one line per
// tag of the set.
type Inspection struct {
	Status
	// Tags holds every tag of the set (removed tags are in Status.Removed), sorted.
	Tags []TagInfo `json:"tags"`
	// Time is when the buckets were read.
	Time time.Time `json:"time"`
}

// TagInfo is one tag of a group's set in an Inspection.
type TagInfo struct {
	Tag string `json:"tag"`
	// Added is when the tag was (last) added to the set.
	Added time.Time `json:"added,omitzero"`
	// Owner is the live member that owns the tag, and OwnerSince when it took it; both empty when no live member
	// owns it (the tag is then in Status.Unowned).
	Owner      string    `json:"owner,omitempty"`
	OwnerSince time.Time `json:"owner_since,omitzero"`
	// Waiting names, for a tag without a live owner, the member whose record still holds it: an incarnation that
	// is gone (killed, or paused past its lease), whose tags the others take as soon as their view shows it gone.
	// Empty when the tag was never owned or was released.
	Waiting string `json:"waiting_for,omitempty"`
	// RateEstimate is the owner's last stored estimate of the tag's posting rate (media per second), and RateAt
	// when it was stored; zero when none was.
	RateEstimate float64   `json:"rate_per_second"`
	RateAt       time.Time `json:"rate_at,omitzero"`
}

// Inspect reads group's buckets without joining the group and without writing anything, and returns what they
// hold: the live members with the tags each owns, the tags without a live owner, the removed tags whose cursors
// are kept (until their removal plus retention: the members' Config.Retention, 0 meaning DefaultRetention), each
// token's division, and each tag's owner and stored rate estimate; each member with the URL of its /status when it
// advertises one. It fails with an error wrapping ErrNoGroup
// when the group does not exist (its state bucket is missing). A group whose members bucket was never created
// (tags added, no instance started yet) has no members and a zero Lease.
//
// The state bucket is read before the members bucket, so an owner record always names an incarnation that had
// joined by the time the members were read: a tag is reported without owner only when its owner was gone by
// then, never because the member joined between the two reads.
func Inspect(ctx context.Context, js jetstream.JetStream, group string, retention time.Duration) (Inspection, error) {
	if err := checkArgs(js, group, nil); err != nil {
		return Inspection{}, err
	}
	if retention < 0 {
		return Inspection{}, fmt.Errorf("%w: retention %s is negative", ErrConfig, retention)
	}
	if retention == 0 {
		retention = DefaultRetention
	}
	state, err := openState(ctx, js, group, 0, false)
	if err != nil {
		return Inspection{}, err
	}
	var v view
	v.reset(true, true)
	rateAt := make(map[string]time.Time)
	if err := readAll(ctx, state, func(e jetstream.KeyValueEntry) {
		v.applyState(e)
		prefix, rest := splitKey(e.Key())
		if tag, ok := keyTag(rest); ok && prefix == prefixRate {
			if rec, err := decode[rateRecord](e.Value()); err == nil {
				rateAt[tag] = rec.At
			}
		}
	}); err != nil {
		return Inspection{}, err
	}
	in := Inspection{Status: Status{Group: group, Members: []MemberStatus{}, Unowned: []string{}, Tokens: []TokenStatus{}}, Tags: []TagInfo{}}
	members, lease, err := openMembers(ctx, js, group, 0, 0, false)
	switch {
	case errors.Is(err, ErrNoGroup):
		// No instance ever joined: no members.
	case err != nil:
		return Inspection{}, err
	default:
		in.Lease, in.LeaseSeconds = lease, lease.Seconds()
		if err := readAll(ctx, members, func(e jetstream.KeyValueEntry) { v.applyMember(e) }); err != nil {
			return Inspection{}, err
		}
	}
	in.Time = time.Now().UTC()

	owned := make(map[string][]string)
	for _, tag := range slices.Sorted(maps.Keys(v.tags)) {
		tv := v.tags[tag]
		if !tv.active() {
			in.Removed = append(in.Removed, RemovedTag{Tag: tag, Removed: tv.rec.Removed, Until: tv.rec.Removed.Add(retention)})
			continue
		}
		ti := TagInfo{Tag: tag, Added: tv.rec.Added, RateEstimate: v.rates[tag], RateAt: rateAt[tag]}
		switch ov, ok := v.owners[tag]; {
		case ok && !ov.gone && v.live(ov.rec.Member, ov.rec.Inc):
			ti.Owner, ti.OwnerSince = ov.rec.Member, ov.rec.Since
			owned[ov.rec.Member] = append(owned[ov.rec.Member], tag)
		case ok && !ov.gone:
			ti.Waiting = ov.rec.Member
			in.Unowned = append(in.Unowned, tag)
		default:
			in.Unowned = append(in.Unowned, tag)
		}
		in.Tags = append(in.Tags, ti)
	}
	for _, name := range slices.Sorted(maps.Keys(v.members)) {
		m := v.members[name]
		tags := owned[name]
		if tags == nil {
			tags = []string{}
		}
		in.Members = append(in.Members, MemberStatus{Name: name, Started: m.rec.Started, Heartbeat: m.heartbeat, Tags: tags,
			StatusURL: m.rec.StatusURL})
	}
	for _, fp := range slices.Sorted(maps.Keys(v.shares)) {
		ts := TokenStatus{Fingerprint: fp, Shares: make(map[string]float64)}
		for n, e := range v.shares[fp].rec.Shares {
			ts.Shares[n] = e.Fraction
			ts.Total += e.Fraction
		}
		if len(ts.Shares) > 0 {
			in.Tokens = append(in.Tokens, ts)
		}
	}
	return in, nil
}

// readAll hands every current entry of kv (deletes and expiry markers left out) to f, in revision order.
func readAll(ctx context.Context, kv jetstream.KeyValue, f func(jetstream.KeyValueEntry)) error {
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return fmt.Errorf("group: read bucket %s: %w", kv.Bucket(), err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("group: read bucket %s: %w", kv.Bucket(), ctx.Err())
		case e, ok := <-w.Updates():
			switch {
			case !ok:
				return fmt.Errorf("group: read bucket %s: the watch ended early", kv.Bucket())
			case e == nil:
				return nil
			case e.Operation() == jetstream.KeyValuePut:
				f(e)
			}
		}
	}
}
