package publisher

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tagstream/tagstream/internal/testkit"
)

func TestProbeKafkaAgreesWithNewKafka(t *testing.T) {
	t.Parallel()
	brokers := testkit.FakeKafka(t)
	existing, _ := newTestKafka(t, KafkaConfig{Brokers: brokers, Partitions: 3})
	tests := []struct {
		name      string
		cfg       KafkaConfig
		want      KafkaProbe
		wantErr   error
		createdBy []string // topics NewKafka creates (the probe must not)
	}{
		{"an existing topic reports the brokers and its partitions",
			KafkaConfig{Topic: existing.Topic()}, KafkaProbe{Brokers: 1, Partitions: 3}, nil, nil},
		{"a missing topic with creation on would be created",
			KafkaConfig{Topic: "probe-missing-create", CreateTopic: true, Partitions: 2},
			KafkaProbe{Brokers: 1, TopicMissing: true}, nil, []string{"probe-missing-create"}},
		{"a missing topic with creation off is ErrTopicNotFound",
			KafkaConfig{Topic: "probe-missing"}, KafkaProbe{Brokers: 1, TopicMissing: true}, ErrTopicNotFound, nil},
		{"a missing dead-letter topic with creation off is ErrTopicNotFound",
			KafkaConfig{Topic: existing.Topic(), DeadLetterTopic: "probe-dl-missing"},
			KafkaProbe{Brokers: 1, Partitions: 3, DeadLetterTopicMissing: true}, ErrTopicNotFound, nil},
		{"a missing dead-letter topic with creation on would be created",
			KafkaConfig{Topic: "probe-both", DeadLetterTopic: "probe-both-dl", CreateTopic: true},
			KafkaProbe{Brokers: 1, TopicMissing: true, DeadLetterTopicMissing: true}, nil,
			[]string{"probe-both", "probe-both-dl"}},
		{"an invalid field is ErrConfig", KafkaConfig{Topic: "a b"}, KafkaProbe{}, ErrConfig, nil},
		{"an unknown SASL mechanism is ErrConfig",
			KafkaConfig{Topic: "t", SASL: SASLConfig{Mechanism: "GSSAPI", Username: "u"}}, KafkaProbe{}, ErrConfig, nil},
	}
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.Brokers = brokers
			got, err := ProbeKafka(ctx, cfg)
			if got != tt.want || !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("ProbeKafka = %+v, %v; want %+v, %v", got, err, tt.want, tt.wantErr)
			}
			for _, topic := range tt.createdBy {
				if st, _ := existing.admin.describe(ctx, topic); !st.missing {
					t.Fatalf("the probe created topic %s", topic)
				}
			}
			p, perr := NewKafka(ctx, cfg, testLogger(t), nil)
			if tt.wantErr != nil {
				if !errors.Is(perr, tt.wantErr) || perr.Error() != err.Error() {
					t.Fatalf("NewKafka = %v, ProbeKafka = %v; want the same error", perr, err)
				}
				return
			}
			if perr != nil {
				t.Fatalf("NewKafka = %v after the probe found nothing wrong", perr)
			}
			t.Cleanup(func() { _ = p.Close() })
			again, err := ProbeKafka(ctx, cfg)
			if err != nil || again.TopicMissing || again.DeadLetterTopicMissing || again.Partitions == 0 {
				t.Fatalf("probe after NewKafka = %+v, %v; want the topics in place", again, err)
			}
		})
	}
	t.Run("an unreachable broker is ErrUnreachable", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := ProbeKafka(ctx, KafkaConfig{Brokers: []string{testkit.FreeAddr(t)}, Topic: "t"})
		startErrorClass(t, "ProbeKafka", err, ErrUnreachable)
	})
}

func TestProbeKafkaOnApacheKafka(t *testing.T) {
	t.Parallel()
	brokers := realKafka(t)
	p, _ := newTestKafka(t, KafkaConfig{Brokers: brokers, Partitions: 2})
	got, err := ProbeKafka(context.Background(), KafkaConfig{Brokers: brokers, Topic: p.Topic()})
	if err != nil || got.Brokers < 1 || got.Partitions != 2 || got.TopicMissing {
		t.Fatalf("ProbeKafka = %+v, %v; want the topic's 2 partitions", got, err)
	}
	missing := uniqueTopic(t)
	got, err = ProbeKafka(context.Background(), KafkaConfig{Brokers: brokers, Topic: missing})
	if !errors.Is(err, ErrTopicNotFound) || !got.TopicMissing {
		t.Fatalf("ProbeKafka of a missing topic = %+v, %v; want ErrTopicNotFound", got, err)
	}
	// The probe asks without allowing auto-creation: a broker with auto.create.topics.enable must not create it.
	if st, _ := p.admin.describe(context.Background(), missing); !st.missing {
		t.Fatalf("the probe created topic %s", missing)
	}
}

func TestKafkaDialerUsesTheOneSASLMapping(t *testing.T) {
	t.Parallel()
	for _, mech := range []string{"PLAIN", "scram-sha-256", "SCRAM-SHA-512"} {
		t.Run(mech+" authenticates a kafka-go reader's connection", func(t *testing.T) {
			brokers := testkit.FakeKafka(t, kfake.EnableSASL(), kfake.Superuser(strings.ToUpper(mech), "svc", "s3cret"))
			d, err := KafkaDialer(KafkaConfig{SASL: SASLConfig{Mechanism: mech, Username: "svc", Password: "s3cret"}})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			conn, err := d.DialContext(ctx, "tcp", brokers[0])
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer conn.Close()
			if _, err := conn.Brokers(); err != nil {
				t.Fatalf("metadata over the authenticated connection: %v", err)
			}
		})
	}
	tests := []struct {
		name  string
		cfg   KafkaConfig
		field string
	}{
		{"an unknown mechanism", KafkaConfig{SASL: SASLConfig{Mechanism: "GSSAPI", Username: "u"}}, "SASL.Mechanism"},
		{"credentials without a mechanism", KafkaConfig{SASL: SASLConfig{Username: "u", Password: "p"}}, "SASL.Mechanism"},
		{"a mechanism without a user", KafkaConfig{SASL: SASLConfig{Mechanism: "PLAIN"}}, "SASL.Username"},
		{"a missing CA file", KafkaConfig{TLS: TLSConfig{CAFile: "/nonexistent/ca.pem"}}, "TLS.CAFile"},
		{"a negative dial timeout", KafkaConfig{DialTimeout: -1}, "DialTimeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is a config error naming "+tt.field, func(t *testing.T) {
			_, err := KafkaDialer(tt.cfg)
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("KafkaDialer = %v, want ErrConfig naming %s", err, tt.field)
			}
		})
	}
	t.Run("the defaults are the publisher's", func(t *testing.T) {
		d, err := KafkaDialer(KafkaConfig{})
		if err != nil || d.ClientID != "tagstream" || d.Timeout != 5*time.Second || d.TLS != nil || d.SASLMechanism != nil {
			t.Fatalf("KafkaDialer = %+v, %v", d, err)
		}
	})
}
