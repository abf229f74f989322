package publisher

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// hostileTags are tags that break naive subject building.
var hostileTags = []string{
	"", " ", "  ", ".", "..", "*", ">", "a.b", "a*b", "a>b", "new york", "tab\tsep", "line\nbreak", "-", "--2D",
	"_", "UPPER", "MiXeD", "café", "東京", "🔥🔥", "שלום", "a\x00b", "%41", "~", "a/b", "\u2028", "\xff\xfe",
	"verylong" + strings.Repeat("x", 300), "0", "42", "_leading", "trailing_", "ünïcödé.*>",
}

func TestEncodeTag(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, tag, token string
	}{
		{"a plain lower-case tag stays readable", "sunset", "sunset"},
		{"digits and underscores stay readable", "new_york_2015", "new_york_2015"},
		{"a space is escaped behind the dash prefix", "new york", "-new-20york"},
		{"a dot is escaped", "a.b", "-a-2Eb"},
		{"wildcards are escaped", "*>", "--2A-3E"},
		{"upper case is escaped", "A", "--41"},
		{"non-ASCII is escaped byte by byte", "café", "-caf-C3-A9"},
		{"the empty tag is a lone dash", "", "-"},
		{"a dash is escaped", "-", "--2D"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := EncodeTag(tt.tag); got != tt.token {
				t.Fatalf("EncodeTag(%q) = %q, want %q", tt.tag, got, tt.token)
			}
			back, err := DecodeTag(tt.token)
			if err != nil || back != tt.tag {
				t.Fatalf("DecodeTag(%q) = %q, %v; want %q", tt.token, back, err, tt.tag)
			}
		})
	}
}

func TestHostileTagsGiveOneValidToken(t *testing.T) {
	t.Parallel()
	seen := map[string]string{}
	for _, tag := range hostileTags {
		tok := EncodeTag(tag)
		if !validToken(tok) {
			t.Errorf("EncodeTag(%q) = %q is not one valid subject token", tag, tok)
		}
		if other, dup := seen[tok]; dup {
			t.Errorf("tags %q and %q share the token %q", tag, other, tok)
		}
		seen[tok] = tag
		back, err := DecodeTag(tok)
		if err != nil || back != tag {
			t.Errorf("DecodeTag(EncodeTag(%q)) = %q, %v", tag, back, err)
		}
	}
}

func TestDecodeTagRejectsTokensEncodeTagCannotProduce(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, token string }{
		{"an empty token", ""},
		{"upper case without the prefix", "Sunset"},
		{"a plain tag behind the prefix", "-sunset"},
		{"an escaped plain byte", "--61"},
		{"lower-case hex", "--2e"},
		{"a truncated escape", "--2"},
		{"a dash at the end", "-a-"},
		{"a byte outside the alphabet", "-a.b"},
		{"a wildcard", "*"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tag, err := DecodeTag(tt.token); !errors.Is(err, ErrInvalidSubjectToken) {
				t.Fatalf("DecodeTag(%q) = %q, %v; want ErrInvalidSubjectToken", tt.token, tag, err)
			}
		})
	}
}

func TestSubjectAndTagFromSubject(t *testing.T) {
	t.Parallel()
	for _, tag := range hostileTags {
		subj := Subject("tagstream.media", tag)
		if strings.Count(subj, ".") != 2 {
			t.Fatalf("Subject(%q) = %q has more than 3 tokens", tag, subj)
		}
		back, err := TagFromSubject("tagstream.media", subj)
		if err != nil || back != tag {
			t.Fatalf("TagFromSubject(%q) = %q, %v; want %q", subj, back, err, tag)
		}
	}
	if _, err := TagFromSubject("tagstream.media", "other.sunset"); !errors.Is(err, ErrInvalidSubjectToken) {
		t.Fatalf("a subject under another prefix decoded: %v", err)
	}
}

func TestSubjectCovers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name            string
		pattern, filter string
		want            bool
	}{
		{"the same full wildcard covers", "a.b.>", "a.b.>", true},
		{"a broader full wildcard covers", "a.>", "a.b.>", true},
		{"the root wildcard covers all", ">", "a.b.>", true},
		{"a star covers one token only", "a.b.*", "a.b.>", false},
		{"a star covers a literal", "a.*.c", "a.b.c", true},
		{"a narrower pattern does not cover", "a.b.c", "a.b.>", false},
		{"a sibling does not cover", "a.c.>", "a.b.>", false},
		{"a literal does not cover a star", "a.b", "a.*", false},
		{"a wildcard needs at least one more token", "a.b.>", "a.b", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := subjectCovers(tt.pattern, tt.filter); got != tt.want {
				t.Fatalf("subjectCovers(%q, %q) = %v, want %v", tt.pattern, tt.filter, got, tt.want)
			}
		})
	}
}

// validToken reports whether tok is one NATS subject token built from [a-zA-Z0-9_-].
func validToken(tok string) bool {
	if tok == "" {
		return false
	}
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func FuzzTagRoundTrip(f *testing.F) {
	for _, tag := range hostileTags {
		f.Add(tag)
	}
	f.Fuzz(func(t *testing.T, tag string) {
		tok := EncodeTag(tag)
		if !validToken(tok) {
			t.Fatalf("EncodeTag(%q) = %q is not a valid token", tag, tok)
		}
		back, err := DecodeTag(tok)
		if err != nil || back != tag {
			t.Fatalf("DecodeTag(EncodeTag(%q)) = %q, %v", tag, back, err)
		}
		if utf8.ValidString(tag) != utf8.ValidString(back) {
			t.Fatalf("UTF-8 validity changed for %q", tag)
		}
	})
}

func FuzzDecodeTag(f *testing.F) {
	for _, s := range []string{"", "-", "sunset", "-a-2Eb", "--2", "--61", "-caf-C3-A9", "A"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		tag, err := DecodeTag(token)
		if err != nil {
			if !errors.Is(err, ErrInvalidSubjectToken) {
				t.Fatalf("DecodeTag(%q) error %v is not ErrInvalidSubjectToken", token, err)
			}
			return
		}
		if again := EncodeTag(tag); again != token {
			t.Fatalf("DecodeTag(%q) = %q, which encodes to %q: the mapping is not canonical", token, tag, again)
		}
	})
}
