package pipeline

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tagstream/tagstream/internal/config"
	"github.com/tagstream/tagstream/internal/testkit"
	"github.com/tagstream/tagstream/poller"
)

// silentAddr returns the address of a listener that accepts connections and never answers.
func silentAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	return ln.Addr().String()
}

func TestCheckSaysWhatFailedAtTheAPI(t *testing.T) {
	t.Parallel()
	html := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte("<html><body>Sign in</body></html>"))
	}))
	t.Cleanup(html.Close)
	tests := []struct {
		name     string
		edit     func(f *fixture) func(*config.Config)
		revoke   bool
		wantKind poller.ProbeKind
		wantErr  string
		wantHint string
	}{
		{"nothing listening is refused", func(*fixture) func(*config.Config) {
			addr := testkit.FreeAddr(t)
			return func(c *config.Config) { c.APIURL = "https://" + addr + "/v1" }
		}, false, poller.ProbeRefused, "connection refused", "refused: nothing listens at 127.0.0.1:"},
		{"an untrusted certificate is a TLS problem", func(*fixture) func(*config.Config) {
			return func(c *config.Config) { c.CAFile = "" }
		}, false, poller.ProbeTLS, "TLS", "give the CA that signed it in ca-file"},
		{"a server that never answers times out after request-timeout", func(*fixture) func(*config.Config) {
			addr := silentAddr(t)
			return func(c *config.Config) { c.APIURL, c.RequestTimeout = "https://"+addr+"/v1", 300*time.Millisecond }
		}, false, poller.ProbeTimeout, "timed out after 300ms", "timed out after 300ms (request-timeout)"},
		{"a wrong path is an HTTP status", func(f *fixture) func(*config.Config) {
			return func(c *config.Config) { c.APIURL = strings.TrimSuffix(c.APIURL, "/v1") + "/v2" }
		}, false, poller.ProbeHTTPStatus, "HTTP 400: APINotFoundError", "check api-url's path"},
		{"a web page is not a v1 envelope", func(*fixture) func(*config.Config) {
			return func(c *config.Config) { c.APIURL, c.CAFile = html.URL+"/v1", "" }
		}, false, poller.ProbeNotEnvelope, "not a v1 envelope (text/html", "not the Instagram v1 API"},
		{"a revoked token says which one", nil, true, poller.ProbeTokenInvalid, "invalid or revoked (fingerprint", "replace or remove that token in tokens-file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var f *fixture
			f = newFixture(t, func(c *config.Config) {
				if tt.edit != nil {
					tt.edit(f)(c)
				}
			}, "sunset")
			if tt.revoke {
				f.sim.RevokeToken(secretTokens[0])
			}
			res := Check(testkit.Context(t, 30*time.Second), f.cfg, f.deps())
			api := res[0]
			var pe *poller.ProbeError
			if api.Name != "api" || !errors.As(api.Err, &pe) {
				t.Fatalf("api check = %+v, want a *poller.ProbeError", api)
			}
			if pe.Kind != tt.wantKind {
				t.Errorf("kind %s, want %s (%v)", pe.Kind, tt.wantKind, api.Err)
			}
			if !strings.Contains(api.Err.Error(), tt.wantErr) {
				t.Errorf("error %q does not say %q", api.Err, tt.wantErr)
			}
			if !strings.Contains(api.Hint, tt.wantHint) {
				t.Errorf("hint %q does not say %q", api.Hint, tt.wantHint)
			}
			for _, tok := range secretTokens {
				if strings.Contains(api.Err.Error()+api.Hint, tok) {
					t.Errorf("the result shows a token")
				}
			}
		})
	}
}

func TestCheckOfTheSwitchedOffAPISaysSo(t *testing.T) {
	pc := poller.Config{BaseURL: "https://api.instagram.com/v1"}
	err := &poller.ProbeError{Kind: poller.ProbeDNS, URL: "https://api.instagram.com/v1/tags/x/media/recent", Err: errors.New("DNS: no such host")}
	if h := apiHint(pc, err); !strings.Contains(h, "switched off in 2020") || !strings.Contains(h, "--keep-running") {
		t.Errorf("hint %q does not say the API is gone and where to go instead", h)
	}
}
