package group

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/tagstream/tagstream/poller/checkpoint"
)

// Config configures NewJetStream. The zero value of every field but Group means the documented default; NewJetStream
// resolves the defaults and validates the result once.
type Config struct {
	// Group names the group: letters, digits, '-' and '_', at most 64 characters. Required. Instances with the
	// same Group on the same JetStream share its tags and tokens.
	Group string
	// Name is this instance's member name, unique among the live members (letters, digits, '-' and '_', at most
	// 64 characters). Default: the host name and the process id. Tags are spread over names, so a stable name
	// (a StatefulSet pod name, a systemd instance name) gets its tags back after a restart; a restarted instance
	// whose previous incarnation was killed waits until that incarnation's lease expired (at most Lease).
	Name string
	// Tags are added to the group's set when Run starts (like `tagstream tags add`).
	Tags []string
	// Tokens are this instance's tokens, by fingerprint and budget. An instance without tokens is a member but
	// is given no tags.
	Tokens []Token
	// RateWindow is the window RequestsPerHour refers to; default one hour (tests against a time-scaled simulator
	// shorten it). Only the division of budgets between members depends on it.
	RateWindow time.Duration
	// Lease is how long a member that stopped renewing keeps its membership (and its tags and token shares):
	// the failover time after a kill -9 or a cut network. It is a property of the group, fixed when the group's
	// members bucket is created; zero means the group's lease, or DefaultLease for a new group. A non-zero
	// Lease that differs from an existing group's fails with ErrConfig. At least 1s.
	Lease time.Duration
	// Heartbeat is how often the membership is renewed; default Lease/4. It must be below Lease/2.
	Heartbeat time.Duration
	// Replicas is the replica count of the group's buckets when they are created; default 3, or 1 on a
	// JetStream that is not clustered. Use 3 on a three-node cluster.
	Replicas int
	// Retention is how long the cursor of a tag removed from the set is kept, so that re-adding the tag resumes
	// without a gap; default 7 days. After it, a member deletes the cursor through Cursors.
	Retention time.Duration
	// Cursors, when set, is the cursor store whose entries of tags removed for longer than Retention are
	// deleted. Nil keeps them forever.
	Cursors CursorStore
	// MinInterval, MaxInterval and PageSize mirror the poller's settings of the same names (defaults 2s, 5m and
	// 33): the division of the token budget computes each tag's poll rate by the same square-root rule as the
	// poller's scheduler, with the same floor and ceiling.
	MinInterval time.Duration
	MaxInterval time.Duration
	PageSize    int
	// BudgetFactor is the part of the pooled request budget the poller plans to spend (its margin for retries);
	// default 0.9, as the poller's.
	BudgetFactor float64
	// Rebalance is how often the division of the token budget is recomputed from the rate estimates when
	// nothing else changed; default 5s. Membership, ownership and tag-set changes are acted on at once.
	Rebalance time.Duration
	// ApplyTimeout bounds one Poller.Apply (how long a handed-off tag's in-flight poll may take to finish);
	// default 60s.
	ApplyTimeout time.Duration
	// Concurrency is how many bucket writes (claims, releases, rate estimates) run at once; default 16.
	Concurrency int
	// StatusURL is where this instance serves its /status (the http or https URL of its metrics listener, such as
	// "http://host-a:9464"), advertised in its member record so that `tagstream status --group` can ask each
	// member for what the buckets do not hold (last and next poll, lag, gaps, budget left). Every member and
	// anyone who reads the group's buckets sees it: it must hold no credentials (CheckStatusURL refuses a user,
	// a password, a query and a fragment). Empty advertises none.
	StatusURL string
}

// CursorStore is the part of the cursor store (checkpoint.Store) that deletes the cursors of removed tags. The
// coordinator reads a cursor before deleting it, so that a store that writes only over the revision it read (a
// shared JetStream bucket) accepts the delete.
type CursorStore interface {
	Get(ctx context.Context, tag string) (checkpoint.State, bool, error)
	Delete(ctx context.Context, tag string) error
}

// Defaults of Config.
const (
	DefaultLease            = 8 * time.Second
	DefaultReplicas         = 3
	DefaultRetention        = 7 * 24 * time.Hour
	DefaultRateWindow       = time.Hour
	DefaultRequestsPerHour  = 5000
	DefaultMinInterval      = 2 * time.Second
	DefaultMaxInterval      = 5 * time.Minute
	DefaultPageSize         = 33
	DefaultBudgetFactor     = 0.9
	DefaultRebalance        = 5 * time.Second
	DefaultApplyTimeout     = 60 * time.Second
	DefaultConcurrency      = 16
	minLease                = time.Second
	maxNameLen              = 64
	defaultHeartbeatDivisor = 4
)

var namePattern = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func checkName(field, v string) error {
	switch {
	case v == "":
		return fmt.Errorf("%w: %s is empty", ErrConfig, field)
	case len(v) > maxNameLen:
		return fmt.Errorf("%w: %s %q is longer than %d characters", ErrConfig, field, v, maxNameLen)
	case !namePattern.MatchString(v):
		return fmt.Errorf("%w: %s %q: use letters, digits, '-' and '_' only", ErrConfig, field, v)
	}
	return nil
}

// defaultName is the host name (cut to letters, digits, '-' and '_') and the process id.
func defaultName() string {
	h, _ := os.Hostname()
	h = strings.Map(func(r rune) rune {
		if r < 128 && (r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return r
		}
		return '_'
	}, h)
	if h == "" {
		h = "tagstream"
	}
	suffix := fmt.Sprintf("-%d", os.Getpid())
	if len(h)+len(suffix) > maxNameLen {
		h = h[:maxNameLen-len(suffix)]
	}
	return h + suffix
}

// resolve fills the defaults and validates; the lease of an existing group is checked later, against its bucket.
func (c Config) resolve() (Config, error) {
	if err := checkName("Group", c.Group); err != nil {
		return c, err
	}
	if c.Name == "" {
		c.Name = defaultName()
	}
	if err := checkName("Name", c.Name); err != nil {
		return c, err
	}
	for _, tag := range c.Tags {
		if err := checkTag(tag); err != nil {
			return c, fmt.Errorf("%w: Tags: %w", ErrConfig, err)
		}
	}
	seen := make(map[string]bool)
	c.Tokens = append([]Token(nil), c.Tokens...)
	for i, t := range c.Tokens {
		if !namePattern.MatchString(t.Fingerprint) || len(t.Fingerprint) > maxNameLen {
			return c, fmt.Errorf("%w: Tokens[%d]: fingerprint %q: want letters, digits, '-' and '_'", ErrConfig, i, t.Fingerprint)
		}
		if seen[t.Fingerprint] {
			return c, fmt.Errorf("%w: Tokens[%d]: fingerprint %q given twice", ErrConfig, i, t.Fingerprint)
		}
		seen[t.Fingerprint] = true
		if t.RequestsPerHour < 0 {
			return c, fmt.Errorf("%w: Tokens[%d]: RequestsPerHour %d is negative", ErrConfig, i, t.RequestsPerHour)
		}
		if t.RequestsPerHour == 0 {
			c.Tokens[i].RequestsPerHour = DefaultRequestsPerHour
		}
	}
	if err := CheckStatusURL(c.StatusURL); err != nil {
		return c, err
	}
	durations := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"RateWindow", &c.RateWindow, DefaultRateWindow},
		{"Retention", &c.Retention, DefaultRetention},
		{"MinInterval", &c.MinInterval, DefaultMinInterval},
		{"MaxInterval", &c.MaxInterval, DefaultMaxInterval},
		{"Rebalance", &c.Rebalance, DefaultRebalance},
		{"ApplyTimeout", &c.ApplyTimeout, DefaultApplyTimeout},
	}
	for _, d := range durations {
		if *d.v < 0 {
			return c, fmt.Errorf("%w: %s %s is negative", ErrConfig, d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.MaxInterval < c.MinInterval {
		return c, fmt.Errorf("%w: MaxInterval %s is below MinInterval %s", ErrConfig, c.MaxInterval, c.MinInterval)
	}
	if c.Lease < 0 || c.Lease > 0 && c.Lease < minLease {
		return c, fmt.Errorf("%w: Lease %s: want at least %s", ErrConfig, c.Lease, minLease)
	}
	if c.Heartbeat < 0 {
		return c, fmt.Errorf("%w: Heartbeat %s is negative", ErrConfig, c.Heartbeat)
	}
	if c.Replicas < 0 || c.Replicas > 5 {
		return c, fmt.Errorf("%w: Replicas %d out of range 1..5", ErrConfig, c.Replicas)
	}
	if c.PageSize < 0 {
		return c, fmt.Errorf("%w: PageSize %d is negative", ErrConfig, c.PageSize)
	}
	if c.PageSize == 0 {
		c.PageSize = DefaultPageSize
	}
	if c.BudgetFactor < 0 || c.BudgetFactor > 1 {
		return c, fmt.Errorf("%w: BudgetFactor %g out of range (0, 1]", ErrConfig, c.BudgetFactor)
	}
	if c.BudgetFactor == 0 {
		c.BudgetFactor = DefaultBudgetFactor
	}
	if c.Concurrency < 0 {
		return c, fmt.Errorf("%w: Concurrency %d is negative", ErrConfig, c.Concurrency)
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	return c, nil
}

// maxStatusURL bounds Config.StatusURL: it is rewritten with every heartbeat.
const maxStatusURL = 512

// CheckStatusURL reports why u cannot be advertised as a member's status URL (Config.StatusURL), or nil: empty, or
// an absolute http or https URL with a host and at most 512 bytes, holding nothing secret (no user or password,
// no query, no fragment: every reader of the group's buckets sees it). The error wraps ErrConfig. It is the one
// rule for callers that validate settings before they build a coordinator.
func CheckStatusURL(u string) error {
	if u == "" {
		return nil
	}
	if len(u) > maxStatusURL {
		return fmt.Errorf("%w: status URL is longer than %d bytes", ErrConfig, maxStatusURL)
	}
	p, err := url.Parse(u)
	switch {
	case err != nil:
		// Only the cause: url.Error quotes the whole text, which may hold a password.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("%w: status URL does not parse: %v", ErrConfig, err)
	case p.Scheme != "http" && p.Scheme != "https" || p.Host == "" || p.Opaque != "":
		return fmt.Errorf("%w: status URL %q: want an http or https URL with a host, such as http://host-a:9464", ErrConfig, u)
	case p.User != nil:
		// Not quoted: the password would be printed.
		return fmt.Errorf("%w: status URL holds a user or password: every reader of the group's buckets sees it", ErrConfig)
	case p.RawQuery != "" || p.ForceQuery || p.Fragment != "":
		bare := url.URL{Scheme: p.Scheme, Host: p.Host, Path: p.Path}
		return fmt.Errorf("%w: status URL %s: no query or fragment (every reader of the group's buckets sees it)", ErrConfig, bare.String())
	}
	return nil
}

// withLease sets the lease (the group's when lease is not zero) and the heartbeat, and checks them.
func (c Config) withLease(lease time.Duration) (Config, error) {
	if lease > 0 {
		if c.Lease != 0 && c.Lease != lease {
			return c, fmt.Errorf("%w: Lease %s differs from group %q's lease %s (fixed when the group was created)",
				ErrConfig, c.Lease, c.Group, lease)
		}
		c.Lease = lease
	}
	if c.Lease == 0 {
		c.Lease = DefaultLease
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = c.Lease / defaultHeartbeatDivisor
	}
	if c.Heartbeat >= c.Lease/2 {
		return c, fmt.Errorf("%w: Heartbeat %s must be below half the lease (%s)", ErrConfig, c.Heartbeat, c.Lease)
	}
	return c, nil
}
