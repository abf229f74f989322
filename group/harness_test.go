package group

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tagstream/tagstream/internal/testkit"
)

// waitLong bounds every wait on the group: generous, never a timing assertion.
const waitLong = 60 * time.Second

var (
	sharedOnce    sync.Once
	sharedCluster *testCluster
	sharedRoot    string
)

// TestMain runs four tests at a time, and stops the shared cluster and removes its stores after the tests.
func TestMain(m *testing.M) {
	testkit.ParallelWaiters(8) // the tests mostly wait for leases and hand-overs
	code := m.Run()
	if sharedCluster != nil {
		sharedCluster.StopAll()
	}
	if sharedRoot != "" {
		_ = os.RemoveAll(sharedRoot)
	}
	os.Exit(code)
}

// sharedURLs returns the URLs of a three-node cluster shared by the tests of this package that do not stop nodes
// (each uses its own group, so its own buckets). It lives until the test binary exits. The tests that need a
// cluster run in parallel (t.Parallel): most of their time is spent waiting for leases and elections, and each
// has a group (or a cluster) of its own.
func sharedURLs(t testing.TB) string {
	t.Helper()
	sharedOnce.Do(func() {
		sharedCluster = startCluster(&leakyTB{TB: t})
	})
	if sharedCluster == nil {
		t.Fatal("the shared cluster did not start")
	}
	return sharedCluster.URLs()
}

// leakyTB hands the shared cluster a TB whose Cleanup and TempDir outlive the first test that asked for it.
type leakyTB struct{ testing.TB }

func (l *leakyTB) Cleanup(func()) {}

func (l *leakyTB) TempDir() string {
	var err error
	if sharedRoot == "" {
		if sharedRoot, err = os.MkdirTemp("", "tagstream-group-test-"); err != nil {
			l.Fatalf("temp dir: %v", err)
		}
	}
	dir, err := os.MkdirTemp(sharedRoot, "node-")
	if err != nil {
		l.Fatalf("temp dir: %v", err)
	}
	return dir
}

// oracle watches every member's fake poller and records any moment where two live members poll one tag or the
// shares of a token sum above 1.
type oracle struct {
	mu         sync.Mutex
	assigned   map[string]Assignment // member -> last applied
	live       map[string]func() bool
	violations []string
}

func newOracle() *oracle {
	return &oracle{assigned: make(map[string]Assignment), live: make(map[string]func() bool)}
}

func (o *oracle) apply(member string, a Assignment) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.assigned[member] = a
	owners := make(map[string]string)
	sums := make(map[string]float64)
	for name, as := range o.assigned {
		if live := o.live[name]; live != nil && !live() && name != member {
			continue // a member without its lease spends and polls nothing (the poller checks LeaseValid)
		}
		for _, ts := range as.Tokens {
			sums[ts.Fingerprint] += ts.Fraction
		}
		for _, tag := range as.Tags {
			if other, ok := owners[tag]; ok {
				o.violations = append(o.violations, fmt.Sprintf("tag %s assigned to %s and %s", tag, other, name))
			}
			owners[tag] = name
		}
	}
	for fp, s := range sums {
		if s > 1+1e-9 {
			o.violations = append(o.violations, fmt.Sprintf("token %s shares sum to %.4f", fp, s))
		}
	}
}

func (o *oracle) check(t *testing.T) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.violations) > 0 {
		t.Fatalf("the group broke its invariants %d times, first: %s", len(o.violations), o.violations[0])
	}
}

// fakePoller records what its coordinator applied and reports it to the oracle.
type fakePoller struct {
	name   string
	o      *oracle
	mu     sync.Mutex
	a      Assignment
	calls  int
	inside bool
	hook   func(ctx context.Context, a Assignment) error // runs before the assignment is recorded
	seeds  map[string]float64                            // every Assignment.Rates seen
}

func (f *fakePoller) Apply(ctx context.Context, a Assignment) error {
	f.mu.Lock()
	if f.inside {
		f.mu.Unlock()
		panic("Apply called concurrently")
	}
	f.inside = true
	hook := f.hook
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inside = false
		f.mu.Unlock()
	}()
	if hook != nil {
		if err := hook(ctx, a); err != nil {
			return err
		}
	}
	f.mu.Lock()
	f.a = a
	f.calls++
	for tag, r := range a.Rates {
		if f.seeds == nil {
			f.seeds = make(map[string]float64)
		}
		f.seeds[tag] = r
	}
	f.mu.Unlock()
	if f.o != nil {
		f.o.apply(f.name, a)
	}
	return nil
}

func (f *fakePoller) tags() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.a.Tags)
}

func (f *fakePoller) share(fp string) float64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ts := range f.a.Tokens {
		if ts.Fingerprint == fp {
			return ts.Fraction
		}
	}
	return 0
}

// member is one running coordinator with its fake poller.
type member struct {
	name string
	c    *JetStream
	p    *fakePoller
	js   jetstream.JetStream
	reg  *prometheus.Registry
	stop context.CancelFunc
	done chan error
}

// testTokens are the fingerprints every member of a test group holds.
var testTokens = []Token{{Fingerprint: "aaaa0001"}, {Fingerprint: "bbbb0002"}}

// baseConfig is a group config with a short lease, for tests.
func baseConfig(group, name string) Config {
	return Config{Group: group, Name: name, Tokens: testTokens, Lease: 2 * time.Second, Rebalance: 200 * time.Millisecond}
}

// startMember connects to urls, builds a coordinator from cfg and runs it until the test ends or stop is called.
func startMember(t testing.TB, urls string, cfg Config, o *oracle) *member {
	t.Helper()
	_, js := connect(t, urls)
	reg := prometheus.NewRegistry()
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: testLogLevel})).With("test", t.Name())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	c, err := NewJetStream(ctx, js, cfg, logger, reg)
	if err != nil {
		cancel()
		t.Fatalf("NewJetStream(%s): %v", cfg.Name, err)
	}
	m := &member{name: cfg.Name, c: c, p: &fakePoller{name: cfg.Name, o: o}, js: js, reg: reg, stop: cancel, done: make(chan error, 1)}
	if o != nil {
		o.mu.Lock()
		o.live[cfg.Name] = c.LeaseValid
		o.mu.Unlock()
	}
	go func() { m.done <- c.Run(ctx, m.p) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-m.done:
		case <-time.After(waitLong):
			t.Errorf("member %s did not stop", cfg.Name)
		}
	})
	return m
}

// leave stops the member gracefully and waits for Run to return.
func (m *member) leave(t testing.TB) {
	t.Helper()
	m.stop()
	if err := testkit.Receive(t, m.done, waitLong, m.name+" leaving"); err != nil {
		t.Fatalf("%s: Run: %v", m.name, err)
	}
	m.done <- nil // for the cleanup
}

// testWriter sends log lines to t.Log until the test ends.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	defer func() { _ = recover() }() // a log line after the test ended
	w.t.Helper()
	w.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}

// ownership returns which live (lease-holding) member's poller polls each tag, and whether any tag is polled by
// two.
func ownership(ms []*member) (map[string]string, bool) {
	owners := make(map[string]string)
	dup := false
	for _, m := range ms {
		if !m.c.LeaseValid() {
			continue
		}
		for _, tag := range m.p.tags() {
			if _, ok := owners[tag]; ok {
				dup = true
			}
			owners[tag] = m.name
		}
	}
	return owners, dup
}

// waitCovered waits until every tag is polled by exactly one of ms, and every member in ms that must have tags has
// some.
func waitCovered(t testing.TB, what string, ms []*member, tags []string, busy ...*member) map[string]string {
	t.Helper()
	var owners map[string]string
	done := false
	t.Cleanup(func() {
		if t.Failed() && !done {
			if dir := os.Getenv("TAGSTREAM_GROUP_STACKS"); dir != "" {
				buf := make([]byte, 1<<24)
				buf = buf[:runtime.Stack(buf, true)]
				_ = os.WriteFile(dir+"/stacks.txt", buf, 0o644)
			}
			for _, m := range ms {
				st := m.c.Status()
				t.Logf("%s sees: lease %v, members %d, unowned %v, own %v", m.name, st.LeaseValid, len(st.Members), st.Unowned, m.p.tags())
				for _, mm := range st.Members {
					t.Logf("   member %s (heartbeat %s) tags %v", mm.Name, mm.Heartbeat.Format("15:04:05.000"), mm.Tags)
				}
				for _, tag := range st.Unowned {
					m.c.mu.Lock()
					ov, seen := m.c.v.owners[tag]
					tv := m.c.v.tags[tag]
					mine, isMine := m.c.mine[tag]
					inc := m.c.self.inc
					members := fmt.Sprint(m.c.v.members)
					seq := m.c.v.memberSeq
					m.c.mu.Unlock()
					e, err := m.c.state.Get(context.Background(), prefixOwner+tagKey(tag))
					var stored string
					if err == nil {
						stored = fmt.Sprintf("rev %d %s", e.Revision(), e.Value())
					}
					t.Logf("   unowned %s: view owner %+v (seen %v), tag %+v, mine %v %d, my inc %s; stored %s %v; memberSeq %d members %s",
						tag, ov, seen, tv, isMine, mine, inc, stored, err, seq, members)
				}
			}
		}
	})
	testkit.Eventually(t, waitLong, what, func() bool {
		var dup bool
		owners, dup = ownership(ms)
		if dup || len(owners) != len(tags) {
			return false
		}
		for _, tag := range tags {
			if _, ok := owners[tag]; !ok {
				return false
			}
		}
		for _, b := range busy {
			if len(b.p.tags()) == 0 {
				return false
			}
		}
		return true
	})
	done = true
	return owners
}

// waitShares waits until the fractions of every test token held by ms are positive for members with tags and sum
// to about 1 (the whole budget in use).
func waitShares(t *testing.T, ms []*member) {
	t.Helper()
	done := false
	t.Cleanup(func() {
		if !t.Failed() || done {
			return
		}
		for _, m := range ms {
			m.c.mu.Lock()
			t.Logf("%s: lease %v, applied tags %d, applied shares %v, stored %v, demand %v", m.name, m.c.LeaseValid(),
				len(m.c.applied), m.c.appliedShares, m.c.stored, m.c.demand)
			for fp, sv := range m.c.v.shares {
				t.Logf("   view of token %s at rev %d: %+v", fp, sv.rev, sv.rec.Shares)
			}
			for name, mv := range m.c.v.members {
				t.Logf("   member %s inc %s join-rev %d", name, mv.rec.Inc, mv.rec.Join)
			}
			m.c.mu.Unlock()
		}
	})
	defer func() { done = !t.Failed() }()
	testkit.Eventually(t, waitLong, "token shares spread over the members with tags, summing to 1", func() bool {
		for _, tok := range testTokens {
			var sum float64
			for _, m := range ms {
				f := m.p.share(tok.Fingerprint)
				if len(m.p.tags()) > 0 && f <= 0 {
					return false
				}
				sum += f
			}
			if sum < 0.97 || sum > 1+1e-9 {
				return false
			}
		}
		return true
	})
}

var (
	runID   = func() string { var b [3]byte; _, _ = rand.Read(b[:]); return hex.EncodeToString(b[:]) }()
	groupNo atomic.Int64
)

// uniq returns a group name of its own for one test run (the shared cluster outlives a test, and -count reruns it).
func uniq(base string) string { return fmt.Sprintf("%s-%s-%d", base, runID, groupNo.Add(1)) }

func makeTags(n int) []string {
	tags := make([]string, n)
	for i := range tags {
		tags[i] = fmt.Sprintf("tag_%03d", i)
	}
	return tags
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// testLogLevel is the coordinators' log level in tests (TAGSTREAM_GROUP_DEBUG=1: debug).
var testLogLevel = func() slog.Level {
	if os.Getenv("TAGSTREAM_GROUP_DEBUG") == "1" {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}()
