package poller

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// heapItem is an element of the test heap: a key and the position the heap told it.
type heapItem struct {
	key, idx int
}

func newTestHeap() *indexedHeap[*heapItem] {
	return &indexedHeap[*heapItem]{
		less:     func(a, b *heapItem) bool { return a.key < b.key },
		setIndex: func(x *heapItem, i int) { x.idx = i },
	}
}

// checkHeap verifies the heap order and that every element knows its position.
func checkHeap(t *testing.T, h *indexedHeap[*heapItem]) {
	t.Helper()
	for i, x := range h.items {
		if x.idx != i {
			t.Fatalf("element at %d believes it is at %d", i, x.idx)
		}
		if i > 0 && h.less(x, h.items[(i-1)/arity]) {
			t.Fatalf("element at %d is less than its parent", i)
		}
	}
}

func TestIndexedHeapKeepsOrderAndPositions(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	h := newTestHeap()
	var live []*heapItem
	for step := range 5000 {
		switch op := rng.IntN(4); {
		case op == 0 || len(live) == 0:
			x := &heapItem{key: rng.IntN(1000)}
			h.Push(x)
			live = append(live, x)
		case op == 1:
			i := rng.IntN(len(live))
			x := live[i]
			if got := h.Remove(x.idx); got != x {
				t.Fatalf("step %d: Remove returned another element", step)
			}
			if x.idx != -1 {
				t.Fatalf("step %d: a removed element still has a position", step)
			}
			live = slices.Delete(live, i, i+1)
		case op == 2:
			x := live[rng.IntN(len(live))]
			x.key = rng.IntN(1000)
			h.Fix(x.idx)
		default:
			minKey := slices.MinFunc(live, func(a, b *heapItem) int { return a.key - b.key }).key
			if h.Min().key != minKey {
				t.Fatalf("step %d: Min has key %d, want %d", step, h.Min().key, minKey)
			}
		}
		checkHeap(t, h)
		if h.Len() != len(live) {
			t.Fatalf("step %d: Len %d, want %d", step, h.Len(), len(live))
		}
	}
	var prev int
	for i := 0; h.Len() > 0; i++ {
		x := h.Remove(0)
		if i > 0 && x.key < prev {
			t.Fatalf("popped %d after %d", x.key, prev)
		}
		prev = x.key
	}
}
