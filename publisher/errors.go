package publisher

import (
	"errors"
	"fmt"
)

// Sentinel errors. Errors returned by this package wrap one of these (or a context error) so that callers can
// classify them with errors.Is.
var (
	// ErrConfig reports an invalid configuration; the message names the field.
	ErrConfig = errors.New("publisher: invalid config")
	// ErrClosed is returned by Publish after Close.
	ErrClosed = errors.New("publisher: closed")
	// ErrNoStream reports that no JetStream stream covers the publisher's subjects and stream creation is off.
	ErrNoStream = errors.New("publisher: no stream covers the subject")
	// ErrTopicNotFound reports that the Kafka topic does not exist and topic creation is off.
	ErrTopicNotFound = errors.New("publisher: kafka topic not found")
	// ErrRejected marks an event the broker will never accept (too large, invalid). Such events go to the
	// dead-letter destination; the error is returned only when the dead-letter destination itself fails.
	ErrRejected = errors.New("publisher: event rejected by the broker")
	// ErrUnavailable marks a transient broker failure (unreachable, timed out, leader moving). Publish retries
	// it until its context ends and then returns it wrapped together with the context error.
	ErrUnavailable = errors.New("publisher: broker unavailable")
	// ErrInvalidSubjectToken is returned by DecodeTag for a token that EncodeTag cannot have produced.
	ErrInvalidSubjectToken = errors.New("publisher: invalid subject token")
)

// configError builds an ErrConfig error naming the offending field.
func configError(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrConfig, field, fmt.Sprintf(format, args...))
}
