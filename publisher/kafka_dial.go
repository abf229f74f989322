package publisher

import (
	"crypto/tls"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
)

// SASLConfig configures SASL authentication to Kafka. The zero value means none.
type SASLConfig struct {
	// Mechanism is "PLAIN", "SCRAM-SHA-256" or "SCRAM-SHA-512" (any case); empty means no SASL.
	Mechanism string
	// Username and Password are the credentials. They never appear in errors or logs.
	Username, Password string
}

// mechanism is the one mapping from SASLConfig to a kafka-go mechanism: the publisher, the probe and every
// Kafka client of the command (through KafkaDialer) use it.
func (c SASLConfig) mechanism() (sasl.Mechanism, error) {
	if c.Mechanism == "" {
		if c.Username != "" || c.Password != "" {
			return nil, configError("SASL.Mechanism", "credentials given without a mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)")
		}
		return nil, nil
	}
	if c.Username == "" {
		return nil, configError("SASL.Username", "required with mechanism %s", c.Mechanism)
	}
	switch strings.ToUpper(c.Mechanism) {
	case "PLAIN":
		return plain.Mechanism{Username: c.Username, Password: c.Password}, nil
	case "SCRAM-SHA-256":
		m, err := scram.Mechanism(scram.SHA256, c.Username, c.Password)
		if err != nil {
			return nil, configError("SASL", "scram: %v", err)
		}
		return m, nil
	case "SCRAM-SHA-512":
		m, err := scram.Mechanism(scram.SHA512, c.Username, c.Password)
		if err != nil {
			return nil, configError("SASL", "scram: %v", err)
		}
		return m, nil
	}
	return nil, configError("SASL.Mechanism", "unknown mechanism %q (want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)", c.Mechanism)
}

// kafkaDial is how to reach the brokers: TLS and SASL built once (the CA and certificate files are read here and
// never again), the client id and the dial timeout.
type kafkaDial struct {
	tls      *tls.Config
	sasl     sasl.Mechanism
	clientID string
	timeout  time.Duration
}

// dial builds the connection settings of c: TLS, SASL, ClientID and DialTimeout with their defaults. It checks
// only those fields, so that a client that needs no topic (a consumer of several topics) can use it too.
func (c KafkaConfig) dial() (kafkaDial, error) {
	if c.DialTimeout < 0 {
		return kafkaDial{}, configError("DialTimeout", "must not be negative, got %v", c.DialTimeout)
	}
	mech, err := c.SASL.mechanism()
	if err != nil {
		return kafkaDial{}, err
	}
	tlsCfg, err := c.TLS.build("TLS")
	if err != nil {
		return kafkaDial{}, err
	}
	d := kafkaDial{tls: tlsCfg, sasl: mech, clientID: c.ClientID, timeout: c.DialTimeout}
	if d.clientID == "" {
		d.clientID = "tagstream"
	}
	if d.timeout == 0 {
		d.timeout = 5 * time.Second
	}
	return d, nil
}

// transport returns a kafka-go Transport (the connection pool of Writers and Clients) with these settings.
func (d kafkaDial) transport() *kafka.Transport {
	return &kafka.Transport{
		DialTimeout: d.timeout,
		ClientID:    d.clientID,
		TLS:         d.tls,
		SASL:        d.sasl,
		MetadataTTL: 30 * time.Second,
	}
}

// KafkaDialer returns a kafka-go Dialer (for a kafka.Reader or a kafka.Conn) that reaches the brokers exactly as
// the publisher does: the TLS of cfg.TLS, the SASL of cfg.SASL (the one SASL mapping of the project),
// cfg.ClientID and cfg.DialTimeout with their defaults. Only those fields are checked, so Brokers and Topic may
// be empty. Errors wrap ErrConfig and name the field; they never hold the password.
func KafkaDialer(cfg KafkaConfig) (*kafka.Dialer, error) {
	d, err := cfg.dial()
	if err != nil {
		return nil, err
	}
	return &kafka.Dialer{
		ClientID:      d.clientID,
		Timeout:       d.timeout,
		DualStack:     true,
		TLS:           d.tls,
		SASLMechanism: d.sasl,
	}, nil
}
