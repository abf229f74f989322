package config

import (
	"fmt"
	"strings"

	"github.com/tagstream/tagstream/poller"
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

// The rules below are still local copies until their owner exports them: publisher.ValidateTopic,
// publisher.ValidateSubject, publisher.ValidateSubjectPrefix and publisher.ValidateStreamName replace them one for
// one.

// checkSubject checks a literal NATS subject (no wildcards).
func checkSubject(s string) error {
	if s == "" {
		return fmt.Errorf("empty subject")
	}
	for _, tok := range strings.Split(s, ".") {
		if tok == "" {
			return fmt.Errorf("%q has an empty token (leading, trailing or double '.')", s)
		}
		if tok == "*" || tok == ">" {
			return fmt.Errorf("%q must not contain wildcards", s)
		}
		if strings.ContainsFunc(tok, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '*' || r == '>' }) {
			return fmt.Errorf("%q contains a space, control character or wildcard", s)
		}
	}
	return nil
}

// checkSubjectPrefix checks the subject prefix of the events (a literal subject).
func checkSubjectPrefix(s string) error { return checkSubject(s) }

// checkStreamName checks a JetStream stream name.
func checkStreamName(s string) error {
	if s == "" {
		return fmt.Errorf("empty stream name")
	}
	if strings.ContainsFunc(s, func(r rune) bool {
		return r <= ' ' || r == 0x7f || r == '.' || r == '*' || r == '>' || r == '/' || r == '\\'
	}) {
		return fmt.Errorf("%q must not contain spaces, '.', '*', '>', '/' or '\\'", s)
	}
	return nil
}

// checkTopic checks a Kafka topic name.
func checkTopic(t string) error {
	if t == "" || t == "." || t == ".." {
		return fmt.Errorf("%q is not a valid topic name", t)
	}
	if len(t) > 249 {
		return fmt.Errorf("topic name longer than 249 characters")
	}
	for _, r := range t {
		if !(r == '.' || r == '_' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return fmt.Errorf("%q: topic names hold only letters, digits, '.', '_' and '-'", t)
		}
	}
	return nil
}
