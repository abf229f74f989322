package testenv

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tagstream/tagstream/internal/testkit"
)

// admin posts a JSON body to an admin route and decodes the answer into out (if not nil).
func admin(t *testing.T, s *Server, route string, in any, out any) int {
	t.Helper()
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := s.Client().Post(s.AdminURL()+route, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatalf("admin %s: %v", route, err)
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode == 200 {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("admin %s answer: %v", route, err)
		}
	}
	return resp.StatusCode
}

func TestAdminEndpointMirrorsTheGoAPI(t *testing.T) {
	t.Parallel()
	s := start(t, plain(TagConfig{Name: "adm", Initial: 3}))
	var posted []Truth
	victim := newestFirst(s, "adm")[0]
	steps := []struct {
		name   string
		route  string
		body   any
		out    any
		status int
		check  func(t *testing.T)
	}{
		{"tags adds a tag with initial media", "/tags", map[string]any{"name": "newtag", "initial": 4}, nil, 200, func(t *testing.T) {
			if n := len(truthOf(s, "newtag")); n != 4 {
				t.Errorf("%d media", n)
			}
		}},
		{"post makes a burst and returns its truth", "/post", map[string]any{"tag": "adm", "n": 3}, &posted, 200, func(t *testing.T) {
			if len(posted) != 3 || posted[2].MediaID != newestFirst(s, "adm")[0] {
				t.Errorf("posted %+v", posted)
			}
		}},
		{"late posts an old media at the head", "/late", map[string]any{"tag": "adm", "age": "48h"}, nil, 200, func(t *testing.T) {
			tr := truthOf(s, "adm")
			if last := tr[len(tr)-1]; !last.Late || time.Since(last.CreatedTime) < 47*time.Hour {
				t.Errorf("last %+v", last)
			}
		}},
		{"delete removes a media", "/delete", map[string]any{"tag": "adm", "media_id": victim}, nil, 200, func(t *testing.T) {
			left := newestFirst(s, "adm")
			if len(left) != 6 || strings.Contains(strings.Join(left, " "), victim) {
				t.Errorf("%d media left: %v", len(left), left)
			}
		}},
		{"rate changes a tag's rate", "/rate", map[string]any{"tag": "adm", "rate": 500}, nil, 200, func(t *testing.T) {
			testkit.Eventually(t, waitTimeout, "media arrive", func() bool { return len(truthOf(s, "adm")) > 10 })
			s.SetRate("adm", 0)
		}},
		{"tokens adds a token", "/tokens", map[string]any{"add": "admin-added-token"}, nil, 200, func(t *testing.T) {
			if a := get(t, s, "/tags/adm", map[string][]string{"access_token": {"admin-added-token"}}); a.status != 200 {
				t.Errorf("status %d", a.status)
			}
		}},
		{"tokens revokes a token", "/tokens", map[string]any{"revoke": "admin-added-token"}, nil, 200, func(t *testing.T) {
			if a := get(t, s, "/tags/adm", map[string][]string{"access_token": {"admin-added-token"}}); a.status != 400 {
				t.Errorf("status %d", a.status)
			}
		}},
		{"faults sets faults", "/faults", map[string]any{"error500": 1}, nil, 200, func(t *testing.T) {
			if a := get(t, s, "/tags/adm", auth()); a.status != 500 {
				t.Errorf("status %d", a.status)
			}
		}},
		{"faults with a schedule relative to now", "/faults", map[string]any{"schedule": []map[string]any{{"kind": "Down503HTML", "in": "-1s", "for": "1h"}}}, nil, 200, func(t *testing.T) {
			if a := get(t, s, "/tags/adm", auth()); a.status != 503 {
				t.Errorf("status %d", a.status)
			}
			s.SetFaults(Faults{})
		}},
		{"down takes the API down", "/down", map[string]any{"for": 0.2}, nil, 200, func(t *testing.T) {
			waitAPIBack(t, s, "adm")
		}},
		{"an unknown field is refused", "/post", map[string]any{"tag": "adm", "n": 1, "bogus": true}, nil, 400, nil},
		{"an invalid tag is refused", "/tags", map[string]any{"name": "no spaces"}, nil, 400, nil},
		{"a negative rate is refused", "/rate", map[string]any{"tag": "adm", "rate": -1}, nil, 400, nil},
		{"a rate for an unknown tag is refused", "/rate", map[string]any{"tag": "zzz", "rate": 1}, nil, 400, nil},
		{"an invalid fault probability is refused", "/faults", map[string]any{"reset": 1.5}, nil, 400, nil},
		{"an unknown fault kind is refused", "/faults", map[string]any{"schedule": []map[string]any{{"kind": "Meteor", "for": "1s"}}}, nil, 400, nil},
		{"a burst of zero is refused", "/post", map[string]any{"tag": "adm", "n": 0}, nil, 400, nil},
		{"tokens without add or revoke is refused", "/tokens", map[string]any{}, nil, 400, nil},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if got := admin(t, s, st.route, st.body, st.out); got != st.status {
				t.Fatalf("status %d, want %d", got, st.status)
			}
			if st.check != nil {
				st.check(t)
			}
		})
	}
	t.Run("truth and stats are readable", func(t *testing.T) {
		for _, route := range []string{"/truth", "/stats"} {
			resp, err := s.Client().Get(s.AdminURL() + route)
			if err != nil {
				t.Fatal(err)
			}
			var v any
			err = json.NewDecoder(resp.Body).Decode(&v)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 {
				t.Errorf("%s: status %d, %v", route, resp.StatusCode, err)
			}
		}
	})
}

func TestHTTPSByDefaultWithATrustableCA(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := start(t, Config{Tokens: []string{testToken}, CertDir: dir, Tags: []TagConfig{{Name: "tls", Initial: 2}}})
	if !strings.HasPrefix(s.URL(), "https://") || !strings.HasSuffix(s.URL(), "/v1") {
		t.Fatalf("URL %q", s.URL())
	}
	if s.CAFile() != filepath.Join(dir, "ca.pem") {
		t.Fatalf("CAFile %q, want in %s", s.CAFile(), dir)
	}
	pemBytes, err := os.ReadFile(s.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		t.Fatal("ca.pem has no PEM block")
	}
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil || !ca.IsCA {
		t.Fatalf("ca.pem: %v, IsCA=%v", err, ca != nil && ca.IsCA)
	}
	if a := get(t, s, "/tags/tls/media/recent", auth()); a.status != 200 {
		t.Errorf("Client(): status %d", a.status)
	}
	_, err = http.Get(s.URL() + "/tags/tls")
	var uerr x509.UnknownAuthorityError
	if !errors.As(err, &uerr) {
		t.Errorf("a client without the CA got %v, want an unknown authority error", err)
	}
}

func TestTemporaryCertDirIsRemovedByClose(t *testing.T) {
	t.Parallel()
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	ca := s.CAFile()
	if _, err := os.Stat(ca); err != nil {
		t.Fatalf("CA file: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(ca); !os.IsNotExist(err) {
		t.Errorf("CA file still there after Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.Start(); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close: %v", err)
	}
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
	}{
		{"a negative limit", Config{RequestsPerHour: -1}},
		{"a negative time scale", Config{TimeScale: -2}},
		{"an unknown over-limit mode", Config{OverLimit: 9}},
		{"an unknown cursor style", Config{Cursors: 5}},
		{"a negative retention", Config{Retention: -1}},
		{"a tag with a space", Config{Tags: []TagConfig{{Name: "a b"}}}},
		{"an empty tag", Config{Tags: []TagConfig{{Name: ""}}}},
		{"a negative rate", Config{Tags: []TagConfig{{Name: "x", Rate: -1}}}},
		{"a negative initial", Config{Tags: []TagConfig{{Name: "x", Initial: -1}}}},
		{"a tag given twice", Config{Tags: []TagConfig{{Name: "x"}, {Name: "x"}}}},
		{"an empty token", Config{Tokens: []string{""}}},
		{"a token with a newline", Config{Tokens: []string{"a\nb"}}},
		{"a fault probability above 1", Config{Faults: Faults{Reset: 1.1}}},
		{"a negative slow delay", Config{Faults: Faults{SlowDelay: -time.Second}}},
		{"an unknown scheduled fault", Config{Faults: Faults{Schedule: []ScheduledFault{{Kind: "nope"}}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if !errors.Is(err, ErrConfig) {
				t.Errorf("got %v, want ErrConfig", err)
			}
		})
	}
	t.Run("the zero config is valid", func(t *testing.T) {
		if _, err := New(Config{}); err != nil {
			t.Error(err)
		}
	})
	t.Run("parsers accept the documented names", func(t *testing.T) {
		for in, want := range map[string]OverLimit{"503": Over503, "429": Over429, "429flat": Over429Flat} {
			if got, err := ParseOverLimit(in); err != nil || got != want || got.String() != in {
				t.Errorf("ParseOverLimit(%q) = %v, %v", in, got, err)
			}
		}
		for in, want := range map[string]CursorStyle{"numeric": CursorNumeric, "opaque": CursorOpaque} {
			if got, err := ParseCursorStyle(in); err != nil || got != want || got.String() != in {
				t.Errorf("ParseCursorStyle(%q) = %v, %v", in, got, err)
			}
		}
		if _, err := ParseOverLimit("418"); !errors.Is(err, ErrConfig) {
			t.Errorf("ParseOverLimit(418): %v", err)
		}
		if _, err := ParseCursorStyle("roman"); !errors.Is(err, ErrConfig) {
			t.Errorf("ParseCursorStyle(roman): %v", err)
		}
	})
}

func TestTokensNeverAppearInLogsOrStats(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-token-value"
	var logs testkit.SyncBuffer
	cfg := plain(TagConfig{Name: "sec", Initial: 40})
	cfg.Tokens = []string{secret}
	cfg.RequestsPerHour = 5
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := start(t, cfg)
	params := map[string][]string{"access_token": {secret}, "count": {"2"}}
	for i := 0; i < 7; i++ { // past the limit
		get(t, s, "/tags/sec/media/recent", params)
	}
	s.RevokeToken(secret)
	get(t, s, "/tags/sec/media/recent", params)
	s.SetFaults(Faults{Error500: 1})
	get(t, s, "/tags/sec/media/recent", params)
	stats, _ := json.Marshal(s.Stats())
	for what, text := range map[string]string{"logs": logs.String(), "stats": string(stats), "String": s.String()} {
		if strings.Contains(text, secret) {
			t.Errorf("the token appears in %s", what)
		}
	}
	st := s.Stats()
	if len(st.Credentials) != 2 || st.Credentials[0].Fingerprint == "" || st.Credentials[0].Limited != 2 {
		t.Errorf("credentials %+v", st.Credentials)
	}
}
