package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Group selects which settings a subcommand accepts.
type Group uint

// Setting groups.
const (
	GroupAPI     Group = 1 << iota // upstream API, tags, tokens, polling
	GroupSink                      // broker or file sink
	GroupState                     // checkpoint store
	GroupOps                       // metrics, logging, shutdown
	GroupStatus                    // what status needs to find a running instance (metrics-addr) or a group's cursors (kv-bucket)
	GroupCluster                   // group mode: the group, this member, and the NATS connection they coordinate over
	GroupAll     = GroupAPI | GroupSink | GroupState | GroupOps | GroupCluster
)

type kind int

const (
	kindString kind = iota
	kindInt
	kindBool
	kindDuration
	kindList
)

// setting describes one named setting: its key/flag name, kind, help text, the values it accepts when they are a
// fixed list, and where it lives in Config.
type setting struct {
	name   string
	group  Group
	kind   kind
	usage  string
	after  string   // help text after the list of values
	values []choice // the only values accepted, in the order help lists them; nil: any value of the kind
	str    func(*Config) *string
	num    func(*Config) *int
	flag   func(*Config) *bool
	dur    func(*Config) *time.Duration
	list   func(*Config) *[]string
}

// EnvName returns the environment variable that carries the setting name.
func EnvName(name string) string {
	return "TAGSTREAM_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// choice is one value of a setting that accepts a fixed list, with an optional note for the help text.
type choice struct {
	value string
	note  string
}

// oneOf builds the choices of an enumerated setting from "value" or "value: note" strings.
func oneOf(values ...string) []choice {
	out := make([]choice, len(values))
	for i, v := range values {
		value, note, _ := strings.Cut(v, ": ")
		out[i] = choice{value: value, note: note}
	}
	return out
}

// help returns the text --help shows: the usage, and for an enumerated setting every accepted value with its note
// ("sink: where events go: jetstream, nats (core, at-most-once), kafka, file or stdout").
func (s *setting) help() string {
	if len(s.values) == 0 {
		return s.usage
	}
	parts := make([]string, len(s.values))
	for i, c := range s.values {
		v := c.value
		if v == "" {
			v = `""`
		}
		if c.note != "" {
			v += " (" + c.note + ")"
		}
		parts[i] = v
	}
	list := parts[0]
	if n := len(parts); n > 1 {
		list = strings.Join(parts[:n-1], ", ") + " or " + parts[n-1]
	}
	return s.usage + ": " + list + s.after
}

// accepts reports whether v is one of the setting's values (any value when it has no list).
func (s *setting) accepts(v string) bool {
	if len(s.values) == 0 {
		return true
	}
	for _, c := range s.values {
		if c.value == v {
			return true
		}
	}
	return false
}

// Values returns the values the setting name accepts when they are a fixed list, in the order its help lists
// them; nil for a setting that takes any value of its kind (or that does not exist).
func Values(name string) []string {
	s, ok := settingByName[name]
	if !ok || len(s.values) == 0 {
		return nil
	}
	out := make([]string, len(s.values))
	for i, c := range s.values {
		out[i] = c.value
	}
	return out
}

func (s *setting) set(c *Config, v string) error {
	switch s.kind {
	case kindString:
		*s.str(c) = strings.TrimSpace(v)
	case kindInt:
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("%q is not a whole number", v)
		}
		*s.num(c) = n
	case kindBool:
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("%q is not true or false", v)
		}
		*s.flag(c) = b
	case kindDuration:
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("%q is not a duration (examples: 500ms, 2s, 5m, 1h)", v)
		}
		*s.dur(c) = d
	case kindList:
		*s.list(c) = splitList(v)
	}
	return nil
}

func (s *setting) get(c *Config) string {
	switch s.kind {
	case kindString:
		return *s.str(c)
	case kindInt:
		return strconv.Itoa(*s.num(c))
	case kindBool:
		return strconv.FormatBool(*s.flag(c))
	case kindDuration:
		return s.dur(c).String()
	case kindList:
		return strings.Join(*s.list(c), ",")
	}
	return ""
}

// splitList splits a comma- or newline-separated list, trimming spaces. Empty items are kept so that
// validation can report them ("a,,b" names an empty tag).
func splitList(v string) []string {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil
	}
	parts := strings.FieldsFunc(v, func(r rune) bool { return r == '\n' })
	var out []string
	for _, p := range parts {
		for _, q := range strings.Split(p, ",") {
			out = append(out, strings.TrimSpace(q))
		}
	}
	return out
}

func str(name string, g Group, usage string, f func(*Config) *string) *setting {
	return &setting{name: name, group: g, kind: kindString, usage: usage, str: f}
}
func num(name string, g Group, usage string, f func(*Config) *int) *setting {
	return &setting{name: name, group: g, kind: kindInt, usage: usage, num: f}
}
func boolean(name string, g Group, usage string, f func(*Config) *bool) *setting {
	return &setting{name: name, group: g, kind: kindBool, usage: usage, flag: f}
}
func dur(name string, g Group, usage string, f func(*Config) *time.Duration) *setting {
	return &setting{name: name, group: g, kind: kindDuration, usage: usage, dur: f}
}

// enum is a string setting that accepts only values; after is help text that follows the list of values.
func enum(name string, g Group, usage string, values []choice, after string, f func(*Config) *string) *setting {
	return &setting{name: name, group: g, kind: kindString, usage: usage, values: values, after: after, str: f}
}
func list(name string, g Group, usage string, f func(*Config) *[]string) *setting {
	return &setting{name: name, group: g, kind: kindList, usage: usage, list: f}
}

// settings is the one table of every file key, flag and environment variable.
var settings = []*setting{
	// Upstream API.
	str("api-url", GroupAPI, "base URL of the Instagram v1 API (https; http only for loopback or with allow-insecure-http)", func(c *Config) *string { return &c.APIURL }),
	boolean("allow-insecure-http", GroupAPI, "allow a plain-http api-url on a non-loopback host (tokens travel in clear)", func(c *Config) *bool { return &c.AllowInsecureHTTP }),
	str("ca-file", GroupAPI|GroupSink|GroupCluster, "PEM file of an extra CA to trust (the API; with TLS, the broker; for status, https status URLs)", func(c *Config) *string { return &c.CAFile }),
	list("tags", GroupAPI, "comma-separated tags to follow, without '#'", func(c *Config) *[]string { return &c.Tags }),
	str("tokens-file", GroupAPI, "file with one access token per line ('client_id:' prefix for a client id, '#' comments); or set TAGSTREAM_TOKENS", func(c *Config) *string { return &c.TokensFile }),
	boolean("allow-shared-tokens-file", GroupAPI, "accept a tokens file that group or others can read (only a warning)", func(c *Config) *bool { return &c.AllowSharedTokens }),
	num("requests-per-hour", GroupAPI, "request budget of each token per hour", func(c *Config) *int { return &c.RequestsPerHour }),
	dur("rate-window", GroupAPI, "the window requests-per-hour and the API's X-Ratelimit-Limit refer to: 1h for the real API; shorter only against a time-scaled simulator (igsim -time-scale 60 makes it 1m)", func(c *Config) *time.Duration { return &c.RateWindow }),
	num("page-size", GroupAPI, "media asked per page (the API serves at most 33)", func(c *Config) *int { return &c.PageSize }),
	num("catch-up-pages", GroupAPI, "most pages fetched for one tag in one poll; a deeper backlog is worked off over several polls", func(c *Config) *int { return &c.CatchUpPages }),
	str("start", GroupAPI, "first start of a tag without a saved cursor: now (the media created since the process started), an RFC 3339 time or a duration such as 24h (the media created since then, with a gap marker where the API no longer serves them), or backfill (backfill-pages pages of existing media)", func(c *Config) *string { return &c.Start }),
	num("backfill-pages", GroupAPI, "pages of existing media published on first start with start=backfill", func(c *Config) *int { return &c.BackfillPages }),
	dur("min-interval", GroupAPI, "shortest time between two polls of one tag", func(c *Config) *time.Duration { return &c.MinInterval }),
	dur("max-interval", GroupAPI, "longest time between two polls of one tag (floor for quiet tags)", func(c *Config) *time.Duration { return &c.MaxInterval }),
	dur("request-timeout", GroupAPI, "timeout of one API request", func(c *Config) *time.Duration { return &c.RequestTimeout }),
	str("source", GroupAPI, "CloudEvents source attribute of published events", func(c *Config) *string { return &c.Source }),
	boolean("attach-raw", GroupAPI, "include the raw upstream media object in each event", func(c *Config) *bool { return &c.AttachRaw }),

	// Sink.
	enum("sink", GroupSink, "where events go", oneOf("jetstream", "nats: core, at-most-once", "kafka", "file", "stdout"), "", func(c *Config) *string { return (*string)(&c.Sink) }),
	str("nats-url", GroupSink|GroupState|GroupCluster, "NATS server URL(s), comma-separated", func(c *Config) *string { return &c.NATSURL }),
	str("nats-creds-file", GroupSink|GroupState|GroupCluster, "NATS credentials (.creds) file", func(c *Config) *string { return &c.NATSCredsFile }),
	str("nats-nkey-file", GroupSink|GroupState|GroupCluster, "NATS nkey seed file", func(c *Config) *string { return &c.NATSNKeyFile }),
	str("nats-name", GroupSink|GroupState|GroupCluster, "NATS connection name", func(c *Config) *string { return &c.NATSName }),
	str("subject-prefix", GroupSink, "NATS subject prefix; each tag publishes to <prefix>.<encoded tag>", func(c *Config) *string { return &c.SubjectPrefix }),
	str("stream", GroupSink, "JetStream stream that stores the events; empty: the stream that covers <subject-prefix>.> (one named TAGSTREAM is created when none does)", func(c *Config) *string { return &c.Stream }),
	boolean("create-stream", GroupSink, "create the stream when it does not exist (the named stream, or TAGSTREAM when no stream covers <subject-prefix>.>); off: a missing stream is a configuration error", func(c *Config) *bool { return &c.CreateStream }),
	enum("stream-storage", GroupSink, "storage of a created stream", oneOf("file", "memory"), "", func(c *Config) *string { return &c.StreamStorage }),
	num("replicas", GroupSink|GroupState, "replicas of a created stream or KV bucket", func(c *Config) *int { return &c.Replicas }),
	dur("duplicate-window", GroupSink, "duplicate window of a created stream", func(c *Config) *time.Duration { return &c.DuplicateWindow }),
	list("kafka-brokers", GroupSink, "Kafka bootstrap brokers host:port, comma-separated", func(c *Config) *[]string { return &c.KafkaBrokers }),
	str("kafka-topic", GroupSink, "Kafka topic of the events", func(c *Config) *string { return &c.KafkaTopic }),
	enum("kafka-compression", GroupSink, "Kafka compression", oneOf("none", "gzip", "snappy", "lz4", "zstd"), "", func(c *Config) *string { return &c.KafkaCompression }),
	enum("kafka-key", GroupSink, "Kafka message key", oneOf("tag: keeps per-tag order", "id"), "", func(c *Config) *string { return &c.KafkaKey }),
	enum("kafka-acks", GroupSink, "Kafka acknowledgements", oneOf("all: the only value: every in-sync replica stores the event"), "", func(c *Config) *string { return &c.KafkaAcks }),
	enum("kafka-content-mode", GroupSink, "CloudEvents Kafka binding", oneOf("binary: ce_ headers", "structured"), "", func(c *Config) *string { return &c.KafkaContentMode }),
	boolean("kafka-create-topic", GroupSink, "create the topic when it does not exist", func(c *Config) *bool { return &c.KafkaCreateTopic }),
	num("kafka-partitions", GroupSink, "partitions of a created topic", func(c *Config) *int { return &c.KafkaPartitions }),
	num("kafka-replication-factor", GroupSink, "replication factor of a created topic", func(c *Config) *int { return &c.KafkaReplicationFactor }),
	enum("kafka-sasl-mechanism", GroupSink, "Kafka SASL mechanism", oneOf(": no SASL", "plain", "scram-sha-256", "scram-sha-512"), " (password from TAGSTREAM_KAFKA_SASL_PASSWORD)", func(c *Config) *string { return &c.KafkaSASLMechanism }),
	str("kafka-sasl-user", GroupSink, "Kafka SASL user name", func(c *Config) *string { return &c.KafkaSASLUser }),
	boolean("kafka-tls", GroupSink, "connect to Kafka over TLS (trusting ca-file in addition to the system roots)", func(c *Config) *bool { return &c.KafkaTLS }),
	str("kafka-cert-file", GroupSink, "client certificate (PEM) for Kafka TLS", func(c *Config) *string { return &c.KafkaCertFile }),
	str("kafka-key-file", GroupSink, "client key (PEM) for Kafka TLS", func(c *Config) *string { return &c.KafkaKeyFile }),
	str("dead-letter", GroupSink, "where events the broker refuses go: a Kafka topic or a NATS subject (a stream must cover it); empty = the file dead-letters.ndjson in state-dir", func(c *Config) *string { return &c.DeadLetter }),
	str("output", GroupSink, "path of the NDJSON file for sink=file", func(c *Config) *string { return &c.Output }),

	// State.
	str("state-dir", GroupState, "directory of the local checkpoint store (checkpoints.db) and of dead-letters.ndjson (default $XDG_STATE_HOME/tagstream, else ~/.local/state/tagstream: the same whatever the working directory)", func(c *Config) *string { return &c.StateDir }),
	enum("checkpoint-store", GroupState, "cursor store", oneOf("bolt: file in state-dir", "jetstream-kv", "memory: lost on exit"), "", func(c *Config) *string { return (*string)(&c.CheckpointStore) }),
	str("kv-bucket", GroupState|GroupStatus, "JetStream KV bucket for checkpoint-store=jetstream-kv (status --group reads the cursors from it)", func(c *Config) *string { return &c.KVBucket }),

	// Group mode.
	str("group", GroupCluster, "run as a member of this group of instances sharing tags and tokens through JetStream KV buckets (needs checkpoint-store jetstream-kv); empty = a single instance", func(c *Config) *string { return &c.Group }),
	str("group-member", GroupCluster, "this instance's member name, unique among the live members; a stable name gets its tags back after a restart (default <host>-<pid>)", func(c *Config) *string { return &c.GroupMember }),
	dur("group-lease", GroupCluster, "how long a killed member keeps its tags before the others take them (the group's, fixed when its buckets are created; 0 = the group's, 8s for a new group)", func(c *Config) *time.Duration { return &c.GroupLease }),
	num("group-replicas", GroupCluster, "replicas of the group's buckets when they are created (0 = 3, or 1 on a JetStream that is not clustered)", func(c *Config) *int { return &c.GroupReplicas }),
	str("group-status-url", GroupCluster, "where this member's /status is served, advertised to the group so that status --group can ask it for polls, lag and budgets; an http(s) URL holding nothing secret (default http://<host>:<port of metrics-addr> when metrics-addr is set)", func(c *Config) *string { return &c.GroupStatusURL }),
	dur("group-retention", GroupCluster, "how long the cursor of a tag removed from the group is kept, so that adding it again resumes without a gap", func(c *Config) *time.Duration { return &c.GroupRetention }),

	// Operations.
	str("metrics-addr", GroupOps|GroupStatus, "listen address of /metrics, /healthz, /readyz and /status (empty = off)", func(c *Config) *string { return &c.MetricsAddr }),
	enum("log-format", GroupOps, "log format", oneOf("text", "json"), "", func(c *Config) *string { return &c.LogFormat }),
	enum("log-level", GroupOps, "log level", oneOf("debug", "info", "warn", "error"), "", func(c *Config) *string { return &c.LogLevel }),
	dur("shutdown-timeout", GroupOps, "how long a stop may take to flush and save cursors", func(c *Config) *time.Duration { return &c.ShutdownTimeout }),
	dur("connect-timeout", GroupSink|GroupOps|GroupCluster, "timeout of one broker connect attempt (run retries with backoff until the broker answers; check and tail report it)", func(c *Config) *time.Duration { return &c.ConnectTimeout }),
	boolean("skip-broker-check", GroupSink, "tail: do not dial the broker before subscribing (run never dials during validation: it waits for the broker)", func(c *Config) *bool { return &c.SkipBrokerCheck }),
}

var settingByName = func() map[string]*setting {
	m := make(map[string]*setting, len(settings))
	for _, s := range settings {
		m[s.name] = s
	}
	return m
}()

// secret environment variables: read only from the environment, never printed.
const (
	EnvTokens            = "TAGSTREAM_TOKENS"
	EnvConfig            = "TAGSTREAM_CONFIG"
	EnvNATSUser          = "TAGSTREAM_NATS_USER"
	EnvNATSPassword      = "TAGSTREAM_NATS_PASSWORD"
	EnvNATSToken         = "TAGSTREAM_NATS_TOKEN"
	EnvKafkaSASLPassword = "TAGSTREAM_KAFKA_SASL_PASSWORD"
)

// Keys returns the names of all settings in a group, in table order (for documentation and tests).
func Keys(g Group) []string {
	var out []string
	for _, s := range settings {
		if s.group&g != 0 {
			out = append(out, s.name)
		}
	}
	return out
}
