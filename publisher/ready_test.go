package publisher

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tagstream/tagstream/internal/testkit"
)

// readyWithin calls ready with a bounded context.
func readyWithin(ready func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return ready(ctx)
}

func TestKafkaReady(t *testing.T) {
	t.Parallel()
	for _, target := range kafkaTargets {
		t.Run(target.name+": ready while the topic exists, not once it is deleted or the publisher closed", func(t *testing.T) {
			brokers := target.brokers(t)
			p, _ := newTestKafka(t, KafkaConfig{Brokers: brokers, Partitions: 2})
			if err := readyWithin(p.Ready); err != nil {
				t.Fatalf("Ready = %v, want nil", err)
			}
			cl := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
			res, err := cl.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: []string{p.Topic()}})
			if err != nil || res.Errors[p.Topic()] != nil {
				t.Fatalf("delete topic: %v %v", err, res)
			}
			// The broker may take a moment to drop the partitions; the publisher's metadata cache is not
			// refreshed meanwhile (its TTL is 30 s), so this shows that Ready asks the leaders.
			var rerr error
			testkit.Eventually(t, 20*time.Second, "Ready to report the deleted topic", func() bool {
				rerr = readyWithin(p.Ready)
				return rerr != nil
			})
			if !errors.Is(rerr, ErrTopicNotFound) {
				t.Fatalf("Ready after the topic was deleted = %v, want ErrTopicNotFound", rerr)
			}
			_ = p.Close()
			if err := readyWithin(p.Ready); !errors.Is(err, ErrClosed) {
				t.Fatalf("Ready after Close = %v, want ErrClosed", err)
			}
		})
	}
	t.Run("Ready reuses the TLS settings built at start: a CA file removed afterwards does not matter", func(t *testing.T) {
		brokers, caFile := tlsKafka(t)
		p, _ := newTestKafka(t, KafkaConfig{Brokers: brokers, TLS: TLSConfig{CAFile: caFile}})
		if err := os.Remove(caFile); err != nil {
			t.Fatal(err)
		}
		p.transport.CloseIdleConnections() // the next round trip dials anew, with the TLS config built once
		for range 3 {
			if err := readyWithin(p.Ready); err != nil {
				t.Fatalf("Ready = %v, want nil", err)
			}
		}
	})
	t.Run("Ready reports a broker that went away", func(t *testing.T) {
		c, err := kfake.NewCluster(kfake.NumBrokers(1))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		p, _ := newTestKafka(t, KafkaConfig{Brokers: c.ListenAddrs()})
		if err := readyWithin(p.Ready); err != nil {
			t.Fatalf("Ready = %v, want nil", err)
		}
		c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if err := p.Ready(ctx); err == nil {
			t.Fatal("Ready = nil with the broker gone")
		}
	})
}

func TestJetStreamReady(t *testing.T) {
	t.Parallel()
	ns := startNATS(t, 0)
	nc := ns.connect(t)
	p, _ := newTestJetStream(t, nc, JetStreamConfig{CreateStream: true, DeadLetterSubject: "tagstream.deadletter"})
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	steps := []struct {
		name    string
		do      func(t *testing.T)
		wantErr error
	}{
		{"ready with the stream in place", func(*testing.T) {}, nil},
		{"not ready once the stream no longer covers the prefix", func(t *testing.T) {
			if _, err := js.UpdateStream(ctx, jetstream.StreamConfig{Name: p.Stream(),
				Subjects: []string{"tagstream.media.sunset"}, Duplicates: 2 * time.Minute}); err != nil {
				t.Fatal(err)
			}
		}, ErrNoStream},
		{"not ready once the stream is deleted", func(t *testing.T) {
			if err := js.DeleteStream(ctx, p.Stream()); err != nil {
				t.Fatal(err)
			}
		}, ErrNoStream},
		{"ready again once a stream of that name covers the prefix", func(t *testing.T) {
			if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: p.Stream(), Subjects: []string{"tagstream.media.>"}}); err != nil {
				t.Fatal(err)
			}
		}, nil},
		{"not ready once the dead-letter stream is deleted", func(t *testing.T) {
			if err := js.DeleteStream(ctx, p.Stream()+deadLetterStreamSuffix); err != nil {
				t.Fatal(err)
			}
		}, ErrNoStream},
		{"not ready while the server is down", func(t *testing.T) {
			ns.stop()
			waitStatus(t, nc, nats.RECONNECTING)
		}, ErrUnavailable},
		{"not ready once the connection is closed", func(*testing.T) { nc.Close() }, ErrClosed},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			st.do(t)
			err := readyWithin(p.Ready)
			if st.wantErr == nil && err != nil || st.wantErr != nil && !errors.Is(err, st.wantErr) {
				t.Fatalf("Ready = %v, want %v", err, st.wantErr)
			}
		})
	}
}

func TestNATSReady(t *testing.T) {
	t.Parallel()
	ns := startNATS(t, 0)
	nc := ns.connect(t)
	p, err := NewNATS(nc, NATSConfig{}, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := readyWithin(p.Ready); err != nil {
		t.Fatalf("Ready = %v, want nil", err)
	}
	ns.stop()
	waitStatus(t, nc, nats.RECONNECTING)
	if err := readyWithin(p.Ready); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Ready with the server down = %v, want ErrUnavailable", err)
	}
	ns.start()
	waitStatus(t, nc, nats.CONNECTED)
	if err := readyWithin(p.Ready); err != nil {
		t.Fatalf("Ready after the server came back = %v, want nil", err)
	}
	nc.Close()
	if err := readyWithin(p.Ready); !errors.Is(err, ErrClosed) {
		t.Fatalf("Ready on a closed connection = %v, want ErrClosed", err)
	}
}

func TestFileReady(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		break_  func(t *testing.T, p *File, path string)
		wantErr error
	}{
		{"a fresh file is ready", func(*testing.T, *File, string) {}, nil},
		{"a file removed from under the publisher is not ready", func(t *testing.T, _ *File, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}, ErrUnavailable},
		{"a file replaced by another is not ready", func(t *testing.T, _ *File, path string) {
			if err := os.Rename(path, path+".old"); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}, ErrUnavailable},
		{"a closed publisher is not ready", func(_ *testing.T, p *File, _ string) { _ = p.Close() }, ErrClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.ndjson")
			p, err := OpenFile(path, FileConfig{}, testLogger(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = p.Close() })
			tt.break_(t, p, path)
			err = readyWithin(p.Ready)
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("Ready = %v, want %v", err, tt.wantErr)
			}
		})
	}
	t.Run("a writer that is not a file is ready until closed", func(t *testing.T) {
		p := NewFile(&discardWriter{}, FileConfig{}, nil, nil)
		if err := readyWithin(p.Ready); err != nil {
			t.Fatal(err)
		}
		_ = p.Close()
		if err := readyWithin(p.Ready); !errors.Is(err, ErrClosed) {
			t.Fatalf("Ready after Close = %v, want ErrClosed", err)
		}
	})
}

type discardWriter struct{}

func (discardWriter) Write(b []byte) (int, error) { return len(b), nil }
