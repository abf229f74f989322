package poller

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tagstream/tagstream/poller/checkpoint"
	"github.com/tagstream/tagstream/schema"
)

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	tok := []Token{{Value: "t1"}}
	cases := []struct {
		name  string
		cfg   Config
		field string // "" = valid
		is    error
	}{
		{"https to any host is accepted", Config{BaseURL: "https://api.instagram.com/v1", Tokens: tok}, "", nil},
		{"plain http to loopback is accepted", Config{BaseURL: "http://127.0.0.1:8080/v1", Tokens: tok}, "", nil},
		{"plain http to localhost is accepted", Config{BaseURL: "http://localhost:8080/v1", Tokens: tok}, "", nil},
		{"plain http elsewhere needs the opt-in", Config{BaseURL: "http://api.example.com/v1", Tokens: tok}, "BaseURL", ErrConfig},
		{"plain http elsewhere with the opt-in is accepted", Config{BaseURL: "http://api.example.com/v1", AllowInsecureHTTP: true, Tokens: tok}, "", nil},
		{"a missing base URL is refused", Config{Tokens: tok}, "BaseURL", ErrConfig},
		{"a base URL with a query is refused", Config{BaseURL: "https://h/v1?access_token=x", Tokens: tok}, "BaseURL", ErrConfig},
		{"an ftp base URL is refused", Config{BaseURL: "ftp://h/v1", Tokens: tok}, "BaseURL", ErrConfig},
		{"a base URL error also wraps ErrBaseURL", Config{BaseURL: "ftp://h/v1", Tokens: tok}, "BaseURL", ErrBaseURL},
		{"no tokens is refused", Config{BaseURL: "https://h/v1"}, "", ErrNoTokens},
		{"an empty token is refused", Config{BaseURL: "https://h/v1", Tokens: []Token{{}}}, "Tokens[0]", ErrConfig},
		{"a duplicate token is refused", Config{BaseURL: "https://h/v1", Tokens: []Token{{Value: "a"}, {Value: "a"}}}, "Tokens[1]", ErrConfig},
		{"a negative token budget is refused", Config{BaseURL: "https://h/v1", Tokens: []Token{{Value: "a", RequestsPerHour: -1}}}, "Tokens[0].RequestsPerHour", ErrConfig},
		{"a page size above 33 is refused", Config{BaseURL: "https://h/v1", Tokens: tok, PageSize: 50}, "PageSize", ErrConfig},
		{"a negative catch-up limit is refused", Config{BaseURL: "https://h/v1", Tokens: tok, CatchUpPages: -1}, "CatchUpPages", ErrConfig},
		{"a catch-up limit at the cap is accepted", Config{BaseURL: "https://h/v1", Tokens: tok, CatchUpPages: MaxCatchUpPages}, "", nil},
		{"a catch-up limit above the cap is refused", Config{BaseURL: "https://h/v1", Tokens: tok, CatchUpPages: MaxCatchUpPages + 1}, "CatchUpPages", ErrConfig},
		{"a backfill at the cap is accepted", Config{BaseURL: "https://h/v1", Tokens: tok, BackfillPages: MaxBackfillPages}, "", nil},
		{"a backfill above the cap is refused", Config{BaseURL: "https://h/v1", Tokens: tok, BackfillPages: MaxBackfillPages + 1}, "BackfillPages", ErrConfig},
		{"MaxInterval below MinInterval is refused", Config{BaseURL: "https://h/v1", Tokens: tok, MinInterval: time.Minute, MaxInterval: time.Second}, "MaxInterval", ErrConfig},
		{"a tag with a slash is refused", Config{BaseURL: "https://h/v1", Tokens: tok, Tags: []string{"ok", "a/b"}}, "Tags[1]", ErrInvalidTag},
		{"an empty tag is refused", Config{BaseURL: "https://h/v1", Tokens: tok, Tags: []string{""}}, "Tags[0]", ErrInvalidTag},
		{"a tag refused by the schema's rule is refused", Config{BaseURL: "https://h/v1", Tokens: tok, Tags: []string{"#coffee"}}, "Tags[0]", schema.ErrInvalidTag},
		{"an unknown start is refused", Config{BaseURL: "https://h/v1", Tokens: tok, Start: 7}, "Start", ErrConfig},
		{"a CA file that does not exist is refused", Config{BaseURL: "https://h/v1", Tokens: tok, CAFile: "/nonexistent/ca.pem"}, "CAFile", ErrConfig},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg, &memPublisher{}, checkpoint.NewMemory(), nil, nil)
			if tc.is == nil {
				if err != nil {
					t.Fatalf("New = %v, want success", err)
				}
				return
			}
			if !errors.Is(err, tc.is) {
				t.Fatalf("New = %v, want %v", err, tc.is)
			}
			if tc.field != "" && !strings.Contains(err.Error(), "Config."+tc.field) {
				t.Errorf("error %q does not name Config.%s", err, tc.field)
			}
		})
	}
	if _, err := New(Config{BaseURL: "https://h/v1", Tokens: tok}, nil, checkpoint.NewMemory(), nil, nil); !errors.Is(err, ErrConfig) {
		t.Errorf("New without a publisher = %v, want ErrConfig", err)
	}
}

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := Config{BaseURL: "https://h/v1/", Tokens: []Token{{Value: "a"}, {Value: "b"}}}.resolve()
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"BaseURL loses its trailing slash", cfg.BaseURL, "https://h/v1"},
		{"RequestsPerHour", cfg.RequestsPerHour, 5000},
		{"RateWindow", cfg.RateWindow, time.Hour},
		{"PageSize", cfg.PageSize, 33},
		{"CatchUpPages", cfg.CatchUpPages, 20},
		{"BackfillPages", cfg.BackfillPages, 20},
		{"MinInterval", cfg.MinInterval, 2 * time.Second},
		{"MaxInterval", cfg.MaxInterval, 5 * time.Minute},
		{"RequestTimeout", cfg.RequestTimeout, 15 * time.Second},
		{"RecentIDs", cfg.RecentIDs, 200},
		{"Workers", cfg.Workers, 4},
		{"Source", cfg.Source, "/tagstream"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestCheckBaseURL(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		raw      string
		insecure bool
		ok       bool
	}{
		{"https to any host is accepted", "https://api.instagram.com/v1", false, true},
		{"https with a port is accepted", "https://api.example:8443/v1/", false, true},
		{"plain http to 127.0.0.1 is accepted", "http://127.0.0.1:8080/v1", false, true},
		{"plain http to another 127/8 address is accepted", "http://127.3.2.1/v1", false, true},
		{"plain http to ::1 is accepted", "http://[::1]:8080/v1", false, true},
		{"plain http to localhost is accepted", "http://localhost:8080/v1", false, true},
		{"plain http to LOCALHOST is accepted", "http://LOCALHOST/v1", false, true},
		{"plain http elsewhere is refused", "http://api.example.com/v1", false, false},
		{"plain http to a private address is refused", "http://10.0.0.1/v1", false, false},
		{"plain http elsewhere with the opt-in is accepted", "http://api.example.com/v1", true, true},
		{"an empty URL is refused", "", false, false},
		{"blanks are refused", "  ", false, false},
		{"a URL that does not parse is refused", "https://h/%zz", false, false},
		{"a relative URL is refused", "/v1", false, false},
		{"a URL without a host is refused", "https:///v1", false, false},
		{"an ftp URL is refused", "ftp://h/v1", false, false},
		{"a URL with user info is refused", "https://u:p@h/v1", false, false},
		{"a URL with a query is refused", "https://h/v1?access_token=x", false, false},
		{"a URL with an empty query is refused", "https://h/v1?", false, false},
		{"a URL with a fragment is refused", "https://h/v1#x", false, false},
		{"a port of zero is refused", "https://h:0/v1", false, false},
		{"a port above 65535 is refused", "https://h:70000/v1", false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckBaseURL(tc.raw, tc.insecure)
			if tc.ok {
				if err != nil {
					t.Fatalf("CheckBaseURL(%q) = %v, want nil", tc.raw, err)
				}
				return
			}
			if !errors.Is(err, ErrBaseURL) {
				t.Fatalf("CheckBaseURL(%q) = %v, want an error wrapping ErrBaseURL", tc.raw, err)
			}
			if strings.Contains(err.Error(), "p@") || strings.Contains(err.Error(), "access_token=x") {
				t.Fatalf("the error quotes a credential: %v", err)
			}
		})
	}
}

func TestIsLoopback(t *testing.T) {
	t.Parallel()
	cases := []struct {
		host string
		want bool
	}{
		{"localhost", true},
		{"LocalHost", true},
		{"localhost.", true},
		{"127.0.0.1", true},
		{"127.255.0.9", true},
		{"::1", true},
		{"[::1]", true},
		{"::ffff:127.0.0.1", true},
		{"", false},
		{"10.0.0.1", false},
		{"::", false},
		{"localhost.example.com", false},
		{"api.instagram.com", false},
	}
	for _, tc := range cases {
		if got := IsLoopback(tc.host); got != tc.want {
			t.Errorf("IsLoopback(%q) = %v, want %v", tc.host, got, tc.want)
		}
	}
}
