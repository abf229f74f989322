package publisher

import (
	"errors"
	"strings"
	"testing"

	"github.com/tagstream/tagstream/schema"
)

func TestValidateTopic(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, topic string
		ok          bool
	}{
		{"a plain name is valid", "tagstream.media", true},
		{"letters, digits, dot, underscore and dash are valid", "A-z_0.9", true},
		{"a name of exactly the limit is valid", strings.Repeat("t", MaxTopicLen), true},
		{"an empty name is refused", "", false},
		{"a lone dot is refused", ".", false},
		{"two dots are refused", "..", false},
		{"a name beyond the limit is refused", strings.Repeat("t", MaxTopicLen+1), false},
		{"a space is refused", "a b", false},
		{"a slash is refused", "a/b", false},
		{"non-ASCII is refused", "café", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := ValidateTopic(tt.topic); (err == nil) != tt.ok {
				t.Fatalf("ValidateTopic(%q) = %v, want ok=%v", tt.topic, err, tt.ok)
			}
		})
	}
}

func TestValidateSubjectAndPrefix(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, subject string
		subjectOK     bool
		prefixOK      bool
	}{
		{"a dotted literal is valid", "tagstream.media", true, true},
		{"one token is valid", "events", true, true},
		{"non-ASCII tokens are valid", "médias.東京", true, true},
		{"an empty subject is refused", "", false, false},
		{"a leading dot is refused", ".a", false, false},
		{"a trailing dot is refused", "a.", false, false},
		{"a double dot is refused", "a..b", false, false},
		{"a star token is refused", "a.*", false, false},
		{"a full wildcard is refused", "a.>", false, false},
		{"a star inside a token is refused", "a.b*c", false, false},
		{"a space is refused", "a b", false, false},
		{"a tab is refused", "a\tb", false, false},
		{"a control character is refused", "a\x01b", false, false},
		{"DEL is refused", "a\x7fb", false, false},
		{"invalid UTF-8 is refused", "a\xffb", false, false},
		{"a subject at the subject limit is valid but too long for a prefix", strings.Repeat("s", MaxSubjectBytes), true, false},
		{"a subject beyond the limit is refused", strings.Repeat("s", MaxSubjectBytes+1), false, false},
		{"a prefix at the prefix limit is valid", strings.Repeat("p", MaxSubjectPrefixBytes), true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := ValidateSubject(tt.subject); (err == nil) != tt.subjectOK {
				t.Fatalf("ValidateSubject = %v, want ok=%v", err, tt.subjectOK)
			}
			if err := ValidateSubjectPrefix(tt.subject); (err == nil) != tt.prefixOK {
				t.Fatalf("ValidateSubjectPrefix = %v, want ok=%v", err, tt.prefixOK)
			}
		})
	}
	t.Run("the longest valid tag under the longest prefix makes a valid subject", func(t *testing.T) {
		tag := strings.Repeat("\U00010400", schema.MaxTagRunes) // a 4-byte letter, each byte escaped as 3
		if err := schema.ValidateTag(tag); err != nil {
			t.Fatal(err)
		}
		s := Subject(strings.Repeat("p", MaxSubjectPrefixBytes), tag)
		if len(s) != MaxSubjectBytes {
			t.Fatalf("subject of %d bytes, want exactly %d", len(s), MaxSubjectBytes)
		}
		if err := ValidateSubject(s); err != nil {
			t.Fatal(err)
		}
	})
}

func TestValidateStreamName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, stream string
		ok           bool
	}{
		{"the default name is valid", DefaultStreamName, true},
		{"dashes and underscores are valid", "tag-stream_1", true},
		{"a name at the limit is valid", strings.Repeat("S", MaxStreamNameLen), true},
		{"an empty name is refused", "", false},
		{"a name beyond the limit is refused", strings.Repeat("S", MaxStreamNameLen+1), false},
		{"a dot is refused", "a.b", false},
		{"a star is refused", "a*", false},
		{"a greater-than is refused", "a>", false},
		{"a slash is refused", "a/b", false},
		{"a backslash is refused", `a\b`, false},
		{"a space is refused", "a b", false},
		{"a control character is refused", "a\x00", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := ValidateStreamName(tt.stream); (err == nil) != tt.ok {
				t.Fatalf("ValidateStreamName(%q) = %v, want ok=%v", tt.stream, err, tt.ok)
			}
		})
	}
}

func TestTagSubjectChecksTheTagWithTheSchemaRule(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, prefix, tag string
		want              string
		wantErr           error
	}{
		{"a valid tag gives its subject", "tagstream.media", "sunset", "tagstream.media.sunset", nil},
		{"a non-ASCII tag is encoded", "p", "café", "p.-caf-C3-A9", nil},
		{"a tag with a space is refused by schema.ValidateTag", "p", "new york", "", schema.ErrInvalidTag},
		{"a tag with '#' is refused by schema.ValidateTag", "p", "#sunset", "", schema.ErrInvalidTag},
		{"a wildcard prefix is a config error", "p.*", "sunset", "", ErrConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := TagSubject(tt.prefix, tt.tag)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("TagSubject = %q, %v; want %v", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("TagSubject = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
