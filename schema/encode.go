package schema

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// Encoding choices (see bench/schema.md):
//   - The encoder is hand-written and appends to a caller's buffer; it does not
//     use reflection.
//   - Strings are escaped as RFC 8259 requires ('"', '\\', control characters)
//     plus U+2028 and U+2029 (as encoding/json does, for JavaScript
//     consumers). '<', '>' and '&' are NOT escaped: events are not embedded in
//     HTML, and captions stay readable. Invalid UTF-8 (which the decoder never
//     produces) is written as U+FFFD. Any JSON decoder gives back exactly the
//     string that was encoded.
//   - Times are RFC 3339 in UTC with the shortest sub-second part; a zero time
//     is null.

// AppendJSON appends the event in CloudEvents structured JSON mode to dst and
// returns the extended buffer. It allocates nothing beyond growing dst. A nil
// event appends null.
func (e *Event) AppendJSON(dst []byte) []byte {
	if e == nil {
		return append(dst, "null"...)
	}
	dst = append(dst, `{"specversion":`...)
	dst = appendString(dst, e.SpecVersion)
	dst = append(dst, `,"id":`...)
	dst = appendString(dst, e.ID)
	dst = append(dst, `,"source":`...)
	dst = appendString(dst, e.Source)
	dst = append(dst, `,"type":`...)
	dst = appendString(dst, e.Type)
	if e.Subject != "" {
		dst = append(dst, `,"subject":`...)
		dst = appendString(dst, e.Subject)
	}
	if !e.Time.IsZero() {
		dst = append(dst, `,"time":`...)
		dst = appendTime(dst, e.Time)
	}
	if e.DataContentType != "" {
		dst = append(dst, `,"datacontenttype":`...)
		dst = appendString(dst, e.DataContentType)
	}
	dst = append(dst, `,"data":`...)
	dst = e.appendData(dst)
	return append(dst, '}')
}

// MarshalJSON returns AppendJSON(nil); it never fails.
func (e *Event) MarshalJSON() ([]byte, error) {
	return e.AppendJSON(make([]byte, 0, 2048)), nil
}

// DataJSON returns the "data" member alone, for CloudEvents binary content
// mode (the other attributes go into headers).
func (e *Event) DataJSON() []byte {
	if e == nil {
		return []byte("null")
	}
	return e.appendData(make([]byte, 0, 1536))
}

// AppendDataJSON appends the "data" member alone to dst.
func (e *Event) AppendDataJSON(dst []byte) []byte {
	if e == nil {
		return append(dst, "null"...)
	}
	return e.appendData(dst)
}

func (e *Event) appendData(dst []byte) []byte {
	switch {
	case e.Data != nil:
		return e.Data.appendJSON(dst)
	case e.Gap != nil:
		return e.Gap.appendJSON(dst)
	}
	return append(dst, "null"...)
}

func (d *MediaData) appendJSON(dst []byte) []byte {
	dst = append(dst, `{"media_id":`...)
	dst = appendString(dst, d.MediaID)
	dst = append(dst, `,"link":`...)
	dst = appendString(dst, d.Link)
	dst = append(dst, `,"type":`...)
	dst = appendString(dst, d.Type)
	dst = append(dst, `,"created_at":`...)
	dst = appendTime(dst, d.CreatedAt)
	dst = append(dst, `,"tag":`...)
	dst = appendString(dst, d.Tag)
	dst = append(dst, `,"cursor":`...)
	dst = appendString(dst, d.Cursor)
	dst = append(dst, `,"tags":[`...)
	for i, t := range d.Tags {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, t)
	}
	dst = append(dst, `],"caption":`...)
	dst = appendString(dst, d.Caption)
	dst = append(dst, `,"user":`...)
	dst = appendUser(dst, &d.User)
	dst = append(dst, `,"location":`...)
	if l := d.Location; l == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, `{"id":`...)
		dst = appendString(dst, l.ID)
		dst = append(dst, `,"name":`...)
		dst = appendString(dst, l.Name)
		dst = append(dst, `,"latitude":`...)
		dst = appendFloatPtr(dst, l.Latitude)
		dst = append(dst, `,"longitude":`...)
		dst = appendFloatPtr(dst, l.Longitude)
		dst = append(dst, '}')
	}
	dst = append(dst, `,"images":`...)
	dst = appendRenditions(dst, &d.Images)
	dst = append(dst, `,"videos":`...)
	dst = appendRenditions(dst, &d.Videos)
	dst = append(dst, `,"carousel":[`...)
	for i := range d.Carousel {
		if i > 0 {
			dst = append(dst, ',')
		}
		c := &d.Carousel[i]
		dst = append(dst, `{"type":`...)
		dst = appendString(dst, c.Type)
		dst = append(dst, `,"images":`...)
		dst = appendRenditions(dst, &c.Images)
		dst = append(dst, `,"videos":`...)
		dst = appendRenditions(dst, &c.Videos)
		dst = append(dst, `,"users_in_photo":`...)
		dst = appendUsersInPhoto(dst, c.UsersInPhoto)
		dst = append(dst, '}')
	}
	dst = append(dst, `],"likes":`...)
	dst = strconv.AppendInt(dst, d.Likes, 10)
	dst = append(dst, `,"comments":`...)
	dst = strconv.AppendInt(dst, d.Comments, 10)
	dst = append(dst, `,"filter":`...)
	dst = appendString(dst, d.Filter)
	dst = append(dst, `,"users_in_photo":`...)
	dst = appendUsersInPhoto(dst, d.UsersInPhoto)
	dst = append(dst, `,"fetched_at":`...)
	dst = appendTime(dst, d.FetchedAt)
	if len(d.Raw) > 0 {
		dst = append(dst, `,"raw":`...)
		dst = appendCompactJSON(dst, d.Raw)
	}
	return append(dst, '}')
}

func (g *GapData) appendJSON(dst []byte) []byte {
	dst = append(dst, `{"tag":`...)
	dst = appendString(dst, g.Tag)
	dst = append(dst, `,"from_cursor":`...)
	dst = appendString(dst, g.FromCursor)
	dst = append(dst, `,"to_cursor":`...)
	dst = appendString(dst, g.ToCursor)
	dst = append(dst, `,"missing":`...)
	if g.Missing < 0 {
		dst = append(dst, "null"...)
	} else {
		dst = strconv.AppendInt(dst, int64(g.Missing), 10)
	}
	dst = append(dst, `,"reason":`...)
	dst = appendString(dst, g.Reason)
	dst = append(dst, `,"detected_at":`...)
	dst = appendTime(dst, g.DetectedAt)
	return append(dst, '}')
}

func appendUser(dst []byte, u *User) []byte {
	dst = append(dst, `{"id":`...)
	dst = appendString(dst, u.ID)
	dst = append(dst, `,"username":`...)
	dst = appendString(dst, u.Username)
	dst = append(dst, `,"full_name":`...)
	dst = appendString(dst, u.FullName)
	dst = append(dst, `,"profile_picture":`...)
	dst = appendString(dst, u.ProfilePicture)
	return append(dst, '}')
}

func appendUsersInPhoto(dst []byte, us []UserInPhoto) []byte {
	dst = append(dst, '[')
	for i := range us {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"user":`...)
		dst = appendUser(dst, &us[i].User)
		dst = append(dst, `,"x":`...)
		dst = appendFloat(dst, us[i].X)
		dst = append(dst, `,"y":`...)
		dst = appendFloat(dst, us[i].Y)
		dst = append(dst, '}')
	}
	return append(dst, ']')
}

// renditionNames are the JSON names of Renditions' fields, in field order.
var renditionNames = [...]string{`"thumbnail":`, `"low_resolution":`, `"standard_resolution":`, `"low_bandwidth":`, `"high_resolution":`}

func appendRenditions(dst []byte, r *Renditions) []byte {
	all := [...]*Rendition{&r.Thumbnail, &r.LowResolution, &r.StandardResolution, &r.LowBandwidth, &r.HighResolution}
	dst = append(dst, '{')
	first := true
	for i, x := range all {
		if x.IsZero() {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, renditionNames[i]...)
		dst = append(dst, `{"url":`...)
		dst = appendString(dst, x.URL)
		dst = append(dst, `,"width":`...)
		dst = strconv.AppendInt(dst, x.Width, 10)
		dst = append(dst, `,"height":`...)
		dst = strconv.AppendInt(dst, x.Height, 10)
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

func appendFloatPtr(dst []byte, f *float64) []byte {
	if f == nil {
		return append(dst, "null"...)
	}
	return appendFloat(dst, *f)
}

// appendFloat writes f as a JSON number (shortest form that round-trips);
// NaN and infinities, which JSON cannot carry, become 0.
func appendFloat(dst []byte, f float64) []byte {
	if f != f || f > 1.7976931348623157e308 || f < -1.7976931348623157e308 {
		return append(dst, '0')
	}
	return strconv.AppendFloat(dst, f, 'g', -1, 64)
}

func appendTime(dst []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(dst, "null"...)
	}
	t = t.UTC()
	if y := t.Year(); y < 0 || y > 9999 {
		return append(dst, "null"...)
	}
	dst = append(dst, '"')
	dst = t.AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"')
}

const hexDigits = "0123456789abcdef"

// needsEscape marks the ASCII bytes appendString escapes.
var needsEscape = func() (t [utf8.RuneSelf]bool) {
	for i := range 0x20 {
		t[i] = true
	}
	t['"'] = true
	t['\\'] = true
	return t
}()

// appendString appends s as a JSON string (see the encoding choices above).
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if !needsEscape[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendCompactJSON appends raw (one JSON value) without insignificant
// whitespace, so an event stays on one line (NDJSON); strings are
// re-encoded with appendString. A raw value that is not valid JSON is written
// as null.
func appendCompactJSON(dst []byte, raw []byte) []byte {
	s := &scanner{b: raw}
	mark := len(dst)
	dst = compactValue(s, dst)
	if s.err == nil {
		s.ws()
		if s.i < len(s.b) {
			s.fail("trailing data")
		}
	}
	if s.err != nil {
		return append(dst[:mark], "null"...)
	}
	return dst
}

func compactValue(s *scanner, dst []byte) []byte {
	switch s.peek() {
	case kindObject:
		dst = append(dst, '{')
		n := 0
		s.object(func(key []byte) {
			if n > 0 {
				dst = append(dst, ',')
			}
			n++
			dst = appendString(dst, string(key))
			dst = append(dst, ':')
			dst = compactValue(s, dst)
		})
		return append(dst, '}')
	case kindArray:
		dst = append(dst, '[')
		s.array(func(i int) {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = compactValue(s, dst)
		})
		return append(dst, ']')
	case kindString:
		return appendString(dst, string(s.rawString()))
	case kindNumber:
		return append(dst, s.number()...)
	default:
		start := s.i
		s.skip()
		if s.err != nil {
			return dst
		}
		return append(dst, s.b[start:s.i]...)
	}
}
