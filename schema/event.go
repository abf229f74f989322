package schema

import (
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// CloudEvents attributes of the events this package produces.
const (
	// SpecVersion is the CloudEvents version of every event.
	SpecVersion = "1.0"
	// MediaEventType is the CloudEvents type of a media event (data is MediaData).
	MediaEventType = "io.tagstream.media.v1"
	// GapEventType is the CloudEvents type of a gap marker (data is GapData).
	GapEventType = "io.tagstream.gap.v1"
	// DefaultSource is the CloudEvents source used when a Sighting has none.
	DefaultSource = "/tagstream"
	// DataContentType is the content type of every event's data.
	DataContentType = "application/json"
)

// Media types in MediaData.Type.
const (
	TypeImage    = "image"
	TypeVideo    = "video"
	TypeCarousel = "carousel"
)

// ErrNoMediaID is wrapped by Normalize's error for a media without an id.
var ErrNoMediaID = errors.New("schema: media has no id")

// Event is one CloudEvents 1.0 event in structured JSON mode. Exactly one of
// Data (Type MediaEventType) and Gap (Type GapEventType) is set; both are
// encoded as the "data" member. An Event is immutable once built and safe for
// concurrent reads.
type Event struct {
	SpecVersion     string
	ID              string
	Source          string
	Type            string
	Subject         string    // the tag
	Time            time.Time // media: created_at; gap: detected_at; zero = omitted
	DataContentType string
	Data            *MediaData
	Gap             *GapData
}

// MediaData is the data of a media event, version 1 (see
// media-event.v1.schema.json). Absent or null optional upstream fields become
// empty values: "" strings, 0 counts, empty lists, a nil Location.
type MediaData struct {
	MediaID      string         `json:"media_id"`
	Link         string         `json:"link"`
	Type         string         `json:"type"`       // image, video or carousel
	CreatedAt    time.Time      `json:"created_at"` // UTC; zero (null in JSON) when upstream had no readable created_time
	Tag          string         `json:"tag"`        // the tag it was found under
	Cursor       string         `json:"cursor"`     // the cursor of the page it was found on
	Tags         []string       `json:"tags"`
	Caption      string         `json:"caption"` // caption text, byte for byte; "" when none
	User         User           `json:"user"`
	Location     *Location      `json:"location"`
	Images       Renditions     `json:"images"`
	Videos       Renditions     `json:"videos"`
	Carousel     []CarouselItem `json:"carousel"`
	Likes        int64          `json:"likes"`
	Comments     int64          `json:"comments"`
	Filter       string         `json:"filter"`
	UsersInPhoto []UserInPhoto  `json:"users_in_photo"`
	FetchedAt    time.Time      `json:"fetched_at"`
	Raw          []byte         `json:"-"` // the upstream media object when Sighting.AttachRaw; encoded as "raw"
}

// GapData is the data of a gap marker: upstream could not serve part of a
// backlog, so media between two cursors were not published.
type GapData struct {
	Tag        string    `json:"tag"`
	FromCursor string    `json:"from_cursor"`
	ToCursor   string    `json:"to_cursor"`
	Missing    int       `json:"missing"` // -1 when unknown (encoded as null)
	Reason     string    `json:"reason"`
	DetectedAt time.Time `json:"detected_at"`
}

// Sighting says where and when a media was seen.
type Sighting struct {
	Tag       string    // the tag polled
	Cursor    string    // the cursor of the page the media was on
	Source    string    // CloudEvents source; "" = DefaultSource
	FetchedAt time.Time // when the page was fetched; zero = the time Normalize runs
	AttachRaw bool      // attach the upstream object as data.raw
}

// Gap describes a backlog segment that could not be fetched.
type Gap struct {
	FromCursor string
	ToCursor   string
	Missing    int // -1 when unknown
	Reason     string
	DetectedAt time.Time
}

// eventNamespace is the UUIDv5 namespace of event ids: the UUIDv5 of the URL
// namespace and "https://github.com/tagstream/tagstream/schema/media-event.v1".
var eventNamespace = uuid5([16]byte{0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8},
	"https://github.com/tagstream/tagstream/schema/media-event.v1")

func uuid5(ns [16]byte, name string) [16]byte {
	return uuidFromSum(sha1.Sum(append(ns[:], name...)))
}

// uuidFromSum makes a version 5 UUID from the SHA-1 of namespace + name.
func uuidFromSum(sum [20]byte) [16]byte {
	var u [16]byte
	copy(u[:], sum[:16])
	u[6] = (u[6] & 0x0f) | 0x50
	u[8] = (u[8] & 0x3f) | 0x80
	return u
}

func uuidString(u [16]byte) string {
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:])
	return string(b[:])
}

// EventID returns the deterministic id of the media event for (tag, mediaID):
// the UUIDv5, in its text form, of tag + "\x00" + mediaID in the tagstream
// namespace. Publishing the same sighting twice yields the same id, which lets
// JetStream (Nats-Msg-Id) and Kafka consumers drop repeats.
func EventID(tag, mediaID string) string {
	var buf [128]byte // the usual tag and id fit: no allocation
	b := append(buf[:0], eventNamespace[:]...)
	b = append(b, tag...)
	b = append(b, 0)
	b = append(b, mediaID...)
	return uuidString(uuidFromSum(sha1.Sum(b)))
}

// gapID is the deterministic id of a gap marker.
func gapID(tag string, g Gap) string {
	return uuidString(uuid5(eventNamespace, "gap\x00"+tag+"\x00"+g.FromCursor+"\x00"+g.ToCursor))
}

// Normalize turns one upstream media into a media event. It returns an error
// wrapping ErrNoMediaID when the media has no id; every other odd or missing
// field normalizes to an empty value. It never panics.
func Normalize(m *Media, s Sighting) (*Event, error) {
	if m == nil {
		return nil, fmt.Errorf("%w: nil media (tag %q)", ErrNoMediaID, s.Tag)
	}
	id := strings.TrimSpace(m.ID)
	if id == "" {
		return nil, fmt.Errorf("%w (tag %q, cursor %q)", ErrNoMediaID, s.Tag, s.Cursor)
	}
	src := s.Source
	if src == "" {
		src = DefaultSource
	}
	created := parseCreated(m.CreatedTime)
	// Event and data in one allocation.
	type pair struct {
		e Event
		d MediaData
	}
	p := &pair{}
	p.d = MediaData{
		MediaID:      id,
		Link:         m.Link,
		Type:         mediaType(m),
		CreatedAt:    created,
		Tag:          s.Tag,
		Cursor:       s.Cursor,
		Tags:         m.Tags,
		Caption:      m.Caption,
		User:         m.User,
		Location:     m.Location,
		Images:       m.Images,
		Videos:       m.Videos,
		Carousel:     m.CarouselMedia,
		Likes:        max(m.LikeCount, 0),
		Comments:     max(m.CommentCount, 0),
		Filter:       m.Filter,
		UsersInPhoto: m.UsersInPhoto,
		FetchedAt:    s.FetchedAt.UTC(),
	}
	if s.FetchedAt.IsZero() {
		p.d.FetchedAt = time.Now().UTC()
	}
	if s.AttachRaw && len(m.Raw) > 0 {
		p.d.Raw = m.Raw
	}
	copied := false
	for i, c := range p.d.Carousel {
		if c.Type == TypeImage || c.Type == TypeVideo {
			continue
		}
		if !copied {
			// Copy before the first change so that m is not modified.
			p.d.Carousel = append([]CarouselItem(nil), p.d.Carousel...)
			copied = true
		}
		if !c.Videos.IsZero() {
			p.d.Carousel[i].Type = TypeVideo
		} else {
			p.d.Carousel[i].Type = TypeImage
		}
	}
	p.e = Event{
		SpecVersion:     SpecVersion,
		ID:              EventID(s.Tag, id),
		Source:          src,
		Type:            MediaEventType,
		Subject:         s.Tag,
		Time:            created,
		DataContentType: DataContentType,
		Data:            &p.d,
	}
	return &p.e, nil
}

// mediaType maps the upstream type to image, video or carousel. The 2011 beta
// sent integers (1 image, 2 video); unknown or missing types are inferred from
// the media's content.
func mediaType(m *Media) string {
	switch m.Type {
	case TypeImage, TypeVideo, TypeCarousel:
		return m.Type
	case "1":
		return TypeImage
	case "2":
		return TypeVideo
	}
	switch {
	case len(m.CarouselMedia) > 0:
		return TypeCarousel
	case !m.Videos.IsZero():
		return TypeVideo
	}
	return TypeImage
}

// createdLayouts are the ISO 8601 forms seen in 2010-2011 payloads.
var createdLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05-0700",
	"2006-01-02T15:04:05.999999999-0700",
	"2006-01-02T15:04:05",
	"2006-01-02 15:04:05-0700",
	"2006-01-02 15:04:05",
}

// parseCreated reads created_time as Unix seconds (a string or number, the
// usual form) or ISO 8601; anything unreadable gives the zero time.
func parseCreated(v string) time.Time {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}
	}
	if c := v[0]; c == '-' || (c >= '0' && c <= '9') {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			if n < -62135596800 || n > 253402300799 { // outside years 1-9999: not representable in RFC 3339
				return time.Time{}
			}
			return time.Unix(n, 0).UTC()
		}
		if f, err := strconv.ParseFloat(v, 64); err == nil && f >= -62135596800 && f <= 253402300799 && strings.IndexByte(v, '-') <= 0 {
			sec := int64(f)
			return time.Unix(sec, int64((f-float64(sec))*1e9)).UTC().Truncate(time.Millisecond)
		}
	}
	for _, l := range createdLayouts {
		if t, err := time.Parse(l, v); err == nil {
			t = t.UTC()
			if t.Year() < 1 || t.Year() > 9999 {
				return time.Time{}
			}
			return t
		}
	}
	return time.Time{}
}

// NewGap builds a gap marker event for tag. Its id is deterministic from the
// tag and the two cursors; source "" means DefaultSource.
func NewGap(tag, source string, g Gap) *Event {
	if source == "" {
		source = DefaultSource
	}
	missing := g.Missing
	if missing < 0 {
		missing = -1
	}
	detected := g.DetectedAt.UTC()
	if g.DetectedAt.IsZero() {
		detected = time.Time{}
	}
	return &Event{
		SpecVersion:     SpecVersion,
		ID:              gapID(tag, g),
		Source:          source,
		Type:            GapEventType,
		Subject:         tag,
		Time:            detected,
		DataContentType: DataContentType,
		Gap: &GapData{
			Tag:        tag,
			FromCursor: g.FromCursor,
			ToCursor:   g.ToCursor,
			Missing:    missing,
			Reason:     g.Reason,
			DetectedAt: detected,
		},
	}
}
