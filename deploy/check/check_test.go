// Package check tests what deploy/ gives the people who run tagstream against the code: the Prometheus alert
// rules (deploy/prometheus, through `promtool check rules` and `promtool test rules`), the Grafana dashboard
// (deploy/grafana/tagstream.json: every expression parses, every panel is described) and docs/operations.md,
// and that every metric they name is one the tagstream binary exports (its /metrics while the demo runs, and while
// it runs as a group member), or a metric listed as pending in metrics_test.go. It also loads the settings of the
// group deployment examples (deploy/systemd, deploy/kubernetes) through the command's own configuration loader.
//
// promtool comes from TAGSTREAM_PROMTOOL (scripts/test.sh sets it through scripts/promtool.sh) or the PATH. Without
// it the promtool tests fail under the test command (TAGSTREAM_INTEGRATION=1) and are skipped elsewhere, naming
// the script that installs it.
package check

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// Paths relative to this package's directory (go test runs in it).
const (
	deployDir     = ".."
	rulesDir      = "../prometheus"
	dashboardPath = "../grafana/tagstream.json"
	operationsDoc = "../../docs/operations.md"
)

// promtool returns the promtool binary to run, or skips (fails under the test command) when there is none.
func promtool(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("TAGSTREAM_PROMTOOL"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("TAGSTREAM_PROMTOOL: %v", err)
		}
		return p
	}
	if p, err := exec.LookPath("promtool"); err == nil {
		return p
	}
	if os.Getenv("TAGSTREAM_INTEGRATION") == "1" {
		t.Fatal("no promtool: scripts/test.sh should have set TAGSTREAM_PROMTOOL (scripts/promtool.sh)")
	}
	t.Skip("no promtool: run scripts/promtool.sh and set TAGSTREAM_PROMTOOL to the path it prints")
	return ""
}

// runPromtool runs promtool with args in dir and returns its combined output and whether it exited 0.
func runPromtool(t *testing.T, bin, dir string, args ...string) (string, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("promtool %s: %v", strings.Join(args, " "), err)
		}
	}
	return out.String(), err == nil
}

// ruleFile is a Prometheus rule file.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	} `yaml:"groups"`
}

// rule is one alerting or recording rule.
type rule struct {
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// ruleTestFile is a promtool rule unit-test file (the fields this package reads).
type ruleTestFile struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		Name           string `yaml:"name"`
		AlertRuleTests []struct {
			EvalTime  string `yaml:"eval_time"`
			Alertname string `yaml:"alertname"`
			ExpAlerts []any  `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// ruleFiles returns the rule files of deploy/prometheus (*.rules.yml), by base name.
func ruleFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(rulesDir, "*.rules.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no rule files in %s (%v)", rulesDir, err)
	}
	for i, f := range files {
		files[i] = filepath.Base(f)
	}
	return files
}

// readYAML decodes the YAML file at path into v, refusing unknown fields only where v says so.
func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// readRules decodes a rule file of deploy/prometheus.
func readRules(t *testing.T, base string) ruleFile {
	t.Helper()
	var rf ruleFile
	readYAML(t, filepath.Join(rulesDir, base), &rf)
	return rf
}

// testFileFor names the promtool test file of a rule file: x.rules.yml is tested by x.rules.test.yml.
func testFileFor(base string) string {
	return strings.TrimSuffix(base, ".yml") + ".test.yml"
}
