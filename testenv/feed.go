package testenv

import (
	"math/rand/v2"
	"sort"
	"sync"
	"time"
)

// feed is one tag's feed: media in the order they were tagged, oldest first. Cursors grow with the position, so
// the slice is sorted by cursor too.
type feed struct {
	name  string
	index int
	codec cursorCodec

	wake    chan struct{} // signals the arrival loop that the rate changed
	running bool          // the arrival loop runs; guarded by Server.lifeMu

	mu       sync.RWMutex
	items    []*media // servable items, oldest first
	gen      *generator
	curRNG   *rand.Rand // steps between numeric cursors
	arrivals *rand.Rand // Poisson gaps
	nextNum  uint64
	nextSeq  uint64
	rate     float64
	truths   []Truth // every media ever posted, in order
	count    int     // media currently in the tag (not deleted)
}

func newFeed(seed int64, name string, index int, rate float64, codec cursorCodec, users []wireUser) *feed {
	h := fnv64(name)
	return &feed{
		name:     name,
		index:    index,
		codec:    codec,
		wake:     make(chan struct{}, 1),
		gen:      newGenerator(seed, name, index, users),
		curRNG:   rand.New(rand.NewPCG(uint64(seed)+h, 0xC0FFEE^h)),
		arrivals: rand.New(rand.NewPCG(uint64(seed)^0xA5A5A5A5, h)),
		nextNum:  numericCursorStart + h%5000,
		rate:     rate,
	}
}

// appendLocked makes a media, puts it at the head of the feed and returns it with its truth index.
// The caller holds f.mu.
func (f *feed) appendLocked(now, created time.Time, late bool) (*media, int) {
	w := f.gen.next(created)
	m := &media{
		tag:     f.name,
		seq:     f.nextSeq,
		late:    late,
		visible: now,
		created: created,
		wire:    w,
	}
	f.nextSeq++
	if f.codec.style == CursorOpaque {
		m.cursor = f.codec.opaque(m.seq)
	} else {
		m.cursor = numericCursor(f.nextNum)
		f.nextNum += 1 + uint64(f.curRNG.IntN(400))
	}
	f.items = append(f.items, m)
	f.count++
	f.truths = append(f.truths, Truth{
		Tag:         f.name,
		Cursor:      m.cursor,
		MediaID:     w.ID,
		CreatedTime: time.Unix(created.Unix(), 0).UTC(),
		VisibleAt:   now,
		Late:        late,
	})
	return m, len(f.truths) - 1
}

// trimLocked drops items that fell out of retention once they are twice the retention, to bound memory.
func (f *feed) trimLocked(retention int) []*media {
	if retention <= 0 || len(f.items) < 2*retention {
		return nil
	}
	cut := len(f.items) - retention
	dropped := append([]*media(nil), f.items[:cut]...)
	f.items = append(f.items[:0:0], f.items[cut:]...)
	return dropped
}

// removeLocked removes the media with the given id from the servable items. It reports whether it was there.
func (f *feed) removeLocked(id string) (*media, bool) {
	for i := len(f.items) - 1; i >= 0; i-- {
		if f.items[i].wire.ID == id {
			m := f.items[i]
			items := make([]*media, 0, len(f.items)-1)
			items = append(items, f.items[:i]...)
			f.items = append(items, f.items[i+1:]...)
			f.count--
			return m, true
		}
	}
	return nil, false
}

// pageQuery is a parsed request for a page of a tag feed.
type pageQuery struct {
	count    int
	min, max bound
}

// page selects the items of one page, newest first, and reports whether older items within the bounds remain.
// The items are copied out under the read lock; a media's JSON is encoded on first use, under mediaMu (the
// Server's) for reading, and never changed in place.
func (f *feed) page(q pageQuery, inclusive bool, retention int, mediaMu *sync.RWMutex, dst [][]byte) (out [][]byte, newest, oldest string, more bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	items := f.items
	if retention > 0 && len(items) > retention {
		items = items[len(items)-retention:]
	}
	lo, hi := 0, len(items)
	if q.min.set {
		lo = sort.Search(len(items), func(i int) bool {
			c := f.codec.compare(items[i], q.min)
			return c > 0 || (inclusive && c == 0)
		})
	}
	if q.max.set {
		hi = sort.Search(len(items), func(i int) bool { return f.codec.compare(items[i], q.max) >= 0 })
	}
	if hi <= lo {
		return dst, "", "", false
	}
	start := lo
	if hi-lo > q.count {
		start = hi - q.count
		more = true
	}
	for i := hi - 1; i >= start; i-- {
		dst = append(dst, items[i].json(mediaMu))
	}
	return dst, items[hi-1].cursor, items[start].cursor, more
}
