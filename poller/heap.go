package poller

// indexedHeap is a binary min-heap ordered by less that tells each element its position through setIndex (-1 when
// it leaves the heap), so that an element whose key changed is re-sifted, or an element is removed, in O(log n)
// without a search. The scheduler keeps its due tags in one, the token pool its live tokens. It is not safe for
// concurrent use.
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

// up moves the element at j toward the root while it is less than its parent. Elements are moved into the hole,
// not swapped, so each step writes one slot.
func (h *indexedHeap[T]) up(j int) {
	x := h.items[j]
	for j > 0 {
		i := (j - 1) / 2
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
		l := 2*i + 1
		if l >= n {
			break
		}
		j := l
		if r := l + 1; r < n && h.less(h.items[r], h.items[l]) {
			j = r
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
