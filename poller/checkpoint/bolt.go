package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// DefaultLockTimeout is how long OpenBolt waits for another process to release the file when
// BoltOptions.LockTimeout is zero.
const DefaultLockTimeout = time.Second

// boltBucket is the bucket that holds one key per tag (the tag's bytes) and its encoded State.
var boltBucket = []byte("cursors")

// BoltOptions tunes OpenBolt. A nil *BoltOptions and the zero value mean the documented defaults.
type BoltOptions struct {
	// LockTimeout is how long to wait for the file lock held by another process. Zero means DefaultLockTimeout;
	// a negative value waits indefinitely.
	LockTimeout time.Duration
	// FileMode is the permission of a newly created file. Zero means 0600. Missing parent directories are created
	// with 0700.
	FileMode os.FileMode
	// GroupCommit, when positive, lets Puts and Deletes from concurrent goroutines share one fsynced transaction:
	// a call waits at most this long for others to join (bbolt's DB.Batch). Each call still returns only after its
	// write is durable. Zero means every call commits alone, which is the lowest latency for a single writer;
	// with many tags polled concurrently a delay of about 1-5 ms multiplies write throughput.
	GroupCommit time.Duration
}

// Bolt is the default Store: a single bbolt file. Every Put and Delete is one transaction that is fsynced before it
// returns, so a state whose Put returned nil survives kill -9 and a power loss, and a crash in the middle of a Put
// leaves the previous state. Only one process can open the file at a time (an exclusive flock); OpenBolt fails with
// ErrLocked when another holds it. So a Bolt is the only writer of its tags: it needs no revisions, and Put and
// Delete never return ErrConflict (two instances that must share cursors use JetStreamKV). A Bolt is safe for
// concurrent use; writes are serialised. Keys that are not valid tags (written under an older, looser tag rule)
// are skipped by Tags.
type Bolt struct {
	path  string
	db    *bolt.DB
	batch bool

	mu     sync.RWMutex // guards closed against in-flight calls
	closed bool
}

var _ Store = (*Bolt)(nil)

// OpenBolt opens or creates the state file at path. It returns an error wrapping ErrLocked when another process
// keeps the file open beyond opts.LockTimeout.
func OpenBolt(path string, opts *BoltOptions) (*Bolt, error) {
	if path == "" {
		return nil, errors.New("checkpoint: bolt: empty path")
	}
	var o BoltOptions
	if opts != nil {
		o = *opts
	}
	timeout := o.LockTimeout
	switch {
	case timeout == 0:
		timeout = DefaultLockTimeout
	case timeout < 0:
		timeout = 0 // bbolt: wait indefinitely
	}
	mode := o.FileMode
	if mode == 0 {
		mode = 0o600
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("checkpoint: bolt: create directory for %s: %w", path, err)
	}
	db, err := bolt.Open(path, mode, &bolt.Options{Timeout: timeout})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("%w: %s (waited %s; is another tagstream running with the same state directory?)",
				ErrLocked, path, timeout)
		}
		return nil, fmt.Errorf("checkpoint: bolt: open %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(boltBucket)
		return err
	}); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("checkpoint: bolt: init %s: %w", path, err)
	}
	if o.GroupCommit > 0 {
		db.MaxBatchDelay = o.GroupCommit
	}
	return &Bolt{path: path, db: db, batch: o.GroupCommit > 0}, nil
}

// Path returns the file the store was opened on.
func (b *Bolt) Path() string { return b.path }

// Get implements Store.
func (b *Bolt) Get(ctx context.Context, tag string) (State, bool, error) {
	if err := precheck(ctx, tag); err != nil {
		return State{}, false, err
	}
	var (
		s     State
		found bool
	)
	err := b.whileOpen("get", func() error {
		return b.db.View(func(tx *bolt.Tx) error {
			v := tx.Bucket(boltBucket).Get([]byte(tag))
			if v == nil {
				return nil
			}
			found = true
			var err error
			s, err = decodeState(tag, v) // json.Unmarshal copies; v is not retained past the transaction
			return err
		})
	})
	if err != nil {
		return State{}, false, err
	}
	return s, found, nil
}

// Put implements Store. The state is fsynced to the file before Put returns nil.
func (b *Bolt) Put(ctx context.Context, tag string, s State) error {
	if err := precheck(ctx, tag); err != nil {
		return err
	}
	v, err := encodeState(s)
	if err != nil {
		return err
	}
	return b.whileOpen("put", func() error {
		return b.update(func(tx *bolt.Tx) error { return tx.Bucket(boltBucket).Put([]byte(tag), v) })
	})
}

// Delete implements Store.
func (b *Bolt) Delete(ctx context.Context, tag string) error {
	if err := precheck(ctx, tag); err != nil {
		return err
	}
	return b.whileOpen("delete", func() error {
		return b.update(func(tx *bolt.Tx) error { return tx.Bucket(boltBucket).Delete([]byte(tag)) })
	})
}

// Tags implements Store.
func (b *Bolt) Tags(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var tags []string
	err := b.whileOpen("tags", func() error {
		return b.db.View(func(tx *bolt.Tx) error {
			return tx.Bucket(boltBucket).ForEach(func(k, _ []byte) error {
				if checkTag(string(k)) == nil {
					tags = append(tags, string(k))
				}
				return nil
			})
		})
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(tags) // bbolt already iterates in byte order; keep the contract explicit
	if tags == nil {
		tags = []string{}
	}
	return tags, nil
}

// Close implements Store. It waits for in-flight calls and releases the file lock.
func (b *Bolt) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	if err := b.db.Close(); err != nil {
		return fmt.Errorf("checkpoint: bolt: close %s: %w", b.path, err)
	}
	return nil
}

// update runs fn in a write transaction, alone or batched with concurrent callers (fn must be idempotent: a batch
// that fails reruns its functions one by one).
// whileOpen runs fn while the store is open (Close waits for it) and returns its error wrapped as op's; on a closed
// store it returns ErrClosed.
func (b *Bolt) whileOpen(op string, fn func() error) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return ErrClosed
	}
	return b.wrap(op, fn())
}

func (b *Bolt) update(fn func(*bolt.Tx) error) error {
	if b.batch {
		return b.db.Batch(fn)
	}
	return b.db.Update(fn)
}

func (b *Bolt) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrCorrupt) {
		return err
	}
	if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return fmt.Errorf("checkpoint: bolt: %s: %w", op, err)
}
