package publisher

import (
	"fmt"
	"strings"
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

// validSubject reports whether s is a valid NATS subject to publish to (or, with wildcards, a filter):
// non-empty tokens without white space.
func validSubject(s string, wildcards bool) bool {
	if s == "" {
		return false
	}
	for tok := range strings.SplitSeq(s, ".") {
		if tok == "" {
			return false
		}
		if strings.ContainsAny(tok, " \t\r\n\f\v") {
			return false
		}
		if !wildcards && (strings.ContainsAny(tok, "*>")) {
			return false
		}
		if wildcards && strings.ContainsAny(tok, "*>") && tok != "*" && tok != ">" {
			return false
		}
	}
	return true
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
