package poller

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the poller's Prometheus collectors. No label carries a token: tokens are labelled by their index in
// Config.Tokens. Only the two per-tag gauges carry a tag, for at most Config.TagMetrics tags.
type metrics struct {
	polls      prometheus.Counter
	earlyPolls prometheus.Counter
	requests   *prometheus.CounterVec
	// The children of requests by outcome, resolved once: every request counts one, and a label lookup per
	// request (hashing the label under the vector's lock) costs more than the increment.
	reqOK, reqRateLimited, reqTokenInvalid, reqPermanent, reqTransient prometheus.Counter
	published                                                          prometheus.Counter
	postToPublish                                                      prometheus.Histogram
	seenToPublish                                                      prometheus.Histogram
	budgetRemaining                                                    *prometheus.GaugeVec
	budgetLimit                                                        *prometheus.GaugeVec
	budgetUse                                                          prometheus.Gauge
	parked                                                             prometheus.Gauge
	retired                                                            prometheus.Counter
	catchupPages                                                       prometheus.Counter
	gaps                                                               prometheus.Counter
	overload                                                           prometheus.Gauge
	publishSeconds                                                     prometheus.Histogram
	apiDown                                                            prometheus.Gauge

	tagLastPoll *prometheus.GaugeVec
	tagInterval *prometheus.GaugeVec

	checkpointWriteFailures prometheus.Counter
	checkpointStoreFailing  prometheus.Gauge
	checkpointConflicts     *prometheus.CounterVec
}

// Checkpoint writes that can conflict, the values of the write label of tagstream_checkpoint_conflicts_total.
const (
	writePoll  = "poll"  // the commit of a poll: the tag is dropped
	writeClaim = "claim" // Assign's claim write of an added tag (Assignment.Claim): tried again, then given up
)

// Request outcomes, the values of the outcome label of tagstream_requests_total.
const (
	outcomeOK           = "ok"
	outcomeRateLimited  = "rate_limited"
	outcomeTokenInvalid = "token_invalid"
	outcomePermanent    = "permanent"
	outcomeTransient    = "transient"
)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		polls: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tagstream_polls_total", Help: "Polls of a tag started.",
		}),
		earlyPolls: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tagstream_early_polls_total",
			Help: "Polls started before their tag was due because a token had budget to spare.",
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tagstream_requests_total", Help: "Requests to the API by outcome.",
		}, []string{"outcome"}),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tagstream_media_published_total", Help: "Media events acknowledged by the publisher.",
		}),
		postToPublish: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "tagstream_post_to_publish_seconds",
			Help: "Time from a media's created_time (the upstream's clock) to the publisher's acknowledgement: " +
				"polling delay included, but inflated by late-tagged media (tagged long after creation) and clock skew.",
			Buckets: prometheus.ExponentialBuckets(0.5, 2, 16),
		}),
		seenToPublish: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "tagstream_seen_to_publish_seconds",
			Help: "Time from when the poller received the page holding a media (in the poll that published it) to " +
				"the publisher's acknowledgement: the poller's own delay, polling interval excluded, immune to " +
				"late tagging and clock skew.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 18),
		}),
		budgetRemaining: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tagstream_token_budget_remaining", Help: "Last X-Ratelimit-Remaining seen per token (by index).",
		}, []string{"token"}),
		budgetLimit: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tagstream_token_budget_limit",
			Help: "Request limit per window of each token (by index): X-Ratelimit-Limit once seen, else the configured budget.",
		}, []string{"token"}),
		budgetUse: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tagstream_budget_use_ratio",
			Help: "Fraction of the requests the pool's live tokens allowed over the last minute that were sent.",
		}),
		parked: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tagstream_tokens_parked", Help: "Tokens parked after a rate-limit answer.",
		}),
		retired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tagstream_tokens_retired_total", Help: "Tokens retired because the API rejected them.",
		}),
		catchupPages: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tagstream_catchup_pages_total", Help: "Pages fetched beyond the first page of a poll.",
		}),
		gaps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tagstream_gaps_total", Help: "Gap markers published: the API could no longer serve part of a backlog.",
		}),
		overload: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tagstream_schedule_overload",
			Help: "Demand of the polling floors over the budget when above 1 (every tag is slowed by this factor); 0 otherwise.",
		}),
		publishSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "tagstream_publish_seconds", Help: "Duration of one Publish call (a tag's batch).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		apiDown: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tagstream_api_down", Help: "1 while the whole client backs off because every request fails.",
		}),
		tagLastPoll: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tagstream_tag_last_poll_timestamp_seconds",
			Help: "Unix time at which the tag's last successful poll ended (the poller's start before the first); " +
				"only for the first Config.TagMetrics tags.",
		}, []string{"tag"}),
		tagInterval: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tagstream_tag_poll_interval_seconds",
			Help: "The tag's planned time between two polls, overload and catch-up included; only for the first " +
				"Config.TagMetrics tags.",
		}, []string{"tag"}),
		checkpointWriteFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tagstream_checkpoint_write_failures_total",
			Help: "Checkpoint writes that failed (each is retried alone; acknowledged media are not published again).",
		}),
		checkpointStoreFailing: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tagstream_checkpoint_store_failing",
			Help: "1 while the last checkpoint write failed, 0 otherwise.",
		}),
		checkpointConflicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tagstream_checkpoint_conflicts_total",
			Help: "Checkpoint writes refused because another instance wrote the tag's cursor since it was read " +
				"(group mode), by write: poll (a poll's commit: the tag was dropped, its new owner polls it) or " +
				"claim (the claim write of a tag taken over, tried again up to three times).",
		}, []string{"write"}),
	}
	for _, w := range []string{writePoll, writeClaim} {
		m.checkpointConflicts.WithLabelValues(w)
	}
	m.reqOK = m.requests.WithLabelValues(outcomeOK)
	m.reqRateLimited = m.requests.WithLabelValues(outcomeRateLimited)
	m.reqTokenInvalid = m.requests.WithLabelValues(outcomeTokenInvalid)
	m.reqPermanent = m.requests.WithLabelValues(outcomePermanent)
	m.reqTransient = m.requests.WithLabelValues(outcomeTransient)
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.polls, m.earlyPolls, m.requests, m.published, m.postToPublish, m.seenToPublish,
		m.budgetRemaining, m.budgetLimit, m.budgetUse,
		m.parked, m.retired, m.catchupPages, m.gaps, m.overload, m.publishSeconds, m.apiDown,
		m.tagLastPoll, m.tagInterval, m.checkpointWriteFailures, m.checkpointStoreFailing,
		m.checkpointConflicts} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("poller: metrics already registered (one Poller per registry): %w", err)
			}
			return nil, fmt.Errorf("poller: register metrics: %w", err)
		}
	}
	return m, nil
}
