package publisher

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"

	"github.com/tagstream/tagstream/internal/testkit"
	"github.com/tagstream/tagstream/schema"
)

// shortFile is a file whose next cut writes write only part of what they are given and then fail with ENOSPC,
// as a full disk or a file size limit does.
type shortFile struct {
	*os.File
	mu  sync.Mutex
	cut int // writes still to cut short
}

func (f *shortFile) cutNext(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cut = n
}

func (f *shortFile) Write(b []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cut > 0 {
		f.cut--
		n, _ := f.File.Write(b[:len(b)/2+1])
		return n, syscall.ENOSPC
	}
	return f.File.Write(b)
}

// pipeWriter is an output that cannot be truncated (a pipe, a terminal), cutting writes short like shortFile.
type pipeWriter struct {
	buf bytes.Buffer
	cut int
}

func (w *pipeWriter) Write(b []byte) (int, error) {
	if w.cut > 0 {
		w.cut--
		n, _ := w.buf.Write(b[:len(b)/2+1])
		return n, syscall.ENOSPC
	}
	return w.buf.Write(b)
}

// openShort opens path for appending, as OpenFile and OpenDeadLetterFile do, behind a shortFile.
func openShort(t *testing.T, path string) *shortFile {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &shortFile{File: f}
}

// ndjsonLines splits raw into lines and reports the ids of the lines that hold an event (or a letter's event id)
// and the number of lines that do not parse.
func ndjsonLines(t *testing.T, raw []byte) (ids []string, bad int) {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var v struct {
			ID      string `json:"id"`
			EventID string `json:"event_id"`
		}
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			bad++
			continue
		}
		ids = append(ids, v.ID+v.EventID)
	}
	if len(raw) > 0 && raw[len(raw)-1] != '\n' {
		t.Fatalf("the output ends inside a line: %q", raw[max(0, len(raw)-40):])
	}
	return ids, bad
}

func eventIDs(events []*schema.Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.ID
	}
	return out
}

// TestNDJSONOutputsLeaveNoTornLine is issue 10.5: a write cut short (disk full, file size limit) must not leave a
// partial line that the retried batch is glued onto.
func TestNDJSONOutputsLeaveNoTornLine(t *testing.T) {
	t.Parallel()
	first, second := testkit.MediaEvents("a", 0, 3, 200), testkit.MediaEvents("a", 3, 3, 200)
	t.Run("the file sink truncates a short write back to the last whole line", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "events.ndjson")
		f := openShort(t, path)
		p := NewFile(f, FileConfig{}, testLogger(t), nil)
		publishOK(t, p, first)
		f.cutNext(1)
		if err := p.Publish(context.Background(), second); !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("Publish on a full disk = %v, want ENOSPC", err)
		}
		publishOK(t, p, second) // the poller retries the batch
		raw, _ := os.ReadFile(path)
		ids, bad := ndjsonLines(t, raw)
		if bad != 0 || !slices.Equal(ids, eventIDs(append(first, second...))) {
			t.Fatalf("%d bad lines, events %q; want the two batches whole", bad, ids)
		}
	})
	t.Run("the file sink ends a torn line it cannot truncate before the next batch", func(t *testing.T) {
		w := &pipeWriter{}
		p := NewFile(w, FileConfig{}, testLogger(t), nil)
		publishOK(t, p, first)
		w.cut = 1
		if err := p.Publish(context.Background(), second); err == nil {
			t.Fatal("Publish of a cut write = nil")
		}
		publishOK(t, p, second)
		ids, bad := ndjsonLines(t, w.buf.Bytes())
		if bad != 1 || !slices.Equal(ids, eventIDs(append(append(append([]*schema.Event{}, first...), second[0]), second...))) {
			t.Fatalf("%d bad lines, events %q; want one torn line and every line of the retried batch whole", bad, ids)
		}
	})
	t.Run("the dead-letter file truncates a short write back to the last whole line", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "dead.ndjson")
		f := openShort(t, path)
		d := newFileDeadLetter(f)
		letters := func(events []*schema.Event) []Letter {
			out := make([]Letter, len(events))
			for i, e := range events {
				out[i] = Letter{Event: e, Reason: "too large", Publisher: "kafka"}
			}
			return out
		}
		ctx := context.Background()
		if err := d.DeadLetter(ctx, letters(first)); err != nil {
			t.Fatal(err)
		}
		f.cutNext(1)
		if err := d.DeadLetter(ctx, letters(second)); !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("DeadLetter on a full disk = %v, want ENOSPC", err)
		}
		if err := d.DeadLetter(ctx, letters(second)); err != nil {
			t.Fatal(err)
		}
		raw, _ := os.ReadFile(path)
		ids, bad := ndjsonLines(t, raw)
		if bad != 0 || !slices.Equal(ids, eventIDs(append(first, second...))) {
			t.Fatalf("%d bad lines, letters for %q; want the two batches whole", bad, ids)
		}
	})
	t.Run("a file that already holds lines keeps them when the first write is cut short", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "events.ndjson")
		p0, err := OpenFile(path, FileConfig{}, testLogger(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		publishOK(t, p0, first)
		_ = p0.Close()
		f := openShort(t, path)
		f.cutNext(1)
		p := NewFile(f, FileConfig{}, testLogger(t), nil)
		if err := p.Publish(context.Background(), second); err == nil {
			t.Fatal("Publish of a cut write = nil")
		}
		publishOK(t, p, second)
		raw, _ := os.ReadFile(path)
		ids, bad := ndjsonLines(t, raw)
		if bad != 0 || !slices.Equal(ids, eventIDs(append(first, second...))) {
			t.Fatalf("%d bad lines, events %q; want the earlier lines and the batch whole", bad, ids)
		}
	})
}
