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
// KV keys allow only letters, digits, '-', '_', '=', '/' and '.', so each tag is stored under its unpadded
// base64url encoding (RFC 4648 §5), which maps any tag (Unicode, '.', '*', '>', spaces) to a valid key and back.
// Keys in the bucket that are not such encodings are ignored by Tags. A JetStreamKV is safe for concurrent use; it
// does not own the NATS connection, and Close does not close it.
type JetStreamKV struct {
	kv     jetstream.KeyValue
	bucket string

	mu     sync.RWMutex
	closed bool
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
	return &JetStreamKV{kv: kv, bucket: cfg.Bucket}, nil
}

// KVKey returns the key under which a JetStreamKV stores tag.
func KVKey(tag string) string { return base64.RawURLEncoding.EncodeToString([]byte(tag)) }

// Bucket returns the bucket name.
func (j *JetStreamKV) Bucket() string { return j.bucket }

// Get implements Store.
func (j *JetStreamKV) Get(ctx context.Context, tag string) (State, bool, error) {
	if err := precheck(ctx, tag); err != nil {
		return State{}, false, err
	}
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.closed {
		return State{}, false, ErrClosed
	}
	e, err := j.kv.Get(ctx, KVKey(tag))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return State{}, false, nil
	}
	if err != nil {
		return State{}, false, fmt.Errorf("checkpoint: kv: get %q: %w", tag, err)
	}
	s, err := decodeState(tag, e.Value())
	if err != nil {
		return State{}, false, err
	}
	return s, true, nil
}

// Put implements Store. It returns nil once the server acknowledged the write.
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
	if _, err := j.kv.Put(ctx, KVKey(tag), v); err != nil {
		return fmt.Errorf("checkpoint: kv: put %q: %w", tag, err)
	}
	return nil
}

// Delete implements Store. It purges the key's history.
func (j *JetStreamKV) Delete(ctx context.Context, tag string) error {
	if err := precheck(ctx, tag); err != nil {
		return err
	}
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.closed {
		return ErrClosed
	}
	if err := j.kv.Purge(ctx, KVKey(tag)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("checkpoint: kv: delete %q: %w", tag, err)
	}
	return nil
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
