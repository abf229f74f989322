// Package checkpoint stores each tag's polling state: the committed cursor, the recent media ids used to remove
// repeats across polls, and the poller's catch-up bookkeeping.
//
// The poller persists a tag's State only after the publisher acknowledged every event of a batch, so what a Store
// holds is the high-water mark of durably published media. Three implementations share one contract, checked by one
// conformance suite:
//
//   - Bolt, the default: one bbolt file, every Put is a transaction fsynced on commit, so a State whose Put returned
//     nil survives kill -9 and power loss.
//   - JetStreamKV: a NATS JetStream key-value bucket, for deployments that already run NATS. Several instances
//     can share a bucket: every write is a compare-and-set on the revision this store last read or wrote, so a
//     second writer of a tag fails with ErrConflict instead of silently overwriting the first (see ErrConflict).
//   - Memory: a process-local map for tests and for running without a state directory; it forgets everything on
//     exit.
//
// Values are stored as versioned JSON ({"v":1, "Cursor":..., ...}); fields added to State later are stored by the same
// encoding and fields a reader does not know are ignored, so old and new builds can share a store.
package checkpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tagstream/tagstream/schema"
)

// State is one tag's persisted polling state. The zero value means "never polled".
type State struct {
	// Cursor is the committed high-water cursor (opaque); "" means none yet.
	Cursor string
	// Recent holds the last media ids handed off (bounded by the poller), to remove repeats across polls.
	Recent []string
	// Segments holds the catch-up bookkeeping owned by the poller: cursors bounding backlog segments not yet
	// published, oldest last.
	Segments []string
	// Updated is when the poller last changed this state. Stores keep it as given (at the precision of
	// RFC 3339 with nanoseconds, without the monotonic clock reading).
	Updated time.Time
	// Since is the start instant of a tag whose first poll is still catching up (Cursor empty, Segments not):
	// the media created before it are not published. Zero otherwise.
	Since time.Time `json:",omitzero"`
	// RateMedia and RateSeconds are the poller's estimate of the tag's posting rate when the state was written:
	// decayed sums of media seen and of seconds observed (the rate is their ratio), so that a restart resumes
	// with the estimate. Zero when none.
	RateMedia   float64 `json:",omitempty"`
	RateSeconds float64 `json:",omitempty"`
}

// Store persists State per tag. Implementations are safe for concurrent use. A tag is what schema.ValidateTag
// accepts (the one tag rule: letters, digits, marks and '_' of any script, at most schema.MaxTagRunes
// characters); any other tag yields an error wrapping both ErrInvalidTag and schema.ErrInvalidTag.
type Store interface {
	// Get returns the state of tag and whether one was stored. A missing tag is (State{}, false, nil). A store
	// shared by several writers (JetStreamKV) remembers the revision it read: the next Put of tag writes over
	// that revision only.
	Get(ctx context.Context, tag string) (State, bool, error)
	// Put replaces the state of tag. When Put returns nil the state is durable as far as the implementation
	// promises (see each type). A shared store returns an error wrapping ErrConflict when another writer changed
	// tag since this store last read or wrote it; Memory and Bolt have a single writer and never do.
	Put(ctx context.Context, tag string, s State) error
	// Delete removes the state of tag. Deleting a missing tag is not an error. A shared store returns an error
	// wrapping ErrConflict when another writer changed tag since this store last read or wrote it.
	Delete(ctx context.Context, tag string) error
	// Tags returns every tag with a stored state, sorted.
	Tags(ctx context.Context) ([]string, error)
	// Close releases the store. Calls after Close return ErrClosed. Close is idempotent.
	Close() error
}

var (
	// ErrInvalidTag is returned for a tag that schema.ValidateTag refuses; the error wraps schema.ErrInvalidTag
	// too, with the reason.
	ErrInvalidTag = errors.New("checkpoint: invalid tag")
	// ErrConflict is returned by Put and Delete of a store shared by several writers (JetStreamKV) when the tag's
	// stored revision is not the one this store last read or wrote: another writer (another tagstream instance
	// on the same bucket) wrote the tag in between, or wrote it first when this store had never read it. The
	// error names the tag and both revisions; nothing was written.
	//
	// It means another writer owns the tag now. A caller stops writing that tag: it does not retry the Put (the
	// retry fails the same way, by design), stops polling the tag and reports the conflict, since two instances
	// following one tag publish every media twice. To take a tag over deliberately (after the other instance
	// stopped), Get it again: the store then writes over the revision it read, and the state read is where
	// polling resumes.
	ErrConflict = errors.New("checkpoint: tag written by another writer")
	// ErrClosed is returned by any call on a closed store.
	ErrClosed = errors.New("checkpoint: store closed")
	// ErrLocked is returned by OpenBolt when another process holds the file's lock for longer than the timeout.
	ErrLocked = errors.New("checkpoint: state file locked by another process")
	// ErrCorrupt is returned when a stored value cannot be decoded.
	ErrCorrupt = errors.New("checkpoint: stored state cannot be decoded")
)

// formatVersion is the version written in every encoded State.
const formatVersion = 1

// record is the stored form of a State: the State's fields flattened beside a format version.
type record struct {
	V int `json:"v"`
	State
}

// checkTag applies the one tag rule, schema.ValidateTag.
func checkTag(tag string) error {
	if err := schema.ValidateTag(tag); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidTag, err)
	}
	return nil
}

func encodeState(s State) ([]byte, error) {
	b, err := json.Marshal(record{V: formatVersion, State: s})
	if err != nil {
		return nil, fmt.Errorf("checkpoint: encode state: %w", err)
	}
	return b, nil
}

func decodeState(tag string, b []byte) (State, error) {
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return State{}, fmt.Errorf("%w: tag %q: %w", ErrCorrupt, tag, err)
	}
	if r.V < 1 || r.V > formatVersion {
		return State{}, fmt.Errorf("%w: tag %q: unknown format version %d", ErrCorrupt, tag, r.V)
	}
	return r.State, nil
}
