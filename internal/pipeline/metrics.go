package pipeline

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// brokerUpTimeout bounds the readiness check that one scrape of tagstream_broker_up makes.
const brokerUpTimeout = 2 * time.Second

// registerMetrics registers the pipeline's own metrics on reg: tagstream_broker_up, which is 1 while the broker
// check of /readyz passes (the sink's broker answers and its stream or topic is there; for the file and stdout
// sinks, the output is writable) and 0 otherwise, before the broker was first reached too. It is evaluated at each
// scrape, with the same check /readyz runs.
func (p *Pipeline) registerMetrics(reg prometheus.Registerer) error {
	up := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tagstream_broker_up",
		Help: "1 while the sink's broker answers (the broker check of /readyz passes), else 0.",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), brokerUpTimeout)
		defer cancel()
		if p.brokerReady(ctx) != nil {
			return 0
		}
		return 1
	})
	return reg.Register(up)
}
