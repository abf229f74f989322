package testenv

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"
	"time"
)

// CursorStyle selects how the simulator spells pagination cursors.
type CursorStyle int

const (
	// CursorNumeric gives 16 to 19 digit decimal strings that are unrelated to the media ids. The first cursors of
	// every tag sit just below 10^16, so a feed crosses from 16 to 17 digits early: a client that compares cursors
	// as strings ("9..." > "10...") or through float64 goes wrong quickly. This is the default.
	CursorNumeric CursorStyle = iota
	// CursorOpaque gives strings such as "AQBx3k..." (base64url after an "AQ" prefix), as the API did from 2016.
	CursorOpaque
)

// String returns "numeric" or "opaque".
func (c CursorStyle) String() string {
	switch c {
	case CursorNumeric:
		return "numeric"
	case CursorOpaque:
		return "opaque"
	}
	return fmt.Sprintf("CursorStyle(%d)", int(c))
}

// ParseCursorStyle parses "numeric" or "opaque".
func ParseCursorStyle(s string) (CursorStyle, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "numeric":
		return CursorNumeric, nil
	case "opaque":
		return CursorOpaque, nil
	}
	return 0, fmt.Errorf("%w: cursor style %q (want numeric or opaque)", ErrConfig, s)
}

// OverLimit selects the answer to a request over the rate limit.
type OverLimit int

const (
	// Over503 answers 503 with the meta envelope (OAuthRateLimitException), the seed document's answer. Default.
	Over503 OverLimit = iota
	// Over429 answers 429 with the meta envelope (OAuthRateLimitException), as the API did from 2014.
	Over429
	// Over429Flat answers 429 with the flat body recorded in 2017 ({"error_type","code","error_message"}, no
	// meta) and without X-Ratelimit headers.
	Over429Flat
)

// String returns "503", "429" or "429flat".
func (o OverLimit) String() string {
	switch o {
	case Over503:
		return "503"
	case Over429:
		return "429"
	case Over429Flat:
		return "429flat"
	}
	return fmt.Sprintf("OverLimit(%d)", int(o))
}

// ParseOverLimit parses "503", "429" or "429flat".
func ParseOverLimit(s string) (OverLimit, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "503":
		return Over503, nil
	case "429":
		return Over429, nil
	case "429flat", "429-flat", "flat":
		return Over429Flat, nil
	}
	return 0, fmt.Errorf("%w: over-limit mode %q (want 503, 429 or 429flat)", ErrConfig, s)
}

// TagConfig describes one tag's workload.
type TagConfig struct {
	// Name is the tag, without '#'.
	Name string
	// Rate is the mean number of media posted per second (a Poisson process); 0 posts nothing on its own.
	Rate float64
	// Initial is the number of media already in the feed when the server is created.
	Initial int
}

// Config configures a Server. The zero value is usable: an HTTPS server on 127.0.0.1 with no tags and no
// credentials (every API call then fails authentication).
type Config struct {
	// Addr is the listen address of the API; default "127.0.0.1:0".
	Addr string
	// AdminAddr is the listen address of the admin endpoint; default the host of Addr with port 0.
	AdminAddr string
	// PlainHTTP serves plain HTTP; the default (false) is HTTPS with a self-signed certificate made at start.
	PlainHTTP bool
	// CertDir is where ca.pem, the CA a client must trust, is written; default a temporary directory removed by
	// Close.
	CertDir string
	// Tokens are the accepted access_token values (more can be added at run time).
	Tokens []string
	// ClientIDs are the accepted client_id values.
	ClientIDs []string
	// RequestsPerHour is the limit per token or client id over a sliding window of one (simulated) hour;
	// default 5000.
	RequestsPerHour int
	// TimeScale is how many simulated seconds pass per real second for the rate-limit window, and for nothing
	// else; default 1. 60 makes the simulated hour (Server.RateWindow) one real minute, 3600 one real second.
	// X-Ratelimit-Limit and X-Ratelimit-Remaining stay in per-hour units (see the package doc, Limits).
	TimeScale float64
	// OverLimit selects the answer over the limit; default Over503.
	OverLimit OverLimit
	// Cursors selects the cursor spelling; default CursorNumeric.
	Cursors CursorStyle
	// InclusiveMin makes min_tag_id return the boundary item too ("newer or equal").
	InclusiveMin bool
	// Retention is how many of the newest items per tag can still be served (0 = unlimited). A cursor older
	// than that gives what is left, which creates gaps for a client that fell behind.
	Retention int
	// Seed makes media content, cursors and Poisson arrivals deterministic.
	Seed int64
	// Tags are the tags present from the start.
	Tags []TagConfig
	// GroundTruth, if not nil, receives one NDJSON line per posted media and one per deletion.
	GroundTruth io.Writer
	// Faults are the injected faults from the start.
	Faults Faults
	// Logger receives request and control logs (never a token); nil discards them.
	Logger *slog.Logger
}

// Fault kinds, as used in ScheduledFault.Kind (matched case-insensitively) and in Stats outcomes.
const (
	FaultDown503Envelope = "Down503Envelope"
	FaultDown503HTML     = "Down503HTML"
	FaultError500        = "Error500"
	FaultRateLimit429    = "RateLimit429"
	FaultSlow            = "Slow"
	FaultReset           = "Reset"
	FaultTruncated       = "Truncated"
)

// faultKinds lists the fault kinds in the order they are checked.
var faultKinds = [...]string{
	FaultDown503Envelope, FaultDown503HTML, FaultError500, FaultRateLimit429, FaultSlow, FaultReset, FaultTruncated,
}

// Faults configures fault injection. Each probability (0..1) is drawn per API request, in field order; the first
// that fires decides the answer. Faults never apply to the admin endpoint, and a faulted request does not count
// against the rate limit (it never reached the API proper).
type Faults struct {
	// Down503Envelope answers 503 with a meta envelope (error_type "ServiceUnavailable").
	Down503Envelope float64
	// Down503HTML answers 503 with a load balancer's HTML page.
	Down503HTML float64
	// Error500 answers 500 with a meta envelope (error_type "APIError").
	Error500 float64
	// RateLimit429 answers 429 OAuthRateLimitException (flat body when OverLimit is Over429Flat).
	RateLimit429 float64
	// Slow delays the answer by SlowDelay, then answers normally.
	Slow float64
	// Reset closes the connection with a TCP reset without answering.
	Reset float64
	// Truncated answers 200 with a complete HTTP response whose JSON body is cut short.
	Truncated float64
	// SlowDelay is the delay of a Slow answer; default 2s.
	SlowDelay time.Duration
	// Schedule holds faults that fire on every request while active.
	Schedule []ScheduledFault
}

// ScheduledFault makes every API request fail with Kind during [At, At+For).
type ScheduledFault struct {
	// Kind is one of the Fault* names.
	Kind string
	// At is when the fault starts.
	At time.Time
	// For is how long it lasts.
	For time.Duration
}

// Truth is one posted media as the simulator knows it.
type Truth struct {
	Tag         string    `json:"tag"`
	Cursor      string    `json:"cursor"`
	MediaID     string    `json:"media_id"`
	CreatedTime time.Time `json:"created_time"`
	VisibleAt   time.Time `json:"visible_at"`
	DeletedAt   time.Time `json:"deleted_at,omitzero"`
	Late        bool      `json:"late,omitempty"`
}

// Stats counts the requests served.
type Stats struct {
	// Requests is the number of API requests (admin requests excluded).
	Requests int64
	// ByOutcome counts requests by outcome: "ok", "rate_limited", "auth_error", "bad_request", "not_found",
	// "internal_error", "fault_<Kind>" for injected faults (a Slow or Truncated request is counted under its
	// fault and under the outcome of the answer that follows) and "down" for requests and connections reset
	// while the API is down.
	ByOutcome map[string]int64
	// Credentials holds one entry per known credential, in the order they became known.
	Credentials []CredentialStats
}

// CredentialStats counts requests of one credential. It names the credential by index and fingerprint, never by
// its value.
type CredentialStats struct {
	// Index is the credential's position (tokens first in configuration order, then client ids, then tokens
	// added at run time).
	Index int
	// Kind is "access_token" or "client_id".
	Kind string
	// Fingerprint is the first 8 hex digits of the SHA-256 of the credential.
	Fingerprint string
	// Requests counts requests that passed authentication, including those refused over the limit.
	Requests int64
	// Limited counts requests refused over the limit.
	Limited int64
	// Revoked reports whether the credential is revoked now.
	Revoked bool
}

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("testenv: invalid config")

// ErrClosed is returned by Start after Close.
var ErrClosed = errors.New("testenv: server closed")

// maxTags bounds the number of tags (media ids embed the tag's index).
const maxTags = 8192

const (
	defaultRequestsPerHour = 5000
	defaultSlowDelay       = 2 * time.Second
	defaultCount           = 20
	maxCount               = 33
)

// withDefaults returns cfg with defaults filled in, or an error a user can act on.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.RequestsPerHour == 0 {
		cfg.RequestsPerHour = defaultRequestsPerHour
	}
	if cfg.RequestsPerHour < 0 {
		return cfg, fmt.Errorf("%w: RequestsPerHour %d is negative", ErrConfig, cfg.RequestsPerHour)
	}
	if cfg.TimeScale == 0 {
		cfg.TimeScale = 1
	}
	if !(cfg.TimeScale > 0) || math.IsInf(cfg.TimeScale, 0) {
		return cfg, fmt.Errorf("%w: TimeScale %v must be a positive number", ErrConfig, cfg.TimeScale)
	}
	if cfg.OverLimit < Over503 || cfg.OverLimit > Over429Flat {
		return cfg, fmt.Errorf("%w: unknown OverLimit %d", ErrConfig, int(cfg.OverLimit))
	}
	if cfg.Cursors < CursorNumeric || cfg.Cursors > CursorOpaque {
		return cfg, fmt.Errorf("%w: unknown CursorStyle %d", ErrConfig, int(cfg.Cursors))
	}
	if cfg.Retention < 0 {
		return cfg, fmt.Errorf("%w: Retention %d is negative", ErrConfig, cfg.Retention)
	}
	if len(cfg.Tags) > maxTags {
		return cfg, fmt.Errorf("%w: %d tags (at most %d)", ErrConfig, len(cfg.Tags), maxTags)
	}
	seen := make(map[string]bool, len(cfg.Tags))
	for i, tc := range cfg.Tags {
		if err := validTagConfig(tc); err != nil {
			return cfg, fmt.Errorf("%w: tag %d: %w", ErrConfig, i, err)
		}
		if seen[tc.Name] {
			return cfg, fmt.Errorf("%w: tag %q given twice", ErrConfig, tc.Name)
		}
		seen[tc.Name] = true
	}
	for i, t := range cfg.Tokens {
		if !validCredential(t) {
			return cfg, fmt.Errorf("%w: token %d is empty or has characters outside printable ASCII", ErrConfig, i)
		}
	}
	for i, c := range cfg.ClientIDs {
		if !validCredential(c) {
			return cfg, fmt.Errorf("%w: client id %d is empty or has characters outside printable ASCII", ErrConfig, i)
		}
	}
	if err := cfg.Faults.validate(); err != nil {
		return cfg, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg, nil
}

func validTagConfig(tc TagConfig) error {
	if !validTagName(tc.Name) {
		return fmt.Errorf("name %q is not a tag (letters, digits and '_', 1-100 characters)", tc.Name)
	}
	if tc.Rate < 0 || math.IsNaN(tc.Rate) || math.IsInf(tc.Rate, 0) {
		return fmt.Errorf("rate %v of %q must be a finite number >= 0", tc.Rate, tc.Name)
	}
	if tc.Initial < 0 {
		return fmt.Errorf("initial %d of %q is negative", tc.Initial, tc.Name)
	}
	return nil
}

func validCredential(s string) bool {
	if s == "" || len(s) > 512 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

func (f Faults) validate() error {
	probs := [...]float64{f.Down503Envelope, f.Down503HTML, f.Error500, f.RateLimit429, f.Slow, f.Reset, f.Truncated}
	for i, p := range probs {
		if !(p >= 0 && p <= 1) {
			return fmt.Errorf("fault %s probability %v is outside 0..1", faultKinds[i], p)
		}
	}
	if f.SlowDelay < 0 {
		return fmt.Errorf("SlowDelay %v is negative", f.SlowDelay)
	}
	for i, sf := range f.Schedule {
		if canonicalFault(sf.Kind) == "" {
			return fmt.Errorf("scheduled fault %d: unknown kind %q", i, sf.Kind)
		}
		if sf.For < 0 {
			return fmt.Errorf("scheduled fault %d: negative duration %v", i, sf.For)
		}
	}
	return nil
}

// canonicalFault returns the canonical spelling of a fault kind, or "" if unknown.
func canonicalFault(kind string) string {
	for _, k := range faultKinds {
		if strings.EqualFold(k, kind) {
			return k
		}
	}
	return ""
}
