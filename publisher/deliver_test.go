package publisher

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tagstream/tagstream/internal/testkit"
)

// TestDeliverCountsDeadLettersApartFromPublished is issue 10.11: an event handed to the dead-letter destination is
// not published; Deliver names it, and published_total leaves it out.
func TestDeliverCountsDeadLettersApartFromPublished(t *testing.T) {
	t.Parallel()
	type built struct {
		p    Deliverer
		reg  *prometheus.Registry
		kind string
	}
	tests := []struct {
		name  string
		build func(t *testing.T, dl DeadLetter) built
	}{
		{"kafka", func(t *testing.T, dl DeadLetter) built {
			p, reg := newTestKafka(t, KafkaConfig{Brokers: testkit.FakeKafka(t), MaxMessageBytes: 4096, DeadLetter: dl})
			return built{p, reg, "kafka"}
		}},
		{"jetstream", func(t *testing.T, dl DeadLetter) built {
			p, reg := newTestJetStream(t, startNATS(t, 4096).connect(t), JetStreamConfig{CreateStream: true, DeadLetter: dl})
			return built{p, reg, "jetstream"}
		}},
		{"nats", func(t *testing.T, dl DeadLetter) built {
			reg := prometheus.NewRegistry()
			p, err := NewNATS(startNATS(t, 4096).connect(t), NATSConfig{DeadLetter: dl}, testLogger(t), reg)
			if err != nil {
				t.Fatal(err)
			}
			return built{p, reg, "nats"}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name+" names the dead-lettered events and counts only the others as published", func(t *testing.T) {
			rec := &letterRecorder{}
			b := tt.build(t, rec)
			events := testkit.MediaEvents("mixed", 0, 6, 10)
			events[1] = testkit.MediaEvents("mixed", 1, 1, 8000)[0]
			events[4] = testkit.MediaEvents("mixed", 4, 1, 9000)[0]
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			dead, err := b.p.Deliver(ctx, events)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(dead, []int{1, 4}) {
				t.Fatalf("Deliver says %v were dead-lettered, want [1 4]", dead)
			}
			if got := rec.ids(); !slices.Equal(got, []string{events[1].ID, events[4].ID}) {
				t.Fatalf("letters stored for %q", got)
			}
			labels := map[string]string{"publisher": b.kind}
			if n := counter(t, b.reg, "tagstream_publisher_published_total", labels); n != 4 {
				t.Fatalf("published_total = %v, want 4", n)
			}
			if n := counter(t, b.reg, "tagstream_publisher_dead_letters_total", labels); n != 2 {
				t.Fatalf("dead_letters_total = %v, want 2", n)
			}
			again, err := b.p.Deliver(ctx, testkit.MediaEvents("mixed", 10, 2, 10))
			if err != nil || again != nil {
				t.Fatalf("Deliver of a clean batch = %v, %v; want no dead letters", again, err)
			}
		})
	}
	t.Run("file never dead-letters", func(t *testing.T) {
		p := NewFile(discardWriter{}, FileConfig{}, nil, nil)
		dead, err := p.Deliver(context.Background(), testkit.MediaEvents("f", 0, 3, 10))
		if err != nil || dead != nil {
			t.Fatalf("Deliver = %v, %v", dead, err)
		}
	})
}
