package poller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tagstream/tagstream/internal/redact"
	"github.com/tagstream/tagstream/internal/testkit"
	"github.com/tagstream/tagstream/poller/checkpoint"
	"github.com/tagstream/tagstream/schema"
)

const secretToken = "s3cr3t-access-token-42"

// newTestClient builds a client for base with one token and fast backoffs.
func newTestClient(t *testing.T, base string, mut func(*Config)) *client {
	t.Helper()
	cfg := Config{
		BaseURL:        base,
		Tokens:         []Token{{Value: secretToken}},
		BackoffInitial: time.Millisecond,
		BackoffMax:     5 * time.Millisecond,
		MaxAttempts:    3,
		RequestTimeout: 2 * time.Second,
		RateWindow:     time.Second, // the tokens' budget paces no test of the client
	}
	if mut != nil {
		mut(&cfg)
	}
	cfg, err := cfg.resolve()
	if err != nil {
		t.Fatal(err)
	}
	m, _ := newMetrics(nil)
	log := slog.New(slog.DiscardHandler)
	clk := newClock(cfg.Clock)
	c, err := newClient(cfg, clk, newTokenPool(cfg, clk, log, m), log, m)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const okPage = `{"meta":{"code":200},"data":[{"id":"1_2","created_time":"1443556800","type":"image"}],` +
	`"pagination":{"min_tag_id":"1000"}}`

func TestClientClassifiesAnswers(t *testing.T) {
	cases := []struct {
		name   string
		status int
		ctype  string
		body   string
		want   error // nil = success
	}{
		{"a 200 envelope is a page", 200, "application/json", okPage, nil},
		{"a 503 with the API's rate-limit envelope is rate limiting", 503, "application/json",
			`{"meta":{"error_type":"OAuthRateLimitException","code":503,"error_message":"over"}}`, ErrRateLimited},
		{"a 503 with any API envelope parks the token like the seed says", 503, "application/json",
			`{"meta":{"error_type":"ServiceUnavailableException","code":503,"error_message":"busy"}}`, ErrRateLimited},
		{"a 503 HTML page is a transient server fault", 503, "text/html",
			`<html><body><h1>503 Service Unavailable</h1></body></html>`, ErrTransient},
		{"a 429 meta envelope is rate limiting", 429, "application/json",
			`{"meta":{"error_type":"OAuthRateLimitException","code":429,"error_message":"The maximum number of requests per hour has been exceeded."}}`, ErrRateLimited},
		{"the 2017 flat 429 body is rate limiting", 429, "application/json; charset=utf-8",
			`{"error_type":"OAuthRateLimitException","code":429,"error_message":"The maximum number of requests per hour has been exceeded. You have made 201 requests of the 200 allowed in the last hour."}`, ErrRateLimited},
		{"OAuthAccessTokenException means the token is invalid", 400, "application/json",
			`{"meta":{"error_type":"OAuthAccessTokenException","code":400,"error_message":"The access_token provided is invalid."}}`, ErrTokenInvalid},
		{"OAuthPermissionsException means the token cannot poll tags", 400, "application/json",
			`{"meta":{"error_type":"OAuthPermissionsException","code":400,"error_message":"This request requires scope=public_content, but this access token is not authorized with this scope."}}`, ErrTokenInvalid},
		{"APINotFoundError is permanent", 400, "application/json",
			`{"meta":{"error_type":"APINotFoundError","code":400,"error_message":"this tag cannot be viewed"}}`, ErrPermanent},
		{"the flat 403 OAuthForbiddenException is permanent", 403, "application/json",
			`{"code":403,"error_type":"OAuthForbiddenException","error_message":"Invalid signed-request: Missing required parameter 'sig'"}`, ErrPermanent},
		{"a 500 envelope is transient", 500, "application/json",
			`{"meta":{"error_type":"APIError","code":500,"error_message":"oops"}}`, ErrTransient},
		{"a 502 HTML page is transient", 502, "text/html", `<html>Bad Gateway</html>`, ErrTransient},
		{"a 404 HTML page (wrong base URL) is permanent", 404, "text/html", `<html>Not Found</html>`, ErrPermanent},
		{"a truncated JSON body is transient", 200, "application/json", okPage[:len(okPage)/2], ErrTransient},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tc.ctype)
				w.WriteHeader(tc.status)
				fmt.Fprint(w, tc.body)
			}))
			defer srv.Close()
			c := newTestClient(t, srv.URL+"/v1", nil)
			tok, err := c.pool.acquire(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			page, err := c.once(context.Background(), tok, query{tag: "x", count: 33})
			if tc.want == nil {
				if err != nil || page == nil || len(page.Media) != 1 {
					t.Fatalf("once = %v, %v; want a page with one media", page, err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("once error = %v, want class %v", err, tc.want)
			}
			if strings.Contains(err.Error(), secretToken) {
				t.Fatalf("error contains the token: %v", err)
			}
		})
	}
}

// TestClientBuildsRequestsOnTheBaseURL checks the query a page request carries and that the next page is asked for
// with max_tag_id on the configured base URL, never by following next_url.
func TestClientNeverFollowsNextURL(t *testing.T) {
	var evilHits atomic.Int32
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { evilHits.Add(1) }))
	defer evil.Close()
	var queries []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		queries = append(queries, r.URL.Path+" count="+q.Get("count")+" min="+q.Get("min_tag_id")+" max="+q.Get("max_tag_id"))
		if q.Get("access_token") != secretToken {
			t.Errorf("request without the access token")
		}
		w.Header().Set("Content-Type", "application/json")
		if q.Get("max_tag_id") == "" {
			fmt.Fprintf(w, `{"meta":{"code":200},"data":[{"id":"3_1"},{"id":"2_1"}],"pagination":{"next_max_tag_id":"200",`+
				`"min_tag_id":"300","next_url":"%s/v1/tags/caf%%C3%%A9/media/recent?access_token=%s&max_tag_id=200"}}`, evil.URL, secretToken)
			return
		}
		fmt.Fprint(w, `{"meta":{"code":200},"data":[{"id":"1_1"}],"pagination":{"min_tag_id":"100"}}`)
	}))
	defer srv.Close()
	p := newTestPoller(t, srv.URL+"/v1", nil)
	r := &pollRun{p: p, ctx: context.Background(), commitCtx: context.Background(), tag: "café"}
	w, err := r.walk(walkSpec{min: "50", maxPages: 5, splitAt: 5, keep: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(w.items) != 3 || !w.complete || w.head != "300" {
		t.Fatalf("walk = %d items, complete %v, head %q; want 3, true, 300", len(w.items), w.complete, w.head)
	}
	want := []string{"/v1/tags/café/media/recent count=33 min=50 max=", "/v1/tags/café/media/recent count=33 min=50 max=200"}
	if strings.Join(queries, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(queries, "\n"), strings.Join(want, "\n"))
	}
	if evilHits.Load() != 0 {
		t.Errorf("the host named in next_url got %d requests", evilHits.Load())
	}
}

// TestClientRefusesEveryRedirect checks that no redirect is followed: one to another host would carry the token
// there, and one to the same host drops the query, so the request arrives without its credential and the
// answer ("missing client_id") would retire a good client id.
func TestClientRefusesEveryRedirect(t *testing.T) {
	cases := []struct {
		name     string
		clientID bool
		target   func(other, self string, r *http.Request) string
		host     func(other, self string) string // the host the error must name
	}{
		{"a redirect to another host is refused", false,
			func(other, _ string, r *http.Request) string { return other + r.URL.RequestURI() },
			func(other, _ string) string { return other }},
		{"a redirect to the same host without the query is refused and retires nothing", true,
			func(_, _ string, r *http.Request) string { return r.URL.Path },
			func(_, self string) string { return self + " (the same host)" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var otherHits, bare atomic.Int32
			other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { otherHits.Add(1) }))
			defer other.Close()
			var self string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.RawQuery == "" {
					bare.Add(1) // the redirected request: no credential
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(400)
					fmt.Fprint(w, `{"meta":{"error_type":"OAuthParameterException","code":400,"error_message":"Missing client_id or access_token URL parameter."}}`)
					return
				}
				http.Redirect(w, r, tc.target(other.URL, self, r), http.StatusFound)
			}))
			defer srv.Close()
			self = srv.URL
			c := newTestClient(t, srv.URL+"/v1", func(c *Config) { c.Tokens[0].ClientID = tc.clientID })
			_, err := c.page(context.Background(), query{tag: "x", count: 33})
			if !errors.Is(err, ErrRedirect) || !errors.Is(err, ErrPermanent) {
				t.Fatalf("page error = %v, want ErrRedirect and ErrPermanent", err)
			}
			if want := "HTTP 302 to " + tc.host(other.URL, self); !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
			if strings.Contains(err.Error(), secretToken) {
				t.Fatalf("error contains the token: %v", err)
			}
			if otherHits.Load() != 0 || bare.Load() != 0 {
				t.Fatalf("the redirect was followed: %d requests elsewhere, %d without a credential", otherHits.Load(), bare.Load())
			}
			if st := c.pool.status(); st[0].Retired {
				t.Fatalf("the token was retired")
			}
		})
	}
}

// TestNoFragmentOfAnEchoedToken has the API echo the token in an error message across the 300-byte cut of
// schema.APIError: no 8-byte piece of the token may survive in the error, the logs, the status or Ready.
func TestNoFragmentOfAnEchoedToken(t *testing.T) {
	t.Parallel()
	const token = "echoed-token-ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(500)
		msg := strings.Repeat("x", 270) + "bad token " + r.URL.Query().Get("access_token") + " at the cut"
		fmt.Fprintf(w, `{"meta":{"error_type":"APIError","code":500,"error_message":%q}}`, msg)
	}))
	defer srv.Close()
	cfg := Config{BaseURL: srv.URL + "/v1", Tokens: []Token{{Value: token}}, Tags: []string{"echo"},
		MinInterval: 10 * time.Millisecond, MaxInterval: 50 * time.Millisecond, BackoffInitial: time.Millisecond,
		BackoffMax: 5 * time.Millisecond, MaxAttempts: 2}
	r := startPoller(t, cfg, nil)
	var ready error
	testkit.Eventually(t, 20*time.Second, "the API to count as down", func() bool {
		ready = r.p.Ready()
		return errors.Is(ready, ErrAPIDown)
	})
	testkit.Eventually(t, 20*time.Second, "a failed poll in the status", func() bool {
		st := r.p.Status()
		return len(st) == 1 && st[0].LastError != ""
	})
	_, probeErr := Probe(context.Background(), cfg)
	if probeErr == nil {
		t.Fatal("Probe succeeded against a failing API")
	}
	haystacks := map[string]string{
		"Ready":  ready.Error(),
		"status": r.p.Status()[0].LastError,
		"logs":   r.logs.String(),
		"Probe":  probeErr.Error(),
	}
	if !strings.Contains(haystacks["status"], "bad token "+redact.Placeholder) {
		t.Errorf("the status does not show the redacted echo: %s", haystacks["status"])
	}
	for where, text := range haystacks {
		for i := 0; i+8 <= len(token); i++ {
			if frag := token[i : i+8]; strings.Contains(text, frag) {
				t.Errorf("%s holds %q, a fragment of the token: %s", where, frag, text)
				break
			}
		}
	}
}

func TestClientErrorsNeverContainTheToken(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		serve func(t *testing.T) string // returns the base URL
		class error
	}{
		{"a refused connection", func(t *testing.T) string {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := l.Addr().String()
			l.Close()
			return "http://" + addr + "/v1"
		}, ErrTransient},
		{"a timeout", func(t *testing.T) string {
			release := make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-release:
				case <-r.Context().Done():
				}
			}))
			t.Cleanup(func() { close(release); srv.Close() })
			return srv.URL + "/v1"
		}, ErrTransient},
		{"a connection closed mid-body", func(t *testing.T) string {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "5000")
				w.WriteHeader(200)
				fmt.Fprint(w, okPage[:40])
				conn, _, _ := http.NewResponseController(w).Hijack()
				conn.Close()
			}))
			t.Cleanup(srv.Close)
			return srv.URL + "/v1"
		}, ErrTransient},
		{"a TLS server without a trusted CA", func(t *testing.T) string {
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
			srv.Config.ErrorLog = log.New(io.Discard, "", 0)
			srv.StartTLS()
			t.Cleanup(srv.Close)
			return srv.URL + "/v1"
		}, ErrTransient},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestClient(t, tc.serve(t), func(c *Config) { c.RequestTimeout = 200 * time.Millisecond; c.MaxAttempts = 2 })
			_, err := c.page(context.Background(), query{tag: "x", min: "1", count: 33})
			if !errors.Is(err, tc.class) {
				t.Fatalf("page error = %v, want %v", err, tc.class)
			}
			if strings.Contains(err.Error(), secretToken) || strings.Contains(fmt.Sprintf("%+v %#v", err, err), secretToken) {
				t.Fatalf("error contains the token: %v", err)
			}
		})
	}
}

func TestCleanRemovesTheTokenInEveryForm(t *testing.T) {
	const secret = "tok+en/with&odd=chars"
	escaped := url.QueryEscape(secret)
	c := newTestClient(t, "https://api.example/v1", func(c *Config) { c.Tokens = []Token{{Value: secret}} })
	endpoint := c.endpoint("x")
	cases := []struct {
		name string
		err  error
	}{
		{"a message holding the token as is", errors.New("the access_token " + secret + " is invalid")},
		{"a message holding the token query-escaped", errors.New("GET /v1/tags/x?access_token=" + escaped + " failed")},
		{"a *url.Error whose cause echoes the escaped token", &url.Error{Op: "Get",
			URL: endpoint + "?access_token=" + escaped, Err: errors.New("bad answer to access_token=" + escaped)}},
		{"an API error whose message echoes the token", &schema.APIError{HTTPStatus: 400, Code: 400,
			Type: "APIError", Message: "unknown token " + secret}},
	}
	for _, tc := range cases {
		t.Run(tc.name+" loses it", func(t *testing.T) {
			got := c.clean(tc.err, "x")
			for _, form := range []string{secret, escaped} {
				if strings.Contains(got.Error(), form) {
					t.Fatalf("clean kept %q: %v", form, got)
				}
			}
			if !strings.Contains(got.Error(), redact.Placeholder) {
				t.Fatalf("clean does not say what it removed: %v", got)
			}
		})
	}
	t.Run("a *url.Error keeps only the endpoint", func(t *testing.T) {
		got := c.clean(&url.Error{Op: "Get", URL: endpoint + "?count=33&access_token=" + escaped, Err: io.EOF}, "x")
		if got.Error() != `Get "`+endpoint+`": EOF` {
			t.Fatalf("clean = %q", got)
		}
		if !errors.Is(got, io.EOF) {
			t.Fatalf("clean lost the cause")
		}
	})
	t.Run("a message without the token is returned as is", func(t *testing.T) {
		err := errors.New("connection refused")
		if got := c.clean(err, "x"); got != err {
			t.Fatalf("clean(%v) = %v, want the same error", err, got)
		}
	})
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2017, 4, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name, header string
		want         time.Duration
	}{
		{"absent is zero", "", 0},
		{"delay seconds", "120", 2 * time.Minute},
		{"an HTTP date", "Sat, 01 Apr 2017 12:00:30 GMT", 30 * time.Second},
		{"a date in the past is zero", "Sat, 01 Apr 2017 11:00:00 GMT", 0},
		{"garbage is zero", "soon", 0},
		{"negative is zero", "-5", 0},
		{"a huge value is capped at an hour", "99999999", time.Hour},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := retryAfter(tc.header, now); got != tc.want {
				t.Errorf("retryAfter(%q) = %s, want %s", tc.header, got, tc.want)
			}
		})
	}
}

// TestRetryAfterParksTheToken checks that a rate-limit answer with Retry-After parks that token for at least that
// long while another token carries on.
func TestRetryAfterParksTheToken(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Query().Get("access_token") == secretToken {
			w.Header().Set("Retry-After", "3600")
			w.WriteHeader(429)
			fmt.Fprint(w, `{"code":429,"error_type":"OAuthRateLimitException","error_message":"slow down"}`)
			return
		}
		fmt.Fprint(w, okPage)
	}))
	defer srv.Close()
	c := newTestClient(t, srv.URL+"/v1", func(c *Config) {
		c.Tokens = []Token{{Value: secretToken}, {Value: "second-token", ClientID: true}}
	})
	for range 5 {
		if _, err := c.page(context.Background(), query{tag: "x", count: 33}); err != nil {
			t.Fatal(err)
		}
	}
	st := c.pool.status()
	if until := time.Until(st[0].ParkedUntil); until < 59*time.Minute {
		t.Errorf("token 0 parked for %s, want about the Retry-After hour", until)
	}
	if !st[1].ParkedUntil.IsZero() {
		t.Errorf("token 1 is parked, want it in use")
	}
}

// newTestPoller builds a Poller for unit tests against base.
func newTestPoller(t *testing.T, base string, mut func(*Config)) *Poller {
	t.Helper()
	cfg := Config{BaseURL: base, Tokens: []Token{{Value: secretToken}}, BackoffInitial: time.Millisecond,
		BackoffMax: 5 * time.Millisecond}
	if mut != nil {
		mut(&cfg)
	}
	p, err := New(cfg, &memPublisher{}, checkpoint.NewMemory(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestTokensNeverLeak runs the poller through faults, a revoked token and rate limits with debug logging, then
// scans the logs, the statuses, the errors and the metrics for any token.
func TestTokensNeverLeak(t *testing.T) {
	srvTokens := []string{"leak-check-token-AAAA", "leak-check-token-BBBB"}
	tags := []string{"leak_a", "leak_b"}
	sim := startSimWithTags(t, srvTokens, tags)
	cfg := testConfig(sim, srvTokens, tags)
	cfg.Tokens = append(cfg.Tokens, Token{Value: "leak-check-unknown-CCCC"}) // rejected: retired
	cfg.MaxAttempts = 2
	reg := prometheus.NewRegistry()
	logs := &testkit.SyncBuffer{}
	pub := &memPublisher{}
	p, err := New(cfg, pub, checkpoint.NewMemory(), slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	sim.SetFaults(faultsEverywhere())
	for i := range 20 {
		sim.Post(tags[i%2], 3)
		if i%5 == 4 {
			waitPolled(t, p)
		}
	}
	testkit.Eventually(t, 20*time.Second, "errors to be logged", func() bool { return strings.Contains(logs.String(), "retrying") })
	pub.setFail(fmt.Errorf("broker says no to %s", "nobody"))
	calls := pub.callCount()
	sim.Post(tags[0], 2)
	testkit.Eventually(t, 20*time.Second, "a failed publish", func() bool { return pub.callCount() > calls })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	haystacks := map[string]string{
		"logs":         logs.String(),
		"metrics":      rec.Body.String(),
		"tag status":   fmt.Sprintf("%+v", p.Status()),
		"token status": fmt.Sprintf("%+v", p.TokenStatus()),
	}
	if !strings.Contains(haystacks["metrics"], "tagstream_requests_total") {
		t.Fatalf("metrics output lacks tagstream_requests_total")
	}
	for where, text := range haystacks {
		for _, tok := range append(srvTokens, "leak-check-unknown-CCCC") {
			if strings.Contains(text, tok) {
				t.Errorf("%s contain the token %q", where, tok)
			}
		}
	}
}
