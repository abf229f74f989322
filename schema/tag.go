package schema

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxTagRunes is the longest tag tagstream accepts, in characters (Unicode code points). Instagram accepted
// hashtags of letters, digits, marks and '_' only; 100 characters is above any tag it served.
const MaxTagRunes = 100

// ErrInvalidTag is wrapped by ValidateTag's errors.
var ErrInvalidTag = errors.New("invalid tag")

// ValidateTag reports why tag cannot be followed, or nil. A tag is non-empty valid UTF-8 of at most MaxTagRunes
// characters, made of Unicode letters, digits, marks and '_' only, written without its leading '#'. This is the
// one rule for a tag: the configuration, the poller, the cursor store and the publishers' subject mapping all call
// it. Errors wrap ErrInvalidTag.
func ValidateTag(tag string) error {
	switch {
	case tag == "":
		return fmt.Errorf("%w: empty", ErrInvalidTag)
	case strings.HasPrefix(tag, "#"):
		return fmt.Errorf("%w: %q: write the tag without '#'", ErrInvalidTag, tag)
	case !utf8.ValidString(tag):
		return fmt.Errorf("%w: %q is not valid UTF-8", ErrInvalidTag, tag)
	case utf8.RuneCountInString(tag) > MaxTagRunes:
		return fmt.Errorf("%w: %q is longer than %d characters", ErrInvalidTag, tag, MaxTagRunes)
	}
	for _, r := range tag {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && !unicode.Is(unicode.M, r) && r != '_' {
			return fmt.Errorf("%w: %q contains %q: tags hold only letters, digits and '_'", ErrInvalidTag, tag, r)
		}
	}
	return nil
}
