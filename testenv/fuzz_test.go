package testenv

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// FuzzQuery feeds arbitrary query strings, paths and methods to the parameter parser and to the whole API
// handler. No input may panic or hang, and every answer must be the API's JSON (or JSONP) with a status the API
// uses.
func FuzzQuery(f *testing.F) {
	seeds := []struct{ method, path, query string }{
		{"GET", "/v1/tags/coffee/media/recent", "access_token=" + testToken + "&count=33"},
		{"GET", "/v1/tags/coffee/media/recent", "access_token=" + testToken + "&min_tag_id=9999999999990001&max_tag_id=10000000000000500"},
		{"GET", "/v1/tags/coffee/media/recent", "access_token=" + testToken + "&count=1e3&min_id=-1"},
		{"GET", "/v1/tags/coffee/media/recent", "access_token=" + testToken + "&max_tag_id=AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
		{"GET", "/v1/tags/coffee/media/recent", "client_id=client-1&callback=a.b&count=%zz"},
		{"GET", "/v1/tags/search", "access_token=" + testToken + "&q=%E2%9C%93"},
		{"POST", "/v1/media/1_2/likes", "access_token=" + testToken + "&_method=DELETE"},
		{"GET", "/v1/media/popular", "access_token=" + testToken + "&callback=%00"},
		{"GET", "/v1/tags/\xff/media/recent", "access_token=" + testToken},
		{"DELETE", "/v1/", ";;&&==&access_token"},
	}
	for _, sd := range seeds {
		f.Add(sd.method, sd.path, sd.query)
	}
	numeric, err := New(Config{PlainHTTP: true, Tokens: []string{testToken}, ClientIDs: []string{"client-1"},
		RequestsPerHour: 1 << 30, TimeScale: 3.6e6, Tags: []TagConfig{{Name: "coffee", Initial: 60}}})
	if err != nil {
		f.Fatal(err)
	}
	opaque, err := New(Config{PlainHTTP: true, Tokens: []string{testToken}, Cursors: CursorOpaque, InclusiveMin: true,
		Retention: 20, RequestsPerHour: 1 << 30, TimeScale: 3.6e6, Tags: []TagConfig{{Name: "coffee", Initial: 60}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, method, path, query string) {
		for _, s := range []*Server{numeric, opaque} {
			if q, err := url.ParseQuery(query); err == nil {
				if pq, e := parseRecent(q, s.codec); e == nil && (pq.count < 1 || pq.count > maxCount) {
					t.Fatalf("count %d out of range", pq.count)
				}
			}
			if !validMethod(method) || strings.ContainsAny(path, " \r\n#?") || !strings.HasPrefix(path, "/") {
				continue
			}
			req := httptest.NewRequest("GET", "/", strings.NewReader(query))
			req.Method = method
			req.URL = &url.URL{Path: path, RawQuery: query}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			rec := httptest.NewRecorder()
			done := make(chan struct{})
			go func() {
				defer close(done)
				s.serveAPI(rec, req)
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatalf("%s %q ?%q hangs", method, path, query)
			}
			switch rec.Code {
			case 200, 400, 429, 503:
			default:
				t.Fatalf("%s %q ?%q: status %d", method, path, query, rec.Code)
			}
			body := rec.Body.Bytes()
			if ct := rec.Header().Get("Content-Type"); strings.HasPrefix(ct, "text/javascript") {
				i := strings.IndexByte(string(body), '(')
				if i < 0 || !strings.HasSuffix(string(body), ");") {
					t.Fatalf("bad JSONP %.100q", body)
				}
				body = body[i+1 : len(body)-2]
			}
			if method != http.MethodHead && !json.Valid(body) {
				t.Fatalf("%s %q ?%q: invalid JSON %.200q", method, path, query, body)
			}
		}
	})
}

func validMethod(m string) bool {
	if m == "" || len(m) > 10 {
		return false
	}
	for i := 0; i < len(m); i++ {
		if m[i] < 'A' || m[i] > 'Z' {
			return false
		}
	}
	return true
}
