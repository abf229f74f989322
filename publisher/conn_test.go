package publisher

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/tagstream/tagstream/internal/redact"
)

// startNATSWith starts an in-process server with extra options (auth, TLS).
func startNATSWith(t *testing.T, edit func(o *server.Options)) *natsServer {
	t.Helper()
	opts := &server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true}
	edit(opts)
	return runNATS(t, opts)
}

// writeTestPKI writes a CA and a server certificate for 127.0.0.1 into dir and returns the file paths.
func writeTestPKI(t *testing.T, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tagstream test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srvTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(srvKey)
	caFile, certFile, keyFile = filepath.Join(dir, "ca.crt"), filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key.pem")
	for path, block := range map[string]*pem.Block{
		caFile: {Type: "CERTIFICATE", Bytes: caDER}, certFile: {Type: "CERTIFICATE", Bytes: srvDER},
		keyFile: {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return caFile, certFile, keyFile
}

func TestConnectAuthenticates(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	seedFile := filepath.Join(dir, "user.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	caFile, certFile, keyFile := writeTestPKI(t, dir)
	tests := []struct {
		name   string
		server func(o *server.Options)
		cfg    ConnConfig
		scheme string
	}{
		{"a user and password", func(o *server.Options) { o.Username, o.Password = "svc", "pw-secret-1" },
			ConnConfig{User: "svc", Password: "pw-secret-1"}, "nats"},
		{"a token", func(o *server.Options) { o.Authorization = "tok-secret-2" }, ConnConfig{Token: "tok-secret-2"}, "nats"},
		{"an nkey seed file", func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: pub}} },
			ConnConfig{NKeySeedFile: seedFile}, "nats"},
		{"TLS with a private CA", func(o *server.Options) {
			cert, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				t.Fatal(err)
			}
			o.TLS, o.TLSConfig = true, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		}, ConnConfig{TLS: TLSConfig{CAFile: caFile}}, "tls"},
	}
	for _, tt := range tests {
		t.Run("connects with "+tt.name, func(t *testing.T) {
			ns := startNATSWith(t, tt.server)
			cfg := tt.cfg
			cfg.URLs = []string{strings.Replace(ns.url(), "nats://", tt.scheme+"://", 1)}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			nc, err := Connect(ctx, cfg, testLogger(t))
			if err != nil {
				t.Fatalf("Connect: %v", err)
			}
			defer nc.Close()
			if err := nc.Publish("x", []byte("y")); err != nil {
				t.Fatal(err)
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("a wrong token fails without showing the token or a URL password", func(t *testing.T) {
		ns := startNATSWith(t, func(o *server.Options) { o.Authorization = "right-token" })
		u := strings.Replace(ns.url(), "nats://", "nats://someone:url-pass-3@", 1)
		_, err := Connect(context.Background(), ConnConfig{URLs: []string{u}, Token: "wrong-token-4"}, testLogger(t))
		if err == nil {
			t.Fatal("a wrong token was accepted")
		}
		for _, secret := range []string{"wrong-token-4", "url-pass-3"} {
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("error shows %q: %v", secret, err)
			}
		}
	})
}

func TestConnRedactorMasksEverySecret(t *testing.T) {
	t.Parallel()
	cfg := ConnConfig{
		URLs:     []string{"nats://someone:url-pass-3@127.0.0.1:4222"},
		Password: "pw-secret-1",
		Token:    "tok-secret-2",
	}
	tests := []struct {
		name string
		err  error
	}{
		{"an error that holds one secret", errors.New("auth failed for pw-secret-1")},
		{"an error that holds the password and the token", errors.New("auth failed: pw-secret-1 / tok-secret-2")},
		{"an error that holds the token and the URL password", fmt.Errorf("dial %s with tok-secret-2: %w",
			"nats://someone:url-pass-3@127.0.0.1:4222", nats.ErrAuthorization)},
	}
	for _, tt := range tests {
		t.Run(tt.name+" shows none of them", func(t *testing.T) {
			got := cfg.redactor().Error(tt.err)
			for _, secret := range []string{"pw-secret-1", "tok-secret-2", "url-pass-3"} {
				if strings.Contains(got.Error(), secret) {
					t.Fatalf("redacted error shows %q: %v", secret, got)
				}
			}
			if !strings.Contains(got.Error(), redact.Placeholder) {
				t.Fatalf("redacted error does not say what it masked: %v", got)
			}
			if errors.Is(tt.err, nats.ErrAuthorization) && !errors.Is(got, nats.ErrAuthorization) {
				t.Fatalf("redaction lost the nats sentinel: %v", got)
			}
		})
	}
	t.Run("an error without a secret is returned as is", func(t *testing.T) {
		err := errors.New("connection refused")
		if got := cfg.redactor().Error(err); got != err {
			t.Fatalf("Error(%v) = %v, want the same error", err, got)
		}
	})
}

func TestConnConfigValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		cfg   ConnConfig
		field string
	}{
		{"two ways to authenticate", ConnConfig{Token: "t", CredsFile: "c"}, "CredsFile"},
		{"a password without a user", ConnConfig{Password: "p"}, "User"},
		{"an empty URL", ConnConfig{URLs: []string{" "}}, "URLs[0]"},
		{"a max reconnect wait below the first", ConnConfig{ReconnectWait: time.Second, MaxReconnectWait: time.Millisecond}, "MaxReconnectWait"},
		{"a missing CA file", ConnConfig{TLS: TLSConfig{CAFile: "/nonexistent/ca.pem"}}, "TLS.CAFile"},
		{"a client certificate without its key", ConnConfig{TLS: TLSConfig{CertFile: "c.pem"}}, "TLS.CertFile"},
		{"a missing nkey seed file", ConnConfig{NKeySeedFile: "/nonexistent/seed"}, "NKeySeedFile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.cfg.Options(nil)
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("Options = %v, want an error naming %s", err, tt.field)
			}
		})
	}
}
