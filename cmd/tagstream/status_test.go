package main

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tagstream/tagstream/group"
	"github.com/tagstream/tagstream/internal/config"
	"github.com/tagstream/tagstream/internal/pipeline"
	"github.com/tagstream/tagstream/internal/status"
	"github.com/tagstream/tagstream/internal/testkit"
	"github.com/tagstream/tagstream/poller"
	"github.com/tagstream/tagstream/schema"
	"github.com/tagstream/tagstream/testenv"
)

// startPipeline runs a pipeline against a simulator with tags, publishing to a file, with its status endpoints on
// a free port, until the test ends; it returns once every tag was polled once.
func startPipeline(t *testing.T, tags ...string) *pipeline.Pipeline {
	t.Helper()
	cfg := pipelineConfig(t, startSim(t, tags...), tags...)
	p, _ := runPipeline(t, cfg, pipeline.Deps{Version: "test"})
	waitPolled(t, p, len(tags))
	return p
}

// pipelineConfig is a validated configuration that polls sim's tags quickly and publishes to a file.
func pipelineConfig(t *testing.T, sim *testenv.Server, tags ...string) *config.Config {
	t.Helper()
	cfg := config.Defaults()
	cfg.APIURL, cfg.CAFile, cfg.Tags = sim.URL(), sim.CAFile(), tags
	cfg.Credentials = []config.Credential{{Value: secretTokens[0]}, {Value: secretTokens[1]}}
	cfg.StateDir = filepath.Join(t.TempDir(), "state")
	cfg.Sink, cfg.Output = config.SinkFile, filepath.Join(t.TempDir(), "events.ndjson")
	cfg.MetricsAddr = "127.0.0.1:0"
	cfg.MinInterval, cfg.MaxInterval = 200*time.Millisecond, time.Second
	if err := config.Validate(&cfg, config.GroupAll, config.Needs{Tags: true, Tokens: true}); err != nil {
		t.Fatal(err)
	}
	return &cfg
}

// runPipeline runs a pipeline of cfg until the test ends or the returned stop is called (which waits for it).
func runPipeline(t *testing.T, cfg *config.Config, deps pipeline.Deps) (*pipeline.Pipeline, func()) {
	t.Helper()
	p, err := pipeline.New(t.Context(), cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- p.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := testkit.Receive(t, done, 30*time.Second, "the pipeline to stop"); err != nil {
			t.Errorf("Run = %v", err)
		}
	}
	t.Cleanup(stop)
	return p, stop
}

// waitPolled waits until n tags were polled once.
func waitPolled(t *testing.T, p *pipeline.Pipeline, n int) {
	t.Helper()
	testkit.Eventually(t, 30*time.Second, "the first poll of every tag", func() bool {
		polled := 0
		for _, s := range p.TagStatus() {
			if !s.LastPoll.IsZero() {
				polled++
			}
		}
		return polled == n
	})
}

func TestStatusShowsACatchUpUnderWay(t *testing.T) {
	t.Parallel()
	sim := startSim(t, "sunset", "coffee")
	cfg := pipelineConfig(t, sim, "sunset", "coffee")
	cfg.PageSize, cfg.CatchUpPages = 5, 1 // 60 media posted while down are 12 pages, one walk reads one

	// First life: each tag's cursor is saved at the head.
	p1, stop := runPipeline(t, cfg, pipeline.Deps{Version: "test"})
	waitPolled(t, p1, 2)
	stop()
	sim.Post("sunset", 60)

	// Second life: the first publish passes, the next ones wait, so the walk stays under way while we look.
	release := make(chan struct{})
	defer close(release)
	var publishes atomic.Int32
	deps := pipeline.Deps{Version: "test", WrapPublisher: func(next poller.Publisher) poller.Publisher {
		return poller.PublisherFunc(func(ctx context.Context, events []*schema.Event) error {
			if publishes.Add(1) > 1 {
				select {
				case <-release:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return next.Publish(ctx, events)
		})
	}}
	p, _ := runPipeline(t, cfg, deps)
	var rep status.Report
	var last string
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last report:\n%s", last)
		}
	})
	testkit.Eventually(t, 30*time.Second, "sunset's catch-up on /status", func() bool {
		r := run(t, nil, "status", "--metrics-addr", p.StatusAddr(), "--json")
		last = r.stdout + r.stderr
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &rep) != nil {
			return false
		}
		for _, tag := range rep.Tags {
			if tag.Tag == "sunset" && tag.CatchUp != nil {
				return true
			}
		}
		return false
	})
	for _, tag := range rep.Tags {
		if tag.Tag != "sunset" {
			continue
		}
		if tag.SavedCursor == "" || tag.CatchUp.Pages < 1 || tag.CatchUp.Pending < 1 || tag.CatchUp.Since.IsZero() {
			t.Errorf("sunset on /status: saved cursor %q, catch-up %+v; want the saved cursor and the walk's pages and pending media", tag.SavedCursor, tag.CatchUp)
		}
		if !strings.HasPrefix(tag.State, "catching up: ") || !strings.Contains(tag.State, " so far, ") || !strings.HasSuffix(tag.State, " media pending") {
			t.Errorf("state %q does not say the catch-up", tag.State)
		}
	}
	r := run(t, nil, "status", "--metrics-addr", p.StatusAddr())
	if !strings.Contains(r.stdout, "catching up: ") || !strings.Contains(r.stdout, " media pending") {
		t.Errorf("the table does not show the catch-up:\n%s", r.stdout)
	}
}

func TestStatusShowsARunningPipeline(t *testing.T) {
	t.Parallel()
	p := startPipeline(t, "sunset", "coffee")
	addr := p.StatusAddr()
	cfgFile := filepath.Join(t.TempDir(), "tagstream.yaml")
	if err := os.WriteFile(cfgFile, []byte("tags: [x]\nmetrics-addr: "+addr+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, how := range []struct {
		name string
		env  []string
		args []string
	}{
		{"from --metrics-addr", nil, []string{"--metrics-addr", addr}},
		{"from TAGSTREAM_METRICS_ADDR", []string{"TAGSTREAM_METRICS_ADDR=" + addr}, nil},
		{"from the config file run uses", nil, []string{"--config", cfgFile}},
	} {
		t.Run("a table "+how.name, func(t *testing.T) {
			t.Parallel()
			r := run(t, how.env, append([]string{"status"}, how.args...)...)
			if r.code != 0 {
				t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
			}
			lines := strings.Split(r.stdout, "\n")
			if !strings.HasPrefix(lines[0], "tagstream test (") || !strings.Contains(lines[0], "sink file ") {
				t.Errorf("first line %q does not name the instance and the sink", lines[0])
			}
			for _, w := range []string{"TAG ", "OWNER", "CURSOR", "LAST POLL", "NEXT POLL", "RATE/s", "LAG", "GAPS", "STATE",
				"\nsunset ", "\ncoffee ", " ago ", "TOKEN", "FINGERPRINT", "BUDGET LEFT", " / 5000"} {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("the table does not show %q:\n%s", w, r.stdout)
				}
			}
			if strings.Contains(r.stderr, "warning") {
				t.Errorf("stderr: %s", r.stderr)
			}
		})
	}
	t.Run("JSON for scripts", func(t *testing.T) {
		t.Parallel()
		r := run(t, nil, "status", "--metrics-addr", addr, "--json")
		var rep status.Report
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != 0 {
			t.Fatalf("exit %d, %v:\n%s", r.code, err, r.stdout)
		}
		if len(rep.Tags) != 2 || len(rep.Tokens) != 2 || rep.Instance == "" {
			t.Fatalf("report = %+v", rep)
		}
		for _, tag := range rep.Tags {
			if tag.Owner != rep.Instance || tag.Cursor == "" || tag.LastPoll.IsZero() || tag.State == "" {
				t.Errorf("tag %+v lacks its owner, cursor, last poll or state", tag)
			}
		}
	})
}

func TestStatusSaysWhatIsWrong(t *testing.T) {
	t.Parallel()
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hello")) }))
	t.Cleanup(other.Close)
	dead := testkit.FreeAddr(t)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no address", []string{"status"}, 2, "metrics-addr: status reads a running tagstream's /status"},
		{"nothing answers", []string{"status", "--metrics-addr", dead}, 3, "nothing answered at http://" + dead + "/status: connection refused\n  is tagstream running, with --metrics-addr " + dead + "?"},
		{"something else answers", []string{"status", "--metrics-addr", other.URL}, 1, "not a tagstream status report"},
		{"a bad address", []string{"status", "--metrics-addr", "localhost"}, 2, "not host:port or a URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := run(t, nil, tt.args...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("exit %d (want %d), stderr:\n%s\nwant it to say %q", r.code, tt.code, r.stderr, tt.want)
			}
		})
	}
}

// groupMember runs a pipeline of the group g on the NATS server at url as member name, polling sim (its tags come
// from the group's set), with its status endpoints on a free port, until the test ends.
func groupMember(t *testing.T, sim *testenv.Server, url, g, name string) *pipeline.Pipeline {
	t.Helper()
	cfg := config.Defaults()
	cfg.APIURL, cfg.CAFile = sim.URL(), sim.CAFile()
	cfg.Credentials = []config.Credential{{Value: secretTokens[0]}, {Value: secretTokens[1]}}
	cfg.StateDir = filepath.Join(t.TempDir(), "state")
	cfg.Sink, cfg.Output = config.SinkFile, filepath.Join(t.TempDir(), "events.ndjson")
	cfg.MetricsAddr = "127.0.0.1:0"
	cfg.MinInterval, cfg.MaxInterval = 200*time.Millisecond, time.Second
	cfg.CheckpointStore, cfg.KVBucket, cfg.NATSURL = config.StoreJetStreamKV, "group_cursors", url
	cfg.Group, cfg.GroupMember, cfg.GroupReplicas = g, name, 1
	if err := config.Validate(&cfg, config.GroupAll, config.Needs{Tokens: true}); err != nil {
		t.Fatal(err)
	}
	p, _ := runPipeline(t, &cfg, pipeline.Deps{Version: "test"})
	return p
}

// polledTags returns the tags p polled at least once, with their cursors.
func polledTags(p *pipeline.Pipeline) map[string]string {
	out := map[string]string{}
	for _, s := range p.TagStatus() {
		if !s.LastPoll.IsZero() {
			out[s.Tag] = s.SavedCursor
		}
	}
	return out
}

func TestStatusShowsAGroup(t *testing.T) {
	t.Parallel()
	url := testkit.StartNATS(t).ClientURL()
	tags := []string{"coffee", "matcha", "sunset", "tea"}
	sim := startSim(t, tags...)
	nc := testkit.ConnectNATS(t, url)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testkit.Context(t, time.Minute)
	const g = "statusgroup"
	if err := group.AddTags(ctx, js, g, append(tags, "gone")...); err != nil {
		t.Fatal(err)
	}
	if err := group.RemoveTags(ctx, js, g, "gone"); err != nil {
		t.Fatal(err)
	}
	members := map[string]*pipeline.Pipeline{"m1": groupMember(t, sim, url, g, "m1"), "m2": groupMember(t, sim, url, g, "m2")}

	// The truth: which member polled which tag, with the cursor it saved.
	owner, cursor := map[string]string{}, map[string]string{}
	testkit.Eventually(t, time.Minute, "both members to poll, the tags split between them", func() bool {
		clear(owner)
		clear(cursor)
		for name, p := range members {
			got := polledTags(p)
			if len(got) == 0 {
				return false
			}
			for tag, c := range got {
				owner[tag], cursor[tag] = name, c
			}
		}
		return len(owner) == len(tags)
	})

	var rep groupReport
	var last string
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last output:\n%s", last)
		}
	})
	testkit.EventuallyEvery(t, time.Minute, statusInterval, "status --group to show every owner, cursor and both shares of each token", func() bool {
		r := run(t, nil, "status", "--group", g, "--nats-url", url, "--kv-bucket", "group_cursors", "--json")
		last = r.stdout + r.stderr
		rep = groupReport{}
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &rep) != nil || len(rep.Tags) != len(tags) || len(rep.Tokens) != 2 {
			return false
		}
		for _, tg := range rep.Tags {
			if tg.Owner == "" || tg.Cursor == "" {
				return false
			}
		}
		for _, ts := range rep.Tokens {
			if len(ts.Shares) != 2 {
				return false
			}
		}
		return true
	})
	t.Run("JSON: members, owners, cursors, shares and removed tags as the members have them", func(t *testing.T) {
		if rep.Group != g || len(rep.Members) != 2 || rep.Members[0].Name != "m1" || rep.Members[1].Name != "m2" || rep.LeaseSeconds != 8 {
			t.Errorf("group %q, members %+v, lease %gs: want %s, m1 and m2, the default 8s lease", rep.Group, rep.Members, rep.LeaseSeconds, g)
		}
		for _, tg := range rep.Tags {
			if tg.Owner != owner[tg.Tag] || tg.Cursor != cursor[tg.Tag] || tg.CursorSaved.IsZero() {
				t.Errorf("tag %s: owner %q, cursor %q saved %v; the members say %q and %q", tg.Tag, tg.Owner, tg.Cursor, tg.CursorSaved,
					owner[tg.Tag], cursor[tg.Tag])
			}
		}
		fps := []string{poller.Fingerprint(secretTokens[0]), poller.Fingerprint(secretTokens[1])}
		slices.Sort(fps)
		for i, ts := range rep.Tokens {
			if ts.Fingerprint != fps[i] || ts.Total > 1+1e-9 || ts.Shares["m1"] <= 0 || ts.Shares["m2"] <= 0 {
				t.Errorf("token %s: shares %v (total %g); want the fingerprint %s shared by m1 and m2, at most 1",
					ts.Fingerprint, ts.Shares, ts.Total, fps[i])
			}
		}
		if len(rep.Removed) != 1 || rep.Removed[0].Tag != "gone" || len(rep.Unowned) != 0 {
			t.Errorf("removed %+v, unowned %v: want gone removed, none unowned", rep.Removed, rep.Unowned)
		}
	})
	t.Run("a table", func(t *testing.T) {
		r := run(t, nil, "status", "--group", g, "--nats-url", url, "--kv-bucket", "group_cursors")
		if r.code != 0 {
			t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		want := []string{"group statusgroup: 2 members, lease 8s, 4 tags (0 without owner), 1 removed\n",
			"MEMBER", "HEARTBEAT", "\nm1 ", "\nm2 ", "TAG ", "OWNER", "CURSOR SAVED", "RATE/s", "STATE",
			"TOKEN", rep.Tokens[0].Fingerprint, "TOTAL", "REMOVED", "CURSOR KEPT UNTIL", "\ngone "}
		for _, tag := range tags {
			want = append(want, fmt.Sprintf("\n%-7s %s ", tag, owner[tag]))
		}
		for _, w := range want {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("the table does not show %q:\n%s", w, r.stdout)
			}
		}
	})
	t.Run("the group from the config file the members run with", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "tagstream.yaml")
		body := fmt.Sprintf("group: %s\nnats-url: %s\nkv-bucket: group_cursors\ncheckpoint-store: jetstream-kv\nmetrics-addr: %s\n",
			g, url, members["m1"].StatusAddr())
		if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		r := run(t, nil, "status", "--config", file)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "group statusgroup: 2 members") {
			t.Errorf("status --config: exit %d, want the group:\n%s%s", r.code, r.stdout, r.stderr)
		}
		r = run(t, nil, "status", "--config", file, "--metrics-addr", members["m1"].StatusAddr())
		if r.code != 0 || !strings.HasPrefix(r.stdout, "tagstream test (") {
			t.Errorf("status --config --metrics-addr: exit %d, want the instance:\n%s%s", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("an instance's table adds the group as it sees it", func(t *testing.T) {
		r := run(t, nil, "status", "--metrics-addr", members["m1"].StatusAddr())
		for _, w := range []string{"\ngroup statusgroup, member m1: lease held until ", " (lease 8s); 2 members, 0 tag(s) without owner, 1 removed",
			"\nm1 *  ", "\nm2 ", "DEMAND polls/s", "TOKEN", rep.Tokens[0].Fingerprint} {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("the instance's table does not show %q:\n%s", w, r.stdout)
			}
		}
	})
}

func TestStatusOfAGroupSaysWhatIsWrong(t *testing.T) {
	t.Parallel()
	url := testkit.StartNATS(t).ClientURL()
	dead := testkit.FreeAddr(t)
	// A group whose members bucket someone else made (no TTL: it cannot hold leases).
	js, err := jetstream.New(testkit.ConnectNATS(t, url))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testkit.Context(t, time.Minute)
	if err := group.AddTags(ctx, js, "foreign", "coffee"); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: group.MembersBucket("foreign")}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no NATS servers", []string{"status", "--group", "g", "--nats-url", ""}, 2, "nats-url (--nats-url): no NATS URL given"},
		{"a bad group name", []string{"status", "--group", "a.b", "--nats-url", url}, 2, "group"},
		{"nothing answers", []string{"status", "--group", "g", "--nats-url", "nats://" + dead}, 3, "the group's NATS servers did not answer (nats://" + dead + "): no server answered"},
		{"a group that does not exist", []string{"status", "--group", "nosuchgroup", "--nats-url", url}, 1,
			"group nosuchgroup does not exist on "},
		{"a members bucket tagstream did not make", []string{"status", "--group", "foreign", "--nats-url", url}, 1,
			"it was not created by tagstream"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := run(t, nil, tt.args...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("exit %d (want %d), stderr:\n%s\nwant it to say %q", r.code, tt.code, r.stderr, tt.want)
			}
		})
	}
}

// TestStatusAsksAnInstanceBehindTLSTrustingCAFile asks a running tagstream through a TLS proxy (--metrics-addr
// https://...): with ca-file holding the proxy's CA it answers; without, nothing is trusted.
func TestStatusAsksAnInstanceBehindTLSTrustingCAFile(t *testing.T) {
	t.Parallel()
	p := startPipeline(t, "sunset")
	target := &url.URL{Scheme: "http", Host: p.StatusAddr()}
	proxy := httptest.NewTLSServer(&httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target) }})
	t.Cleanup(proxy.Close)
	ca := filepath.Join(t.TempDir(), "proxy-ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: proxy.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := run(t, nil, "status", "--metrics-addr", proxy.URL, "--json"); r.code != exitUnreachable ||
		!strings.Contains(r.stderr, "certificate") {
		t.Errorf("without ca-file: exit %d, stderr %q; want %d and a certificate error", r.code, r.stderr, exitUnreachable)
	}
	r := run(t, nil, "status", "--metrics-addr", proxy.URL, "--ca-file", ca, "--json")
	var rep struct{ Tags []struct{ Tag string } }
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &rep) != nil || len(rep.Tags) != 1 || rep.Tags[0].Tag != "sunset" {
		t.Errorf("with ca-file: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
}
