package pipeline

import (
	"context"
	"fmt"
	"io"
	"log/slog"

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

// openLocalSink builds the file or stdout publisher; they need no broker.
func openLocalSink(cfg *config.Config, stdout io.Writer, logger *slog.Logger, reg prometheus.Registerer) (*sink, error) {
	s := &sink{kind: cfg.Sink}
	switch cfg.Sink {
	case config.SinkFile:
		p, err := publisher.OpenFile(cfg.Output, publisher.FileConfig{}, logger, reg)
		if err != nil {
			return nil, err
		}
		s.pub, s.name, s.ready = p, "file "+cfg.Output, p.Ready
	case config.SinkStdout:
		p := publisher.NewFile(stdout, publisher.FileConfig{}, logger, reg)
		s.pub, s.name, s.ready = p, "stdout", p.Ready
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
		s.pub, s.name, s.ready = p, "core nats "+cfg.SubjectPrefix+".>", p.Ready
	case config.SinkJetStream:
		jconf := jetStreamConfig(cfg)
		jconf.DeadLetter = dead
		p, err := publisher.NewJetStream(ctx, nc, jconf, logger, reg)
		if err != nil {
			return nil, err
		}
		s.pub, s.name, s.ready = p, "jetstream stream "+p.Stream(), p.Ready
	case config.SinkKafka:
		kc := kafkaConfig(cfg)
		kc.DeadLetter = dead
		p, err := publisher.NewKafka(ctx, kc, logger, reg)
		if err != nil {
			return nil, err
		}
		s.pub, s.name, s.ready = p, "kafka topic "+cfg.KafkaTopic, p.Ready
	default:
		return nil, fmt.Errorf("pipeline: sink %s is not a broker", cfg.Sink)
	}
	return s, nil
}
