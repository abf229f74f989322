package pipeline

import (
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tagstream/tagstream/group"
	"github.com/tagstream/tagstream/internal/config"
	"github.com/tagstream/tagstream/poller"
	"github.com/tagstream/tagstream/publisher"
)

// This file is the one translation of the settings into the libraries' configurations. run, check, tail and the
// demo all go through it, so that what check approves is what run builds.

// pollerConfig maps the settings onto the poller's configuration. deps.RateWindow and deps.APIBackoff, when not
// zero, override the rate-window setting and the poller's backoff (for tests).
func pollerConfig(cfg *config.Config, deps Deps) poller.Config {
	rateWindow := deps.RateWindow
	if rateWindow == 0 {
		rateWindow = cfg.RateWindow
	}
	pc := poller.Config{
		BaseURL:           cfg.APIURL,
		AllowInsecureHTTP: cfg.AllowInsecureHTTP,
		CAFile:            cfg.CAFile,
		RequestsPerHour:   cfg.RequestsPerHour,
		RateWindow:        rateWindow,
		Tags:              append([]string(nil), cfg.Tags...),
		PageSize:          cfg.PageSize,
		CatchUpPages:      cfg.CatchUpPages,
		BackfillPages:     cfg.BackfillPages,
		MinInterval:       cfg.MinInterval,
		MaxInterval:       cfg.MaxInterval,
		RequestTimeout:    cfg.RequestTimeout,
		ShutdownTimeout:   cfg.ShutdownTimeout,
		Source:            cfg.Source,
		AttachRaw:         cfg.AttachRaw,
		BackoffInitial:    deps.APIBackoff.Initial,
		BackoffMax:        deps.APIBackoff.Max,
	}
	// The start setting is validated by config; "now" and durations refer to the process start (Load).
	at := cfg.StartedAt
	if at.IsZero() {
		at = time.Now()
	}
	if st, err := config.ParseStart(cfg.Start, at); err == nil {
		switch {
		case st.Backfill:
			pc.Start = poller.StartBackfill
		case st.Earlier:
			pc.Start, pc.StartTime = poller.StartSince, st.Since
		default:
			pc.StartTime = st.Since
		}
	}
	for _, c := range cfg.Credentials {
		pc.Tokens = append(pc.Tokens, poller.Token{Value: c.Value, ClientID: c.ClientID})
	}
	return pc
}

// groupConfig maps the settings onto the group coordinator's configuration (group mode). The tokens go by
// fingerprint and budget, never by value; the poller's interval and page settings go along, so that the group
// divides the budget by the same square-root rule the poller's scheduler uses. rateWindow, when not zero,
// overrides the rate-window setting, as for the poller.
func groupConfig(cfg *config.Config, rateWindow time.Duration) group.Config {
	if rateWindow == 0 {
		rateWindow = cfg.RateWindow
	}
	gc := group.Config{
		Group:       cfg.Group,
		Name:        cfg.GroupMember,
		Tags:        append([]string(nil), cfg.Tags...),
		RateWindow:  rateWindow,
		Lease:       cfg.GroupLease,
		Replicas:    cfg.GroupReplicas,
		Retention:   cfg.GroupRetention,
		MinInterval: cfg.MinInterval,
		MaxInterval: cfg.MaxInterval,
		PageSize:    cfg.PageSize,
	}
	for _, c := range cfg.Credentials {
		gc.Tokens = append(gc.Tokens, group.Token{Fingerprint: poller.Fingerprint(c.Value), RequestsPerHour: cfg.RequestsPerHour})
	}
	return gc
}

// NATSConnConfig maps the settings onto the NATS connection options. ca-file is used for NATS only when a URL
// asks for TLS (tls:// or wss://), so that a CA given for the API does not force TLS on a plain server.
func NATSConnConfig(cfg *config.Config) publisher.ConnConfig {
	urls, _ := config.ParseNATSURLs(cfg.NATSURL)
	cc := publisher.ConnConfig{
		URLs:           urls,
		Name:           cfg.NATSName,
		User:           cfg.NATSUser,
		Password:       cfg.NATSPassword,
		Token:          cfg.NATSToken,
		NKeySeedFile:   cfg.NATSNKeyFile,
		CredsFile:      cfg.NATSCredsFile,
		ConnectTimeout: cfg.ConnectTimeout,
	}
	for _, u := range urls {
		if strings.HasPrefix(u, "tls://") || strings.HasPrefix(u, "wss://") {
			cc.TLS = publisher.TLSConfig{Enable: true, CAFile: cfg.CAFile}
			break
		}
	}
	return cc
}

// jetStreamConfig maps the settings onto the JetStream publisher's configuration (without a dead-letter
// destination of its own: New adds the default file). The stream is named only when the stream setting is set;
// empty lets the publisher find the stream that covers <subject-prefix>.> (or create the default one).
func jetStreamConfig(cfg *config.Config) publisher.JetStreamConfig {
	storage := jetstream.FileStorage
	if cfg.StreamStorage == "memory" {
		storage = jetstream.MemoryStorage
	}
	return publisher.JetStreamConfig{
		SubjectPrefix:     cfg.SubjectPrefix,
		Stream:            cfg.Stream,
		CreateStream:      cfg.CreateStream,
		Storage:           storage,
		Replicas:          cfg.Replicas,
		DuplicateWindow:   cfg.DuplicateWindow,
		DeadLetterSubject: cfg.DeadLetter,
	}
}

// natsConfig maps the settings onto the core NATS publisher's configuration.
func natsConfig(cfg *config.Config) publisher.NATSConfig {
	return publisher.NATSConfig{SubjectPrefix: cfg.SubjectPrefix, DeadLetterSubject: cfg.DeadLetter}
}

// kafkaConfig maps the settings onto the Kafka publisher's configuration. ca-file is used for Kafka only when
// kafka-tls is on or a client certificate is set, so that a CA given for the API does not force TLS on a plain
// broker.
func kafkaConfig(cfg *config.Config) publisher.KafkaConfig {
	tls := publisher.TLSConfig{Enable: cfg.KafkaTLS, CertFile: cfg.KafkaCertFile, KeyFile: cfg.KafkaKeyFile}
	if tls.Enable || tls.CertFile != "" {
		tls.CAFile = cfg.CAFile
	}
	kc := publisher.KafkaConfig{
		Brokers:           cfg.KafkaBrokers,
		Topic:             cfg.KafkaTopic,
		Compression:       cfg.KafkaCompression,
		CreateTopic:       cfg.KafkaCreateTopic,
		Partitions:        cfg.KafkaPartitions,
		ReplicationFactor: cfg.KafkaReplicationFactor,
		DialTimeout:       cfg.ConnectTimeout,
		TLS:               tls,
		SASL:              publisher.SASLConfig{Mechanism: strings.ToUpper(cfg.KafkaSASLMechanism), Username: cfg.KafkaSASLUser, Password: cfg.KafkaSASLPassword},
		DeadLetterTopic:   cfg.DeadLetter,
	}
	if cfg.KafkaKey == "id" {
		kc.Key = publisher.KeyMediaID
	}
	if cfg.KafkaContentMode == "structured" {
		kc.ContentMode = publisher.ContentStructured
	}
	return kc
}
