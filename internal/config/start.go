package config

import (
	"fmt"
	"strings"
	"time"
)

// Start is the start setting read by ParseStart: where a tag without a saved cursor starts.
type Start struct {
	// Backfill is start=backfill: publish backfill-pages pages of existing media first.
	Backfill bool
	// Since is the instant media are published from (by their created_time): the process start for now, that
	// instant less the duration for a duration, the time itself for an RFC 3339 time. Zero with Backfill.
	Since time.Time
	// Earlier is true for a duration or an RFC 3339 time (the poller's StartSince, which reports with a gap
	// marker when the API serves nothing as old), false for now.
	Earlier bool
}

// maxStartAhead is how far in the future an RFC 3339 start may lie (clock differences between machines).
const maxStartAhead = time.Minute

// ParseStart reads the start setting: "now" (the media created since the process started, at), "backfill", an
// RFC 3339 time ("2026-11-30T00:00:00Z": the media created since then) or a positive duration ("24h": the media
// created in that span before at). It returns an error for anything else, or for a time later than at.
func ParseStart(v string, at time.Time) (Start, error) {
	v = strings.TrimSpace(v)
	switch v {
	case "now":
		return Start{Since: at}, nil
	case "backfill":
		return Start{Backfill: true}, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		if t.After(at.Add(maxStartAhead)) {
			return Start{}, fmt.Errorf("%q is in the future", v)
		}
		return Start{Since: t, Earlier: true}, nil
	}
	if d, err := time.ParseDuration(v); err == nil {
		if d <= 0 {
			return Start{}, fmt.Errorf("%q: a duration must be positive (how far back to start)", v)
		}
		return Start{Since: at.Add(-d), Earlier: true}, nil
	}
	return Start{}, fmt.Errorf("%q is not now, backfill, an RFC 3339 time (2026-11-30T00:00:00Z) or a duration (24h)", v)
}
