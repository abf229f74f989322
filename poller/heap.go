package poller

// indexedHeap is a 4-ary min-heap ordered by less that tells each element its position through setIndex (-1 when
// it leaves the heap), so that an element whose key changed is re-sifted, or an element is removed, in O(log n)
// without a search. The scheduler keeps its due tags in one, the token pool its live tokens. Four children per
// node halve the depth of a binary heap: at 100,000 tags a sift moves an element about 8 levels instead of 17, and
// each move's setIndex writes to an element elsewhere in memory (a cache miss), while the extra compares read
// neighbouring slots. It is not safe for concurrent use.
type indexedHeap[T any] struct {
	items    []T
	less     func(a, b T) bool
	setIndex func(x T, i int)
}

// Len returns the number of elements.
func (h *indexedHeap[T]) Len() int { return len(h.items) }

// Min returns the least element; the heap must not be empty.
func (h *indexedHeap[T]) Min() T { return h.items[0] }

// Push adds x.
func (h *indexedHeap[T]) Push(x T) {
	h.items = append(h.items, x)
	h.up(len(h.items) - 1)
}

// Remove removes and returns the element at position i.
func (h *indexedHeap[T]) Remove(i int) T {
	x := h.items[i]
	last := len(h.items) - 1
	if i != last {
		h.items[i] = h.items[last]
	}
	var zero T
	h.items[last] = zero
	h.items = h.items[:last]
	h.setIndex(x, -1)
	if i < last && !h.down(i) {
		h.up(i)
	}
	return x
}

// Fix restores the order after the key of the element at position i changed.
func (h *indexedHeap[T]) Fix(i int) {
	if !h.down(i) {
		h.up(i)
	}
}

// arity is the number of children of a node.
const arity = 4

// up moves the element at j toward the root while it is less than its parent. Elements are moved into the hole,
// not swapped, so each step writes one slot.
func (h *indexedHeap[T]) up(j int) {
	x := h.items[j]
	for j > 0 {
		i := (j - 1) / arity
		if !h.less(x, h.items[i]) {
			break
		}
		h.items[j] = h.items[i]
		h.setIndex(h.items[j], j)
		j = i
	}
	h.items[j] = x
	h.setIndex(x, j)
}

// down moves the element at i0 toward the leaves while a child is less; it reports whether it moved.
func (h *indexedHeap[T]) down(i0 int) bool {
	i, n := i0, len(h.items)
	x := h.items[i]
	for {
		first := arity*i + 1
		if first >= n {
			break
		}
		j := first
		for c := first + 1; c < min(first+arity, n); c++ {
			if h.less(h.items[c], h.items[j]) {
				j = c
			}
		}
		if !h.less(h.items[j], x) {
			break
		}
		h.items[i] = h.items[j]
		h.setIndex(h.items[i], i)
		i = j
	}
	h.items[i] = x
	h.setIndex(x, i)
	return i > i0
}
