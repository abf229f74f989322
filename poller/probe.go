package poller

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"syscall"

	"github.com/tagstream/tagstream/schema"
)

// ProbeResult describes one successful probe request.
type ProbeResult struct {
	// URL is the endpoint asked, without its query (and so without the credential).
	URL string
	// Status is the HTTP status of the answer.
	Status int
	// Media is the number of media the answer held (0 or 1).
	Media int
	// Fingerprint is the fingerprint (see Fingerprint) of the credential used, the first of Config.Tokens.
	Fingerprint string
	// Limit and Remaining are the answer's X-Ratelimit-Limit and X-Ratelimit-Remaining, -1 when absent.
	Limit, Remaining int
}

// ProbeKind says what failed in a probe.
type ProbeKind int

const (
	// ProbeOther is any failure not named below.
	ProbeOther ProbeKind = iota
	// ProbeRefused: nothing listens at the host and port (connection refused).
	ProbeRefused
	// ProbeDNS: the host name does not resolve.
	ProbeDNS
	// ProbeTLS: the TLS handshake failed (an unknown certificate authority, a wrong host name, not TLS at all).
	ProbeTLS
	// ProbeTimeout: no answer within Config.RequestTimeout (or before the context's deadline).
	ProbeTimeout
	// ProbeHTTPStatus: the API answered with an error status and its envelope (wrong base URL, a rate limit), or
	// with a redirect, which the poller refuses.
	ProbeHTTPStatus
	// ProbeNotEnvelope: the answer is not a v1 envelope (an HTML page, a truncated or malformed body).
	ProbeNotEnvelope
	// ProbeTokenInvalid: the API rejected the credential (invalid, revoked, without the scope to read tags).
	ProbeTokenInvalid
)

// String returns a short lowercase name of the kind, such as "refused" or "token-invalid".
func (k ProbeKind) String() string {
	switch k {
	case ProbeOther:
		return "other"
	case ProbeRefused:
		return "refused"
	case ProbeDNS:
		return "dns"
	case ProbeTLS:
		return "tls"
	case ProbeTimeout:
		return "timeout"
	case ProbeHTTPStatus:
		return "http-status"
	case ProbeNotEnvelope:
		return "not-envelope"
	case ProbeTokenInvalid:
		return "token-invalid"
	}
	return fmt.Sprintf("ProbeKind(%d)", int(k))
}

// ProbeError is the error of a probe request that failed. It never holds a credential.
type ProbeError struct {
	// Kind says what failed.
	Kind ProbeKind
	// URL is the endpoint asked, without its query.
	URL string
	// Err is the cause, redacted; its text says what happened in words a person can act on.
	Err error
}

// Error names the request and the cause, e.g. "GET https://h/v1/tags/x/media/recent: connection refused".
func (e *ProbeError) Error() string { return "GET " + e.URL + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *ProbeError) Unwrap() error { return e.Err }

// probeCause is the cause of a ProbeError: a message for people, and the redacted error it came from for errors.Is.
type probeCause struct {
	msg string
	err error
}

func (c *probeCause) Error() string { return c.msg }
func (c *probeCause) Unwrap() error { return c.err }

// Probe validates cfg as New does and makes one request for the recent media of cfg.Tags[0] (count=1) with the
// first credential of cfg.Tokens, through the very client code polls use (the same transport, TLS settings and CA
// file, redirect refusal, User-Agent, timeout and redaction), without retries. It returns an error wrapping
// ErrConfig (or ErrNoTokens, ErrInvalidTag) when cfg is invalid or has no tag, a *ProbeError when the request
// failed, or the result. A rate-limit answer is a *ProbeError of kind ProbeHTTPStatus: the API and the credential
// were reached.
func Probe(ctx context.Context, cfg Config) (ProbeResult, error) {
	cfg, err := cfg.resolve()
	if err != nil {
		return ProbeResult{}, err
	}
	if len(cfg.Tags) == 0 {
		return ProbeResult{}, badField("Tags", "a probe needs at least one tag")
	}
	m, err := newMetrics(nil)
	if err != nil {
		return ProbeResult{}, err
	}
	log := slog.New(slog.DiscardHandler)
	clk := newClock(cfg.Clock)
	pool := newTokenPool(cfg, clk, log, m)
	c, err := newClient(cfg, clk, pool, log, m)
	if err != nil {
		return ProbeResult{}, err
	}
	defer c.http.CloseIdleConnections()
	tok, tag := pool.tokens[0], cfg.Tags[0]
	endpoint := c.endpoint(tag)
	a, err := c.send(ctx, tok, query{tag: tag, count: 1})
	if err != nil {
		kind, msg := c.describe(ctx, err, a, tok)
		return ProbeResult{}, &ProbeError{Kind: kind, URL: endpoint, Err: &probeCause{msg: msg, err: c.clean(err, tag)}}
	}
	return ProbeResult{URL: endpoint, Status: a.status, Media: len(a.page.Media), Fingerprint: tok.fp,
		Limit: a.limit, Remaining: a.remaining}, nil
}

// describe classifies a raw error of send for a probe and words it without any credential.
func (c *client) describe(ctx context.Context, err error, a reply, tok *token) (ProbeKind, string) {
	var (
		ae   *schema.APIError
		nj   *schema.NonJSONError
		dns  *net.DNSError
		ne   net.Error
		cve  *tls.CertificateVerificationError
		uae  x509.UnknownAuthorityError
		he   x509.HostnameError
		cie  x509.CertificateInvalidError
		rhe  tls.RecordHeaderError
		ale  tls.AlertError
		cred = "token"
	)
	if tok.clientID {
		cred = "client id"
	}
	switch {
	case errors.As(err, &ae):
		msg := c.red.Truncate(ae.Message, maxMessage-len("…"))
		typ := c.red.String(ae.Type)
		if typ == "" {
			typ = "unnamed error"
		}
		if ae.TokenInvalid() || ae.HTTPStatus >= 400 && ae.HTTPStatus < 500 && rejectsCredential(ae, tok.clientID) {
			return ProbeTokenInvalid, fmt.Sprintf("the %s is invalid or revoked (fingerprint %s): %s: %s", cred, tok.fp, typ, msg)
		}
		return ProbeHTTPStatus, fmt.Sprintf("HTTP %d: %s: %s", ae.HTTPStatus, typ, msg)
	case errors.Is(err, ErrRedirect):
		return ProbeHTTPStatus, c.red.String(err.Error())
	case errors.As(err, &nj):
		return ProbeNotEnvelope, fmt.Sprintf("not a v1 envelope (%s, HTTP %d)", orNone(nj.ContentType), nj.HTTPStatus)
	case errors.Is(err, schema.ErrMalformed):
		return ProbeNotEnvelope, fmt.Sprintf("not a v1 envelope (%s, HTTP %d): %s", orNone(a.contentType), a.status,
			c.red.String(err.Error()))
	case errors.Is(err, syscall.ECONNREFUSED):
		return ProbeRefused, "connection refused"
	case errors.As(err, &dns):
		return ProbeDNS, "DNS: " + c.red.String(dns.Error())
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil,
		errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil:
		return ProbeTimeout, fmt.Sprintf("timed out after %s", c.timeout)
	case errors.Is(err, context.DeadlineExceeded):
		return ProbeTimeout, "timed out: the context's deadline passed"
	case errors.As(err, &cve):
		return ProbeTLS, "TLS: " + c.red.String(cve.Err.Error())
	case errors.As(err, &uae), errors.As(err, &he), errors.As(err, &cie):
		return ProbeTLS, "TLS: " + c.red.String(unwrapURL(err).Error())
	case errors.As(err, &rhe):
		return ProbeTLS, "TLS: the server did not answer with TLS (plain http at an https URL?)"
	case errors.As(err, &ale):
		return ProbeTLS, "TLS: " + ale.Error()
	}
	return ProbeOther, c.red.String(unwrapURL(err).Error())
}

// unwrapURL returns the cause of a *url.Error (whose text holds the whole request URL), or err.
func unwrapURL(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

func orNone(contentType string) string {
	if contentType == "" {
		return "no content type"
	}
	return contentType
}
