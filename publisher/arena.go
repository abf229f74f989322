package publisher

import "sync"

// arenas recycles the buffers that hold the encoded events of a Publish call (Kafka and JetStream): one buffer
// per call instead of a few allocations per event.
var arenas sync.Pool

func getArena(size int) *[]byte {
	if b, ok := arenas.Get().(*[]byte); ok && cap(*b) >= size {
		*b = (*b)[:0]
		return b
	}
	b := make([]byte, 0, max(size, 64<<10))
	return &b
}

func putArena(b *[]byte) {
	if cap(*b) <= 4<<20 {
		arenas.Put(b)
	}
}
