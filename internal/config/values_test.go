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
