package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/tagstream/tagstream/publisher"
)

// kafkaDialer returns a kafka-go Dialer with the TLS and SASL settings of kc, for the readers of tail and the demo
// and for the topic probe of check.
//
// It holds the last copy of the publisher's SASL mapping: publisher.KafkaDialer(kc) replaces this function once
// the publisher exports it.
func kafkaDialer(kc publisher.KafkaConfig) (*kafka.Dialer, error) {
	t, err := kc.TLS.Build()
	if err != nil {
		return nil, err
	}
	var m sasl.Mechanism
	switch strings.ToUpper(kc.SASL.Mechanism) {
	case "":
	case "PLAIN":
		m = plain.Mechanism{Username: kc.SASL.Username, Password: kc.SASL.Password}
	case "SCRAM-SHA-256":
		if m, err = scram.Mechanism(scram.SHA256, kc.SASL.Username, kc.SASL.Password); err != nil {
			return nil, err
		}
	case "SCRAM-SHA-512":
		if m, err = scram.Mechanism(scram.SHA512, kc.SASL.Username, kc.SASL.Password); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%w: SASL.Mechanism: unknown mechanism %q", publisher.ErrConfig, kc.SASL.Mechanism)
	}
	timeout := kc.DialTimeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	return &kafka.Dialer{ClientID: "tagstream", Timeout: timeout, DualStack: true, TLS: t, SASLMechanism: m}, nil
}

// kafkaProbe is what a metadata round trip tells of the cluster and the topic.
type kafkaProbe struct {
	Brokers, Partitions int
	TopicMissing        bool
}

// probeKafka asks the first broker that answers for the brokers of the cluster and the partitions of kc.Topic.
// Errors that mean no broker could be reached wrap publisher.ErrUnavailable.
//
// publisher.ProbeKafka(ctx, kc) replaces this function once the publisher exports it.
func probeKafka(ctx context.Context, kc publisher.KafkaConfig) (kafkaProbe, error) {
	d, err := kafkaDialer(kc)
	if err != nil {
		return kafkaProbe{}, err
	}
	return probeKafkaWith(ctx, d, kc.Brokers, kc.Topic)
}

// probeKafkaWith is probeKafka with a dialer built earlier.
func probeKafkaWith(ctx context.Context, d *kafka.Dialer, brokers []string, topic string) (kafkaProbe, error) {
	var lastErr error
	for _, addr := range brokers {
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			lastErr = fmt.Errorf("%s: %w: %w", addr, publisher.ErrUnavailable, err)
			continue
		}
		if dl, ok := ctx.Deadline(); ok {
			_ = conn.SetDeadline(dl)
		}
		bs, err := conn.Brokers()
		if err != nil {
			conn.Close()
			return kafkaProbe{}, fmt.Errorf("%s: metadata: %w", addr, err)
		}
		ps, err := conn.ReadPartitions(topic)
		conn.Close()
		if errors.Is(err, kafka.UnknownTopicOrPartition) {
			return kafkaProbe{Brokers: len(bs), TopicMissing: true}, nil
		}
		if err != nil {
			return kafkaProbe{Brokers: len(bs)}, fmt.Errorf("%s: topic %s: %w", addr, topic, err)
		}
		return kafkaProbe{Brokers: len(bs), Partitions: len(ps)}, nil
	}
	return kafkaProbe{}, lastErr
}
