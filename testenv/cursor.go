package testenv

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strconv"
)

// errBadCursor reports a cursor the simulator cannot read; the API answers it with APIInvalidParametersError.
var errBadCursor = errors.New("malformed cursor")

// maxCursorLen bounds the length of a cursor a client may send.
const maxCursorLen = 256

// numericCursorStart is just below 10^16: the first cursors of a tag have 16 digits, later ones 17 and more.
const numericCursorStart = 9_999_999_999_990_000

// opaqueRawLen is the decoded length of an opaque cursor: 8 bytes sequence, 4 bytes check, 24 bytes filler.
const opaqueRawLen = 36

// cursorCodec spells and reads cursors of one style.
type cursorCodec struct {
	style CursorStyle
	key   uint64 // mixes opaque cursors so that they look random and carry a check
}

// opaque returns the opaque cursor of sequence number seq.
func (c cursorCodec) opaque(seq uint64) string {
	var raw [opaqueRawLen]byte
	binary.BigEndian.PutUint64(raw[0:8], seq^c.key)
	binary.BigEndian.PutUint32(raw[8:12], uint32(mix(c.key^seq)))
	x := mix(seq + c.key*3)
	for i := 12; i < opaqueRawLen; i += 8 {
		x = mix(x)
		binary.BigEndian.PutUint64(raw[i:i+8], x)
	}
	return "AQ" + base64.RawURLEncoding.EncodeToString(raw[:])
}

// bound is a decoded client cursor. For numeric cursors digits holds the decimal value without leading zeros;
// for opaque ones seq holds the sequence number.
type bound struct {
	set    bool
	digits string
	seq    uint64
}

// parse decodes a client cursor. An empty string is no bound.
func (c cursorCodec) parse(s string) (bound, error) {
	if s == "" {
		return bound{}, nil
	}
	if len(s) > maxCursorLen {
		return bound{}, errBadCursor
	}
	switch c.style {
	case CursorOpaque:
		if len(s) < 3 || s[0] != 'A' || s[1] != 'Q' {
			return bound{}, errBadCursor
		}
		raw, err := base64.RawURLEncoding.DecodeString(s[2:])
		if err != nil || len(raw) != opaqueRawLen {
			return bound{}, errBadCursor
		}
		seq := binary.BigEndian.Uint64(raw[0:8]) ^ c.key
		if binary.BigEndian.Uint32(raw[8:12]) != uint32(mix(c.key^seq)) {
			return bound{}, errBadCursor
		}
		return bound{set: true, seq: seq}, nil
	default:
		for i := 0; i < len(s); i++ {
			if s[i] < '0' || s[i] > '9' {
				return bound{}, errBadCursor
			}
		}
		i := 0
		for i < len(s)-1 && s[i] == '0' {
			i++
		}
		return bound{set: true, digits: s[i:]}, nil
	}
}

// compare compares m's cursor with b: -1 if m is older, 0 if equal, +1 if newer.
func (c cursorCodec) compare(m *media, b bound) int {
	if c.style == CursorOpaque {
		switch {
		case m.seq < b.seq:
			return -1
		case m.seq > b.seq:
			return 1
		}
		return 0
	}
	return cmpDecimal(m.cursor, b.digits)
}

// cmpDecimal compares two decimal strings without leading zeros as integers of any size.
func cmpDecimal(a, b string) int {
	switch {
	case len(a) < len(b):
		return -1
	case len(a) > len(b):
		return 1
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// numeric returns the decimal spelling of a numeric cursor value.
func numericCursor(v uint64) string { return strconv.FormatUint(v, 10) }

// mix is the SplitMix64 finaliser.
func mix(x uint64) uint64 {
	x += 0x9E3779B97F4A7C15
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9
	x = (x ^ (x >> 27)) * 0x94D049BB133111EB
	return x ^ (x >> 31)
}
