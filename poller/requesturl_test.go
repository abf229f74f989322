package poller

import (
	"net/url"
	"strconv"
	"testing"
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
