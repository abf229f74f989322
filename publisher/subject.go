package publisher

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/tagstream/tagstream/schema"
)

// EncodeTag returns the subject token of tag: one NATS subject token (never empty, never holding '.', '*', '>' or
// white space) that DecodeTag turns back into tag, for any string.
//
// A NATS subject is a list of tokens separated by '.', and a token may not be empty nor hold '.', '*', '>' or
// white space, while Instagram tags hold any Unicode text. The scheme:
//
//   - A tag made only of ASCII lower-case letters, digits and '_' (at least one of them) is its own token:
//     "sunset" -> "sunset", "new_york_2015" -> "new_york_2015".
//   - Any other tag (upper case, '-', '.', '*', '>', spaces, non-ASCII, the empty tag) becomes '-' followed by its
//     UTF-8 bytes, where the bytes [a-z0-9_] stay as they are and every other byte is written as '-' and two
//     upper-case hexadecimal digits: "new york" -> "-new-20york", "café" -> "-caf-C3-A9", "a.b" -> "-a-2Eb",
//     "" -> "-", "-" -> "--2D".
//
// Tokens therefore use only [a-zA-Z0-9_-] (valid in every NATS subject, stream filter and KV key) and are
// case-sensitive. A token starts with '-' exactly when the tag is not plain, so the two forms never collide, and
// DecodeTag accepts only the canonical form: the mapping is a bijection between strings and valid tokens.
func EncodeTag(tag string) string {
	if isPlainTag(tag) {
		return tag
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(1 + len(tag)*2)
	b.WriteByte('-')
	for i := 0; i < len(tag); i++ {
		c := tag[i]
		if isPlainByte(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('-')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0x0f])
	}
	return b.String()
}

// DecodeTag returns the tag whose subject token is token. It returns an error wrapping ErrInvalidSubjectToken for
// a token that EncodeTag cannot produce.
func DecodeTag(token string) (string, error) {
	if token == "" {
		return "", fmt.Errorf("%w: empty token", ErrInvalidSubjectToken)
	}
	if token[0] != '-' {
		if !isPlainTag(token) {
			return "", fmt.Errorf("%w: %q holds a byte other than [a-z0-9_] without the '-' prefix",
				ErrInvalidSubjectToken, token)
		}
		return token, nil
	}
	out := make([]byte, 0, len(token))
	for i := 1; i < len(token); i++ {
		c := token[i]
		switch {
		case isPlainByte(c):
			out = append(out, c)
		case c == '-':
			if i+2 >= len(token) {
				return "", fmt.Errorf("%w: %q ends inside an escape", ErrInvalidSubjectToken, token)
			}
			hi, ok1 := unhex(token[i+1])
			lo, ok2 := unhex(token[i+2])
			if !ok1 || !ok2 {
				return "", fmt.Errorf("%w: %q has a bad escape at byte %d", ErrInvalidSubjectToken, token, i)
			}
			v := hi<<4 | lo
			if isPlainByte(v) {
				return "", fmt.Errorf("%w: %q escapes the plain byte %q", ErrInvalidSubjectToken, token, v)
			}
			out = append(out, v)
			i += 2
		default:
			return "", fmt.Errorf("%w: %q holds the byte %q", ErrInvalidSubjectToken, token, c)
		}
	}
	tag := string(out)
	if isPlainTag(tag) {
		return "", fmt.Errorf("%w: %q is not canonical (the plain tag %q has no '-' prefix)",
			ErrInvalidSubjectToken, token, tag)
	}
	return tag, nil
}

// Subject returns the subject of tag under prefix: prefix + "." + EncodeTag(tag).
func Subject(prefix, tag string) string {
	return prefix + "." + EncodeTag(tag)
}

// TagFromSubject returns the tag of a subject built by Subject with the same prefix.
func TagFromSubject(prefix, subject string) (string, error) {
	rest, ok := strings.CutPrefix(subject, prefix+".")
	if !ok {
		return "", fmt.Errorf("%w: subject %q is not under %q", ErrInvalidSubjectToken, subject, prefix)
	}
	return DecodeTag(rest)
}

func isPlainByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_'
}

func isPlainTag(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isPlainByte(s[i]) {
			return false
		}
	}
	return true
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// MaxSubjectBytes is the longest literal NATS subject this package publishes to (an event's subject, a
// dead-letter subject): 3072 bytes, which leaves room within nats-server's 4096-byte protocol line for the reply
// inbox and the sizes that a publish carries along with the subject.
const MaxSubjectBytes = 3072

// MaxSubjectPrefixBytes is the longest subject prefix: the subject of any valid tag under it (the prefix, a '.'
// and EncodeTag of a tag of schema.MaxTagRunes runes, at most 1 + 12*schema.MaxTagRunes bytes) stays within
// MaxSubjectBytes.
const MaxSubjectPrefixBytes = MaxSubjectBytes - 1 - (1 + 12*schema.MaxTagRunes)

// ValidateSubject checks a literal NATS subject to publish to: valid UTF-8 of at most MaxSubjectBytes bytes,
// made of '.'-separated tokens that are not empty and hold no white space, control character or wildcard ('*',
// '>'). The error says what is wrong and quotes the subject.
func ValidateSubject(s string) error {
	return validateSubject(s, MaxSubjectBytes)
}

// ValidateSubjectPrefix checks a subject prefix (the part before the tag's token): a literal subject, as
// ValidateSubject, of at most MaxSubjectPrefixBytes bytes.
func ValidateSubjectPrefix(prefix string) error {
	return validateSubject(prefix, MaxSubjectPrefixBytes)
}

// validateSubject checks s as a literal subject of at most limit bytes.
func validateSubject(s string, limit int) error {
	switch {
	case s == "":
		return errors.New("empty subject")
	case len(s) > limit:
		return fmt.Errorf("subject of %d bytes is longer than %d", len(s), limit)
	case !utf8.ValidString(s):
		return fmt.Errorf("%q is not valid UTF-8", s)
	}
	for tok := range strings.SplitSeq(s, ".") {
		if tok == "" {
			return fmt.Errorf("%q has an empty token (a leading, trailing or double '.')", s)
		}
		if strings.ContainsFunc(tok, func(r rune) bool { return r <= ' ' || r == 0x7f || unicode.IsSpace(r) }) {
			return fmt.Errorf("%q holds a space or control character", s)
		}
		if strings.ContainsAny(tok, "*>") {
			return fmt.Errorf("%q holds a wildcard ('*' or '>'); a literal subject is needed", s)
		}
	}
	return nil
}

// TagSubject returns the subject of tag under prefix, after checking the tag with schema.ValidateTag (errors
// wrap schema.ErrInvalidTag) and the prefix with ValidateSubjectPrefix (errors wrap ErrConfig). Use it where a
// tag from the configuration enters a subject (a consumer's filter); Subject itself encodes any string.
func TagSubject(prefix, tag string) (string, error) {
	if err := ValidateSubjectPrefix(prefix); err != nil {
		return "", configError("SubjectPrefix", "%v", err)
	}
	if err := schema.ValidateTag(tag); err != nil {
		return "", fmt.Errorf("publisher: subject of tag: %w", err)
	}
	return Subject(prefix, tag), nil
}

// subjectCovers reports whether every subject matched by filter (which may hold wildcards) is also matched by
// pattern, i.e. whether a stream listening on pattern stores everything published under filter.
func subjectCovers(pattern, filter string) bool {
	pt := strings.Split(pattern, ".")
	ft := strings.Split(filter, ".")
	for i, p := range pt {
		if p == ">" {
			return len(ft) > i
		}
		if i >= len(ft) {
			return false
		}
		f := ft[i]
		switch {
		case p == "*":
			if f == ">" {
				return false
			}
		case f == "*" || f == ">":
			return false
		case p != f:
			return false
		}
	}
	return len(ft) == len(pt)
}

// subjectCache remembers the subject of the last tag: a Publish batch is usually one tag's page.
type subjectCache struct{ tag, subj string }

func (c *subjectCache) subject(prefix, tag string) string {
	if c.subj == "" || c.tag != tag {
		c.tag, c.subj = tag, Subject(prefix, tag)
	}
	return c.subj
}
