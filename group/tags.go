package group

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// AddTags adds tags to group's set (creating the group's state bucket when it does not exist yet, with 3 replicas
// or 1 on a JetStream that is not clustered). A tag already in the set stays as it is; a removed tag whose cursor
// is still kept comes back and resumes from it. The running instances pick the tags up within about a second.
// Every tag is validated (schema.ValidateTag) before anything is written; an invalid one fails the call with an
// error wrapping ErrInvalidTag and schema.ErrInvalidTag.
func AddTags(ctx context.Context, js jetstream.JetStream, group string, tags ...string) error {
	if err := checkArgs(js, group, tags); err != nil {
		return err
	}
	state, err := openState(ctx, js, group, 0, true)
	if err != nil {
		return err
	}
	return addTags(ctx, state, tags)
}

// RemoveTags removes tags from group's set: their owners stop polling them within about a second. Each tag's
// cursor is kept for the running instances' Config.Retention (7 days by default), so that adding the tag again
// resumes without a gap. Removing a tag that is not in the set does nothing. It fails with ErrNoGroup when the
// group does not exist.
func RemoveTags(ctx context.Context, js jetstream.JetStream, group string, tags ...string) error {
	if err := checkArgs(js, group, tags); err != nil {
		return err
	}
	state, err := openState(ctx, js, group, 0, false)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	for _, tag := range tags {
		if err := updateTag(ctx, state, tag, func(rec tagRecord, exists bool) (tagRecord, bool) {
			if !exists || !rec.Removed.IsZero() {
				return rec, false
			}
			return tagRecord{V: recordVersion, Added: rec.Added, Removed: now}, true
		}); err != nil {
			return err
		}
	}
	return nil
}

// ListTags returns group's set of tags, sorted (removed tags whose cursors are still kept are not listed). It fails
// with ErrNoGroup when the group does not exist.
//
// It reads the set through a watch, which marks the end of the current values with a nil entry. That marker can
// come early: nats.go sends it when the consumer's pending count, a snapshot that can lag on a clustered bucket,
// says nothing is left, or when deliveries stall for the JetStream timeout. So ListTags first asks the stream which
// tag keys it holds (deleted ones included: a delete leaves a marker) and reads on until it has seen each of them,
// failing after listEndWait without a new key rather than returning part of the set.
func ListTags(ctx context.Context, js jetstream.JetStream, group string) ([]string, error) {
	if err := checkArgs(js, group, nil); err != nil {
		return nil, err
	}
	state, err := openState(ctx, js, group, 0, false)
	if err != nil {
		return nil, err
	}
	fail := func(err error) ([]string, error) { return nil, fmt.Errorf("group: list tags of %s: %w", group, err) }
	stream, err := js.Stream(ctx, "KV_"+state.Bucket())
	if err != nil {
		return fail(err)
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter("$KV."+state.Bucket()+"."+prefixTag+">"))
	if err != nil {
		return fail(err)
	}
	// The keys that existed before the watch: it delivers each of them (or a newer value) before its end.
	missing := make(map[string]bool, len(info.State.Subjects))
	prefix := "$KV." + state.Bucket() + "."
	for subj := range info.State.Subjects {
		missing[strings.TrimPrefix(subj, prefix)] = true
	}
	w, err := state.Watch(ctx, prefixTag+">")
	if err != nil {
		return fail(err)
	}
	defer w.Stop()
	tags := []string{}
	seen := make(map[string]bool, len(missing))
	ended := false // the watch sent its end marker
	stall := time.NewTimer(listEndWait)
	defer stall.Stop()
	for {
		if ended && len(missing) == 0 {
			slices.Sort(tags)
			return tags, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-stall.C:
			return fail(fmt.Errorf("the watch delivered %d tag keys, %d fewer than the stream holds, and then nothing for %s",
				len(seen), len(missing), listEndWait))
		case e, ok := <-w.Updates():
			if !ok {
				return fail(errors.New("watch ended early"))
			}
			if e == nil {
				ended = true
				continue
			}
			stall.Reset(listEndWait)
			if seen[e.Key()] {
				continue // a change made after the watch started: the set as of the start is what is listed
			}
			seen[e.Key()] = true
			delete(missing, e.Key())
			if e.Operation() != jetstream.KeyValuePut {
				continue // deleted
			}
			_, rest := splitKey(e.Key())
			tag, ok := keyTag(rest)
			if !ok {
				continue
			}
			if rec, err := decode[tagRecord](e.Value()); err == nil && rec.Removed.IsZero() {
				tags = append(tags, tag)
			}
		}
	}
}

// listEndWait is how long ListTags waits for the next tag key when the watch has delivered fewer keys than the
// stream holds.
const listEndWait = 10 * time.Second

func checkArgs(js jetstream.JetStream, group string, tags []string) error {
	if js == nil {
		return fmt.Errorf("%w: nil JetStream", ErrConfig)
	}
	if err := checkName("group", group); err != nil {
		return err
	}
	for _, tag := range tags {
		if err := checkTag(tag); err != nil {
			return err
		}
	}
	return nil
}

// addTags puts each tag in the set: created when absent, brought back when removed, left alone when present.
func addTags(ctx context.Context, state jetstream.KeyValue, tags []string) error {
	now := time.Now().UTC()
	for _, tag := range tags {
		if err := updateTag(ctx, state, tag, func(rec tagRecord, exists bool) (tagRecord, bool) {
			if exists && rec.Removed.IsZero() {
				return rec, false
			}
			return tagRecord{V: recordVersion, Added: now}, true
		}); err != nil {
			return err
		}
	}
	return nil
}

// updateTag applies change to a tag's record by compare-and-set, reading it again after a conflict.
func updateTag(ctx context.Context, state jetstream.KeyValue, tag string, change func(rec tagRecord, exists bool) (tagRecord, bool)) error {
	key := prefixTag + tagKey(tag)
	for attempt := 0; ; attempt++ {
		var rec tagRecord
		var rev uint64
		e, err := state.Get(ctx, key)
		if noLeader(err) && attempt < 50 {
			// A bucket created a moment ago has no stream leader yet: wait for the election.
			if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
				return err
			}
			continue
		}
		switch {
		case err == nil:
			rev = e.Revision()
			if rec, err = decode[tagRecord](e.Value()); err != nil {
				return fmt.Errorf("group: tag %q: stored record: %w", tag, err)
			}
		case isGone(err):
			if e != nil {
				rev = e.Revision()
			}
		default:
			return fmt.Errorf("group: tag %q: %w", tag, err)
		}
		next, write := change(rec, rev != 0 && err == nil)
		if !write {
			return nil
		}
		if rev == 0 {
			_, err = state.Create(ctx, key, encode(next))
		} else {
			_, err = state.Update(ctx, key, encode(next), rev)
		}
		if err == nil {
			return nil
		}
		if noLeader(err) && attempt < 50 {
			if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
				return err
			}
			continue
		}
		if !isConflict(err) || attempt >= 50 {
			return fmt.Errorf("group: tag %q: %w", tag, err)
		}
		// The read may have come from a replica that lags behind the write that won: wait a little.
		if err := sleepCtx(ctx, time.Duration(min(attempt+1, 10))*20*time.Millisecond); err != nil {
			return err
		}
	}
}
