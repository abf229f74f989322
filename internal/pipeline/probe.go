package pipeline

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"

	"github.com/tagstream/tagstream/poller"
	"github.com/tagstream/tagstream/schema"
)

// probeAPI makes one request for the first tag with the first token of pc and describes the answer and the
// budget headers. The token never appears in the result.
//
// poller.Probe(ctx, pc) replaces this function (and its HTTP client) once the poller exports it: then check and
// run share one client, one TLS setup and one redirect policy.
func probeAPI(ctx context.Context, pc poller.Config, version string) (string, error) {
	if len(pc.Tokens) == 0 || len(pc.Tags) == 0 {
		return "", errors.New("no token or no tag to probe with")
	}
	client, err := probeClient(pc)
	if err != nil {
		return "", err
	}
	tok, tag := pc.Tokens[0], pc.Tags[0]
	q := url.Values{"count": {"1"}}
	if tok.ClientID {
		q.Set("client_id", tok.Value)
	} else {
		q.Set("access_token", tok.Value)
	}
	endpoint := pc.BaseURL + "/tags/" + url.PathEscape(tag) + "/media/recent"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+"?"+q.Encode(), nil)
	if err != nil {
		return "", fmt.Errorf("build request for %s: %s", endpoint, httpProblem(err))
	}
	if version == "" {
		version = "devel"
	}
	req.Header.Set("User-Agent", "tagstream/"+version)
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("GET %s: %s", endpoint, httpProblem(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return "", fmt.Errorf("GET %s: read body: %s", endpoint, httpProblem(err))
	}
	who := fmt.Sprintf("token 1 (fingerprint %s)", poller.Fingerprint(tok.Value))
	if tok.ClientID {
		who = fmt.Sprintf("client id 1 (fingerprint %s)", poller.Fingerprint(tok.Value))
	}
	budget := "no rate-limit headers"
	if lim, rem := resp.Header.Get("X-Ratelimit-Limit"), resp.Header.Get("X-Ratelimit-Remaining"); lim != "" || rem != "" {
		budget = fmt.Sprintf("budget %s of %s left", orDash(rem), orDash(lim))
	}
	page, err := schema.DecodePage(resp.StatusCode, resp.Header.Get("Content-Type"), body)
	if err != nil {
		var apiErr *schema.APIError
		if errors.As(err, &apiErr) && apiErr.TokenInvalid() {
			return "", fmt.Errorf("%s with %s: the token is invalid or revoked: %v", endpoint, who, err)
		}
		return "", fmt.Errorf("%s with %s: HTTP %d: %v (%s)", endpoint, who, resp.StatusCode, err, budget)
	}
	return fmt.Sprintf("%s answered HTTP %d for tag %q with %d media; %s: %s", pc.BaseURL, resp.StatusCode, tag, len(page.Media), who, budget), nil
}

// probeClient is an HTTP client for the API that trusts ca-file in addition to the system roots, requires TLS 1.2
// and never follows a redirect (a redirect could carry the token to another host).
func probeClient(pc poller.Config) (*http.Client, error) {
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if pc.CAFile != "" {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		pem, err := os.ReadFile(pc.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read ca-file: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca-file %s holds no PEM certificate", pc.CAFile)
		}
		tlsCfg.RootCAs = pool
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsCfg
	return &http.Client{
		Transport:     tr,
		Timeout:       pc.RequestTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, nil
}

// httpProblem describes an HTTP client error without the URL (whose query holds a token).
func httpProblem(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return "timed out"
		}
		err = ue.Err
	}
	return err.Error()
}

func orDash(s string) string {
	if s == "" {
		return "?"
	}
	return s
}
