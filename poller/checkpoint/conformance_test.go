package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tagstream/tagstream/schema"
)

// storeFactory opens a fresh, empty store for one subtest; the store is closed by t.Cleanup. openShared, when not
// nil, opens two writers on one fresh backing store (two instances on one bucket); it is nil for the
// implementations that have a single writer by construction (Memory lives in one process, Bolt holds an exclusive
// file lock).
type storeFactory struct {
	name       string
	open       func(t *testing.T) Store
	openShared func(t *testing.T) (a, b Store)
}

func factories() []storeFactory {
	return []storeFactory{
		{name: "memory", open: func(t *testing.T) Store { return NewMemory() }},
		{name: "bolt", open: openTestBolt},
		{name: "bolt with group commit", open: func(t *testing.T) Store {
			t.Helper()
			s, err := OpenBolt(t.TempDir()+"/cursors.db", &BoltOptions{GroupCommit: 2 * time.Millisecond})
			if err != nil {
				t.Fatalf("OpenBolt: %v", err)
			}
			return s
		}},
		{name: "jetstream kv", open: openTestKV, openShared: openSharedKV},
	}
}

func openTestBolt(t *testing.T) Store {
	t.Helper()
	s, err := OpenBolt(t.TempDir()+"/state/cursors.db", nil)
	if err != nil {
		t.Fatalf("OpenBolt: %v", err)
	}
	return s
}

// unusualTags are valid tags (schema.ValidateTag) that are not valid NATS KV keys as they are, or that stress an
// encoding: letters and digits of other scripts, combining marks, 4-byte characters, the longest tags.
func unusualTags() []string {
	return []string{
		"plain",
		"日本語のタグ",
		"Ünïcödé_ß",
		"नमस्ते",     // Devanagari: a virama and a vowel sign are marks
		"ไทย",        // Thai
		"café",       // precomposed é
		"cafe\u0301", // e + combining acute: a different tag
		"١٢٣_٤٥",     // Arabic-Indic digits
		"𝒳𝒴𝒵",        // 4-byte letters
		"ǅemal",      // a titlecase letter
		"_",
		"__init__",
		"tagstream_cursors",
		strings.Repeat("x", schema.MaxTagRunes),
		strings.Repeat("é", schema.MaxTagRunes),
		strings.Repeat("𝒳", schema.MaxTagRunes), // 400 bytes
	}
}

// invalidTags are tags that schema.ValidateTag refuses, among them what the store accepted under its old rule.
func invalidTags() []string {
	return []string{
		"",
		"#coffee",
		"a.b.c",
		"*",
		">",
		"foo.*.>",
		"with space",
		"a-b",
		"a/b",
		"emoji🎉",
		"tab\tand\nnewline",
		"nul\x00byte",
		"not utf-8 \xff\xfe",
		"$KV.tagstream_cursors.x",
		strings.Repeat("y", schema.MaxTagRunes+1),
		strings.Repeat("é", schema.MaxTagRunes+1),
	}
}

func sampleState(i int) State {
	return State{
		Cursor:   fmt.Sprintf("17%08d_%d", i, i%7),
		Recent:   []string{fmt.Sprintf("m%d", i), fmt.Sprintf("m%d", i+1), "ids \"quoted\" ✓"},
		Segments: []string{fmt.Sprintf("seg-%d", i)},
		Updated:  time.Date(2026, 11, 30, 4, 0, 0, 123456789, time.UTC).Add(time.Duration(i) * time.Second),
		Since:    time.Date(2026, 11, 29, 4, 0, 0, 5, time.UTC).Add(time.Duration(i) * time.Second),
		// Rates that a decimal round trip must keep exactly.
		RateMedia:   float64(i) + 1.0/3,
		RateSeconds: 0.1 + float64(i)*1e-9,
	}
}

// sameState compares states the way a store promises to keep them: equal strings, equal slices (nil and empty
// are the same), and the same instant.
func sameState(a, b State) bool {
	return a.Cursor == b.Cursor && slices.Equal(a.Recent, b.Recent) && slices.Equal(a.Segments, b.Segments) &&
		a.Updated.Equal(b.Updated) && a.Since.Equal(b.Since) && a.RateMedia == b.RateMedia &&
		a.RateSeconds == b.RateSeconds
}

func mustPut(t *testing.T, s Store, tag string, st State) {
	t.Helper()
	if err := s.Put(context.Background(), tag, st); err != nil {
		t.Fatalf("Put(%q): %v", tag, err)
	}
}

func mustGet(t *testing.T, s Store, tag string) (State, bool) {
	t.Helper()
	st, ok, err := s.Get(context.Background(), tag)
	if err != nil {
		t.Fatalf("Get(%q): %v", tag, err)
	}
	return st, ok
}

func mustTags(t *testing.T, s Store) []string {
	t.Helper()
	tags, err := s.Tags(context.Background())
	if err != nil {
		t.Fatalf("Tags: %v", err)
	}
	return tags
}

func TestStoreConformance(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		run  func(t *testing.T, s Store)
	}{
		{"a tag never put is reported as missing", func(t *testing.T, s Store) {
			st, ok := mustGet(t, s, "nothing_here")
			if ok || !sameState(st, State{}) {
				t.Fatalf("Get = %+v, %v; want zero state, false", st, ok)
			}
			if tags := mustTags(t, s); len(tags) != 0 {
				t.Fatalf("Tags = %q; want none", tags)
			}
		}},
		{"a put state is returned by get", func(t *testing.T, s Store) {
			want := sampleState(1)
			mustPut(t, s, "sunset", want)
			got, ok := mustGet(t, s, "sunset")
			if !ok || !sameState(got, want) {
				t.Fatalf("Get = %+v, %v; want %+v, true", got, ok, want)
			}
		}},
		{"the zero state is stored and found", func(t *testing.T, s Store) {
			mustPut(t, s, "fresh", State{})
			got, ok := mustGet(t, s, "fresh")
			if !ok || !sameState(got, State{}) {
				t.Fatalf("Get = %+v, %v; want zero state, true", got, ok)
			}
		}},
		{"a second put replaces the first", func(t *testing.T, s Store) {
			mustPut(t, s, "sunset", sampleState(1))
			want := State{Cursor: "2", Updated: time.Unix(1700000000, 0).UTC()}
			mustPut(t, s, "sunset", want)
			got, _ := mustGet(t, s, "sunset")
			if !sameState(got, want) {
				t.Fatalf("Get = %+v; want %+v (old Recent/Segments must not linger)", got, want)
			}
		}},
		{"the returned state does not alias the stored one", func(t *testing.T, s Store) {
			in := sampleState(3)
			mustPut(t, s, "alias", in)
			in.Recent[0] = "changed after put"
			got, _ := mustGet(t, s, "alias")
			if got.Recent[0] == "changed after put" {
				t.Fatal("the store kept a reference to the caller's slice")
			}
			got.Segments[0] = "changed after get"
			again, _ := mustGet(t, s, "alias")
			if again.Segments[0] == "changed after get" {
				t.Fatal("the store handed out a reference to its own slice")
			}
		}},
		{"delete removes the state and deleting again is fine", func(t *testing.T, s Store) {
			mustPut(t, s, "gone", sampleState(2))
			mustPut(t, s, "kept", sampleState(3))
			for range 2 {
				if err := s.Delete(context.Background(), "gone"); err != nil {
					t.Fatalf("Delete: %v", err)
				}
			}
			if _, ok := mustGet(t, s, "gone"); ok {
				t.Fatal("deleted tag is still found")
			}
			if err := s.Delete(context.Background(), "never_existed"); err != nil {
				t.Fatalf("Delete of a missing tag: %v", err)
			}
			if tags := mustTags(t, s); !slices.Equal(tags, []string{"kept"}) {
				t.Fatalf("Tags = %q; want [kept]", tags)
			}
		}},
		{"a deleted tag can be put again", func(t *testing.T, s Store) {
			mustPut(t, s, "phoenix", sampleState(1))
			if err := s.Delete(context.Background(), "phoenix"); err != nil {
				t.Fatal(err)
			}
			mustPut(t, s, "phoenix", sampleState(2))
			got, ok := mustGet(t, s, "phoenix")
			if !ok || !sameState(got, sampleState(2)) {
				t.Fatalf("Get = %+v, %v; want the new state", got, ok)
			}
		}},
		{"tags of any script round-trip and are listed sorted", func(t *testing.T, s Store) {
			tags := unusualTags()
			for i, tag := range tags {
				mustPut(t, s, tag, sampleState(i))
			}
			for i, tag := range tags {
				got, ok := mustGet(t, s, tag)
				if !ok || !sameState(got, sampleState(i)) {
					t.Fatalf("tag %q: Get = %+v, %v; want %+v", tag, got, ok, sampleState(i))
				}
			}
			want := slices.Clone(tags)
			slices.Sort(want)
			if got := mustTags(t, s); !slices.Equal(got, want) {
				t.Fatalf("Tags = %q\nwant %q", got, want)
			}
		}},
		{"similar tags do not collide", func(t *testing.T, s Store) {
			// Tags that a careless encoding (case folding, Unicode normalisation, trimming '_') would merge.
			tags := []string{"Tag", "tag", "ab", "a_b", "a", "_a", "a_", "ａｂ", "café", "cafe\u0301", "ß", "ss", "ǅ", "ǆ"}
			for i, tag := range tags {
				mustPut(t, s, tag, State{Cursor: fmt.Sprint(i)})
			}
			for i, tag := range tags {
				got, _ := mustGet(t, s, tag)
				if got.Cursor != fmt.Sprint(i) {
					t.Fatalf("tag %q: cursor %q; want %d", tag, got.Cursor, i)
				}
			}
		}},
		{"tags the one tag rule refuses are refused with both ErrInvalidTag sentinels", func(t *testing.T, s Store) {
			invalid := func(err error) bool {
				return errors.Is(err, ErrInvalidTag) && errors.Is(err, schema.ErrInvalidTag)
			}
			for _, tag := range invalidTags() {
				if err := s.Put(context.Background(), tag, State{}); !invalid(err) {
					t.Errorf("Put(%.20q) = %v; want checkpoint.ErrInvalidTag and schema.ErrInvalidTag", tag, err)
				}
				if _, _, err := s.Get(context.Background(), tag); !invalid(err) {
					t.Errorf("Get(%.20q) = %v; want checkpoint.ErrInvalidTag and schema.ErrInvalidTag", tag, err)
				}
				if err := s.Delete(context.Background(), tag); !invalid(err) {
					t.Errorf("Delete(%.20q) = %v; want checkpoint.ErrInvalidTag and schema.ErrInvalidTag", tag, err)
				}
			}
			if tags := mustTags(t, s); len(tags) != 0 {
				t.Fatalf("Tags = %q after refused puts; want none", tags)
			}
		}},
		{"a canceled context is refused", func(t *testing.T, s Store) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if err := s.Put(ctx, "t", State{}); !errors.Is(err, context.Canceled) {
				t.Errorf("Put = %v; want context.Canceled", err)
			}
			if _, _, err := s.Get(ctx, "t"); !errors.Is(err, context.Canceled) {
				t.Errorf("Get = %v; want context.Canceled", err)
			}
			if _, err := s.Tags(ctx); !errors.Is(err, context.Canceled) {
				t.Errorf("Tags = %v; want context.Canceled", err)
			}
			if _, ok := mustGet(t, s, "t"); ok {
				t.Error("a Put with a canceled context stored the state")
			}
		}},
		{"a large state round-trips", func(t *testing.T, s Store) {
			want := State{Cursor: strings.Repeat("9", 40)}
			for i := range 2000 {
				want.Recent = append(want.Recent, fmt.Sprintf("%d_%d", 3000000000000000000+i, 17841400000+i))
			}
			for i := range 100 {
				want.Segments = append(want.Segments, fmt.Sprint(i))
			}
			mustPut(t, s, "big", want)
			got, _ := mustGet(t, s, "big")
			if !sameState(got, want) {
				t.Fatal("large state changed on the way through the store")
			}
		}},
		{"concurrent puts keep each writer's last state", func(t *testing.T, s Store) {
			const writers, puts = 8, 25
			var wg sync.WaitGroup
			errs := make(chan error, writers)
			for w := range writers {
				wg.Go(func() {
					for i := range puts {
						st := State{Cursor: fmt.Sprintf("%d-%d", w, i)}
						if err := s.Put(context.Background(), fmt.Sprintf("own_%d", w), st); err != nil {
							errs <- err
							return
						}
						if err := s.Put(context.Background(), "shared", st); err != nil {
							errs <- err
							return
						}
						if _, _, err := s.Get(context.Background(), "shared"); err != nil {
							errs <- err
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			for w := range writers {
				got, _ := mustGet(t, s, fmt.Sprintf("own_%d", w))
				if want := fmt.Sprintf("%d-%d", w, puts-1); got.Cursor != want {
					t.Errorf("own_%d: cursor %q; want %q", w, got.Cursor, want)
				}
			}
			shared, _ := mustGet(t, s, "shared")
			var w int
			if _, err := fmt.Sscanf(shared.Cursor, "%d-", &w); err != nil || shared.Cursor != fmt.Sprintf("%d-%d", w, puts-1) {
				t.Errorf("shared: cursor %q is not any writer's last put", shared.Cursor)
			}
			if n := len(mustTags(t, s)); n != writers+1 {
				t.Errorf("Tags: %d tags; want %d", n, writers+1)
			}
		}},
	}
	for _, f := range factories() {
		t.Run(f.name, func(t *testing.T) {
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					s := f.open(t)
					t.Cleanup(func() { _ = s.Close() })
					tc.run(t, s)
				})
			}
		})
	}
}

func TestClosedStoreRefusesCalls(t *testing.T) {
	for _, f := range factories() {
		t.Run("a closed "+f.name+" store returns ErrClosed", func(t *testing.T) {
			s := f.open(t)
			mustPut(t, s, "t", sampleState(1))
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if err := s.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			ctx := context.Background()
			if err := s.Put(ctx, "t", State{}); !errors.Is(err, ErrClosed) {
				t.Errorf("Put = %v; want ErrClosed", err)
			}
			if _, _, err := s.Get(ctx, "t"); !errors.Is(err, ErrClosed) {
				t.Errorf("Get = %v; want ErrClosed", err)
			}
			if err := s.Delete(ctx, "t"); !errors.Is(err, ErrClosed) {
				t.Errorf("Delete = %v; want ErrClosed", err)
			}
			if _, err := s.Tags(ctx); !errors.Is(err, ErrClosed) {
				t.Errorf("Tags = %v; want ErrClosed", err)
			}
		})
	}
}

func TestDecodeState(t *testing.T) {
	cases := []struct {
		name    string
		in      string
		want    State
		wantErr error
	}{
		{"a version 1 record decodes", `{"v":1,"Cursor":"c1","Recent":["a"],"Segments":null,"Updated":"2026-11-30T04:00:00Z"}`,
			State{Cursor: "c1", Recent: []string{"a"}, Updated: time.Date(2026, 11, 30, 4, 0, 0, 0, time.UTC)}, nil},
		{"fields written by a newer build are ignored", `{"v":1,"Cursor":"c2","FutureField":{"x":1},"Rate":0.5}`,
			State{Cursor: "c2"}, nil},
		{"the start instant and the rate estimate decode", `{"v":1,"Segments":["s"],"Since":"2026-11-30T03:00:00Z","RateMedia":12.5,"RateSeconds":40}`,
			State{Segments: []string{"s"}, Since: time.Date(2026, 11, 30, 3, 0, 0, 0, time.UTC), RateMedia: 12.5, RateSeconds: 40}, nil},
		{"a missing version is corrupt", `{"Cursor":"c"}`, State{}, ErrCorrupt},
		{"an unknown version is corrupt", `{"v":99,"Cursor":"c"}`, State{}, ErrCorrupt},
		{"truncated JSON is corrupt", `{"v":1,"Cursor":"c`, State{}, ErrCorrupt},
		{"a value of the wrong type is corrupt", `{"v":1,"Recent":"not a list"}`, State{}, ErrCorrupt},
		{"an empty value is corrupt", ``, State{}, ErrCorrupt},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeState("t", []byte(tc.in))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v; want %v", err, tc.wantErr)
			}
			if err == nil && !sameState(got, tc.want) {
				t.Fatalf("got %+v; want %+v", got, tc.want)
			}
		})
	}
}

func TestEncodedStateOmitsUnsetNewFields(t *testing.T) {
	b, err := encodeState(State{Cursor: "c"})
	if err != nil {
		t.Fatal(err)
	}
	for _, absent := range []string{"Since", "RateMedia", "RateSeconds"} {
		if strings.Contains(string(b), absent) {
			t.Errorf("encoded %s holds %s although it is unset", b, absent)
		}
	}
}

func TestEncodedStateCarriesVersionAndFields(t *testing.T) {
	b, err := encodeState(sampleState(5))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"v":1`, `"Cursor":"1700000005_5"`, `"Recent":[`, `"Segments":[`, `"Updated":"2026-11-30T04:00:05.123456789Z"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("encoded %s lacks %s", b, want)
		}
	}
	got, err := decodeState("t", b)
	if err != nil || !sameState(got, sampleState(5)) {
		t.Fatalf("round trip = %+v, %v", got, err)
	}
}

// TestSharedStoreWriters checks the compare-and-set contract of the stores that several writers can share: a
// writer only writes over the revision it last read or wrote, and fails with ErrConflict otherwise.
func TestSharedStoreWriters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conflict := func(t *testing.T, op string, err error) {
		t.Helper()
		if !errors.Is(err, ErrConflict) {
			t.Fatalf("%s = %v; want ErrConflict", op, err)
		}
	}
	cases := []struct {
		name string
		run  func(t *testing.T, a, b Store)
	}{
		{"the second writer's put after the first's fails with ErrConflict", func(t *testing.T, a, b Store) {
			mustGet(t, a, "owned")
			mustGet(t, b, "owned")
			mustPut(t, a, "owned", sampleState(1))
			conflict(t, "second writer's Put", b.Put(ctx, "owned", sampleState(2)))
			if got, _ := mustGet(t, a, "owned"); !sameState(got, sampleState(1)) {
				t.Fatalf("state = %+v; the conflicting Put overwrote the first writer's", got)
			}
		}},
		{"a writer whose read is stale fails with ErrConflict", func(t *testing.T, a, b Store) {
			mustPut(t, a, "owned", sampleState(1))
			mustGet(t, b, "owned")
			mustPut(t, a, "owned", sampleState(2))
			conflict(t, "stale Put", b.Put(ctx, "owned", sampleState(3)))
			conflict(t, "second stale Put", b.Put(ctx, "owned", sampleState(4)))
			if got, _ := mustGet(t, a, "owned"); !sameState(got, sampleState(2)) {
				t.Fatalf("state = %+v; want the first writer's last state", got)
			}
		}},
		{"a writer that never read an existing tag does not overwrite it", func(t *testing.T, a, b Store) {
			mustPut(t, a, "owned", sampleState(1))
			conflict(t, "blind Put", b.Put(ctx, "owned", sampleState(2)))
			if got, _ := mustGet(t, b, "owned"); !sameState(got, sampleState(1)) {
				t.Fatalf("state = %+v; the blind Put overwrote it", got)
			}
		}},
		{"a writer that gets again takes the tag over and the first one then conflicts", func(t *testing.T, a, b Store) {
			mustPut(t, a, "owned", sampleState(1))
			mustGet(t, b, "owned")
			mustPut(t, a, "owned", sampleState(2))
			conflict(t, "stale Put", b.Put(ctx, "owned", sampleState(3)))
			if got, _ := mustGet(t, b, "owned"); !sameState(got, sampleState(2)) {
				t.Fatalf("Get = %+v; want the first writer's state", got)
			}
			mustPut(t, b, "owned", sampleState(4))
			mustPut(t, b, "owned", sampleState(5))
			conflict(t, "former owner's Put", a.Put(ctx, "owned", sampleState(6)))
			if got, _ := mustGet(t, a, "owned"); !sameState(got, sampleState(5)) {
				t.Fatalf("state = %+v; want the new owner's last state", got)
			}
		}},
		{"a stale delete fails with ErrConflict and keeps the state", func(t *testing.T, a, b Store) {
			mustPut(t, a, "owned", sampleState(1))
			mustGet(t, b, "owned")
			mustPut(t, a, "owned", sampleState(2))
			conflict(t, "stale Delete", b.Delete(ctx, "owned"))
			if got, ok := mustGet(t, a, "owned"); !ok || !sameState(got, sampleState(2)) {
				t.Fatalf("state = %+v, %v; the stale Delete removed it", got, ok)
			}
		}},
		{"a tag deleted by one writer conflicts with the other's put until it reads the deletion", func(t *testing.T, a, b Store) {
			mustPut(t, a, "owned", sampleState(1))
			mustGet(t, b, "owned")
			if err := a.Delete(ctx, "owned"); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			conflict(t, "Put over a deleted tag", b.Put(ctx, "owned", sampleState(2)))
			if _, ok := mustGet(t, b, "owned"); ok {
				t.Fatal("the deleted tag is found")
			}
			mustPut(t, b, "owned", sampleState(3))
			if got, _ := mustGet(t, a, "owned"); !sameState(got, sampleState(3)) {
				t.Fatalf("state = %+v; want the put after the deletion", got)
			}
		}},
		{"the conflict names the tag and both revisions", func(t *testing.T, a, b Store) {
			mustPut(t, a, "named", sampleState(1))
			mustGet(t, b, "named")
			mustPut(t, a, "named", sampleState(2))
			err := b.Put(ctx, "named", sampleState(3))
			conflict(t, "stale Put", err)
			ka, kb := a.(*JetStreamKV), b.(*JetStreamKV)
			for _, want := range []string{`"named"`, fmt.Sprintf("revision %d", kb.Revision("named")), fmt.Sprintf("revision %d", ka.Revision("named"))} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %s", err, want)
				}
			}
			if ka.Revision("named") <= kb.Revision("named") {
				t.Errorf("revisions: first writer %d, stale writer %d", ka.Revision("named"), kb.Revision("named"))
			}
		}},
		{"of two writers racing on one read exactly one wins", func(t *testing.T, a, b Store) {
			for round := range 20 {
				tag := fmt.Sprintf("race_%d", round)
				if round%2 == 1 {
					mustPut(t, a, tag, sampleState(0)) // races over an existing value too
					mustGet(t, b, tag)
				}
				mustGet(t, a, tag)
				mustGet(t, b, tag)
				errs := make([]error, 2)
				var wg sync.WaitGroup
				for i, s := range []Store{a, b} {
					wg.Go(func() { errs[i] = s.Put(ctx, tag, sampleState(10+i)) })
				}
				wg.Wait()
				won := -1
				for i, err := range errs {
					switch {
					case err == nil:
						if won >= 0 {
							t.Fatalf("round %d: both writers' Puts succeeded", round)
						}
						won = i
					case !errors.Is(err, ErrConflict):
						t.Fatalf("round %d: writer %d: %v", round, i, err)
					}
				}
				if won < 0 {
					t.Fatalf("round %d: both writers conflicted: %v", round, errs)
				}
				if got, _ := mustGet(t, a, tag); !sameState(got, sampleState(10+won)) {
					t.Fatalf("round %d: state %+v is not the winner's", round, got)
				}
			}
		}},
	}
	for _, f := range factories() {
		if f.openShared == nil {
			continue // a single writer by construction: see the implementation's doc
		}
		t.Run(f.name, func(t *testing.T) {
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					a, b := f.openShared(t)
					t.Cleanup(func() { _ = a.Close(); _ = b.Close() })
					tc.run(t, a, b)
				})
			}
		})
	}
}
