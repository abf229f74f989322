package testenv

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tagstream/tagstream/internal/testkit"
)

const testToken = "tok-alpha.0001"

// TestMain runs four tests at a time: the era-client tests mostly wait for a Python interpreter to start, and
// with go test's default (GOMAXPROCS, two here) the CPU-bound tests would queue behind them.
func TestMain(m *testing.M) {
	testkit.ParallelWaiters(4)
	os.Exit(m.Run())
}

// start builds and starts a server; it is closed when the test ends.
func start(t *testing.T, cfg Config) *Server {
	t.Helper()
	return startWithClock(t, cfg, nil)
}

// plain returns a plain-HTTP config with one token and the given tags.
func plain(tags ...TagConfig) Config {
	return Config{PlainHTTP: true, Tokens: []string{testToken}, ClientIDs: []string{"client-1"}, Seed: 7, Tags: tags}
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

// call sends one request to the API path (relative to URL()) with params in the query.
func call(t *testing.T, s *Server, method, path string, params url.Values) answer {
	t.Helper()
	u := s.URL() + path
	if len(params) > 0 {
		u += "?" + params.Encode()
	}
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	return do(t, s, req)
}

// serve hands one GET of the API path (relative to URL()) with params to the API's handler in-process, without a
// connection: for tests that make thousands of requests to test what the handler counts.
func serve(t *testing.T, s *Server, path string, params url.Values) answer {
	t.Helper()
	u := s.URL() + path
	if len(params) > 0 {
		u += "?" + params.Encode()
	}
	rec := httptest.NewRecorder()
	s.api.Handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, u, nil))
	return answer{status: rec.Code, header: rec.Result().Header, body: rec.Body.Bytes()}
}

func do(t *testing.T, s *Server, req *http.Request) answer {
	t.Helper()
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}

func get(t *testing.T, s *Server, path string, params url.Values) answer {
	t.Helper()
	return call(t, s, http.MethodGet, path, params)
}

// auth returns params with the test token and the given key/value pairs.
func auth(kv ...string) url.Values {
	v := url.Values{"access_token": {testToken}}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

type envelope struct {
	Meta struct {
		Code         int    `json:"code"`
		ErrorType    string `json:"error_type"`
		ErrorMessage string `json:"error_message"`
	} `json:"meta"`
	Data       json.RawMessage            `json:"data"`
	Pagination map[string]json.RawMessage `json:"pagination"`
}

func decode(t *testing.T, a answer) envelope {
	t.Helper()
	var e envelope
	dec := json.NewDecoder(bytes.NewReader(a.body))
	dec.UseNumber()
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("decode %d body %.300q: %v", a.status, a.body, err)
	}
	return e
}

// pageItem is the part of a media object the tests look at.
type pageItem struct {
	ID          string `json:"id"`
	CreatedTime string `json:"created_time"`
	Type        string `json:"type"`
	Caption     *struct {
		Text string `json:"text"`
	} `json:"caption"`
	Likes struct {
		Count int `json:"count"`
	} `json:"likes"`
}

type page struct {
	items []pageItem
	pag   map[string]string
}

// recent fetches one page of a tag and checks it is a 200 envelope.
func recent(t *testing.T, s *Server, tag string, params url.Values) page {
	t.Helper()
	a := get(t, s, "/tags/"+tag+"/media/recent", params)
	if a.status != http.StatusOK {
		t.Fatalf("recent %s %v: status %d body %.300s", tag, withoutCredentials(params), a.status, a.body)
	}
	e := decode(t, a)
	var p page
	if err := json.Unmarshal(e.Data, &p.items); err != nil {
		t.Fatalf("data: %v", err)
	}
	p.pag = map[string]string{}
	for k, v := range e.Pagination {
		var str string
		if err := json.Unmarshal(v, &str); err != nil {
			t.Fatalf("pagination %s is not a string: %s", k, v)
		}
		p.pag[k] = str
	}
	return p
}

func (p page) ids() []string {
	out := make([]string, len(p.items))
	for i, it := range p.items {
		out[i] = it.ID
	}
	return out
}

// withoutCredentials drops credentials from params for messages.
func withoutCredentials(v url.Values) string {
	c := url.Values{}
	for k, vs := range v {
		if k == "access_token" || k == "client_id" {
			continue
		}
		c[k] = vs
	}
	return c.Encode()
}

// newestFirst returns the media ids of a tag's ground truth, newest first, without deleted ones.
func newestFirst(s *Server, tag string) []string {
	var out []string
	truth := s.GroundTruth()
	for i := len(truth) - 1; i >= 0; i-- {
		if truth[i].Tag == tag && truth[i].DeletedAt.IsZero() {
			out = append(out, truth[i].MediaID)
		}
	}
	return out
}

func truthOf(s *Server, tag string) []Truth {
	var out []Truth
	for _, tr := range s.GroundTruth() {
		if tr.Tag == tag {
			out = append(out, tr)
		}
	}
	return out
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// waitTimeout bounds testkit.Eventually: a safety net against a hung test, never a timing assertion.
const waitTimeout = 15 * time.Second

// waitAPIBack waits until the API, taken down by Server.Down, answers GET /tags/{tag} with 200 again.
func waitAPIBack(t *testing.T, s *Server, tag string) {
	t.Helper()
	testkit.Eventually(t, waitTimeout, "the API is back", func() bool {
		resp, err := s.Client().Get(s.URL() + "/tags/" + tag + "?client_id=client-1")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// newTestClock returns a settable clock for the time of API requests (Server.clock), at 2015-07-01 12:00 UTC.
func newTestClock() *testkit.Clock {
	return testkit.NewClock(time.Date(2015, 7, 1, 12, 0, 0, 0, time.UTC))
}

// startWithClock builds and starts a server whose API requests happen at clock's time (nil: the real time); it
// is closed when the test ends.
func startWithClock(t *testing.T, cfg Config, clock *testkit.Clock) *Server {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if clock != nil {
		s.clock = clock.Now
	}
	if err := s.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func contains(b []byte, s string) bool { return strings.Contains(string(b), s) }
