package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tagstream/tagstream/internal/testkit"
)

// runNATS starts an in-process nats-server, with or without JetStream, and returns its URL.
func runNATS(t *testing.T, jetStream bool) string {
	t.Helper()
	opts := testkit.NATSOptions(t)
	opts.JetStream = jetStream
	return testkit.RunNATS(t, opts).ClientURL()
}

func TestFreePorts(t *testing.T) {
	ports, err := freePorts(5)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if p <= 0 || seen[p] {
			t.Fatalf("ports %v: not distinct positive ports", ports)
		}
		seen[p] = true
	}
}

func TestChecks(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name    string
		check   func(t *testing.T) error
		wantErr string
	}{
		{"a nats-server with JetStream passes", func(t *testing.T) error {
			return checkNATS(ctx, runNATS(t, true))
		}, ""},
		{"a nats-server without JetStream fails", func(t *testing.T) error {
			return checkNATS(ctx, runNATS(t, false))
		}, "account info"},
		{"nothing listening on the NATS port fails", func(t *testing.T) error {
			return checkNATS(ctx, "nats://"+testkit.FreeAddr(t))
		}, "connect"},
		{"nothing listening on the Kafka port fails", func(t *testing.T) error {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			return checkKafka(cctx, testkit.FreeAddr(t))
		}, "create topic"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.check(t)
			if tc.wantErr == "" && err != nil {
				t.Fatalf("check: %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("check = %v; want an error about %q", err, tc.wantErr)
			}
		})
	}
}

func TestCheckKafkaAgainstRealBroker(t *testing.T) {
	addr := os.Getenv("TAGSTREAM_KAFKA_BROKERS")
	if addr == "" {
		if os.Getenv("TAGSTREAM_INTEGRATION") == "1" {
			t.Fatal("TAGSTREAM_INTEGRATION=1 but TAGSTREAM_KAFKA_BROKERS is not set")
		}
		t.Skip("TAGSTREAM_KAFKA_BROKERS not set (scripts/test.sh sets it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := waitFor(ctx, "kafka", 0, func(ctx context.Context) error { return checkKafka(ctx, addr) }); err != nil {
		t.Fatal(err)
	}
}

func TestWaitFor(t *testing.T) {
	failing := errors.New("not yet")
	cases := []struct {
		name    string
		pid     func(t *testing.T) int
		timeout time.Duration
		check   func() func(context.Context) error
		wantErr string
	}{
		{"a check that succeeds on the third attempt returns nil", func(*testing.T) int { return 0 }, time.Minute,
			func() func(context.Context) error {
				n := 0
				return func(context.Context) error {
					if n++; n < 3 {
						return failing
					}
					return nil
				}
			}, ""},
		{"an exited broker process ends the wait with the last error", exitedPID, time.Hour,
			func() func(context.Context) error { return func(context.Context) error { return failing } },
			"exited"},
		{"the timeout ends the wait with the last error", func(*testing.T) int { return 0 }, 50 * time.Millisecond,
			func() func(context.Context) error { return func(context.Context) error { return failing } },
			"not yet"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), tc.timeout)
			defer cancel()
			err := waitFor(ctx, "broker", tc.pid(t), tc.check())
			if tc.wantErr == "" && err != nil {
				t.Fatal(err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("waitFor = %v; want an error with %q", err, tc.wantErr)
			}
		})
	}
}

// exitedPID returns the pid of a child that has exited and been reaped.
func exitedPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func TestRunRejectsBadArguments(t *testing.T) {
	for _, args := range [][]string{nil, {"bogus"}, {"ports"}, {"ports", "0"}, {"ports", "x"}, {"kafka"}, {"nats"}, {"kafka", "-nope"}} {
		t.Run("arguments "+strings.Join(args, " ")+" are refused", func(t *testing.T) {
			if err := run(args); err == nil {
				t.Fatalf("run(%q) succeeded", args)
			}
		})
	}
}
