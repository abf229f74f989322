package checkpoint

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// StartLog is implemented by a Store that has one writer, the process that opened it (Bolt: its file lock keeps
// every other process out), and that can keep a record of start instants beside the states.
//
// The poller uses both properties at scale when told to (poller.Config.StartLog). A tag without a state of its own starts from a start instant (see
// poller.StartNow); recording that instant once for every tag of the tag list, before the first poll, makes it
// durable without a write per tag, so a tag whose first poll finds nothing new need not write a state of its
// own: a restart reads the record and starts such a tag from the recorded instant again. And since nobody else
// writes the store, a tag that the start-up read found without a state has none until this process writes one,
// so its first poll need not read it again.
//
// A store that several processes write (JetStreamKV) must not implement it.
type StartLog interface {
	// Starts returns the recorded start instant of every tag in the record (an empty map when there is none).
	Starts(ctx context.Context) (map[string]time.Time, error)
	// SetStarts replaces the record with starts, durably (as Put is) when it returns nil.
	SetStarts(ctx context.Context, starts map[string]time.Time) error
}

var _ StartLog = (*Bolt)(nil)

// boltStarts is the bucket of the start record: one key per start instant (RFC 3339 with nanoseconds, UTC), whose
// value is the tags that start from it, separated by '\n' (no valid tag holds one). Builds that do not know the
// bucket ignore it.
var boltStarts = []byte("starts")

// Starts implements StartLog.
func (b *Bolt) Starts(ctx context.Context) (map[string]time.Time, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make(map[string]time.Time)
	err := b.whileOpen("starts", func() error {
		return b.db.View(func(tx *bolt.Tx) error {
			bk := tx.Bucket(boltStarts)
			if bk == nil {
				return nil
			}
			return bk.ForEach(func(k, v []byte) error {
				at, err := time.Parse(time.RFC3339Nano, string(k))
				if err != nil {
					return fmt.Errorf("%w: start record %q: %w", ErrCorrupt, k, err)
				}
				for tag := range strings.SplitSeq(string(v), "\n") {
					if checkTag(tag) != nil {
						continue // not a tag under today's rule: never polled, so never started
					}
					if old, ok := out[tag]; !ok || at.Before(old) {
						out[tag] = at
					}
				}
				return nil
			})
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SetStarts implements StartLog: one transaction, fsynced before it returns nil.
func (b *Bolt) SetStarts(ctx context.Context, starts map[string]time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	byAt := make(map[time.Time][]string)
	for tag, at := range starts {
		if err := checkTag(tag); err != nil {
			return err
		}
		at = at.Round(0).UTC()
		byAt[at] = append(byAt[at], tag)
	}
	return b.whileOpen("set starts", func() error {
		return b.db.Update(func(tx *bolt.Tx) error {
			if tx.Bucket(boltStarts) != nil {
				if err := tx.DeleteBucket(boltStarts); err != nil {
					return err
				}
			}
			bk, err := tx.CreateBucket(boltStarts)
			if err != nil {
				return err
			}
			for at, tags := range byAt {
				slices.Sort(tags)
				if err := bk.Put([]byte(at.Format(time.RFC3339Nano)), []byte(strings.Join(tags, "\n"))); err != nil {
					return err
				}
			}
			return nil
		})
	})
}
