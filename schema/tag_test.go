package schema

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateTag(t *testing.T) {
	for _, tc := range []struct {
		name, tag string
		ok        bool
	}{
		{"a plain tag is accepted", "coffee", true},
		{"digits and underscores are accepted", "nofilter_2015", true},
		{"non-Latin letters and marks are accepted", "café_東京_हिन्दी", true},
		{"exactly the maximum length is accepted", strings.Repeat("é", MaxTagRunes), true},
		{"an empty tag is refused", "", false},
		{"a leading hash is refused", "#coffee", false},
		{"one character over the maximum is refused", strings.Repeat("a", MaxTagRunes+1), false},
		{"white space is refused", "a b", false},
		{"a NATS wildcard is refused", "a.*", false},
		{"a URL delimiter is refused", "a/b", false},
		{"invalid UTF-8 is refused", "a\xffb", false},
		{"a control character is refused", "a\x00b", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateTag(tc.tag)
			if tc.ok && err != nil {
				t.Fatalf("ValidateTag(%q) = %v, want nil", tc.tag, err)
			}
			if !tc.ok && !errors.Is(err, ErrInvalidTag) {
				t.Fatalf("ValidateTag(%q) = %v, want an error wrapping ErrInvalidTag", tc.tag, err)
			}
		})
	}
}
