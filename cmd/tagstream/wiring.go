package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/tagstream/tagstream/internal/config"
	"github.com/tagstream/tagstream/publisher"
)

// apiHTTPClient returns an HTTP client for the upstream API that trusts ca-file in addition to the system roots,
// requires TLS 1.2 and never follows a redirect (a redirect could carry the token to another host).
func apiHTTPClient(cfg *config.Config) (*http.Client, error) {
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tagstream: read ca-file: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tagstream: ca-file %s holds no PEM certificate", cfg.CAFile)
		}
		tlsCfg.RootCAs = pool
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsCfg
	return &http.Client{
		Transport: tr,
		Timeout:   cfg.RequestTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}, nil
}

// natsConnConfig maps the settings onto the publisher's NATS connection options. ca-file is used for NATS only
// when a URL asks for TLS (tls:// or wss://), so that a CA given for the API does not force TLS on a plain server.
func natsConnConfig(cfg *config.Config) publisher.ConnConfig {
	urls, _ := config.ParseNATSURLs(cfg.NATSURL)
	cc := publisher.ConnConfig{
		URLs:           urls,
		Name:           cfg.NATSName,
		User:           cfg.NATSUser,
		Password:       cfg.NATSPassword,
		Token:          cfg.NATSToken,
		NKeySeedFile:   cfg.NATSNKeyFile,
		CredsFile:      cfg.NATSCredsFile,
		ConnectTimeout: cfg.ConnectTimeout,
	}
	for _, u := range urls {
		if strings.HasPrefix(u, "tls://") || strings.HasPrefix(u, "wss://") {
			cc.TLS = publisher.TLSConfig{Enable: true, CAFile: cfg.CAFile}
			break
		}
	}
	return cc
}

// redactor removes every credential value from text that may have passed through an error (a *url.Error
// prints the whole URL, query included).
type redactor []string

func newRedactor(cfg *config.Config) redactor {
	var r redactor
	for _, c := range cfg.Credentials {
		if c.Value != "" {
			r = append(r, c.Value, url.QueryEscape(c.Value))
		}
	}
	for _, s := range []string{cfg.NATSPassword, cfg.NATSToken, cfg.KafkaSASLPassword} {
		if s != "" {
			r = append(r, s)
		}
	}
	return r
}

func (r redactor) String(s string) string {
	for _, v := range r {
		if v != "" {
			s = strings.ReplaceAll(s, v, "<redacted>")
		}
	}
	return s
}

// httpProblem describes an HTTP client error without the URL (whose query may hold a token).
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

// durationOr returns d, or def when d is zero.
func durationOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}
