package main

// These tests run the command in-process (cli.main), without building the binary; the tests of the built binary
// (signals, restarts, the demo) are in e2e/.

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tagstream/tagstream/internal/config"
	"github.com/tagstream/tagstream/internal/pipeline"
	"github.com/tagstream/tagstream/internal/testkit"
	"github.com/tagstream/tagstream/internal/testkit/simkit"
	"github.com/tagstream/tagstream/testenv"
)

// TestMain runs more tests at once than there are cores: most of them wait for a pipeline, a group member or
// the simulator.
func TestMain(m *testing.M) {
	testkit.ParallelWaiters(8)
	os.Exit(m.Run())
}

// secretTokens are the tokens of the tests; none of them may ever appear in any output.
var secretTokens = []string{"1111111.aaaasecrettokenaaaa0001", "2222222.bbbbsecrettokenbbbb0002", "3333333.ccccsecrettokencccc0003"}

// result is the outcome of one command.
type result struct {
	code           int
	stdout, stderr string
}

// run runs the command in-process with env as its whole environment and checks that no token was printed.
func run(t *testing.T, env []string, args ...string) result {
	t.Helper()
	var out, errb testkit.SyncBuffer
	c := &cli{stdout: &out, stderr: &errb, environ: env}
	r := result{code: c.main(args), stdout: out.String(), stderr: errb.String()}
	for _, tok := range secretTokens {
		if strings.Contains(r.stdout+r.stderr, tok) || strings.Contains(r.stdout+r.stderr, tok[8:]) {
			t.Errorf("the output of %v contains a token:\n%s%s", args, r.stdout, r.stderr)
		}
	}
	return r
}

// startSim starts the simulator with the test tokens (two access tokens, one client id) and still tags.
func startSim(t *testing.T, tags ...string) *testenv.Server {
	t.Helper()
	return simkit.StartSim(t, simkit.SimOptions{Tokens: secretTokens[:2], ClientIDs: secretTokens[2:], Tags: tags})
}

func TestHelpAndVersion(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		args     []string
		wantCode int
		stdout   []string
		stderr   string
	}{
		{"version prints the version, the Go version and the embedded modules", []string{"version"}, 0, []string{"tagstream ", "go1.", "dep\tgithub.com/nats-io/nats.go\tv"}, ""},
		{"help lists the commands", []string{"--help"}, 0, []string{"demo", "run", "tail", "check", "status", "version"}, ""},
		{"help of a command goes to stdout", []string{"help", "tail"}, 0, []string{"Usage: tagstream tail"}, ""},
		{"run --help lists its flags", []string{"run", "--help"}, 0, []string{"-api-url", "-tokens-file", "-requests-per-hour", "default 5000", "-sink", "-kafka-brokers", "-state-dir", "-metrics-addr", "-ca-file", "-subject-prefix", "-nats-url", "-kafka-topic", "-config", "keeps trying", "none, gzip, snappy, lz4 or zstd"}, ""},
		{"demo --help explains the demo", []string{"demo", "--help"}, 0, []string{"-duration", "simulator"}, ""},
		{"tail --help lists its flags", []string{"tail", "--help"}, 0, []string{"-tag", "-from-beginning", "-json"}, ""},
		{"check --help explains every exit status", []string{"check", "--help"}, 0, []string{"Exit status", "0  everything passed", "2  the configuration is invalid", "3  only a broker could not be reached"}, ""},
		{"an unknown command is a usage error", []string{"frobnicate"}, 2, nil, "unknown command"},
		{"no command is a usage error", nil, 2, nil, "Usage"},
		{"a stray argument is a usage error", []string{"version", "extra"}, 2, nil, `unexpected argument "extra"`},
		{"a demo flag out of range is a usage error", []string{"demo", "--tokens", "0"}, 2, nil, "tokens (--tokens): 0 is out of range"},
		{"tail refuses the file sink", []string{"tail", "--sink", "file", "--output", "/tmp/x"}, 2, nil, "tail reads jetstream, nats or kafka"},
		{"tail refuses history on core NATS", []string{"tail", "--sink", "nats", "--from-beginning"}, 2, nil, "core NATS keeps no history"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := run(t, nil, tt.args...)
			if r.code != tt.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, tt.wantCode, r.stdout, r.stderr)
			}
			for _, w := range tt.stdout {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("stdout does not contain %q:\n%s", w, r.stdout)
				}
			}
			if !strings.Contains(r.stderr, tt.stderr) {
				t.Errorf("stderr does not contain %q:\n%s", tt.stderr, r.stderr)
			}
		})
	}
}

func TestBadConfigurationExitsWithStatusTwo(t *testing.T) {
	t.Parallel()
	sim := startSim(t, "sunset")
	good := testkit.WriteTokens(t, secretTokens[0])
	shared := testkit.WriteTokens(t, secretTokens[0])
	os.Chmod(shared, 0o644)
	empty := testkit.WriteTokens(t)
	dir := t.TempDir()
	unknownKey := filepath.Join(dir, "unknown.yaml")
	os.WriteFile(unknownKey, []byte("tags: [sunset]\nsink: stdout\npoll-every: 5s\n"), 0o600)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	// A tagstream that holds a state directory.
	locked := filepath.Join(dir, "locked")
	holder := config.Defaults()
	holder.Sink, holder.StateDir = config.SinkStdout, locked
	p, err := pipeline.New(t.Context(), &holder, pipeline.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	common := func(extra ...string) []string {
		return append([]string{"run", "--api-url", sim.URL(), "--ca-file", sim.CAFile(), "--state-dir", filepath.Join(dir, "state")}, extra...)
	}
	tests := []struct {
		name string
		args []string
		env  []string
		want []string
	}{
		{"an unknown key in the file names the key and its line", common("--config", unknownKey, "--tokens-file", good), nil, []string{"poll-every", "line 3", "unknown key"}},
		{"a missing config file", common("--config", filepath.Join(dir, "none.yaml")), nil, []string{"config", "no such file"}},
		{"an unknown flag", common("--token", "x"), nil, []string{"flag provided but not defined: -token"}},
		{"a bad API URL", []string{"run", "--api-url", "ftp://x/v1", "--tags", "a", "--tokens-file", good, "--sink", "stdout"}, nil, []string{"api-url", "scheme must be https"}},
		{"plain http to a remote host", []string{"run", "--api-url", "http://api.example.com/v1", "--tags", "a", "--tokens-file", good, "--sink", "stdout"}, nil, []string{"api-url", "plain http"}},
		{"no tokens", common("--tags", "sunset", "--sink", "stdout"), nil, []string{"tokens-file", "no tokens"}},
		{"an empty tokens file", common("--tags", "sunset", "--sink", "stdout", "--tokens-file", empty), nil, []string{"tokens-file", "holds no token"}},
		{"a tokens file others can read", common("--tags", "sunset", "--sink", "stdout", "--tokens-file", shared), nil, []string{"tokens-file", "chmod 600"}},
		{"a bad token in TAGSTREAM_TOKENS", common("--tags", "sunset", "--sink", "stdout"), []string{"TAGSTREAM_TOKENS=abc def"}, []string{"TAGSTREAM_TOKENS", "value not shown"}},
		{"no tags", common("--tokens-file", good, "--sink", "stdout"), nil, []string{"tags", "no tags"}},
		{"an empty tag", common("--tags", "sunset,,tea", "--tokens-file", good, "--sink", "stdout"), nil, []string{"tags", "empty"}},
		{"an invalid tag", common("--tags", "new york", "--tokens-file", good, "--sink", "stdout"), nil, []string{"tags", "only letters"}},
		{"an invalid tag from the environment", common("--tokens-file", good, "--sink", "stdout"), []string{"TAGSTREAM_TAGS=a/b"}, []string{"TAGSTREAM_TAGS", "only letters"}},
		{"a misspelt variable is named before the error it causes", common("--tokens-file", good, "--sink", "stdout"), []string{"TAGSTREAM_TAG=coffee"},
			[]string{"tagstream: warning: environment variable TAGSTREAM_TAG is not a tagstream setting and is ignored (did you mean TAGSTREAM_TAGS?)\ntagstream: config: tags (default): no tags"}},
		{"a bad duration", common("--tags", "sunset", "--tokens-file", good, "--sink", "stdout", "--min-interval", "soon"), nil, []string{"min-interval", "not a duration"}},
		{"an unknown sink", common("--tags", "sunset", "--tokens-file", good, "--sink", "kinesis"), nil, []string{"sink", "not one of"}},
		{"a metrics address in use", common("--tags", "sunset", "--tokens-file", good, "--sink", "stdout", "--metrics-addr", busy.Addr().String()), nil, []string{"metrics-addr", "address already in use"}},
		{"a CA file that is not PEM", common("--tags", "sunset", "--tokens-file", good, "--sink", "stdout", "--ca-file", good), nil, []string{"ca-file", "no PEM"}},
		{"a state directory another tagstream uses", []string{"run", "--api-url", sim.URL(), "--ca-file", sim.CAFile(), "--tags", "sunset", "--tokens-file", good, "--sink", "stdout", "--state-dir", locked}, nil, []string{"state-dir", "another tagstream"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, tt.env, tt.args...)
			if r.code != 2 {
				t.Fatalf("exit status %d, want 2\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr does not contain %q:\n%s", w, r.stderr)
				}
			}
			if tt.name != "an unknown flag" && !strings.Contains(r.stderr, "warning") && strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
				t.Errorf("the message spans several lines:\n%s", r.stderr)
			}
		})
	}
	if st := sim.Stats(); st.Requests != 0 {
		t.Errorf("a bad configuration made %d API requests; validation must come before any work", st.Requests)
	}
}

func TestRunExitsOneWhenEveryTokenIsRevoked(t *testing.T) {
	t.Parallel()
	sim := startSim(t, "sunset")
	sim.RevokeToken(secretTokens[0])
	sim.RevokeToken(secretTokens[1])
	tokens := testkit.WriteTokens(t, secretTokens[0], secretTokens[1])
	r := run(t, nil, "run", "--api-url", sim.URL(), "--ca-file", sim.CAFile(), "--tokens-file", tokens, "--tags", "sunset",
		"--state-dir", filepath.Join(t.TempDir(), "state"), "--sink", "stdout", "--min-interval", "200ms", "--max-interval", "1s")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\nstderr: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "retired") {
		t.Errorf("stderr does not say the tokens were retired:\n%s", r.stderr)
	}
}

func TestCheckExitStatusSaysWhatFailed(t *testing.T) {
	t.Parallel()
	sim := startSim(t, "sunset")
	ns := testkit.StartNATS(t)
	good := testkit.WriteTokens(t, secretTokens[0])
	revoked := testkit.WriteTokens(t, secretTokens[1])
	sim.RevokeToken(secretTokens[1])
	dir := t.TempDir()
	args := func(tokens string, extra ...string) []string {
		return append([]string{"check", "--api-url", sim.URL(), "--ca-file", sim.CAFile(), "--tags", "sunset",
			"--tokens-file", tokens, "--state-dir", dir, "--nats-url", ns.ClientURL()}, extra...)
	}
	tests := []struct {
		name     string
		args     []string
		env      []string
		wantCode int
		want     []string
	}{
		{"a good configuration passes every check", args(good), nil, 0, []string{"ok    config", "ok    api", "budget", "of 5000 left", "ok    sink", "run creates stream TAGSTREAM", "ok    state"}},
		{"a revoked token fails the API check", args(revoked), nil, 1, []string{"FAIL  api", "invalid or revoked", "ok    sink"}},
		{"a stream that must exist but does not fails the sink check", args(good, "--create-stream=false"), nil, 1, []string{"ok    api", "FAIL  sink", "create-stream is off"}},
		{"an unreachable broker exits 3", args(good, "--nats-url", "nats://"+testkit.FreeAddr(t)), nil, 3, []string{"ok    api", "FAIL  sink: pipeline: broker unreachable"}},
		{"an unreachable broker and a failed check exit 1", args(revoked, "--nats-url", "nats://"+testkit.FreeAddr(t)), nil, 1, []string{"FAIL  api", "FAIL  sink: pipeline: broker unreachable"}},
		{"the KV store without a dead-letter destination is warned about", args(good, "--checkpoint-store", "jetstream-kv"), nil, 0, []string{"warn  dead-letter is empty and checkpoint-store is jetstream-kv", "set dead-letter to a subject or topic", "KV bucket tagstream_cursors does not exist yet"}},
		{"the file sink needs no broker", args(good, "--sink", "file", "--output", filepath.Join(dir, "out.ndjson")), nil, 0, []string{"ok    sink: events will be appended"}},
		{"an invalid configuration exits 2", args(good, "--page-size", "100"), nil, 2, nil},
		{"an API that is not there is refused, with what to look at", args(good, "--api-url", "https://"+testkit.FreeAddr(t)+"/v1"), nil, 1,
			[]string{"FAIL  api: connection refused (GET https://127.0.0.1:", "/v1/tags/sunset/media/recent)\n      refused: nothing listens at"}},
		{"an API whose certificate is not trusted is a TLS problem", args(good, "--ca-file", ""), nil, 1,
			[]string{"FAIL  api: TLS: ", "give the CA that signed it in ca-file"}},
		{"a misspelt environment variable is named", args(good), []string{"TAGSTREAM_MIN_INTERVALL=5s"}, 0,
			[]string{"warn  environment variable TAGSTREAM_MIN_INTERVALL is not a tagstream setting and is ignored (did you mean TAGSTREAM_MIN_INTERVAL?)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := run(t, tt.env, tt.args...)
			if r.code != tt.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, tt.wantCode, r.stdout, r.stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("stdout does not contain %q:\n%s", w, r.stdout)
				}
			}
		})
	}
}
