// Package checkpoint stores each tag's polling state: the committed cursor, the recent media ids used to remove
// repeats across polls, and the poller's catch-up bookkeeping.
//
// The poller persists a tag's State only after the publisher acknowledged every event of a batch, so what a Store
// holds is the high-water mark of durably published media. Three implementations share one contract, checked by one
// conformance suite:
//
//   - Bolt, the default: one bbolt file, every Put is a transaction fsynced on commit, so a State whose Put returned
//     nil survives kill -9 and power loss.
//   - JetStreamKV: a NATS JetStream key-value bucket, for deployments that already run NATS.
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
}

// Store persists State per tag. Implementations are safe for concurrent use. Tags are arbitrary non-empty strings
// of at most MaxTagLen bytes (any Unicode, dots, wildcards, spaces); an invalid tag yields ErrInvalidTag.
type Store interface {
	// Get returns the state of tag and whether one was stored. A missing tag is (State{}, false, nil).
	Get(ctx context.Context, tag string) (State, bool, error)
	// Put replaces the state of tag. When Put returns nil the state is durable as far as the implementation
	// promises (see each type).
	Put(ctx context.Context, tag string, s State) error
	// Delete removes the state of tag. Deleting a missing tag is not an error.
	Delete(ctx context.Context, tag string) error
	// Tags returns every tag with a stored state, sorted.
	Tags(ctx context.Context) ([]string, error)
	// Close releases the store. Calls after Close return ErrClosed. Close is idempotent.
	Close() error
}

// MaxTagLen is the longest tag, in bytes, that a Store accepts.
const MaxTagLen = 1024

var (
	// ErrInvalidTag is returned for an empty tag or one longer than MaxTagLen bytes.
	ErrInvalidTag = errors.New("checkpoint: invalid tag")
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

func checkTag(tag string) error {
	if tag == "" {
		return fmt.Errorf("%w: empty", ErrInvalidTag)
	}
	if len(tag) > MaxTagLen {
		return fmt.Errorf("%w: %d bytes (max %d)", ErrInvalidTag, len(tag), MaxTagLen)
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
