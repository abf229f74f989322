package pipeline

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/tagstream/tagstream/internal/config"
	"github.com/tagstream/tagstream/internal/consume"
	"github.com/tagstream/tagstream/publisher"
)

// ConsumerOptions narrow what NewConsumer reads. The zero value reads every tag's new events.
type ConsumerOptions struct {
	// Tags keeps only these tags' events.
	Tags []string
	// Start says where to begin (consume.StartNew or consume.StartFirst).
	Start consume.Start
	// Logger receives the NATS connection's log; nil discards it.
	Logger *slog.Logger
}

// NewConsumer opens a consumer of the events the configured sink holds (jetstream, nats or kafka), connecting
// with the same settings run uses. It owns its connection: Close releases it. It fails with consume.ErrNoStream
// or consume.ErrNoTopic when there is nothing to read yet, and with a *config.Error for the file and stdout sinks.
func NewConsumer(ctx context.Context, cfg *config.Config, o ConsumerOptions) (*consume.Consumer, error) {
	red := cfg.Redactor()
	cc := consume.Config{SubjectPrefix: cfg.SubjectPrefix, Stream: cfg.Stream, Tags: o.Tags, Start: o.Start}
	switch cfg.Sink {
	case config.SinkJetStream, config.SinkNATS:
		cc.Kind = consume.JetStream
		if cfg.Sink == config.SinkNATS {
			cc.Kind = consume.NATS
		}
		logger := o.Logger
		if logger == nil {
			logger = slog.New(slog.DiscardHandler)
		}
		nc, err := publisher.Connect(ctx, NATSConnConfig(cfg), logger)
		if err != nil {
			return nil, red.Error(err)
		}
		cc.Conn, cc.OwnConn = nc, true
	case config.SinkKafka:
		kc := kafkaConfig(cfg)
		d, err := publisher.KafkaDialer(kc)
		if err != nil {
			return nil, red.Error(err)
		}
		cc.Kind, cc.Brokers, cc.Topic, cc.Dialer, cc.KeyIsTag = consume.Kafka, kc.Brokers, kc.Topic, d, cfg.KafkaKey == "tag"
	default:
		return nil, &config.Error{Key: "sink", Problem: fmt.Sprintf("%s holds no events to consume; read jetstream, nats or kafka", cfg.Sink)}
	}
	c, err := consume.New(ctx, cc) // on error it closes the connection it was given to own
	if err != nil {
		return nil, red.Error(err)
	}
	return c, nil
}
