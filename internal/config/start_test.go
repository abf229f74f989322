package config

import (
	"testing"
	"time"
)

func TestParseStart(t *testing.T) {
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name    string
		in      string
		want    Start
		wantErr bool
	}{
		{"now is the process start", "now", Start{Since: at}, false},
		{"backfill has no instant", "backfill", Start{Backfill: true}, false},
		{"a duration goes back from the process start", "24h", Start{Since: at.Add(-24 * time.Hour), Earlier: true}, false},
		{"minutes and hours combine", "1h30m", Start{Since: at.Add(-90 * time.Minute), Earlier: true}, false},
		{"an RFC 3339 time is taken as it is", "2026-11-29T08:00:00+01:00", Start{Since: time.Date(2026, 11, 29, 7, 0, 0, 0, time.UTC), Earlier: true}, false},
		{"surrounding spaces are ignored", " now ", Start{Since: at}, false},
		{"a time within a minute ahead passes (clocks differ)", "2026-11-30T12:00:30Z", Start{Since: at.Add(30 * time.Second), Earlier: true}, false},
		{"a time further ahead is refused", "2026-11-30T12:05:00Z", Start{}, true},
		{"a zero duration is refused", "0s", Start{}, true},
		{"a negative duration is refused", "-1h", Start{}, true},
		{"a date without a time is refused", "2026-11-30", Start{}, true},
		{"days are not a Go duration", "1d", Start{}, true},
		{"an empty value is refused", "", Start{}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseStart(tc.in, at)
			if (err != nil) != tc.wantErr {
				t.Fatalf("ParseStart(%q) error = %v, want error %v", tc.in, err, tc.wantErr)
			}
			if err == nil && (got.Backfill != tc.want.Backfill || got.Earlier != tc.want.Earlier || !got.Since.Equal(tc.want.Since)) {
				t.Errorf("ParseStart(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}

func TestLoadRecordsTheStartInstant(t *testing.T) {
	before := time.Now()
	c, err := load(t, env{args: []string{"--tags", "coffee", "--start", "2h"}})
	if err != nil {
		t.Fatal(err)
	}
	if c.StartedAt.Before(before) || c.StartedAt.After(time.Now()) {
		t.Fatalf("StartedAt %v is not the time of Load", c.StartedAt)
	}
	st, err := ParseStart(c.Start, c.StartedAt)
	if err != nil || !st.Earlier || !st.Since.Equal(c.StartedAt.Add(-2*time.Hour)) {
		t.Fatalf("start 2h read as %+v, %v", st, err)
	}
}
