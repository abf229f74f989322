package group

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/tagstream/tagstream/internal/testkit"
)

// pooledDemand returns the sum of the members' demands (polls per second) as m sees them.
func pooledDemand(m *member) float64 {
	var sum float64
	for _, ms := range m.c.Status().Members {
		sum += ms.Demand
	}
	return sum
}

// TestTheGroupDividesTheLimitTheAPIReports checks ReportLimits: once a member reports the X-Ratelimit-Limit the API
// answers for the group's tokens, every member plans the pooled budget with it instead of the configured one.
func TestTheGroupDividesTheLimitTheAPIReports(t *testing.T) {
	t.Parallel()
	urls := sharedURLs(t)
	_, js := connect(t, urls)
	name := uniq("limits")
	// Ten tags want 5 polls a second at most (MinInterval 2 s): more than the budget, which is then all planned.
	tags := makeTags(10)
	if err := AddTags(context.Background(), js, name, tags...); err != nil {
		t.Fatal(err)
	}
	m1 := startMember(t, urls, baseConfig(name, "m1"), nil)
	m2 := startMember(t, urls, baseConfig(name, "m2"), nil)
	waitCovered(t, "two members", []*member{m1, m2}, tags)

	budget := func(rph ...int) float64 { // the planned budget, polls per second, of tokens with those limits
		var sum float64
		for _, r := range rph {
			sum += float64(r) / time.Hour.Seconds()
		}
		return sum * DefaultBudgetFactor
	}
	near := func(got, want float64) bool { return math.Abs(got-want) <= 1e-6*want }
	wait := func(what string, want float64) {
		t.Helper()
		for _, m := range []*member{m1, m2} {
			testkit.Eventually(t, waitLong, fmt.Sprintf("%s: %s to plan %.4f polls/s", what, m.name, want), func() bool {
				return near(pooledDemand(m), want)
			})
		}
	}
	wait("the configured limits", budget(DefaultRequestsPerHour, DefaultRequestsPerHour))

	m1.c.ReportLimits(map[string]int{testTokens[0].Fingerprint: 1000, "not-a-token-of-ours": 7})
	wait("the first token's limit reported by one member", budget(1000, DefaultRequestsPerHour))

	m2.c.ReportLimits(map[string]int{testTokens[0].Fingerprint: 1000, testTokens[1].Fingerprint: 2000})
	wait("both tokens' limits reported", budget(1000, 2000))

	m1.c.ReportLimits(map[string]int{testTokens[0].Fingerprint: 0})
	m1.c.ReportLimits(nil)
	wait("a report without a limit changes nothing", budget(1000, 2000))
}
