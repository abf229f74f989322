// Package config loads, layers and validates the settings of the tagstream command.
//
// A setting has one name that is used everywhere: the key in the YAML file (api-url), the command-line flag
// (--api-url) and the environment variable (TAGSTREAM_API_URL). Values are layered in this order, later wins:
// built-in defaults, the YAML file (--config or TAGSTREAM_CONFIG), TAGSTREAM_* environment variables, flags.
//
// Access tokens are never a flag value or a config key: they come from the file named by tokens-file (one per
// line) or from the TAGSTREAM_TOKENS environment variable. See docs/configuration.md.
//
// Every problem is reported as a *Error naming the setting, where the value came from and what is wrong; the
// command turns it into exit status 2.
package config

import (
	"errors"
	"strings"
	"time"

	"github.com/tagstream/tagstream/internal/redact"
)

// ErrInvalid is wrapped by every *Error, so errors.Is(err, ErrInvalid) tells a configuration problem apart from
// a runtime failure.
var ErrInvalid = errors.New("config: invalid configuration")

// Error is one configuration problem: the setting (Key), where its value came from (Origin, such as
// "tagstream.yaml line 4", "TAGSTREAM_TAGS" or "--tags"), and what is wrong.
type Error struct {
	Key     string
	Origin  string
	Problem string
	Err     error // optional underlying cause
}

// Error returns a single line that names the key, the origin and the problem.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("config: ")
	b.WriteString(e.Key)
	if e.Origin != "" {
		b.WriteString(" (")
		b.WriteString(e.Origin)
		b.WriteString(")")
	}
	b.WriteString(": ")
	b.WriteString(e.Problem)
	return b.String()
}

// Unwrap returns ErrInvalid and the underlying cause, if any.
func (e *Error) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrInvalid, e.Err}
	}
	return []error{ErrInvalid}
}

// SinkKind names where events go: the value of the sink setting.
type SinkKind string

// The sinks.
const (
	SinkJetStream SinkKind = "jetstream"
	SinkNATS      SinkKind = "nats"
	SinkKafka     SinkKind = "kafka"
	SinkFile      SinkKind = "file"
	SinkStdout    SinkKind = "stdout"
)

// UsesNATS reports whether the sink publishes over a NATS connection (jetstream and nats).
func (k SinkKind) UsesNATS() bool { return k == SinkJetStream || k == SinkNATS }

// IsBroker reports whether the sink is a broker that can refuse an event for good (jetstream, nats and kafka),
// so that dead letters apply to it.
func (k SinkKind) IsBroker() bool { return k.UsesNATS() || k == SinkKafka }

// StoreKind names the checkpoint store: the value of the checkpoint-store setting.
type StoreKind string

// The checkpoint stores.
const (
	StoreBolt        StoreKind = "bolt"
	StoreJetStreamKV StoreKind = "jetstream-kv"
	StoreMemory      StoreKind = "memory"
)

// The files tagstream keeps in state-dir.
const (
	// CheckpointFile is the bbolt cursor store of checkpoint-store=bolt.
	CheckpointFile = "checkpoints.db"
	// DeadLetterFile receives the events a broker refuses for good (too large, rejected) when dead-letter is
	// empty: dropping them would lose data silently, blocking would stop their tag forever.
	DeadLetterFile = "dead-letters.ndjson"
)

// Credential is one entry of the tokens file: an access token, or a client id (ClientID true) for
// unauthenticated calls. Its String method never prints the value.
type Credential struct {
	Value    string
	ClientID bool
}

// String returns a redacted description; the value itself is never printed.
func (c Credential) String() string {
	if c.ClientID {
		return clientIDPrefix + redact.Placeholder
	}
	return redact.Placeholder
}

// GoString is the same as String, so %#v does not print the value either.
func (c Credential) GoString() string { return c.String() }

// Config holds every setting of the command. Its zero value is not useful; Defaults returns the documented
// defaults, and Load builds a validated Config.
type Config struct {
	// Upstream API.
	APIURL            string
	AllowInsecureHTTP bool
	CAFile            string
	Tags              []string
	TokensFile        string
	AllowSharedTokens bool // accept a tokens file readable by group or others (warned)
	RequestsPerHour   int
	RateWindow        time.Duration // the window requests-per-hour and X-Ratelimit-* refer to
	PageSize          int
	CatchUpPages      int
	Start             string // "now", "backfill", an RFC 3339 time or a duration (ParseStart)
	BackfillPages     int
	MinInterval       time.Duration
	MaxInterval       time.Duration
	RequestTimeout    time.Duration
	Source            string
	AttachRaw         bool

	// Sink.
	Sink            SinkKind
	NATSURL         string
	NATSCredsFile   string
	NATSNKeyFile    string
	NATSName        string
	SubjectPrefix   string
	Stream          string // "" = the stream that covers <subject-prefix>.>, or one named TAGSTREAM created when none does
	CreateStream    bool
	StreamStorage   string // "file" or "memory"
	Replicas        int
	DuplicateWindow time.Duration

	KafkaBrokers           []string
	KafkaTopic             string
	KafkaCompression       string // none, snappy, lz4, zstd
	KafkaKey               string // tag or id
	KafkaAcks              string // all (the only supported value)
	KafkaContentMode       string // binary or structured
	KafkaCreateTopic       bool
	KafkaPartitions        int
	KafkaReplicationFactor int
	KafkaSASLMechanism     string // "", plain, scram-sha-256, scram-sha-512
	KafkaSASLUser          string
	KafkaTLS               bool
	KafkaCertFile          string
	KafkaKeyFile           string

	DeadLetter string // Kafka topic, NATS subject or file path, depending on the sink; "" = off
	Output     string // the file sink's path

	// Group mode (docs/group.md): several instances share tags and tokens through JetStream KV buckets.
	Group          string        // the group's name; "" = a single instance
	GroupMember    string        // this instance's member name; "" = <host>-<pid>
	GroupLease     time.Duration // failover time after a kill; 0 = the group's (8s for a new group)
	GroupReplicas  int           // replicas of the group's buckets when created; 0 = 3, or 1 on a JetStream that is not clustered
	GroupRetention time.Duration // how long a removed tag's cursor is kept
	GroupStatusURL string        // where this member's /status is served, advertised to the group; "" = from metrics-addr

	// Local state and operations.
	StateDir        string // Load's default: $XDG_STATE_HOME/tagstream, else $HOME/.local/state/tagstream
	CheckpointStore StoreKind
	KVBucket        string
	MetricsAddr     string
	LogFormat       string // text or json
	LogLevel        string // debug, info, warn, error
	ShutdownTimeout time.Duration
	ConnectTimeout  time.Duration
	SkipBrokerCheck bool

	// Secrets from the environment only (never flags or file keys).
	Credentials       []Credential
	NATSUser          string
	NATSPassword      string
	NATSToken         string
	KafkaSASLPassword string

	// StartedAt is when Load began, at the start of the process: the instant start=now and a start duration
	// refer to. Zero for a Config that was not loaded (the current time is taken then).
	StartedAt time.Time

	// ConfigFile is the YAML file that was read, "" when none.
	ConfigFile string
	// Warnings collects non-fatal remarks found while loading (a shared tokens file, for instance).
	Warnings []string
}

// NeedsNATS reports whether the configuration needs a NATS connection: a NATS sink or the JetStream KV
// checkpoint store.
func (c *Config) NeedsNATS() bool {
	return c.Sink.UsesNATS() || c.CheckpointStore == StoreJetStreamKV
}

// Secrets returns every secret value of the configuration (credentials and broker passwords), for a redactor.
func (c *Config) Secrets() []string {
	var out []string
	for _, cr := range c.Credentials {
		out = append(out, cr.Value)
	}
	return append(out, c.NATSPassword, c.NATSToken, c.KafkaSASLPassword)
}

// Redactor returns the redactor of the configuration's secrets.
func (c *Config) Redactor() *redact.Redactor { return redact.New(c.Secrets()...) }

// Defaults returns the documented default settings.
func Defaults() Config {
	return Config{
		APIURL:                 "https://api.instagram.com/v1",
		RequestsPerHour:        5000,
		RateWindow:             time.Hour,
		PageSize:               33,
		CatchUpPages:           20,
		Start:                  "now",
		BackfillPages:          1,
		MinInterval:            2 * time.Second,
		MaxInterval:            5 * time.Minute,
		RequestTimeout:         15 * time.Second,
		Source:                 "/tagstream",
		Sink:                   SinkJetStream,
		NATSURL:                "nats://127.0.0.1:4222",
		NATSName:               "tagstream",
		SubjectPrefix:          "tagstream.media",
		CreateStream:           true,
		StreamStorage:          "file",
		Replicas:               1,
		DuplicateWindow:        2 * time.Minute,
		KafkaTopic:             "tagstream.media",
		KafkaCompression:       "none",
		KafkaKey:               "tag",
		KafkaAcks:              "all",
		KafkaContentMode:       "binary",
		KafkaPartitions:        1,
		KafkaReplicationFactor: 1,
		StateDir:               "", // Load resolves it: $XDG_STATE_HOME/tagstream, else ~/.local/state/tagstream
		CheckpointStore:        StoreBolt,
		KVBucket:               "tagstream_cursors",
		GroupRetention:         7 * 24 * time.Hour,
		LogFormat:              "text",
		LogLevel:               "info",
		ShutdownTimeout:        10 * time.Second,
		ConnectTimeout:         3 * time.Second,
	}
}
