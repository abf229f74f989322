package check

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// dashboard is the part of a Grafana dashboard JSON model this package reads.
type dashboard struct {
	Title      string  `json:"title"`
	UID        string  `json:"uid"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []templateVar `json:"list"`
	} `json:"templating"`
}

// panel is a dashboard panel or row (a row holds its panels in Panels only while collapsed).
type panel struct {
	ID          int    `json:"id"`
	Type        string `json:"type"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Datasource  *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	Panels  []panel `json:"panels"`
	Targets []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
	GridPos struct {
		H, W, X, Y int
	} `json:"gridPos"`
}

// templateVar is a dashboard variable.
type templateVar struct {
	Name    string `json:"name"`
	Type    string `json:"type"`
	Query   any    `json:"query"` // a string, or {"query": "..."} for query variables
	Current struct {
		Value any `json:"value"`
	} `json:"current"`
}

// dashExpr is one PromQL expression of the dashboard.
type dashExpr struct {
	where    string // row, panel and refId, or the variable
	expr     string // as written, with Grafana variables
	resolved string // with every variable replaced by a sample value
}

// grafanaBuiltins are Grafana's interval variables, replaced by sample durations.
var grafanaBuiltins = map[string]string{"__rate_interval": "5m", "__interval": "1m", "__range": "1h"}

var varRef = regexp.MustCompile(`\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]`)

// readDashboard decodes deploy/grafana/tagstream.json.
func readDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	return d
}

// variableValues returns a sample value of each dashboard variable: a custom variable's current value, and ".*"
// for a query variable (it only ever stands in label matchers).
func variableValues(t *testing.T, d dashboard) map[string]string {
	t.Helper()
	vals := map[string]string{}
	for _, v := range d.Templating.List {
		switch v.Type {
		case "custom", "constant", "textbox":
			s, ok := v.Current.Value.(string)
			if !ok || s == "" {
				t.Fatalf("variable %s: no current value", v.Name)
			}
			vals[v.Name] = s
		case "query":
			vals[v.Name] = ".*"
		case "datasource":
			vals[v.Name] = "prometheus"
		default:
			t.Fatalf("variable %s: type %q is not handled by this check", v.Name, v.Type)
		}
	}
	return vals
}

// resolve replaces the Grafana variables of expr by sample values; an unknown variable is an error.
func resolve(expr string, vals map[string]string) (string, error) {
	var bad []string
	out := varRef.ReplaceAllStringFunc(expr, func(m string) string {
		sub := varRef.FindStringSubmatch(m)
		name := sub[1] + sub[2] + sub[3]
		if v, ok := grafanaBuiltins[name]; ok {
			return v
		}
		if v, ok := vals[name]; ok {
			return v
		}
		bad = append(bad, m)
		return m
	})
	if len(bad) > 0 {
		return "", fmt.Errorf("unknown variables %q", bad)
	}
	return out, nil
}

var labelValues = regexp.MustCompile(`^\s*label_values\(\s*(?:(.+?)\s*,\s*)?(\w+)\s*\)\s*$`)

// dashboardExprs returns every PromQL expression of the dashboard: each target of each panel (inside collapsed
// rows too) and the series selector of each query variable.
func dashboardExprs(t *testing.T, d dashboard) []dashExpr {
	t.Helper()
	vals := variableValues(t, d)
	var out []dashExpr
	add := func(where, expr string) {
		r, err := resolve(expr, vals)
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		out = append(out, dashExpr{where: where, expr: expr, resolved: r})
	}
	row := "(no row)"
	var walk func(ps []panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if p.Type == "row" {
				row = p.Title
			}
			for _, tg := range p.Targets {
				add(fmt.Sprintf("row %q, panel %q, target %s", row, p.Title, tg.RefID), tg.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(string)
		if m, ok := v.Query.(map[string]any); ok {
			q, _ = m["query"].(string)
		}
		sm := labelValues.FindStringSubmatch(q)
		if sm == nil {
			t.Fatalf("variable %s: query %q is not label_values(...), the one form this check reads", v.Name, q)
		}
		if sm[1] != "" {
			add(fmt.Sprintf("variable %s", v.Name), sm[1])
		}
	}
	return out
}

// TestDashboardIsWellFormed checks what a reader of the dashboard relies on: every panel has a title, a
// description and a query against the dashboard's data source variable; ids are unique; rows have titles.
func TestDashboardIsWellFormed(t *testing.T) {
	d := readDashboard(t)
	if d.Title == "" || d.UID == "" {
		t.Errorf("title %q, uid %q: want both", d.Title, d.UID)
	}
	ids := map[int]string{}
	rows := map[string]bool{}
	var walk func(ps []panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if other, dup := ids[p.ID]; dup {
				t.Errorf("panel id %d is used by %q and %q", p.ID, other, p.Title)
			}
			ids[p.ID] = p.Title
			if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
				t.Errorf("panel %q: gridPos %+v does not fit the 24-column grid", p.Title, p.GridPos)
			}
			if p.Type == "row" {
				if p.Title == "" || rows[p.Title] {
					t.Errorf("row %q: want a title, once", p.Title)
				}
				rows[p.Title] = true
				walk(p.Panels)
				continue
			}
			if p.Title == "" || p.Description == "" {
				t.Errorf("panel %d %q: want a title and a description", p.ID, p.Title)
			}
			if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q: datasource %+v, want the ${datasource} variable", p.Title, p.Datasource)
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			refs := map[string]bool{}
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" || tg.RefID == "" || refs[tg.RefID] {
					t.Errorf("panel %q: target %q wants an expression and a refId of its own", p.Title, tg.RefID)
				}
				refs[tg.RefID] = true
			}
		}
	}
	walk(d.Panels)
	if len(rows) == 0 {
		t.Error("no rows")
	}
}

// TestDashboardRowsAreDocumented checks that docs/operations.md has a line for each row of the dashboard.
func TestDashboardRowsAreDocumented(t *testing.T) {
	doc, err := os.ReadFile(operationsDoc)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range readDashboard(t).Panels {
		if p.Type == "row" && !strings.Contains(string(doc), "\n| "+p.Title+" |") {
			t.Errorf("docs/operations.md has no table line \"| %s | ...\" for the dashboard row", p.Title)
		}
	}
}

// TestDashboardExpressionsParse writes every expression of the dashboard (variables replaced by sample values)
// as a recording rule and has `promtool check rules` parse the file.
func TestDashboardExpressionsParse(t *testing.T) {
	bin := promtool(t)
	exprs := dashboardExprs(t, readDashboard(t))
	type recording struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []recording
	var legend strings.Builder
	for i, e := range exprs {
		name := fmt.Sprintf("dashboard:expr_%d", i)
		rules = append(rules, recording{Record: name, Expr: e.resolved})
		fmt.Fprintf(&legend, "  rule %d (%s): %s\n", i+1, e.where, e.resolved)
	}
	b, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dashboard.rules.yml"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, ok := runPromtool(t, bin, dir, "check", "rules", "dashboard.rules.yml")
	if !ok {
		t.Errorf("promtool check rules on the dashboard's expressions:\n%s\nthe rules (1-based):\n%s", out, legend.String())
	}
	if !strings.Contains(out, fmt.Sprintf("%d rules found", len(exprs))) {
		t.Errorf("promtool did not read the %d expressions:\n%s", len(exprs), out)
	}
}
