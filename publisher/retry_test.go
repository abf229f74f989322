package publisher

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestRetrierRetriesUntilSuccessPermanentErrorOrContextEnd(t *testing.T) {
	t.Parallel()
	transient := errors.New("broker away")
	fatal := errors.New("never")
	tests := []struct {
		name      string
		failures  int   // attempts that fail with transient before success
		final     error // returned after the failures (nil = success)
		timeout   time.Duration
		cfg       RetryConfig
		wantIs    []error
		wantCalls int
	}{
		{"a success needs no retry", 0, nil, time.Second, RetryConfig{}, nil, 1},
		{"transient failures are retried until success", 3, nil, 5 * time.Second, RetryConfig{}, nil, 4},
		{"a permanent error stops at once", 1, permanent(fatal), 5 * time.Second, RetryConfig{}, []error{fatal}, 2},
		{"a context end returns the context error and the last failure", 1 << 30, nil, 100 * time.Millisecond,
			RetryConfig{}, []error{context.DeadlineExceeded, transient}, -1},
		{"MaxElapsedTime gives up", 1 << 30, nil, 10 * time.Second, RetryConfig{MaxElapsedTime: 50 * time.Millisecond},
			[]error{transient}, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.InitialInterval, cfg.MaxInterval = time.Millisecond, 5*time.Millisecond
			m := NewMetrics(nil).forPublisher("test")
			r := retrier{cfg: cfg.withDefaults(), metrics: m, log: testLogger(t)}
			ctx, cancel := context.WithTimeout(context.Background(), tt.timeout)
			defer cancel()
			calls := 0
			err := r.do(ctx, func(context.Context) error {
				calls++
				if calls <= tt.failures {
					return transient
				}
				return tt.final
			})
			if len(tt.wantIs) == 0 && err != nil {
				t.Fatalf("do = %v, want nil", err)
			}
			for _, want := range tt.wantIs {
				if !errors.Is(err, want) {
					t.Fatalf("do = %v, want it to wrap %v", err, want)
				}
			}
			if tt.wantCalls >= 0 && calls != tt.wantCalls {
				t.Fatalf("%d attempts, want %d", calls, tt.wantCalls)
			}
		})
	}
}

func TestRetryConfigValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		cfg   RetryConfig
		field string
	}{
		{"a negative initial interval", RetryConfig{InitialInterval: -1}, "InitialInterval"},
		{"a max interval below the initial one", RetryConfig{InitialInterval: time.Second, MaxInterval: time.Millisecond}, "MaxInterval"},
		{"a multiplier below one", RetryConfig{Multiplier: 0.9}, "Multiplier"},
		{"a randomization factor above one", RetryConfig{RandomizationFactor: 2}, "RandomizationFactor"},
		{"a negative max elapsed time", RetryConfig{MaxElapsedTime: -time.Second}, "MaxElapsedTime"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.validate("Retry")
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "Retry."+tt.field) {
				t.Fatalf("validate = %v, want an error naming Retry.%s", err, tt.field)
			}
		})
	}
	if err := (RetryConfig{}).validate("Retry"); err != nil {
		t.Fatalf("the zero value is invalid: %v", err)
	}
}
