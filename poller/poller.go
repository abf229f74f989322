package poller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tagstream/tagstream/poller/checkpoint"
	"github.com/tagstream/tagstream/schema"
)

// Publisher hands events to a broker. Publish returns nil only when every event is durably acknowledged by the
// broker; the poller moves a tag's cursor only after that. Implementations must be safe for concurrent use: the
// poller publishes the batches of different tags from several workers at once, and the events of one tag always in
// order (oldest first) from one call.
type Publisher interface {
	Publish(ctx context.Context, events []*schema.Event) error
}

// PublisherFunc adapts a function to a Publisher.
type PublisherFunc func(ctx context.Context, events []*schema.Event) error

// Publish calls f(ctx, events).
func (f PublisherFunc) Publish(ctx context.Context, events []*schema.Event) error {
	return f(ctx, events)
}

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
	// StartNow (the default) makes a tag's first poll set the cursor to the current head of its feed and publish
	// nothing: only media that appear after the first poll are published.
	StartNow StartFrom = iota
	// StartBackfill publishes about Config.BackfillPages pages of existing media (oldest first) and goes on from
	// there. Up to CatchUpPages pages are published exactly; a larger backfill is worked off by the catch-up
	// machinery and starts just after the oldest media of page BackfillPages.
	StartBackfill
)

// String returns "now" or "backfill".
func (s StartFrom) String() string {
	switch s {
	case StartNow:
		return "now"
	case StartBackfill:
		return "backfill"
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
	// CatchUpPages is the most pages one poll publishes at once; default 20. A walk may read one more page (the
	// slack that an inclusive boundary media and page shifts need) before it gives up; a larger backlog is worked
	// off over the following polls without moving the cursor past unpublished media (see the package
	// documentation).
	CatchUpPages int
	// Start says where a tag without a checkpoint starts; default StartNow.
	Start StartFrom
	// BackfillPages is how many pages StartBackfill publishes; default (and 0) means CatchUpPages.
	BackfillPages int
	// MinInterval is the shortest time between two polls of one tag; default 2s.
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
	// Transport, when set, replaces the HTTP transport built from CAFile (tests and benchmarks use an in-process
	// RoundTripper). Redirects are still refused by the poller's client.
	Transport http.RoundTripper
	// Clock returns the current time; nil means time.Now.
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
)

// Errors of the poller. Errors returned by New wrap ErrConfig; fetch errors are *FetchError values that wrap one of
// ErrRateLimited, ErrTokenInvalid, ErrPermanent or ErrTransient.
var (
	// ErrConfig is wrapped by every validation error of New; the message names the field.
	ErrConfig = errors.New("poller: invalid config")
	// ErrNoTokens is returned by New when Config.Tokens is empty.
	ErrNoTokens = errors.New("poller: no tokens configured")
	// ErrAllTokensRetired is wrapped by the error Run returns when the API rejected every token.
	ErrAllTokensRetired = errors.New("poller: every token is retired")
	// ErrInvalidTag is returned by AddTag (and New) for a tag that cannot be polled.
	ErrInvalidTag = errors.New("poller: invalid tag")
	// ErrRunning is returned by Run when the poller is already running.
	ErrRunning = errors.New("poller: already running")
)

// TagStatus is a snapshot of one tag's polling state.
type TagStatus struct {
	Tag          string
	Cursor       string    // committed cursor as last seen by this process ("" before the first commit)
	Segments     int       // catch-up segments located but not yet published
	LastPoll     time.Time // end of the last successful poll; zero before the first
	LastAttempt  time.Time // end of the last poll, successful or not (LastError says how it ended)
	NextPoll     time.Time // when the tag is due; zero while a poll is in flight
	RateEstimate float64   // estimated posting rate, media per second
	Lag          time.Duration
	Published    uint64 // media events acknowledged by the publisher since start
	Gaps         uint64 // gap markers published since start
	LastError    string // the last poll's error ("" when it succeeded); never holds a token
}

// TokenStatus is a snapshot of one token. It never holds the token itself.
type TokenStatus struct {
	Index       int    // position in Config.Tokens
	Fingerprint string // first 8 hex digits of the token's SHA-256
	ClientID    bool
	Limit       int // requests per window, from X-Ratelimit-Limit when seen, else the configured budget
	Remaining   int // last X-Ratelimit-Remaining seen; -1 before any
	ParkedUntil time.Time
	Retired     bool
}

// Poller polls the recent media of many tags with a pool of tokens and publishes one event per new media. It is safe
// for concurrent use; Run may be called once at a time.
type Poller struct {
	cfg    Config
	pub    Publisher
	store  checkpoint.Store
	log    *slog.Logger
	m      *metrics
	pool   *tokenPool
	client *client

	mu    sync.Mutex
	sched *scheduler
	wake  chan struct{}
	// reqPerPoll is an average of the requests one poll costs (pages, probes, retries), at least 1.
	reqPerPoll float64
	overload   bool

	running   atomic.Bool
	inclusive atomic.Bool // the upstream returned a min_tag_id boundary item at least once
}

// New validates cfg and builds a Poller. pub and store are required; logger nil discards logs; reg nil registers no
// metrics. Errors wrap ErrConfig (naming the field), ErrNoTokens or ErrInvalidTag.
func New(cfg Config, pub Publisher, store checkpoint.Store, logger *slog.Logger, reg prometheus.Registerer) (*Poller, error) {
	if pub == nil {
		return nil, fmt.Errorf("%w: publisher is nil", ErrConfig)
	}
	if store == nil {
		return nil, fmt.Errorf("%w: checkpoint store is nil", ErrConfig)
	}
	cfg, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	pool := newTokenPool(cfg, logger, m)
	cl, err := newClient(cfg, pool, logger, m)
	if err != nil {
		return nil, err
	}
	p := &Poller{
		cfg:        cfg,
		pub:        pub,
		store:      store,
		log:        logger,
		m:          m,
		pool:       pool,
		client:     cl,
		sched:      newScheduler(cfg),
		wake:       make(chan struct{}, 1),
		reqPerPoll: 1,
	}
	now, budget := cfg.Clock(), p.budgetLocked()
	for _, t := range cfg.Tags {
		p.sched.add(t, now, budget)
	}
	return p, nil
}

func (c Config) resolve() (Config, error) {
	bad := func(field, format string, args ...any) (Config, error) {
		return Config{}, fmt.Errorf("%w: Config.%s: %s", ErrConfig, field, fmt.Sprintf(format, args...))
	}
	if c.BaseURL == "" {
		return bad("BaseURL", "required")
	}
	u, err := url.Parse(c.BaseURL)
	if err != nil {
		return bad("BaseURL", "not a URL")
	}
	switch {
	case u.Host == "":
		return bad("BaseURL", "no host")
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return bad("BaseURL", "must not carry user info, a query or a fragment")
	case u.Scheme == "https":
	case u.Scheme == "http":
		if !c.AllowInsecureHTTP && !isLoopback(u.Hostname()) {
			return bad("BaseURL", "plain http to a non-loopback host %q needs AllowInsecureHTTP", u.Hostname())
		}
	default:
		return bad("BaseURL", "scheme %q, want https (or http on loopback)", u.Scheme)
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	if len(c.Tokens) == 0 {
		return Config{}, ErrNoTokens
	}
	seen := make(map[string]int, len(c.Tokens))
	c.Tokens = append([]Token(nil), c.Tokens...)
	for i, t := range c.Tokens {
		switch {
		case t.Value == "":
			return bad(fmt.Sprintf("Tokens[%d]", i), "empty value")
		case strings.ContainsFunc(t.Value, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
			return bad(fmt.Sprintf("Tokens[%d]", i), "value contains white space or control characters")
		case t.RequestsPerHour < 0:
			return bad(fmt.Sprintf("Tokens[%d].RequestsPerHour", i), "negative")
		}
		if j, dup := seen[t.Value]; dup {
			return bad(fmt.Sprintf("Tokens[%d]", i), "same value as Tokens[%d]", j)
		}
		seen[t.Value] = i
	}
	type dflt struct {
		name string
		v    *int
		def  int
	}
	for _, d := range []dflt{
		{"RequestsPerHour", &c.RequestsPerHour, DefaultRequestsPerHour},
		{"PageSize", &c.PageSize, DefaultPageSize},
		{"CatchUpPages", &c.CatchUpPages, DefaultCatchUpPages},
		{"MaxAttempts", &c.MaxAttempts, DefaultMaxAttempts},
		{"RecentIDs", &c.RecentIDs, DefaultRecentIDs},
		{"BackfillPages", &c.BackfillPages, 0},
		{"Workers", &c.Workers, 0},
	} {
		if *d.v < 0 {
			return bad(d.name, "negative (%d)", *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.PageSize > 33 {
		return bad("PageSize", "%d exceeds the API's maximum of 33", c.PageSize)
	}
	if c.BackfillPages == 0 {
		c.BackfillPages = c.CatchUpPages
	}
	if c.Workers == 0 {
		c.Workers = min(256, max(4, 2*len(c.Tokens)))
	}
	type dur struct {
		name string
		v    *time.Duration
		def  time.Duration
	}
	for _, d := range []dur{
		{"RateWindow", &c.RateWindow, DefaultRateWindow},
		{"MinInterval", &c.MinInterval, DefaultMinInterval},
		{"MaxInterval", &c.MaxInterval, DefaultMaxInterval},
		{"RequestTimeout", &c.RequestTimeout, DefaultRequestTimeout},
		{"BackoffInitial", &c.BackoffInitial, DefaultBackoffInitial},
		{"BackoffMax", &c.BackoffMax, DefaultBackoffMax},
		{"ShutdownTimeout", &c.ShutdownTimeout, DefaultShutdownTimeout},
	} {
		if *d.v < 0 {
			return bad(d.name, "negative (%s)", *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.MaxInterval < c.MinInterval {
		return bad("MaxInterval", "%s is shorter than MinInterval %s", c.MaxInterval, c.MinInterval)
	}
	if c.BackoffMax < c.BackoffInitial {
		return bad("BackoffMax", "%s is shorter than BackoffInitial %s", c.BackoffMax, c.BackoffInitial)
	}
	switch c.Start {
	case StartNow, StartBackfill:
	default:
		return bad("Start", "unknown value %d", int(c.Start))
	}
	if c.Source == "" {
		c.Source = schema.DefaultSource
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	tags := make([]string, 0, len(c.Tags))
	seenTag := make(map[string]bool, len(c.Tags))
	for i, t := range c.Tags {
		if err := validTag(t); err != nil {
			return Config{}, fmt.Errorf("%w: Config.Tags[%d]: %w", ErrConfig, i, err)
		}
		if !seenTag[t] {
			seenTag[t] = true
			tags = append(tags, t)
		}
	}
	c.Tags = tags
	return c, nil
}

// isLoopback reports whether host names the local machine.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// validTag reports why tag cannot be polled: it must be non-empty valid UTF-8 of at most 256 bytes without white
// space, control characters or the URL delimiters / ? #.
func validTag(tag string) error {
	switch {
	case tag == "":
		return fmt.Errorf("%w: empty", ErrInvalidTag)
	case len(tag) > 256:
		return fmt.Errorf("%w: longer than 256 bytes", ErrInvalidTag)
	case !utf8.ValidString(tag):
		return fmt.Errorf("%w: not valid UTF-8", ErrInvalidTag)
	case strings.ContainsFunc(tag, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r) || r == '/' || r == '?' || r == '#'
	}):
		return fmt.Errorf("%w: %q contains white space, control characters or / ? #", ErrInvalidTag, tag)
	}
	return nil
}

// AddTag starts polling tag (its first poll is due within about one interval). Adding a tag that is already polled
// does nothing. It returns an error wrapping ErrInvalidTag for a tag that cannot be polled.
func (p *Poller) AddTag(tag string) error {
	if err := validTag(tag); err != nil {
		return err
	}
	p.mu.Lock()
	p.sched.add(tag, p.cfg.Clock(), p.budgetLocked())
	p.mu.Unlock()
	p.signal()
	return nil
}

// RemoveTag stops polling tag. A poll in flight finishes (its batch is published and committed or not at all); the
// tag's checkpoint stays in the store, so adding the tag again resumes where it stopped.
func (p *Poller) RemoveTag(tag string) {
	p.mu.Lock()
	p.sched.remove(tag)
	p.mu.Unlock()
	p.signal()
}

// Status returns a snapshot of every tag's state, in no particular order.
func (p *Poller) Status() []TagStatus {
	now := p.cfg.Clock()
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]TagStatus, 0, len(p.sched.tags))
	for _, ts := range p.sched.tags {
		if ts.removed {
			continue // removed while its last poll was in flight
		}
		s := TagStatus{
			Tag:          ts.name,
			Cursor:       ts.cursor,
			Segments:     int(ts.segments),
			RateEstimate: p.sched.rate(ts),
			Published:    ts.published,
			Gaps:         uint64(ts.gaps),
			LastError:    ts.lastErr,
		}
		if ts.lastPoll != 0 {
			s.LastPoll = time.Unix(0, ts.lastPoll)
		}
		if ts.lastTry != 0 {
			s.LastAttempt = time.Unix(0, ts.lastTry)
		}
		if ts.hidx >= 0 {
			s.NextPoll = time.Unix(0, ts.due)
		}
		if ts.newest != 0 {
			s.Lag = max(0, now.Sub(time.Unix(0, ts.newest)))
		}
		out = append(out, s)
	}
	return out
}

// TokenStatus returns a snapshot of every token, in configuration order. It never contains a token.
func (p *Poller) TokenStatus() []TokenStatus { return p.pool.status() }

func (p *Poller) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// budgetLocked is the poll rate (polls per second) the token pool can sustain, with a margin for retries.
func (p *Poller) budgetLocked() float64 {
	return 0.9 * p.pool.sustainableRate() / math.Max(1, p.reqPerPoll)
}

// Run polls until ctx ends. It then stops fetching at once, lets in-flight publishes finish for up to
// Config.ShutdownTimeout (a cancelled publish leaves the cursor where it was), and returns nil. It returns an error
// wrapping ErrAllTokensRetired when the API rejected every token, and ErrRunning when called twice at once.
func (p *Poller) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer p.running.Store(false)
	if p.pool.live() == 0 {
		return fmt.Errorf("poller: cannot start: %w", ErrAllTokensRetired)
	}

	runCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	commitCtx, cancelCommits := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelCommits()

	work := make(chan *tagState)
	var wg sync.WaitGroup
	for range p.cfg.Workers {
		wg.Go(func() {
			for ts := range work {
				err := p.poll(runCtx, commitCtx, ts)
				if errors.Is(err, ErrAllTokensRetired) {
					stop(err)
				}
			}
		})
	}
	wg.Go(func() { p.maintain(runCtx) })

	p.dispatch(runCtx, work)
	close(work)

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	grace := time.NewTimer(p.cfg.ShutdownTimeout)
	defer grace.Stop()
	select {
	case <-done:
	case <-grace.C:
		p.log.Warn("shutdown timeout: cancelling in-flight publishes", "timeout", p.cfg.ShutdownTimeout)
		cancelCommits()
		<-done
	}
	if cause := context.Cause(runCtx); errors.Is(cause, ErrAllTokensRetired) {
		return fmt.Errorf("poller: stopped: %w", cause)
	}
	return nil
}

// dispatch hands due tags to the workers until ctx ends.
func (p *Poller) dispatch(ctx context.Context, work chan<- *tagState) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		p.mu.Lock()
		ts, wait := p.sched.popDue(p.cfg.Clock())
		p.mu.Unlock()
		if ts != nil {
			select {
			case work <- ts:
				continue
			case <-ctx.Done():
				p.mu.Lock()
				p.sched.requeue(ts)
				p.mu.Unlock()
				return
			}
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-p.wake:
		}
	}
}

// maintain rebalances the schedule and refreshes gauges about once a second (every MinInterval when that is
// shorter, but not more often than every 50ms), and never spends more than about 1% of the time rebalancing.
func (p *Poller) maintain(ctx context.Context) {
	every := max(50*time.Millisecond, min(time.Second, p.cfg.MinInterval))
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		p.rebalance()
		t.Reset(max(every, 100*time.Since(start)))
	}
}

func (p *Poller) rebalance() {
	p.pool.refreshGauges()
	p.mu.Lock()
	budget := p.budgetLocked()
	ratio := p.sched.rebalance(budget)
	was := p.overload
	p.overload = ratio > 1
	ntags := len(p.sched.tags)
	p.mu.Unlock()
	if ratio > 1 {
		p.m.overload.Set(ratio)
	} else {
		p.m.overload.Set(0)
	}
	switch {
	case ratio > 1 && !was:
		p.log.Warn("schedule overloaded: every tag is polled less often than its floor",
			"tags", ntags, "budget_polls_per_second", budget, "demand_ratio", ratio)
	case ratio <= 1 && was:
		p.log.Info("schedule no longer overloaded", "tags", ntags, "budget_polls_per_second", budget)
	}
}
