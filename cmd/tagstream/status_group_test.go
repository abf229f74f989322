package main

import (
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tagstream/tagstream/group"
	"github.com/tagstream/tagstream/internal/config"
	"github.com/tagstream/tagstream/internal/pipeline"
	"github.com/tagstream/tagstream/internal/testkit"
	"github.com/tagstream/tagstream/poller"
	"github.com/tagstream/tagstream/testenv"
)

// askedGroupMember runs member name of group g on the NATS server at url, as groupMember does but with its cursors
// in bucket and change applied to its settings (nil: none), until the test ends.
func askedGroupMember(t *testing.T, sim *testenv.Server, url, g, bucket, name string, change func(*config.Config)) *pipeline.Pipeline {
	t.Helper()
	cfg := config.Defaults()
	cfg.APIURL, cfg.CAFile = sim.URL(), sim.CAFile()
	cfg.Credentials = []config.Credential{{Value: secretTokens[0]}, {Value: secretTokens[1]}}
	cfg.StateDir = filepath.Join(t.TempDir(), "state")
	cfg.Sink, cfg.Output = config.SinkFile, filepath.Join(t.TempDir(), "events.ndjson")
	cfg.MetricsAddr = "127.0.0.1:0"
	cfg.MinInterval, cfg.MaxInterval = 200*time.Millisecond, time.Second
	cfg.CheckpointStore, cfg.KVBucket, cfg.NATSURL = config.StoreJetStreamKV, bucket, url
	cfg.Group, cfg.GroupMember, cfg.GroupReplicas = g, name, 1
	if change != nil {
		change(&cfg)
	}
	if err := config.Validate(&cfg, config.GroupAll, config.Needs{Tokens: true}); err != nil {
		t.Fatal(err)
	}
	p, _ := runPipeline(t, &cfg, pipeline.Deps{Version: "test"})
	return p
}

// statusOfGroup runs `status --group g --json` until ok accepts its report, and returns it.
// statusInterval is how often a test runs `status --group` while it waits for the group to show a state: a run
// connects to NATS, reads the group's buckets and asks every member (tens of milliseconds of CPU under -race), and
// the states waited for last once reached.
const statusInterval = 50 * time.Millisecond

func statusOfGroup(t *testing.T, url, g, bucket, what string, ok func(groupReport) bool) groupReport {
	t.Helper()
	var rep groupReport
	var last string
	testkit.EventuallyEvery(t, time.Minute, statusInterval, what, func() bool {
		r := run(t, nil, "status", "--group", g, "--nats-url", url, "--kv-bucket", bucket, "--json")
		last = r.stdout + r.stderr
		rep = groupReport{}
		return r.code == 0 && json.Unmarshal([]byte(r.stdout), &rep) == nil && ok(rep)
	})
	if t.Failed() {
		t.Logf("last output:\n%s", last)
	}
	return rep
}

// noToken fails t when out holds a token, whole or in part (run checks every output too).
func noToken(t *testing.T, out string) {
	t.Helper()
	for _, tok := range secretTokens {
		if strings.Contains(out, tok) || strings.Contains(out, tok[8:]) {
			t.Errorf("the output holds a token:\n%s", out)
		}
	}
}

func TestStatusOfAGroupAsksEveryMember(t *testing.T) {
	t.Parallel()
	url := testkit.StartNATS(t).ClientURL()
	tags := []string{"coffee", "matcha", "sunset", "tea"}
	sim := startSim(t, tags...)
	js, err := jetstream.New(testkit.ConnectNATS(t, url))
	if err != nil {
		t.Fatal(err)
	}
	const g, bucket = "askedgroup", "asked_cursors"
	if err := group.AddTags(testkit.Context(t, time.Minute), js, g, tags...); err != nil {
		t.Fatal(err)
	}
	members := map[string]*pipeline.Pipeline{
		"m1": askedGroupMember(t, sim, url, g, bucket, "m1", nil),
		"m2": askedGroupMember(t, sim, url, g, bucket, "m2", nil),
	}
	rep := statusOfGroup(t, url, g, bucket, "status --group to show each tag's last and next poll and lag from its owner, and both members' tokens",
		func(rep groupReport) bool {
			if len(rep.Tags) != len(tags) || len(rep.Members) != 2 {
				return false
			}
			for _, tg := range rep.Tags {
				// A tag's first poll may find no media yet and leave its cursor empty: wait for one.
				if tg.Owner == "" || !tg.Reported || tg.LastPoll.IsZero() || tg.NextPoll.IsZero() || tg.Cursor == "" {
					return false
				}
			}
			for _, m := range rep.Members {
				if !m.Answered || len(m.Tokens) != 2 || m.Tokens[0].Share <= 0 || m.Tokens[1].Share <= 0 {
					return false
				}
			}
			return true
		})

	t.Run("JSON: every owned tag with its owner's last poll, next poll, lag, gaps and state", func(t *testing.T) {
		for _, tg := range rep.Tags {
			truth := map[string]poller.TagStatus{}
			for _, s := range members[tg.Owner].TagStatus() {
				truth[s.Tag] = s
			}
			line, ok := truth[tg.Tag]
			if !ok {
				t.Errorf("tag %s: owner %s does not poll it", tg.Tag, tg.Owner)
				continue
			}
			if tg.LastPoll.After(line.LastPoll.Add(time.Millisecond)) || tg.LastPoll.IsZero() || tg.LagSeconds < 0 || tg.State == "" || tg.Cursor == "" ||
				tg.RateAt.IsZero() {
				t.Errorf("tag %s: last poll %v (the owner now says %v), lag %gs, state %q, cursor %q, rate at %v",
					tg.Tag, tg.LastPoll, line.LastPoll, tg.LagSeconds, tg.State, tg.Cursor, tg.RateAt)
			}
		}
	})
	t.Run("JSON: each member's tokens by fingerprint, with its share and budget left", func(t *testing.T) {
		fps := []string{poller.Fingerprint(secretTokens[0]), poller.Fingerprint(secretTokens[1])}
		left := 0
		defer func() {
			if left == 0 {
				t.Errorf("no token shows its budget left as the API reported it")
			}
		}()
		for _, m := range rep.Members {
			if !strings.HasPrefix(m.StatusURL, "http://127.0.0.1:") || m.Error != "" || !m.Ready || m.Version != "test" {
				t.Errorf("member %s: status URL %q, error %q, ready %v, version %q", m.Name, m.StatusURL, m.Error, m.Ready, m.Version)
			}
			for i, tok := range m.Tokens {
				// Remaining is -1 until the API answered the token with its rate-limit headers.
				if tok.Fingerprint != fps[i] || tok.Limit != 5000 || tok.Remaining < -1 || tok.Remaining > 5000 || tok.State != "ok" {
					t.Errorf("member %s, token %d: %+v; want fingerprint %s, its budget left of 5000, ok", m.Name, i+1, tok, fps[i])
				}
				if tok.Remaining >= 0 {
					left++
				}
			}
		}
	})
	t.Run("a table sorted by lag, with the members' tokens", func(t *testing.T) {
		r := run(t, nil, "status", "--group", g, "--nats-url", url, "--kv-bucket", bucket)
		if r.code != 0 {
			t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		noToken(t, r.stdout+r.stderr)
		for _, w := range []string{"MEMBER  STARTED  HEARTBEAT  TAGS  STATUS", " ready\n",
			"TAG ", "OWNER", "CURSOR SAVED", "LAST POLL", "NEXT POLL", "RATE/s", "LAG", "GAPS", "STATE",
			"MEMBER  TOKEN  FINGERPRINT  SHARE  BUDGET LEFT  STATE", " / 5000  ok\n"} {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("the table does not show %q:\n%s", w, r.stdout)
			}
		}
		if strings.Contains(r.stdout, "could not be asked") {
			t.Errorf("the table says a member could not be asked:\n%s", r.stdout)
		}
		// Each tag's row: its owner, a last poll some time ago, a next poll, a lag and its gaps.
		row := regexp.MustCompile(`(?m)^(coffee|matcha|sunset|tea) +(m1|m2) .* ago +(in [0-9.]+m?s|due|-) +[0-9.]+ +[0-9.]+m?s +[0-9]+ +`)
		if got := row.FindAllString(r.stdout, -1); len(got) != len(tags) {
			t.Errorf("%d of %d tag rows show a last poll, next poll, rate, lag and gaps:\n%s", len(got), len(tags), r.stdout)
		}
	})
}

func TestStatusOfAGroupSaysWhichMemberItCouldNotAsk(t *testing.T) {
	t.Parallel()
	url := testkit.StartNATS(t).ClientURL()
	tags := []string{"coffee", "matcha", "sunset", "tea", "nofilter", "sencha"}
	sim := startSim(t, tags...)
	js, err := jetstream.New(testkit.ConnectNATS(t, url))
	if err != nil {
		t.Fatal(err)
	}
	const g, bucket = "unasked", "unasked_cursors"
	if err := group.AddTags(testkit.Context(t, time.Minute), js, g, tags...); err != nil {
		t.Fatal(err)
	}
	dead := testkit.FreeAddr(t)
	m1 := askedGroupMember(t, sim, url, g, bucket, "m1", nil)
	// m2's status server is where nothing answers; m3 advertises m1's by mistake.
	askedGroupMember(t, sim, url, g, bucket, "m2", func(c *config.Config) { c.GroupStatusURL = "http://" + dead })
	askedGroupMember(t, sim, url, g, bucket, "m3", func(c *config.Config) { c.GroupStatusURL = "http://" + m1.StatusAddr() })

	rep := statusOfGroup(t, url, g, bucket, "status --group to show the three members, each tag with its owner and cursor",
		func(rep groupReport) bool {
			if len(rep.Members) != 3 || len(rep.Tags) != len(tags) {
				return false
			}
			owners := map[string]bool{}
			for _, tg := range rep.Tags {
				if tg.Owner == "" || tg.Cursor == "" || tg.Owner == "m1" && !tg.Reported {
					return false
				}
				owners[tg.Owner] = true
			}
			return len(owners) == 3
		})
	t.Run("JSON: why each member could not be asked, and the buckets' data of its tags", func(t *testing.T) {
		errs := map[string]string{}
		for _, m := range rep.Members {
			errs[m.Name] = m.Error
			if m.Answered != (m.Name == "m1") {
				t.Errorf("member %s: answered %v", m.Name, m.Answered)
			}
		}
		if errs["m1"] != "" || errs["m2"] != "nothing answered at http://"+dead+"/status: connection refused" ||
			!strings.Contains(errs["m3"], " answered as instance ") || !strings.Contains(errs["m3"], ", member m1 of group unasked, not as member m3 of group unasked") {
			t.Errorf("errors %q", errs)
		}
		for _, tg := range rep.Tags {
			if tg.Owner == "m1" {
				continue
			}
			want := "(from the buckets: " + tg.Owner + " not asked)"
			if tg.Reported || !tg.LastPoll.IsZero() || tg.Cursor == "" || tg.CursorSaved.IsZero() || !strings.HasSuffix(tg.State, want) {
				t.Errorf("tag %s of %s: reported %v, last poll %v, cursor %q saved %v, state %q; want the buckets' cursor and a state ending %q",
					tg.Tag, tg.Owner, tg.Reported, tg.LastPoll, tg.Cursor, tg.CursorSaved, tg.State, want)
			}
		}
	})
	t.Run("a table with a note on each member it could not ask", func(t *testing.T) {
		r := run(t, nil, "status", "--group", g, "--nats-url", url, "--kv-bucket", bucket)
		if r.code != 0 {
			t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		noToken(t, r.stdout+r.stderr)
		for _, w := range []string{
			"\nmember m2 could not be asked for its /status: nothing answered at http://" + dead + "/status: connection refused; its tags show what the buckets hold\n",
			"\nmember m3 could not be asked for its /status: http://" + m1.StatusAddr() + "/status answered as instance ",
			"not asked (see above)\n", " ready\n", "(from the buckets: m2 not asked)", "(from the buckets: m3 not asked)",
		} {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("the table does not show %q:\n%s", w, r.stdout)
			}
		}
		if strings.Contains(r.stdout, "could not be asked for its /status: \n") || strings.Contains(r.stdout, "member m1 could not") {
			t.Errorf("the table says m1 could not be asked:\n%s", r.stdout)
		}
	})
}

func TestAskMembersWithoutAUsableURL(t *testing.T) {
	rep := groupReport{Inspection: group.Inspection{Status: group.Status{Group: "g"}}, Members: []askedMember{
		{MemberStatus: group.MemberStatus{Name: "old"}},
		{MemberStatus: group.MemberStatus{Name: "odd", StatusURL: "http://ops:s3cr3tpass@host-a:9464"}},
	}, Tags: []groupTag{{TagInfo: group.TagInfo{Tag: "coffee", Owner: "old"}, Cursor: "c1"}}}
	askMembers(&rep, &http.Client{}, time.Second)
	if m := rep.Members[0]; m.Answered || !strings.HasPrefix(m.Error, "it advertises no status URL (it runs without metrics-addr") {
		t.Errorf("a member without URL: %+v", m)
	}
	if m := rep.Members[1]; m.Answered || m.StatusURL != "" || !strings.Contains(m.Error, "not usable: status URL holds a user or password") {
		t.Errorf("a member whose URL holds a password: %+v", m)
	}
	if tg := rep.Tags[0]; tg.Reported || tg.State != "ok (from the buckets: old not asked)" {
		t.Errorf("its tag: reported %v, state %q", tg.Reported, tg.State)
	}
	var b strings.Builder
	if err := writeGroupTable(&b, rep, time.Now()); err != nil {
		t.Fatal(err)
	}
	if out, _ := json.Marshal(rep); strings.Contains(b.String()+string(out), "s3cr3tpass") {
		t.Errorf("the password is shown:\n%s\n%s", b.String(), out)
	}
}

func TestGroupTableIsSortedByLag(t *testing.T) {
	now := time.Date(2026, 12, 1, 7, 0, 0, 0, time.UTC)
	polled := func(tag string, lag float64) groupTag {
		return groupTag{TagInfo: group.TagInfo{Tag: tag, Owner: "m1"}, Cursor: "c", CursorSaved: now.Add(-time.Minute),
			Reported: true, LastPoll: now.Add(-time.Second), NextPoll: now.Add(time.Second), LagSeconds: lag, State: "ok"}
	}
	fromBuckets := func(tag string, saved time.Duration) groupTag {
		return groupTag{TagInfo: group.TagInfo{Tag: tag, Owner: "m2"}, Cursor: "c", CursorSaved: now.Add(-saved)}
	}
	rep := groupReport{Inspection: group.Inspection{Status: group.Status{Group: "g"}}, Tags: []groupTag{
		polled("small", 0.5), fromBuckets("recent", time.Second), polled("big", 90), {TagInfo: group.TagInfo{Tag: "orphan"}},
		fromBuckets("stale", time.Hour), polled("middle", 5), polled("alsomiddle", 5),
	}}
	var b strings.Builder
	if err := writeGroupTable(&b, rep, now); err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, line := range strings.Split(b.String(), "\n") {
		if f := strings.Fields(line); len(f) > 1 && slices.Contains([]string{"m1", "m2", "-"}, f[1]) {
			order = append(order, f[0])
		}
	}
	// Without owner, then lag unknown (the oldest saved cursor first), then by lag, longest first.
	want := []string{"orphan", "stale", "recent", "big", "alsomiddle", "middle", "small"}
	if !slices.Equal(order, want) {
		t.Errorf("rows %v, want %v:\n%s", order, want, b.String())
	}
	if !strings.Contains(b.String(), "1.5m") && !strings.Contains(b.String(), "1m30s") {
		t.Errorf("big's lag of 90s is not shown:\n%s", b.String())
	}
}

// TestStatusOfAGroupAsksAnHTTPSMemberTrustingCAFile asks a member behind a TLS proxy (its group-status-url is
// https): without ca-file its certificate is not trusted and the member is named with the reason; with ca-file
// holding the proxy's CA it is asked.
func TestStatusOfAGroupAsksAnHTTPSMemberTrustingCAFile(t *testing.T) {
	t.Parallel()
	natsURL := testkit.StartNATS(t).ClientURL()
	tags := []string{"coffee", "tea"}
	sim := startSim(t, tags...)
	js, err := jetstream.New(testkit.ConnectNATS(t, natsURL))
	if err != nil {
		t.Fatal(err)
	}
	const g, bucket = "behindtls", "behindtls_cursors"
	if err := group.AddTags(testkit.Context(t, time.Minute), js, g, tags...); err != nil {
		t.Fatal(err)
	}
	var target atomic.Pointer[url.URL]
	proxy := httptest.NewTLSServer(&httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target.Load())
	}})
	t.Cleanup(proxy.Close)
	ca := filepath.Join(t.TempDir(), "proxy-ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: proxy.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	m1 := askedGroupMember(t, sim, natsURL, g, bucket, "m1", func(c *config.Config) { c.GroupStatusURL = proxy.URL })
	target.Store(&url.URL{Scheme: "http", Host: m1.StatusAddr()})

	ask := func(t *testing.T, extra ...string) askedMember {
		t.Helper()
		var m askedMember
		testkit.EventuallyEvery(t, time.Minute, statusInterval, "status --group to show member m1 and its tags", func() bool {
			r := run(t, nil, append([]string{"status", "--group", g, "--nats-url", natsURL, "--kv-bucket", bucket, "--json"}, extra...)...)
			var rep groupReport
			if r.code != 0 || json.Unmarshal([]byte(r.stdout), &rep) != nil || len(rep.Members) != 1 || len(rep.Tags) != len(tags) {
				return false
			}
			m = rep.Members[0]
			return true
		})
		return m
	}
	t.Run("without ca-file: not trusted, and said so", func(t *testing.T) {
		want := proxy.URL + "/status answered with a certificate that is not trusted (x509: certificate signed by unknown " +
			"authority): give ca-file the CA that signed it"
		if m := ask(t); m.Answered || m.Error != want {
			t.Errorf("member m1 behind %s: answered %v, error %q; want not answered, %q", proxy.URL, m.Answered, m.Error, want)
		}
	})
	t.Run("with ca-file: asked", func(t *testing.T) {
		if m := ask(t, "--ca-file", ca); !m.Answered || m.Error != "" {
			t.Errorf("member m1 behind %s with --ca-file: answered %v, error %q", proxy.URL, m.Answered, m.Error)
		}
	})
}
