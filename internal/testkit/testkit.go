// Package testkit holds the helpers that tests of several packages share: waiting for a condition instead of
// sleeping, and a goroutine-safe buffer for captured logs. It is imported only by tests.
package testkit

import (
	"bytes"
	"flag"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Eventually calls cond until it returns true, and fails the test naming what when timeout passes first. The
// timeout is a safety net against a hung test, never a timing assertion: choose it generously.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	EventuallyEvery(t, timeout, 5*time.Millisecond, what, cond)
}

// EventuallyEvery is Eventually calling cond at most once every interval: for a cond that costs much (a whole
// command run, say) and a condition that, once true, stays true, so that a longer interval only delays the
// test a little. A condition that holds only for a moment needs Eventually's short interval.
func EventuallyEvery(t testing.TB, timeout, interval time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(interval)
	}
}

// Receive returns the next value from ch, and fails the test naming what when timeout passes first.
func Receive[T any](t testing.TB, ch <-chan T, timeout time.Duration, what string) T {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("timed out after %s waiting for %s", timeout, what)
		panic("unreachable")
	}
}

// SyncBuffer is a bytes.Buffer safe for concurrent use, for logs written by goroutines under test.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Contains reports whether sub was written so far.
func (s *SyncBuffer) Contains(sub string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Contains(s.b.Bytes(), []byte(sub))
}

// ParallelWaiters raises -test.parallel to n unless the command line gave it. Call it from TestMain, before
// m.Run, in a package whose parallel tests mostly wait (for a broker, a lease, the simulator's clock, a poll
// interval): go test's default, GOMAXPROCS, runs only two of them at a time on a two-core machine and leaves the
// cores idle while they wait.
func ParallelWaiters(n int) {
	if !flag.Parsed() {
		flag.Parse()
	}
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	if !given && n > runtime.GOMAXPROCS(0) {
		_ = flag.Set("test.parallel", strconv.Itoa(n))
	}
}
