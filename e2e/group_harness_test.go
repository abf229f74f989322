//go:build integration

package e2e

// The harness of the group tests (group_test.go): several tagstream binaries in one group (--group) on the
// three-node nats-server cluster of scripts/nats-cluster.sh, against one simulator. Each instance reaches the
// simulator through a recording proxy of its own, so that every request is known by instance, tag and time: that
// is how failover times and polling gaps are measured. The events stream and the cursor bucket are created by the
// test (three replicas, the bucket keeping history), watched live from the start: the stream for what arrived,
// the bucket for every cursor write of every tag.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tagstream/tagstream/group"
	"github.com/tagstream/tagstream/internal/groupkit"
	"github.com/tagstream/tagstream/internal/status"
	"github.com/tagstream/tagstream/internal/testkit"
	"github.com/tagstream/tagstream/poller/checkpoint"
	"github.com/tagstream/tagstream/schema"
)

// startRecordingProxy starts the recording proxy of member in front of the simulator (groupkit.StartProxy), closed
// when the test ends, and returns the API URL to give that member.
func startRecordingProxy(t *testing.T, s *sim, member string, log *groupkit.PollLog) string {
	t.Helper()
	target, err := url.Parse(s.URL())
	if err != nil {
		t.Fatalf("simulator URL: %v", err)
	}
	p, err := groupkit.StartProxy(target, s.Client().Transport, member, log)
	if err != nil {
		t.Fatalf("proxy: %v", err)
	}
	t.Cleanup(p.Close)
	return p.URL
}

// streamWatch reads the events stream live from its first message: the event ids stored (each must be stored
// once: the stream drops a re-publish by Nats-Msg-Id) and when each arrived.
type streamWatch struct {
	mu      sync.Mutex
	ids     map[string]time.Time // event id -> stored time
	repeats []string             // event ids stored twice
	lastSeq uint64
	errs    int
	arrived chan struct{} // signalled (without blocking) after each message
}

func watchStream(t *testing.T, js jetstream.JetStream, stream string) *streamWatch {
	t.Helper()
	w := &streamWatch{ids: map[string]time.Time{}, arrived: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			w.consume(ctx, js, stream)
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

// consume reads from the message after the last one seen until an error (a node away) or ctx ends.
func (w *streamWatch) consume(ctx context.Context, js jetstream.JetStream, stream string) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		w.countErr()
		return
	}
	w.mu.Lock()
	from := w.lastSeq + 1
	w.mu.Unlock()
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: from})
	if err != nil {
		w.countErr()
		return
	}
	it, err := c.Messages()
	if err != nil {
		w.countErr()
		return
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	for {
		m, err := it.Next()
		if err != nil {
			if ctx.Err() == nil {
				w.countErr()
			}
			return
		}
		md, err := m.Metadata()
		if err != nil {
			w.countErr()
			return
		}
		id := m.Headers().Get(jetstream.MsgIDHeader)
		w.mu.Lock()
		if md.Sequence.Stream > w.lastSeq {
			w.lastSeq = md.Sequence.Stream
			if _, dup := w.ids[id]; dup {
				w.repeats = append(w.repeats, id)
			} else {
				w.ids[id] = md.Timestamp
			}
		}
		w.mu.Unlock()
		select {
		case w.arrived <- struct{}{}:
		default:
		}
	}
}

func (w *streamWatch) countErr() {
	w.mu.Lock()
	w.errs++
	w.mu.Unlock()
}

// has reports whether the stream holds the event of (tag, media).
func (w *streamWatch) has(tag, mediaID string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.ids[schema.EventID(tag, mediaID)]
	return ok
}

// missingVisibleBefore returns the media the simulator made visible before at that the stream does not hold yet.
func (w *streamWatch) missingVisibleBefore(s *sim, at time.Time) []truthKey {
	var out []truthKey
	truth := s.GroundTruth()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, tr := range truth {
		if !tr.DeletedAt.IsZero() || tr.VisibleAt.After(at) {
			continue
		}
		if _, ok := w.ids[schema.EventID(tr.Tag, tr.MediaID)]; !ok {
			out = append(out, truthKey{tr.Tag, tr.MediaID})
		}
	}
	return out
}

// cursorWrite is one write of a tag's cursor as the bucket's watch delivered it.
type cursorWrite struct {
	Rev    uint64
	Op     jetstream.KeyValueOp
	Cursor string
	At     time.Time
}

// cursorWatch records every revision of every key of the cursor bucket, from the first.
type cursorWatch struct {
	mu     sync.Mutex
	byKey  map[string][]cursorWrite
	last   uint64 // highest revision seen
	errs   int
	undecd []string
}

func watchCursors(t *testing.T, js jetstream.JetStream, bucket string) *cursorWatch {
	t.Helper()
	w := &cursorWatch{byKey: map[string][]cursorWrite{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			w.watch(ctx, js, bucket)
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

// watch follows the bucket with history (every kept revision first, then updates) until the watch fails; a
// revision already seen is skipped, so a restarted watch adds only what it had not delivered.
func (w *cursorWatch) watch(ctx context.Context, js jetstream.JetStream, bucket string) {
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		w.countErr()
		return
	}
	kw, err := kv.WatchAll(ctx, jetstream.IncludeHistory())
	if err != nil {
		w.countErr()
		return
	}
	defer kw.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-kw.Updates():
			if !ok {
				w.countErr()
				return
			}
			if e == nil {
				continue // the end of the initial values
			}
			w.record(e)
		}
	}
}

func (w *cursorWatch) countErr() {
	w.mu.Lock()
	w.errs++
	w.mu.Unlock()
}

func (w *cursorWatch) record(e jetstream.KeyValueEntry) {
	cw := cursorWrite{Rev: e.Revision(), Op: e.Operation(), At: e.Created()}
	if cw.Op == jetstream.KeyValuePut {
		var v struct {
			Cursor string `json:"Cursor"`
		}
		if err := json.Unmarshal(e.Value(), &v); err != nil {
			w.mu.Lock()
			w.undecd = append(w.undecd, fmt.Sprintf("%s rev %d: %v", e.Key(), e.Revision(), err))
			w.mu.Unlock()
			return
		}
		cw.Cursor = v.Cursor
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	writes := w.byKey[e.Key()]
	if n := len(writes); n > 0 && writes[n-1].Rev >= cw.Rev {
		return // delivered again by a restarted watch
	}
	w.byKey[e.Key()] = append(writes, cw)
	w.last = max(w.last, cw.Rev)
}

// cursorBefore compares two numeric cursors (the simulator's: decimals of 16 to 19 digits) as integers.
func cursorBefore(a, b string) (bool, error) {
	x, ok1 := new(big.Int).SetString(a, 10)
	y, ok2 := new(big.Int).SetString(b, 10)
	if !ok1 || !ok2 {
		return false, fmt.Errorf("cursor %q or %q is not a decimal", a, b)
	}
	return x.Cmp(y) < 0, nil
}

// check returns every cursor write that moved a tag's cursor backwards, emptied or deleted it, over every write
// seen, and the number of writes checked.
func (w *cursorWatch) check(tags []string) (int, []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var problems []string
	errorf := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	for _, u := range w.undecd {
		errorf("cursor bucket: undecodable value %s", u)
	}
	names := map[string]string{}
	for _, tag := range tags {
		names[checkpoint.KVKey(tag)] = tag
	}
	n := 0
	for key, writes := range w.byKey {
		tag := names[key]
		if tag == "" {
			tag = "key " + key
		}
		prev := ""
		for _, cw := range writes {
			n++
			if cw.Op != jetstream.KeyValuePut {
				errorf("tag %q: cursor %s at revision %d", tag, cw.Op, cw.Rev)
				continue
			}
			switch {
			case prev != "" && cw.Cursor == "":
				errorf("tag %q: cursor emptied at revision %d (was %s)", tag, cw.Rev, prev)
			case prev != "" && cw.Cursor != "":
				back, err := cursorBefore(cw.Cursor, prev)
				if err != nil {
					errorf("tag %q revision %d: %v", tag, cw.Rev, err)
				} else if back {
					errorf("tag %q: cursor moved backwards at revision %d (%s): %s after %s", tag, cw.Rev,
						cw.At.Format("15:04:05.000"), cw.Cursor, prev)
				}
			}
			if cw.Cursor != "" {
				prev = cw.Cursor
			}
		}
	}
	return n, problems
}

// groupStatus is the part of an instance's /status the group tests read.
type groupStatus struct {
	Instance string             `json:"instance"`
	Tags     []status.TagStatus `json:"tags"`
	Group    *group.Status      `json:"group"`
}

// groupTestEnv is one group on the cluster: the simulator, the recording proxies, the events stream, the cursor
// bucket and the instances.
type groupTestEnv struct {
	t       *testing.T
	cluster groupkit.Cluster
	nc      *nats.Conn
	js      jetstream.JetStream
	sim     *sim
	polls   *groupkit.PollLog
	group   string
	stream  string
	prefix  string
	bucket  string
	lease   time.Duration
	window  time.Duration // the rate window of the compressed hour
	rph     int           // requests per window per token
	events  *streamWatch
	cursors *cursorWatch
	members map[string]*groupMember
	// exempt: members killed or paused, and until when (their requests in flight then may overlap a new owner's).
	exempt   map[string]time.Time
	tagNames []string
}

// groupMember is one tagstream instance of the group.
type groupMember struct {
	name string
	ts   *tagstream
}

// groupTestOptions configures newGroupTestEnv.
type groupTestOptions struct {
	Sim   simOptions    // RequestsPerHour counts per simulated hour, which lasts Window
	Lease time.Duration // --group-lease; default 3s
	// Window is the compressed hour: the simulator's rate-limit window and tagstream's --rate-window; default 1m.
	Window time.Duration
}

// newGroupTestEnv starts the simulator and creates the group's stream and cursor bucket on the cluster (three
// replicas; the bucket keeps 64 revisions per key) under names unique to this run, removed at the end.
func newGroupTestEnv(t *testing.T, o groupTestOptions) *groupTestEnv {
	t.Helper()
	cl := groupkit.NeedCluster(t, true) // the package is built only for the integration run (-tags integration)
	if o.Lease == 0 {
		o.Lease = 3 * time.Second
	}
	if o.Window == 0 {
		o.Window = time.Minute
	}
	o.Sim.TimeScale = float64(time.Hour) / float64(o.Window)
	var b [4]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	e := &groupTestEnv{
		t: t, cluster: cl, polls: &groupkit.PollLog{},
		group: "e2e" + id, stream: "E2EG_" + id, prefix: "e2eg" + id, bucket: "e2eg_cursors_" + id,
		lease: o.Lease, window: o.Window, members: map[string]*groupMember{}, exempt: map[string]time.Time{},
	}
	e.sim = startSim(t, o.Sim)
	e.rph = e.sim.opts.RequestsPerHour
	e.tagNames = e.sim.tagNames()
	nc, err := nats.Connect(cl.URLs, nats.Timeout(5*time.Second), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatalf("connect to the cluster %s: %v", cl.URLs, err)
	}
	e.nc = nc
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	e.js = js
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: e.stream, Subjects: []string{e.prefix + ".>"}, Storage: jetstream.FileStorage, Replicas: 3,
		Duplicates: 2 * time.Minute,
	}); err != nil {
		t.Fatalf("create stream %s: %v", e.stream, err)
	}
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: e.bucket, History: 64, Replicas: 3,
		Storage: jetstream.FileStorage}); err != nil {
		t.Fatalf("create cursor bucket %s: %v", e.bucket, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = js.DeleteStream(ctx, e.stream)
		_ = js.DeleteKeyValue(ctx, e.bucket)
		_ = js.DeleteKeyValue(ctx, group.StateBucket(e.group))
		_ = js.DeleteKeyValue(ctx, group.MembersBucket(e.group))
		nc.Close()
	})
	e.events = watchStream(t, js, e.stream)
	e.cursors = watchCursors(t, js, e.bucket)
	return e
}

// newMember prepares (without starting) instance name: its own proxy to the simulator, group mode with the test's
// lease and the compressed hour, cursors in the test's bucket, events to the test's stream.
func (e *groupTestEnv) newMember(name string) *groupMember {
	t := e.t
	t.Helper()
	api := startRecordingProxy(t, e.sim, name, e.polls)
	ts := newTagstream(t, e.sim, tagstreamOptions{
		Sink: []string{"--sink", "jetstream", "--nats-url", e.cluster.URLs, "--subject-prefix", e.prefix,
			"--stream", e.stream},
		Extra: []string{
			"--api-url", api,
			"--requests-per-hour", strconv.Itoa(e.rph),
			"--rate-window", e.window.String(),
			"--group", e.group,
			"--group-member", name,
			"--group-lease", e.lease.String(),
			"--checkpoint-store", "jetstream-kv",
			"--kv-bucket", e.bucket,
			"--replicas", "3",
		},
	})
	m := &groupMember{name: name, ts: ts}
	e.members[name] = m
	return m
}

// startMember starts a new instance and waits until it is ready (its lease valid).
func (e *groupTestEnv) startMember(name string) *groupMember {
	e.t.Helper()
	m := e.newMember(name)
	m.ts.start()
	return m
}

// live returns the members whose process runs, sorted by name.
func (e *groupTestEnv) live() []*groupMember {
	var out []*groupMember
	for _, m := range e.members {
		if m.ts.proc != nil && m.ts.proc.running() {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// status fetches a member's /status.
func (m *groupMember) status() (groupStatus, error) {
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + m.ts.metricsAddr + "/status")
	if err != nil {
		return groupStatus{}, err
	}
	defer resp.Body.Close()
	var st groupStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return groupStatus{}, fmt.Errorf("decode /status: %w", err)
	}
	if st.Group == nil {
		return st, errors.New(`/status has no "group"`)
	}
	return st, nil
}

// ownTags returns the tags a member's /status says it owns (its own entry among the members).
func ownTags(st groupStatus) ([]string, bool) {
	for _, ms := range st.Group.Members {
		if ms.Self || ms.Name == st.Group.Self {
			return ms.Tags, true
		}
	}
	return nil, false
}

// ownership reads every live member's /status and returns who owns which tag by each member's own account, and
// the problems with it: a tag owned by two members, a tag of the set owned by none, a lease not valid.
func (e *groupTestEnv) ownership() (map[string]string, []string) {
	owner := map[string]string{}
	var problems []string
	for _, m := range e.live() {
		st, err := m.status()
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", m.name, err))
			continue
		}
		if !st.Group.LeaseValid {
			problems = append(problems, m.name+": lease not valid")
		}
		tags, ok := ownTags(st)
		if !ok {
			problems = append(problems, m.name+": not among the members of its own /status")
			continue
		}
		for _, tag := range tags {
			if o, dup := owner[tag]; dup {
				problems = append(problems, fmt.Sprintf("tag %q owned by %s and %s", tag, o, m.name))
			}
			owner[tag] = m.name
		}
	}
	for _, tag := range e.tagNames {
		if _, ok := owner[tag]; !ok {
			problems = append(problems, fmt.Sprintf("tag %q owned by no live member", tag))
		}
	}
	return owner, problems
}

// waitExclusive waits until every tag is owned by exactly one live member (each by its own /status), every one
// of them owns at least one tag, and each owner has polled each of its tags since since; it returns the owners.
func (e *groupTestEnv) waitExclusive(what string, since time.Time, timeout time.Duration) map[string]string {
	t := e.t
	t.Helper()
	var owner map[string]string
	var problems []string
	ok := waitFor(timeout, func() bool {
		owner, problems = e.ownership()
		if len(problems) > 0 {
			return false
		}
		owns := map[string]int{}
		for tag, m := range owner {
			owns[m]++
			if !e.polls.Records().PolledBy(m, tag, since) {
				problems = []string{fmt.Sprintf("%s owns %q but has not polled it yet", m, tag)}
				return false
			}
		}
		for _, m := range e.live() {
			if owns[m.name] == 0 {
				problems = []string{m.name + " owns no tag"}
				return false
			}
		}
		return true
	})
	if !ok {
		t.Fatalf("%s: not within %s: %s", what, timeout, strings.Join(problems, "; "))
	}
	return owner
}

// tagsOf returns the tags owner maps to member, sorted.
func tagsOf(owner map[string]string, member string) []string {
	var out []string
	for tag, m := range owner {
		if m == member {
			out = append(out, tag)
		}
	}
	sort.Strings(out)
	return out
}

// waitDelivered waits until the stream holds every media the simulator made visible before at.
func (e *groupTestEnv) waitDelivered(what string, at time.Time, timeout time.Duration) {
	t := e.t
	t.Helper()
	var missing []truthKey
	if !waitFor(timeout, func() bool {
		missing = e.events.missingVisibleBefore(e.sim, at)
		return len(missing) == 0
	}) {
		t.Fatalf("%s: %d media visible before %s not on the stream within %s, e.g. %v", what, len(missing),
			at.Format("15:04:05.000"), timeout, missing[:min(5, len(missing))])
	}
}

// rateLimited returns the requests of tagstream's tokens the simulator refused over the limit, across all
// instances (the instances share the tokens, so the simulator counts each token's requests from all of them).
func (e *groupTestEnv) rateLimited() (limited, requests int64) {
	for _, c := range e.sim.Stats().Credentials {
		if c.Index < len(e.sim.tokens) {
			limited += c.Limited
			requests += c.Requests
		}
	}
	return limited, requests
}

// requireNoRateLimit fails the test when the simulator refused any request of tagstream's tokens.
func (e *groupTestEnv) requireNoRateLimit(after string) {
	e.t.Helper()
	if l, n := e.rateLimited(); l > 0 {
		e.t.Errorf("after %s: the simulator refused %d of %d requests of tagstream's tokens over the limit", after, l, n)
	}
}

// requireCursorsForward fails the test for every cursor write seen so far that moved a tag's cursor backwards,
// emptied or deleted it.
func (e *groupTestEnv) requireCursorsForward(after string) {
	e.t.Helper()
	_, problems := e.cursors.check(e.tagNames)
	for _, p := range problems {
		e.t.Errorf("after %s: %s", after, p)
	}
}

// metricSum returns the sum of a metric over the live members.
func (e *groupTestEnv) metricSum(name string) float64 {
	sum := 0.0
	for _, m := range e.live() {
		if v, err := m.ts.metric(name); err == nil {
			sum += v
		}
	}
	return sum
}

// pause stops a member with SIGSTOP; resume continues it.
func (m *groupMember) pause() time.Time {
	_ = m.ts.proc.cmd.Process.Signal(syscall.SIGSTOP)
	return time.Now()
}

func (m *groupMember) resume() time.Time {
	_ = m.ts.proc.cmd.Process.Signal(syscall.SIGCONT)
	return time.Now()
}

// burstOn posts n media to tag and returns when the stream holds the first of them (the rest of the batch is then
// most likely being published, its cursor not yet committed), or after timeout.
func (e *groupTestEnv) burstOn(tag string, n int, timeout time.Duration) bool {
	posted := e.sim.Post(tag, n)
	deadline := time.After(timeout)
	for {
		for _, tr := range posted {
			if e.events.has(tag, tr.MediaID) {
				return true
			}
		}
		select {
		case <-e.events.arrived:
		case <-deadline:
			return false
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// leaderNode returns the number (1..3) of the node that leads stream; the cluster script names its nodes n1..n3.
func (e *groupTestEnv) leaderNode(stream string) int {
	t := e.t
	t.Helper()
	var n int
	testkit.Eventually(t, 30*time.Second, "a leader for "+stream, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var err error
		n, err = groupkit.LeaderNode(ctx, e.js, stream)
		return err == nil
	})
	return n
}

// figures logs one line of measured figures in a form bench/group.md quotes.
func (e *groupTestEnv) figures(format string, args ...any) {
	e.t.Logf("GROUP-FIGURES %s: %s", e.t.Name(), fmt.Sprintf(format, args...))
}

// failover returns, for each tag in moved, the time from at to the first request for it by a member other than
// from, waiting up to timeout; tags not polled in time are reported as missing.
func (e *groupTestEnv) failover(moved []string, from string, at time.Time, timeout time.Duration) (map[string]time.Duration, []string) {
	got := map[string]time.Duration{}
	waitFor(timeout, func() bool {
		for _, tag := range moved {
			if _, ok := got[tag]; ok {
				continue
			}
			if r, ok := e.polls.Records().FirstPoll(tag, from, at); ok {
				got[tag] = r.Start.Sub(at)
			}
		}
		return len(got) == len(moved)
	})
	var missing []string
	for _, tag := range moved {
		if _, ok := got[tag]; !ok {
			missing = append(missing, tag)
		}
	}
	return got, missing
}

// maxOf returns the largest duration of m and its key.
func maxOf(m map[string]time.Duration) (time.Duration, string) {
	var worst time.Duration
	k := ""
	for key, d := range m {
		if d >= worst {
			worst, k = d, key
		}
	}
	return worst, k
}
