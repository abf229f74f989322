package poller

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/tagstream/tagstream/poller/checkpoint"
	"github.com/tagstream/tagstream/schema"
)

// Token is one credential of the pool: an access_token or, when ClientID is set, a client_id sent as the client_id
// parameter instead.
type Token struct {
	// Value is the secret. It is never logged, put in an error, a metric or a status: the pool refers to a token by
	// its index in Config.Tokens and a short fingerprint (a hash prefix).
	Value string
	// RequestsPerHour is this token's budget per Config.RateWindow; 0 means Config.RequestsPerHour. An
	// X-Ratelimit-Limit header from the API overrides it.
	RequestsPerHour int
	// ClientID sends the value as client_id instead of access_token.
	ClientID bool
}

// StartFrom says where a tag without a checkpoint starts.
type StartFrom int

const (
	// StartNow (the default) publishes the media created at or after Config.StartTime (by default the instant New
	// was called; the command passes the instant the process started; a tag that Assign adds with an instant in
	// Assignment.Starts, as group mode does, uses that instead), less StartSkew: a tag's first poll walks
	// back from the head until a page ends with media created before that, as many pages as needed (more than
	// CatchUpPages are worked off by the catch-up machinery). Nothing posted after the start is missed, except
	// media tagged late (see StartSkew).
	StartNow StartFrom = iota
	// StartBackfill publishes about Config.BackfillPages pages of existing media (oldest first) and goes on from
	// there. Up to CatchUpPages pages are published exactly; a larger backfill is worked off by the catch-up
	// machinery and starts just after the oldest media of page BackfillPages.
	StartBackfill
	// StartSince is StartNow from an earlier instant, Config.StartTime (required): everything created since then,
	// as far back as the API still serves. A tag whose feed ends before media as old as that gets a gap marker
	// first (the API may no longer serve older media, or the tag has none; nothing in an answer tells which).
	StartSince
)

// StartSkew is how much older than the start instant a media's created_time may be and still be published by a
// tag's first poll. It covers created_time's one-second resolution and a small difference between the API's
// clock and this machine's, so a few media created just before the start may be published too. A media tagged
// late (created long before it was tagged, so that it sits at the head of the feed with an old created_time) is
// judged by its created_time like any other: one tagged between the start and the tag's first poll is not
// published. From the first poll on every media that appears at the head is published, whatever its
// created_time. With Config.StartLog, a tag whose first poll found nothing new keeps its state in memory until it
// publishes: a restart before then starts it from the recorded start instant again, so a media tagged late
// between that first poll and the restart is judged by its created_time too.
const StartSkew = 2 * time.Second

// String returns "now", "backfill" or "since".
func (s StartFrom) String() string {
	switch s {
	case StartNow:
		return "now"
	case StartBackfill:
		return "backfill"
	case StartSince:
		return "since"
	}
	return fmt.Sprintf("StartFrom(%d)", int(s))
}

// Config configures a Poller. The zero value of every field means the documented default; New resolves the defaults
// and validates the result once.
type Config struct {
	// BaseURL is the API root, e.g. "https://api.instagram.com/v1". It must be https, except for a loopback host
	// (127.0.0.0/8, ::1, localhost) or when AllowInsecureHTTP is set. Required.
	BaseURL string
	// AllowInsecureHTTP permits a plain http BaseURL on a non-loopback host.
	AllowInsecureHTTP bool
	// CAFile is a PEM file of extra certificate authorities to trust besides the system pool. TLS 1.2 is the
	// minimum version in every case.
	CAFile string
	// Tokens is the credential pool. At least one is required (ErrNoTokens).
	Tokens []Token
	// RequestsPerHour is the default budget of a token per RateWindow; default 5000.
	RequestsPerHour int
	// RateWindow is the window that RequestsPerHour and the API's X-Ratelimit-Limit refer to; default one hour.
	// Tests against a simulator with a TimeScale set it to the scaled hour.
	RateWindow time.Duration
	// Tags are polled from the start; more can be added with AddTag.
	Tags []string
	// PageSize is the count asked for per page; default 33 (the API's maximum for tag media).
	PageSize int
	// CatchUpPages is the most pages one poll publishes at once; default 20, at most MaxCatchUpPages (1,000 pages,
	// 33,000 media). The media of one poll are held in memory until the publisher acknowledged them: about 175 KiB
	// per page of 33 media (BenchmarkPollAtTheCap: 175 MB for a poll at the cap), and up to Workers polls run at
	// once. A walk may read one more page (the slack that an inclusive boundary media and page shifts need) before
	// it gives up; a larger backlog is worked off over the following polls without moving the cursor past
	// unpublished media (see the package documentation).
	CatchUpPages int
	// Start says where a tag without a checkpoint starts; default StartNow.
	Start StartFrom
	// StartTime is the instant StartNow and StartSince publish from (see StartFrom). With StartNow, zero means
	// the instant New was called; StartSince requires it; StartBackfill ignores it.
	StartTime time.Time
	// BackfillPages is how many pages StartBackfill publishes; default (and 0) means CatchUpPages, at most
	// MaxBackfillPages (1,000 pages, 33,000 media: the first poll of a tag walks them all in one go).
	BackfillPages int
	// MinInterval is the shortest time between two polls of one tag's head; default 2s. The walks of a catch-up
	// follow one another at the catch-up's share of the budget instead (see the package documentation).
	MinInterval time.Duration
	// MaxInterval is the longest time between two polls of one tag (the floor for quiet tags); default 5m.
	// Under overload every interval is stretched by the same factor, so it may then be exceeded (see
	// the metric tagstream_schedule_overload).
	MaxInterval time.Duration
	// RequestTimeout bounds one HTTP request, body included; default 15s.
	RequestTimeout time.Duration
	// MaxAttempts is how often one request is tried on transient failures (5xx, network errors, truncated
	// bodies, timeouts) within a poll before the poll gives up (the cursor stays); default 6.
	MaxAttempts int
	// BackoffInitial and BackoffMax shape every exponential backoff of the poller (transient retries, parked
	// tokens, the whole client while the API is down); defaults 500ms and 60s. Delays are drawn with full jitter.
	BackoffInitial time.Duration
	BackoffMax     time.Duration
	// Workers is the number of polls in flight at once; default 2 per token, at least 4 and at most 256.
	Workers int
	// ShutdownTimeout is how long Run lets in-flight publishes finish after its context ends before it cancels
	// them; default 10s. Fetching stops at once.
	ShutdownTimeout time.Duration
	// Source is the CloudEvents source of the events; default schema.DefaultSource.
	Source string
	// AttachRaw attaches the upstream media object to each event.
	AttachRaw bool
	// RecentIDs is how many recent media ids per tag are kept in the checkpoint to remove repeats; default 200.
	RecentIDs int
	// TagMetrics is how many tags get series of their own (tagstream_tag_last_poll_timestamp_seconds and
	// tagstream_tag_poll_interval_seconds): the first TagMetrics tags in the order they were configured or
	// added (a removed tag's series go, and the next tag added takes its place); default 200 (400 series),
	// negative for none.
	TagMetrics int
	// Transport, when set, replaces the HTTP transport built from CAFile (tests and benchmarks use an in-process
	// RoundTripper). Redirects are still refused by the poller's client.
	Transport http.RoundTripper
	// Gate, when set, reports whether the poller may poll at all (in a group: whether this instance holds its
	// membership lease, group.Coordinator.LeaseValid). While it returns false, no poll starts, a poll that
	// finds it false after reading its tag's checkpoint ends without a request or a commit, and no request
	// takes a token; such a poll is not counted as failed and the tag stays due. Nil means always open. It must
	// be cheap and safe for concurrent use: it is called before every poll and every request.
	Gate func() bool
	// OnConflict, when set, is called (from the poll's goroutine, without locks held) with a tag whose checkpoint
	// write the store refused with checkpoint.ErrConflict: another writer wrote the tag's state, so another
	// instance owns it now. The poller has already dropped the tag by then (it does not retry the write) and
	// ignores it in Assign until an Assign without it (see Assign).
	OnConflict func(tag string)
	// StartLog, when set, is the start record of the checkpoint store given to New (checkpoint.Bolt implements
	// it: pass that store here too), and says that this process is the store's only writer. Run then records
	// the start instant of every tag once, before the first poll, so that a tag whose first poll finds nothing
	// new writes no state of its own (see StartNow; a cold start of 100,000 quiet tags writes 100,000 states
	// fewer), and a tag that the start-up read found without a state is not read again by its first poll.
	// Nil (the default, and what a store that other processes write needs) writes every first poll's state.
	StartLog checkpoint.StartLog
	// Clock returns the current wall-clock time, used for timestamps (checkpoints, events, status); nil means
	// time.Now. Scheduling and token pacing run on the monotonic clock, so a step of the wall clock (NTP) neither
	// freezes nor rushes them.
	Clock func() time.Time
}

// Defaults of Config.
const (
	DefaultRequestsPerHour = 5000
	DefaultRateWindow      = time.Hour
	DefaultPageSize        = 33
	DefaultCatchUpPages    = 20
	DefaultMinInterval     = 2 * time.Second
	DefaultMaxInterval     = 5 * time.Minute
	DefaultRequestTimeout  = 15 * time.Second
	DefaultMaxAttempts     = 6
	DefaultBackoffInitial  = 500 * time.Millisecond
	DefaultBackoffMax      = 60 * time.Second
	DefaultShutdownTimeout = 10 * time.Second
	DefaultRecentIDs       = 200
	DefaultTagMetrics      = 200
)

// Upper bounds of Config. New refuses larger values (with an error wrapping ErrConfig that names the field).
const (
	// MaxCatchUpPages bounds Config.CatchUpPages: one poll holds at most MaxCatchUpPages+1 pages of media in
	// memory (about 33,000 media, 175 MB) until the publisher acknowledged them.
	MaxCatchUpPages = 1000
	// MaxBackfillPages bounds Config.BackfillPages: the first poll of a tag started with StartBackfill walks that
	// many pages at once.
	MaxBackfillPages = 1000
)

// ErrBaseURL is wrapped by the errors of CheckBaseURL.
var ErrBaseURL = errors.New("invalid API base URL")

// CheckBaseURL reports why raw cannot be the API base URL, or nil. This is the one rule for it: an absolute https
// URL with a host (a valid port if any) and no user info, query or fragment; plain http only for a loopback host
// (see IsLoopback) or when allowInsecureHTTP is set, since the tokens travel in the query string. Errors wrap
// ErrBaseURL and quote raw (a base URL holds no credential once it passes; one that fails for carrying user info
// or a query is not quoted).
func CheckBaseURL(raw string, allowInsecureHTTP bool) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBaseURL, fmt.Sprintf(format, args...))
	}
	if strings.TrimSpace(raw) == "" {
		return bad("empty")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return bad("not a URL")
	}
	if u.User != nil {
		return bad("it must not carry a user name or password")
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return bad("it must not carry a query or a fragment (tokens are configured apart)")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if u.Hostname() != "" && !allowInsecureHTTP && !IsLoopback(u.Hostname()) {
			return bad("%q uses plain http on a non-loopback host: tokens would travel in clear (use https, or allow insecure http)", raw)
		}
	default:
		return bad("%q: the scheme must be https (or http on a loopback host)", raw)
	}
	if u.Hostname() == "" {
		return bad("%q has no host", raw)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return bad("%q has an invalid port", raw)
		}
	}
	return nil
}

// IsLoopback reports whether host (a name or an IP address without a port) names the local machine: "localhost"
// (in any case, with or without a final dot), 127.0.0.0/8 or ::1. This is the one rule for a loopback host.
func IsLoopback(host string) bool {
	host = strings.TrimSuffix(host, ".")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	return err == nil && ip.Unmap().IsLoopback()
}

// resolve returns c with every default filled in, or an error naming the first field that is wrong. It is the one
// place where defaults are chosen and bounds checked.
func (c Config) resolve() (Config, error) {
	steps := []func(*Config) error{
		(*Config).resolveBaseURL,
		(*Config).resolveTokens,
		(*Config).resolveCounts,
		(*Config).resolveDurations,
		(*Config).resolveRest,
		(*Config).resolveTags,
	}
	for _, step := range steps {
		if err := step(&c); err != nil {
			return Config{}, err
		}
	}
	return c, nil
}

// badField returns an error wrapping ErrConfig that names the field.
func badField(field, format string, args ...any) error {
	return fmt.Errorf("%w: Config.%s: %s", ErrConfig, field, fmt.Sprintf(format, args...))
}

func (c *Config) resolveBaseURL() error {
	if c.BaseURL == "" {
		return badField("BaseURL", "required")
	}
	if err := CheckBaseURL(c.BaseURL, c.AllowInsecureHTTP); err != nil {
		return fmt.Errorf("%w: Config.BaseURL: %w", ErrConfig, err)
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	return nil
}

func (c *Config) resolveTokens() error {
	if len(c.Tokens) == 0 {
		return ErrNoTokens
	}
	seen := make(map[string]int, len(c.Tokens))
	c.Tokens = slices.Clone(c.Tokens)
	for i, t := range c.Tokens {
		field := fmt.Sprintf("Tokens[%d]", i)
		switch {
		case t.Value == "":
			return badField(field, "empty value")
		case strings.ContainsFunc(t.Value, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
			return badField(field, "value contains white space or control characters")
		case t.RequestsPerHour < 0:
			return badField(field+".RequestsPerHour", "negative")
		}
		if j, dup := seen[t.Value]; dup {
			return badField(field, "same value as Tokens[%d]", j)
		}
		seen[t.Value] = i
	}
	return nil
}

// resolveCounts fills in and bounds the integer fields.
func (c *Config) resolveCounts() error {
	for _, d := range []struct {
		name     string
		v        *int
		def, max int // max 0: no upper bound
	}{
		{"RequestsPerHour", &c.RequestsPerHour, DefaultRequestsPerHour, 0},
		{"PageSize", &c.PageSize, DefaultPageSize, 33},
		{"CatchUpPages", &c.CatchUpPages, DefaultCatchUpPages, MaxCatchUpPages},
		{"MaxAttempts", &c.MaxAttempts, DefaultMaxAttempts, 0},
		{"RecentIDs", &c.RecentIDs, DefaultRecentIDs, 0},
		{"BackfillPages", &c.BackfillPages, 0, MaxBackfillPages},
		{"Workers", &c.Workers, 0, 0},
	} {
		switch {
		case *d.v < 0:
			return badField(d.name, "negative (%d)", *d.v)
		case d.max > 0 && *d.v > d.max && d.name == "PageSize":
			return badField(d.name, "%d exceeds the API's maximum of %d", *d.v, d.max)
		case d.max > 0 && *d.v > d.max:
			return badField(d.name, "%d exceeds the maximum of %d", *d.v, d.max)
		case *d.v == 0:
			*d.v = d.def
		}
	}
	if c.BackfillPages == 0 {
		c.BackfillPages = c.CatchUpPages
	}
	if c.Workers == 0 {
		c.Workers = min(256, max(4, 2*len(c.Tokens)))
	}
	switch {
	case c.TagMetrics == 0:
		c.TagMetrics = DefaultTagMetrics
	case c.TagMetrics < 0:
		c.TagMetrics = 0
	}
	return nil
}

// resolveDurations fills in and checks the durations.
func (c *Config) resolveDurations() error {
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"RateWindow", &c.RateWindow, DefaultRateWindow},
		{"MinInterval", &c.MinInterval, DefaultMinInterval},
		{"MaxInterval", &c.MaxInterval, DefaultMaxInterval},
		{"RequestTimeout", &c.RequestTimeout, DefaultRequestTimeout},
		{"BackoffInitial", &c.BackoffInitial, DefaultBackoffInitial},
		{"BackoffMax", &c.BackoffMax, DefaultBackoffMax},
		{"ShutdownTimeout", &c.ShutdownTimeout, DefaultShutdownTimeout},
	} {
		if *d.v < 0 {
			return badField(d.name, "negative (%s)", *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.MaxInterval < c.MinInterval {
		return badField("MaxInterval", "%s is shorter than MinInterval %s", c.MaxInterval, c.MinInterval)
	}
	if c.BackoffMax < c.BackoffInitial {
		return badField("BackoffMax", "%s is shorter than BackoffInitial %s", c.BackoffMax, c.BackoffInitial)
	}
	return nil
}

// resolveRest checks Start and fills in Source and Clock.
func (c *Config) resolveRest() error {
	switch c.Start {
	case StartNow, StartBackfill:
	case StartSince:
		if c.StartTime.IsZero() {
			return badField("StartTime", "required with StartSince")
		}
	default:
		return badField("Start", "unknown value %d", int(c.Start))
	}
	if c.Source == "" {
		c.Source = schema.DefaultSource
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	return nil
}

// resolveTags checks every tag and drops repeats.
func (c *Config) resolveTags() error {
	tags := make([]string, 0, len(c.Tags))
	seen := make(map[string]bool, len(c.Tags))
	for i, t := range c.Tags {
		if err := schema.ValidateTag(t); err != nil {
			return fmt.Errorf("%w: Config.Tags[%d]: %w", ErrConfig, i, err)
		}
		if !seen[t] {
			seen[t] = true
			tags = append(tags, t)
		}
	}
	c.Tags = tags
	return nil
}
