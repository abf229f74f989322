package poller

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// valuesURL is the request URL as send built it before requestURL: through url.Values.Encode.
func valuesURL(c *client, tok *token, q query) string {
	v := make(url.Values, 4)
	v.Set("count", strconv.Itoa(q.count))
	if q.min != "" {
		v.Set("min_tag_id", q.min)
	}
	if q.max != "" {
		v.Set("max_tag_id", q.max)
	}
	if tok.clientID {
		v.Set("client_id", tok.value)
	} else {
		v.Set("access_token", tok.value)
	}
	return c.endpoint(q.tag) + "?" + v.Encode()
}

func TestRequestURL(t *testing.T) {
	t.Parallel()
	c := &client{base: "https://api.example.test/v1"}
	tests := []struct {
		name string
		tok  token
		q    query
	}{
		{"a first poll carries the access token and the count alone", token{value: "tok-1"}, query{tag: "sunset", count: 33}},
		{"a client id replaces the access token", token{value: "cid-1", clientID: true}, query{tag: "sunset", count: 20}},
		{"both cursors come after the count, max before min", token{value: "tok-1"},
			query{tag: "sunset", count: 33, min: "1234567890123456789", max: "987"}},
		{"a min cursor alone", token{value: "tok-1"}, query{tag: "sunset", count: 33, min: "42"}},
		{"a non-ASCII tag is path-escaped", token{value: "tok-1"}, query{tag: "café_été", count: 1}},
		{"values that need escaping are query-escaped", token{value: "a+b/c=d&e f"},
			query{tag: "x", count: 0, min: "1 2&3", max: "ä?"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, want := c.requestURL(&tt.tok, tt.q), valuesURL(c, &tt.tok, tt.q); got != want {
				t.Errorf("requestURL = %q, want %q (url.Values.Encode)", got, want)
			}
		})
	}
}

// BenchmarkRequestURL compares building a poll's URL by hand with url.Values.Encode.
func BenchmarkRequestURL(b *testing.B) {
	c := &client{base: "http://127.0.0.1:42583/v1"}
	tok := &token{value: "0123456789abcdef0123456789abcdef.0123456789"}
	q := query{tag: "tag000123", count: 33, min: "1234567890123456789"}
	b.Run("requestURL", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = c.requestURL(tok, q)
		}
	})
	b.Run("url.Values", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = valuesURL(c, tok, q)
		}
	})
}

// urlTestTokens and urlTestQueries are the credentials and queries whose escaping the request tests cover.
var (
	urlTestTokens  = []token{{value: "tok-1"}, {value: "cid-1", clientID: true}, {value: "a+b/c=d&e f%"}}
	urlTestQueries = []query{
		{tag: "sunset", count: 33},
		{tag: "café_été", count: 1, min: "1234567890123456789"},
		{tag: "x", count: 0, min: "1 2&3", max: "ä?"},
		{tag: "a%b", count: 33, max: "987"},
	}
)

// urlTestClient is a client of base with one token, for building requests.
func urlTestClient(t *testing.T, base string) *client {
	t.Helper()
	cfg := Config{BaseURL: base, Tokens: []Token{{Value: "tok-1"}}}
	clk := newClock(nil)
	m, _ := newMetrics(nil)
	c, err := newClient(cfg, clk, newTokenPool(Config{RateWindow: time.Hour}, clk, nil, m), nil, m)
	if err != nil {
		t.Fatalf("newClient(%q): %v", base, err)
	}
	return c
}

// TestNewRequestIsWhatTheURLParsesTo checks that newRequest builds the request http.NewRequestWithContext makes of
// requestURL: the same URL fields, the same request line and Host.
func TestNewRequestIsWhatTheURLParsesTo(t *testing.T) {
	t.Parallel()
	bases := []string{
		"https://api.example.test/v1",
		"http://127.0.0.1:42583/v1",
		"http://[::1]:8080/v1",
		"https://api.example.test",
		"https://api.example.test:/v1",
		"https://api.example.test/v%31/x%2Fy",
		"https://api.example.test/a b/ä",
	}
	for _, base := range bases {
		c := urlTestClient(t, base)
		c.base = strings.TrimRight(base, "/")
		for _, tok := range urlTestTokens {
			for _, q := range urlTestQueries {
				want, err := http.NewRequestWithContext(context.Background(), http.MethodGet, c.requestURL(&tok, q), nil)
				if err != nil {
					t.Fatal(err)
				}
				got, err := c.newRequest(context.Background(), &tok, q)
				if err != nil {
					t.Fatal(err)
				}
				if *got.URL != *want.URL || got.Host != want.Host || got.URL.RequestURI() != want.URL.RequestURI() ||
					got.URL.String() != want.URL.String() || got.Method != want.Method || got.Proto != want.Proto {
					t.Errorf("base %q, tag %q: newRequest gives %#v (Host %q, %s), NewRequest of the URL %#v (Host %q, %s)",
						base, q.tag, *got.URL, got.Host, got.URL.RequestURI(), *want.URL, want.Host, want.URL.RequestURI())
				}
			}
		}
	}
}

// BenchmarkNewRequest compares newRequest with parsing the whole request URL (as http.NewRequestWithContext does).
func BenchmarkNewRequest(b *testing.B) {
	clk := newClock(nil)
	m, _ := newMetrics(nil)
	c, err := newClient(Config{BaseURL: "http://127.0.0.1:42583/v1", Tokens: []Token{{Value: "t"}}}, clk,
		newTokenPool(Config{RateWindow: time.Hour}, clk, nil, m), nil, m)
	if err != nil {
		b.Fatal(err)
	}
	c.base = "http://127.0.0.1:42583/v1"
	tok := &token{value: "0123456789abcdef0123456789abcdef.0123456789"}
	q := query{tag: "tag000123", count: 33, min: "1234567890123456789"}
	ctx := context.Background()
	b.Run("newRequest", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = c.newRequest(ctx, tok, q)
		}
	})
	b.Run("parse", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.requestURL(tok, q), nil)
			req.Header = requestHeader
		}
	})
}
