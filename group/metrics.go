package group

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the coordinator's Prometheus collectors. No label carries a tag; token shares are labelled by the
// token's fingerprint (bounded by the size of the token pool).
type metrics struct {
	members    prometheus.Gauge
	owned      prometheus.Gauge
	unowned    prometheus.Gauge
	rebalances prometheus.Counter
	leaseValid prometheus.Gauge
	share      *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		members: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tagstream_group_members", Help: "Live members of the group, as this instance sees them.",
		}),
		owned: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tagstream_group_owned_tags", Help: "Tags this instance owns and polls.",
		}),
		unowned: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tagstream_group_unowned_tags",
			Help: "Tags of the group's set with no live owner, as this instance sees them (moving, or waiting for a lease to expire).",
		}),
		rebalances: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tagstream_group_rebalances_total", Help: "Changes of this instance's assignment (tags or token shares) applied to the poller.",
		}),
		leaseValid: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tagstream_group_lease_valid", Help: "1 while this instance holds its membership lease; 0 while it polls nothing.",
		}),
		share: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tagstream_group_token_share", Help: "Fraction of each token's budget this instance may spend, by token fingerprint.",
		}, []string{"token"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.members, m.owned, m.unowned, m.rebalances, m.leaseValid, m.share} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("group: metrics already registered (one coordinator per registry): %w", err)
			}
			return nil, fmt.Errorf("group: register metrics: %w", err)
		}
	}
	return m, nil
}
