package group

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tagstream/tagstream/internal/testkit"
)

func TestInspect(t *testing.T) {
	t.Parallel()
	url := testkit.StartNATS(t).ClientURL()
	_, js := connect(t, url)
	ctx := testkit.Context(t, 2*time.Minute)

	inspect := func(t *testing.T, group string, retention time.Duration) Inspection {
		t.Helper()
		in, err := Inspect(ctx, js, group, retention)
		if err != nil {
			t.Fatalf("Inspect(%s): %v", group, err)
		}
		return in
	}

	t.Run("a group that does not exist is ErrNoGroup, a bad name ErrConfig", func(t *testing.T) {
		if _, err := Inspect(ctx, js, "nosuchgroup", 0); !errors.Is(err, ErrNoGroup) {
			t.Errorf("Inspect(nosuchgroup) = %v, want ErrNoGroup", err)
		}
		if _, err := Inspect(ctx, js, "a.b", 0); !errors.Is(err, ErrConfig) {
			t.Errorf("Inspect(a.b) = %v, want ErrConfig", err)
		}
		if _, err := js.KeyValue(ctx, StateBucket("nosuchgroup")); !errors.Is(err, jetstream.ErrBucketNotFound) {
			t.Errorf("Inspect created the bucket of a group that does not exist: %v", err)
		}
	})

	t.Run("a group with tags and no instance yet: every tag unowned, nothing written", func(t *testing.T) {
		g := uniq("insp-tags")
		if err := AddTags(ctx, js, g, "coffee", "tea"); err != nil {
			t.Fatal(err)
		}
		state, err := js.KeyValue(ctx, StateBucket(g))
		if err != nil {
			t.Fatal(err)
		}
		before, err := lastSeq(ctx, state)
		if err != nil {
			t.Fatal(err)
		}
		in := inspect(t, g, 0)
		if len(in.Members) != 0 || in.Lease != 0 || !slices.Equal(in.Unowned, []string{"coffee", "tea"}) || len(in.Tags) != 2 {
			t.Errorf("inspection = %+v; want no members, no lease, coffee and tea unowned", in)
		}
		for _, ti := range in.Tags {
			if ti.Owner != "" || ti.Waiting != "" || ti.Added.IsZero() {
				t.Errorf("tag %+v: want no owner, nobody waited for, and when it was added", ti)
			}
		}
		after, err := lastSeq(ctx, state)
		if err != nil {
			t.Fatal(err)
		}
		if after != before {
			t.Errorf("the state bucket moved from revision %d to %d during Inspect", before, after)
		}
		if _, err := js.KeyValue(ctx, MembersBucket(g)); !errors.Is(err, jetstream.ErrBucketNotFound) {
			t.Errorf("Inspect created the members bucket: %v", err)
		}
	})

	t.Run("a running group: members, owners, shares, rates and removed tags", func(t *testing.T) {
		g := uniq("insp-run")
		tags := makeTags(12)
		if err := AddTags(ctx, js, g, append(tags, "gone_soon")...); err != nil {
			t.Fatal(err)
		}
		a := startMember(t, url, baseConfig(g, "alpha"), nil)
		b := startMember(t, url, baseConfig(g, "beta"), nil)
		ms := []*member{a, b}
		if err := RemoveTags(ctx, js, g, "gone_soon"); err != nil {
			t.Fatal(err)
		}
		owners := waitCovered(t, "the tags spread over alpha and beta", ms, tags, a, b)
		a.c.ReportRates(map[string]float64{tags[0]: 0.25, tags[1]: 0.5, tags[2]: 1.5})
		b.c.ReportRates(map[string]float64{tags[0]: 0.25, tags[1]: 0.5, tags[2]: 1.5})

		var in Inspection
		testkit.Eventually(t, waitLong, "the inspection to show the owners, both shares of each token and the rates", func() bool {
			in = inspect(t, g, 48*time.Hour)
			if len(in.Members) != 2 || len(in.Unowned) != 0 || len(in.Tokens) != len(testTokens) {
				return false
			}
			for _, ts := range in.Tokens {
				if len(ts.Shares) != 2 {
					return false
				}
			}
			for _, ti := range in.Tags[:3] {
				if ti.RateEstimate == 0 {
					return false
				}
			}
			return true
		})
		if in.Group != g || in.Self != "" || in.Joined || in.Lease != 2*time.Second || in.LeaseSeconds != 2 || in.Time.IsZero() {
			t.Errorf("header %+v: want the group, no self, the lease of 2s", in.Status)
		}
		for _, m := range in.Members {
			var want []string
			for _, tag := range tags {
				if owners[tag] == m.Name {
					want = append(want, tag)
				}
			}
			if !slices.Equal(m.Tags, want) || m.Started.IsZero() || m.Heartbeat.IsZero() {
				t.Errorf("member %s: tags %v, started %v, heartbeat %v; want the tags its poller polls %v and both times",
					m.Name, m.Tags, m.Started, m.Heartbeat, want)
			}
		}
		if len(in.Tags) != len(tags) {
			t.Fatalf("tags %+v: want the %d tags of the set", in.Tags, len(tags))
		}
		for i, ti := range in.Tags {
			if ti.Tag != tags[i] || ti.Owner != owners[ti.Tag] || ti.OwnerSince.IsZero() {
				t.Errorf("tag %+v: want %s owned by %s, with the time it was taken", ti, tags[i], owners[tags[i]])
			}
		}
		for i, want := range []float64{0.25, 0.5, 1.5} {
			if got := in.Tags[i]; got.RateEstimate != want || got.RateAt.IsZero() {
				t.Errorf("tag %s: rate %g stored at %v, want %g", got.Tag, got.RateEstimate, got.RateAt, want)
			}
		}
		for _, ts := range in.Tokens {
			if ts.Total > 1+1e-9 || ts.Total < 0.5 || ts.Shares["alpha"] <= 0 || ts.Shares["beta"] <= 0 {
				t.Errorf("token %s: shares %v, total %g; want both members, summing to at most 1", ts.Fingerprint, ts.Shares, ts.Total)
			}
		}
		st := a.c.Status()
		if st.LeaseSeconds != in.LeaseSeconds || len(st.Members) != len(in.Members) || len(st.Unowned) != 0 || len(st.Removed) != 1 {
			t.Errorf("alpha's own Status: lease %gs, %d members, unowned %v, removed %v; the buckets say %gs, %d members, none, gone_soon",
				st.LeaseSeconds, len(st.Members), st.Unowned, st.Removed, in.LeaseSeconds, len(in.Members))
		}
		if len(in.Removed) != 1 || in.Removed[0].Tag != "gone_soon" || in.Removed[0].Until.Sub(in.Removed[0].Removed) != 48*time.Hour {
			t.Errorf("removed %+v: want gone_soon, kept for the 48h retention given", in.Removed)
		}
	})

	t.Run("each member's status URL as it advertises it; a record of an older version, without one, still reads", func(t *testing.T) {
		g := uniq("insp-url")
		if err := AddTags(ctx, js, g, "coffee"); err != nil {
			t.Fatal(err)
		}
		cfg := baseConfig(g, "alpha")
		cfg.StatusURL = "http://host-a:9464"
		a := startMember(t, url, cfg, nil)
		waitCovered(t, "alpha to own coffee", []*member{a}, []string{"coffee"}, a)
		members, err := js.KeyValue(ctx, MembersBucket(g))
		if err != nil {
			t.Fatal(err)
		}
		// As a member of the previous version writes it (expiring after the lease).
		old := `{"v":1,"inc":"00112233aabbccdd","started":"2026-11-30T05:00:00Z","tokens":[{"fp":"aaaa0001","rph":5000,"window_s":3600}]}`
		if _, err := members.Create(ctx, "old", []byte(old)); err != nil {
			t.Fatal(err)
		}
		in := inspect(t, g, 0)
		got := map[string]string{}
		for _, m := range in.Members {
			got[m.Name] = m.StatusURL
		}
		if len(got) != 2 || got["alpha"] != "http://host-a:9464" || got["old"] != "" {
			t.Errorf("members %+v: want alpha with http://host-a:9464 and old without a URL", in.Members)
		}
		for _, m := range a.c.Status().Members {
			if m.Name == "alpha" && m.StatusURL != "http://host-a:9464" {
				t.Errorf("alpha's own Status shows its URL as %q", m.StatusURL)
			}
		}
	})

	t.Run("a member whose lease expired: its tags are unowned, waiting for it", func(t *testing.T) {
		g := uniq("insp-dead")
		if err := AddTags(ctx, js, g, "coffee", "tea"); err != nil {
			t.Fatal(err)
		}
		a := startMember(t, url, baseConfig(g, "alpha"), nil)
		waitCovered(t, "alpha to own both tags", []*member{a}, []string{"coffee", "tea"}, a)
		a.c.stalled.Store(true) // as if paused: no more heartbeats, its key expires after the lease
		var in Inspection
		testkit.Eventually(t, waitLong, "alpha's membership to expire", func() bool {
			in = inspect(t, g, 0)
			return len(in.Members) == 0
		})
		if !slices.Equal(in.Unowned, []string{"coffee", "tea"}) {
			t.Errorf("unowned %v, want coffee and tea", in.Unowned)
		}
		for _, ti := range in.Tags {
			if ti.Owner != "" || ti.Waiting != "alpha" {
				t.Errorf("tag %+v: want no owner, waiting for alpha", ti)
			}
		}
		a.c.stalled.Store(false)
	})
}

// TestInspectEndsWithItsContext checks that Inspect ends with its context.
func TestInspectEndsWithItsContext(t *testing.T) {
	t.Parallel()
	_, js := connect(t, testkit.StartNATS(t).ClientURL())
	g := uniq("insp-ctx")
	if err := AddTags(context.Background(), js, g, "coffee"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Inspect(ctx, js, g, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Inspect with a cancelled context = %v, want context.Canceled", err)
	}
}

func TestCheckStatusURL(t *testing.T) {
	for _, tc := range []struct {
		name, url string
		want      string // "" = valid
	}{
		{"empty advertises none", "", ""},
		{"a host and port", "http://host-a:9464", ""},
		{"https behind a path", "https://ops.example.com/tagstream/a", ""},
		{"an IPv6 address", "http://[::1]:9464", ""},
		{"a host:port without scheme is refused", "host-a:9464", "want an http or https URL"},
		{"another scheme is refused", "ftp://host-a", "want an http or https URL"},
		{"no host is refused", "http:///status", "want an http or https URL"},
		{"a password is refused, and not printed", "http://user:s3cr3tpass@host-a:9464", "holds a user or password"},
		{"a query is refused, and not printed", "http://host-a:9464/?token=s3cr3tpass", "no query or fragment"},
		{"a fragment is refused", "http://host-a:9464/#s3cr3tpass", "no query or fragment"},
		{"a URL that does not parse is refused, and not printed", "http://user:s3cr3tpass@ho st:9464", "does not parse"},
		{"a long URL is refused", "http://host-a/" + strings.Repeat("x", 600), "longer than 512"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckStatusURL(tc.url)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("CheckStatusURL(%q) = %v", tc.url, err)
				}
				return
			}
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("CheckStatusURL(%q) = %v, want ErrConfig saying %q", tc.url, err, tc.want)
			}
			if strings.Contains(err.Error(), "s3cr3tpass") {
				t.Errorf("the error prints the secret: %v", err)
			}
		})
	}
}
