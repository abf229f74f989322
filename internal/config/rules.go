package config

import (
	"github.com/tagstream/tagstream/poller"
	"github.com/tagstream/tagstream/publisher"
	"github.com/tagstream/tagstream/schema"
)

// The rules that decide whether a tag, a subject, a stream or topic name or an API host is acceptable belong to
// the package that owns the concept: config applies them and adds the key and the origin of the value to the
// error. The functions of this file are the only place config names those rules.

// checkTag applies the one tag rule, schema.ValidateTag (at most schema.MaxTagRunes characters).
func checkTag(t string) error { return schema.ValidateTag(t) }

// checkBaseURL applies the one rule for the API base URL and its loopback exception, poller.CheckBaseURL.
func checkBaseURL(raw string, allowInsecureHTTP bool) error {
	return poller.CheckBaseURL(raw, allowInsecureHTTP)
}

// The poller's bounds: catch-up-pages and backfill-pages cannot be larger.
const (
	maxCatchUpPages  = poller.MaxCatchUpPages
	maxBackfillPages = poller.MaxBackfillPages
)

// checkSubject applies the rule for a literal NATS subject, publisher.ValidateSubject.
func checkSubject(s string) error { return publisher.ValidateSubject(s) }

// checkSubjectPrefix applies the rule for the events' subject prefix, publisher.ValidateSubjectPrefix (short
// enough for the subject of any valid tag).
func checkSubjectPrefix(s string) error { return publisher.ValidateSubjectPrefix(s) }

// checkStreamName applies the rule for a JetStream stream name, publisher.ValidateStreamName.
func checkStreamName(s string) error { return publisher.ValidateStreamName(s) }

// checkTopic applies the rule for a Kafka topic name, publisher.ValidateTopic (at most publisher.MaxTopicLen).
func checkTopic(t string) error { return publisher.ValidateTopic(t) }
