package check

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestRulesPassPromtool runs `promtool check rules` on every rule file of deploy/prometheus and `promtool test
// rules` on its test file.
func TestRulesPassPromtool(t *testing.T) {
	bin := promtool(t)
	for _, base := range ruleFiles(t) {
		t.Run(base+" passes promtool check rules", func(t *testing.T) {
			if out, ok := runPromtool(t, bin, rulesDir, "check", "rules", base); !ok {
				t.Errorf("promtool check rules %s:\n%s", base, out)
			}
		})
		t.Run(base+" passes its promtool unit tests", func(t *testing.T) {
			if out, ok := runPromtool(t, bin, rulesDir, "test", "rules", testFileFor(base)); !ok {
				t.Errorf("promtool test rules %s:\n%s", testFileFor(base), out)
			}
		})
	}
}

// TestEveryAlertTellsOnCallWhatToDo checks what an alert carries for the person who gets it: a severity that says
// whether to page, a summary, a description, and a runbook link to its own section of docs/operations.md.
func TestEveryAlertTellsOnCallWhatToDo(t *testing.T) {
	doc, err := os.ReadFile(operationsDoc)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, base := range ruleFiles(t) {
		for _, g := range readRules(t, base).Groups {
			for _, r := range g.Rules {
				if r.Alert == "" {
					continue
				}
				t.Run(r.Alert, func(t *testing.T) {
					if other, dup := seen[r.Alert]; dup {
						t.Errorf("alert %s is defined in %s and %s", r.Alert, other, base)
					}
					seen[r.Alert] = base
					if s := r.Labels["severity"]; s != "critical" && s != "warning" {
						t.Errorf("severity %q: want critical (page) or warning", s)
					}
					for _, key := range []string{"summary", "description"} {
						if strings.TrimSpace(r.Annotations[key]) == "" {
							t.Errorf("no %s annotation", key)
						}
					}
					if n := len(r.Annotations["description"]); n < 150 {
						t.Errorf("description of %d characters: say what it means and what to do", n)
					}
					anchor := "docs/operations.md#" + strings.ToLower(r.Alert)
					if got := r.Annotations["runbook"]; got != anchor {
						t.Errorf("runbook annotation %q, want %q", got, anchor)
					}
					if !strings.Contains(string(doc), "\n### "+r.Alert+"\n") {
						t.Errorf("docs/operations.md has no section \"### %s\" (the runbook)", r.Alert)
					}
				})
			}
		}
	}
	if len(seen) == 0 {
		t.Fatal("no alert found")
	}
}

// TestEveryAlertFiresAndStaysQuietInATest checks that the promtool tests of each rule file hold, for every alert
// of the file, at least one evaluation where it fires and one where it stays quiet, and name no alert the file
// lacks (a test of a misspelt alert would pass quietly).
func TestEveryAlertFiresAndStaysQuietInATest(t *testing.T) {
	for _, base := range ruleFiles(t) {
		t.Run(base, func(t *testing.T) {
			var tf ruleTestFile
			readYAML(t, filepath.Join(rulesDir, testFileFor(base)), &tf)
			if !slices.Equal(tf.RuleFiles, []string{base}) {
				t.Errorf("%s: rule_files %q, want [%s]", testFileFor(base), tf.RuleFiles, base)
			}
			fires, quiet := map[string]int{}, map[string]int{}
			for _, tc := range tf.Tests {
				for _, a := range tc.AlertRuleTests {
					if len(a.ExpAlerts) > 0 {
						fires[a.Alertname]++
					} else {
						quiet[a.Alertname]++
					}
				}
			}
			alerts := map[string]bool{}
			for _, g := range readRules(t, base).Groups {
				for _, r := range g.Rules {
					if r.Alert == "" {
						continue
					}
					alerts[r.Alert] = true
					if fires[r.Alert] == 0 {
						t.Errorf("%s: no test in which %s fires", testFileFor(base), r.Alert)
					}
					if quiet[r.Alert] == 0 {
						t.Errorf("%s: no test in which %s stays quiet", testFileFor(base), r.Alert)
					}
				}
			}
			for name := range fires {
				if !alerts[name] {
					t.Errorf("%s tests alert %q, which %s does not define", testFileFor(base), name, base)
				}
			}
			for name := range quiet {
				if !alerts[name] {
					t.Errorf("%s tests alert %q, which %s does not define", testFileFor(base), name, base)
				}
			}
		})
	}
}
