package publisher

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/tagstream/tagstream/schema"
)

// A Letter is an event that a broker will never accept, with the reason.
type Letter struct {
	// Event is the rejected event.
	Event *schema.Event
	// Reason says why the broker refused it, e.g. "message too large: 1200000 bytes > max 1048576". It never
	// holds a credential.
	Reason string
	// Publisher names the publisher kind that rejected it: kafka, jetstream, nats or file.
	Publisher string
	// Size is the encoded size of the rejected message in bytes.
	Size int
}

// DeadLetter is a destination for events that a broker will never accept. A publisher hands such events to its
// DeadLetter instead of retrying them forever, so that one bad event does not block its tag. DeadLetter returns
// nil only when every letter is stored; an error makes the publisher retry the whole call with backoff.
// Implementations must be safe for concurrent use.
type DeadLetter interface {
	DeadLetter(ctx context.Context, letters []Letter) error
}

// DeadLetterFunc adapts a function to the DeadLetter interface.
type DeadLetterFunc func(ctx context.Context, letters []Letter) error

// DeadLetter calls f.
func (f DeadLetterFunc) DeadLetter(ctx context.Context, letters []Letter) error {
	return f(ctx, letters)
}

// deadLetterKind names a destination for the dead_letters_total metric.
func deadLetterKind(d DeadLetter) string {
	switch d.(type) {
	case *discard:
		return "discard"
	case *FileDeadLetter:
		return "file"
	case *kafkaDeadLetter:
		return "kafka"
	case *jetStreamDeadLetter:
		return "jetstream"
	case *natsDeadLetter:
		return "nats"
	}
	return "custom"
}

// discard is the default dead-letter destination: it logs each letter at error level and drops it.
type discard struct{ log *slog.Logger }

// Discard returns a DeadLetter that logs every letter (event id, tag, media id, cursor, reason; never the payload) at error level
// and drops it. It is the default of every publisher that has no dead-letter destination configured.
func Discard(logger *slog.Logger) DeadLetter {
	if logger == nil {
		logger = slog.Default()
	}
	return &discard{log: logger}
}

func (d *discard) DeadLetter(_ context.Context, letters []Letter) error {
	for _, l := range letters {
		var mediaID, cursor string
		if l.Event.Data != nil {
			mediaID, cursor = l.Event.Data.MediaID, l.Event.Data.Cursor
		}
		d.log.Error("event rejected by the broker and dropped (no dead-letter destination configured)",
			"publisher", l.Publisher, "event_id", l.Event.ID, "tag", l.Event.Subject, "media_id", mediaID,
			"cursor", cursor, "size", l.Size, "reason", l.Reason)
	}
	return nil
}

// AppendLetter appends the dead-letter wrapper JSON of l to dst:
//
//	{"reason":"...","publisher":"kafka","event_id":"...","tag":"...","type":"...","media_id":"...",
//	 "cursor":"...","link":"...","size":1234,"dead_lettered_at":"2026-01-02T03:04:05Z","truncated":false,
//	 "event":{...structured CloudEvent...}}
//
// Every letter identifies its media, whatever its size: the event id, tag, media id, cursor (for a gap marker,
// its from_cursor), link and reason are always there (each cut to maxLetterField bytes). eventJSON is the
// structured-mode event (l.Event.AppendJSON). When limit > 0 and the letter would exceed limit bytes, only the
// large fields go: "event" holds the event without its caption, tags, renditions, carousel, users in photo and
// raw object, and "truncated" is true; when even that does not fit, "event" is left out as well.
func AppendLetter(dst []byte, l Letter, eventJSON []byte, limit int, now time.Time) []byte {
	start := len(dst)
	var mediaID, cursor, link string
	switch {
	case l.Event.Data != nil:
		mediaID, cursor, link = l.Event.Data.MediaID, l.Event.Data.Cursor, l.Event.Data.Link
	case l.Event.Gap != nil:
		cursor = l.Event.Gap.FromCursor
	}
	dst = append(dst, `{"reason":`...)
	dst = appendJSONString(dst, clip(l.Reason, maxLetterField))
	dst = append(dst, `,"publisher":`...)
	dst = appendJSONString(dst, clip(l.Publisher, maxLetterField))
	dst = append(dst, `,"event_id":`...)
	dst = appendJSONString(dst, clip(l.Event.ID, maxLetterField))
	dst = append(dst, `,"tag":`...)
	dst = appendJSONString(dst, clip(l.Event.Subject, maxLetterField))
	dst = append(dst, `,"type":`...)
	dst = appendJSONString(dst, clip(l.Event.Type, maxLetterField))
	dst = append(dst, `,"media_id":`...)
	dst = appendJSONString(dst, clip(mediaID, maxLetterField))
	dst = append(dst, `,"cursor":`...)
	dst = appendJSONString(dst, clip(cursor, maxLetterField))
	dst = append(dst, `,"link":`...)
	dst = appendJSONString(dst, clip(link, maxLetterField))
	dst = append(dst, `,"size":`...)
	dst = strconv.AppendInt(dst, int64(l.Size), 10)
	dst = append(dst, `,"dead_lettered_at":"`...)
	dst = now.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, '"')
	const whole, cut = `,"truncated":false,"event":}`, `,"truncated":true,"event":}`
	if limit <= 0 || len(dst)-start+len(whole)+len(eventJSON) <= limit {
		dst = append(dst, `,"truncated":false,"event":`...)
		dst = append(dst, eventJSON...)
		return append(dst, '}')
	}
	if slim := slimEvent(l.Event); slim != nil {
		if slimJSON := slim.AppendJSON(nil); len(dst)-start+len(cut)+len(slimJSON) <= limit {
			dst = append(dst, `,"truncated":true,"event":`...)
			dst = append(dst, slimJSON...)
			return append(dst, '}')
		}
	}
	return append(dst, `,"truncated":true}`...)
}

// maxLetterField bounds each string of a letter's wrapper, so that the identifying fields always fit.
const maxLetterField = 1024

// clip cuts s to n bytes at a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// slimEvent returns a copy of a media event without its large fields (caption, tags, renditions, carousel,
// users in photo, raw object), or nil when e has no media data to slim.
func slimEvent(e *schema.Event) *schema.Event {
	if e.Data == nil {
		return nil
	}
	c, d := *e, *e.Data
	d.Caption, d.Tags, d.Carousel, d.UsersInPhoto, d.Raw = "", nil, nil, nil, nil
	d.Images, d.Videos = schema.Renditions{}, schema.Renditions{}
	c.Data = &d
	return &c
}

// appendJSONString appends s as a JSON string.
func appendJSONString(dst []byte, s string) []byte {
	b, err := json.Marshal(s)
	if err != nil { // cannot happen for a string
		return append(dst, `""`...)
	}
	return append(dst, b...)
}

// FileDeadLetter appends dead letters as NDJSON wrapper lines (see AppendLetter, never truncated) to a file and
// fsyncs it before returning. A failed or short write leaves no partial line: the file is truncated back to the
// last whole line, so the retried batch starts on a line of its own. It is safe for concurrent use.
type FileDeadLetter struct {
	mu    sync.Mutex
	f     deadLetterFile
	lines *lineWriter
}

// deadLetterFile is what FileDeadLetter needs of its file (an *os.File; tests inject one that fails mid-write).
type deadLetterFile interface {
	io.WriteCloser
	Sync() error
}

// OpenDeadLetterFile opens (creating or appending to) the dead-letter file at path.
func OpenDeadLetterFile(path string) (*FileDeadLetter, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("publisher: open dead-letter file: %w", err)
	}
	return newFileDeadLetter(f), nil
}

func newFileDeadLetter(f deadLetterFile) *FileDeadLetter {
	return &FileDeadLetter{f: f, lines: newLineWriter(f)}
}

// DeadLetter writes one line per letter and fsyncs the file.
func (d *FileDeadLetter) DeadLetter(_ context.Context, letters []Letter) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.f == nil {
		return fmt.Errorf("publisher: dead-letter file: %w", ErrClosed)
	}
	// The whole batch goes in one write: a failed write leaves nothing half-buffered to be flushed later, and the
	// next call starts afresh (a sticky bufio.Writer error would stall the tag until restart).
	var buf []byte
	now := time.Now()
	for _, l := range letters {
		buf = AppendLetter(buf, l, l.Event.AppendJSON(nil), 0, now)
		buf = append(buf, '\n')
	}
	if err := d.lines.write(buf); err != nil {
		return fmt.Errorf("publisher: write dead-letter file: %w", err)
	}
	if err := d.f.Sync(); err != nil {
		return fmt.Errorf("publisher: sync dead-letter file: %w", err)
	}
	return nil
}

// Close closes the file (every DeadLetter call already wrote and synced its batch). Further DeadLetter calls return ErrClosed.
func (d *FileDeadLetter) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.f == nil {
		return nil
	}
	err := d.f.Close()
	d.f = nil
	if err != nil {
		return fmt.Errorf("publisher: close dead-letter file: %w", err)
	}
	return nil
}

// letterBatch holds the letters of one Publish call that are still to be delivered, with the indexes of their
// events, and the indexes of the events whose letters were delivered. It lives outside the retry loop: letters
// whose delivery failed, or whose attempt failed later on, are delivered by the next attempt.
type letterBatch struct {
	pending []Letter
	idx     []int
	done    []int
}

// add queues the letter of events[i].
func (b *letterBatch) add(i int, l Letter) {
	b.pending = append(b.pending, l)
	b.idx = append(b.idx, i)
}

// deliver hands the queued letters to d and counts them; on failure they stay queued.
func (b *letterBatch) deliver(ctx context.Context, d DeadLetter, m *metricSet) error {
	if len(b.pending) == 0 {
		return nil
	}
	if err := deliverDeadLetters(ctx, d, m, b.pending); err != nil {
		return err
	}
	b.done = append(b.done, b.idx...)
	b.pending, b.idx = nil, nil
	return nil
}

// delivered returns the indexes of the events dead-lettered so far, ascending.
func (b *letterBatch) delivered() []int {
	slices.Sort(b.done)
	return b.done
}

// deliverDeadLetters hands letters to d and counts them.
func deliverDeadLetters(ctx context.Context, d DeadLetter, m *metricSet, letters []Letter) error {
	if len(letters) == 0 {
		return nil
	}
	if err := d.DeadLetter(ctx, letters); err != nil {
		return fmt.Errorf("publisher: dead-letter %d events: %w", len(letters), err)
	}
	m.deadLetters.WithLabelValues(deadLetterKind(d)).Add(float64(len(letters)))
	return nil
}
