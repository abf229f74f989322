package group

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/tagstream/tagstream/internal/testkit"
	"github.com/tagstream/tagstream/poller/checkpoint"
	"github.com/tagstream/tagstream/schema"
)

func TestTagSetFunctions(t *testing.T) {
	t.Parallel()
	urls := sharedURLs(t)
	_, js := connect(t, urls)
	ctx := context.Background()
	set := uniq("set")
	t.Run("listing or removing in a group that does not exist fails", func(t *testing.T) {
		if _, err := ListTags(ctx, js, "nosuchgroup"); !errors.Is(err, ErrNoGroup) {
			t.Fatalf("ListTags: %v, want ErrNoGroup", err)
		}
		if err := RemoveTags(ctx, js, "nosuchgroup", "coffee"); !errors.Is(err, ErrNoGroup) {
			t.Fatalf("RemoveTags: %v, want ErrNoGroup", err)
		}
	})
	t.Run("invalid tags and group names are refused before anything is written", func(t *testing.T) {
		for _, tc := range []struct {
			name, group string
			tags        []string
			want        []error
		}{
			{"a tag with a space", set, []string{"ok", "no space"}, []error{ErrInvalidTag, schema.ErrInvalidTag}},
			{"a tag with its hash", set, []string{"#coffee"}, []error{ErrInvalidTag, schema.ErrInvalidTag}},
			{"an empty tag", set, []string{""}, []error{ErrInvalidTag}},
			{"a group with a dot", "a.b", []string{"coffee"}, []error{ErrConfig}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				err := AddTags(ctx, js, tc.group, tc.tags...)
				for _, w := range tc.want {
					if !errors.Is(err, w) {
						t.Fatalf("AddTags: %v, want %v", err, w)
					}
				}
			})
		}
		if _, err := ListTags(ctx, js, set); !errors.Is(err, ErrNoGroup) {
			t.Fatalf("a refused AddTags created the group: ListTags: %v", err)
		}
	})
	t.Run("adding, listing and removing", func(t *testing.T) {
		if err := AddTags(ctx, js, set, "coffee", "café", "tea"); err != nil {
			t.Fatal(err)
		}
		if err := AddTags(ctx, js, set, "coffee"); err != nil { // again: nothing changes
			t.Fatal(err)
		}
		if err := RemoveTags(ctx, js, set, "tea", "never_added"); err != nil {
			t.Fatal(err)
		}
		got, err := ListTags(ctx, js, set)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"café", "coffee"}; !slices.Equal(got, want) {
			t.Fatalf("ListTags = %v, want %v", got, want)
		}
		if err := AddTags(ctx, js, set, "tea"); err != nil {
			t.Fatal(err)
		}
		if got, _ := ListTags(ctx, js, set); !slices.Equal(got, []string{"café", "coffee", "tea"}) {
			t.Fatalf("after adding tea again: %v", got)
		}
	})
	t.Run("a tag key deleted by the clean-up leaves a marker that is not listed", func(t *testing.T) {
		state, err := openState(ctx, js, set, 0, false)
		if err != nil {
			t.Fatal(err)
		}
		if err := state.Delete(ctx, prefixTag+tagKey("tea")); err != nil { // what reconcile does after Retention
			t.Fatal(err)
		}
		// ListTags waits for every key the stream holds, the marker included: were deletes not read, it would
		// fail after listEndWait.
		got, err := ListTags(ctx, js, set)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"café", "coffee"}; !slices.Equal(got, want) {
			t.Fatalf("ListTags = %v, want %v", got, want)
		}
	})
}

func TestTagsChangeWhileMembersRun(t *testing.T) {
	t.Parallel()
	urls := sharedURLs(t)
	_, js := connect(t, urls)
	ctx := context.Background()
	group := uniq("live")
	cursors, err := checkpoint.NewJetStreamKV(ctx, js, checkpoint.KVConfig{Bucket: group + "-cursors", Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{"coffee", "tea"} {
		putCursor(t, cursors, tag, checkpoint.State{Cursor: tag + "-cursor"})
	}
	if err := AddTags(ctx, js, group, "coffee", "tea"); err != nil {
		t.Fatal(err)
	}
	o := newOracle()
	cfg := baseConfig(group, "m1")
	cfg.Retention = time.Hour
	cfg.Cursors = cursors
	ms := []*member{startMember(t, urls, cfg, o), startMember(t, urls, baseConfig(group, "m2"), o)}
	waitCovered(t, "coffee and tea owned", ms, []string{"coffee", "tea"})

	t.Run("an added tag is picked up", func(t *testing.T) {
		if err := AddTags(ctx, js, group, "matcha"); err != nil {
			t.Fatal(err)
		}
		waitCovered(t, "matcha owned too", ms, []string{"coffee", "matcha", "tea"})
	})
	t.Run("a removed tag is dropped and keeps its cursor; added again it resumes", func(t *testing.T) {
		if err := RemoveTags(ctx, js, group, "tea"); err != nil {
			t.Fatal(err)
		}
		waitCovered(t, "tea dropped", ms, []string{"coffee", "matcha"})
		st, ok, err := cursors.Get(ctx, "tea")
		if err != nil || !ok || st.Cursor != "tea-cursor" {
			t.Fatalf("tea's cursor after removal: %+v %v %v", st, ok, err)
		}
		testkit.Eventually(t, waitLong, "tea listed as removed in the status", func() bool {
			rm := ms[0].c.Status().Removed
			return len(rm) == 1 && rm[0].Tag == "tea" && rm[0].Until.Sub(rm[0].Removed) == time.Hour
		})
		if err := AddTags(ctx, js, group, "tea"); err != nil {
			t.Fatal(err)
		}
		waitCovered(t, "tea owned again", ms, []string{"coffee", "matcha", "tea"})
		if st, ok, _ := cursors.Get(ctx, "tea"); !ok || st.Cursor != "tea-cursor" {
			t.Fatalf("tea's cursor after adding it again: %+v", st)
		}
	})
	t.Run("a removed tag's cursor is deleted after the retention", func(t *testing.T) {
		for _, m := range ms {
			m.leave(t)
		}
		cfg := baseConfig(group, "m3")
		cfg.Retention = 100 * time.Millisecond
		cfg.Cursors = cursors
		m := startMember(t, urls, cfg, o)
		waitCovered(t, "m3 owning the three tags", []*member{m}, []string{"coffee", "matcha", "tea"})
		if err := RemoveTags(ctx, js, group, "coffee"); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, waitLong, "coffee's cursor deleted", func() bool {
			_, ok, err := cursors.Get(ctx, "coffee")
			return err == nil && !ok
		})
		if st, ok, _ := cursors.Get(ctx, "tea"); !ok || st.Cursor != "tea-cursor" {
			t.Fatalf("tea's cursor went too: %+v", st)
		}
		testkit.Eventually(t, waitLong, "coffee gone from the status", func() bool {
			return len(m.c.Status().Removed) == 0
		})
		if got, _ := ListTags(ctx, js, group); !slices.Equal(got, []string{"matcha", "tea"}) {
			t.Fatalf("ListTags = %v", got)
		}
	})
	o.check(t)
}

// putCursor writes a cursor, trying again while the bucket just created has no stream leader yet (reading first,
// so that a store that writes over the revision it read accepts the write).
func putCursor(t *testing.T, store checkpoint.Store, tag string, st checkpoint.State) {
	t.Helper()
	testkit.Eventually(t, waitLong, "writing "+tag+"'s cursor", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if _, _, err := store.Get(ctx, tag); err != nil {
			return false
		}
		return store.Put(ctx, tag, st) == nil
	})
}
