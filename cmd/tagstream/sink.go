package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tagstream/tagstream/internal/config"
	"github.com/tagstream/tagstream/publisher"
)

// sink is the configured publisher plus what readiness needs to know about the broker.
type sink struct {
	pub   publisher.Publisher
	nc    *nats.Conn // set for the NATS sinks (and shared with the KV store)
	ready func(ctx context.Context) error
	name  string // for logs and /status: "jetstream stream TAGSTREAM", "kafka topic x"...
	close []func() error
}

// Close flushes the publisher and releases the connection.
func (s *sink) Close() error {
	var errs []error
	if s.pub != nil {
		errs = append(errs, s.pub.Close())
	}
	for i := len(s.close) - 1; i >= 0; i-- {
		errs = append(errs, s.close[i]())
	}
	return errors.Join(errs...)
}

// openSink connects to the configured broker and builds the publisher. nc may be a NATS connection opened
// earlier (nil: one is opened for the NATS sinks). stdout is the writer of sink=stdout.
func openSink(ctx context.Context, cfg *config.Config, nc *nats.Conn, stdout io.Writer, logger *slog.Logger, reg prometheus.Registerer) (*sink, error) {
	s := &sink{ready: func(context.Context) error { return nil }}
	dead, err := defaultDeadLetter(cfg, s, logger)
	if err != nil {
		return nil, err
	}
	switch cfg.Sink {
	case config.SinkJetStream, config.SinkNATS:
		if nc == nil {
			var err error
			nc, err = publisher.Connect(ctx, natsConnConfig(cfg), logger)
			if err != nil {
				s.Close()
				return nil, err
			}
			s.close = append(s.close, func() error { nc.Close(); return nil })
		}
		s.nc = nc
		s.ready = func(context.Context) error {
			if !nc.IsConnected() {
				return fmt.Errorf("nats %s", strings.ToLower(nc.Status().String()))
			}
			return nil
		}
		if cfg.Sink == config.SinkNATS {
			p, err := publisher.NewNATS(nc, publisher.NATSConfig{SubjectPrefix: cfg.SubjectPrefix, DeadLetterSubject: cfg.DeadLetter, DeadLetter: dead}, logger, reg)
			if err != nil {
				s.Close()
				return nil, err
			}
			s.pub, s.name = p, "core nats "+cfg.SubjectPrefix+".>"
			return s, nil
		}
		storage := jetstream.FileStorage
		if cfg.StreamStorage == "memory" {
			storage = jetstream.MemoryStorage
		}
		p, err := publisher.NewJetStream(ctx, nc, publisher.JetStreamConfig{
			SubjectPrefix:     cfg.SubjectPrefix,
			Stream:            cfg.Stream,
			CreateStream:      cfg.CreateStream,
			Storage:           storage,
			Replicas:          cfg.Replicas,
			DuplicateWindow:   cfg.DuplicateWindow,
			DeadLetterSubject: cfg.DeadLetter,
			DeadLetter:        dead,
		}, logger, reg)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.pub, s.name = p, "jetstream stream "+p.Stream()
		return s, nil
	case config.SinkKafka:
		kc := publisher.KafkaConfig{
			Brokers:           cfg.KafkaBrokers,
			Topic:             cfg.KafkaTopic,
			Compression:       cfg.KafkaCompression,
			CreateTopic:       cfg.KafkaCreateTopic,
			Partitions:        cfg.KafkaPartitions,
			ReplicationFactor: cfg.KafkaReplicationFactor,
			DialTimeout:       cfg.ConnectTimeout,
			TLS:               kafkaTLSConfig(cfg),
			SASL:              publisher.SASLConfig{Mechanism: strings.ToUpper(cfg.KafkaSASLMechanism), Username: cfg.KafkaSASLUser, Password: cfg.KafkaSASLPassword},
			DeadLetterTopic:   cfg.DeadLetter,
			DeadLetter:        dead,
		}
		if cfg.KafkaKey == "id" {
			kc.Key = publisher.KeyMediaID
		}
		if cfg.KafkaContentMode == "structured" {
			kc.ContentMode = publisher.ContentStructured
		}
		p, err := publisher.NewKafka(ctx, kc, logger, reg)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.pub, s.name = p, "kafka topic "+cfg.KafkaTopic
		s.ready = func(ctx context.Context) error {
			_, _, _, err := kafkaTopicInfo(ctx, cfg, cfg.KafkaTopic)
			return err
		}
		return s, nil
	case config.SinkFile:
		p, err := publisher.OpenFile(cfg.Output, publisher.FileConfig{}, logger, reg)
		if err != nil {
			return nil, err
		}
		s.pub, s.name = p, "file "+cfg.Output
		return s, nil
	default:
		s.pub, s.name = publisher.NewFile(stdout, publisher.FileConfig{}, logger, reg), "stdout"
		return s, nil
	}
}

// DeadLetterFile is the file, inside the state directory, that receives the events a broker refuses for good
// (too large, rejected) when no dead-letter topic or subject is configured. Dropping them would lose data
// silently; blocking would stop their tag forever.
const DeadLetterFile = "dead-letters.ndjson"

// defaultDeadLetter returns the dead-letter file destination for the broker sinks when the dead-letter key is
// empty and a state directory is configured, or nil (the publisher then uses the configured topic or subject, or,
// with neither, logs and drops, which the start-up log says).
func defaultDeadLetter(cfg *config.Config, s *sink, logger *slog.Logger) (publisher.DeadLetter, error) {
	switch cfg.Sink {
	case config.SinkJetStream, config.SinkNATS, config.SinkKafka:
	default:
		return nil, nil
	}
	if cfg.DeadLetter != "" {
		return nil, nil
	}
	if strings.TrimSpace(cfg.StateDir) == "" {
		logger.Warn("no dead-letter destination: events the broker refuses will be logged and dropped; set dead-letter or state-dir")
		return nil, nil
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("state-dir: %w", err)
	}
	path := filepath.Join(cfg.StateDir, DeadLetterFile)
	d, err := publisher.OpenDeadLetterFile(path)
	if err != nil {
		return nil, err
	}
	s.close = append(s.close, d.Close)
	logger.Info("dead letters go to a file", "path", path)
	return d, nil
}
