package publisher

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"
)

// DefaultStreamName is the name of the stream NewJetStream creates when JetStreamConfig.Stream is empty and no
// stream covers the subjects yet.
const DefaultStreamName = "TAGSTREAM"

// deadLetterStreamSuffix names the dead-letter stream that NewJetStream creates: the event stream's name plus it.
const deadLetterStreamSuffix = "_DEADLETTER"

// JetStreamConfig configures the JetStream publisher and ProbeJetStream. The zero value means the documented
// defaults.
type JetStreamConfig struct {
	// SubjectPrefix is the subject prefix: events of tag t go to SubjectPrefix + "." + EncodeTag(t). Default
	// DefaultSubjectPrefix. See ValidateSubjectPrefix.
	SubjectPrefix string
	// Stream names the stream to publish into.
	//
	// Empty (the zero value) means discover: the publisher uses the stream whose subjects cover
	// SubjectPrefix + ".>", whatever its name (one listening on "tagstream.>" covers the default prefix, for
	// instance). Only when no stream listens on any subject under the prefix, and CreateStream is set, does it
	// create one, named DefaultStreamName.
	//
	// A name is strict: that stream must exist and cover SubjectPrefix + ".>", or, with CreateStream, not exist
	// yet and then be created with that name. See ValidateStreamName.
	//
	// Either way, a stream that listens on part of the prefix without covering all of it (say
	// "tagstream.media.coffee" under the prefix "tagstream.media") makes NewJetStream fail with ErrNoStream,
	// naming that stream and its subjects: the server would refuse a second stream overlapping it, and
	// publishing into the partial one would lose the other tags.
	Stream string
	// CreateStream creates the stream when no stream covers the subjects (and the dead-letter subject). Off by
	// default: NewJetStream then fails with ErrNoStream.
	CreateStream bool
	// Storage, Replicas and DuplicateWindow apply to a created stream only. Defaults: file storage, 1 replica,
	// a duplicate window of 2 minutes (the span within which a re-published event id is dropped).
	Storage         jetstream.StorageType
	Replicas        int
	DuplicateWindow time.Duration
	// MaxPending bounds the asynchronous publishes waiting for a PubAck, across all concurrent Publish calls;
	// default 4096. It bounds the publisher's memory while the server is slow.
	MaxPending int
	// AckTimeout is how long one PubAck may take before the publish counts as failed and is retried; default 10 s.
	AckTimeout time.Duration
	// DeadLetterSubject, when set, receives (as a wrapper JSON, see AppendLetter, with the reason also in the
	// Tagstream-Dead-Letter-Reason header) the events the server will never accept. A stream must cover it; it
	// is found as the event stream is (the stream covering it, whatever its name), and with CreateStream one
	// named after the event stream plus "_DEADLETTER" is created when none does. Empty means DeadLetter, or
	// Discard. See ValidateSubject.
	DeadLetterSubject string
	// DeadLetter overrides DeadLetterSubject with another destination.
	DeadLetter DeadLetter
	// Retry is the backoff between publish attempts; only the events not acknowledged are re-published.
	Retry RetryConfig
}

// withDefaults checks every field and resolves the defaults, once, for NewJetStream and ProbeJetStream alike.
func (c JetStreamConfig) withDefaults() (JetStreamConfig, error) {
	var err error
	if c.SubjectPrefix, err = natsSubjects(c.SubjectPrefix, c.DeadLetterSubject); err != nil {
		return c, err
	}
	if c.Stream != "" {
		if err := ValidateStreamName(c.Stream); err != nil {
			return c, configError("Stream", "%v", err)
		}
	}
	switch c.Storage {
	case jetstream.FileStorage, jetstream.MemoryStorage:
	default:
		return c, configError("Storage", "unknown storage type %d", c.Storage)
	}
	switch {
	case c.Replicas < 0 || c.Replicas > 5:
		return c, configError("Replicas", "must be in [1, 5], got %d", c.Replicas)
	case c.DuplicateWindow < 0:
		return c, configError("DuplicateWindow", "must not be negative, got %v", c.DuplicateWindow)
	case c.MaxPending < 0:
		return c, configError("MaxPending", "must not be negative, got %d", c.MaxPending)
	case c.AckTimeout < 0:
		return c, configError("AckTimeout", "must not be negative, got %v", c.AckTimeout)
	}
	if c.DeadLetterSubject != "" {
		if subjectCovers(c.SubjectPrefix+".>", c.DeadLetterSubject) {
			return c, configError("DeadLetterSubject", "%q lies under SubjectPrefix %q", c.DeadLetterSubject, c.SubjectPrefix)
		}
		if len(c.Stream)+len(deadLetterStreamSuffix) > MaxStreamNameLen {
			return c, configError("Stream", "%q leaves no room for the dead-letter stream's suffix %q within %d bytes",
				c.Stream, deadLetterStreamSuffix, MaxStreamNameLen)
		}
	}
	if err := c.Retry.validate("Retry"); err != nil {
		return c, err
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = 2 * time.Minute
	}
	if c.MaxPending == 0 {
		c.MaxPending = 4096
	}
	if c.AckTimeout == 0 {
		c.AckTimeout = 10 * time.Second
	}
	c.Retry = c.Retry.withDefaults()
	return c, nil
}

// MaxStreamNameLen is the longest JetStream stream name, in bytes: nats-server's limit of 255.
const MaxStreamNameLen = 255

// ValidateStreamName checks a JetStream stream name as nats-server does for a stream kept in files: 1 to
// MaxStreamNameLen bytes of valid UTF-8 without white space, control characters, '.', '*', '>', '/' or '\'. The
// error says what is wrong and quotes the name.
func ValidateStreamName(name string) error {
	switch {
	case name == "":
		return errors.New("empty stream name")
	case len(name) > MaxStreamNameLen:
		return fmt.Errorf("stream name of %d bytes is longer than %d", len(name), MaxStreamNameLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("%q is not valid UTF-8", name)
	case strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r == 0x7f || unicode.IsSpace(r) }):
		return fmt.Errorf("%q holds a space or control character", name)
	case strings.ContainsAny(name, ".*>/\\"):
		return fmt.Errorf("%q holds '.', '*', '>', '/' or '\\', which stream names must not", name)
	}
	return nil
}
