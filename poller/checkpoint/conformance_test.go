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
)

// storeFactory opens a fresh, empty store for one subtest; the store is closed by t.Cleanup.
type storeFactory struct {
	name string
	open func(t *testing.T) Store
}

func factories() []storeFactory {
	return []storeFactory{
		{"memory", func(t *testing.T) Store { return NewMemory() }},
		{"bolt", openTestBolt},
		{"bolt with group commit", func(t *testing.T) Store {
			t.Helper()
			s, err := OpenBolt(t.TempDir()+"/cursors.db", &BoltOptions{GroupCommit: 2 * time.Millisecond})
			if err != nil {
				t.Fatalf("OpenBolt: %v", err)
			}
			return s
		}},
		{"jetstream kv", openTestKV},
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

// hostileTags are tags that are not valid NATS subjects or KV keys as they are, or that stress encodings.
func hostileTags() []string {
	return []string{
		"plain",
		"a.b.c",
		"*",
		">",
		"foo.*.>",
		"with space",
		" leading and trailing ",
		"日本語のタグ",
		"emoji🎉🔥",
		"Ünïcödé-ß",
		"..",
		".",
		"a/b\\c",
		"=",
		"-",
		"_",
		"tab\tand\nnewline",
		"nul\x00byte",
		"percent%2Fescaped%",
		"not utf-8 \xff\xfe",
		"$KV.tagstream_cursors.x",
		strings.Repeat("x", MaxTagLen),
		strings.Repeat("é", MaxTagLen/2),
	}
}

func sampleState(i int) State {
	return State{
		Cursor:   fmt.Sprintf("17%08d_%d", i, i%7),
		Recent:   []string{fmt.Sprintf("m%d", i), fmt.Sprintf("m%d", i+1), "ids \"quoted\" ✓"},
		Segments: []string{fmt.Sprintf("seg-%d", i)},
		Updated:  time.Date(2026, 11, 30, 4, 0, 0, 123456789, time.UTC).Add(time.Duration(i) * time.Second),
	}
}

// sameState compares states the way a store promises to keep them: equal strings, equal slices (nil and empty
// are the same), and the same instant.
func sameState(a, b State) bool {
	return a.Cursor == b.Cursor && slices.Equal(a.Recent, b.Recent) && slices.Equal(a.Segments, b.Segments) &&
		a.Updated.Equal(b.Updated)
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
	cases := []struct {
		name string
		run  func(t *testing.T, s Store)
	}{
		{"a tag never put is reported as missing", func(t *testing.T, s Store) {
			st, ok := mustGet(t, s, "nothing-here")
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
			if err := s.Delete(context.Background(), "never-existed"); err != nil {
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
		{"hostile tags round-trip and are listed sorted", func(t *testing.T, s Store) {
			tags := hostileTags()
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
			// Pairs that a careless encoding (case folding, dropping dots, trimming) would merge.
			tags := []string{"Tag", "tag", "a.b", "ab", "a_b", "a-b", "a b", "a", "a "}
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
		{"invalid tags are refused with ErrInvalidTag", func(t *testing.T, s Store) {
			for _, tag := range []string{"", strings.Repeat("y", MaxTagLen+1)} {
				if err := s.Put(context.Background(), tag, State{}); !errors.Is(err, ErrInvalidTag) {
					t.Errorf("Put(len %d) = %v; want ErrInvalidTag", len(tag), err)
				}
				if _, _, err := s.Get(context.Background(), tag); !errors.Is(err, ErrInvalidTag) {
					t.Errorf("Get(len %d) = %v; want ErrInvalidTag", len(tag), err)
				}
				if err := s.Delete(context.Background(), tag); !errors.Is(err, ErrInvalidTag) {
					t.Errorf("Delete(len %d) = %v; want ErrInvalidTag", len(tag), err)
				}
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
						if err := s.Put(context.Background(), fmt.Sprintf("own-%d", w), st); err != nil {
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
				got, _ := mustGet(t, s, fmt.Sprintf("own-%d", w))
				if want := fmt.Sprintf("%d-%d", w, puts-1); got.Cursor != want {
					t.Errorf("own-%d: cursor %q; want %q", w, got.Cursor, want)
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
