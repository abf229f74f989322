package schema

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"strings"
)

// ErrMalformed is wrapped by every error DecodePage returns for a body that
// looks like JSON but is truncated or malformed, or whose envelope has the
// wrong shape. The message names the problem and the byte offset, never the
// body's content (a next_url can hold an access token).
var ErrMalformed = errors.New("schema: malformed body")

// ErrRateLimited and ErrTokenInvalid let callers classify an *APIError with
// errors.Is as well as with its methods.
var (
	ErrRateLimited  = errors.New("schema: rate limited")
	ErrTokenInvalid = errors.New("schema: access token invalid")
)

// Meta is the v1 envelope's meta block.
type Meta struct {
	Code         int
	ErrorType    string
	ErrorMessage string
}

// Pagination is the v1 envelope's pagination block. Cursors are opaque
// strings, stored and sent back verbatim; a JSON number in old payloads becomes
// its exact decimal text (never through float64). An absent member is "".
type Pagination struct {
	NextURL            string // next_url (2011 private beta: next); it embeds the caller's token: do not log it
	NextMaxTagID       string // next_max_tag_id
	NextMaxID          string // next_max_id (deprecated twin of next_max_tag_id)
	MinTagID           string // min_tag_id: cursor of the newest item on the page
	NextMinID          string // next_min_id (deprecated twin of min_tag_id)
	DeprecationWarning string // deprecation_warning
	NextCursor         string // next_cursor (follows endpoints)
}

// User is a media owner, a caption author or a user tagged in a photo.
type User struct {
	ID             string `json:"id"`
	Username       string `json:"username"`
	FullName       string `json:"full_name"`
	ProfilePicture string `json:"profile_picture"`
}

// Location is where a media was taken. Its upstream id was a JSON number (kept
// as exact text); old data has null names and coordinates, which stay "" and
// nil.
type Location struct {
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	Latitude  *float64 `json:"latitude"`
	Longitude *float64 `json:"longitude"`
}

// Rendition is one image or video size.
type Rendition struct {
	URL    string `json:"url"`
	Width  int64  `json:"width"`
	Height int64  `json:"height"`
}

// IsZero reports whether the rendition was absent.
func (r Rendition) IsZero() bool { return r.URL == "" && r.Width == 0 && r.Height == 0 }

// Renditions holds the named sizes of an image or a video. Widths are kept as
// sent (306 or 320 for low_resolution, depending on the era). An absent size is
// the zero Rendition.
type Renditions struct {
	Thumbnail          Rendition `json:"thumbnail,omitzero"`
	LowResolution      Rendition `json:"low_resolution,omitzero"`
	StandardResolution Rendition `json:"standard_resolution,omitzero"`
	LowBandwidth       Rendition `json:"low_bandwidth,omitzero"`
	HighResolution     Rendition `json:"high_resolution,omitzero"` // 2011 private beta
}

// IsZero reports whether no rendition is present.
func (r Renditions) IsZero() bool { return r == Renditions{} }

// UserInPhoto is a user tagged in a photo at a relative position.
type UserInPhoto struct {
	User User    `json:"user"`
	X    float64 `json:"x"`
	Y    float64 `json:"y"`
}

// CarouselItem is one element of a carousel post.
type CarouselItem struct {
	Type         string        `json:"type"`
	Images       Renditions    `json:"images"`
	Videos       Renditions    `json:"videos"`
	UsersInPhoto []UserInPhoto `json:"users_in_photo"`
}

// Media is one media object as the v1 API sent it, read leniently: ids that
// were JSON numbers become their exact decimal text, counts that were strings
// become numbers, nulls become zero values. Raw is the exact object as sent; it
// aliases the body given to DecodePage, so that body must not be modified while
// the Media is in use. To save allocations, the strings of all media of one
// page share one buffer (ID excepts: it has its own, as callers keep ids).
type Media struct {
	ID            string
	Type          string // as sent; the 2011 beta sent integers (1 image, 2 video), kept as their text
	Link          string
	CreatedTime   string // as sent: Unix seconds, or ISO 8601 in 2010-2011
	Tags          []string
	HasCaption    bool   // caption was an object (not null or absent)
	Caption       string // caption.text (caption.message in 2010-2011)
	CaptionID     string
	User          User
	Location      *Location // nil when null or absent
	Images        Renditions
	Videos        Renditions
	CarouselMedia []CarouselItem
	LikeCount     int64 // likes.count, or like_count (2011)
	CommentCount  int64 // comments.count, or the length of a 2010 comments list
	Filter        string
	UsersInPhoto  []UserInPhoto
	UserHasLiked  bool
	Raw           json.RawMessage
}

// Page is one decoded 200 answer of a list endpoint.
type Page struct {
	Meta       Meta
	Media      []Media
	Pagination Pagination
}

// APIError is an error answer of the API: a meta-wrapped body
// ({"meta":{"code","error_type","error_message"}}), a flat body
// ({"code","error_type","error_message"}, Flat true) or an HTTP error status
// with a JSON body that names no error (Type ""). Error messages come from the
// server.
type APIError struct {
	HTTPStatus int
	Code       int
	Type       string
	Message    string
	Flat       bool
}

// Error names the error type, the codes and the server's message.
func (e *APIError) Error() string {
	t := e.Type
	if t == "" {
		t = "unnamed error"
	}
	msg := e.Message
	if len(msg) > 300 {
		msg = msg[:300] + "..."
	}
	if msg == "" {
		return fmt.Sprintf("schema: api error %s (code %d, HTTP %d)", t, e.Code, e.HTTPStatus)
	}
	return fmt.Sprintf("schema: api error %s (code %d, HTTP %d): %s", t, e.Code, e.HTTPStatus, msg)
}

// RateLimited reports whether the API refused the call for exceeding the rate
// limit (HTTP or code 429, or error type OAuthRateLimitException).
func (e *APIError) RateLimited() bool {
	return e.HTTPStatus == 429 || e.Code == 429 || e.Type == "OAuthRateLimitException"
}

// TokenInvalid reports whether the access token was rejected as invalid or
// revoked (error type OAuthAccessTokenException).
func (e *APIError) TokenInvalid() bool { return e.Type == "OAuthAccessTokenException" }

// Is lets errors.Is match ErrRateLimited and ErrTokenInvalid.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrRateLimited:
		return e.RateLimited()
	case ErrTokenInvalid:
		return e.TokenInvalid()
	}
	return false
}

// NonJSONError is an answer whose body is not JSON at all, such as an HTML 503
// page from a load balancer. It carries the HTTP status and content type, not
// the body.
type NonJSONError struct {
	HTTPStatus  int
	ContentType string
}

// Error names the status and content type.
func (e *NonJSONError) Error() string {
	ct := e.ContentType
	if ct == "" {
		ct = "no content type"
	}
	return fmt.Sprintf("schema: non-JSON body (HTTP %d, %s)", e.HTTPStatus, ct)
}

// DecodePage classifies one HTTP answer of a v1 list endpoint (status 0 means
// unknown and is treated as 200). It returns a *Page for a success envelope
// ("data" an array of media, a single media object, or null), or an error:
//
//   - *APIError for a meta-wrapped or flat error body, for a 200 whose
//     meta.code is not 200, and for a non-2xx status with a JSON body;
//   - *NonJSONError for a body that does not start like JSON (an HTML 503),
//     unless the status is 200 and the content type claims JSON;
//   - an error wrapping ErrMalformed for a truncated or malformed JSON body, or
//     a JSON body of the wrong shape (the message says what and where).
//
// The returned Media's Raw fields alias body. DecodePage never panics.
func DecodePage(status int, contentType string, body []byte) (*Page, error) {
	if status == 0 {
		status = 200
	}
	first := firstByte(body)
	if first != '{' {
		if (status == 200 && isJSONType(contentType)) || (first == '[' && status/100 == 2) {
			if first == '[' {
				return nil, fmt.Errorf("%w: top-level value is an array, want an object (HTTP %d)", ErrMalformed, status)
			}
			if first == 0 {
				return nil, fmt.Errorf("%w: empty body (HTTP %d)", ErrMalformed, status)
			}
			return nil, fmt.Errorf("%w: body does not start with a JSON object (HTTP %d)", ErrMalformed, status)
		}
		return nil, &NonJSONError{HTTPStatus: status, ContentType: contentType}
	}

	// The arena and the tag backing are made at the first media: an empty page (most pages of a quiet tag) then
	// allocates neither, and its few strings (the pagination's ids) are copied one by one.
	s := &scanner{b: body}
	var (
		page              Page
		hasMeta, hasData  bool
		flatCode          int
		flatType, flatMsg string
		hasFlat           bool
		dataKind          kind
		mediaErr          error
	)
	s.object(func(key []byte) {
		switch string(key) {
		case "meta":
			hasMeta = true
			if s.peek() != kindObject {
				s.skip()
				return
			}
			decodeMeta(s, &page.Meta)
		case "data":
			hasData = true
			dataKind = s.peek()
			switch dataKind {
			case kindArray:
				page.Media = []Media{} // no allocation: most pages of a quiet tag are empty, and 16 media are 10 KB
				s.array(func(i int) {
					if s.peek() != kindObject {
						if mediaErr == nil {
							mediaErr = fmt.Errorf("%w: data[%d] is %s, want a media object", ErrMalformed, i, s.peek())
						}
						return
					}
					if cap(page.Media) == 0 {
						page.Media = make([]Media, 0, 16)
						s.arena, s.strs = make([]byte, 0, len(body)), make([]string, 0, 64)
					}
					page.Media = append(page.Media, Media{})
					decodeMedia(s, &page.Media[len(page.Media)-1])
				})
			case kindObject:
				page.Media = make([]Media, 1)
				s.arena, s.strs = make([]byte, 0, len(body)), make([]string, 0, 64)
				decodeMedia(s, &page.Media[0])
			case kindNull:
				s.skip()
			default:
				s.skip()
			}
		case "pagination":
			if s.peek() == kindObject {
				decodePagination(s, &page.Pagination)
			}
		case "code":
			hasFlat = true
			flatCode = int(s.integer())
		case "error_type":
			hasFlat = true
			flatType = s.ownedText()
		case "error_message":
			hasFlat = true
			flatMsg = s.ownedText()
		}
	})
	if s.err == nil {
		s.ws()
		if s.i < len(s.b) {
			s.fail("unexpected data after the top-level object at offset %d", s.i)
		}
	}
	if s.err != nil {
		return nil, fmt.Errorf("%w (HTTP %d)", s.err, status)
	}

	// Error classification.
	switch {
	case hasMeta && (page.Meta.ErrorType != "" || (page.Meta.Code != 0 && page.Meta.Code != 200) || status/100 != 2):
		code := page.Meta.Code
		if code == 0 {
			code = status
		}
		return nil, &APIError{HTTPStatus: status, Code: code, Type: page.Meta.ErrorType, Message: page.Meta.ErrorMessage}
	case !hasMeta && hasFlat && (flatType != "" || flatCode != 200 || status/100 != 2):
		code := flatCode
		if code == 0 {
			code = status
		}
		return nil, &APIError{HTTPStatus: status, Code: code, Type: flatType, Message: flatMsg, Flat: true}
	case status/100 != 2:
		return nil, &APIError{HTTPStatus: status, Code: status, Flat: !hasMeta}
	}
	if mediaErr != nil {
		return nil, fmt.Errorf("%w (HTTP %d)", mediaErr, status)
	}
	if hasData && dataKind != kindArray && dataKind != kindObject && dataKind != kindNull {
		return nil, fmt.Errorf("%w: data is %s, want an array of media (HTTP %d)", ErrMalformed, dataKind, status)
	}
	if !hasMeta {
		page.Meta.Code = status
	}
	return &page, nil
}

func firstByte(b []byte) byte {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return c
	}
	return 0
}

func isJSONType(ct string) bool {
	if ct == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return strings.Contains(strings.ToLower(ct), "json")
	}
	return mt == "application/json" || strings.HasSuffix(mt, "+json") || mt == "text/json" || mt == "text/javascript"
}

func decodeMeta(s *scanner, m *Meta) {
	s.object(func(key []byte) {
		switch string(key) {
		case "code":
			m.Code = int(s.integer())
		case "error_type":
			m.ErrorType = s.ownedText()
		case "error_message":
			m.ErrorMessage = s.ownedText()
		}
	})
}

func decodePagination(s *scanner, p *Pagination) {
	s.object(func(key []byte) {
		switch string(key) {
		case "next_url":
			p.NextURL = s.ownedText()
		case "next":
			if p.NextURL == "" {
				p.NextURL = s.ownedText()
			}
		case "next_max_tag_id":
			p.NextMaxTagID = s.ownedText()
		case "next_max_id":
			p.NextMaxID = s.ownedText()
		case "min_tag_id":
			p.MinTagID = s.ownedText()
		case "next_min_id":
			p.NextMinID = s.ownedText()
		case "deprecation_warning":
			p.DeprecationWarning = s.ownedText()
		case "next_cursor":
			p.NextCursor = s.ownedText()
		}
	})
}

// DecodeMedia reads one media object (as found in a page's data array). It is
// the decoder DecodePage uses per item, exposed for tests and tools; Raw
// aliases b.
func DecodeMedia(b []byte) (*Media, error) {
	s := &scanner{b: b}
	if s.peek() != kindObject {
		s.failHere("media object")
		return nil, s.err
	}
	var m Media
	decodeMedia(s, &m)
	if s.err == nil {
		s.ws()
		if s.i < len(s.b) {
			s.fail("unexpected data after the media object at offset %d", s.i)
		}
	}
	if s.err != nil {
		return nil, s.err
	}
	return &m, nil
}

func decodeMedia(s *scanner, m *Media) {
	s.ws()
	start := s.i
	s.object(func(key []byte) {
		switch string(key) {
		case "id":
			m.ID = s.ownedText()
		case "type":
			m.Type = s.text()
		case "link":
			m.Link = s.text()
		case "created_time":
			m.CreatedTime = s.text()
		case "tags":
			if s.peek() != kindArray {
				return
			}
			first := len(s.strs)
			s.array(func(int) {
				if t := s.text(); t != "" {
					s.strs = append(s.strs, t)
				}
			})
			if n := len(s.strs); n > first {
				m.Tags = s.strs[first:n:n]
			}
		case "caption":
			switch s.peek() {
			case kindObject:
				m.HasCaption = true
				s.object(func(key []byte) {
					switch string(key) {
					case "text":
						m.Caption = s.text()
					case "message":
						if m.Caption == "" {
							m.Caption = s.text()
						}
					case "id":
						m.CaptionID = s.text()
					}
				})
			case kindString:
				m.HasCaption = true
				m.Caption = s.text()
			}
		case "user":
			if s.peek() == kindObject {
				decodeUser(s, &m.User)
			}
		case "location":
			if s.peek() == kindObject {
				m.Location = decodeLocation(s)
			}
		case "images":
			if s.peek() == kindObject {
				decodeRenditions(s, &m.Images)
			}
		case "videos":
			if s.peek() == kindObject {
				decodeRenditions(s, &m.Videos)
			}
		case "carousel_media":
			if s.peek() != kindArray {
				return
			}
			s.array(func(int) {
				if s.peek() != kindObject {
					return
				}
				m.CarouselMedia = append(m.CarouselMedia, CarouselItem{})
				decodeCarouselItem(s, &m.CarouselMedia[len(m.CarouselMedia)-1])
			})
		case "likes":
			switch s.peek() {
			case kindObject:
				s.object(func(key []byte) {
					if string(key) == "count" {
						m.LikeCount = s.integer()
					}
				})
			case kindNumber, kindString:
				m.LikeCount = s.integer()
			}
		case "like_count":
			m.LikeCount = s.integer()
		case "comments":
			switch s.peek() {
			case kindObject:
				s.object(func(key []byte) {
					if string(key) == "count" {
						m.CommentCount = s.integer()
					}
				})
			case kindArray:
				var n int64
				s.array(func(int) { n++ })
				m.CommentCount = n
			case kindNumber, kindString:
				m.CommentCount = s.integer()
			}
		case "comment_count":
			m.CommentCount = s.integer()
		case "filter":
			m.Filter = s.text()
		case "users_in_photo":
			m.UsersInPhoto = decodeUsersInPhoto(s)
		case "user_has_liked":
			m.UserHasLiked = s.boolean()
		}
	})
	if s.err == nil {
		m.Raw = s.b[start:s.i:s.i]
	}
}

func decodeUser(s *scanner, u *User) {
	var first, last string
	s.object(func(key []byte) {
		switch string(key) {
		case "id":
			u.ID = s.text()
		case "username":
			u.Username = s.text()
		case "full_name":
			u.FullName = s.text()
		case "profile_picture":
			u.ProfilePicture = s.text()
		case "first_name":
			first = s.text()
		case "last_name":
			last = s.text()
		}
	})
	if u.FullName == "" && (first != "" || last != "") {
		u.FullName = strings.TrimSpace(first + " " + last)
	}
}

func decodeLocation(s *scanner) *Location {
	l := &Location{}
	s.object(func(key []byte) {
		switch string(key) {
		case "id":
			l.ID = s.text()
		case "name":
			l.Name = s.text()
		case "latitude":
			if f, ok := s.float(); ok {
				l.Latitude = &f
			}
		case "longitude":
			if f, ok := s.float(); ok {
				l.Longitude = &f
			}
		}
	})
	return l
}

func decodeRenditions(s *scanner, r *Renditions) {
	s.object(func(key []byte) {
		var dst *Rendition
		switch string(key) {
		case "thumbnail":
			dst = &r.Thumbnail
		case "low_resolution":
			dst = &r.LowResolution
		case "standard_resolution":
			dst = &r.StandardResolution
		case "low_bandwidth":
			dst = &r.LowBandwidth
		case "high_resolution":
			dst = &r.HighResolution
		default:
			return
		}
		switch s.peek() {
		case kindObject:
			s.object(func(key []byte) {
				switch string(key) {
				case "url":
					dst.URL = s.text()
				case "width":
					dst.Width = s.integer()
				case "height":
					dst.Height = s.integer()
				}
			})
		case kindString: // the earliest beta sent bare URLs
			dst.URL = s.text()
		}
	})
}

func decodeCarouselItem(s *scanner, c *CarouselItem) {
	s.object(func(key []byte) {
		switch string(key) {
		case "type":
			c.Type = s.text()
		case "images":
			if s.peek() == kindObject {
				decodeRenditions(s, &c.Images)
			}
		case "videos":
			if s.peek() == kindObject {
				decodeRenditions(s, &c.Videos)
			}
		case "users_in_photo":
			c.UsersInPhoto = decodeUsersInPhoto(s)
		}
	})
}

func decodeUsersInPhoto(s *scanner) []UserInPhoto {
	if s.peek() != kindArray {
		return nil
	}
	var out []UserInPhoto
	s.array(func(int) {
		if s.peek() != kindObject {
			return
		}
		var u UserInPhoto
		s.object(func(key []byte) {
			switch string(key) {
			case "user":
				if s.peek() == kindObject {
					decodeUser(s, &u.User)
				}
			case "position":
				if s.peek() != kindObject {
					return
				}
				s.object(func(key []byte) {
					switch string(key) {
					case "x":
						u.X, _ = s.float()
					case "y":
						u.Y, _ = s.float()
					}
				})
			}
		})
		out = append(out, u)
	})
	return out
}
