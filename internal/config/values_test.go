package config

import (
	"errors"
	"flag"
	"path/filepath"
	"strings"
	"testing"
)

// TestHelpListsEveryValueValidationAccepts compares, for every setting that accepts a fixed list of values, the
// help text of its flag with what validation accepts: every value the help lists loads, and a value it does not
// list is refused with an error that lists them all.
func TestHelpListsEveryValueValidationAccepts(t *testing.T) {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	NewLoader(fs, GroupAll, Needs{}, Defaults())
	enumerated := map[string][]string{
		// start's declaration belongs to the poller's side of the settings; its values are listed here by hand.
		"start": {"now", "backfill"},
	}
	for _, s := range settings {
		if len(s.values) > 0 {
			enumerated[s.name] = Values(s.name)
		}
	}
	if len(enumerated) < 10 {
		t.Fatalf("only %d enumerated settings: %v", len(enumerated), enumerated)
	}
	good := tokensFile(t, secretToken+"\n", 0o600)
	// A file valid for every sink, so that each setting is validated where it applies.
	base := "tags: x\ntokens-file: " + good + "\nkafka-brokers: a:9092\nkafka-sasl-user: u\noutput: " +
		filepath.Join(t.TempDir(), "out.ndjson") + "\n"
	sinkFor := func(key string) string {
		switch {
		case strings.HasPrefix(key, "kafka-"):
			return "sink: kafka\n"
		case key == "stream-storage":
			return "sink: jetstream\n"
		case key == "sink":
			return ""
		}
		return "sink: stdout\n"
	}
	vars := map[string]string{EnvKafkaSASLPassword: "pw"}
	for key, values := range enumerated {
		f := fs.Lookup(key)
		if f == nil {
			t.Errorf("no flag --%s", key)
			continue
		}
		for _, v := range values {
			shown := v
			if v == "" {
				shown = `""`
			}
			t.Run("the help of "+key+" lists "+shown+" and it loads", func(t *testing.T) {
				if !strings.Contains(f.Usage, shown) {
					t.Errorf("--%s help %q does not list %s", key, f.Usage, shown)
				}
				c, err := load(t, env{file: base + sinkFor(key) + key + ": '" + v + "'\n", vars: vars, needs: Needs{Tags: true, Tokens: true}})
				if err != nil {
					t.Fatalf("%s: %q is listed in the help but refused: %v", key, v, err)
				}
				for _, s := range settings {
					if s.name == key && s.get(c) != v {
						t.Errorf("%s loaded as %q, want %q", key, s.get(c), v)
					}
				}
			})
		}
		t.Run("a value the help of "+key+" does not list is refused", func(t *testing.T) {
			bad := "not-" + values[len(values)-1]
			_, err := load(t, env{file: base + sinkFor(key) + key + ": " + bad + "\n", vars: vars, needs: Needs{Tags: true, Tokens: true}})
			var ce *Error
			if !errors.As(err, &ce) || ce.Key != key {
				t.Fatalf("error = %v, want a *Error on %s", err, key)
			}
			for _, v := range values {
				if v != "" && !strings.Contains(err.Error(), v) {
					t.Errorf("error %q does not list %s", err, v)
				}
			}
		})
	}
}

func TestUnknownEnvironmentVariablesAreWarnedAbout(t *testing.T) {
	good := tokensFile(t, secretToken+"\n", 0o600)
	base := "tags: x\nsink: stdout\ntokens-file: " + good + "\n"
	tests := []struct {
		name  string
		vars  map[string]string
		group Group
		want  []string // each a warning, in order
	}{
		{"a misspelt setting is named with the one meant", map[string]string{"TAGSTREAM_MIN_INTERVALL": "5s"}, 0,
			[]string{"environment variable TAGSTREAM_MIN_INTERVALL is not a tagstream setting and is ignored (did you mean TAGSTREAM_MIN_INTERVAL?)"}},
		{"a misspelt secret is named without its value", map[string]string{"TAGSTREAM_TOKEN": secretToken}, 0,
			[]string{"environment variable TAGSTREAM_TOKEN is not a tagstream setting and is ignored (did you mean TAGSTREAM_TOKENS?)"}},
		{"a variable far from any setting gets no suggestion", map[string]string{"TAGSTREAM_FROBNICATE": "1"}, 0,
			[]string{"environment variable TAGSTREAM_FROBNICATE is not a tagstream setting and is ignored"}},
		{"several are reported in order", map[string]string{"TAGSTREAM_B": "1", "TAGSTREAM_A": "1"}, 0,
			[]string{"environment variable TAGSTREAM_A is not", "environment variable TAGSTREAM_B is not"}},
		{"the variables of the project's scripts are not reported", map[string]string{"TAGSTREAM_KAFKA_HOME": "/k", "TAGSTREAM_INTEGRATION": "1"}, 0, nil},
		{"a setting of another subcommand is not reported", map[string]string{"TAGSTREAM_TAGS": "x"}, GroupSink | GroupOps, nil},
		{"other variables are not looked at", map[string]string{"HOME": "/h", "MY_TAGSTREAM_X": "1"}, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := load(t, env{file: base, vars: tt.vars, group: tt.group})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, w := range c.Warnings {
				if strings.Contains(w, "environment variable") {
					got = append(got, w)
				}
			}
			if len(got) != len(tt.want) {
				t.Fatalf("warnings %q, want %d like %q", got, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("warning %d = %q, want %q", i, got[i], w)
				}
				if strings.Contains(got[i], secretToken) {
					t.Errorf("warning %q shows the value", got[i])
				}
			}
		})
	}
}

func TestTheSwitchedOffAPIIsWarnedAbout(t *testing.T) {
	good := tokensFile(t, secretToken+"\n", 0o600)
	for _, tt := range []struct {
		name, file string
		warned     bool
	}{
		{"the default api-url", "tags: x\nsink: stdout\ntokens-file: " + good + "\n", true},
		{"another API", "tags: x\nsink: stdout\napi-url: https://api.example.com/v1\ntokens-file: " + good + "\n", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := load(t, env{file: tt.file, needs: Needs{Tags: true, Tokens: true}})
			if err != nil {
				t.Fatal(err)
			}
			warned := false
			for _, w := range c.Warnings {
				warned = warned || strings.Contains(w, "switched off in 2020")
			}
			if warned != tt.warned {
				t.Errorf("warned %v, want %v: %q", warned, tt.warned, c.Warnings)
			}
		})
	}
}
