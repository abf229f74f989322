package publisher

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tagstream/tagstream/internal/testkit"
	"github.com/tagstream/tagstream/schema"
)

// readNDJSON decodes every line of b as an event.
func readNDJSON(t testing.TB, b []byte) []*schema.Event {
	t.Helper()
	var out []*schema.Event
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		e, err := schema.UnmarshalEvent(sc.Bytes())
		if err != nil {
			t.Fatalf("line %d: %v", len(out)+1, err)
		}
		out = append(out, e)
	}
	return out
}

func TestFileWritesOneStructuredEventPerLine(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	reg := prometheus.NewRegistry()
	p := NewFile(&buf, FileConfig{}, testLogger(t), reg)
	events := fixtureEvents(t)
	publishOK(t, p, events)
	got := readNDJSON(t, buf.Bytes())
	if len(got) != len(events) {
		t.Fatalf("%d lines, want %d", len(got), len(events))
	}
	for i, e := range got {
		if e.ID != events[i].ID || e.Data.Caption != events[i].Data.Caption {
			t.Fatalf("line %d is not event %d", i, i)
		}
	}
	if n := counter(t, reg, "tagstream_publisher_published_total", map[string]string{"publisher": "file"}); n != float64(len(events)) {
		t.Fatalf("published_total = %v", n)
	}
}

func TestOpenFileAppendsAcrossReopensAndKeepsBatchesWhole(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "events.ndjson")
	p, err := OpenFile(path, FileConfig{}, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	tagStream{tags: []string{"a", "b", "c"}, batches: 10, perBatch: 33, captionBytes: 50, timeout: 30 * time.Second}.run(t, p, nil)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(context.Background(), testkit.MediaEvents("a", 0, 1, 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Publish after Close = %v, want ErrClosed", err)
	}
	p2, err := OpenFile(path, FileConfig{}, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	publishOK(t, p2, testkit.MediaEvents("d", 0, 1, 1))
	if err := p2.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := readNDJSON(t, raw)
	if len(got) != 3*330+1 {
		t.Fatalf("%d lines, want %d", len(got), 3*330+1)
	}
	next := map[string]int{}
	for _, e := range got {
		if want := testkit.MediaEvents(e.Subject, next[e.Subject], 1, 0)[0].ID; e.ID != want {
			t.Fatalf("tag %s out of order", e.Subject)
		}
		next[e.Subject]++
	}
}

func TestFilePublishHonoursACancelledContext(t *testing.T) {
	t.Parallel()
	p := NewFile(&bytes.Buffer{}, FileConfig{}, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Publish(ctx, testkit.MediaEvents("a", 0, 1, 1)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Publish = %v, want context.Canceled", err)
	}
}

func TestFileDeadLetterWritesWrappedEvents(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "dl.ndjson")
	d, err := OpenDeadLetterFile(path)
	if err != nil {
		t.Fatal(err)
	}
	events := testkit.MediaEvents("x y", 0, 2, 10)
	letters := []Letter{{Event: events[0], Reason: "too large", Publisher: "kafka", Size: 5}, {Event: events[1], Reason: "invalid", Publisher: "jetstream"}}
	if err := d.DeadLetter(context.Background(), letters); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.DeadLetter(context.Background(), letters); !errors.Is(err, ErrClosed) {
		t.Fatalf("DeadLetter after Close = %v, want ErrClosed", err)
	}
	raw, _ := os.ReadFile(path)
	lines := bytes.Split(bytes.TrimSpace(raw), []byte("\n"))
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2", len(lines))
	}
	for i, line := range lines {
		var l letterJSON
		if err := jsonUnmarshal(line, &l); err != nil {
			t.Fatal(err)
		}
		back, err := schema.UnmarshalEvent(l.Event)
		if err != nil || back.ID != events[i].ID || l.Reason != letters[i].Reason || l.Tag != "x y" {
			t.Fatalf("line %d: %+v %v", i, l, err)
		}
	}
}

func TestAppendLetterDropsOnlyWhatDoesNotFit(t *testing.T) {
	t.Parallel()
	e := testkit.MediaEvents("t", 0, 1, 5000)[0]
	ev := e.AppendJSON(nil)
	tests := []struct {
		name      string
		limit     int
		wantEvent string
	}{
		{"no limit keeps the whole event", 0, "whole"},
		{"a large limit keeps the whole event", 1 << 20, "whole"},
		{"a limit below the event keeps it without its large fields", 1500, "slim"},
		{"a limit below even that leaves the event out", 700, "none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := AppendLetter(nil, Letter{Event: e, Reason: "r\n\"quoted\"", Publisher: "nats", Size: len(ev)}, ev, tt.limit, e.Time)
			l := checkLetter(t, b, e, tt.wantEvent)
			if tt.limit > 0 && len(b) > tt.limit {
				t.Fatalf("letter of %d bytes exceeds the limit %d", len(b), tt.limit)
			}
			if l.Reason != "r\n\"quoted\"" || l.Size != len(ev) || l.Publisher != "nats" {
				t.Fatalf("letter %+v", l)
			}
		})
	}
}
