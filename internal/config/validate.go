package config

import (
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"
)

type validator struct {
	c      *Config
	origin map[string]string
	groups Group
	needs  Needs
}

func (v *validator) fail(key, format string, args ...any) error {
	return &Error{Key: key, Origin: originOf(v.origin, key), Problem: fmt.Sprintf(format, args...)}
}

func (v *validator) oneOf(key, val string, allowed ...string) error {
	for _, a := range allowed {
		if val == a {
			return nil
		}
	}
	return v.fail(key, "%q is not one of %s", val, strings.Join(allowed, ", "))
}

// choice checks val against the values the setting key declares (settings.go), the same list its help shows.
func (v *validator) choice(key, val string) error {
	s := settingByName[key]
	if s.accepts(val) {
		return nil
	}
	names := make([]string, len(s.values))
	for i, c := range s.values {
		names[i] = c.value
		if c.value == "" {
			names[i] = `"" (none)`
		}
	}
	return v.fail(key, "%q is not one of %s", val, strings.Join(names, ", "))
}

// validate checks every setting of the loader's groups. It returns the first problem.
func (v *validator) validate() error {
	c := v.c
	if v.groups&GroupAPI != 0 {
		if err := v.api(); err != nil {
			return err
		}
	}
	if c.CAFile != "" && v.groups&(GroupAPI|GroupSink|GroupCluster) != 0 {
		if err := checkCAFile(c.CAFile); err != nil {
			return v.fail("ca-file", "%v", err)
		}
	}
	if v.groups&GroupSink != 0 {
		if err := v.sink(); err != nil {
			return err
		}
	}
	if v.groups&GroupState != 0 {
		if err := v.state(); err != nil {
			return err
		}
	}
	if v.groups&GroupOps != 0 {
		if err := v.ops(); err != nil {
			return err
		}
	}
	if v.groups&GroupCluster != 0 {
		if err := v.cluster(); err != nil {
			return err
		}
	}
	v.warn()
	return nil
}

// warn adds the remarks about settings that are valid but probably not what was meant.
func (v *validator) warn() {
	c := v.c
	if v.groups&GroupAPI != 0 {
		if u, err := url.Parse(c.APIURL); err == nil && strings.EqualFold(u.Hostname(), "api.instagram.com") {
			c.Warnings = append(c.Warnings, fmt.Sprintf("api-url (%s) is the Instagram v1 API, switched off in 2020: nothing "+
				"answers there; point api-url at a compatible API, or try tagstream against the simulator "+
				"(tagstream demo --keep-running)", originOf(v.origin, "api-url")))
		}
	}
	if v.groups&GroupSink != 0 && v.groups&GroupState != 0 && c.Sink.IsBroker() && c.DeadLetter == "" &&
		c.CheckpointStore == StoreJetStreamKV && strings.TrimSpace(c.StateDir) != "" {
		c.Warnings = append(c.Warnings, fmt.Sprintf("dead-letter is empty and checkpoint-store is %s: events the broker refuses "+
			"go to %s, which is lost with the container unless state-dir is on a persistent volume; set dead-letter to a "+
			"subject or topic", StoreJetStreamKV, filepath.Join(c.StateDir, DeadLetterFile)))
	}
}

func (v *validator) api() error {
	c := v.c
	if err := checkBaseURL(c.APIURL, c.AllowInsecureHTTP); err != nil {
		return v.fail("api-url", "%v", err)
	}
	c.APIURL = strings.TrimRight(c.APIURL, "/")
	if v.needs.Tags && len(c.Tags) == 0 && (c.Group == "" || v.groups&GroupCluster == 0) {
		return v.fail("tags", "no tags to follow; give at least one (--tags coffee,tea)")
	}
	seen := map[string]bool{}
	for i, t := range c.Tags {
		if err := checkTag(t); err != nil {
			return v.fail("tags", "tag %d: %v", i+1, err)
		}
		if seen[t] {
			return v.fail("tags", "tag %q is listed twice", t)
		}
		seen[t] = true
	}
	if v.needs.Tokens && len(c.Credentials) == 0 {
		origin := "no tokens-file and no " + EnvTokens
		if c.TokensFile != "" {
			origin = c.TokensFile + " holds no token"
		}
		return &Error{Key: "tokens-file", Origin: originOf(v.origin, "tokens-file"), Problem: "no tokens: " + origin + "; put one access token per line in a file readable only by you and pass --tokens-file"}
	}
	if c.RequestsPerHour < 1 || c.RequestsPerHour > 1_000_000 {
		return v.fail("requests-per-hour", "%d is out of range 1..1000000", c.RequestsPerHour)
	}
	if c.RateWindow < time.Second || c.RateWindow > 24*time.Hour {
		return v.fail("rate-window", "%s is out of range 1s..24h", c.RateWindow)
	}
	if c.PageSize < 1 || c.PageSize > 33 {
		return v.fail("page-size", "%d is out of range 1..33 (the API serves at most 33)", c.PageSize)
	}
	if c.CatchUpPages < 1 || c.CatchUpPages > maxCatchUpPages {
		return v.fail("catch-up-pages", "%d is out of range 1..%d", c.CatchUpPages, maxCatchUpPages)
	}
	at := c.StartedAt
	if at.IsZero() {
		at = time.Now()
	}
	if _, err := ParseStart(c.Start, at); err != nil {
		return v.fail("start", "%v", err)
	}
	if c.BackfillPages < 0 || (c.Start == "backfill" && c.BackfillPages < 1) {
		return v.fail("backfill-pages", "%d: start=backfill needs at least 1 page", c.BackfillPages)
	}
	if c.BackfillPages > maxBackfillPages {
		return v.fail("backfill-pages", "%d is above the most one first poll walks, %d", c.BackfillPages, maxBackfillPages)
	}
	if c.MinInterval <= 0 {
		return v.fail("min-interval", "%s must be positive", c.MinInterval)
	}
	if c.MaxInterval < c.MinInterval {
		return v.fail("max-interval", "%s is shorter than min-interval %s", c.MaxInterval, c.MinInterval)
	}
	if c.RequestTimeout <= 0 {
		return v.fail("request-timeout", "%s must be positive", c.RequestTimeout)
	}
	if strings.TrimSpace(c.Source) == "" || strings.ContainsAny(c.Source, " \t\r\n") {
		return v.fail("source", "%q must be a non-empty URI reference without spaces", c.Source)
	}
	return nil
}

func (v *validator) sink() error {
	c := v.c
	if err := v.choice("sink", string(c.Sink)); err != nil {
		return err
	}
	if c.ConnectTimeout <= 0 {
		return v.fail("connect-timeout", "%s must be positive", c.ConnectTimeout)
	}
	switch c.Sink {
	case SinkJetStream, SinkNATS:
		if err := v.nats(); err != nil {
			return err
		}
		if err := checkSubjectPrefix(c.SubjectPrefix); err != nil {
			return v.fail("subject-prefix", "%v", err)
		}
		if c.Sink == SinkJetStream {
			if c.Stream != "" {
				if err := checkStreamName(c.Stream); err != nil {
					return v.fail("stream", "%v", err)
				}
			}
			if err := v.choice("stream-storage", c.StreamStorage); err != nil {
				return err
			}
			if c.Replicas < 1 || c.Replicas > 5 {
				return v.fail("replicas", "%d is out of range 1..5", c.Replicas)
			}
			if c.DuplicateWindow <= 0 {
				return v.fail("duplicate-window", "%s must be positive", c.DuplicateWindow)
			}
		}
		if c.DeadLetter != "" {
			if err := checkSubject(c.DeadLetter); err != nil {
				return v.fail("dead-letter", "%v", err)
			}
			if c.DeadLetter == c.SubjectPrefix || strings.HasPrefix(c.DeadLetter, c.SubjectPrefix+".") {
				return v.fail("dead-letter", "%q is inside subject-prefix %q: dead letters would look like events", c.DeadLetter, c.SubjectPrefix)
			}
		}
	case SinkKafka:
		if len(c.KafkaBrokers) == 0 {
			return v.fail("kafka-brokers", "sink=kafka needs at least one broker host:port")
		}
		for _, b := range c.KafkaBrokers {
			if err := validateHostPort(b); err != nil {
				return v.fail("kafka-brokers", "%q: %v", b, err)
			}
		}
		if err := checkTopic(c.KafkaTopic); err != nil {
			return v.fail("kafka-topic", "%v", err)
		}
		if err := v.choice("kafka-compression", c.KafkaCompression); err != nil {
			return err
		}
		if err := v.choice("kafka-key", c.KafkaKey); err != nil {
			return err
		}
		if !settingByName["kafka-acks"].accepts(c.KafkaAcks) {
			return v.fail("kafka-acks", "%q: only all is supported (an event counts as published once every in-sync replica has it)", c.KafkaAcks)
		}
		if err := v.choice("kafka-content-mode", c.KafkaContentMode); err != nil {
			return err
		}
		if c.KafkaPartitions < 1 {
			return v.fail("kafka-partitions", "%d must be at least 1", c.KafkaPartitions)
		}
		if c.KafkaReplicationFactor < 1 {
			return v.fail("kafka-replication-factor", "%d must be at least 1", c.KafkaReplicationFactor)
		}
		if err := v.choice("kafka-sasl-mechanism", c.KafkaSASLMechanism); err != nil {
			return err
		}
		if c.KafkaSASLMechanism != "" {
			if c.KafkaSASLUser == "" {
				return v.fail("kafka-sasl-user", "kafka-sasl-mechanism %s needs a user", c.KafkaSASLMechanism)
			}
			if c.KafkaSASLPassword == "" {
				return &Error{Key: "kafka-sasl-mechanism", Origin: originOf(v.origin, "kafka-sasl-mechanism"), Problem: "SASL needs a password in " + EnvKafkaSASLPassword}
			}
		}
		if (c.KafkaCertFile == "") != (c.KafkaKeyFile == "") {
			return v.fail("kafka-cert-file", "kafka-cert-file and kafka-key-file go together")
		}
		for _, k := range []struct{ key, path string }{{"kafka-cert-file", c.KafkaCertFile}, {"kafka-key-file", c.KafkaKeyFile}} {
			if k.path != "" {
				if _, err := os.Stat(k.path); err != nil {
					return v.fail(k.key, "cannot read %s: %s", k.path, describeFileErr(err))
				}
			}
		}
		if c.DeadLetter != "" {
			if err := checkTopic(c.DeadLetter); err != nil {
				return v.fail("dead-letter", "%v", err)
			}
			if c.DeadLetter == c.KafkaTopic {
				return v.fail("dead-letter", "%q is the events topic itself", c.DeadLetter)
			}
		}
	case SinkFile:
		if c.Output == "" {
			return v.fail("output", "sink=file needs an output path")
		}
		if err := checkParentDir(c.Output); err != nil {
			return v.fail("output", "%v", err)
		}
		fallthrough
	case SinkStdout:
		if c.DeadLetter != "" {
			return v.fail("dead-letter", "sink=%s never refuses an event; dead-letter applies to jetstream, nats and kafka", c.Sink)
		}
	}
	return nil
}

func (v *validator) nats() error {
	c := v.c
	if _, err := ParseNATSURLs(c.NATSURL); err != nil {
		return v.fail("nats-url", "%v", err)
	}
	for _, k := range []struct{ key, path string }{{"nats-creds-file", c.NATSCredsFile}, {"nats-nkey-file", c.NATSNKeyFile}} {
		if k.path != "" {
			if _, err := os.Stat(k.path); err != nil {
				return v.fail(k.key, "cannot read %s: %s", k.path, describeFileErr(err))
			}
		}
	}
	if c.NATSCredsFile != "" && c.NATSNKeyFile != "" {
		return v.fail("nats-nkey-file", "use nats-creds-file or nats-nkey-file, not both")
	}
	return nil
}

func (v *validator) state() error {
	c := v.c
	if err := v.choice("checkpoint-store", string(c.CheckpointStore)); err != nil {
		return err
	}
	switch c.CheckpointStore {
	case StoreBolt:
		if strings.TrimSpace(c.StateDir) == "" {
			return v.fail("state-dir", "checkpoint-store=bolt needs a directory (the default, $XDG_STATE_HOME/tagstream or ~/.local/state/tagstream, needs XDG_STATE_HOME or HOME)")
		}
		st, err := os.Stat(c.StateDir)
		switch {
		case err == nil && !st.IsDir():
			return v.fail("state-dir", "%s exists and is not a directory", c.StateDir)
		case err == nil:
			if err := checkWritable(c.StateDir); err != nil {
				return v.fail("state-dir", "%v", err)
			}
		case !os.IsNotExist(err):
			return v.fail("state-dir", "%s: %s", c.StateDir, describeFileErr(err))
		case strings.HasPrefix(originOf(v.origin, "state-dir"), "default"):
			// The default (~/.local/state/tagstream) is created with its parents, as XDG directories are.
			parent := nearestDir(c.StateDir)
			if err := checkWritable(parent); err != nil {
				return v.fail("state-dir", "%s cannot be created: %v", c.StateDir, err)
			}
		default:
			if err := checkParentDir(c.StateDir); err != nil {
				return v.fail("state-dir", "cannot be created: %v", err)
			}
			if err := checkWritable(filepath.Dir(filepath.Clean(c.StateDir))); err != nil {
				return v.fail("state-dir", "%s cannot be created: %v", c.StateDir, err)
			}
		}
	case StoreJetStreamKV:
		if v.groups&GroupSink == 0 || !c.Sink.UsesNATS() {
			if _, err := ParseNATSURLs(c.NATSURL); err != nil {
				return v.fail("nats-url", "%v", err)
			}
		}
		if c.KVBucket == "" || strings.ContainsFunc(c.KVBucket, func(r rune) bool {
			return !(r == '-' || r == '_' || r < 0x80 && (unicode.IsLetter(r) || unicode.IsDigit(r)))
		}) {
			return v.fail("kv-bucket", "%q must be letters, digits, '-' or '_'", c.KVBucket)
		}
	}
	return nil
}

func (v *validator) ops() error {
	c := v.c
	if c.MetricsAddr != "" {
		if err := validateListenAddr(c.MetricsAddr); err != nil {
			return v.fail("metrics-addr", "%q: %v", c.MetricsAddr, err)
		}
	}
	if err := v.choice("log-format", c.LogFormat); err != nil {
		return err
	}
	if err := v.choice("log-level", strings.ToLower(c.LogLevel)); err != nil {
		return err
	}
	if c.ShutdownTimeout <= 0 {
		return v.fail("shutdown-timeout", "%s must be positive", c.ShutdownTimeout)
	}
	return nil
}

// ParseNATSURLs checks a comma-separated list of NATS URLs and returns them.
func ParseNATSURLs(raw string) ([]string, error) {
	var out []string
	for _, s := range strings.Split(raw, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !strings.Contains(s, "://") {
			s = "nats://" + s
		}
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not a URL", s)
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return nil, fmt.Errorf("%q: scheme must be nats, tls, ws or wss", s)
		}
		if u.Hostname() == "" {
			return nil, fmt.Errorf("%q has no host", s)
		}
		if p := u.Port(); p != "" {
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				return nil, fmt.Errorf("%q has an invalid port", s)
			}
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no NATS URL given")
	}
	return out, nil
}

func validateHostPort(hp string) error {
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		return fmt.Errorf("expected host:port")
	}
	if host == "" {
		return fmt.Errorf("no host")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("invalid port %q", port)
	}
	return nil
}

func validateListenAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("expected host:port or :port")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("invalid port %q", port)
	}
	return nil
}

func checkCAFile(path string) error {
	data, err := readSmallFile(path, 4<<20)
	if err != nil {
		return err
	}
	if !x509.NewCertPool().AppendCertsFromPEM(data) {
		return fmt.Errorf("%s holds no PEM certificate", path)
	}
	return nil
}

// nearestDir returns the nearest existing ancestor of path.
func nearestDir(path string) string {
	dir := filepath.Dir(filepath.Clean(path))
	for {
		if st, err := os.Stat(dir); err == nil && st.IsDir() {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return dir
		}
		dir = parent
	}
}

// checkParentDir reports whether the directory that would hold path exists.
func checkParentDir(path string) error {
	dir := filepath.Dir(filepath.Clean(path))
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("directory %s: %s", dir, describeFileErr(err))
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	return nil
}

// readSmallFile reads a regular file of at most limit bytes; a device, a directory or a larger file is refused
// (reading /dev/zero as a CA bundle must not hang the command).
func readSmallFile(path string, limit int64) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %s", path, describeFileErr(err))
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %s", path, describeFileErr(err))
	}
	return data, nil
}

// checkWritable reports whether a file can be created in dir, by creating and removing one.
func checkWritable(dir string) error {
	f, err := os.CreateTemp(dir, ".tagstream-write-check-*")
	if err != nil {
		return fmt.Errorf("directory %s is not writable: %s", dir, describeFileErr(err))
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}
