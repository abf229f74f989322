package publisher

import (
	"crypto/tls"
	"crypto/x509"
	"os"
)

// TLSConfig configures TLS to a broker. The zero value means no TLS.
type TLSConfig struct {
	// Enable turns TLS on. It is implied by any of the file fields.
	Enable bool
	// CAFile is a PEM bundle of extra certificate authorities to trust, added to the system roots. Empty means the
	// system roots alone.
	CAFile string
	// CertFile and KeyFile are the PEM client certificate and key, for mutual TLS. Both or neither.
	CertFile, KeyFile string
	// ServerName overrides the name checked against the server certificate.
	ServerName string
	// InsecureSkipVerify turns off server certificate verification (tests only).
	InsecureSkipVerify bool
}

// enabled reports whether TLS is on.
func (c TLSConfig) enabled() bool {
	return c.Enable || c.CAFile != "" || c.CertFile != "" || c.KeyFile != ""
}

// build returns the *tls.Config, or nil when TLS is off. field names the config field in errors.
func (c TLSConfig) build(field string) (*tls.Config, error) {
	if !c.enabled() {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName, InsecureSkipVerify: c.InsecureSkipVerify} //nolint:gosec // opt-in for tests
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, configError(field+".CAFile", "%v", err)
		}
		// The file adds to the system's roots, as the API client does with the same ca-file setting: a private CA
		// for one server must not break a broker whose certificate a public CA signed.
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, configError(field+".CAFile", "%s holds no PEM certificate", c.CAFile)
		}
		cfg.RootCAs = pool
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return nil, configError(field+".CertFile", "CertFile and KeyFile go together")
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, configError(field+".CertFile", "load client certificate: %v", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// Build returns the *tls.Config described by c, or nil when TLS is off. Errors wrap ErrConfig and name the field.
func (c TLSConfig) Build() (*tls.Config, error) {
	return c.build("TLS")
}
