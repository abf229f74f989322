package publisher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tagstream/tagstream/internal/testkit"
)

func TestNATSPublishesAtMostOnceAndFlushes(t *testing.T) {
	t.Parallel()
	ns := startNATS(t, 0)
	got := ns.subscribe(t, DefaultSubjectPrefix+".>", 100)
	nc := ns.connect(t)
	reg := prometheus.NewRegistry()
	p, err := NewNATS(nc, NATSConfig{}, testLogger(t), reg)
	if err != nil {
		t.Fatal(err)
	}
	events := append(testkit.MediaEvents("new york", 0, 3, 10), testkit.MediaEvents("sunset", 0, 2, 10)...)
	publishOK(t, p, events)
	for i, e := range events {
		m := testkit.Receive(t, got, 5*time.Second, fmt.Sprintf("message %d", i))
		tag, err := TagFromSubject(DefaultSubjectPrefix, m.Subject)
		if err != nil || tag != e.Subject || string(m.Data) != string(e.AppendJSON(nil)) {
			t.Fatalf("message %d: subject %q tag %q err %v", i, m.Subject, tag, err)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if n := counter(t, reg, "tagstream_publisher_published_total", map[string]string{"publisher": "nats"}); n != 5 {
		t.Fatalf("published_total = %v", n)
	}
}

func TestNATSDeadLettersAnEventAboveMaxPayload(t *testing.T) {
	t.Parallel()
	ns := startNATS(t, 4096)
	dl := ns.subscribe(t, "tagstream.deadletter", 10)
	nc := ns.connect(t)
	p, err := NewNATS(nc, NATSConfig{DeadLetterSubject: "tagstream.deadletter"}, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	events := append(testkit.MediaEvents("a", 0, 1, 10), testkit.MediaEvents("a", 1, 1, 8000)...)
	publishOK(t, p, events)
	m := testkit.Receive(t, dl, 5*time.Second, "the dead letter")
	var l letterJSON
	if err := json.Unmarshal(m.Data, &l); err != nil {
		t.Fatal(err)
	}
	if l.EventID != events[1].ID || !l.Truncated || !strings.Contains(l.Reason, "max_payload") {
		t.Fatalf("dead letter %+v", l)
	}
}

func TestNATSReturnsWhenTheContextEndsWhileTheServerIsDown(t *testing.T) {
	t.Parallel()
	ns := startNATS(t, 0)
	nc := ns.connect(t)
	p, err := NewNATS(nc, NATSConfig{FlushTimeout: 100 * time.Millisecond,
		Retry: RetryConfig{InitialInterval: 10 * time.Millisecond, MaxInterval: 50 * time.Millisecond}}, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	ns.stop()
	// Down as the client sees it: until its read loop met the closed socket, a PING of Flush may still have been
	// answered by the server's last moments, and the events went to it (at most once), as they should.
	testkit.Eventually(t, 10*time.Second, "the client to see the server gone", func() bool { return !nc.IsConnected() })
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := p.Publish(ctx, testkit.MediaEvents("a", 0, 3, 10)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Publish = %v, want a deadline error", err)
	}
	nc.Close()
	if err := p.Publish(context.Background(), testkit.MediaEvents("a", 0, 1, 10)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Publish on a closed connection = %v, want ErrClosed", err)
	}
}

// letterRecorder is a DeadLetter that stores letters in memory and fails the first failFirst calls.
type letterRecorder struct {
	mu        sync.Mutex
	failFirst int
	calls     int
	letters   []Letter
}

func (r *letterRecorder) DeadLetter(_ context.Context, letters []Letter) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.calls <= r.failFirst {
		return errors.New("dead-letter destination down")
	}
	r.letters = append(r.letters, letters...)
	return nil
}

func (r *letterRecorder) ids() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, l := range r.letters {
		out = append(out, l.Event.ID)
	}
	return out
}

// TestNATSKeepsDeadLettersAcrossRetries is issue 10.3: the letters of an attempt must survive a failed attempt,
// so that Publish never returns nil for an event that was neither published nor dead-lettered.
func TestNATSKeepsDeadLettersAcrossRetries(t *testing.T) {
	t.Parallel()
	fast := RetryConfig{InitialInterval: 10 * time.Millisecond, MaxInterval: 50 * time.Millisecond}
	t.Run("a letter whose delivery failed is delivered by the next attempt", func(t *testing.T) {
		ns := startNATS(t, 4096)
		nc := ns.connect(t)
		rec := &letterRecorder{failFirst: 1}
		reg := prometheus.NewRegistry()
		p, err := NewNATS(nc, NATSConfig{DeadLetter: rec, Retry: fast}, testLogger(t), reg)
		if err != nil {
			t.Fatal(err)
		}
		events := append(append(testkit.MediaEvents("a", 0, 1, 10), testkit.MediaEvents("a", 1, 1, 8000)...), testkit.MediaEvents("a", 2, 1, 10)...)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		dead, err := p.Deliver(ctx, events)
		if err != nil {
			t.Fatal(err)
		}
		if got := rec.ids(); !slices.Equal(got, []string{events[1].ID}) || !slices.Equal(dead, []int{1}) {
			t.Fatalf("dead letters stored %q, Deliver says %v; want the large event, index 1", got, dead)
		}
		if n := counter(t, reg, "tagstream_publisher_published_total", nil); n != 2 {
			t.Fatalf("published_total = %v, want 2 (the dead letter is not published)", n)
		}
	})
	t.Run("a letter whose attempt failed on a later message is delivered by the next attempt", func(t *testing.T) {
		ns := startNATS(t, 4096)
		opts, err := ConnConfig{URLs: []string{ns.url()}, ReconnectWait: 20 * time.Millisecond,
			MaxReconnectWait: 100 * time.Millisecond, ReconnectBufSize: 2048}.Options(testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		nc, err := nats.Connect(ns.url(), opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		rec := &letterRecorder{}
		reg := prometheus.NewRegistry()
		p, err := NewNATS(nc, NATSConfig{DeadLetter: rec, Retry: fast}, testLogger(t), reg)
		if err != nil {
			t.Fatal(err)
		}
		ns.stop()
		waitStatus(t, nc, nats.RECONNECTING)
		// The large event is refused by the client (max_payload of the last server); the small ones fill the
		// reconnect buffer until a publish fails, which ends the attempt.
		events := append(testkit.MediaEvents("a", 0, 1, 8000), testkit.MediaEvents("a", 1, 20, 300)...)
		type result struct {
			dead []int
			err  error
		}
		done := make(chan result, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			dead, err := p.Deliver(ctx, events)
			done <- result{dead, err}
		}()
		testkit.Eventually(t, 10*time.Second, "a failed attempt", func() bool {
			return counter(t, reg, "tagstream_publisher_retries_total", nil) >= 1
		})
		ns.start()
		r := testkit.Receive(t, done, 20*time.Second, "Deliver to return")
		if r.err != nil {
			t.Fatal(r.err)
		}
		if got := rec.ids(); !slices.Equal(got, []string{events[0].ID}) || !slices.Equal(r.dead, []int{0}) {
			t.Fatalf("dead letters stored %q, Deliver says %v; want the large event, index 0", got, r.dead)
		}
		if n := counter(t, reg, "tagstream_publisher_published_total", nil); n != 20 {
			t.Fatalf("published_total = %v, want 20", n)
		}
	})
}
