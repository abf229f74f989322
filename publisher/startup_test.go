package publisher

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tagstream/tagstream/internal/testkit"
)

// startErrorClass checks that err wraps want and, unless want is ErrUnreachable, not ErrUnreachable.
func startErrorClass(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s = %v, want an error wrapping %v", what, err, want)
	}
	if want != ErrUnreachable && errors.Is(err, ErrUnreachable) {
		t.Fatalf("%s = %v: a wrong setting must not look like an unreachable broker", what, err)
	}
	if want == ErrUnreachable && errors.Is(err, ErrConfig) {
		t.Fatalf("%s = %v: an unreachable broker must not look like a wrong setting", what, err)
	}
}

func TestStartErrorsTellAnUnreachableBrokerFromWrongSettings(t *testing.T) {
	t.Parallel()
	t.Run("Connect to a closed port is unreachable", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := Connect(ctx, ConnConfig{URLs: []string{"nats://" + testkit.FreeAddr(t)}}, testLogger(t))
		startErrorClass(t, "Connect", err, ErrUnreachable)
	})
	t.Run("Connect whose context ends first is unreachable", func(t *testing.T) {
		// A listener that accepts and never speaks: the client waits for the server's INFO.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				t.Cleanup(func() { c.Close() })
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_, err = Connect(ctx, ConnConfig{URLs: []string{"nats://" + ln.Addr().String()}}, testLogger(t))
		startErrorClass(t, "Connect", err, ErrUnreachable)
	})
	t.Run("Connect with a wrong password is a config error that hides the password", func(t *testing.T) {
		ns := startNATSWith(t, func(o *server.Options) { o.Username, o.Password = "svc", "right-pw" })
		_, err := Connect(context.Background(), ConnConfig{URLs: []string{ns.url()}, User: "svc", Password: "wrong-pw-5"}, testLogger(t))
		startErrorClass(t, "Connect", err, ErrConfig)
		if !errors.Is(err, nats.ErrAuthorization) || strings.Contains(err.Error(), "wrong-pw-5") {
			t.Fatalf("Connect = %v, want nats.ErrAuthorization without the password", err)
		}
	})
	t.Run("NewJetStream on a connection whose server is down is unreachable", func(t *testing.T) {
		ns := startNATS(t, 0)
		nc := ns.connect(t)
		ns.stop()
		waitStatus(t, nc, nats.RECONNECTING)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := NewJetStream(ctx, nc, JetStreamConfig{CreateStream: true}, testLogger(t), nil)
		startErrorClass(t, "NewJetStream", err, ErrUnreachable)
	})
	t.Run("NewJetStream on a server without JetStream is a config error", func(t *testing.T) {
		ns := startNATSWith(t, func(*server.Options) {})
		nc := ns.connect(t)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := NewJetStream(ctx, nc, JetStreamConfig{CreateStream: true}, testLogger(t), nil)
		startErrorClass(t, "NewJetStream", err, ErrConfig)
	})
	t.Run("NewJetStream without a covering stream and creation off keeps ErrNoStream", func(t *testing.T) {
		nc := startNATS(t, 0).connect(t)
		_, err := NewJetStream(context.Background(), nc, JetStreamConfig{}, testLogger(t), nil)
		startErrorClass(t, "NewJetStream", err, ErrNoStream)
	})
	t.Run("NewKafka against a closed port is unreachable", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := NewKafka(ctx, KafkaConfig{Brokers: []string{testkit.FreeAddr(t)}, Topic: "t"}, testLogger(t), nil)
		startErrorClass(t, "NewKafka", err, ErrUnreachable)
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("NewKafka = %v, want ErrUnavailable too", err)
		}
	})
	t.Run("NewKafka with a wrong SASL password is not unreachable and hides the password", func(t *testing.T) {
		// kfake answers a wrong password by closing the connection, where Apache Kafka returns
		// SASL_AUTHENTICATION_FAILED (classified ErrConfig): an ambiguous cut connection is no retry signal.
		brokers := testkit.FakeKafka(t, kfake.EnableSASL(), kfake.Superuser("PLAIN", "svc", "right-pw"))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := NewKafka(ctx, KafkaConfig{Brokers: brokers, Topic: "t", CreateTopic: true,
			SASL: SASLConfig{Mechanism: "PLAIN", Username: "svc", Password: "wrong-pw-6"}}, testLogger(t), nil)
		if err == nil || errors.Is(err, ErrUnreachable) || strings.Contains(err.Error(), "wrong-pw-6") {
			t.Fatalf("NewKafka = %v shows the password", err)
		}
	})
	t.Run("NewKafka with a missing topic and creation off keeps ErrTopicNotFound", func(t *testing.T) {
		_, err := NewKafka(context.Background(), KafkaConfig{Brokers: testkit.FakeKafka(t), Topic: "missing"}, testLogger(t), nil)
		startErrorClass(t, "NewKafka", err, ErrTopicNotFound)
	})
	t.Run("NewKafka with an unreadable CA file is a config error", func(t *testing.T) {
		_, err := NewKafka(context.Background(), KafkaConfig{Brokers: []string{testkit.FreeAddr(t)}, Topic: "t",
			TLS: TLSConfig{CAFile: "/nonexistent/ca.pem"}}, testLogger(t), nil)
		startErrorClass(t, "NewKafka", err, ErrConfig)
	})
	t.Run("NewKafka against a broker whose certificate is not trusted is a config error", func(t *testing.T) {
		brokers, _ := tlsKafka(t)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := NewKafka(ctx, KafkaConfig{Brokers: brokers, Topic: "t", CreateTopic: true, TLS: TLSConfig{Enable: true}},
			testLogger(t), nil)
		startErrorClass(t, "NewKafka", err, ErrConfig)
	})
}

// waitStatus waits until nc reaches status (the client notices a server gone on its own schedule).
func waitStatus(t *testing.T, nc *nats.Conn, status nats.Status) {
	t.Helper()
	ch := nc.StatusChanged(status)
	if nc.Status() == status {
		return
	}
	testkit.Receive(t, ch, 10*time.Second, fmt.Sprintf("the connection to become %v", status))
}
