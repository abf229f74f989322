package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tagstream/tagstream/group"
	"github.com/tagstream/tagstream/internal/config"
	"github.com/tagstream/tagstream/poller"
	"github.com/tagstream/tagstream/publisher"
)

// Group mode (the group setting): the poller polls what the group's coordinator assigns to this instance, and the
// coordinator runs beside it over the pipeline's NATS connection. See docs/group.md.

// rateReportEvery is how often the poller's rate estimates are handed to the coordinator (group.Coordinator's
// ReportRates asks for about every ten seconds).
const rateReportEvery = 10 * time.Second

// groupPoller adapts *poller.Poller to group.Poller: an assignment is the polled tags, the token shares by
// fingerprint, the rate seeds of the tags taken over, the instant each tag entered the group's set (where a tag
// without a cursor starts under start=now), and the claim write of each added tag's cursor (the fencing point of
// docs/group.md).
type groupPoller struct{ p *poller.Poller }

var _ group.Poller = groupPoller{}

// Apply implements group.Poller.
func (g groupPoller) Apply(ctx context.Context, a group.Assignment) error {
	shares := make(map[string]float64, len(a.Tokens))
	for _, ts := range a.Tokens {
		shares[ts.Fingerprint] = ts.Fraction
	}
	return g.p.Assign(ctx, poller.Assignment{Tags: a.Tags, Shares: shares, Rates: a.Rates, Starts: a.Added, Claim: true})
}

// openGroup builds the coordinator of cfg's group on js (binding to or creating the group's buckets), with store
// as the cursor store whose removed tags' cursors it deletes after the retention, advertising the status URL
// groupStatusURL derives from statusAddr (the status listener's bound address, "" when there is none).
func openGroup(ctx context.Context, cfg *config.Config, js jetstream.JetStream, store group.CursorStore, statusAddr string,
	rateWindow time.Duration, log *slog.Logger, reg prometheus.Registerer) (*group.JetStream, error) {
	gc := groupConfig(cfg, rateWindow)
	gc.Cursors = store
	gc.StatusURL = groupStatusURL(cfg.GroupStatusURL, statusAddr, os.Hostname)
	if gc.StatusURL == "" {
		log.Info("this member advertises no status URL (no metrics-addr): status --group shows its tags as the buckets hold them")
	} else {
		log.Info("this member advertises its /status to the group, for status --group", "status_url", gc.StatusURL)
	}
	c, err := group.NewJetStream(ctx, js, gc, log, reg)
	if err != nil {
		return nil, fmt.Errorf("group %s: %w", cfg.Group, err)
	}
	return c, nil
}

// groupStatusURL is the URL of /status this member advertises to the group (group.Config.StatusURL): setting
// (group-status-url) when it is set, else http://<host>:<port> of bound, the status listener's address (metrics-addr
// as it was bound, so that port 0 gives the port picked), where host is the address it listens on or, when it
// listens on every interface, this machine's host name (from hostname). "" when there is no listener, or no host
// name to advertise.
func groupStatusURL(setting, bound string, hostname func() (string, error)) string {
	if setting != "" {
		return setting
	}
	host, port, err := net.SplitHostPort(bound)
	if bound == "" || err != nil {
		return ""
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		if host, err = hostname(); err != nil || host == "" {
			return ""
		}
	}
	u := "http://" + net.JoinHostPort(host, port)
	if group.CheckStatusURL(u) != nil {
		return "" // a host name that makes no URL
	}
	return u
}

// runGroup runs the poller and the coordinator until ctx ends (or the poller stops on its own: every token
// retired). The coordinator leaves the group after the poller's last commit: the poller stops first (in-flight
// publishes finish and their cursors are written), then the coordinator applies an empty assignment, releases the
// tags and token shares and withdraws its membership, so that the others take the tags over at once.
func (p *Pipeline) runGroup(ctx context.Context, pl *poller.Poller, coord *group.JetStream) error {
	pctx, stopPolling := context.WithCancel(ctx)
	defer stopPolling()
	cctx, stopCoord := context.WithCancel(context.WithoutCancel(ctx))
	defer stopCoord()

	var wg sync.WaitGroup
	var coordErr error
	wg.Go(func() {
		if err := coord.Run(cctx, groupPoller{pl}); err != nil {
			coordErr = err
			p.log.Error("the group cannot be used: polling stops", "group", p.cfg.Group, "err", p.describe(err))
			stopPolling()
		}
	})
	wg.Go(func() { reportRates(cctx, pl, coord, rateReportEvery) })
	p.log.Info("group mode: polling what the group assigns", "group", p.cfg.Group, "member", coord.Name(),
		"lease", coord.Lease())

	err := pl.Run(pctx)
	if ctx.Err() != nil {
		p.log.Info("polling stopped: leaving the group", "group", p.cfg.Group, "member", coord.Name())
	}
	stopCoord()
	wg.Wait()
	return errors.Join(err, coordErr)
}

// limitReporter is the part of a coordinator (group.JetStream) that takes the token limits the API reports.
type limitReporter interface {
	ReportLimits(limits map[string]int)
}

// reportRates hands the poller's rate estimates to the coordinator every period until ctx ends, and, when the
// coordinator takes them, the token limits the API reported (see apiLimits).
func reportRates(ctx context.Context, pl *poller.Poller, coord group.Coordinator, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	lr, _ := coord.(limitReporter)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			coord.ReportRates(pl.Rates())
			if lr != nil {
				if limits := apiLimits(pl.TokenStatus()); len(limits) > 0 {
					lr.ReportLimits(limits)
				}
			}
		}
	}
}

// apiLimits returns, by fingerprint, the limit of each token that the API answered with rate-limit headers (its
// X-Ratelimit-Limit): a token not answered yet still shows its configured budget, which is left out.
func apiLimits(tokens []poller.TokenStatus) map[string]int {
	out := make(map[string]int, len(tokens))
	for _, ts := range tokens {
		if ts.Remaining >= 0 && ts.Limit > 0 {
			out[ts.Fingerprint] = ts.Limit
		}
	}
	return out
}

// groupReady is the readiness check of group mode: this instance holds its membership lease (it polls nothing
// without one).
func (p *Pipeline) groupReady(context.Context) error {
	coord := p.currentCoordinator()
	switch {
	case coord == nil:
		return errors.New("not joined yet: the group's buckets are not open")
	case !coord.LeaseValid():
		return fmt.Errorf("no valid membership lease in group %s (joining, or the lease lapsed): polling nothing", p.cfg.Group)
	}
	return nil
}

func (p *Pipeline) currentCoordinator() *group.JetStream {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.coord
}

// GroupStatus returns the group as this instance sees it, and false outside group mode or before the group's
// buckets are open.
func (p *Pipeline) GroupStatus() (group.Status, bool) {
	if coord := p.currentCoordinator(); coord != nil {
		return coord.Status(), true
	}
	return group.Status{}, false
}

// probeTag is the tag the API is probed with when neither the settings nor the group name one.
const probeTag = "tagstream"

// checkGroupAndTag reaches the group's buckets the way run would, creating nothing: it says how many tags and live
// members the group has, that run creates it when it does not exist, or why it cannot be used (no JetStream, a
// lease that differs from the group's). It also returns a tag to probe the API with: the first of the group's
// set, or probeTag.
func checkGroupAndTag(ctx context.Context, cfg *config.Config, logger *slog.Logger) (detail, tag string, err error) {
	tag = probeTag
	detail, tags, err := checkGroup(ctx, cfg, logger)
	if len(tags) > 0 {
		tag = tags[0]
	}
	return detail, tag, err
}

func checkGroup(ctx context.Context, cfg *config.Config, logger *slog.Logger) (string, []string, error) {
	nc, err := publisher.Connect(ctx, NATSConnConfig(cfg), logger)
	if err != nil {
		return "", nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return "", nil, err
	}
	if _, err := js.AccountInfo(ctx); err != nil {
		return "", nil, fmt.Errorf("group %s: JetStream on %s: %w", cfg.Group, nc.ConnectedUrlRedacted(), err)
	}
	tags, err := group.ListTags(ctx, js, cfg.Group)
	if errors.Is(err, group.ErrNoGroup) {
		return fmt.Sprintf("group %s does not exist yet: run creates its buckets %s and %s", cfg.Group,
			group.StateBucket(cfg.Group), group.MembersBucket(cfg.Group)), nil, nil
	}
	if err != nil {
		return "", nil, fmt.Errorf("group %s: bucket %s: %w", cfg.Group, group.StateBucket(cfg.Group), err)
	}
	members := 0
	kv, err := js.KeyValue(ctx, group.MembersBucket(cfg.Group))
	switch {
	case errors.Is(err, jetstream.ErrBucketNotFound):
	case err != nil:
		return "", nil, fmt.Errorf("group %s: bucket %s: %w", cfg.Group, group.MembersBucket(cfg.Group), err)
	default:
		st, err := kv.Status(ctx)
		if err != nil {
			return "", nil, fmt.Errorf("group %s: bucket %s: %w", cfg.Group, group.MembersBucket(cfg.Group), err)
		}
		if cfg.GroupLease != 0 && st.TTL() != cfg.GroupLease {
			return "", nil, fmt.Errorf("group %s has a lease of %s and group-lease is %s: run would refuse to join (set "+
				"group-lease to 0 or %s)", cfg.Group, st.TTL(), cfg.GroupLease, st.TTL())
		}
		lister, err := kv.ListKeys(ctx)
		if err != nil {
			return "", nil, fmt.Errorf("group %s: bucket %s: %w", cfg.Group, group.MembersBucket(cfg.Group), err)
		}
		for range lister.Keys() {
			members++
		}
	}
	return fmt.Sprintf("group %s: %s, %s (buckets %s and %s)", cfg.Group, count(len(tags), "tag"),
		count(members, "live member"), group.StateBucket(cfg.Group), group.MembersBucket(cfg.Group)), tags, nil
}

// count returns "1 tag", "2 tags".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
