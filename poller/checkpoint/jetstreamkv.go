package checkpoint

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
)

// DefaultKVBucket is the bucket NewJetStreamKV uses when KVConfig.Bucket is empty.
const DefaultKVBucket = "tagstream_cursors"

// KVConfig configures NewJetStreamKV. The zero value means: bucket DefaultKVBucket, one replica, file storage,
// history 1, create the bucket if it is missing.
type KVConfig struct {
	// Bucket is the key-value bucket name (letters, digits, '-' and '_'). Empty means DefaultKVBucket.
	Bucket string
	// Replicas is the bucket's replica count when it is created. Zero means 1. Use 3 on a cluster.
	Replicas int
	// Storage is the bucket's storage when it is created. The zero value is jetstream.FileStorage.
	Storage jetstream.StorageType
	// History is how many revisions per key the bucket keeps when it is created. Zero means 1.
	History uint8
	// NoCreate makes NewJetStreamKV fail when the bucket does not exist instead of creating it.
	NoCreate bool
}

// JetStreamKV is a Store backed by a NATS JetStream key-value bucket. Put returns nil once the server stored the
// value; how durable that is depends on the server: with the default sync_interval a single server fsyncs its
// stream files only every 2 minutes, so acknowledged writes can be lost on power loss (not on a process crash).
// Run replicated buckets or set sync_interval to always where that matters.
//
// KV keys allow only ASCII letters, digits, '-', '_', '=', '/' and '.', while a tag may hold letters of any script
// ("日本語", "café"), so each tag is stored under the unpadded base64url encoding (RFC 4648 §5) of its UTF-8 bytes,
// which maps every tag to a valid key and back, and different byte sequences (a precomposed and a decomposed "é")
// to different keys. Keys in the bucket that are not such encodings of a valid tag are ignored by Tags.
//
// # Several writers on one bucket
//
// Several tagstream instances may share a bucket, so a write never overwrites blindly: the store remembers, per
// tag, the revision of the key it last read (Get) or wrote (Put), and Put writes with a compare-and-set on it
// (the KV's Update with that revision; Create when the store holds none, which succeeds only when the key is
// missing or deleted). When another writer wrote the tag in between, Put writes nothing and returns an error
// wrapping ErrConflict that names the tag and both revisions; the store keeps its old revision, so every later
// Put fails too until a Get adopts the current one. Delete is a compare-and-set purge in the same way when the
// store holds a revision, and an unconditional purge when it holds none. Calls on one tag are serialised within a
// store, so concurrent calls on one store never conflict with each other; two stores conflict even within one
// process. This is the fencing primitive that lets one instance own a tag: see ErrConflict for what a caller does
// on a conflict, and Revision for the revision a store holds.
//
// A JetStreamKV is safe for concurrent use; it does not own the NATS connection, and Close does not close it.
type JetStreamKV struct {
	kv     jetstream.KeyValue
	bucket string

	mu     sync.RWMutex
	closed bool

	revsMu sync.Mutex
	revs   map[string]*tagRevision // by tag; entries are never removed, so a tag's mutex stays the same
}

// tagRevision serialises one tag's calls within a store and holds the revision of its key that the store last
// read or wrote; 0 means none (never read, missing or deleted).
type tagRevision struct {
	mu  sync.Mutex
	rev uint64
}

var _ Store = (*JetStreamKV)(nil)

// NewJetStreamKV binds to the bucket cfg.Bucket on js, creating it if missing (unless cfg.NoCreate).
func NewJetStreamKV(ctx context.Context, js jetstream.JetStream, cfg KVConfig) (*JetStreamKV, error) {
	if js == nil {
		return nil, errors.New("checkpoint: kv: nil JetStream")
	}
	if cfg.Bucket == "" {
		cfg.Bucket = DefaultKVBucket
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	if cfg.History == 0 {
		cfg.History = 1
	}
	if cfg.Replicas < 1 || cfg.Replicas > 5 {
		return nil, fmt.Errorf("checkpoint: kv: replicas %d out of range 1..5", cfg.Replicas)
	}
	if cfg.History > 64 {
		return nil, fmt.Errorf("checkpoint: kv: history %d out of range 1..64", cfg.History)
	}
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	switch {
	case err == nil:
	case errors.Is(err, jetstream.ErrBucketNotFound) && !cfg.NoCreate:
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      cfg.Bucket,
			Description: "tagstream committed cursors, one key per tag (base64url of the tag)",
			History:     cfg.History,
			Replicas:    cfg.Replicas,
			Storage:     cfg.Storage,
		})
		if errors.Is(err, jetstream.ErrBucketExists) { // created concurrently by another instance
			kv, err = js.KeyValue(ctx, cfg.Bucket)
		}
		if err != nil {
			return nil, fmt.Errorf("checkpoint: kv: create bucket %q: %w", cfg.Bucket, err)
		}
	default:
		return nil, fmt.Errorf("checkpoint: kv: bucket %q: %w", cfg.Bucket, err)
	}
	return &JetStreamKV{kv: kv, bucket: cfg.Bucket, revs: make(map[string]*tagRevision)}, nil
}

// KVKey returns the key under which a JetStreamKV stores tag.
func KVKey(tag string) string { return base64.RawURLEncoding.EncodeToString([]byte(tag)) }

// Bucket returns the bucket name.
func (j *JetStreamKV) Bucket() string { return j.bucket }

// Revision returns the revision of tag's key that this store last read or wrote, or 0 when it holds none (the
// tag was never read by this store, was missing when read, or was deleted by it). The next Put of tag succeeds
// only if the bucket still holds this revision (0: only if the key is missing or deleted).
func (j *JetStreamKV) Revision(tag string) uint64 {
	j.revsMu.Lock()
	tr, ok := j.revs[tag]
	j.revsMu.Unlock()
	if !ok {
		return 0
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.rev
}

// tagRev returns tag's revision record, creating it on first use.
func (j *JetStreamKV) tagRev(tag string) *tagRevision {
	j.revsMu.Lock()
	defer j.revsMu.Unlock()
	tr, ok := j.revs[tag]
	if !ok {
		tr = &tagRevision{}
		j.revs[tag] = tr
	}
	return tr
}

// Get implements Store. It remembers the revision read, over which the next Put of tag writes.
func (j *JetStreamKV) Get(ctx context.Context, tag string) (State, bool, error) {
	if err := precheck(ctx, tag); err != nil {
		return State{}, false, err
	}
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.closed {
		return State{}, false, ErrClosed
	}
	tr := j.tagRev(tag)
	tr.mu.Lock()
	defer tr.mu.Unlock()
	e, err := j.kv.Get(ctx, KVKey(tag))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		tr.rev = 0
		return State{}, false, nil
	}
	if err != nil {
		return State{}, false, fmt.Errorf("checkpoint: kv: get %q: %w", tag, err)
	}
	tr.rev = e.Revision() // adopted even when the value is corrupt: a Put may then replace it
	s, err := decodeState(tag, e.Value())
	if err != nil {
		return State{}, false, err
	}
	return s, true, nil
}

// Put implements Store. It returns nil once the server acknowledged the write, and an error wrapping ErrConflict
// when the key's revision is not the one this store last read or wrote (see the type's doc).
func (j *JetStreamKV) Put(ctx context.Context, tag string, s State) error {
	if err := precheck(ctx, tag); err != nil {
		return err
	}
	v, err := encodeState(s)
	if err != nil {
		return err
	}
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.closed {
		return ErrClosed
	}
	tr := j.tagRev(tag)
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var rev uint64
	if tr.rev == 0 {
		rev, err = j.kv.Create(ctx, KVKey(tag), v)
	} else {
		rev, err = j.kv.Update(ctx, KVKey(tag), v, tr.rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return j.conflict(ctx, "put", tag, tr.rev)
	}
	if err != nil {
		return fmt.Errorf("checkpoint: kv: put %q: %w", tag, err)
	}
	tr.rev = rev
	return nil
}

// Delete implements Store. It purges the key's history: over the revision this store last read or wrote when it
// holds one (an error wrapping ErrConflict when another writer changed the tag since), unconditionally when it
// holds none.
func (j *JetStreamKV) Delete(ctx context.Context, tag string) error {
	if err := precheck(ctx, tag); err != nil {
		return err
	}
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.closed {
		return ErrClosed
	}
	tr := j.tagRev(tag)
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var opts []jetstream.KVDeleteOpt
	if tr.rev != 0 {
		opts = append(opts, jetstream.LastRevision(tr.rev))
	}
	err := j.kv.Purge(ctx, KVKey(tag), opts...)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return j.conflict(ctx, "delete", tag, tr.rev)
	}
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("checkpoint: kv: delete %q: %w", tag, err)
	}
	tr.rev = 0
	return nil
}

// conflict returns the ErrConflict error of op on tag, which this store holds at revision have (0 = none), with
// what the bucket holds now.
func (j *JetStreamKV) conflict(ctx context.Context, op, tag string, have uint64) error {
	now := "no state (missing or deleted)"
	if e, err := j.kv.Get(ctx, KVKey(tag)); err == nil {
		now = fmt.Sprintf("revision %d", e.Revision())
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		now = "a revision that cannot be read now"
	}
	if have == 0 {
		return fmt.Errorf("%w: kv %s %q: this store never read the tag and the bucket holds %s; Get it first to take it over",
			ErrConflict, op, tag, now)
	}
	return fmt.Errorf("%w: kv %s %q: this store last read or wrote revision %d and the bucket holds %s",
		ErrConflict, op, tag, have, now)
}

// Tags implements Store.
func (j *JetStreamKV) Tags(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.closed {
		return nil, ErrClosed
	}
	keys, err := j.kv.Keys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return []string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoint: kv: list keys: %w", err)
	}
	tags := make([]string, 0, len(keys))
	for _, k := range keys {
		t, err := base64.RawURLEncoding.DecodeString(k)
		if err != nil || checkTag(string(t)) != nil {
			continue // not a key written by this package
		}
		tags = append(tags, string(t))
	}
	slices.Sort(tags)
	return tags, nil
}

// Close implements Store. It does not close the NATS connection.
func (j *JetStreamKV) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.closed = true
	return nil
}
