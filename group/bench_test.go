package group

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkFailover measures, on the in-process three-node cluster with the default lease (8s, heartbeat 2s) and
// 60 tags over three members, how long until every tag has a live owner again after a member joins, leaves
// gracefully, or stops heartbeating (as after kill -9). Run it with:
//
//	go test -run '^$' -bench Failover -benchtime 1x ./group/
//
// Reported: join_s (a fourth member polling its share), leave_s (a member's Run returned, to every tag owned by
// the others) and kill_s (the last heartbeat to every tag owned by the others). Waits poll every 5 ms, so figures
// are that much coarser.
func BenchmarkFailover(b *testing.B) {
	urls := sharedURLs(b)
	tags := makeTags(60)
	for i := range b.N {
		group := fmt.Sprintf("failover%d", i)
		var ms []*member
		for j := range 3 {
			cfg := Config{Group: group, Name: fmt.Sprintf("m%d", j+1), Tokens: testTokens, Tags: tags}
			ms = append(ms, startMember(b, urls, cfg, nil))
		}
		waitCovered(b, "every tag owned", ms, tags)

		start := time.Now()
		ms = append(ms, startMember(b, urls, Config{Group: group, Name: "m4", Tokens: testTokens}, nil))
		waitCovered(b, "four members owning every tag", ms, tags, ms[3])
		b.ReportMetric(time.Since(start).Seconds(), "join_s")

		start = time.Now()
		ms[0].leave(b)
		ms = ms[1:]
		waitCovered(b, "every tag owned", ms, tags)
		b.ReportMetric(time.Since(start).Seconds(), "leave_s")

		victim := ms[0]
		last := victim.c.leaseUntil().Add(-(victim.c.cfg.Lease - victim.c.cfg.Lease/4)) // the last renewal's send time
		victim.c.stalled.Store(true)
		ms = ms[1:]
		waitCovered(b, "every tag owned", ms, tags)
		b.ReportMetric(time.Since(last).Seconds(), "kill_s")
		for _, m := range append(ms, victim) {
			m.leave(b)
		}
	}
}
