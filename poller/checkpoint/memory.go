package checkpoint

import (
	"context"
	"slices"
	"sync"
)

// Memory is a Store that keeps states in process memory. It encodes values like the durable stores do, so a
// caller sees the same copies and round-trip behaviour, but everything is lost when the process exits: use it in
// tests and when tagstream runs without a state directory (`--state-dir ""`), where a restart starts every tag
// afresh. It lives in one process, so it is the only writer of its tags and never returns ErrConflict. The zero
// value is not usable; call NewMemory. A Memory is safe for concurrent use.
type Memory struct {
	mu     sync.RWMutex
	m      map[string][]byte
	closed bool
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory { return &Memory{m: make(map[string][]byte)} }

// Get implements Store.
func (m *Memory) Get(ctx context.Context, tag string) (State, bool, error) {
	if err := precheck(ctx, tag); err != nil {
		return State{}, false, err
	}
	m.mu.RLock()
	b, ok := m.m[tag]
	closed := m.closed
	m.mu.RUnlock()
	if closed {
		return State{}, false, ErrClosed
	}
	if !ok {
		return State{}, false, nil
	}
	s, err := decodeState(tag, b)
	if err != nil {
		return State{}, false, err
	}
	return s, true, nil
}

// Put implements Store.
func (m *Memory) Put(ctx context.Context, tag string, s State) error {
	if err := precheck(ctx, tag); err != nil {
		return err
	}
	b, err := encodeState(s)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	m.m[tag] = b
	return nil
}

// Delete implements Store.
func (m *Memory) Delete(ctx context.Context, tag string) error {
	if err := precheck(ctx, tag); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	delete(m.m, tag)
	return nil
}

// Tags implements Store.
func (m *Memory) Tags(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, ErrClosed
	}
	tags := make([]string, 0, len(m.m))
	for t := range m.m {
		tags = append(tags, t)
	}
	slices.Sort(tags)
	return tags, nil
}

// Close implements Store. It drops the stored states.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	m.m = nil
	return nil
}

// precheck returns the context's error or the tag's validation error.
func precheck(ctx context.Context, tag string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return checkTag(tag)
}
