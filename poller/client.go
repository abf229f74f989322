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

	"github.com/tagstream/tagstream/internal/redact"
	"github.com/tagstream/tagstream/schema"
)

// Classes of fetch errors. A *FetchError wraps exactly one of them.
var (
	// ErrRateLimited: the API refused the token for exceeding its limit (429, or a 503 with the API's envelope).
	ErrRateLimited = errors.New("poller: rate limited")
	// ErrTokenInvalid: the API rejected the token (OAuthAccessTokenException); the token is retired.
	ErrTokenInvalid = errors.New("poller: token invalid")
	// ErrPermanent: a 4xx answer other than rate limiting, a refused redirect or an oversized body; retrying
	// cannot help.
	ErrPermanent = errors.New("poller: permanent error")
	// ErrTransient: a 5xx answer, an HTML error page, a network error, a reset, a truncated or malformed body or
	// a timeout; the request is retried with backoff.
	ErrTransient = errors.New("poller: transient error")
	// ErrRedirect is wrapped (with ErrPermanent) when the API answers with a redirect. Every redirect is refused,
	// to the same host too: following one drops or exposes the query that carries the credential.
	ErrRedirect = errors.New("poller: redirect refused")
)

// errNoSpareToken is returned for a request that may only use a token that is ready at once (see query.spare)
// when none is.
var errNoSpareToken = errors.New("poller: no token to spare")

// maxBody bounds the body of one answer (a page of 33 media is about 100 KiB).
const maxBody = 16 << 20

// FetchError is the error of one request to the API. It never contains a token: the request URL it may hold is
// the endpoint without its query, and every credential in the cause is replaced by redact.Placeholder.
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
	spare  bool // take a token only if one is ready now (an early poll's first request); errNoSpareToken if not
}

// client is the one HTTP boundary of the poller: it builds each request on the configured base URL (never on a
// next_url from the server), takes a token from the pool, decodes the answer with schema.DecodePage, classifies
// failures and retries them: rate limits and rejected tokens with another token, transient failures with backoff
// up to Config.MaxAttempts. When every request fails for a while (the API is down), every request waits on one
// shared backoff before it is sent.
type client struct {
	base string
	// scheme, host, reqHost (the request's Host) and basePath are the base URL's, parsed once; plainPath says
	// that its path needs no escaping (see newRequest).
	scheme, host, reqHost, basePath string
	plainPath                       bool
	rt                              http.RoundTripper // sends every request (see send); the transport of http
	http                            *http.Client      // for CloseIdleConnections
	h1                              *h1Transport      // rt when it is one: send passes it the deadline directly
	h1origin                        h1Origin          // the base URL's origin for h1 (url nil when its host or header is refused)
	pool                            *tokenPool
	red                             *redact.Redactor // knows every token of the pool
	timeout                         time.Duration
	maxAttempts                     int
	boInitial                       time.Duration
	boMax                           time.Duration
	now                             func() time.Time
	log                             *slog.Logger
	m                               *metrics
	health                          health
	gate                            func() bool // Config.Gate; never nil
}

func newClient(cfg Config, clk clock, pool *tokenPool, log *slog.Logger, m *metrics) (*client, error) {
	rt := cfg.Transport
	if rt == nil {
		tr, err := newTransport(cfg)
		if err != nil {
			return nil, err
		}
		rt = tr
	}
	secrets := make([]string, len(cfg.Tokens))
	for i, t := range cfg.Tokens {
		secrets[i] = t.Value
	}
	c := &client{
		base:        cfg.BaseURL,
		pool:        pool,
		red:         redact.New(secrets...),
		timeout:     cfg.RequestTimeout,
		maxAttempts: cfg.MaxAttempts,
		boInitial:   cfg.BackoffInitial,
		boMax:       cfg.BackoffMax,
		now:         cfg.Clock,
		log:         log,
		m:           m,
		gate:        cfg.Gate,
	}
	if c.gate == nil {
		c.gate = func() bool { return true }
	}
	c.rt = rt
	c.h1, _ = rt.(*h1Transport)
	c.http = &http.Client{Transport: rt, CheckRedirect: refuseRedirects}
	base, err := http.NewRequest(http.MethodGet, cfg.BaseURL, nil) // checked by Config.resolve
	if err != nil {
		return nil, fmt.Errorf("%w: Config.BaseURL: %w", ErrConfig, err)
	}
	c.scheme, c.host, c.reqHost, c.basePath = base.URL.Scheme, base.URL.Host, base.Host, base.URL.Path
	c.plainPath = base.URL.RawPath == "" && base.URL.EscapedPath() == base.URL.Path
	if c.h1 != nil {
		base.Header = requestHeader
		// A refused host is refused again by every request, through the general path, with the same error.
		c.h1origin, _ = newOrigin(base)
	}
	c.health = health{bo: newBackoff(cfg.BackoffInitial, min(cfg.BackoffMax, maxProbeInterval)), clk: clk, log: log, m: m}
	return c, nil
}

// newTransport is the transport of the API's requests: h1Transport, or http.Transport when the environment names a
// proxy for the API (HTTP_PROXY, HTTPS_PROXY, NO_PROXY).
func newTransport(cfg Config) (http.RoundTripper, error) {
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
	probe, err := http.NewRequest(http.MethodGet, cfg.BaseURL, nil) // checked by Config.resolve
	if err != nil {
		return nil, fmt.Errorf("%w: Config.BaseURL: %w", ErrConfig, err)
	}
	if proxy, err := proxyOf(probe); err == nil && proxy == nil {
		if probe.URL.Scheme != "https" {
			tlsCfg = nil
		}
		return newH1Transport(tlsCfg, cfg.Workers), nil
	}
	return &http.Transport{
		Proxy:                 proxyOf,
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

// proxyOf is the proxy for a request (tests replace it: http.ProxyFromEnvironment reads the environment once).
var proxyOf = http.ProxyFromEnvironment

// refuseRedirects makes the HTTP client hand back every redirect answer instead of following it: a redirect,
// even to the same host, drops or exposes the query that carries the credential, so send refuses it.
func refuseRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// endpoint is the URL of a tag's recent media without a query.
func (c *client) endpoint(tag string) string {
	return c.base + "/tags/" + url.PathEscape(tag) + "/media/recent"
}

// requestURL is the URL of one request for q with tok: the endpoint and the query that url.Values.Encode would
// give (the same keys, sorted, each value query-escaped), written into one buffer sized up front instead of
// through a map, a sorted key slice and a builder per request.
func (c *client) requestURL(tok *token, q query) string {
	return c.requestTarget(c.base, tok, q)
}

// requestTarget is prefix followed by the path of q's endpoint below the base URL and the query of requestURL.
func (c *client) requestTarget(prefix string, tok *token, q query) string {
	tag := url.PathEscape(q.tag)
	cred := "access_token="
	if tok.clientID {
		cred = "client_id="
	}
	val := url.QueryEscape(tok.value)
	var b strings.Builder
	b.Grow(len(prefix) + len("/tags/") + len(tag) + len("/media/recent?") + len(cred) + len(val) +
		len("&count=") + 20 + len("&max_tag_id=") + 3*len(q.max) + len("&min_tag_id=") + 3*len(q.min))
	b.WriteString(prefix)
	b.WriteString("/tags/")
	b.WriteString(tag)
	b.WriteString("/media/recent?")
	// Sorted keys: access_token (or client_id) < count < max_tag_id < min_tag_id.
	b.WriteString(cred)
	b.WriteString(val)
	b.WriteString("&count=")
	var num [20]byte
	b.Write(strconv.AppendInt(num[:0], int64(q.count), 10))
	if q.max != "" {
		b.WriteString("&max_tag_id=")
		b.WriteString(url.QueryEscape(q.max))
	}
	if q.min != "" {
		b.WriteString("&min_tag_id=")
		b.WriteString(url.QueryEscape(q.min))
	}
	return b.String()
}

// newRequest is the request for q with tok: what http.NewRequestWithContext makes of requestURL (the same URL
// fields and Host: TestNewRequestIsWhatTheURLParsesTo), with the shared requestHeader. When neither the base URL's
// path nor the tag needs escaping (tags are letters, digits and underscores), the URL is put together from the
// base URL that newClient parsed once, instead of parsing the whole URL per request: its path is then the same
// escaped or not, so url.Parse would leave RawPath empty, as here.
func (c *client) newRequest(ctx context.Context, tok *token, q query) (*http.Request, error) {
	if !c.plainPath || url.PathEscape(q.tag) != q.tag {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.requestURL(tok, q), nil)
		if err != nil {
			return nil, err
		}
		req.Header = requestHeader
		return req, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "", nil)
	if err != nil {
		return nil, err
	}
	target := c.requestTarget(c.basePath, tok, q)
	i := strings.IndexByte(target, '?') // the first: the path has none
	u := req.URL
	u.Scheme, u.Host, u.Path, u.RawQuery = c.scheme, c.host, target[:i], target[i+1:]
	req.Host = c.reqHost
	req.Header = requestHeader
	return req, nil
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
		if !c.gate() {
			return nil, errGateClosed
		}
		var tok *token
		var err error
		if q.spare {
			var next time.Duration
			if tok, next = c.pool.trySpare(c.pool.clk.mono()); tok == nil {
				if next == 0 {
					return nil, fmt.Errorf("poller: fetch tag %q: %w", q.tag, ErrAllTokensRetired)
				}
				return nil, errNoSpareToken
			}
		} else {
			tok, err = c.pool.acquire(ctx)
		}
		if err != nil {
			if errors.Is(err, ErrAllTokensRetired) {
				return nil, fmt.Errorf("poller: fetch tag %q: %w", q.tag, err)
			}
			return nil, err
		}
		if !c.gate() {
			return nil, errGateClosed // the wait for a token outlasted the lease: send nothing
		}
		if q.probes != nil {
			*q.probes++
		}
		page, err := c.once(ctx, tok, q)
		if err == nil {
			c.m.reqOK.Inc()
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
			c.m.reqRateLimited.Inc()
			c.health.success() // the API answered: it is up
			c.pool.park(tok, fe.RetryAfter)
			continue
		case ErrTokenInvalid:
			c.m.reqTokenInvalid.Inc()
			c.health.success()
			c.pool.retire(tok)
			continue
		case ErrPermanent:
			c.m.reqPermanent.Inc()
			c.health.success()
			return nil, fe
		}
		c.m.reqTransient.Inc()
		c.health.failure(c.endpoint(q.tag), fe.Err)
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

// reply is what one request got back: the HTTP status and rate-limit headers (when an answer came) and the
// decoded page (on success).
type reply struct {
	status           int // 0 when no answer came
	limit, remaining int // X-Ratelimit-Limit and X-Ratelimit-Remaining, -1 when absent
	retryAfter       time.Duration
	contentType      string
	page             *schema.Page
}

// errBodyTooLarge is the cause of an answer larger than maxBody.
var errBodyTooLarge = fmt.Errorf("body larger than %d bytes", maxBody)

// send makes one request for q with tok and decodes the answer. It is the one place where a request is built and
// sent, for polls and for Probe alike. Its errors are raw: a *url.Error holds the request URL with the credential,
// and a server may echo the credential in its message, so callers pass them through clean.
func (c *client) send(ctx context.Context, tok *token, q query) (reply, error) {
	var deadline time.Time
	if c.h1 != nil {
		deadline = time.Now().Add(c.timeout) // the connection's deadline: cheaper than a context with a timer
	} else {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	var (
		resp *http.Response
		from *url.URL // where the request went, for a redirect's error
		err  error
	)
	if c.h1origin.url != nil && c.plainPath && url.PathEscape(q.tag) == q.tag {
		// The usual case: the target written straight to the connection, no http.Request.
		target := c.requestTarget(c.basePath, tok, q)
		if resp, err = c.h1.get(ctx, c.h1origin, target, deadline); err != nil {
			path, _, _ := strings.Cut(target, "?")
			return reply{}, c.urlError(c.scheme+"://"+c.host+path, err)
		}
		from = c.h1origin.url
	} else {
		req, err := c.newRequest(ctx, tok, q)
		if err != nil {
			return reply{}, err
		}
		if resp, err = c.roundTrip(req, deadline); err != nil {
			return reply{}, err
		}
		from = req.URL
	}
	defer resp.Body.Close()
	a := reply{
		status:      resp.StatusCode,
		limit:       headerInt(resp.Header, "X-Ratelimit-Limit"),
		remaining:   headerInt(resp.Header, "X-Ratelimit-Remaining"),
		retryAfter:  retryAfter(resp.Header.Get("Retry-After"), c.now()),
		contentType: resp.Header.Get("Content-Type"),
	}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		return a, redirectError(from, resp)
	}
	buf := bodyBuffers.Get().(*[]byte)
	if n := resp.ContentLength; n > int64(cap(*buf)) && n <= maxBody {
		*buf = make([]byte, 0, n+1) // the whole body at once (and room for the EOF read), not doubling up to it
	}
	body, err := readBody(resp.Body, (*buf)[:0])
	if err != nil {
		bodyBuffers.Put(buf)
		return a, fmt.Errorf("read body: %w", err)
	}
	if len(body) > maxBody {
		bodyBuffers.Put(buf)
		return a, errBodyTooLarge
	}
	a.page, err = schema.DecodePage(resp.StatusCode, a.contentType, body)
	if err == nil && len(a.page.Media) == 0 && cap(body) <= maxPooledBody {
		// Nothing of an empty page refers to its body (DecodePage copies every string; only Media.Raw aliases
		// the body): the buffer serves the next answer. Most answers at scale are empty pages.
		*buf = body[:0]
		bodyBuffers.Put(buf)
	}
	return a, err
}

// roundTrip sends req with the transport as http.Client.Do does with refuseRedirects, which hands a redirect answer
// back as it is: the same errors (a *url.Error; a plain-HTTP answer at an https URL is http.ErrSchemeMismatch),
// a non-nil Body, but without the client's per-request work that the poller never needs (a copy of the headers
// for redirects, deadline timers: h1Transport gets deadline, any other transport the context's timeout). The
// *url.Error's URL is the endpoint without the query, so it never holds the credential.
func (c *client) roundTrip(req *http.Request, deadline time.Time) (resp *http.Response, err error) {
	if c.h1 != nil {
		resp, err = c.h1.roundTrip(req, deadline)
	} else {
		resp, err = c.rt.RoundTrip(req)
	}
	if err != nil {
		return nil, c.urlError(endpointOf(req.URL), err)
	}
	switch {
	case resp == nil:
		return nil, c.urlError(endpointOf(req.URL), fmt.Errorf("http: RoundTripper implementation (%T) returned a nil *Response with a nil error", c.rt))
	case resp.Body == nil && resp.ContentLength > 0:
		return nil, c.urlError(endpointOf(req.URL), fmt.Errorf("http: RoundTripper implementation (%T) returned a *Response with content length %d but a nil Body", c.rt, resp.ContentLength))
	case resp.Body == nil:
		resp.Body = http.NoBody
	}
	return resp, nil
}

// endpointOf is u without its query.
func endpointOf(u *url.URL) string { return u.Scheme + "://" + u.Host + u.EscapedPath() }

// urlError wraps an error of a request to endpoint (a URL without its query: never the credential) as http.Client
// does; a TLS record that starts "HTTP/" (a plain-HTTP answer at an https URL) is http.ErrSchemeMismatch, as
// http.Client says it (golang.org/issue/11111).
func (c *client) urlError(endpoint string, err error) error {
	var rh tls.RecordHeaderError
	if errors.As(err, &rh) && string(rh.RecordHeader[:]) == "HTTP/" {
		err = http.ErrSchemeMismatch
	}
	return &url.Error{Op: "Get", URL: endpoint, Err: err}
}

// readBody reads r to its end (at most maxBody+1 bytes) into buf, growing it as needed.
func readBody(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):min(cap(buf), maxBody+1)])
		buf = buf[:len(buf)+n]
		if err == io.EOF || len(buf) > maxBody {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// bodyBuffers holds the body buffers of answers that were empty pages, for the next answers.
var bodyBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// maxPooledBody is the largest body buffer kept for reuse.
const maxPooledBody = 64 << 10

// requestHeader is the header of every request. It is shared and never modified: neither the poller nor the
// transport writes a request's header (a RoundTripper must not modify the request).
var requestHeader = http.Header{"Accept": {"application/json"}, "User-Agent": {userAgent}}

// userAgent is the User-Agent of every request.
const userAgent = "tagstream-poller"

// redirectError describes a refused redirect by its status and the host it pointed to (never the whole Location,
// whose query may carry the credential).
func redirectError(from *url.URL, resp *http.Response) error {
	lv := resp.Header.Get("Location")
	if lv == "" {
		return fmt.Errorf("%w: HTTP %d without a Location", ErrRedirect, resp.StatusCode)
	}
	loc, err := from.Parse(lv) // a relative Location is relative to where the request went, as Response.Location has it
	if err != nil {
		return fmt.Errorf("%w: HTTP %d to an unreadable Location", ErrRedirect, resp.StatusCode)
	}
	where := loc.Scheme + "://" + loc.Host
	if strings.EqualFold(loc.Host, from.Host) && loc.Scheme == from.Scheme {
		where += " (the same host)"
	}
	return fmt.Errorf("%w: HTTP %d to %s; the API must answer at its base URL", ErrRedirect, resp.StatusCode, where)
}

// once sends one request with tok and classifies a failure as a *FetchError.
func (c *client) once(ctx context.Context, tok *token, q query) (*schema.Page, error) {
	a, err := c.send(ctx, tok, q)
	if a.status != 0 {
		c.pool.observe(tok, a.limit, a.remaining)
	}
	if err == nil {
		return a.page, nil
	}
	return nil, &FetchError{Tag: q.tag, Token: tok.idx, Class: classify(err, tok.clientID), Status: a.status,
		RetryAfter: a.retryAfter, Err: c.clean(err, q.tag)}
}

// clean removes every credential from an error of send. A *url.Error carries the whole request URL (query and
// credential included): it is rebuilt with the endpoint alone. An API error's message comes from the server, which
// may echo the credential: it is redacted before it is cut to its display length (cutting first could leave a
// fragment of the token that no longer matches). Whatever else still holds a credential, as is or escaped, is
// redacted last; errors.Is keeps working on the result.
func (c *client) clean(err error, tag string) error {
	var ue *url.Error
	if errors.As(err, &ue) && ue == err {
		err = &url.Error{Op: ue.Op, URL: c.endpoint(tag), Err: ue.Err}
	}
	if ae, ok := err.(*schema.APIError); ok {
		cp := *ae
		cp.Type = c.red.String(cp.Type)
		cp.Message = c.red.Truncate(cp.Message, maxMessage-len("…"))
		err = &cp
	}
	return c.red.Error(err)
}

// maxMessage is the most bytes of a server's error message an error shows (schema.APIError cuts longer ones).
const maxMessage = 300

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

// classify maps an error of send to a class. A 503 with the API's own envelope is the seed's rate-limit answer;
// a 503 with an HTML body is a load balancer's fault page, not a rate limit. A redirect and an oversized body are
// permanent; an API error about the credential (see rejectsCredential) means the token is invalid.
func classify(err error, clientID bool) error {
	var ae *schema.APIError
	var nj *schema.NonJSONError
	switch {
	case errors.Is(err, ErrRedirect), errors.Is(err, errBodyTooLarge):
		return ErrPermanent
	case errors.As(err, &ae):
		switch {
		case ae.TokenInvalid(), ae.HTTPStatus >= 400 && ae.HTTPStatus < 500 && rejectsCredential(ae, clientID):
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
	return ErrTransient // a network error, a timeout, a malformed or truncated body
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
