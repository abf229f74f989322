package config

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const secretToken = "1234567.deadbeefcafef00d5ec7e7t0ken"

// env describes one load: a config file body (written to a temp file when non-empty), environment variables
// and flags.
type env struct {
	file  string
	vars  map[string]string
	args  []string
	needs Needs
	group Group
}

// load runs a Loader the way the command does. A tokens file with one token is created and passed unless the
// test sets tokens itself.
func load(t *testing.T, e env) (*Config, error) {
	t.Helper()
	dir := t.TempDir()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	g := e.group
	if g == 0 {
		g = GroupAll
	}
	l := NewLoader(fs, g, e.needs, Defaults())
	args := append([]string{}, e.args...)
	if e.file != "" {
		p := filepath.Join(dir, "tagstream.yaml")
		if err := os.WriteFile(p, []byte(e.file), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--config", p)
	}
	if g&GroupState != 0 {
		args = append(args, "--state-dir", filepath.Join(dir, "state"))
	}
	if g&GroupSink != 0 {
		args = append(args, "--skip-broker-check")
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	var environ []string
	for k, v := range e.vars {
		environ = append(environ, k+"="+v)
	}
	return l.Load(environ)
}

func tokensFile(t *testing.T, body string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "creds")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadLayersFileEnvironmentAndFlags(t *testing.T) {
	tf := tokensFile(t, "# team tokens\n"+secretToken+"\n\nclient_id:abc123\n", 0o600)
	file := "tags: [sunset, coffee]\nrequests-per-hour: 100\nmin-interval: 3s\nsink: stdout\ntokens-file: " + tf + "\n"
	tests := []struct {
		name  string
		e     env
		check func(t *testing.T, c *Config)
	}{
		{
			name: "the file alone sets values and defaults fill the rest",
			e:    env{file: file},
			check: func(t *testing.T, c *Config) {
				if got := strings.Join(c.Tags, ","); got != "sunset,coffee" {
					t.Errorf("tags = %q", got)
				}
				if c.RequestsPerHour != 100 || c.MinInterval != 3*time.Second || c.PageSize != 33 {
					t.Errorf("requests-per-hour %d, min-interval %s, page-size %d", c.RequestsPerHour, c.MinInterval, c.PageSize)
				}
				if c.APIURL != "https://api.instagram.com/v1" {
					t.Errorf("api-url = %q", c.APIURL)
				}
				if len(c.Credentials) != 2 || c.Credentials[0].Value != secretToken || !c.Credentials[1].ClientID || c.Credentials[1].Value != "abc123" {
					t.Errorf("credentials = %d entries", len(c.Credentials))
				}
			},
		},
		{
			name: "an environment variable overrides the file",
			e:    env{file: file, vars: map[string]string{"TAGSTREAM_REQUESTS_PER_HOUR": "200", "TAGSTREAM_TAGS": "tea"}},
			check: func(t *testing.T, c *Config) {
				if c.RequestsPerHour != 200 || strings.Join(c.Tags, ",") != "tea" {
					t.Errorf("requests-per-hour %d, tags %v", c.RequestsPerHour, c.Tags)
				}
			},
		},
		{
			name: "a flag overrides the environment and the file",
			e:    env{file: file, vars: map[string]string{"TAGSTREAM_REQUESTS_PER_HOUR": "200"}, args: []string{"--requests-per-hour", "300", "--tags", "a,b,c"}},
			check: func(t *testing.T, c *Config) {
				if c.RequestsPerHour != 300 || len(c.Tags) != 3 {
					t.Errorf("requests-per-hour %d, tags %v", c.RequestsPerHour, c.Tags)
				}
			},
		},
		{
			name: "TAGSTREAM_TOKENS adds tokens separated by commas",
			e:    env{file: "tags: x\nsink: stdout\n", vars: map[string]string{EnvTokens: "tok1,tok2\ntok3"}},
			check: func(t *testing.T, c *Config) {
				if len(c.Credentials) != 3 {
					t.Errorf("credentials = %d, want 3", len(c.Credentials))
				}
			},
		},
		{
			name: "TAGSTREAM_CONFIG names the file when --config is absent",
			e:    env{vars: map[string]string{EnvConfig: writeTemp(t, file)}},
			check: func(t *testing.T, c *Config) {
				if c.RequestsPerHour != 100 {
					t.Errorf("requests-per-hour %d, want 100 from the file", c.RequestsPerHour)
				}
			},
		},
		{
			name: "a bool flag needs no value",
			e:    env{file: file, args: []string{"--attach-raw"}},
			check: func(t *testing.T, c *Config) {
				if !c.AttachRaw {
					t.Error("attach-raw not set")
				}
			},
		},
		{
			name: "an http URL on loopback is accepted and a trailing slash dropped",
			e:    env{file: file, args: []string{"--api-url", "http://127.0.0.1:8080/v1/"}},
			check: func(t *testing.T, c *Config) {
				if c.APIURL != "http://127.0.0.1:8080/v1" {
					t.Errorf("api-url = %q", c.APIURL)
				}
			},
		},
		{
			name: "a shared tokens file is accepted with a warning when allowed",
			e:    env{file: "tags: x\nsink: stdout\napi-url: https://api.example.com/v1\nallow-shared-tokens-file: true\ntokens-file: " + tokensFile(t, secretToken+"\n", 0o644) + "\n"},
			check: func(t *testing.T, c *Config) {
				if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "chmod 600") {
					t.Errorf("warnings = %q", c.Warnings)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.e.needs = Needs{Tags: true, Tokens: true}
			c, err := load(t, tt.e)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			tt.check(t, c)
		})
	}
}

func writeTemp(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadRejectsBadSettings(t *testing.T) {
	good := tokensFile(t, secretToken+"\n", 0o600)
	base := "sink: stdout\ntokens-file: " + good + "\n"
	tests := []struct {
		name     string
		e        env
		wantKey  string
		wantText []string
	}{
		{"an unknown key names the key and its line", env{file: base + "tags: x\nrequest-per-hour: 10\n"}, "request-per-hour", []string{"line 4", "unknown key", `did you mean "requests-per-hour"`}},
		{"a token as a config key is refused", env{file: base + "tags: x\ntokens: [abc]\n"}, "tokens", []string{"never go in the config file"}},
		{"a file that is not YAML is refused", env{file: "tags: [x\n"}, "config", []string{"not valid YAML"}},
		{"a missing config file is named", env{args: []string{"--config", "/nonexistent/t.yaml"}}, "config", []string{"no such file"}},
		{"a key given twice is refused", env{file: base + "tags: x\ntags: y\n"}, "tags", []string{"twice"}},
		{"a bad URL scheme is refused", env{file: base + "tags: x\napi-url: ftp://example.com/v1\n"}, "api-url", []string{"scheme must be https", "line 4"}},
		{"plain http off loopback is refused", env{file: base + "tags: x\n", args: []string{"--api-url", "http://example.com/v1"}}, "api-url", []string{"plain http", "--api-url"}},
		{"a URL without host is refused", env{file: base + "tags: x\n", args: []string{"--api-url", "https:///v1"}}, "api-url", []string{"no host"}},
		{"a URL with a query is refused", env{file: base + "tags: x\n", args: []string{"--api-url", "https://h/v1?access_token=x"}}, "api-url", []string{"query"}},
		{"no tags at all", env{file: base}, "tags", []string{"no tags"}},
		{"an empty tag in a list", env{file: base, args: []string{"--tags", "a,,b"}}, "tags", []string{"tag 2", "empty"}},
		{"a tag with a space", env{file: base, vars: map[string]string{"TAGSTREAM_TAGS": "new york"}}, "tags", []string{"TAGSTREAM_TAGS", "only letters"}},
		{"a tag with a hash sign", env{file: base + "tags: ['#coffee']\n"}, "tags", []string{"without '#'"}},
		{"a tag listed twice", env{file: base + "tags: [a, a]\n"}, "tags", []string{"twice"}},
		{"no tokens anywhere", env{file: "sink: stdout\ntags: x\n"}, "tokens-file", []string{"no tokens"}},
		{"an empty tokens file", env{file: "sink: stdout\ntags: x\ntokens-file: " + tokensFile(t, "# nothing\n\n", 0o600) + "\n"}, "tokens-file", []string{"holds no token"}},
		{"a missing tokens file", env{file: "sink: stdout\ntags: x\ntokens-file: /nonexistent/tok\n"}, "tokens-file", []string{"no such file"}},
		{"a tokens file others can read", env{file: "sink: stdout\ntags: x\ntokens-file: " + tokensFile(t, secretToken+"\n", 0o644) + "\n"}, "tokens-file", []string{"chmod 600", "0644"}},
		{"a token with a space", env{file: "sink: stdout\ntags: x\ntokens-file: " + tokensFile(t, "abc "+secretToken+"\n", 0o600) + "\n"}, "tokens-file", []string{"line 1", "value not shown"}},
		{"a bad duration", env{file: base + "tags: x\nmin-interval: fast\n"}, "min-interval", []string{"not a duration", "line 4"}},
		{"a negative duration", env{file: base + "tags: x\n", args: []string{"--min-interval", "-1s"}}, "min-interval", []string{"positive"}},
		{"max-interval below min-interval", env{file: base + "tags: x\nmin-interval: 1m\nmax-interval: 30s\n"}, "max-interval", []string{"shorter"}},
		{"a number that is not a number", env{file: base + "tags: x\nrequests-per-hour: many\n"}, "requests-per-hour", []string{"whole number"}},
		{"a zero budget", env{file: base + "tags: x\nrequests-per-hour: 0\n"}, "requests-per-hour", []string{"out of range"}},
		{"a rate window shorter than a second", env{file: base + "tags: x\nrate-window: 500ms\n"}, "rate-window", []string{"out of range 1s..24h"}},
		{"a page size above the API's maximum", env{file: base + "tags: x\npage-size: 50\n"}, "page-size", []string{"at most 33"}},
		{"an unknown sink", env{file: base + "tags: x\n", args: []string{"--sink", "redis"}}, "sink", []string{"not one of"}},
		{"a bad NATS URL", env{file: "tags: x\ntokens-file: " + good + "\nsink: jetstream\nnats-url: http://x:4222\n"}, "nats-url", []string{"scheme"}},
		{"a subject prefix with a wildcard", env{file: "tags: x\ntokens-file: " + good + "\nsink: nats\nsubject-prefix: a.*\n"}, "subject-prefix", []string{"wildcard"}},
		{"kafka without brokers", env{file: "tags: x\ntokens-file: " + good + "\nsink: kafka\n"}, "kafka-brokers", []string{"at least one broker"}},
		{"kafka broker without port", env{file: "tags: x\ntokens-file: " + good + "\nsink: kafka\nkafka-brokers: [kafka1]\n"}, "kafka-brokers", []string{"host:port"}},
		{"a bad kafka topic", env{file: "tags: x\ntokens-file: " + good + "\nsink: kafka\nkafka-brokers: a:9092\nkafka-topic: 'a topic'\n"}, "kafka-topic", []string{"only letters"}},
		{"a bad kafka compression", env{file: "tags: x\ntokens-file: " + good + "\nsink: kafka\nkafka-brokers: a:9092\nkafka-compression: brotli\n"}, "kafka-compression", []string{"not one of"}},
		{"SASL without a password", env{file: "tags: x\ntokens-file: " + good + "\nsink: kafka\nkafka-brokers: a:9092\nkafka-sasl-mechanism: plain\nkafka-sasl-user: u\n"}, "kafka-sasl-mechanism", []string{EnvKafkaSASLPassword}},
		{"the file sink without an output", env{file: "tags: x\ntokens-file: " + good + "\nsink: file\n"}, "output", []string{"needs an output"}},
		{"an output in a missing directory", env{file: "tags: x\ntokens-file: " + good + "\nsink: file\noutput: /nonexistent/dir/out.ndjson\n"}, "output", []string{"no such file"}},
		{"a bad metrics address", env{file: base + "tags: x\nmetrics-addr: localhost\n"}, "metrics-addr", []string{"host:port"}},
		{"a bad log format", env{file: base + "tags: x\nlog-format: xml\n"}, "log-format", []string{"not one of"}},
		{"a missing CA file", env{file: base + "tags: x\nca-file: /nonexistent/ca.pem\n"}, "ca-file", []string{"no such file"}},
		{"a CA file without certificates", env{file: base + "tags: x\nca-file: " + good + "\n"}, "ca-file", []string{"no PEM certificate"}},
		{"an unknown start mode", env{file: base + "tags: x\nstart: yesterday\n"}, "start", []string{"not now, backfill, an RFC 3339 time", "or a duration"}},
		{"a start time in the future", env{file: base + "tags: x\nstart: 2999-01-01T00:00:00Z\n"}, "start", []string{"in the future"}},
		{"a negative start duration", env{file: base + "tags: x\nstart: -24h\n"}, "start", []string{"must be positive"}},
		{"a bool that is not a bool", env{file: base + "tags: x\nattach-raw: sometimes\n"}, "attach-raw", []string{"true or false"}},
		{"a list for a single value", env{file: base + "tags: x\nstart: [now, backfill]\n"}, "start", []string{"not a list"}},
		{"a file that is a list", env{file: "- a\n- b\n"}, "config", []string{"mapping"}},
		{"an unknown checkpoint store", env{file: base + "tags: x\ncheckpoint-store: redis\n"}, "checkpoint-store", []string{"not one of"}},
		{"more catch-up pages than the poller holds", env{file: base + "tags: x\ncatch-up-pages: 1001\n"}, "catch-up-pages", []string{"out of range 1..1000"}},
		{"more backfill pages than one first poll walks", env{file: base + "tags: x\nstart: backfill\nbackfill-pages: 1001\n"}, "backfill-pages", []string{"1000"}},
		{"a tag longer than 100 characters", env{file: base + "tags: [" + strings.Repeat("a", 101) + "]\n"}, "tags", []string{"longer than 100 characters"}},
		{"a stream name with a dot", env{file: "tags: x\ntokens-file: " + good + "\nsink: jetstream\nstream: a.b\n"}, "stream", []string{"which stream names must not"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.e.needs = Needs{Tags: true, Tokens: true}
			_, err := load(t, tt.e)
			if err == nil {
				t.Fatal("load succeeded, want an error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %T %v is not a *Error", err, err)
			}
			if ce.Key != tt.wantKey {
				t.Errorf("key = %q, want %q (%v)", ce.Key, tt.wantKey, err)
			}
			msg := err.Error()
			for _, w := range tt.wantText {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q does not contain %q", msg, w)
				}
			}
			if strings.Contains(msg, secretToken) || strings.Contains(msg, "deadbeef") {
				t.Errorf("message %q contains the token", msg)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("message %q spans several lines", msg)
			}
		})
	}
}

func TestExampleConfigLoads(t *testing.T) {
	body, err := os.ReadFile("../../deploy/tagstream.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The example names system paths; point them at temp files so that only the syntax and keys are tested.
	text := strings.ReplaceAll(string(body), "/etc/tagstream/tokens", tokensFile(t, secretToken+"\n", 0o600))
	c, err := load(t, env{file: text, needs: Needs{Tags: true, Tokens: true}})
	if err != nil {
		t.Fatalf("the example config does not load: %v", err)
	}
	if len(c.Tags) != 3 || c.Sink != SinkJetStream || c.LogFormat != "json" {
		t.Errorf("tags %v, sink %s, log-format %s", c.Tags, c.Sink, c.LogFormat)
	}
	// Every key of the table appears in the example, so the example documents them all.
	for _, k := range Keys(GroupAll) {
		if k == "allow-insecure-http" || k == "allow-shared-tokens-file" || k == "skip-broker-check" {
			continue
		}
		if !strings.Contains(string(body), k+":") {
			t.Errorf("the example config does not mention %s", k)
		}
	}
}

func TestWarningsNameTheKeys(t *testing.T) {
	good := tokensFile(t, secretToken+"\n", 0o600)
	base := "tags: x\napi-url: https://api.example.com/v1\ntokens-file: " + good + "\n"
	tests := []struct {
		name string
		file string
		want string // "" = no warning
	}{
		{"jetstream-kv with the default dead-letter file is warned about", base + "sink: kafka\nkafka-brokers: k:9092\ncheckpoint-store: jetstream-kv\n",
			"dead-letter is empty and checkpoint-store is jetstream-kv"},
		{"a dead-letter subject silences it", base + "sink: jetstream\ncheckpoint-store: jetstream-kv\ndead-letter: tagstream.dead\n", ""},
		{"the bolt store keeps state-dir on a volume", base + "sink: jetstream\n", ""},
		{"the file sink has no dead letters", base + "sink: file\noutput: " + filepath.Join(t.TempDir(), "o") + "\ncheckpoint-store: jetstream-kv\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := load(t, env{file: tt.file, needs: Needs{Tags: true, Tokens: true}})
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join(c.Warnings, "\n")
			if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
				t.Errorf("warnings %q, want %q", got, tt.want)
			}
		})
	}
}

func TestStreamIsNamedOnlyWhenSet(t *testing.T) {
	good := tokensFile(t, secretToken+"\n", 0o600)
	for _, tt := range []struct{ file, want string }{
		{"tags: x\ntokens-file: " + good + "\n", ""},
		{"tags: x\ntokens-file: " + good + "\nstream: EVENTS\n", "EVENTS"},
	} {
		c, err := load(t, env{file: tt.file, needs: Needs{Tags: true, Tokens: true}})
		if err != nil {
			t.Fatal(err)
		}
		if c.Stream != tt.want {
			t.Errorf("stream %q, want %q", c.Stream, tt.want)
		}
	}
}

func TestKeysOfOtherCommandsAreIgnored(t *testing.T) {
	// tail reads only the sink settings; a shared config file with tags and tokens-file must still load.
	_, err := load(t, env{file: "tags: x\ntokens-file: /nonexistent\nsink: stdout\n", group: GroupSink | GroupOps})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
}

func TestCredentialsNeverPrint(t *testing.T) {
	c := Credential{Value: secretToken}
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%v %+v %#v %s", c, c, c, c), fmt.Sprint([]Credential{c})} {
		if strings.Contains(s, secretToken) {
			t.Errorf("%q prints the token", s)
		}
	}
}

func TestCheckReachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := closed.Addr().String()
	closed.Close()
	tests := []struct {
		name    string
		cfg     Config
		wantKey string
	}{
		{"a listening NATS address passes", Config{Sink: SinkJetStream, NATSURL: "nats://" + ln.Addr().String()}, ""},
		{"a cluster with one live server passes", Config{Sink: SinkNATS, NATSURL: "nats://" + deadAddr + ",nats://" + ln.Addr().String()}, ""},
		{"a dead NATS address fails on nats-url", Config{Sink: SinkJetStream, NATSURL: "nats://" + deadAddr}, "nats-url"},
		{"a dead Kafka broker fails on kafka-brokers", Config{Sink: SinkKafka, KafkaBrokers: []string{deadAddr}}, "kafka-brokers"},
		{"a live Kafka broker passes", Config{Sink: SinkKafka, KafkaBrokers: []string{ln.Addr().String()}}, ""},
		{"the KV store needs NATS even with a file sink", Config{Sink: SinkFile, CheckpointStore: StoreJetStreamKV, NATSURL: deadAddr}, "nats-url"},
		{"stdout needs no broker", Config{Sink: SinkStdout, NATSURL: deadAddr}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.ConnectTimeout = 2 * time.Second
			err := CheckReachable(context.Background(), &tt.cfg)
			if tt.wantKey == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrUnreachable) || errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "("+tt.wantKey+")") {
				t.Fatalf("error = %v, want ErrUnreachable (not ErrInvalid) naming %s", err, tt.wantKey)
			}
			if !strings.Contains(err.Error(), "connection refused") {
				t.Errorf("error %q does not say why", err)
			}
		})
	}
}

func FuzzLoadFile(f *testing.F) {
	f.Add("tags: [a]\nsink: stdout\n")
	f.Add("api-url: ::\n")
	f.Add("- x\n")
	f.Add("tags: &a [x]\nkafka-brokers: *a\n")
	f.Fuzz(func(t *testing.T, body string) {
		dir := t.TempDir()
		p := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		fs := flag.NewFlagSet("fuzz", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		l := NewLoader(fs, GroupAll, Needs{}, Defaults())
		if err := fs.Parse([]string{"--config", p, "--state-dir", dir}); err != nil {
			t.Fatal(err)
		}
		_, err := l.Load(nil)
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Fatalf("error %v is not a configuration error", err)
		}
	})
}

func TestDevicesAreRefusedQuickly(t *testing.T) {
	tf := tokensFile(t, secretToken+"\n", 0o600)
	tests := []struct {
		name, file, key string
	}{
		{"a CA file that is a device", "tags: x\nsink: stdout\ntokens-file: " + tf + "\nca-file: /dev/zero\n", "ca-file"},
		{"a tokens file that is a device", "tags: x\nsink: stdout\ntokens-file: /dev/zero\n", "tokens-file"},
		{"a tokens file that is a directory", "tags: x\nsink: stdout\ntokens-file: " + t.TempDir() + "\n", "tokens-file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, env{file: tt.file, needs: Needs{Tags: true, Tokens: true}})
			var ce *Error
			if !errors.As(err, &ce) || ce.Key != tt.key || !strings.Contains(err.Error(), "not a regular file") {
				t.Fatalf("error = %v, want a *Error on %s saying it is not a regular file", err, tt.key)
			}
		})
	}
}

func TestEveryKeyIsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range Keys(GroupAll) {
		if !strings.Contains(string(doc), "`"+k+"`") {
			t.Errorf("docs/configuration.md does not document %s", k)
		}
	}
}
