package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// ErrNotStatus is wrapped by the error of Fetch when the address answered, but not with a tagstream status
// report (another program listens there, or a path in front of it rewrites the answer).
var ErrNotStatus = errors.New("status: not a tagstream status report")

// maxReport bounds the body Fetch reads: a report is about 400 bytes per tag.
const maxReport = 64 << 20

// StatusURL returns the URL of /status at addr: a URL ("http://h:9464"), a host:port, or a listen address as
// metrics-addr holds it (":9464" and "0.0.0.0:9464" mean this machine's loopback).
func StatusURL(addr string) (string, error) {
	addr = strings.TrimSpace(addr)
	if addr == "" {
		return "", errors.New("status: no address")
	}
	if !strings.Contains(addr, "://") {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return "", fmt.Errorf("status: %q is not host:port or a URL", addr)
		}
		switch host {
		case "", "0.0.0.0":
			host = "127.0.0.1"
		case "::":
			host = "::1"
		}
		addr = "http://" + net.JoinHostPort(host, port)
	}
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", fmt.Errorf("status: %q is not an http(s) URL", addr)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/status"
	return u.String(), nil
}

// Fetch gets the report of a running tagstream from its /status at addr (see StatusURL) with client (nil:
// http.DefaultClient), within ctx. It returns the transport's error when nothing answers, and an error wrapping
// ErrNotStatus when the answer is not a report.
func Fetch(ctx context.Context, client *http.Client, addr string) (Report, error) {
	if client == nil {
		client = http.DefaultClient
	}
	u, err := StatusURL(addr)
	if err != nil {
		return Report{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return Report{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return Report{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Report{}, fmt.Errorf("%w: GET %s answered %s", ErrNotStatus, u, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxReport))
	if err != nil {
		return Report{}, fmt.Errorf("status: GET %s: %w", u, err)
	}
	var r Report
	if err := json.Unmarshal(body, &r); err != nil || r.Time.IsZero() || r.Checks == nil {
		return Report{}, fmt.Errorf("%w: GET %s answered something else (%s)", ErrNotStatus, u, orNone(resp.Header.Get("Content-Type")))
	}
	return r, nil
}

func orNone(s string) string {
	if s == "" {
		return "no content type"
	}
	return s
}
