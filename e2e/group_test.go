//go:build integration

package e2e

import (
	"fmt"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tagstream/tagstream/group"
	"github.com/tagstream/tagstream/testenv"
)

// groupTags is the workload of the group tests: one hot tag, two warm ones, a non-ASCII one and eight quiet ones,
// each with a backlog the instances walk at their start (--start backfill: every media the simulator ever showed
// must arrive).
func groupTags() []testenv.TagConfig {
	tags := []testenv.TagConfig{
		{Name: "hot", Rate: 2, Initial: 40},
		{Name: "warm_a", Rate: 0.8, Initial: 10},
		{Name: "warm_b", Rate: 0.8, Initial: 10},
		{Name: "東京", Rate: 0.3, Initial: 5},
	}
	for i := range 8 {
		tags = append(tags, testenv.TagConfig{Name: fmt.Sprintf("quiet_%02d", i+1), Rate: 0.15, Initial: 3})
	}
	return tags
}

// TestGroupOnTheCluster runs three tagstream instances as one group (--group) on the three-node nats-server cluster
// against the simulator, and puts the group through, in turn: a member killed with kill -9, a fourth member
// joining, the nats-server node leading the group's membership stopped and brought back, an owner paused with
// SIGSTOP past its lease and resumed, and a member stopped with SIGTERM while it publishes a batch. After each
// step: every tag is owned by exactly one live member (by each member's /status) and polled by it; every media the
// simulator showed before the step is on the stream; the simulator refused no request of the shared tokens (it
// counts each token across all instances, over a compressed hour of 20 s, so zero refusals means the members'
// shares of each token never summed above it); and no cursor write seen so far moved a tag's cursor backwards (the
// test's cursor bucket keeps history and is watched from its creation). At the end: every media arrived once (the
// stream holds each event id once: a failover's re-publish is dropped by Nats-Msg-Id), in tag order, with the
// source's fields, and no two members' requests for one tag overlapped. Failover times and polling gaps are
// logged as GROUP-FIGURES lines (bench/group.md).
func TestGroupOnTheCluster(t *testing.T) {
	e := newGroupTestEnv(t, groupTestOptions{
		Sim: simOptions{
			Tags:      groupTags(),
			Tokens:    3,
			Verifiers: 8,
			// Per token per compressed hour of 20 s: 10 requests/s, 30 over the group, which the workload can use
			// up. The test spans several windows, so a token's limit is checked over whole windows; the members'
			// paces (0.9 of their shares) plus their bursts (3 requests per member and token) stay below it.
			RequestsPerHour: 200,
		},
		Lease:  3 * time.Second,
		Window: 20 * time.Second,
	})
	start := time.Now()
	lease := e.lease
	failoverLimit := lease + 5*time.Second // the lease, plus the claim and a first poll on a loaded machine

	var owner map[string]string
	step := func(name string, f func(t *testing.T)) {
		if !t.Run(name, f) {
			t.FailNow()
		}
	}

	step("three instances share the tags, each tag owned and polled by exactly one", func(t *testing.T) {
		for i := range 3 {
			e.startMember(fmt.Sprintf("m%d", i+1))
		}
		owner = e.waitExclusive("three members owning every tag", start, 60*time.Second)
		for _, m := range e.live() {
			t.Logf("%s owns %v", m.name, tagsOf(owner, m.name))
		}
		e.waitDelivered("the backlog", time.Now(), 90*time.Second)
		hold(t.Context(), e.window) // a whole window of steady polling by the three
		e.requireNoRateLimit("the start")
		e.requireCursorsForward("the start")
	})

	step("a member killed with kill -9: its tags resume elsewhere within the lease", func(t *testing.T) {
		hold(t.Context(), 2*time.Second)
		victim := owner["hot"]
		moved := tagsOf(owner, victim)
		at := e.members[victim].ts.kill9()
		e.exempt[victim] = at
		times, missing := e.failover(moved, victim, at, failoverLimit+10*time.Second)
		if len(missing) > 0 {
			t.Fatalf("tags %v of the killed %s not polled by another member within %s", missing, victim, failoverLimit+10*time.Second)
		}
		worst, tag := maxOf(times)
		gap, gapTag := maxOf(e.polls.Records().GapsAcross(moved, victim, at))
		e.figures("kill -9 of %s (%d tags, lease %s): failover max %s (tag %q), longest polling gap %s (tag %q)",
			victim, len(moved), lease, worst.Round(time.Millisecond), tag, gap.Round(time.Millisecond), gapTag)
		if worst > failoverLimit {
			t.Errorf("tag %q was first polled %s after the kill, want at most %s (lease %s)", tag, worst, failoverLimit, lease)
		}
		owner = e.waitExclusive("the two others owning every tag", at, 30*time.Second)
		e.waitDelivered("after the kill", time.Now(), 60*time.Second)
		e.requireNoRateLimit("the kill")
		e.requireCursorsForward("the kill")
	})

	step("a fourth member joins and receives tags within seconds, publishing nothing twice", func(t *testing.T) {
		dupBefore := e.metricSum("tagstream_publisher_duplicates_total")
		e.sim.Post("hot", 70) // a walk under way while tags move to the new member
		at := time.Now()
		m := e.newMember("m4")
		m.ts.start()
		ready := time.Now()
		owner = e.waitExclusive("three live members owning every tag, the new one some", at, 30*time.Second)
		mine := tagsOf(owner, "m4")
		first := time.Time{}
		for _, tag := range mine {
			if r, ok := e.polls.Records().FirstPollBy("m4", tag, at); ok && (first.IsZero() || r.Start.Before(first)) {
				first = r.Start
			}
		}
		e.figures("m4 joined: ready %s after its launch, first poll of its %d tags %s after ready",
			ready.Sub(at).Round(time.Millisecond), len(mine), first.Sub(ready).Round(time.Millisecond))
		if d := first.Sub(ready); d > 5*time.Second {
			t.Errorf("m4 polled its first tag %s after it was ready, want within seconds", d)
		}
		e.waitDelivered("after the join", time.Now(), 60*time.Second)
		hold(t.Context(), time.Second)
		if dups := e.metricSum("tagstream_publisher_duplicates_total") - dupBefore; dups != 0 {
			t.Errorf("the graceful handoffs to the new member re-published %v events the stream already held, want 0", dups)
		}
		e.requireNoRateLimit("the join")
		e.requireCursorsForward("the join")
	})

	step("the nats-server node leading the membership stopped and brought back", func(t *testing.T) {
		n := e.leaderNode("KV_" + group.MembersBucket(e.group))
		dupBefore := e.metricSum("tagstream_publisher_duplicates_total")
		at := time.Now()
		e.cluster.NodeOrFail(t, "stop", n)
		restarted := false
		t.Cleanup(func() {
			if !restarted { // never leave the shared cluster a node short
				e.cluster.NodeOrFail(t, "start", n)
			}
		})
		stopped := time.Now()
		for _, tag := range []string{"warm_a", "quiet_03", "東京"} {
			e.sim.Post(tag, 5)
		}
		hold(t.Context(), 2*lease)
		down := time.Now()
		gap, gapTag := e.polls.Records().LongestGap(e.tagNames, stopped, down)
		e.waitDelivered("with node n"+fmt.Sprint(n)+" down", time.Now(), 60*time.Second)
		e.cluster.NodeOrFail(t, "start", n)
		restarted = true
		back := time.Now()
		for _, tag := range []string{"warm_b", "quiet_05"} {
			e.sim.Post(tag, 5)
		}
		owner = e.waitExclusive("every tag owned after the node came back", back, 60*time.Second)
		e.waitDelivered("after the node came back", time.Now(), 60*time.Second)
		e.figures("node n%d (leader of the membership bucket) stopped %s (stop took %s): longest polling gap %s (tag %q) while it was down; "+
			"re-published events dropped by Nats-Msg-Id %v", n, at.Format("15:04:05"), stopped.Sub(at).Round(time.Millisecond),
			gap.Round(time.Millisecond), gapTag, e.metricSum("tagstream_publisher_duplicates_total")-dupBefore)
		e.requireNoRateLimit("the node restart")
		e.requireCursorsForward("the node restart")
	})

	step("an owner paused with SIGSTOP past its lease and resumed: fenced, nothing lost, no cursor backwards", func(t *testing.T) {
		victim := owner["hot"]
		m := e.members[victim]
		moved := tagsOf(owner, victim)
		dupBefore := e.metricSum("tagstream_publisher_duplicates_total")
		inFlight := e.burstOn("hot", 70, 10*time.Second) // pause it while the batch is being published
		at := m.pause()
		resumed := false
		t.Cleanup(func() {
			if !resumed {
				m.resume()
			}
		})
		times, missing := e.failover(moved, victim, at, failoverLimit+10*time.Second)
		if len(missing) > 0 {
			t.Fatalf("tags %v of the paused %s not polled by another member within %s", missing, victim, failoverLimit+10*time.Second)
		}
		worst, tag := maxOf(times)
		gap, gapTag := maxOf(e.polls.Records().GapsAcross(moved, victim, at))
		e.waitDelivered("the burst, with its first owner paused", time.Now(), 60*time.Second)
		if d := time.Since(at); d < lease+time.Second {
			hold(t.Context(), lease+time.Second-d) // past the lease in any case
		}
		at2 := m.resume()
		resumed = true
		e.exempt[victim] = at2
		pausedFor := at2.Sub(at)
		// It wakes up with its lease gone: it must poll nothing until it joined again, and then takes its tags
		// back by a graceful handoff (the check of overlapping requests at the end covers both).
		m.ts.waitReady(3*lease + 30*time.Second)
		owner = e.waitExclusive("every tag owned after the paused member came back", at2, 60*time.Second)
		e.waitDelivered("after the resume", time.Now(), 60*time.Second)
		dropped := e.metricSum("tagstream_publisher_duplicates_total") - dupBefore
		conflicts := strings.Count(readLog(m.ts), "checkpoint written by another instance")
		e.figures("SIGSTOP of %s for %s (burst in flight: %v): failover max %s (tag %q), longest polling gap %s (tag %q); "+
			"re-published events dropped by Nats-Msg-Id %v; commits of the paused member refused as written by another instance %d",
			victim, pausedFor.Round(time.Millisecond), inFlight, worst.Round(time.Millisecond), tag,
			gap.Round(time.Millisecond), gapTag, dropped, conflicts)
		if worst > failoverLimit {
			t.Errorf("tag %q was first polled %s after the pause, want at most %s (lease %s)", tag, worst, failoverLimit, lease)
		}
		e.requireNoRateLimit("the pause")
		e.requireCursorsForward("the pause")
	})

	step("a member stopped with SIGTERM mid-batch hands its tags over at once and publishes nothing twice", func(t *testing.T) {
		hold(t.Context(), 2*time.Second)
		victim := owner["hot"]
		m := e.members[victim]
		moved := tagsOf(owner, victim)
		others := func() float64 {
			sum := 0.0
			for _, o := range e.live() {
				if o.name != victim {
					if v, err := o.ts.metric("tagstream_publisher_duplicates_total"); err == nil {
						sum += v
					}
				}
			}
			return sum
		}
		dupBefore := others()
		inFlight := e.burstOn("hot", 70, 10*time.Second)
		at := time.Now()
		code, ended := m.ts.proc.signal(syscall.SIGTERM, 30*time.Second)
		exited := time.Now()
		if !ended || code != 0 {
			t.Fatalf("%s: exit status %d (ended %v) after SIGTERM, want 0", victim, code, ended)
		}
		times, missing := e.failover(moved, victim, at, 30*time.Second)
		if len(missing) > 0 {
			t.Fatalf("tags %v of %s not polled by another member within 30 s of its SIGTERM", missing, victim)
		}
		worst, tag := maxOf(times)
		gap, gapTag := maxOf(e.polls.Records().GapsAcross(moved, victim, at))
		owner = e.waitExclusive("the others owning every tag", at, 30*time.Second)
		e.waitDelivered("after the SIGTERM", time.Now(), 60*time.Second)
		hold(t.Context(), time.Second)
		dups := others() - dupBefore
		e.figures("SIGTERM of %s (%d tags, burst in flight: %v): exit %s after the signal, failover max %s after the signal "+
			"(%s after the exit; tag %q), longest polling gap %s (tag %q); duplicates the others published %v",
			victim, len(moved), inFlight, exited.Sub(at).Round(time.Millisecond), worst.Round(time.Millisecond),
			(at.Add(worst)).Sub(exited).Round(time.Millisecond), tag, gap.Round(time.Millisecond), gapTag, dups)
		if dups != 0 {
			t.Errorf("after a graceful handoff the new owners published %v events the stream already held, want 0", dups)
		}
		if worst > exited.Sub(at)+3*time.Second {
			t.Errorf("tag %q was first polled %s after the SIGTERM, %s after the exit, want at once", tag, worst, at.Add(worst).Sub(exited))
		}
		e.requireNoRateLimit("the SIGTERM")
		e.requireCursorsForward("the SIGTERM")
	})

	// The end: the workload stops, the others catch up and stop with SIGTERM, and everything is checked.
	for _, tag := range e.tagNames {
		e.sim.SetRate(tag, 0)
	}
	e.waitDelivered("the end", time.Now(), 120*time.Second)
	for _, m := range e.live() {
		m.ts.checkEndpointsForTokens()
		m.ts.stop()
	}
	got := readStream(t, e.cluster.URLs, e.stream, e.prefix, true)
	rep := check(t, e.sim, got, checkOptions{Sink: sinkJetStream, SubjectPrefix: e.prefix, Since: start})
	e.events.mu.Lock()
	repeats := len(e.events.repeats)
	watchErrs := e.events.errs
	e.events.mu.Unlock()
	if repeats > 0 {
		t.Errorf("the stream stored %d events twice", repeats)
	}
	writes, problems := e.cursors.check(e.tagNames)
	if writes == 0 {
		t.Errorf("the cursor bucket's watch saw no write")
	}
	changes, overlaps := e.polls.Records().Handoffs(e.exempt)
	for _, p := range append(problems, overlaps...) {
		t.Error(p)
	}
	limited, requests := e.rateLimited()
	if limited > 0 {
		t.Errorf("the simulator refused %d of %d requests of tagstream's tokens over the limit", limited, requests)
	}
	var moves []string
	for tag, n := range changes {
		moves = append(moves, fmt.Sprintf("%s:%d", tag, n))
	}
	sort.Strings(moves)
	e.figures("%s; %d cursor writes checked, none backwards; %d requests of the shared tokens, %d refused; owner changes per tag %v; stream watch restarts %d",
		rep, writes, requests, limited, moves, watchErrs)
}

// readLog returns a process log's text (empty when it cannot be read).
func readLog(ts *tagstream) string {
	return ts.logTail(1 << 30)
}
