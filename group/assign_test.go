package group

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

func TestRendezvous(t *testing.T) {
	tags := make([]string, 3000)
	for i := range tags {
		tags[i] = fmt.Sprintf("tag%d", i)
	}
	owners := func(names ...string) map[string]string {
		rz := newRendezvous(names)
		out := make(map[string]string, len(tags))
		for _, tag := range tags {
			out[tag] = rz.owner(tag)
		}
		return out
	}
	three := owners("a", "b", "c")
	t.Run("spreads tags about evenly", func(t *testing.T) {
		count := make(map[string]int)
		for _, o := range three {
			count[o]++
		}
		for _, n := range []string{"a", "b", "c"} {
			if c := count[n]; c < 900 || c > 1100 {
				t.Errorf("%s owns %d of 3000 tags, want about 1000", n, c)
			}
		}
	})
	t.Run("does not depend on the order of the members", func(t *testing.T) {
		other := owners("c", "a", "b")
		for tag, o := range three {
			if other[tag] != o {
				t.Fatalf("tag %s: %s with one order, %s with another", tag, o, other[tag])
			}
		}
	})
	t.Run("a member that joins takes tags only from the others, about a quarter", func(t *testing.T) {
		four := owners("a", "b", "c", "d")
		moved := 0
		for tag, o := range four {
			if o != three[tag] {
				moved++
				if o != "d" {
					t.Fatalf("tag %s moved from %s to %s, not to the new member", tag, three[tag], o)
				}
			}
		}
		if moved < 600 || moved > 900 {
			t.Errorf("%d of 3000 tags moved to the fourth member, want about 750", moved)
		}
	})
	t.Run("a member that leaves gives only its own tags away", func(t *testing.T) {
		two := owners("a", "c")
		for tag, o := range three {
			if o != "b" && two[tag] != o {
				t.Fatalf("tag %s moved from %s to %s though its owner stayed", tag, o, two[tag])
			}
		}
	})
	t.Run("no member, no owner", func(t *testing.T) {
		if o := newRendezvous(nil).owner("coffee"); o != "" {
			t.Fatalf("owner with no members: %q", o)
		}
	})
}

func TestPollRates(t *testing.T) {
	p := demandParams{minIv: 2, maxIv: 300, pageSize: 33}
	sum := func(f []float64) (s float64) {
		for _, v := range f {
			s += v
		}
		return s
	}
	t.Run("rates between the bounds follow the square-root rule and spend the budget", func(t *testing.T) {
		rates := []float64{0.01, 0.04, 0.09}
		f := pollRates(rates, 0.12, p)
		if math.Abs(sum(f)-0.12) > 1e-9 {
			t.Fatalf("rates sum to %g, want the budget 0.12", sum(f))
		}
		// sqrt: 0.1, 0.2, 0.3 → 0.02, 0.04, 0.06
		for i, want := range []float64{0.02, 0.04, 0.06} {
			if math.Abs(f[i]-want) > 1e-6 {
				t.Errorf("tag %d: %g polls/s, want %g", i, f[i], want)
			}
		}
	})
	t.Run("a budget above every ceiling gives every tag its ceiling", func(t *testing.T) {
		f := pollRates([]float64{1, 0}, 100, p)
		if f[0] != 0.5 || f[1] != 0.5 {
			t.Fatalf("got %v, want the ceiling 1/MinInterval for both", f)
		}
	})
	t.Run("floors above the budget are scaled down together", func(t *testing.T) {
		f := pollRates([]float64{0, 0, 0, 0}, 0.002, p)
		for _, v := range f {
			if math.Abs(v-0.0005) > 1e-12 {
				t.Fatalf("got %v, want each floor 1/300 scaled to 0.0005", f)
			}
		}
	})
	t.Run("a busy tag keeps its page floor", func(t *testing.T) {
		f := pollRates([]float64{10, 0.0001}, 0.6, p)
		if lo := 10 / (pageFill * 33); f[0] < lo-1e-9 {
			t.Fatalf("busy tag polled %g/s, below its page floor %g", f[0], lo)
		}
	})
	t.Run("nothing to poll", func(t *testing.T) {
		if f := pollRates(nil, 1, p); len(f) != 0 {
			t.Fatalf("got %v", f)
		}
	})
}

func TestDivide(t *testing.T) {
	for _, tc := range []struct {
		name    string
		holders []string
		demand  map[string]float64
		want    map[string]float64
	}{
		{"in proportion to demand", []string{"a", "b"}, map[string]float64{"a": 3, "b": 1}, map[string]float64{"a": 0.75, "b": 0.25}},
		{"a holder without demand gets nothing", []string{"a", "b"}, map[string]float64{"a": 2}, map[string]float64{"a": 1, "b": 0}},
		{"equally when nobody has demand", []string{"a", "b", "c", "d"}, nil, map[string]float64{"a": 0.25, "b": 0.25, "c": 0.25, "d": 0.25}},
		{"demand of non-holders is ignored", []string{"a"}, map[string]float64{"a": 1, "z": 9}, map[string]float64{"a": 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := divide(tc.holders, tc.demand)
			var sum float64
			for h, want := range tc.want {
				if math.Abs(got[h]-want) > 1e-12 {
					t.Errorf("%s: %g, want %g", h, got[h], want)
				}
				sum += got[h]
			}
			if sum > 1+1e-12 {
				t.Errorf("fractions sum to %g", sum)
			}
		})
	}
}

func TestQuantizeNeverRoundsUp(t *testing.T) {
	for _, f := range []float64{0, 1e-5, 0.33333333, 0.5, 0.99999, 1, 1.2, -0.1} {
		q := quantize(f)
		if q > max(0, min(1, f))+1e-12 || q < 0 || q > 1 {
			t.Errorf("quantize(%g) = %g", f, q)
		}
	}
	if q := quantize(1.0 / 3); q+quantize(2.0/3) > 1 {
		t.Errorf("a third and two thirds sum above 1 after quantizing")
	}
}

func TestConfigResolve(t *testing.T) {
	good := Config{Group: "g", Name: "n", Tokens: []Token{{Fingerprint: "abcd0123"}}}
	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   string // "" = valid
	}{
		{"the minimal config is valid", func(*Config) {}, ""},
		{"a group is required", func(c *Config) { c.Group = "" }, "Group is empty"},
		{"a group with a dot is refused", func(c *Config) { c.Group = "a.b" }, "Group \"a.b\""},
		{"a long name is refused", func(c *Config) { c.Name = strings.Repeat("x", 65) }, "longer than 64"},
		{"an invalid tag is refused", func(c *Config) { c.Tags = []string{"no space"} }, "Tags"},
		{"a fingerprint given twice is refused", func(c *Config) { c.Tokens = append(c.Tokens, c.Tokens[0]) }, "given twice"},
		{"a negative budget is refused", func(c *Config) { c.Tokens[0].RequestsPerHour = -1 }, "negative"},
		{"a lease below a second is refused", func(c *Config) { c.Lease = 500 * time.Millisecond }, "at least 1s"},
		{"MaxInterval below MinInterval is refused", func(c *Config) { c.MinInterval, c.MaxInterval = time.Minute, time.Second }, "below MinInterval"},
		{"five replicas at most", func(c *Config) { c.Replicas = 7 }, "Replicas"},
		{"BudgetFactor above 1 is refused", func(c *Config) { c.BudgetFactor = 1.5 }, "BudgetFactor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			c.Tokens = append([]Token(nil), good.Tokens...)
			tc.change(&c)
			r, err := c.resolve()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if r.Tokens[0].RequestsPerHour != DefaultRequestsPerHour || r.Retention != DefaultRetention || r.PageSize != DefaultPageSize {
					t.Fatalf("defaults not resolved: %+v", r)
				}
				return
			}
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrConfig mentioning %q", err, tc.want)
			}
		})
	}
	t.Run("the heartbeat defaults to a quarter of the lease and must stay below half of it", func(t *testing.T) {
		c, _ := good.resolve()
		r, err := c.withLease(8 * time.Second)
		if err != nil || r.Heartbeat != 2*time.Second || r.Lease != 8*time.Second {
			t.Fatalf("got %+v, %v", r, err)
		}
		c.Heartbeat = 4 * time.Second
		if _, err := c.withLease(8 * time.Second); !errors.Is(err, ErrConfig) {
			t.Fatalf("heartbeat of half the lease: %v", err)
		}
	})
	t.Run("a lease that differs from the group's is refused", func(t *testing.T) {
		c, _ := good.resolve()
		c.Lease = 5 * time.Second
		if _, err := c.withLease(8 * time.Second); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "differs") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("the default name is a valid member name", func(t *testing.T) {
		if err := checkName("Name", defaultName()); err != nil {
			t.Fatal(err)
		}
	})
}

func TestAssignmentDiff(t *testing.T) {
	for _, tc := range []struct {
		name           string
		prev, next     []string
		added, removed []string
	}{
		{"from nothing", nil, []string{"a", "b"}, []string{"a", "b"}, nil},
		{"to nothing", []string{"a", "b"}, nil, nil, []string{"a", "b"}},
		{"some of each", []string{"a", "c", "e"}, []string{"b", "c", "d"}, []string{"b", "d"}, []string{"a", "e"}},
		{"no change", []string{"a"}, []string{"a"}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			added, removed := Assignment{Tags: tc.next}.Diff(Assignment{Tags: tc.prev})
			if fmt.Sprint(added) != fmt.Sprint(tc.added) || fmt.Sprint(removed) != fmt.Sprint(tc.removed) {
				t.Fatalf("Diff = +%v -%v, want +%v -%v", added, removed, tc.added, tc.removed)
			}
		})
	}
	a := Assignment{Tokens: []TokenShare{{Fingerprint: "x", Fraction: 0.25}}}
	if a.Share("x") != 0.25 || a.Share("y") != 0 {
		t.Fatalf("Share: %v %v", a.Share("x"), a.Share("y"))
	}
}
