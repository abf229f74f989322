package group

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tagstream/tagstream/internal/testkit"
)

func TestGroupSurvivesAClusterNodeRestart(t *testing.T) {
	t.Parallel()
	needElections(t)
	cl := startCluster(t)
	urls := cl.URLs()
	o := newOracle()
	tags := makeTags(12)
	group := uniq("restart")
	var ms []*member
	for i := range 3 {
		cfg := baseConfig(group, fmt.Sprintf("m%d", i+1))
		cfg.Tags = tags
		ms = append(ms, startMember(t, urls, cfg, o))
	}
	waitCovered(t, "three members owning every tag", ms, tags, ms...)
	_, js := connect(t, urls)
	// Twice the node that leads the members bucket's stream (the heartbeats' path), so that a new leader must be
	// elected while leases run.
	for round := range 2 {
		node := cl.leaderOf(js, "KV_"+MembersBucket(group))
		t.Run(fmt.Sprintf("round %d: node n%d stopped and started again", round+1, node+1), func(t *testing.T) {
			cl.Stop(node)
			tag := fmt.Sprintf("while_down_%d", round+1)
			addTagsEventually(t, js, group, tag)
			tags = append(tags, tag)
			waitCovered(t, "every tag owned with a node down", ms, tags, ms...)
			cl.Start(node)
			cl.WaitHealthy()
			cl.WaitCurrent(js)
			tag = fmt.Sprintf("back_%d", round+1)
			addTagsEventually(t, js, group, tag)
			tags = append(tags, tag)
			waitCovered(t, "every tag owned after the node came back", ms, tags, ms...)
		})
	}
	waitShares(t, ms)
	o.check(t)
}

func TestTokenSharesFollowDemand(t *testing.T) {
	t.Parallel()
	urls := sharedURLs(t)
	o := newOracle()
	tags := makeTags(16)
	group := uniq("demand")
	var ms []*member
	for i := range 2 {
		cfg := baseConfig(group, fmt.Sprintf("m%d", i+1))
		cfg.Tags = tags
		ms = append(ms, startMember(t, urls, cfg, o))
	}
	owners := waitCovered(t, "two members owning every tag", ms, tags, ms...)
	// m1's tags are busy (1 media/s), m2's quiet (0.01 media/s): the square-root rule gives m1 most of the budget.
	rate := map[string]float64{"m1": 1, "m2": 0.01}
	rates := make([]float64, len(tags))
	for i, tag := range tags {
		rates[i] = rate[owners[tag]]
	}
	for _, m := range ms {
		rs := make(map[string]float64)
		for _, tag := range m.p.tags() {
			rs[tag] = rate[m.name]
		}
		m.c.ReportRates(rs)
	}
	cfg, _ := baseConfig(group, "x").resolve()
	var budget float64
	for _, tok := range cfg.Tokens {
		budget += float64(tok.RequestsPerHour) / cfg.RateWindow.Seconds()
	}
	f := pollRates(rates, budget*cfg.BudgetFactor, demandParams{minIv: cfg.MinInterval.Seconds(), maxIv: cfg.MaxInterval.Seconds(), pageSize: float64(cfg.PageSize)})
	demand := make(map[string]float64)
	for i, tag := range tags {
		demand[owners[tag]] += f[i]
	}
	want := demand["m1"] / (demand["m1"] + demand["m2"])
	if want < 0.6 {
		t.Fatalf("test setup: m1's expected share %.3f is not clearly above m2's", want)
	}
	testkit.Eventually(t, waitLong, fmt.Sprintf("m1 holding about %.3f of each token", want), func() bool {
		for _, tok := range testTokens {
			if math.Abs(ms[0].p.share(tok.Fingerprint)-want) > shareSlack || math.Abs(ms[1].p.share(tok.Fingerprint)-(1-want)) > shareSlack {
				return false
			}
		}
		return true
	})
	st := ms[1].c.Status()
	i := slices.IndexFunc(st.Members, func(m MemberStatus) bool { return m.Name == "m1" })
	if i < 0 || math.Abs(st.Members[i].Demand-demand["m1"]) > 1e-6 {
		t.Errorf("m2's status shows m1's demand as %+v, want %.4f", st.Members, demand["m1"])
	}

	t.Run("a member that takes tags over gets their stored rate estimates", func(t *testing.T) {
		m3 := startMember(t, urls, baseConfig(group, "m3"), o)
		var polled []string
		seeds := make(map[string]float64)
		testkit.Eventually(t, waitLong, "m3 polling tags, each seeded with its stored estimate", func() bool {
			m3.p.mu.Lock()
			defer m3.p.mu.Unlock()
			polled = slices.Clone(m3.p.a.Tags)
			for _, tag := range polled {
				if _, ok := m3.p.seeds[tag]; !ok {
					return false
				}
				seeds[tag] = m3.p.seeds[tag]
			}
			return len(polled) > 0
		})
		for _, tag := range polled {
			if want := rate[owners[tag]]; seeds[tag] != want {
				t.Errorf("%s seeded at %g media/s, want the estimate its previous owner stored, %g", tag, seeds[tag], want)
			}
		}
	})
	o.check(t)
}

// addTagsEventually adds tags, trying again while the cluster answers nothing (a request written to a connection
// whose server just stopped is lost; NATS requests are at most once).
func addTagsEventually(t *testing.T, js jetstream.JetStream, group string, tags ...string) {
	t.Helper()
	var err error
	testkit.Eventually(t, waitLong, "adding "+strings.Join(tags, ", "), func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		err = AddTags(ctx, js, group, tags...)
		if err != nil {
			t.Logf("AddTags: %v (trying again)", err)
		}
		return err == nil
	})
}

func TestQuorumLossStopsEveryMemberUntilItReturns(t *testing.T) {
	t.Parallel()
	needElections(t)
	cl := startCluster(t)
	urls := cl.URLs()
	o := newOracle()
	tags := makeTags(9)
	group := uniq("quorum")
	var ms []*member
	for i := range 3 {
		cfg := baseConfig(group, fmt.Sprintf("m%d", i+1))
		cfg.Tags = tags
		ms = append(ms, startMember(t, urls, cfg, o))
	}
	waitCovered(t, "three members owning every tag", ms, tags, ms...)
	_, js := connect(t, urls)

	// Two nodes of three down: no bucket can be written, so no lease can be renewed.
	cl.Stop(1)
	cl.Stop(2)
	testkit.Eventually(t, waitLong, "every member polling nothing, its lease lapsed", func() bool {
		for _, m := range ms {
			if m.c.LeaseValid() || len(m.p.tags()) != 0 {
				return false
			}
			for _, tok := range testTokens {
				if m.p.share(tok.Fingerprint) != 0 {
					return false
				}
			}
		}
		return true
	})
	cl.Start(1)
	cl.Start(2)
	cl.WaitHealthy()
	cl.WaitCurrent(js)
	waitCovered(t, "every tag owned again once the quorum is back", ms, tags, ms...)
	waitShares(t, ms)
	o.check(t)
}
