package publisher

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
)

func TestNATSPublishesAtMostOnceAndFlushes(t *testing.T) {
	ns := startNATS(t, 0)
	sub := ns.connect(t)
	got := make(chan *nats.Msg, 100)
	s, err := sub.ChanSubscribe(DefaultSubjectPrefix+".>", got)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Unsubscribe() })
	if err := sub.Flush(); err != nil {
		t.Fatal(err)
	}
	nc := ns.connect(t)
	reg := prometheus.NewRegistry()
	p, err := NewNATS(nc, NATSConfig{}, testLogger(t), reg)
	if err != nil {
		t.Fatal(err)
	}
	events := append(makeEvents("new york", 0, 3, 10), makeEvents("sunset", 0, 2, 10)...)
	publishOK(t, p, events)
	for i, e := range events {
		select {
		case m := <-got:
			tag, err := TagFromSubject(DefaultSubjectPrefix, m.Subject)
			if err != nil || tag != e.Subject || string(m.Data) != string(e.AppendJSON(nil)) {
				t.Fatalf("message %d: subject %q tag %q err %v", i, m.Subject, tag, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("message %d not delivered", i)
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
	ns := startNATS(t, 4096)
	sub := ns.connect(t)
	dl := make(chan *nats.Msg, 10)
	s, err := sub.ChanSubscribe("tagstream.deadletter", dl)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Unsubscribe() })
	_ = sub.Flush()
	nc := ns.connect(t)
	p, err := NewNATS(nc, NATSConfig{DeadLetterSubject: "tagstream.deadletter"}, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	events := append(makeEvents("a", 0, 1, 10), makeEvents("a", 1, 1, 8000)...)
	publishOK(t, p, events)
	select {
	case m := <-dl:
		var l letterJSON
		if err := json.Unmarshal(m.Data, &l); err != nil {
			t.Fatal(err)
		}
		if l.EventID != events[1].ID || !l.Truncated || !strings.Contains(l.Reason, "max_payload") {
			t.Fatalf("dead letter %+v", l)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no dead letter")
	}
}

func TestNATSReturnsWhenTheContextEndsWhileTheServerIsDown(t *testing.T) {
	ns := startNATS(t, 0)
	nc := ns.connect(t)
	p, err := NewNATS(nc, NATSConfig{FlushTimeout: 100 * time.Millisecond,
		Retry: RetryConfig{InitialInterval: 10 * time.Millisecond, MaxInterval: 50 * time.Millisecond}}, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	ns.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := p.Publish(ctx, makeEvents("a", 0, 3, 10)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Publish = %v, want a deadline error", err)
	}
	nc.Close()
	if err := p.Publish(context.Background(), makeEvents("a", 0, 1, 10)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Publish on a closed connection = %v, want ErrClosed", err)
	}
}
