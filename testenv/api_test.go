package testenv

import (
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestEndpointsAnswerTheEnvelope(t *testing.T) {
	t.Parallel()
	s := start(t, plain(TagConfig{Name: "coffee", Initial: 30}, TagConfig{Name: "coffeeart", Initial: 3}, TagConfig{Name: "tea", Initial: 5}))
	someID := newestFirst(s, "coffee")[4]
	tests := []struct {
		name   string
		path   string
		params url.Values
		check  func(t *testing.T, data json.RawMessage)
	}{
		{"tag info gives the media count and name", "/tags/coffee", auth(), func(t *testing.T, d json.RawMessage) {
			var v struct {
				MediaCount int    `json:"media_count"`
				Name       string `json:"name"`
			}
			mustUnmarshal(t, d, &v)
			if v.MediaCount != 30 || v.Name != "coffee" {
				t.Errorf("got %+v, want 30 coffee", v)
			}
		}},
		{"an unknown tag has no media", "/tags/nosuchtag", auth(), func(t *testing.T, d json.RawMessage) {
			var v struct {
				MediaCount int `json:"media_count"`
			}
			mustUnmarshal(t, d, &v)
			if v.MediaCount != 0 {
				t.Errorf("media_count %d, want 0", v.MediaCount)
			}
		}},
		{"tag search finds tags by prefix, the exact match first", "/tags/search", auth("q", "coffee"), func(t *testing.T, d json.RawMessage) {
			var v []struct {
				MediaCount int    `json:"media_count"`
				Name       string `json:"name"`
			}
			mustUnmarshal(t, d, &v)
			if len(v) != 2 || v[0].Name != "coffee" || v[1].Name != "coffeeart" || v[1].MediaCount != 3 {
				t.Errorf("got %+v", v)
			}
		}},
		{"popular gives the 20 newest media over all tags", "/media/popular", auth(), func(t *testing.T, d json.RawMessage) {
			var v []pageItem
			mustUnmarshal(t, d, &v)
			if len(v) != 20 {
				t.Errorf("%d media, want 20", len(v))
			}
		}},
		{"media by id gives that media", "/media/" + someID, auth(), func(t *testing.T, d json.RawMessage) {
			var v pageItem
			mustUnmarshal(t, d, &v)
			if v.ID != someID {
				t.Errorf("id %q, want %q", v.ID, someID)
			}
		}},
		{"likes of a media are a list of users", "/media/" + someID + "/likes", auth(), func(t *testing.T, d json.RawMessage) {
			var v []struct {
				Username string `json:"username"`
				ID       string `json:"id"`
			}
			mustUnmarshal(t, d, &v)
		}},
		{"client_id alone authenticates reads", "/tags/tea", url.Values{"client_id": {"client-1"}}, func(t *testing.T, d json.RawMessage) {}},
		{"a trailing slash is the same path", "/tags/tea/", auth(), func(t *testing.T, d json.RawMessage) {}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := get(t, s, tc.path, tc.params)
			if a.status != http.StatusOK {
				t.Fatalf("status %d body %.300s", a.status, a.body)
			}
			if ct := a.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
			e := decode(t, a)
			if e.Meta.Code != 200 {
				t.Errorf("meta.code %d", e.Meta.Code)
			}
			tc.check(t, e.Data)
		})
	}
}

func mustUnmarshal(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("unmarshal %.200s: %v", b, err)
	}
}

// TestEveryEndpointAcceptsTheJSONSuffix checks the ".json" suffix that the API accepted and python-instagram 1.3.2
// appends to every path: the answer is the one without it.
func TestEveryEndpointAcceptsTheJSONSuffix(t *testing.T) {
	t.Parallel()
	s := start(t, plain(TagConfig{Name: "coffee", Initial: 40}, TagConfig{Name: "json", Initial: 2}, TagConfig{Name: "日本", Initial: 3}))
	id := newestFirst(s, "coffee")[3]
	tests := []struct {
		name   string
		path   string
		params url.Values
	}{
		{"tag media", "/tags/coffee/media/recent", auth("count", "5")},
		{"tag media with a cursor", "/tags/coffee/media/recent", auth("count", "33", "max_tag_id", recent(t, s, "coffee", auth("count", "3")).pag["next_max_tag_id"])},
		{"tag media of a tag of another script", "/tags/" + url.PathEscape("日本") + "/media/recent", auth()},
		{"tag info", "/tags/coffee", auth()},
		{"tag info of a tag named json", "/tags/json", auth()},
		{"tag search", "/tags/search", auth("q", "cof")},
		{"popular media", "/media/popular", auth()},
		{"a media by id", "/media/" + id, auth()},
		{"a media's likes", "/media/" + id + "/likes", auth()},
		{"an unknown media id", "/media/1_1", auth()},
		{"a revoked or unknown token", "/tags/coffee", url.Values{"access_token": {"nobody"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name+" answers the same with .json", func(t *testing.T) {
			want := get(t, s, tc.path, tc.params)
			got := get(t, s, tc.path+".json", tc.params)
			if got.status != want.status || string(got.body) != string(want.body) {
				t.Fatalf("%s.json: status %d body %.300s\nwithout .json: status %d body %.300s",
					tc.path, got.status, got.body, want.status, want.body)
			}
		})
	}
	t.Run("a like through the suffixed path counts", func(t *testing.T) {
		if a := call(t, s, http.MethodPost, "/media/"+id+"/likes.json", auth()); a.status != 200 {
			t.Fatalf("POST likes.json: status %d body %.300s", a.status, a.body)
		}
	})
	t.Run("the suffix anywhere but at the end is not a path", func(t *testing.T) {
		a := get(t, s, "/tags/coffee.json/media/recent", auth())
		if e := decode(t, a); a.status != 400 || e.Meta.ErrorType == "" {
			t.Fatalf("status %d %s; want a 400 error", a.status, e.Meta.ErrorType)
		}
		a = get(t, s, "/media/popular.json.json", auth())
		if e := decode(t, a); a.status != 400 || e.Meta.ErrorType != errNotFound {
			t.Fatalf("status %d %s; want 400 %s", a.status, e.Meta.ErrorType, errNotFound)
		}
	})
}

func TestWalkingPagesGivesTheWholeFeedNewestFirst(t *testing.T) {
	t.Parallel()
	for _, style := range []CursorStyle{CursorNumeric, CursorOpaque} {
		for _, viaNextURL := range []bool{false, true} {
			name := fmt.Sprintf("%s cursors, following next_url=%v", style, viaNextURL)
			t.Run(name, func(t *testing.T) {
				t.Parallel() // each walk has a simulator of its own
				cfg := plain(TagConfig{Name: "walk", Initial: 75})
				cfg.Cursors = style
				s := start(t, cfg)
				want := newestFirst(s, "walk")
				var got []string
				params := auth("count", "10")
				var newest string
				for pages := 0; ; pages++ {
					if pages > 20 {
						t.Fatal("more than 20 pages for 75 media")
					}
					p := recent(t, s, "walk", params)
					if pages == 0 {
						newest = p.pag["min_tag_id"]
					}
					got = append(got, p.ids()...)
					if len(p.items) > 0 && (p.pag["min_tag_id"] == "" || p.pag["min_tag_id"] != p.pag["next_min_id"]) {
						t.Fatalf("page %d: min_tag_id %q next_min_id %q", pages, p.pag["min_tag_id"], p.pag["next_min_id"])
					}
					next := p.pag["next_url"]
					if next == "" {
						if _, ok := p.pag["next_max_tag_id"]; ok {
							t.Errorf("last page has next_max_tag_id but no next_url")
						}
						break
					}
					if p.pag["next_max_tag_id"] != p.pag["next_max_id"] {
						t.Errorf("next_max_tag_id %q != next_max_id %q", p.pag["next_max_tag_id"], p.pag["next_max_id"])
					}
					if viaNextURL {
						u, err := url.Parse(next)
						if err != nil {
							t.Fatal(err)
						}
						if base := u.Scheme + "://" + u.Host + strings.TrimSuffix(u.Path, "/tags/walk/media/recent"); base != s.URL() {
							t.Fatalf("next_url base %q, want %q", base, s.URL())
						}
						params = u.Query()
					} else {
						params = auth("count", "10", "max_tag_id", p.pag["next_max_tag_id"])
					}
				}
				if !equalStrings(got, want) {
					t.Fatalf("walked %d media, want %d (first %v / %v)", len(got), len(want), head(got), head(want))
				}
				// The newest cursor is the ground truth's cursor of the newest media.
				tr := truthOf(s, "walk")
				if newest != tr[len(tr)-1].Cursor {
					t.Errorf("min_tag_id %q, ground truth cursor %q", newest, tr[len(tr)-1].Cursor)
				}
				// Nothing is newer than the newest cursor.
				if p := recent(t, s, "walk", auth("min_tag_id", newest)); len(p.items) != 0 || p.pag["next_url"] != "" {
					t.Errorf("polling at the head gave %d media and next_url %q", len(p.items), p.pag["next_url"])
				}
			})
		}
	}
}

func head(s []string) []string {
	if len(s) > 3 {
		return s[:3]
	}
	return s
}

func TestNextURLCarriesTheCallersOwnCredential(t *testing.T) {
	t.Parallel()
	cfg := plain(TagConfig{Name: "nx", Initial: 5})
	cfg.Tokens = append(cfg.Tokens, "tok/with+chars=")
	s := start(t, cfg)
	tests := []struct {
		name   string
		params url.Values
		key    string
		value  string
	}{
		{"an access token", url.Values{"access_token": {"tok/with+chars="}, "count": {"2"}}, "access_token", "tok/with+chars="},
		{"a client id", url.Values{"client_id": {"client-1"}, "count": {"2"}}, "client_id", "client-1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := recent(t, s, "nx", tc.params)
			u, err := url.Parse(p.pag["next_url"])
			if err != nil || p.pag["next_url"] == "" {
				t.Fatalf("next_url %q: %v", p.pag["next_url"], err)
			}
			q := u.Query()
			if q.Get(tc.key) != tc.value || q.Get("count") != "2" || q.Get("max_tag_id") != p.pag["next_max_tag_id"] {
				t.Errorf("next_url query %v lacks the caller's %s, count or max_tag_id", withoutCredentials(q), tc.key)
			}
		})
	}
}

func TestCountIsCappedAndDefaulted(t *testing.T) {
	t.Parallel()
	s := start(t, plain(TagConfig{Name: "many", Initial: 80}))
	tests := []struct {
		name  string
		count string
		want  int
	}{
		{"no count gives 20", "", 20},
		{"count 5 gives 5", "5", 5},
		{"count 33 gives 33", "33", 33},
		{"count 34 gives 33", "34", 33},
		{"count 1000 gives 33", "1000", 33},
		{"count 0 gives the default", "0", 20},
		{"a negative count gives the default", "-4", 20},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			params := auth()
			if tc.count != "" {
				params.Set("count", tc.count)
			}
			if p := recent(t, s, "many", params); len(p.items) != tc.want {
				t.Errorf("%d media, want %d", len(p.items), tc.want)
			}
		})
	}
}

func TestMinTagIDExclusiveOrInclusive(t *testing.T) {
	t.Parallel()
	for _, inclusive := range []bool{false, true} {
		for _, style := range []CursorStyle{CursorNumeric, CursorOpaque} {
			t.Run(fmt.Sprintf("inclusive=%v with %s cursors", inclusive, style), func(t *testing.T) {
				cfg := plain(TagConfig{Name: "bound", Initial: 10})
				cfg.InclusiveMin, cfg.Cursors = inclusive, style
				s := start(t, cfg)
				tr := truthOf(s, "bound")
				p := recent(t, s, "bound", auth("min_tag_id", tr[6].Cursor))
				want := []string{tr[9].MediaID, tr[8].MediaID, tr[7].MediaID}
				if inclusive {
					want = append(want, tr[6].MediaID)
				}
				if !equalStrings(p.ids(), want) {
					t.Errorf("got %v, want %v", p.ids(), want)
				}
				// max_tag_id is always exclusive.
				p = recent(t, s, "bound", auth("max_tag_id", tr[2].Cursor))
				if !equalStrings(p.ids(), []string{tr[1].MediaID, tr[0].MediaID}) {
					t.Errorf("max_tag_id: got %v", p.ids())
				}
				// min and max together bound a window; deprecated names work the same.
				for _, names := range [][2]string{{"min_tag_id", "max_tag_id"}, {"min_id", "max_id"}} {
					p = recent(t, s, "bound", auth(names[0], tr[2].Cursor, names[1], tr[5].Cursor))
					want := []string{tr[4].MediaID, tr[3].MediaID}
					if inclusive {
						want = append(want, tr[2].MediaID)
					}
					if !equalStrings(p.ids(), want) {
						t.Errorf("%v: got %v, want %v", names, p.ids(), want)
					}
				}
			})
		}
	}
}

func TestNumericCursorsAreComparedAsIntegers(t *testing.T) {
	t.Parallel()
	s := start(t, plain(TagConfig{Name: "digits", Initial: 200}))
	tr := truthOf(s, "digits")
	var short, long int = -1, -1
	for i, x := range tr {
		if len(x.Cursor) < 16 || len(x.Cursor) > 19 {
			t.Fatalf("cursor %q has %d digits", x.Cursor, len(x.Cursor))
		}
		if _, err := strconv.ParseUint(x.Cursor, 10, 64); err != nil {
			t.Fatalf("cursor %q: %v", x.Cursor, err)
		}
		if strings.HasPrefix(x.MediaID, x.Cursor) {
			t.Fatalf("cursor %q is the media id %q", x.Cursor, x.MediaID)
		}
		if len(x.Cursor) == 16 {
			short = i
		} else if long < 0 {
			long = i
		}
		if i > 0 {
			a, _ := new(big.Int).SetString(tr[i-1].Cursor, 10)
			b, _ := new(big.Int).SetString(x.Cursor, 10)
			if a.Cmp(b) >= 0 {
				t.Fatalf("cursors not increasing: %s then %s", tr[i-1].Cursor, x.Cursor)
			}
		}
	}
	if short < 0 || long < 0 || long != short+1 {
		t.Fatalf("want a 16 to 17 digit crossing, got last 16-digit %d, first longer %d", short, long)
	}
	newer := newestFirst(s, "digits")[:len(tr)-short-1]
	tests := []struct {
		name   string
		params url.Values
		want   []string
	}{
		{"a 16-digit min_tag_id returns the 17-digit items after it", auth("count", "33", "min_tag_id", tr[short].Cursor), newer[:33]},
		{"leading zeros do not change the value", auth("count", "33", "min_tag_id", "000"+tr[short].Cursor), newer[:33]},
		{"a 17-digit max_tag_id returns the 16-digit items before it", auth("count", "2", "max_tag_id", tr[long].Cursor), []string{tr[short].MediaID, tr[short-1].MediaID}},
		{"a cursor beyond 2^64 as max_tag_id returns the newest", auth("count", "1", "max_tag_id", "123456789012345678901234567890"), []string{tr[len(tr)-1].MediaID}},
		{"a cursor beyond 2^64 as min_tag_id returns nothing", auth("min_tag_id", "123456789012345678901234567890"), []string{}},
		{"a cursor of zero as min_tag_id returns the newest", auth("count", "1", "min_tag_id", "0"), []string{tr[len(tr)-1].MediaID}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := recent(t, s, "digits", tc.params).ids(); !equalStrings(got, tc.want) {
				t.Errorf("got %v, want %v", head(got), head(tc.want))
			}
		})
	}
}

func TestOpaqueCursorsLookLikeTheAPIs(t *testing.T) {
	t.Parallel()
	cfg := plain(TagConfig{Name: "opq", Initial: 5})
	cfg.Cursors = CursorOpaque
	s := start(t, cfg)
	seen := map[string]bool{}
	for _, tr := range truthOf(s, "opq") {
		if !strings.HasPrefix(tr.Cursor, "AQ") || len(tr.Cursor) < 40 || seen[tr.Cursor] {
			t.Errorf("cursor %q is not a fresh AQ... string", tr.Cursor)
		}
		seen[tr.Cursor] = true
	}
}

func TestMalformedParametersGiveTheInvalidParametersEnvelope(t *testing.T) {
	t.Parallel()
	numeric := start(t, plain(TagConfig{Name: "bad", Initial: 3}))
	ocfg := plain(TagConfig{Name: "bad", Initial: 3})
	ocfg.Cursors = CursorOpaque
	opaque := start(t, ocfg)
	validOpaque := truthOf(opaque, "bad")[1].Cursor
	flipped := []byte(validOpaque)
	flipped[5] ^= 1
	tests := []struct {
		name   string
		s      *Server
		params url.Values
	}{
		{"a non-numeric count", numeric, auth("count", "ten")},
		{"a count with spaces", numeric, auth("count", " 5")},
		{"a float count", numeric, auth("count", "5.0")},
		{"a huge count", numeric, auth("count", "99999999999999999999999")},
		{"a numeric cursor with letters", numeric, auth("min_tag_id", "12a4")},
		{"a negative numeric cursor", numeric, auth("max_tag_id", "-5")},
		{"a media-id style cursor", numeric, auth("max_tag_id", "1084958352897296009_1134740592")},
		{"an opaque cursor in numeric mode", numeric, auth("min_tag_id", validOpaque)},
		{"a numeric cursor in opaque mode", opaque, auth("min_tag_id", "1084955995775571154")},
		{"an opaque cursor without its prefix", opaque, auth("min_tag_id", validOpaque[2:])},
		{"an opaque cursor with a flipped character", opaque, auth("max_tag_id", string(flipped))},
		{"an opaque cursor with bad base64", opaque, auth("max_tag_id", "AQ!!!!")},
		{"an overlong cursor", numeric, auth("max_tag_id", strings.Repeat("1", 300))},
		{"a deprecated min_id that is malformed", numeric, auth("min_id", "x")},
		{"a callback that is not an identifier", numeric, auth("callback", "alert(1)//")},
		{"a tag name with punctuation", numeric, auth()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := "/tags/bad/media/recent"
			if strings.Contains(tc.name, "punctuation") {
				path = "/tags/b%21d/media/recent"
			}
			a := get(t, tc.s, path, tc.params)
			if a.status != 400 {
				t.Fatalf("status %d body %.200s", a.status, a.body)
			}
			e := decode(t, a)
			if e.Meta.Code != 400 || e.Meta.ErrorType != errInvalidParams || e.Meta.ErrorMessage == "" {
				t.Errorf("meta %+v", e.Meta)
			}
		})
	}
}

func TestErrorShapes(t *testing.T) {
	t.Parallel()
	cfg := plain(TagConfig{Name: "err", Initial: 3})
	cfg.Tokens = append(cfg.Tokens, "revoked-now", "revoked-later")
	s := start(t, cfg)
	s.RevokeToken("revoked-now")
	s.RevokeTokenAt("revoked-later", time.Now().Add(time.Hour))
	tests := []struct {
		name     string
		method   string
		path     string
		params   url.Values
		status   int
		wantType string
	}{
		{"no credential gives OAuthParameterException", "GET", "/tags/err/media/recent", nil, 400, errOAuthParameter},
		{"an unknown client id gives OAuthParameterException", "GET", "/tags/err/media/recent", url.Values{"client_id": {"nope"}}, 400, errOAuthParameter},
		{"an unknown token gives OAuthAccessTokenException", "GET", "/tags/err/media/recent", url.Values{"access_token": {"nope"}}, 400, errOAuthAccessToken},
		{"a revoked token gives OAuthAccessTokenException", "GET", "/tags/err/media/recent", url.Values{"access_token": {"revoked-now"}}, 400, errOAuthAccessToken},
		{"a token revoked in the future still works", "GET", "/tags/err/media/recent", url.Values{"access_token": {"revoked-later"}}, 200, ""},
		{"an unknown path gives APINotFoundError, not 404", "GET", "/users/self/feed", auth(), 400, errNotFound},
		{"an unknown path without credentials gives APINotFoundError", "GET", "/nothing/here", nil, 400, errNotFound},
		{"an unknown media id gives APINotFoundError", "GET", "/media/123_456", auth(), 400, errNotFound},
		{"POST to a read endpoint gives APINotFoundError", "POST", "/tags/err/media/recent", auth(), 400, errNotFound},
		{"tag search without q is invalid", "GET", "/tags/search", auth(), 400, errInvalidParams},
		{"a bad _method is invalid", "POST", "/media/x/likes", auth("_method", "PATCH"), 400, errInvalidParams},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := call(t, s, tc.method, tc.path, tc.params)
			if a.status != tc.status {
				t.Fatalf("status %d, want %d: %.200s", a.status, tc.status, a.body)
			}
			e := decode(t, a)
			if e.Meta.Code != tc.status || e.Meta.ErrorType != tc.wantType {
				t.Errorf("meta %+v, want code %d type %q", e.Meta, tc.status, tc.wantType)
			}
			if a.header.Get("X-Ratelimit-Limit") == "" {
				t.Errorf("no X-Ratelimit-Limit header")
			}
			if contains(a.body, "revoked-now") || contains(a.body, "nope") {
				t.Errorf("the answer echoes the credential: %s", a.body)
			}
		})
	}
}

func TestJSONPWrapsAnyAnswer(t *testing.T) {
	t.Parallel()
	s := start(t, plain(TagConfig{Name: "js", Initial: 3}))
	tests := []struct {
		name   string
		path   string
		params url.Values
		status int
	}{
		{"a page", "/tags/js/media/recent", auth("callback", "cb"), 200},
		{"tag info with a dotted callback", "/tags/js", auth("callback", "window.app.cb_1"), 200},
		{"an error", "/nope", auth("callback", "$cb"), 400},
		{"an authentication error", "/tags/js", url.Values{"callback": {"cb"}}, 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := get(t, s, tc.path, tc.params)
			cb := tc.params.Get("callback")
			if a.status != tc.status {
				t.Fatalf("status %d", a.status)
			}
			body := string(a.body)
			if !strings.HasPrefix(body, cb+"(") || !strings.HasSuffix(body, ");") {
				t.Fatalf("not wrapped in %s(...); : %.100s", cb, body)
			}
			if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
				t.Errorf("Content-Type %q", ct)
			}
			inner := body[len(cb)+1 : len(body)-2]
			var v map[string]any
			if err := json.Unmarshal([]byte(inner), &v); err != nil {
				t.Errorf("inner JSON: %v", err)
			}
			if _, ok := v["meta"]; !ok {
				t.Errorf("inner JSON has no meta")
			}
		})
	}
}

func TestLikesWithMethodOverride(t *testing.T) {
	t.Parallel()
	s := start(t, plain(TagConfig{Name: "lk", Initial: 2}))
	id := newestFirst(s, "lk")[0]
	likes := func() int {
		t.Helper()
		var m pageItem
		mustUnmarshal(t, decode(t, get(t, s, "/media/"+id, auth())).Data, &m)
		return m.Likes.Count
	}
	base := likes()
	form := func(method string, kv ...string) answer {
		t.Helper()
		v := auth(kv...)
		req, _ := http.NewRequest(method, s.URL()+"/media/"+id+"/likes", strings.NewReader(v.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return do(t, s, req)
	}
	steps := []struct {
		name   string
		send   func() answer
		status int
		delta  int
	}{
		{"POST likes", func() answer { return form("POST") }, 200, 1},
		{"POST again is idempotent", func() answer { return form("POST") }, 200, 1},
		{"POST with _method=DELETE in the body unlikes", func() answer { return form("POST", "_method", "DELETE") }, 200, 0},
		{"POST with _method=PUT in the query likes", func() answer { return call(t, s, "POST", "/media/"+id+"/likes", auth("_method", "PUT")) }, 200, 1},
		{"DELETE unlikes", func() answer { return call(t, s, "DELETE", "/media/"+id+"/likes", auth()) }, 200, 0},
		{"a client id cannot like", func() answer {
			return call(t, s, "POST", "/media/"+id+"/likes", url.Values{"client_id": {"client-1"}})
		}, 400, 0},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			a := st.send()
			if a.status != st.status {
				t.Fatalf("status %d: %.200s", a.status, a.body)
			}
			if e := decode(t, a); st.status == 200 && string(e.Data) != "null" {
				t.Errorf("data %s, want null", e.Data)
			}
			if got := likes(); got != base+st.delta {
				t.Errorf("likes.count %d, want %d", got, base+st.delta)
			}
		})
	}
}

func TestRateLimitHeadersAndOverLimitAnswers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		mode     OverLimit
		status   int
		flat     bool
		headers  bool
		wantType string
	}{
		{"503 with the envelope by default", Over503, 503, false, true, errOAuthRateLimit},
		{"429 with the envelope", Over429, 429, false, true, errOAuthRateLimit},
		{"429 with the flat 2017 body and no headers", Over429Flat, 429, true, false, errOAuthRateLimit},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := plain(TagConfig{Name: "lim", Initial: 3})
			cfg.RequestsPerHour, cfg.OverLimit = 3, tc.mode
			s := start(t, cfg)
			for i, wantRemaining := range []string{"2", "1", "0"} {
				params := auth()
				if i == 1 {
					params.Set("count", "bad") // errors count against the limit too
				}
				a := get(t, s, "/tags/lim/media/recent", params)
				if a.header.Get("X-Ratelimit-Limit") != "3" || a.header.Get("X-Ratelimit-Remaining") != wantRemaining {
					t.Fatalf("request %d: limit %q remaining %q, want 3 %s", i, a.header.Get("X-Ratelimit-Limit"), a.header.Get("X-Ratelimit-Remaining"), wantRemaining)
				}
			}
			a := get(t, s, "/tags/lim/media/recent", auth())
			if a.status != tc.status {
				t.Fatalf("over the limit: status %d, want %d", a.status, tc.status)
			}
			var body map[string]any
			mustUnmarshal(t, a.body, &body)
			meta, hasMeta := body["meta"].(map[string]any)
			if tc.flat {
				if hasMeta || body["error_type"] != tc.wantType || body["code"] != float64(tc.status) || body["error_message"] == "" {
					t.Errorf("flat body %v", body)
				}
			} else if !hasMeta || meta["error_type"] != tc.wantType || meta["code"] != float64(tc.status) {
				t.Errorf("envelope %v", body)
			}
			if got := a.header.Get("X-Ratelimit-Remaining") != ""; got != tc.headers {
				t.Errorf("X-Ratelimit-Remaining present=%v, want %v", got, tc.headers)
			}
			// The client id has a limit of its own.
			if a := get(t, s, "/tags/lim", url.Values{"client_id": {"client-1"}}); a.status != 200 || a.header.Get("X-Ratelimit-Remaining") != "2" {
				t.Errorf("client id: status %d remaining %q", a.status, a.header.Get("X-Ratelimit-Remaining"))
			}
			st := s.Stats()
			if st.Credentials[0].Limited != 1 || st.Credentials[0].Requests != 4 || st.ByOutcome[outcomeLimited] != 1 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func TestRateLimitWindowSlides(t *testing.T) {
	t.Parallel()
	clock := newTestClock()
	cfg := plain(TagConfig{Name: "win", Initial: 1})
	cfg.RequestsPerHour, cfg.TimeScale = 2, 3600 // the hour passes in a second
	s := startWithClock(t, cfg, clock)
	status := func() int { return get(t, s, "/tags/win", auth()).status }
	for i, want := range []int{200, 200, 503} {
		if got := status(); got != want {
			t.Fatalf("request %d: status %d, want %d", i, got, want)
		}
		clock.Advance(100 * time.Millisecond)
	}
	clock.Advance(s.RateWindow() - 300*time.Millisecond) // the first request is one window old
	if got := status(); got != 200 {
		t.Fatalf("after the window slid past the first request: status %d, want 200", got)
	}
	if got := status(); got != 503 {
		t.Fatalf("the second request is still in the window: status %d, want 503", got)
	}
}

// TestRateLimitCountsPerHourAtEveryTimeScale runs one simulated hour of a credential, spread over the scaled window:
// the headers count in per-hour units whatever the scale, the request after the per-hour count is refused within
// the window, and the window's start frees one request exactly one RateWindow later.
func TestRateLimitCountsPerHourAtEveryTimeScale(t *testing.T) {
	t.Parallel() // 10,000 requests over HTTP: the longest test of the package
	tests := []struct {
		name   string
		scale  float64
		window time.Duration
	}{
		{"at time scale 1 an hour allows 5000 requests", 1, time.Hour},
		{"at time scale 3600 a real second is an hour that allows 5000 requests", 3600, time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const perHour = 5000
			clock := newTestClock()
			cfg := plain(TagConfig{Name: "hour", Initial: 1})
			cfg.TimeScale = tc.scale // RequestsPerHour: the default
			s := startWithClock(t, cfg, clock)
			if s.RateWindow() != tc.window {
				t.Fatalf("RateWindow = %v, want %v", s.RateWindow(), tc.window)
			}
			step := (tc.window - 1) / perHour // the per-hour count, all inside one window
			for i := range perHour {
				a := serve(t, s, "/tags/hour", auth()) // in-process: the count, not the transport, is tested here
				lim, rem := a.header.Get("X-Ratelimit-Limit"), a.header.Get("X-Ratelimit-Remaining")
				if a.status != 200 || lim != "5000" || rem != strconv.Itoa(perHour-1-i) {
					t.Fatalf("request %d: status %d, X-Ratelimit-Limit %q, X-Ratelimit-Remaining %q; want 200, 5000, %d",
						i+1, a.status, lim, rem, perHour-1-i)
				}
				clock.Advance(step)
			}
			// Now at start + 5000*step, still inside the window that began with the first request.
			a := get(t, s, "/tags/hour", auth())
			if e := decode(t, a); a.status != 503 || e.Meta.ErrorType != errOAuthRateLimit ||
				a.header.Get("X-Ratelimit-Limit") != "5000" || a.header.Get("X-Ratelimit-Remaining") != "0" {
				t.Fatalf("request 5001 in the window: status %d %s, limit %q, remaining %q; want 503 %s, 5000, 0",
					a.status, e.Meta.ErrorType, a.header.Get("X-Ratelimit-Limit"), a.header.Get("X-Ratelimit-Remaining"), errOAuthRateLimit)
			}
			if !strings.Contains(e0(t, a), "5000 requests per hour") {
				t.Errorf("over-limit message %q does not state the per-hour limit", e0(t, a))
			}
			clock.Advance(tc.window - perHour*step) // exactly one window after the first request
			if a := get(t, s, "/tags/hour", auth()); a.status != 200 || a.header.Get("X-Ratelimit-Remaining") != "0" {
				t.Fatalf("one window after the first request: status %d, remaining %q; want 200, 0",
					a.status, a.header.Get("X-Ratelimit-Remaining"))
			}
			if a := get(t, s, "/tags/hour", auth()); a.status != 503 {
				t.Fatalf("the second request is still in the window: status %d, want 503", a.status)
			}
			if st := s.Stats().Credentials[0]; st.Requests != perHour+3 || st.Limited != 2 {
				t.Errorf("stats: %d requests, %d limited; want %d, 2", st.Requests, st.Limited, perHour+3)
			}
		})
	}
}

// e0 returns the error message of an error answer.
func e0(t *testing.T, a answer) string {
	t.Helper()
	return decode(t, a).Meta.ErrorMessage
}

func TestMediaIDsAreUniqueAndWellFormed(t *testing.T) {
	t.Parallel()
	s := start(t, plain(TagConfig{Name: "a", Initial: 50}, TagConfig{Name: "b", Initial: 50}))
	seen := map[string]bool{}
	for _, tr := range s.GroundTruth() {
		num, user, ok := strings.Cut(tr.MediaID, "_")
		if _, err := strconv.ParseUint(num, 10, 64); err != nil || !ok || user == "" {
			t.Errorf("media id %q is not <n>_<user>", tr.MediaID)
		}
		if seen[tr.MediaID] {
			t.Errorf("media id %q twice", tr.MediaID)
		}
		seen[tr.MediaID] = true
	}
}
