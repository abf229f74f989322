package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/tagstream/tagstream/internal/config"
	"github.com/tagstream/tagstream/publisher"
)

// kafkaTLSConfig maps the settings onto the publisher's TLS options for Kafka. ca-file is used for Kafka only when
// kafka-tls is on or a client certificate is set, so that a CA given for the API does not force TLS on a plain
// broker.
func kafkaTLSConfig(cfg *config.Config) publisher.TLSConfig {
	t := publisher.TLSConfig{Enable: cfg.KafkaTLS, CertFile: cfg.KafkaCertFile, KeyFile: cfg.KafkaKeyFile}
	if t.Enable || t.CertFile != "" {
		t.CAFile = cfg.CAFile
	}
	return t
}

// kafkaTLS returns the TLS config for Kafka, or nil when kafka-tls is off and no client certificate is set.
func kafkaTLS(cfg *config.Config) (*tls.Config, error) {
	return kafkaTLSConfig(cfg).Build()
}

// kafkaSASL returns the SASL mechanism, or nil when none is configured.
func kafkaSASL(cfg *config.Config) (sasl.Mechanism, error) {
	switch cfg.KafkaSASLMechanism {
	case "":
		return nil, nil
	case "plain":
		return plain.Mechanism{Username: cfg.KafkaSASLUser, Password: cfg.KafkaSASLPassword}, nil
	case "scram-sha-256":
		return scram.Mechanism(scram.SHA256, cfg.KafkaSASLUser, cfg.KafkaSASLPassword)
	case "scram-sha-512":
		return scram.Mechanism(scram.SHA512, cfg.KafkaSASLUser, cfg.KafkaSASLPassword)
	}
	return nil, fmt.Errorf("tagstream: unknown kafka-sasl-mechanism %q", cfg.KafkaSASLMechanism)
}

// kafkaDialer returns a kafka-go Dialer with the configured TLS and SASL.
func kafkaDialer(cfg *config.Config) (*kafka.Dialer, error) {
	t, err := kafkaTLS(cfg)
	if err != nil {
		return nil, err
	}
	m, err := kafkaSASL(cfg)
	if err != nil {
		return nil, err
	}
	return &kafka.Dialer{
		ClientID:      "tagstream",
		Timeout:       durationOr(cfg.ConnectTimeout, 5*time.Second),
		DualStack:     true,
		TLS:           t,
		SASLMechanism: m,
	}, nil
}

// kafkaTopicInfo asks the first reachable broker for the brokers of the cluster and the partitions of topic.
// missing reports that the topic does not exist.
func kafkaTopicInfo(ctx context.Context, cfg *config.Config, topic string) (brokers, partitions int, missing bool, err error) {
	d, err := kafkaDialer(cfg)
	if err != nil {
		return 0, 0, false, err
	}
	var lastErr error
	for _, addr := range cfg.KafkaBrokers {
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			lastErr = fmt.Errorf("%s: %w", addr, err)
			continue
		}
		defer conn.Close()
		if dl, ok := ctx.Deadline(); ok {
			conn.SetDeadline(dl)
		}
		bs, err := conn.Brokers()
		if err != nil {
			return 0, 0, false, fmt.Errorf("%s: metadata: %w", addr, err)
		}
		ps, err := conn.ReadPartitions(topic)
		if errors.Is(err, kafka.UnknownTopicOrPartition) {
			return len(bs), 0, true, nil
		}
		if err != nil {
			return len(bs), 0, false, fmt.Errorf("%s: topic %s: %w", addr, topic, err)
		}
		return len(bs), len(ps), false, nil
	}
	return 0, 0, false, lastErr
}
