package poller

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/tagstream/tagstream/schema"
)

// Classes of fetch errors. A *FetchError wraps exactly one of them.
var (
	// ErrRateLimited: the API refused the token for exceeding its limit (429, or a 503 with the API's envelope).
	ErrRateLimited = errors.New("poller: rate limited")
	// ErrTokenInvalid: the API rejected the token (OAuthAccessTokenException); the token is retired.
	ErrTokenInvalid = errors.New("poller: token invalid")
	// ErrPermanent: a 4xx answer other than rate limiting, or a refused redirect; retrying cannot help.
	ErrPermanent = errors.New("poller: permanent error")
	// ErrTransient: a 5xx answer, an HTML error page, a network error, a reset, a truncated or malformed body or
	// a timeout; the request is retried with backoff.
	ErrTransient = errors.New("poller: transient error")
	// ErrRedirect is wrapped (with ErrPermanent) when the API redirects to another host or scheme.
	ErrRedirect = errors.New("poller: redirect to another host refused")
)

// maxBody bounds the body of one answer (a page of 33 media is about 100 KiB).
const maxBody = 16 << 20

// FetchError is the error of one request to the API. It never contains a token: the request URL it may hold has
// its credential replaced by "REDACTED".
type FetchError struct {
	Tag        string
	Token      int           // index of the token used, -1 when none
	Class      error         // ErrRateLimited, ErrTokenInvalid, ErrPermanent or ErrTransient
	Status     int           // HTTP status, 0 when no answer
	RetryAfter time.Duration // from a Retry-After header, 0 when none
	Err        error         // the cause, redacted
}

// Error describes the failure with the tag and the token's index.
func (e *FetchError) Error() string {
	tok := ""
	if e.Token >= 0 {
		tok = fmt.Sprintf(" with token #%d", e.Token)
	}
	return fmt.Sprintf("poller: fetch tag %q%s: %v: %v", e.Tag, tok, e.Class, e.Err)
}

// Unwrap returns the class and the cause, so that errors.Is matches both.
func (e *FetchError) Unwrap() []error { return []error{e.Class, e.Err} }

// query is one request for a page of a tag's recent media.
type query struct {
	tag    string
	min    string // min_tag_id, "" = none
	max    string // max_tag_id, "" = none
	count  int
	probes *int // incremented per request sent, when not nil
}

// client is the one HTTP boundary of the poller: it builds each request on the configured base URL (never on a
// next_url from the server), takes a token from the pool, decodes the answer with schema.DecodePage, classifies
// failures and retries them: rate limits and rejected tokens with another token, transient failures with backoff
// up to Config.MaxAttempts. When every request fails for a while (the API is down), every request waits on one
// shared backoff before it is sent.
type client struct {
	base        string
	http        *http.Client
	pool        *tokenPool
	timeout     time.Duration
	maxAttempts int
	boInitial   time.Duration
	boMax       time.Duration
	now         func() time.Time
	log         *slog.Logger
	m           *metrics
	health      health
}

func newClient(cfg Config, pool *tokenPool, log *slog.Logger, m *metrics) (*client, error) {
	rt := cfg.Transport
	if rt == nil {
		tr, err := newTransport(cfg)
		if err != nil {
			return nil, err
		}
		rt = tr
	}
	c := &client{
		base:        cfg.BaseURL,
		pool:        pool,
		timeout:     cfg.RequestTimeout,
		maxAttempts: cfg.MaxAttempts,
		boInitial:   cfg.BackoffInitial,
		boMax:       cfg.BackoffMax,
		now:         cfg.Clock,
		log:         log,
		m:           m,
	}
	c.http = &http.Client{Transport: rt, CheckRedirect: checkRedirect}
	c.health = health{bo: newBackoff(cfg.BackoffInitial, min(cfg.BackoffMax, maxProbeInterval)), now: cfg.Clock, log: log, m: m}
	return c, nil
}

func newTransport(cfg Config) (*http.Transport, error) {
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: Config.CAFile: %w", ErrConfig, err)
		}
		roots, err := x509.SystemCertPool()
		if err != nil || roots == nil {
			roots = x509.NewCertPool()
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: Config.CAFile: %s holds no PEM certificate", ErrConfig, cfg.CAFile)
		}
		tlsCfg.RootCAs = roots
	}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsCfg,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          2 * cfg.Workers,
		MaxIdleConnsPerHost:   cfg.Workers,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: cfg.RequestTimeout,
	}, nil
}

// checkRedirect refuses a redirect to another host or scheme, and more than three redirects.
func checkRedirect(req *http.Request, via []*http.Request) error {
	first := via[0].URL
	if !strings.EqualFold(req.URL.Host, first.Host) || req.URL.Scheme != first.Scheme {
		return fmt.Errorf("%w (to %s://%s)", ErrRedirect, req.URL.Scheme, req.URL.Host)
	}
	if len(via) >= 3 {
		return fmt.Errorf("%w: more than 3 redirects", ErrRedirect)
	}
	return nil
}

// endpoint is the URL of a tag's recent media without a query.
func (c *client) endpoint(tag string) string {
	return c.base + "/tags/" + url.PathEscape(tag) + "/media/recent"
}

// page fetches one page, retrying as described on client. It returns a *FetchError (permanent, or transient after
// MaxAttempts), ErrAllTokensRetired (wrapped), or the context's error.
func (c *client) page(ctx context.Context, q query) (*schema.Page, error) {
	var bo *backoff.ExponentialBackOff
	attempts := 0
	for {
		if err := c.health.wait(ctx); err != nil {
			return nil, err
		}
		tok, err := c.pool.acquire(ctx)
		if err != nil {
			if errors.Is(err, ErrAllTokensRetired) {
				return nil, fmt.Errorf("poller: fetch tag %q: %w", q.tag, err)
			}
			return nil, err
		}
		if q.probes != nil {
			*q.probes++
		}
		page, err := c.once(ctx, tok, q)
		if err == nil {
			c.m.requests.WithLabelValues(outcomeOK).Inc()
			c.pool.success(tok)
			c.health.success()
			return page, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var fe *FetchError
		if !errors.As(err, &fe) {
			return nil, err
		}
		switch fe.Class {
		case ErrRateLimited:
			c.m.requests.WithLabelValues(outcomeRateLimited).Inc()
			c.health.success() // the API answered: it is up
			c.pool.park(tok, fe.RetryAfter)
			continue
		case ErrTokenInvalid:
			c.m.requests.WithLabelValues(outcomeTokenInvalid).Inc()
			c.health.success()
			c.pool.retire(tok)
			continue
		case ErrPermanent:
			c.m.requests.WithLabelValues(outcomePermanent).Inc()
			c.health.success()
			return nil, fe
		}
		c.m.requests.WithLabelValues(outcomeTransient).Inc()
		c.health.failure()
		attempts++
		if attempts >= c.maxAttempts {
			return nil, fe
		}
		if bo == nil {
			bo = newBackoff(c.boInitial, c.boMax)
		}
		d := fullJitter(bo.NextBackOff())
		if fe.RetryAfter > d {
			d = min(fe.RetryAfter, c.boMax)
		}
		c.log.Debug("retrying after a transient error", "tag", q.tag, "attempt", attempts, "delay", d, "err", fe)
		if err := sleep(ctx, d); err != nil {
			return nil, err
		}
	}
}

// once sends one request with tok and classifies the answer.
func (c *client) once(ctx context.Context, tok *token, q query) (*schema.Page, error) {
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
	endpoint := c.endpoint(q.tag)
	fail := func(class error, status int, err error) *FetchError {
		return &FetchError{Tag: q.tag, Token: tok.idx, Class: class, Status: status, Err: redact(err, tok.value, endpoint)}
	}

	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+"?"+v.Encode(), nil)
	if err != nil {
		return nil, fail(ErrPermanent, 0, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		if errors.Is(err, ErrRedirect) {
			return nil, fail(ErrPermanent, 0, err)
		}
		return nil, fail(ErrTransient, 0, err)
	}
	defer resp.Body.Close()
	c.pool.observe(tok, headerInt(resp.Header, "X-Ratelimit-Limit"), headerInt(resp.Header, "X-Ratelimit-Remaining"))
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, fail(ErrTransient, resp.StatusCode, fmt.Errorf("read body: %w", err))
	}
	if len(body) > maxBody {
		return nil, fail(ErrPermanent, resp.StatusCode, fmt.Errorf("body larger than %d bytes", maxBody))
	}
	page, err := schema.DecodePage(resp.StatusCode, resp.Header.Get("Content-Type"), body)
	if err == nil {
		return page, nil
	}
	class := classify(err)
	var ae *schema.APIError
	if class == ErrPermanent && errors.As(err, &ae) && rejectsCredential(ae, tok.clientID) {
		class = ErrTokenInvalid
	}
	fe := fail(class, resp.StatusCode, err)
	fe.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), c.now())
	return nil, fe
}

// rejectsCredential reports whether a permanent API error is about the credential rather than the request: a
// token without the scope the endpoint needs (OAuthPermissionsException), or an unknown client id
// (OAuthParameterException, which the API also gives for a missing credential — the poller always sends one).
// Such a token can never poll tags, so it is retired like a revoked one.
func rejectsCredential(ae *schema.APIError, clientID bool) bool {
	switch ae.Type {
	case "OAuthPermissionsException":
		return true
	case "OAuthParameterException":
		return clientID
	}
	return false
}

// classify maps a DecodePage error to a class. A 503 with the API's own envelope is the seed's rate-limit answer;
// a 503 with an HTML body is a load balancer's fault page, not a rate limit.
func classify(err error) error {
	var ae *schema.APIError
	var nj *schema.NonJSONError
	switch {
	case errors.As(err, &ae):
		switch {
		case ae.TokenInvalid():
			return ErrTokenInvalid
		case ae.RateLimited(), ae.HTTPStatus == http.StatusServiceUnavailable:
			return ErrRateLimited
		case ae.HTTPStatus >= 500:
			return ErrTransient
		case ae.HTTPStatus >= 400:
			return ErrPermanent
		}
		return ErrTransient // a 2xx envelope with an error code: odd, try again
	case errors.As(err, &nj):
		switch {
		case nj.HTTPStatus == http.StatusTooManyRequests:
			return ErrRateLimited
		case nj.HTTPStatus >= 400 && nj.HTTPStatus < 500:
			return ErrPermanent
		}
		return ErrTransient
	}
	return ErrTransient // malformed or truncated JSON
}

// headerInt parses an integer header; -1 when absent or invalid.
func headerInt(h http.Header, name string) int {
	s := h.Get(name)
	if s == "" {
		return -1
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// retryAfter parses a Retry-After header: delay-seconds or an HTTP date. It returns 0 when absent or invalid, and
// caps the delay at one hour.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0
		}
		d = time.Duration(min(n, 3600)) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), time.Hour)
}

// redact removes the credential from err: a *url.Error carries the whole request URL (query included), so it is
// rebuilt with the endpoint alone; any other message that still contains the secret, as is or query-escaped (the
// form a URL echoed by the server carries), is replaced by a plain one.
func redact(err error, secret, endpoint string) error {
	if err == nil {
		return nil
	}
	escaped := url.QueryEscape(secret)
	scrub := func(msg string) (string, bool) {
		if secret == "" {
			return msg, false
		}
		out := strings.ReplaceAll(msg, secret, "REDACTED")
		if escaped != secret {
			out = strings.ReplaceAll(out, escaped, "REDACTED")
		}
		return out, out != msg
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		inner := ue.Err
		if msg, changed := scrub(inner.Error()); changed {
			inner = errors.New(msg)
		}
		err = &url.Error{Op: ue.Op, URL: endpoint + "?REDACTED", Err: inner}
	}
	if msg, changed := scrub(err.Error()); changed {
		return redactedError{msg: msg}
	}
	return err
}

type redactedError struct{ msg string }

func (e redactedError) Error() string { return e.msg }

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// downAfter is how many transient failures in a row, with no success in between, mean the API is down.
const downAfter = 4

// maxProbeInterval caps the delay between two probes while the API is down. A probe is one request, so probing
// every few seconds costs little budget, while a minute-long cap (BackoffMax) would leave tagstream idle for up
// to a minute after the API came back.
const maxProbeInterval = 8 * time.Second

// health backs off the whole client while the API is down: after downAfter transient failures in a row, requests
// pass one at a time, each after a growing, jittered delay (a probe); the first success ends it and everything
// goes on from where it stopped (cursors never moved).
type health struct {
	mu    sync.Mutex
	fails int
	until time.Time
	down  bool
	bo    *backoff.ExponentialBackOff
	now   func() time.Time
	log   *slog.Logger
	m     *metrics
}

// wait returns when a request may be sent: at once while the API is up, one probe per backoff delay while down.
func (h *health) wait(ctx context.Context) error {
	for {
		h.mu.Lock()
		now := h.now()
		if !now.Before(h.until) {
			if h.down {
				h.until = now.Add(fullJitter(h.bo.NextBackOff()))
			}
			h.mu.Unlock()
			return ctx.Err()
		}
		d := h.until.Sub(now)
		h.mu.Unlock()
		if err := sleep(ctx, d); err != nil {
			return err
		}
	}
}

func (h *health) success() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fails = 0
	if h.down {
		h.down = false
		h.until = time.Time{}
		h.bo.Reset()
		h.m.apiDown.Set(0)
		h.log.Info("api reachable again")
	}
}

func (h *health) failure() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fails++
	if h.fails < downAfter || h.down {
		return
	}
	h.down = true
	h.until = h.now().Add(fullJitter(h.bo.NextBackOff()))
	h.m.apiDown.Set(1)
	h.log.Warn("api looks down: backing off the whole client", "failures_in_a_row", h.fails)
}
