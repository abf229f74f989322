package pipeline

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tagstream/tagstream/internal/config"
	"github.com/tagstream/tagstream/publisher"
)

// sink is where the events go: the publisher, how logs and /status call it, and how readiness asks whether its
// broker can be reached.
type sink struct {
	kind  config.SinkKind
	pub   publisher.Publisher
	name  string
	ready func(ctx context.Context) error
}

// readier is implemented by the publishers that can tell whether their broker answers right now.
type readier interface {
	Ready(ctx context.Context) error
}

// openLocalSink builds the file or stdout publisher; they need no broker.
func openLocalSink(cfg *config.Config, stdout io.Writer, logger *slog.Logger, reg prometheus.Registerer) (*sink, error) {
	s := &sink{kind: cfg.Sink, ready: func(context.Context) error { return nil }}
	switch cfg.Sink {
	case config.SinkFile:
		p, err := publisher.OpenFile(cfg.Output, publisher.FileConfig{}, logger, reg)
		if err != nil {
			return nil, err
		}
		s.pub, s.name = p, "file "+cfg.Output
	case config.SinkStdout:
		s.pub, s.name = publisher.NewFile(stdout, publisher.FileConfig{}, logger, reg), "stdout"
	default:
		return nil, fmt.Errorf("pipeline: sink %s is not local", cfg.Sink)
	}
	return s, nil
}

// openBrokerSink builds the publisher of a broker sink on an open connection (nc, for the NATS sinks) or by
// connecting (Kafka). dead is the dead-letter destination when the dead-letter setting is empty (nil: the
// publisher's own default).
func openBrokerSink(ctx context.Context, cfg *config.Config, nc *nats.Conn, dead publisher.DeadLetter, logger *slog.Logger, reg prometheus.Registerer) (*sink, error) {
	s := &sink{kind: cfg.Sink}
	switch cfg.Sink {
	case config.SinkNATS:
		nconf := natsConfig(cfg)
		nconf.DeadLetter = dead
		p, err := publisher.NewNATS(nc, nconf, logger, reg)
		if err != nil {
			return nil, err
		}
		s.pub, s.name = p, "core nats "+cfg.SubjectPrefix+".>"
		s.ready = natsReady(p, nc)
	case config.SinkJetStream:
		jconf := jetStreamConfig(cfg)
		jconf.DeadLetter = dead
		p, err := publisher.NewJetStream(ctx, nc, jconf, logger, reg)
		if err != nil {
			return nil, err
		}
		s.pub, s.name = p, "jetstream stream "+p.Stream()
		s.ready = natsReady(p, nc)
	case config.SinkKafka:
		kc := kafkaConfig(cfg)
		kc.DeadLetter = dead
		p, err := publisher.NewKafka(ctx, kc, logger, reg)
		if err != nil {
			return nil, err
		}
		s.pub, s.name = p, "kafka topic "+cfg.KafkaTopic
		if r, ok := any(p).(readier); ok {
			s.ready = r.Ready
		} else {
			// Until (*publisher.Kafka).Ready exists: a metadata round trip with a dialer built once.
			d, err := kafkaDialer(kc)
			if err != nil {
				p.Close()
				return nil, err
			}
			s.ready = func(ctx context.Context) error {
				_, err := probeKafkaWith(ctx, d, kc.Brokers, kc.Topic)
				return err
			}
		}
	default:
		return nil, fmt.Errorf("pipeline: sink %s is not a broker", cfg.Sink)
	}
	return s, nil
}

// natsReady returns the publisher's own readiness check, or, until the publishers have one, the state of the
// connection.
func natsReady(p publisher.Publisher, nc *nats.Conn) func(context.Context) error {
	if r, ok := p.(readier); ok {
		return r.Ready
	}
	return func(context.Context) error {
		if !nc.IsConnected() {
			return fmt.Errorf("nats %s", strings.ToLower(nc.Status().String()))
		}
		return nil
	}
}
