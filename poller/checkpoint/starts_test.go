package checkpoint

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

// TestBoltStartRecord: a new file has an empty record; SetStarts replaces the whole record, durably (it survives
// reopening), at nanosecond precision in UTC; the cursors bucket (Tags, Get) does not see it; invalid tags are
// refused; a closed store says so.
func TestBoltStartRecord(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	b, err := OpenBolt(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.Starts(ctx)
	if err != nil || len(got) != 0 {
		t.Fatalf("Starts of a new file = %v, %v; want an empty record", got, err)
	}
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 123456789, time.FixedZone("CET", 3600))
	t1 := t0.Add(time.Hour)
	if err := b.SetStarts(ctx, map[string]time.Time{"a": t0, "b": t0, "日本": t1}); err != nil {
		t.Fatal(err)
	}
	if err := b.SetStarts(ctx, map[string]time.Time{"b": t0, "c": t1, "日本": t1}); err != nil {
		t.Fatal(err)
	}
	if err := b.SetStarts(ctx, map[string]time.Time{"bad tag": t0}); !errors.Is(err, ErrInvalidTag) {
		t.Errorf("SetStarts with an invalid tag: %v, want ErrInvalidTag", err)
	}
	if tags, err := b.Tags(ctx); err != nil || len(tags) != 0 {
		t.Errorf("Tags = %v, %v; the record is not a state", tags, err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Starts(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Starts after Close: %v, want ErrClosed", err)
	}
	if err := b.SetStarts(ctx, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("SetStarts after Close: %v, want ErrClosed", err)
	}
	b, err = OpenBolt(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	got, err = b.Starts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]time.Time{"b": t0, "c": t1, "日本": t1}
	if len(got) != len(want) {
		t.Fatalf("Starts = %v, want %v (the last record, whole)", got, want)
	}
	for tag, at := range want {
		if !got[tag].Equal(at) {
			t.Errorf("Starts[%q] = %v, want %v", tag, got[tag], at)
		}
	}
	if err := b.SetStarts(ctx, map[string]time.Time{}); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Starts(ctx); err != nil || len(got) != 0 {
		t.Errorf("Starts after an empty SetStarts = %v, %v; want none", got, err)
	}
}
