package publisher

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics holds the publisher's Prometheus collectors, all prefixed tagstream_publisher_. Every collector carries
// a "publisher" label (kafka, jetstream, nats, file) so that several publishers can share one registry.
type Metrics struct {
	Published   *prometheus.CounterVec   // events acknowledged by the broker (dead-lettered events are not)
	Acks        *prometheus.CounterVec   // acknowledgements received (JetStream PubAcks, Kafka produce acks per event)
	Duplicates  *prometheus.CounterVec   // acknowledgements the server flagged as duplicates (JetStream)
	Retries     *prometheus.CounterVec   // publish attempts retried after a transient failure
	DeadLetters *prometheus.CounterVec   // events sent to the dead-letter destination, by destination kind
	Seconds     *prometheus.HistogramVec // duration of a successful Publish call
	InFlight    *prometheus.GaugeVec     // events handed to the client and not acknowledged yet
}

// metricSet is the per-publisher view of Metrics (labels resolved once).
type metricSet struct {
	published   prometheus.Counter
	acks        prometheus.Counter
	duplicates  prometheus.Counter
	retries     prometheus.Counter
	deadLetters *prometheus.CounterVec
	seconds     prometheus.Observer
	inFlight    prometheus.Gauge
	kind        string
}

// NewMetrics builds the collectors and registers them with reg. A nil reg builds unregistered collectors. When
// reg already holds the collectors (several publishers in one process), the registered ones are reused.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Published: counterVec("published_total",
			"Events durably acknowledged by the broker; dead-lettered events are counted in dead_letters_total instead."),
		Acks: counterVec("acks_total",
			"Broker acknowledgements received, one per event, duplicates included."),
		Duplicates: counterVec("duplicates_total",
			"Acknowledgements the broker flagged as duplicates of an already stored event."),
		Retries: counterVec("retries_total",
			"Publish attempts retried after a transient broker failure."),
		DeadLetters: counterVec("dead_letters_total",
			"Events the broker will never accept, handed to the dead-letter destination.", "destination"),
		Seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "tagstream", Subsystem: "publisher", Name: "publish_seconds",
			Help:    "Duration of successful Publish calls, retries included.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 14),
		}, []string{"publisher"}),
		InFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "tagstream", Subsystem: "publisher", Name: "in_flight",
			Help: "Events handed to the broker client and not acknowledged yet.",
		}, []string{"publisher"}),
	}
	if reg != nil {
		m.Published = register(reg, m.Published)
		m.Acks = register(reg, m.Acks)
		m.Duplicates = register(reg, m.Duplicates)
		m.Retries = register(reg, m.Retries)
		m.DeadLetters = register(reg, m.DeadLetters)
		m.Seconds = register(reg, m.Seconds)
		m.InFlight = register(reg, m.InFlight)
	}
	return m
}

// counterVec builds the counter tagstream_publisher_<name>, labelled by publisher kind and then by labels.
func counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "tagstream", Subsystem: "publisher", Name: name, Help: help},
		append([]string{"publisher"}, labels...))
}

// register registers c, or returns the collector already registered under the same description.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}

// forPublisher resolves the label values of one publisher kind.
func (m *Metrics) forPublisher(kind string) *metricSet {
	return &metricSet{
		published:   m.Published.WithLabelValues(kind),
		acks:        m.Acks.WithLabelValues(kind),
		duplicates:  m.Duplicates.WithLabelValues(kind),
		retries:     m.Retries.WithLabelValues(kind),
		deadLetters: m.DeadLetters.MustCurryWith(prometheus.Labels{"publisher": kind}),
		seconds:     m.Seconds.WithLabelValues(kind),
		inFlight:    m.InFlight.WithLabelValues(kind),
		kind:        kind,
	}
}
