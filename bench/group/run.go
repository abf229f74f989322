package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tagstream/tagstream/group"
	"github.com/tagstream/tagstream/internal/groupkit"
	"github.com/tagstream/tagstream/poller/checkpoint"
	"github.com/tagstream/tagstream/schema"
	"github.com/tagstream/tagstream/testenv"
)

// tagRate is one tag the simulator posts to, with its Poisson rate in media per second.
type tagRate struct {
	Name string
	Rate float64
}

// zipfTags returns n tags named prefix01... with rates top / i^exponent (bench/wholebinary's zipf50 workload
// with n 50, top 8, exponent 1.1).
func zipfTags(prefix string, n int, top, exponent float64) []tagRate {
	width := len(strconv.Itoa(n))
	out := make([]tagRate, n)
	for i := range out {
		out[i] = tagRate{Name: fmt.Sprintf("%s%0*d", prefix, width, i+1), Rate: top / math.Pow(float64(i+1), exponent)}
	}
	return out
}

// bench holds what every run shares: the built binary, the work directory, the cluster and the workload.
type bench struct {
	bin       string
	dir       string
	cl        *cluster
	js        jetstream.JetStream
	tags      []tagRate
	tokens    int
	perWindow int           // requests per token per window
	window    time.Duration // the compressed hour: the simulator's limit window and tagstream's --rate-window
	seed      int64
	log       func(format string, args ...any)
}

// budget is B, the pooled requests per second.
func (b *bench) budget() float64 {
	return float64(b.tokens) * float64(b.perWindow) / b.window.Seconds()
}

func (b *bench) rates() []float64 {
	out := make([]float64, len(b.tags))
	for i, t := range b.tags {
		out[i] = t.Rate
	}
	return out
}

// run is one run: a fresh simulator (same seed), stream, cursor bucket and group, and its instances.
type run struct {
	b         *bench
	name      string
	sim       *testenv.Server
	polls     *groupkit.PollLog
	tokens    []string
	tokFile   string
	id        string
	stream    string
	prefix    string
	bucket    string
	group     string // "" = single instance
	lease     time.Duration
	instances map[string]*instance
	proxies   []*groupkit.Proxy
}

// newRun starts the simulator and creates the stream and the cursor bucket (three replicas).
func (b *bench) newRun(ctx context.Context, name, groupName string, lease time.Duration) (*run, error) {
	r := &run{b: b, name: name, polls: &groupkit.PollLog{}, id: randomID(), lease: lease, instances: map[string]*instance{}}
	r.stream, r.prefix, r.bucket = "BG_"+r.id, "bg"+r.id, "bg_cursors_"+r.id
	if groupName != "" {
		r.group = groupName + r.id
	}
	for range b.tokens {
		r.tokens = append(r.tokens, newToken())
	}
	r.tokFile = filepath.Join(b.dir, name+"-tokens")
	if err := os.WriteFile(r.tokFile, []byte(strings.Join(r.tokens, "\n")+"\n"), 0o600); err != nil {
		return nil, err
	}
	var tcs []testenv.TagConfig
	for _, t := range b.tags {
		tcs = append(tcs, testenv.TagConfig{Name: t.Name, Rate: t.Rate})
	}
	sim, err := testenv.New(testenv.Config{PlainHTTP: true, Tokens: r.tokens, RequestsPerHour: b.perWindow,
		TimeScale: float64(time.Hour) / float64(b.window), Seed: b.seed, Tags: tcs})
	if err != nil {
		return nil, err
	}
	if err := sim.Start(); err != nil {
		return nil, err
	}
	r.sim = sim
	if _, err := b.js.CreateStream(ctx, jetstream.StreamConfig{Name: r.stream, Subjects: []string{r.prefix + ".>"},
		Storage: jetstream.FileStorage, Replicas: 3, Duplicates: 2 * time.Minute}); err != nil {
		r.close()
		return nil, fmt.Errorf("create stream: %w", err)
	}
	if _, err := b.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: r.bucket, Replicas: 3, Storage: jetstream.FileStorage}); err != nil {
		r.close()
		return nil, fmt.Errorf("create cursor bucket: %w", err)
	}
	return r, nil
}

// close stops every instance, the proxies and the simulator, and deletes the run's stream and buckets.
func (r *run) close() {
	for _, in := range r.instances {
		in.stop()
	}
	for _, p := range r.proxies {
		p.Close()
	}
	if r.sim != nil {
		_ = r.sim.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = r.b.js.DeleteStream(ctx, r.stream)
	_ = r.b.js.DeleteKeyValue(ctx, r.bucket)
	if r.group != "" {
		_ = r.b.js.DeleteKeyValue(ctx, group.StateBucket(r.group))
		_ = r.b.js.DeleteKeyValue(ctx, group.MembersBucket(r.group))
	}
}

// addInstance prepares instance name behind a proxy of its own.
func (r *run) addInstance(name string) (*instance, error) {
	target, err := url.Parse(r.sim.URL())
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	p, err := groupkit.StartProxy(target, tr, name, r.polls)
	if err != nil {
		return nil, err
	}
	r.proxies = append(r.proxies, p)
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	names := make([]string, len(r.b.tags))
	for i, t := range r.b.tags {
		names[i] = t.Name
	}
	in := &instance{name: name, metricsAddr: addr, logPath: filepath.Join(r.b.dir, r.name+"-"+name+".log")}
	in.args = []string{"run",
		"--api-url", p.URL,
		"--tokens-file", r.tokFile,
		"--tags", strings.Join(names, ","),
		"--requests-per-hour", strconv.Itoa(r.b.perWindow),
		"--rate-window", r.b.window.String(),
		"--metrics-addr", addr,
		"--state-dir", filepath.Join(r.b.dir, r.name+"-"+name+"-state"),
		"--sink", "jetstream", "--nats-url", r.b.cl.URLs, "--subject-prefix", r.prefix, "--stream", r.stream,
		"--checkpoint-store", "jetstream-kv", "--kv-bucket", r.bucket, "--replicas", "3",
		"--log-format", "text",
	}
	if r.group != "" {
		in.args = append(in.args, "--group", r.group, "--group-member", name)
		if r.lease > 0 {
			in.args = append(in.args, "--group-lease", r.lease.String())
		}
	}
	r.instances[name] = in
	return in, nil
}

// startAll starts n instances (m1..mn) and waits until each is ready.
func (r *run) startAll(ctx context.Context, n int) error {
	for i := range n {
		in, err := r.addInstance(fmt.Sprintf("m%d", i+1))
		if err != nil {
			return err
		}
		if err := in.start(r.b.bin); err != nil {
			return err
		}
	}
	for _, in := range r.instances {
		if err := in.waitReady(ctx, 90*time.Second); err != nil {
			return err
		}
	}
	return nil
}

// tokenRequests returns the requests of the run's tokens the simulator counted, and how many it refused.
func (r *run) tokenRequests() (requests, limited int64) {
	for _, c := range r.sim.Stats().Credentials {
		if c.Index < len(r.tokens) {
			requests += c.Requests
			limited += c.Limited
		}
	}
	return requests, limited
}

// sleep waits d unless ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// latencyResult is the post-to-event latency of the media that became visible in one window.
type latencyResult struct {
	N, Missing int
	Mean       time.Duration
	P50, P99   time.Duration
}

// latency joins the media visible in [from, to) with the stream's stored times.
func latency(truth []testenv.Truth, stored map[string]time.Time, from, to time.Time) latencyResult {
	var ds []time.Duration
	var res latencyResult
	for _, tr := range truth {
		if !tr.DeletedAt.IsZero() || tr.VisibleAt.Before(from) || !tr.VisibleAt.Before(to) {
			continue
		}
		at, ok := stored[schema.EventID(tr.Tag, tr.MediaID)]
		if !ok {
			res.Missing++
			continue
		}
		ds = append(ds, at.Sub(tr.VisibleAt))
	}
	res.N = len(ds)
	if len(ds) == 0 {
		return res
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	res.Mean = sum / time.Duration(len(ds))
	rank := func(p float64) time.Duration { return ds[max(0, min(len(ds)-1, int(math.Ceil(p*float64(len(ds))))-1))] }
	res.P50, res.P99 = rank(0.5), rank(0.99)
	return res
}

// LStar is the optimum mean wait of a media, in seconds, for tags with Poisson rates sharing budget requests per
// second, one request per poll: L* = (Σ√r_i)² / (2·B·Σr_i) (bench/wholebinary's LStar).
func LStar(rates []float64, budget float64) float64 {
	var sq, sum float64
	for _, r := range rates {
		if r > 0 {
			sq += math.Sqrt(r)
			sum += r
		}
	}
	if budget <= 0 || sum <= 0 {
		return math.NaN()
	}
	return sq * sq / (2 * budget * sum)
}

// budgetResult is what a budget run measured.
type budgetResult struct {
	Name         string
	Instances    int
	Span, Warmup time.Duration
	UseAll       float64 // requests / (B × span), from the start
	UseSteady    float64 // the same after the warm-up
	Requests     int64
	Limited      int64
	Warm, Steady latencyResult
	LStar        float64 // seconds
	Repeats      int     // events the stream holds twice
}

// budgetRun runs n instances (n 1: a single instance, no group) for span and measures budget use and latency.
func (b *bench) budgetRun(ctx context.Context, n int, span, warmup, grace time.Duration) (budgetResult, error) {
	name := fmt.Sprintf("budget-%d", n)
	groupName := ""
	if n > 1 {
		groupName = "bg"
	}
	r, err := b.newRun(ctx, name, groupName, 0)
	if err != nil {
		return budgetResult{}, err
	}
	defer r.close()
	if err := r.startAll(ctx, n); err != nil {
		return budgetResult{}, err
	}
	t0 := time.Now()
	req0, _ := r.tokenRequests()
	b.log("%s: %d instance(s) ready; measuring %s", name, n, span)
	if err := sleep(ctx, warmup); err != nil {
		return budgetResult{}, err
	}
	reqW, _ := r.tokenRequests()
	tW := time.Now()
	if err := sleep(ctx, span-warmup); err != nil {
		return budgetResult{}, err
	}
	reqE, limited := r.tokenRequests()
	tE := time.Now()
	for _, t := range b.tags {
		r.sim.SetRate(t.Name, 0)
	}
	// Wait for the media still in flight: until every media visible since the warm-up is on the stream.
	truth := r.sim.GroundTruth()
	var stored map[string]time.Time
	var repeats int
	deadline := time.Now().Add(grace)
	for {
		stored, repeats, err = readStream(ctx, b.js, r.stream)
		if err != nil {
			return budgetResult{}, err
		}
		if latency(truth, stored, tW, tE).Missing == 0 || time.Now().After(deadline) {
			break
		}
		if err := sleep(ctx, 5*time.Second); err != nil {
			return budgetResult{}, err
		}
	}
	B := b.budget()
	res := budgetResult{
		Name: name, Instances: n, Span: tE.Sub(t0), Warmup: tW.Sub(t0),
		UseAll:    float64(reqE-req0) / (B * tE.Sub(t0).Seconds()),
		UseSteady: float64(reqE-reqW) / (B * tE.Sub(tW).Seconds()),
		Requests:  reqE - req0, Limited: limited,
		Warm:   latency(truth, stored, t0, tW),
		Steady: latency(truth, stored, tW, tE),
		LStar:  LStar(b.rates(), B), Repeats: repeats,
	}
	return res, nil
}

// claimRecord is one write of a tag's owner record (own.<tag> in the group's state bucket).
type claimRecord struct {
	Key    string // own.<tag key>
	Member string // "" for a delete (a release)
	At     time.Time
}

// ownerLog follows the owner records of a group's tags.
type ownerLog struct {
	mu   sync.Mutex
	recs []claimRecord
}

// watchOwners records every write of an owner record until ctx ends.
func watchOwners(ctx context.Context, js jetstream.JetStream, groupName string) (*ownerLog, error) {
	l := &ownerLog{}
	kv, err := js.KeyValue(ctx, group.StateBucket(groupName))
	if err != nil {
		return nil, err
	}
	w, err := kv.Watch(ctx, "own.>", jetstream.UpdatesOnly())
	if err != nil {
		return nil, err
	}
	go func() {
		defer func() { _ = w.Stop() }()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil {
					continue
				}
				rec := claimRecord{Key: e.Key(), At: e.Created()}
				if e.Operation() == jetstream.KeyValuePut {
					var v struct {
						Member string `json:"member"`
					}
					if json.Unmarshal(e.Value(), &v) == nil {
						rec.Member = v.Member
					}
				}
				l.mu.Lock()
				l.recs = append(l.recs, rec)
				l.mu.Unlock()
			}
		}
	}()
	return l, nil
}

// claimedAfter returns when a member other than not first wrote tag's owner record at or after at.
func (l *ownerLog) claimedAfter(tag, not string, at time.Time) (time.Time, bool) {
	key := "own." + checkpoint.KVKey(tag)
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.recs {
		if r.Key == key && r.Member != "" && r.Member != not && !r.At.Before(at) {
			return r.At, true
		}
	}
	return time.Time{}, false
}

// failoverEvent is one kill -9 or SIGTERM and what it did to the victim's tags.
type failoverEvent struct {
	Kind     string // "kill -9" or "SIGTERM"
	Victim   string
	Tags     int
	Owned    time.Duration // time from the signal until another member had claimed every moved tag
	Max, P50 time.Duration // time from the signal to the first poll of a moved tag by another member
	Exit     time.Duration // SIGTERM: time from the signal to the exit
	Gap      time.Duration // the longest a moved tag went unpolled across the event
	GapTag   string
	Before   time.Duration // the longest gap of the same tags in the minute before the event, for comparison
	Missing  []string      // moved tags not polled by another member within the timeout
}

// failoverResult is what a failover run measured.
type failoverResult struct {
	Lease     time.Duration
	PerWindow int // requests per token per window
	Events    []failoverEvent
	Requests  int64
	Limited   int64
	Lost      int // media visible after the warm-up that never reached the stream
	Repeats   int
	Media     int
}

// owners reads each live instance's own tags from its /status.
func (r *run) owners() map[string][]string {
	out := map[string][]string{}
	for name, in := range r.instances {
		if !in.running() {
			continue
		}
		if tags, err := in.ownTags(); err == nil {
			out[name] = tags
		}
	}
	return out
}

// measureFailover waits until every moved tag was polled by another member (up to timeout) and returns the figures.
func (r *run) measureFailover(ctx context.Context, owners *ownerLog, kind, victim string, moved []string, at time.Time, timeout time.Duration) failoverEvent {
	ev := failoverEvent{Kind: kind, Victim: victim, Tags: len(moved)}
	deadline := time.Now().Add(timeout)
	var times []time.Duration
	for {
		recs := r.polls.Records()
		times, ev.Missing = times[:0], nil
		for _, tag := range moved {
			if p, ok := recs.FirstPoll(tag, victim, at); ok {
				times = append(times, p.Start.Sub(at))
			} else {
				ev.Missing = append(ev.Missing, tag)
			}
		}
		if len(ev.Missing) == 0 || time.Now().After(deadline) || sleep(ctx, 200*time.Millisecond) != nil {
			break
		}
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	if len(times) > 0 {
		ev.Max, ev.P50 = times[len(times)-1], times[(len(times)-1)/2]
	}
	for _, tag := range moved {
		if c, ok := owners.claimedAfter(tag, victim, at); ok {
			ev.Owned = max(ev.Owned, c.Sub(at))
		}
	}
	recs := r.polls.Records()
	for _, tag := range moved {
		if g, ok := recs.GapAcross(tag, victim, at); ok && g > ev.Gap {
			ev.Gap, ev.GapTag = g, tag
		}
		ev.Before = max(ev.Before, recs.LongestGapBetween(tag, at.Add(-time.Minute), at))
	}
	return ev
}

// failoverRun runs three instances in a group with the given lease and, repeat times, kills one with kill -9 and
// stops one with SIGTERM (each restarted after its tags moved), measuring how long the moved tags waited.
func (b *bench) failoverRun(ctx context.Context, lease, settle, grace time.Duration, repeat int) (failoverResult, error) {
	r, err := b.newRun(ctx, "failover", "bgf", lease)
	if err != nil {
		return failoverResult{}, err
	}
	defer r.close()
	if err := r.startAll(ctx, 3); err != nil {
		return failoverResult{}, err
	}
	owners, err := watchOwners(ctx, b.js, r.group)
	if err != nil {
		return failoverResult{}, fmt.Errorf("watch the owner records: %w", err)
	}
	t0 := time.Now()
	b.log("failover: three instances ready; settling %s", settle)
	if err := sleep(ctx, settle); err != nil {
		return failoverResult{}, err
	}
	res := failoverResult{Lease: lease, PerWindow: b.perWindow}
	names := []string{"m1", "m2", "m3"}
	for i := range repeat * 2 {
		kind := "kill -9"
		if i%2 == 1 {
			kind = "SIGTERM"
		}
		victim := names[i%3]
		in := r.instances[victim]
		moved := r.owners()[victim]
		if len(moved) == 0 {
			return res, fmt.Errorf("failover: %s owns no tag by its /status", victim)
		}
		at := time.Now()
		var ev failoverEvent
		if kind == "kill -9" {
			in.signal(syscall.SIGKILL, 10*time.Second)
			ev = r.measureFailover(ctx, owners, kind, victim, moved, at, 2*lease+60*time.Second)
		} else {
			ended := in.signal(syscall.SIGTERM, 30*time.Second)
			exit := time.Since(at)
			ev = r.measureFailover(ctx, owners, kind, victim, moved, at, 60*time.Second)
			ev.Exit = exit
			if !ended {
				return res, fmt.Errorf("failover: %s did not exit within 30 s of SIGTERM", victim)
			}
		}
		b.log("failover: %s of %s: %d tags, all owned again after %s, first polls max %s, p50 %s, gap %s (before: %s), missing %v",
			kind, victim, ev.Tags, ev.Owned.Round(time.Millisecond), ev.Max.Round(time.Millisecond), ev.P50.Round(time.Millisecond), ev.Gap.Round(time.Millisecond), ev.Before.Round(time.Millisecond), ev.Missing)
		res.Events = append(res.Events, ev)
		// Restart it under the same name: it takes its tags back once its old membership is gone.
		if err := in.start(b.bin); err != nil {
			return res, err
		}
		if err := in.waitReady(ctx, 2*lease+90*time.Second); err != nil {
			return res, err
		}
		if err := sleep(ctx, settle/2); err != nil {
			return res, err
		}
	}
	tE := time.Now()
	for _, t := range b.tags {
		r.sim.SetRate(t.Name, 0)
	}
	truth := r.sim.GroundTruth()
	var stored map[string]time.Time
	var repeats int
	var lat latencyResult
	deadline := time.Now().Add(grace)
	for {
		if stored, repeats, err = readStream(ctx, b.js, r.stream); err != nil {
			return res, err
		}
		lat = latency(truth, stored, t0.Add(settle/2), tE)
		if lat.Missing == 0 || time.Now().After(deadline) || sleep(ctx, 5*time.Second) != nil {
			break
		}
	}
	res.Lost, res.Repeats, res.Media = lat.Missing, repeats, lat.N
	res.Requests, res.Limited = r.tokenRequests()
	return res, nil
}

// connectJetStream connects to the cluster.
func connectJetStream(urls string) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(urls, nats.Timeout(5*time.Second), nats.MaxReconnects(-1))
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}
