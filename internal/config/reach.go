package config

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
)

// ErrUnreachable is wrapped by the error of CheckReachable: a broker did not answer. It is an outage, not a bad
// setting, so it does not wrap ErrInvalid.
var ErrUnreachable = errors.New("config: broker unreachable")

// CheckReachable dials the configured broker addresses (NATS for the jetstream and nats sinks and for the
// jetstream-kv store, Kafka for the kafka sink) with c.ConnectTimeout, and returns an error wrapping
// ErrUnreachable, naming the broker, each address and why it did not answer and the setting, when none of a
// broker's addresses answers. A malformed nats-url is a *Error. It only opens and closes TCP connections.
func CheckReachable(ctx context.Context, c *Config) error {
	if c.SkipBrokerCheck {
		return nil
	}
	needNATS := c.Sink == SinkJetStream || c.Sink == SinkNATS || c.CheckpointStore == StoreJetStreamKV
	if needNATS {
		urls, err := ParseNATSURLs(c.NATSURL)
		if err != nil {
			return &Error{Key: "nats-url", Problem: err.Error()}
		}
		var addrs []string
		for _, s := range urls {
			u, _ := url.Parse(s)
			port := u.Port()
			if port == "" {
				switch u.Scheme {
				case "ws":
					port = "80"
				case "wss":
					port = "443"
				default:
					port = "4222"
				}
			}
			addrs = append(addrs, net.JoinHostPort(u.Hostname(), port))
		}
		if err := dialAny(ctx, addrs, c); err != nil {
			return &unreachableError{"cannot reach the NATS server at " + err.Error() + " (nats-url)"}
		}
	}
	if c.Sink == SinkKafka {
		if err := dialAny(ctx, c.KafkaBrokers, c); err != nil {
			return &unreachableError{"cannot reach any Kafka broker at " + err.Error() + " (kafka-brokers)"}
		}
	}
	return nil
}

// unreachableError says which broker did not answer; errors.Is(err, ErrUnreachable) is true.
type unreachableError struct{ msg string }

func (e *unreachableError) Error() string        { return e.msg }
func (e *unreachableError) Is(target error) bool { return target == ErrUnreachable }

func dialAny(ctx context.Context, addrs []string, c *Config) error {
	d := net.Dialer{Timeout: c.ConnectTimeout}
	var errs []string
	for _, a := range addrs {
		conn, err := d.DialContext(ctx, "tcp", a)
		if err == nil {
			conn.Close()
			return nil
		}
		errs = append(errs, a+": "+dialProblem(err))
	}
	return errors.New(strings.Join(errs, "; "))
}

func dialProblem(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timed out"
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return fmt.Sprintf("cannot resolve %s", dnsErr.Name)
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err.Error()
	}
	return err.Error()
}
