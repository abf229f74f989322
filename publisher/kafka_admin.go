package publisher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"
)

// KafkaProbe is what ProbeKafka found out about the cluster and the topic.
type KafkaProbe struct {
	// Brokers is the number of brokers of the cluster.
	Brokers int
	// Partitions is the number of partitions of the topic; 0 when it is missing.
	Partitions int
	// TopicMissing reports that the topic does not exist: NewKafka creates it when CreateTopic is set (ProbeKafka
	// then returns no error) and fails with ErrTopicNotFound otherwise (ProbeKafka returns the same error).
	TopicMissing bool
	// DeadLetterTopicMissing is the same for DeadLetterTopic (false when none is configured).
	DeadLetterTopicMissing bool
}

// ProbeKafka checks cfg as NewKafka does, with the same code, but creates nothing and publishes nothing: it
// validates the fields, connects with the configured TLS and SASL, and looks the topic (and the dead-letter
// topic) up. It returns what it found along with the error NewKafka would return: ErrConfig for an invalid field
// or refused credentials, ErrTopicNotFound for a missing topic with CreateTopic off, ErrUnreachable when no broker
// answers. The probe's fields are filled as far as the probe got.
func ProbeKafka(ctx context.Context, cfg KafkaConfig) (KafkaProbe, error) {
	cfg, _, err := cfg.withDefaults()
	if err != nil {
		return KafkaProbe{}, err
	}
	d, err := cfg.dial()
	if err != nil {
		return KafkaProbe{}, err
	}
	transport := d.transport()
	defer transport.CloseIdleConnections()
	a := newKafkaAdmin(cfg, transport, nil)
	var probe KafkaProbe
	st, err := a.resolveTopic(ctx, cfg.Topic, "Topic")
	probe.Brokers, probe.Partitions, probe.TopicMissing = st.brokers, st.partitions, st.missing
	if err != nil {
		return probe, classifyStart(err)
	}
	if cfg.DeadLetter == nil && cfg.DeadLetterTopic != "" {
		st, err := a.resolveTopic(ctx, cfg.DeadLetterTopic, "DeadLetterTopic")
		probe.DeadLetterTopicMissing = st.missing
		if err != nil {
			return probe, classifyStart(err)
		}
	}
	return probe, nil
}

// kafkaAdmin looks topics up and creates them, for NewKafka, ProbeKafka and Kafka.Ready.
type kafkaAdmin struct {
	client *kafka.Client
	cfg    KafkaConfig
	log    *slog.Logger
}

func newKafkaAdmin(cfg KafkaConfig, transport *kafka.Transport, logger *slog.Logger) *kafkaAdmin {
	if logger == nil {
		logger = slog.Default()
	}
	return &kafkaAdmin{
		client: &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Transport: transport, Timeout: cfg.WriteTimeout},
		cfg:    cfg,
		log:    logger,
	}
}

// topicState is what the cluster metadata says about a topic.
type topicState struct {
	brokers    int   // brokers of the cluster
	partitions int   // partitions of the topic
	ids        []int // their ids
	missing    bool  // the topic does not exist
	led        bool  // every partition has a leader
}

// describe reads the metadata of topic. kafka-go serves it from the transport's cache (refreshed every
// MetadataTTL), so a topic deleted a moment ago may still show up: Ready adds a round trip to the leaders.
func (a *kafkaAdmin) describe(ctx context.Context, topic string) (topicState, error) {
	md, err := a.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return topicState{}, fmt.Errorf("publisher: kafka metadata for %q: %w: %w", topic, ErrUnavailable, err)
	}
	st := topicState{brokers: len(md.Brokers), missing: true}
	for _, t := range md.Topics {
		if t.Name != topic {
			continue
		}
		if t.Error != nil {
			if errors.Is(t.Error, kafka.UnknownTopicOrPartition) {
				return st, nil
			}
			return st, fmt.Errorf("publisher: kafka metadata for %q: %w", topic, t.Error)
		}
		st.missing = false
		st.partitions = len(t.Partitions)
		st.led = len(t.Partitions) > 0
		for _, pt := range t.Partitions {
			st.ids = append(st.ids, pt.ID)
			if pt.Error != nil || pt.Leader.ID < 0 {
				st.led = false
			}
		}
	}
	return st, nil
}

// resolveTopic is the one decision about a topic, shared by NewKafka and ProbeKafka: it looks topic up and
// fails with ErrTopicNotFound when it is missing and CreateTopic is off. A missing topic with CreateTopic on is
// no error (st.missing tells the caller to create it). field names the config field in errors.
func (a *kafkaAdmin) resolveTopic(ctx context.Context, topic, field string) (topicState, error) {
	st, err := a.describe(ctx, topic)
	if err != nil {
		return st, err
	}
	if st.missing && !a.cfg.CreateTopic {
		return st, fmt.Errorf("%w: %q (%s) and CreateTopic is off", ErrTopicNotFound, topic, field)
	}
	return st, nil
}

// ensureTopic resolves topic, creates it when missing (resolveTopic allowed it), and waits until every
// partition has a leader, so that the first Publish does not race the creation.
func (a *kafkaAdmin) ensureTopic(ctx context.Context, topic, field string) error {
	st, err := a.resolveTopic(ctx, topic, field)
	if err != nil {
		return err
	}
	if st.missing {
		if err := a.createTopic(ctx, topic); err != nil {
			return err
		}
	}
	for !st.led {
		select {
		case <-ctx.Done():
			return fmt.Errorf("publisher: wait for the leaders of kafka topic %q: %w", topic, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
		if st, err = a.describe(ctx, topic); err != nil && ctx.Err() != nil {
			return err
		}
	}
	return nil
}

// createTopic creates topic with the configured partitions and replication; a topic created meanwhile by
// someone else is fine.
func (a *kafkaAdmin) createTopic(ctx context.Context, topic string) error {
	res, err := a.client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: topic, NumPartitions: a.cfg.Partitions, ReplicationFactor: a.cfg.ReplicationFactor,
	}}})
	if err != nil {
		return fmt.Errorf("publisher: create kafka topic %q: %w", topic, err)
	}
	if err := res.Errors[topic]; err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		return fmt.Errorf("publisher: create kafka topic %q (%d partitions, replication %d): %w",
			topic, a.cfg.Partitions, a.cfg.ReplicationFactor, err)
	}
	a.log.Info("kafka topic created", "topic", topic, "partitions", a.cfg.Partitions,
		"replication_factor", a.cfg.ReplicationFactor)
	return nil
}

// topicReady checks topic with a round trip to the leader of each of its partitions (a ListOffsets request,
// which the producer's Write permission allows), so that a deleted topic or a broker gone away shows at once and
// not only after the next metadata refresh. Errors wrap ErrTopicNotFound or ErrUnavailable.
func (a *kafkaAdmin) topicReady(ctx context.Context, topic string) error {
	st, err := a.describe(ctx, topic)
	if err != nil {
		return err
	}
	if st.missing {
		return fmt.Errorf("%w: %q no longer exists", ErrTopicNotFound, topic)
	}
	reqs := make([]kafka.OffsetRequest, len(st.ids))
	for i, id := range st.ids {
		reqs[i] = kafka.LastOffsetOf(id)
	}
	res, err := a.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err == nil {
		for _, po := range res.Topics[topic] {
			if po.Error != nil {
				err = fmt.Errorf("partition %d: %w", po.Partition, po.Error)
				break
			}
		}
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, kafka.UnknownTopicOrPartition):
		return fmt.Errorf("%w: %q no longer exists: %w", ErrTopicNotFound, topic, err)
	default:
		return fmt.Errorf("publisher: kafka topic %q: %w: %w", topic, ErrUnavailable, err)
	}
}
