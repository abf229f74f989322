package publisher

import (
	"github.com/prometheus/client_golang/prometheus"
	"testing"
)

func TestMetricsAreSharedByPublishersOfOneRegistry(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	a := NewMetrics(reg).forPublisher("x")
	b := NewMetrics(reg).forPublisher("x")
	a.published.Inc()
	b.published.Inc()
	if got := counter(t, reg, "tagstream_publisher_published_total", nil); got != 2 {
		t.Fatal(got)
	}
}
