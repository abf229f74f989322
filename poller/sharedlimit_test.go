package poller

import (
	"context"
	"fmt"
	"testing"

	"github.com/tagstream/tagstream/internal/testkit"
	"github.com/tagstream/tagstream/testenv"
)

// TestSharesOfATokenWhoseAPILimitIsLowerThanConfiguredAreNotOverspent runs two pollers that share one token half
// and half (two group members) with a configured budget ten times the limit the API answers: each paces its
// fraction of X-Ratelimit-Limit, so together they spend the token's real limit and never get a rate-limit answer.
func TestSharesOfATokenWhoseAPILimitIsLowerThanConfiguredAreNotOverspent(t *testing.T) {
	t.Parallel()
	const limit = 60 // per simulated hour: one real second (TimeScale 3600)
	tags := []string{"a", "b", "c", "d"}
	srv := startSim(t, testenv.Config{PlainHTTP: true, Tokens: []string{"tok-a"}, RequestsPerHour: limit,
		Tags: []testenv.TagConfig{{Name: "a"}, {Name: "b"}, {Name: "c"}, {Name: "d"}}})
	for i, half := range [][]string{tags[:2], tags[2:]} {
		cfg := testConfig(srv, []string{"tok-a"}, nil)
		cfg.RequestsPerHour = 10 * limit
		r := startPoller(t, cfg, nil)
		ctx, cancel := context.WithTimeout(context.Background(), assignWait)
		err := r.p.Assign(ctx, Assignment{Tags: half, Shares: map[string]float64{Fingerprint("tok-a"): 0.5}})
		cancel()
		if err != nil {
			t.Fatalf("Assign of member %d: %v", i, err)
		}
	}
	// Every tag wants a poll every 20 ms, far more than the token allows: the pollers spend all they may.
	testkit.Eventually(t, 60e9, fmt.Sprintf("%d requests (five windows at the limit)", 5*limit), func() bool {
		return srv.Stats().Requests >= 5*limit
	})
	st := srv.Stats()
	if n := st.ByOutcome["rate_limited"]; n > 0 {
		t.Errorf("%d of %d requests were over the API's limit, want none", n, st.Requests)
	}
}
