package check

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// promqlKeywords are the identifiers of PromQL that are not metric names: binary and set operators, modifiers,
// aggregation operators (which may be followed by "by (...)" rather than "("), and number literals.
var promqlKeywords = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "atan2": true,
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true, "limitk": true,
	"limit_ratio": true, "inf": true, "nan": true,
}

// labelListKeywords are followed by a parenthesized list of label names.
var labelListKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

// metricNames returns the metric names a PromQL expression selects, sorted and without repeats. It is a lexer,
// not a parser (promtool checks that the expression parses): it skips string literals, label matchers in {...},
// ranges and subqueries in [...], label lists after by/without/on/ignoring/group_left/group_right, function
// calls and keywords, and returns the identifiers left. A selector by __name__ is refused: it would hide a
// metric name from this check.
func metricNames(expr string) ([]string, error) {
	type token struct {
		kind byte // 'i' identifier, 's' string, 'n' number or duration, else the punctuation character itself
		text string
	}
	var toks []token
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '#': // a comment runs to the end of the line
			for i < len(expr) && expr[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			j := i + 1
			for j < len(expr) && expr[j] != c {
				if expr[j] == '\\' && c != '`' {
					j++
				}
				j++
			}
			if j >= len(expr) {
				return nil, fmt.Errorf("unterminated string at offset %d", i)
			}
			toks = append(toks, token{'s', expr[i+1 : j]})
			i = j + 1
		case c >= '0' && c <= '9' || c == '.' && i+1 < len(expr) && expr[i+1] >= '0' && expr[i+1] <= '9':
			j := i
			for j < len(expr) && (isIdentChar(expr[j]) || expr[j] == '.') {
				j++
			}
			toks = append(toks, token{'n', expr[i:j]})
			i = j
		case isIdentStart(c):
			j := i
			for j < len(expr) && isIdentChar(expr[j]) {
				j++
			}
			toks = append(toks, token{'i', expr[i:j]})
			i = j
		default:
			toks = append(toks, token{c, string(c)})
			i++
		}
	}

	seen := map[string]bool{}
	braces, brackets := 0, 0
	for i := 0; i < len(toks); i++ {
		tk := toks[i]
		switch tk.kind {
		case '{':
			braces++
		case '}':
			braces--
		case '[':
			brackets++
		case ']':
			brackets--
		case 'i':
			if braces > 0 || brackets > 0 {
				if tk.text == "__name__" {
					return nil, fmt.Errorf("a selector by __name__ hides the metric name from this check: name the metric")
				}
				continue
			}
			next := byte(0)
			if i+1 < len(toks) {
				next = toks[i+1].kind
			}
			if labelListKeywords[tk.text] && next == '(' {
				depth := 0
				for i++; i < len(toks); i++ {
					if toks[i].kind == '(' {
						depth++
					} else if toks[i].kind == ')' {
						if depth--; depth == 0 {
							break
						}
					}
				}
				continue
			}
			if next == '(' || promqlKeywords[strings.ToLower(tk.text)] {
				continue // a function call or a keyword
			}
			seen[tk.text] = true
		}
	}
	if braces != 0 || brackets != 0 {
		return nil, fmt.Errorf("unbalanced braces or brackets")
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	slices.Sort(names)
	return names, nil
}

func isIdentStart(c byte) bool {
	return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isIdentChar(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }

func TestMetricNames(t *testing.T) {
	tests := []struct {
		name string
		expr string
		want []string
	}{
		{"a bare selector", `tagstream_api_down == 1`, []string{"tagstream_api_down"}},
		{"label matchers are not metrics", `up{job="tagstream", instance=~"ts-.*"} == 0`, []string{"up"}},
		{"a brace inside a label value", `rate(x{l="a}b{c"}[5m])`, []string{"x"}},
		{"aggregations with by lists", `sum by (job, instance) (rate(a_total{outcome="rate_limited"}[15m])) / sum by (job, instance) (rate(a_total[15m])) > 0.05`, []string{"a_total"}},
		{"an aggregation with its label list after the body", `sum(rate(a[5m])) without (tag)`, []string{"a"}},
		{"set operators and offset", `x unless x offset 30m`, []string{"x"}},
		{"vector matching with group_left", `a * on (job) group_left (tag, version) b`, []string{"a", "b"}},
		{"functions and arithmetic", `(time() - a) > 3 * b + 60 unless on (job, instance) c == 1`, []string{"a", "b", "c"}},
		{"histogram_quantile of buckets", `histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m])))`, []string{"h_bucket"}},
		{"topk with a number", `topk(10, time() - ts)`, []string{"ts"}},
		{"strings are not metrics", `label_replace(x, "dst", "$1", "src", "(.*)")`, []string{"x"}},
		{"a subquery and @", `max_over_time(rate(x[5m])[1h:1m]) @ end()`, []string{"x"}},
		{"numbers in several forms", `x > 1e3 and y < .5 and z != 0x1f`, []string{"x", "y", "z"}},
		{"a recording rule name with colons", `job:requests:rate5m > 1`, []string{"job:requests:rate5m"}},
		{"a comment", "x # and y\n+ z", []string{"x", "z"}},
		{"no metric", `vector(1)`, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := metricNames(tt.expr)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("metricNames(%q) = %q, want %q", tt.expr, got, tt.want)
			}
		})
	}
}

func TestMetricNamesRefuses(t *testing.T) {
	tests := []struct{ name, expr, want string }{
		{"a selector by __name__", `{__name__=~"tagstream_.*"}`, "__name__"},
		{"an unterminated string", `x{l="a}`, "unterminated"},
		{"an unbalanced brace", `x{l="a"`, "unbalanced"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := metricNames(tt.expr)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("metricNames(%q) = %v, want an error containing %q", tt.expr, err, tt.want)
			}
		})
	}
}
