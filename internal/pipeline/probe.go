package pipeline

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/tagstream/tagstream/poller"
)

// probeAPI makes one request for the first tag with the first token of pc, through the poller's own client
// (poller.Probe: the transport, TLS settings, redirect refusal and redaction polls use), and describes the answer
// and the budget headers. The token never appears in the result.
func probeAPI(ctx context.Context, pc poller.Config) (string, error) {
	res, err := poller.Probe(ctx, pc)
	if err != nil {
		return "", err
	}
	who := "token 1"
	if pc.Tokens[0].ClientID {
		who = "client id 1"
	}
	budget := "no rate-limit headers"
	if res.Limit >= 0 || res.Remaining >= 0 {
		budget = fmt.Sprintf("budget %s of %s left", orDash(res.Remaining), orDash(res.Limit))
	}
	return fmt.Sprintf("%s answered HTTP %d for tag %q with %d media; %s (fingerprint %s): %s",
		pc.BaseURL, res.Status, pc.Tags[0], res.Media, who, res.Fingerprint, budget), nil
}

func orDash(n int) string {
	if n < 0 {
		return "?"
	}
	return fmt.Sprint(n)
}

// switchedOffHost is the host of the real v1 API, switched off in 2020: nothing answers there any more.
const switchedOffHost = "api.instagram.com"

// apiHint says in words what a failed API probe means and what to look at, by the kind of failure
// (poller.ProbeError); "" when err is not a probe failure. It names settings, never a credential.
func apiHint(pc poller.Config, err error) string {
	var pe *poller.ProbeError
	if !errors.As(err, &pe) {
		return ""
	}
	host := pc.BaseURL
	if u, perr := url.Parse(pc.BaseURL); perr == nil && u.Host != "" {
		host = u.Host
	}
	if strings.EqualFold(strings.TrimSuffix(hostOnly(host), "."), switchedOffHost) && pe.Kind != poller.ProbeTokenInvalid {
		return "the Instagram v1 API was switched off in 2020: point api-url at a compatible API, or try tagstream " +
			"against the simulator (README, \"Running it\": tagstream demo --keep-running)"
	}
	switch pe.Kind {
	case poller.ProbeRefused:
		return fmt.Sprintf("refused: nothing listens at %s; is the API (or the simulator) running, and is api-url right?", host)
	case poller.ProbeDNS:
		return fmt.Sprintf("the host name in api-url (%s) does not resolve: check its spelling and the machine's DNS", hostOnly(host))
	case poller.ProbeTLS:
		return "TLS: the server's certificate is not trusted or not for this host; give the CA that signed it in " +
			"ca-file (the simulator writes its CA file at start) and check that api-url is https and names the " +
			"certificate's host"
	case poller.ProbeTimeout:
		return fmt.Sprintf("timed out after %s (request-timeout) without an answer: a firewall, a proxy or a host "+
			"that is down", pc.RequestTimeout)
	case poller.ProbeHTTPStatus:
		return "the server answered with an HTTP error status: check api-url's path (it ends in /v1) and, for a " +
			"rate limit, wait or add tokens"
	case poller.ProbeNotEnvelope:
		return "something answered that is not the Instagram v1 API (not a v1 envelope: a proxy, a login page, a " +
			"truncated body?): check api-url"
	case poller.ProbeTokenInvalid:
		return "replace or remove that token in tokens-file (the fingerprint names it; the token is never shown)"
	}
	return "the request failed: check api-url, ca-file and the network between this machine and the API"
}

// hostOnly returns the host of a host[:port].
func hostOnly(hostport string) string {
	if u, err := url.Parse("//" + hostport); err == nil && u.Hostname() != "" {
		return u.Hostname()
	}
	return hostport
}
