package poller

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tagstream/tagstream/testenv"
)

const probeToken = "probe-token-0123456789abcdef"

// probeConfig is a Config for Probe against base with the probe token and one tag.
func probeConfig(base string) Config {
	return Config{BaseURL: base, Tokens: []Token{{Value: probeToken}}, Tags: []string{"probe_tag"},
		RequestTimeout: 2 * time.Second}
}

// closedPort returns the address of a loopback port nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// silentListener accepts connections and never answers; the test's cleanup closes it and them.
func silentListener(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns <- c
		}
	}()
	t.Cleanup(func() {
		l.Close()
		for {
			select {
			case c := <-conns:
				c.Close()
			default:
				return
			}
		}
	})
	return l.Addr().String()
}

func TestProbeSucceedsAgainstTheSimulator(t *testing.T) {
	sim := startSim(t, testenv.Config{Tokens: []string{probeToken},
		Tags: []testenv.TagConfig{{Name: "probe_tag", Initial: 5}}})
	cfg := probeConfig(sim.URL())
	cfg.CAFile = sim.CAFile()
	res, err := Probe(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Probe: %v", err)
	}
	want := ProbeResult{URL: sim.URL() + "/tags/probe_tag/media/recent", Status: 200, Media: 1,
		Fingerprint: Fingerprint(probeToken), Limit: 5000, Remaining: 4999}
	if res != want {
		t.Fatalf("Probe = %+v, want %+v", res, want)
	}
}

func TestProbeNamesWhatFailed(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// setup returns the Config to probe with.
		setup func(t *testing.T) Config
		kind  ProbeKind
		// text is what the error must say after "GET <url>: ".
		text string
	}{
		{"a closed port is refused", func(t *testing.T) Config {
			return probeConfig("http://" + closedPort(t) + "/v1")
		}, ProbeRefused, "connection refused"},
		{"an HTTPS simulator whose CA is not trusted fails in TLS", func(t *testing.T) Config {
			sim := startSim(t, testenv.Config{Tokens: []string{probeToken}})
			return probeConfig(sim.URL())
		}, ProbeTLS, "TLS: x509: "},
		{"plain http at an https URL says so", func(t *testing.T) Config {
			sim := startSim(t, testenv.Config{PlainHTTP: true, Tokens: []string{probeToken}})
			return probeConfig(strings.Replace(sim.URL(), "http://", "https://", 1))
		}, ProbeOther, "http: server gave HTTP response to HTTPS client"},
		{"a listener that never answers times out", func(t *testing.T) Config {
			cfg := probeConfig("http://" + silentListener(t) + "/v1")
			cfg.RequestTimeout = 300 * time.Millisecond
			return cfg
		}, ProbeTimeout, "timed out after 300ms"},
		{"a wrong base URL gets the API's error status", func(t *testing.T) Config {
			sim := startSim(t, testenv.Config{PlainHTTP: true, Tokens: []string{probeToken}})
			return probeConfig(strings.TrimSuffix(sim.URL(), "/v1") + "/v2")
		}, ProbeHTTPStatus, "HTTP 400: APINotFoundError: "},
		{"an HTML 503 is not a v1 envelope", func(t *testing.T) Config {
			sim := startSim(t, testenv.Config{PlainHTTP: true, Tokens: []string{probeToken},
				Faults: testenv.Faults{Down503HTML: 1}})
			return probeConfig(sim.URL())
		}, ProbeNotEnvelope, "not a v1 envelope (text/html"},
		{"a revoked token is named by its fingerprint", func(t *testing.T) Config {
			sim := startSim(t, testenv.Config{PlainHTTP: true, Tokens: []string{probeToken}})
			sim.RevokeToken(probeToken)
			return probeConfig(sim.URL())
		}, ProbeTokenInvalid, "the token is invalid or revoked (fingerprint " + Fingerprint(probeToken) + "): OAuthAccessTokenException"},
		{"an unknown client id is invalid", func(t *testing.T) Config {
			sim := startSim(t, testenv.Config{PlainHTTP: true, ClientIDs: []string{"another-client"}})
			cfg := probeConfig(sim.URL())
			cfg.Tokens[0].ClientID = true
			return cfg
		}, ProbeTokenInvalid, "the client id is invalid or revoked (fingerprint " + Fingerprint(probeToken) + ")"},
		{"a redirect is refused and names its host", func(t *testing.T) Config {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "https://elsewhere.example"+r.URL.RequestURI(), http.StatusFound)
			}))
			t.Cleanup(srv.Close)
			return probeConfig(srv.URL + "/v1")
		}, ProbeHTTPStatus, "poller: redirect refused: HTTP 302 to https://elsewhere.example;"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.setup(t)
			_, err := Probe(context.Background(), cfg)
			var pe *ProbeError
			if !errors.As(err, &pe) {
				t.Fatalf("Probe error = %v (%T), want a *ProbeError", err, err)
			}
			if pe.Kind != tc.kind {
				t.Errorf("Kind = %v, want %v (error: %v)", pe.Kind, tc.kind, err)
			}
			url := strings.TrimRight(cfg.BaseURL, "/") + "/tags/probe_tag/media/recent"
			if pe.URL != url {
				t.Errorf("URL = %q, want %q", pe.URL, url)
			}
			if prefix := "GET " + url + ": " + tc.text; !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("error = %q\nwant it to start with %q", err, prefix)
			}
			if strings.Contains(err.Error(), probeToken) {
				t.Errorf("the error holds the token: %v", err)
			}
		})
	}
}

func TestProbeDNSFailure(t *testing.T) {
	_, err := Probe(context.Background(), probeConfig("https://no-such-host.invalid/v1"))
	var pe *ProbeError
	if !errors.As(err, &pe) || pe.Kind != ProbeDNS {
		t.Fatalf("Probe error = %v, want a ProbeDNS *ProbeError", err)
	}
	if !strings.Contains(err.Error(), ": DNS: ") {
		t.Errorf("error = %q, want it to say DNS", err)
	}
}

func TestProbeRefusesAnInvalidConfig(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		is   error
	}{
		{"no tag", Config{BaseURL: "https://h/v1", Tokens: []Token{{Value: "t"}}}, ErrConfig},
		{"no token", Config{BaseURL: "https://h/v1", Tags: []string{"x"}}, ErrNoTokens},
		{"plain http elsewhere", Config{BaseURL: "http://h.example/v1", Tokens: []Token{{Value: "t"}}, Tags: []string{"x"}}, ErrBaseURL},
		{"a bad tag", Config{BaseURL: "https://h/v1", Tokens: []Token{{Value: "t"}}, Tags: []string{"a b"}}, ErrInvalidTag},
	}
	for _, tc := range cases {
		t.Run(tc.name+" is refused", func(t *testing.T) {
			if _, err := Probe(context.Background(), tc.cfg); !errors.Is(err, tc.is) {
				t.Fatalf("Probe = %v, want %v", err, tc.is)
			}
		})
	}
}

func TestProbeKindString(t *testing.T) {
	for k := ProbeOther; k <= ProbeTokenInvalid; k++ {
		if s := k.String(); s == "" || strings.HasPrefix(s, "ProbeKind(") {
			t.Errorf("kind %d has no name", int(k))
		}
	}
	if s := ProbeKind(99).String(); s != "ProbeKind(99)" {
		t.Errorf("ProbeKind(99).String() = %q", s)
	}
}
