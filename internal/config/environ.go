package config

import (
	"fmt"
	"slices"
	"strings"
)

// envPrefix starts every environment variable tagstream reads.
const envPrefix = "TAGSTREAM_"

// scriptVariables are the TAGSTREAM_* variables of the project's scripts and test harness (scripts/brokers.sh
// writes most of them into the env file a developer sources); tagstream itself ignores them without a warning.
var scriptVariables = []string{
	"TAGSTREAM_BROKERS_DIR", "TAGSTREAM_CACHE", "TAGSTREAM_ERA_PYTHON", "TAGSTREAM_INTEGRATION",
	"TAGSTREAM_KAFKA_CTL", "TAGSTREAM_KAFKA_HEAP", "TAGSTREAM_KAFKA_HOME", "TAGSTREAM_KAFKA_READY_TIMEOUT",
	"TAGSTREAM_KAFKA_VERSION", "TAGSTREAM_KEEP_BROKERS_DIR", "TAGSTREAM_NATS_CTL", "TAGSTREAM_NATS_READY_TIMEOUT",
	"TAGSTREAM_NATS_SERVER_BIN", "TAGSTREAM_NATS_SERVER_VERSION", "TAGSTREAM_PROMTOOL", "TAGSTREAM_TEST_FLAGS",
	"TAGSTREAM_TEST_TIMEOUT",
}

// knownVariables returns every TAGSTREAM_* variable tagstream reads: one per setting (of any subcommand), the
// config file and the secrets.
func knownVariables() []string {
	out := []string{EnvTokens, EnvConfig, EnvNATSUser, EnvNATSPassword, EnvNATSToken, EnvKafkaSASLPassword}
	for _, s := range settings {
		out = append(out, EnvName(s.name))
	}
	return out
}

// unknownVariables returns one warning per TAGSTREAM_* variable of env that tagstream does not read (a typo such
// as TAGSTREAM_MIN_INTERVALL would otherwise be ignored without a word), naming the variable and, when one is
// close, the variable that was probably meant. Values are never shown: the variable may hold a secret.
func unknownVariables(env map[string]string) []string {
	known := knownVariables()
	var out []string
	for name := range env {
		if !strings.HasPrefix(name, envPrefix) || slices.Contains(known, name) || slices.Contains(scriptVariables, name) {
			continue
		}
		msg := fmt.Sprintf("environment variable %s is not a tagstream setting and is ignored", name)
		if alt := closestVariable(name, known); alt != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", alt)
		}
		out = append(out, msg)
	}
	slices.Sort(out)
	return out
}

// closestVariable returns the known variable nearest to name (case and '-' or '.' for '_' forgiven, at most two
// edits away), or "".
func closestVariable(name string, known []string) string {
	norm := strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(name))
	best, bestD := "", 3
	for _, k := range slices.Sorted(slices.Values(known)) {
		if d := editDistance(norm, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}
