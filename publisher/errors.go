package publisher

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"syscall"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/kafka-go"
)

// Sentinel errors. Errors returned by this package wrap one of these (or a context error) so that callers can
// classify them with errors.Is.
var (
	// ErrConfig reports an invalid configuration or a setting the broker refused (credentials rejected, a TLS
	// certificate not trusted, JetStream not enabled for the account); the message names the field.
	ErrConfig = errors.New("publisher: invalid config")
	// ErrClosed is returned by Publish after Close.
	ErrClosed = errors.New("publisher: closed")
	// ErrNoStream reports that no JetStream stream covers the publisher's subjects and stream creation is off, or
	// that the streams in place make covering them impossible (a stream overlaps them without covering them).
	ErrNoStream = errors.New("publisher: no stream covers the subject")
	// ErrTopicNotFound reports that the Kafka topic does not exist and topic creation is off.
	ErrTopicNotFound = errors.New("publisher: kafka topic not found")
	// ErrRejected marks an event the broker will never accept (too large, invalid). Such events go to the
	// dead-letter destination; the error is returned only when the dead-letter destination itself fails.
	ErrRejected = errors.New("publisher: event rejected by the broker")
	// ErrUnavailable marks a transient broker failure (unreachable, timed out, leader moving). Publish retries
	// it until its context ends and then returns it wrapped together with the context error.
	ErrUnavailable = errors.New("publisher: broker unavailable")
	// ErrUnreachable reports, from Connect, NewKafka, NewJetStream, NewNATS and the probes, that the broker could
	// not be reached right now (connection refused, no server answered, a timeout, a temporary DNS failure): the
	// settings may well be right, and a later attempt can succeed, so a caller retries it with backoff rather
	// than giving up. Such errors also wrap ErrUnavailable. Settings the broker refused wrap ErrConfig,
	// ErrNoStream or ErrTopicNotFound instead, never ErrUnreachable.
	ErrUnreachable = errors.New("publisher: broker unreachable")
	// ErrInvalidSubjectToken is returned by DecodeTag for a token that EncodeTag cannot have produced.
	ErrInvalidSubjectToken = errors.New("publisher: invalid subject token")
)

// configError builds an ErrConfig error naming the offending field.
func configError(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrConfig, field, fmt.Sprintf(format, args...))
}

// classifyStart adds ErrUnreachable to a start-up error that means the broker is unreachable right now, and
// ErrConfig to one that means the broker refused the settings (credentials, certificates). Errors that already
// carry a classification, and nil, are returned unchanged.
func classifyStart(err error) error {
	switch {
	case err == nil, errors.Is(err, ErrUnreachable), errors.Is(err, ErrConfig), errors.Is(err, ErrNoStream),
		errors.Is(err, ErrTopicNotFound), errors.Is(err, ErrClosed):
		return err
	case refusedSettings(err):
		return fmt.Errorf("%w: %w", ErrConfig, err)
	case unreachable(err) && errors.Is(err, ErrUnavailable):
		return fmt.Errorf("%w: %w", ErrUnreachable, err)
	case unreachable(err):
		return fmt.Errorf("%w: %w: %w", ErrUnreachable, ErrUnavailable, err)
	}
	return err
}

// unreachable reports whether err means that no broker answered: a refused or unroutable connection, no server
// available, a timeout (the start-up context's deadline included), or a temporary DNS failure.
func unreachable(err error) bool {
	if errors.Is(err, nats.ErrNoServers) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrDisconnected) ||
		errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, jetstream.ErrNoHeartbeat) ||
		errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.ECONNRESET) {
		return true
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return dns.IsTemporary || dns.IsTimeout
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// refusedSettings reports whether err means that the broker refused the settings: credentials rejected, a
// certificate not trusted, an authorization missing, JetStream not enabled.
func refusedSettings(err error) bool {
	switch {
	case errors.Is(err, nats.ErrAuthorization), errors.Is(err, nats.ErrAuthExpired), errors.Is(err, nats.ErrAuthRevoked),
		errors.Is(err, nats.ErrPermissionViolation), errors.Is(err, nats.ErrAccountAuthExpired),
		errors.Is(err, nats.ErrNkeysNotSupported), errors.Is(err, nats.ErrSecureConnRequired),
		errors.Is(err, nats.ErrSecureConnWanted),
		errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount):
		return true
	case errors.Is(err, kafka.SASLAuthenticationFailed), errors.Is(err, kafka.UnsupportedSASLMechanism),
		errors.Is(err, kafka.IllegalSASLState), errors.Is(err, kafka.TopicAuthorizationFailed),
		errors.Is(err, kafka.ClusterAuthorizationFailed):
		return true
	}
	var (
		unknownCA *x509.UnknownAuthorityError
		invalid   x509.CertificateInvalidError
		host      x509.HostnameError
		verify    *tls.CertificateVerificationError
		record    tls.RecordHeaderError
	)
	return errors.As(err, &unknownCA) || errors.As(err, &invalid) || errors.As(err, &host) ||
		errors.As(err, &verify) || errors.As(err, &record)
}
