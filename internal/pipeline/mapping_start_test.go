package pipeline

import (
	"testing"
	"time"

	"github.com/tagstream/tagstream/internal/config"
	"github.com/tagstream/tagstream/poller"
)

func TestPollerConfigMapsTheStartSetting(t *testing.T) {
	loaded := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name      string
		start     string
		wantStart poller.StartFrom
		wantTime  time.Time
	}{
		{"now is the instant the configuration was loaded", "now", poller.StartNow, loaded},
		{"a duration goes back from there", "24h", poller.StartSince, loaded.Add(-24 * time.Hour)},
		{"an RFC 3339 time is itself", "2026-11-01T00:00:00Z", poller.StartSince, time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)},
		{"backfill has no instant", "backfill", poller.StartBackfill, time.Time{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Defaults()
			cfg.Start, cfg.StartedAt = tc.start, loaded
			pc := pollerConfig(&cfg, Deps{})
			if pc.Start != tc.wantStart || !pc.StartTime.Equal(tc.wantTime) {
				t.Errorf("start %q mapped to %v at %v, want %v at %v", tc.start, pc.Start, pc.StartTime, tc.wantStart, tc.wantTime)
			}
		})
	}
}
