package schema

import (
	"fmt"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// maxDepth bounds the nesting of arrays and objects the scanner accepts, so a
// hostile body cannot exhaust the stack.
const maxDepth = 256

// scanner is a small, strict, allocation-light JSON reader over one body. It
// validates everything it walks over (RFC 8259 grammar; invalid UTF-8 inside
// strings is replaced by U+FFFD, as encoding/json does) and reports the first
// problem in err, with the byte offset and never any of the body's content.
type scanner struct {
	b     []byte
	i     int
	depth int
	err   error
	buf   []byte // scratch for unescaping

	// arena, when set, holds the text of every string handed out with str:
	// one allocation per page instead of one per string. Bytes are only ever
	// appended, never overwritten, so the strings stay immutable.
	arena []byte
	// strs backs the tag lists of a page, for the same reason.
	strs []string
}

// str returns b as a string, copied into the arena when there is one.
func (s *scanner) str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if s.arena == nil {
		return string(b)
	}
	if cap(s.arena)-len(s.arena) < len(b) {
		// A new block; strings already handed out keep the old one alive.
		s.arena = make([]byte, 0, max(len(b), 4096))
	}
	off := len(s.arena)
	s.arena = append(s.arena, b...)
	return unsafe.String(&s.arena[off], len(b))
}

// kind is the first byte class of the next value.
type kind byte

const (
	kindInvalid kind = iota
	kindObject
	kindArray
	kindString
	kindNumber
	kindTrue
	kindFalse
	kindNull
)

func (k kind) String() string {
	switch k {
	case kindObject:
		return "object"
	case kindArray:
		return "array"
	case kindString:
		return "string"
	case kindNumber:
		return "number"
	case kindTrue, kindFalse:
		return "boolean"
	case kindNull:
		return "null"
	}
	return "invalid value"
}

func (s *scanner) fail(format string, args ...any) {
	if s.err == nil {
		s.err = fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
	}
	// Stop all further progress.
	s.i = len(s.b)
}

func (s *scanner) failHere(what string) {
	if s.i >= len(s.b) {
		s.fail("unexpected end of input (truncated body) while reading %s", what)
		return
	}
	s.fail("invalid character at offset %d while reading %s", s.i, what)
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek skips whitespace and reports the kind of the next value.
func (s *scanner) peek() kind {
	s.ws()
	if s.i >= len(s.b) {
		return kindInvalid
	}
	switch c := s.b[s.i]; {
	case c == '{':
		return kindObject
	case c == '[':
		return kindArray
	case c == '"':
		return kindString
	case c == '-' || (c >= '0' && c <= '9'):
		return kindNumber
	case c == 't':
		return kindTrue
	case c == 'f':
		return kindFalse
	case c == 'n':
		return kindNull
	}
	return kindInvalid
}

// object walks an object, calling fn for each member with the scanner positioned
// at the member's value; fn must consume that value (or leave it, in which case
// it is skipped). The key bytes are only valid during the call.
func (s *scanner) object(fn func(key []byte)) {
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		s.failHere("object")
		return
	}
	s.depth++
	if s.depth > maxDepth {
		s.fail("nesting deeper than %d at offset %d", maxDepth, s.i)
		return
	}
	s.i++
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		s.depth--
		return
	}
	for s.err == nil {
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			s.failHere("object key")
			return
		}
		key := s.rawString()
		if s.err != nil {
			return
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			s.failHere("colon after object key")
			return
		}
		s.i++
		s.ws()
		start := s.i
		fn(key)
		if s.err != nil {
			return
		}
		if s.i == start {
			s.skip()
		}
		s.ws()
		if s.i >= len(s.b) {
			s.failHere("object")
			return
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			s.depth--
			return
		default:
			s.failHere("comma or closing brace in object")
			return
		}
	}
}

// array walks an array, calling fn for each element positioned at it; fn must
// consume the element (or leave it to be skipped).
func (s *scanner) array(fn func(i int)) {
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '[' {
		s.failHere("array")
		return
	}
	s.depth++
	if s.depth > maxDepth {
		s.fail("nesting deeper than %d at offset %d", maxDepth, s.i)
		return
	}
	s.i++
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		s.depth--
		return
	}
	for n := 0; s.err == nil; n++ {
		s.ws()
		start := s.i
		fn(n)
		if s.err != nil {
			return
		}
		if s.i == start {
			s.skip()
		}
		s.ws()
		if s.i >= len(s.b) {
			s.failHere("array")
			return
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case ']':
			s.i++
			s.depth--
			return
		default:
			s.failHere("comma or closing bracket in array")
			return
		}
	}
}

// skip consumes and validates one value of any kind.
func (s *scanner) skip() {
	switch s.peek() {
	case kindObject:
		s.object(func([]byte) {})
	case kindArray:
		s.array(func(int) {})
	case kindString:
		s.skipString()
	case kindNumber:
		s.number()
	case kindTrue:
		s.literal("true")
	case kindFalse:
		s.literal("false")
	case kindNull:
		s.literal("null")
	default:
		s.failHere("value")
	}
}

func (s *scanner) literal(lit string) {
	if len(s.b)-s.i < len(lit) {
		s.fail("unexpected end of input (truncated body) while reading %s", lit)
		return
	}
	if string(s.b[s.i:s.i+len(lit)]) != lit {
		s.fail("invalid literal at offset %d", s.i)
		return
	}
	s.i += len(lit)
}

// number consumes a number and returns its exact text.
func (s *scanner) number() []byte {
	start := s.i
	b := s.b
	i := s.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		s.i = i
		s.failHere("number")
		return nil
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		s.i = i
		s.failHere("number")
		return nil
	}
	if i < len(b) && b[i] == '.' {
		i++
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			s.i = i
			s.failHere("number fraction")
			return nil
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			s.i = i
			s.failHere("number exponent")
			return nil
		}
	}
	s.i = i
	return b[start:i]
}

// strPlain marks the bytes a string can hold verbatim: printable ASCII other
// than '"' and '\\'.
var strPlain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// rawString consumes a string and returns its unescaped content. The result
// aliases either the body (no escapes, valid UTF-8) or the scanner's scratch
// buffer, so it is only valid until the next call.
func (s *scanner) rawString() []byte {
	b := s.b
	i := s.i + 1 // past the opening quote
	start := i
	// Fast path: no escapes and valid UTF-8 (the usual case).
	for i < len(b) {
		c := b[i]
		if strPlain[c] {
			i++
			continue
		}
		if c == '"' {
			s.i = i + 1
			return b[start:i]
		}
		if c >= utf8.RuneSelf {
			if r, size := utf8.DecodeRune(b[i:]); r != utf8.RuneError || size > 1 {
				i += size
				continue
			}
		}
		break
	}
	out := append(s.buf[:0], b[start:i]...)
	for {
		j := i
		for j < len(b) && strPlain[b[j]] {
			j++
		}
		out = append(out, b[i:j]...)
		i = j
		if i >= len(b) {
			s.i = i
			s.failHere("string")
			return nil
		}
		c := b[i]
		switch {
		case c == '"':
			s.i = i + 1
			s.buf = out
			return out
		case c < 0x20:
			s.i = i
			s.fail("control character in string at offset %d", i)
			return nil
		case c == '\\':
			i++
			if i >= len(b) {
				s.i = i
				s.failHere("string escape")
				return nil
			}
			switch b[i] {
			case '"', '\\', '/':
				out = append(out, b[i])
				i++
			case 'b':
				out = append(out, '\b')
				i++
			case 'f':
				out = append(out, '\f')
				i++
			case 'n':
				out = append(out, '\n')
				i++
			case 'r':
				out = append(out, '\r')
				i++
			case 't':
				out = append(out, '\t')
				i++
			case 'u':
				r, n := hex4(b, i+1)
				if n < 0 {
					s.i = i
					s.failHere("\\u escape")
					return nil
				}
				i += 5
				if utf16.IsSurrogate(r) {
					// A valid pair is \uD8xx\uDCxx; anything else becomes U+FFFD.
					if i+1 < len(b) && b[i] == '\\' && b[i+1] == 'u' {
						if r2, n2 := hex4(b, i+2); n2 >= 0 {
							if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
								out = utf8.AppendRune(out, dec)
								i += 6
								break
							}
						}
					}
					r = utf8.RuneError
				}
				out = utf8.AppendRune(out, r)
			default:
				s.i = i
				s.fail("invalid escape in string at offset %d", i)
				return nil
			}
		default: // c >= utf8.RuneSelf
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				out = utf8.AppendRune(out, utf8.RuneError)
			} else {
				out = append(out, b[i:i+size]...)
			}
			i += size
		}
	}
}

// skipString consumes and validates a string without unescaping it.
func (s *scanner) skipString() {
	b := s.b
	i := s.i + 1
	for {
		for i < len(b) && b[i] >= 0x20 && b[i] != '"' && b[i] != '\\' {
			i++
		}
		if i >= len(b) {
			s.i = i
			s.failHere("string")
			return
		}
		switch c := b[i]; {
		case c == '"':
			s.i = i + 1
			return
		case c < 0x20:
			s.i = i
			s.fail("control character in string at offset %d", i)
			return
		default: // backslash
			i++
			if i >= len(b) {
				s.i = i
				s.failHere("string escape")
				return
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				if _, n := hex4(b, i+1); n < 0 {
					s.i = i
					s.failHere("\\u escape")
					return
				}
				i += 5
			default:
				s.i = i
				s.fail("invalid escape in string at offset %d", i)
				return
			}
		}
	}
}

func hex4(b []byte, i int) (rune, int) {
	if len(b)-i < 4 {
		return 0, -1
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, -1
		}
		r = r<<4 | rune(c)
	}
	return r, 4
}

// text reads a scalar leniently as text: a string as itself, a number as its
// exact decimal text, a boolean as "true"/"false"; null, objects and arrays
// become "" (they are consumed). The result may live in the page's arena.
func (s *scanner) text() string {
	switch s.peek() {
	case kindString:
		return s.str(s.rawString())
	case kindNumber:
		return s.str(s.number())
	case kindTrue:
		s.literal("true")
		return "true"
	case kindFalse:
		s.literal("false")
		return "false"
	default:
		s.skip()
		return ""
	}
}

// ownedText is text with its own allocation, for values callers keep long
// after the page (media ids, cursors, error messages).
func (s *scanner) ownedText() string {
	switch s.peek() {
	case kindString:
		return string(s.rawString())
	case kindNumber:
		return string(s.number())
	case kindTrue:
		s.literal("true")
		return "true"
	case kindFalse:
		s.literal("false")
		return "false"
	default:
		s.skip()
		return ""
	}
}

// integer reads a count or a dimension leniently: an integer number, a number
// with a fraction (truncated), or a string holding one; anything else is 0.
func (s *scanner) integer() int64 {
	var t []byte
	switch s.peek() {
	case kindNumber:
		t = s.number()
	case kindString:
		t = s.rawString()
	default:
		s.skip()
		return 0
	}
	return parseInteger(t)
}

func parseInteger(t []byte) int64 {
	if n, err := strconv.ParseInt(string(t), 10, 64); err == nil {
		return n
	}
	f, err := strconv.ParseFloat(string(t), 64)
	if err != nil || math.IsNaN(f) || f > 9e18 || f < -9e18 {
		return 0
	}
	return int64(f)
}

// float reads a coordinate: a number or a numeric string; null or anything
// else gives ok=false.
func (s *scanner) float() (float64, bool) {
	var t []byte
	switch s.peek() {
	case kindNumber:
		t = s.number()
	case kindString:
		t = s.rawString()
	default:
		s.skip()
		return 0, false
	}
	f, err := strconv.ParseFloat(string(t), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

// boolean reads true/false; anything else is false.
func (s *scanner) boolean() bool {
	switch s.peek() {
	case kindTrue:
		s.literal("true")
		return true
	default:
		s.skip()
		return false
	}
}
