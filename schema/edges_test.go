package schema_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tagstream/tagstream/schema"
)

// normalizeOne decodes a page holding the given media objects, normalizes the
// first one and validates its encoding against the JSON Schema.
func normalizeOne(t *testing.T, media string) (*schema.Media, *schema.Event) {
	t.Helper()
	page, err := schema.DecodePage(200, "application/json", []byte(`{"meta":{"code":200},"data":[`+media+`]}`))
	if err != nil {
		t.Fatalf("DecodePage: %v", err)
	}
	if len(page.Media) != 1 {
		t.Fatalf("got %d media, want 1", len(page.Media))
	}
	ev, err := schema.Normalize(&page.Media[0], schema.Sighting{Tag: "edge", Cursor: "c1", FetchedAt: fetchedAt})
	if err != nil {
		t.Fatalf("Normalize: %v", err)
	}
	validateEvent(t, ev.AppendJSON(nil))
	return &page.Media[0], ev
}

func ptr[T any](v T) *T { return &v }

func TestNormalizeEdges(t *testing.T) {
	tests := []struct {
		name  string
		media string
		check func(t *testing.T, d *schema.MediaData, e *schema.Event)
	}{
		{
			name:  "a numeric media id above 2^53 stays exact",
			media: `{"id":1084958352897296009,"created_time":"1443557136"}`,
			check: func(t *testing.T, d *schema.MediaData, e *schema.Event) {
				if d.MediaID != "1084958352897296009" {
					t.Fatalf("media id %q", d.MediaID)
				}
			},
		},
		{
			name:  "a numeric id beyond uint64 stays exact text",
			media: `{"id":123456789012345678901234567890,"user":{"id":18446744073709551617}}`,
			check: func(t *testing.T, d *schema.MediaData, e *schema.Event) {
				if d.MediaID != "123456789012345678901234567890" || d.User.ID != "18446744073709551617" {
					t.Fatalf("media id %q, user id %q", d.MediaID, d.User.ID)
				}
			},
		},
		{
			name:  "string and integer ids give the same event id",
			media: `{"id":"21532496","user":{"id":20}}`,
			check: func(t *testing.T, d *schema.MediaData, e *schema.Event) {
				if e.ID != schema.EventID("edge", "21532496") || d.User.ID != "20" {
					t.Fatalf("event id %s, user id %q", e.ID, d.User.ID)
				}
			},
		},
		{
			name:  "Unix created_time as a string is read as seconds in UTC",
			media: `{"id":"1","created_time":"1443557136"}`,
			check: func(t *testing.T, d *schema.MediaData, e *schema.Event) {
				want := time.Date(2015, 9, 29, 20, 5, 36, 0, time.UTC)
				if !d.CreatedAt.Equal(want) || !e.Time.Equal(want) || d.CreatedAt.Location() != time.UTC {
					t.Fatalf("created_at %v, time %v", d.CreatedAt, e.Time)
				}
			},
		},
		{
			name:  "Unix created_time as a number is read too",
			media: `{"id":"1","created_time":1296703536}`,
			check: func(t *testing.T, d *schema.MediaData, e *schema.Event) {
				if want := time.Unix(1296703536, 0).UTC(); !d.CreatedAt.Equal(want) {
					t.Fatalf("created_at %v, want %v", d.CreatedAt, want)
				}
			},
		},
		{
			name:  "ISO 8601 created_time with a +0000 offset is read as UTC",
			media: `{"id":"1","created_time":"2010-12-18T02:34:05+0000"}`,
			check: func(t *testing.T, d *schema.MediaData, e *schema.Event) {
				if want := time.Date(2010, 12, 18, 2, 34, 5, 0, time.UTC); !d.CreatedAt.Equal(want) {
					t.Fatalf("created_at %v", d.CreatedAt)
				}
			},
		},
		{
			name:  "ISO 8601 created_time with another offset is converted to UTC",
			media: `{"id":"1","created_time":"2011-01-20T12:04:54-08:00"}`,
			check: func(t *testing.T, d *schema.MediaData, e *schema.Event) {
				if want := time.Date(2011, 1, 20, 20, 4, 54, 0, time.UTC); !d.CreatedAt.Equal(want) || d.CreatedAt.Location() != time.UTC {
					t.Fatalf("created_at %v", d.CreatedAt)
				}
			},
		},
		{
			name:  "an unreadable created_time becomes null and the event has no time",
			media: `{"id":"1","created_time":"yesterday"}`,
			check: func(t *testing.T, d *schema.MediaData, e *schema.Event) {
				if !d.CreatedAt.IsZero() || !e.Time.IsZero() || !strings.Contains(string(e.AppendJSON(nil)), `"created_at":null`) {
					t.Fatalf("created_at %v", d.CreatedAt)
				}
			},
		},
		{
			name:  "306 and 320 wide low_resolution renditions are kept as sent",
			media: `{"id":"1","images":{"low_resolution":{"url":"a","width":306,"height":306},"thumbnail":{"url":"b","width":"150","height":150.0}}}`,
			check: func(t *testing.T, d *schema.MediaData, e *schema.Event) {
				want := schema.Renditions{LowResolution: schema.Rendition{URL: "a", Width: 306, Height: 306}, Thumbnail: schema.Rendition{URL: "b", Width: 150, Height: 150}}
				if d.Images != want {
					t.Fatalf("images %+v", d.Images)
				}
			},
		},
		{
			name:  "likes and comments without data keep their counts",
			media: `{"id":"1","likes":{"count":7},"comments":{"count":3}}`,
			check: func(t *testing.T, d *schema.MediaData, e *schema.Event) {
				if d.Likes != 7 || d.Comments != 3 {
					t.Fatalf("likes %d comments %d", d.Likes, d.Comments)
				}
			},
		},
		{
			name:  "2011 like_count and a comments list are counted",
			media: `{"id":"1","like_count":52,"comments":[{"id":1},{"id":2}]}`,
			check: func(t *testing.T, d *schema.MediaData, e *schema.Event) {
				if d.Likes != 52 || d.Comments != 2 {
					t.Fatalf("likes %d comments %d", d.Likes, d.Comments)
				}
			},
		},
		{
			name:  "a location with a numeric id keeps its exact text",
			media: `{"id":"1","location":{"id":213385402,"name":"Zoetrope","latitude":37.796543,"longitude":-122.405162}}`,
			check: func(t *testing.T, d *schema.MediaData, e *schema.Event) {
				want := &schema.Location{ID: "213385402", Name: "Zoetrope", Latitude: ptr(37.796543), Longitude: ptr(-122.405162)}
				if !reflect.DeepEqual(d.Location, want) {
					t.Fatalf("location %+v", d.Location)
				}
			},
		},
		{
			name:  "a location with null id, name and coordinates normalizes to empty values",
			media: `{"id":"1","location":{"id":null,"name":null,"latitude":null,"longitude":null}}`,
			check: func(t *testing.T, d *schema.MediaData, e *schema.Event) {
				if !reflect.DeepEqual(d.Location, &schema.Location{}) {
					t.Fatalf("location %+v", d.Location)
				}
				if !strings.Contains(string(e.AppendJSON(nil)), `"location":{"id":"","name":"","latitude":null,"longitude":null}`) {
					t.Fatalf("encoded %s", e.AppendJSON(nil))
				}
			},
		},
		{
			name:  "a null location and an absent location are both null",
			media: `{"id":"1","location":null}`,
			check: func(t *testing.T, d *schema.MediaData, e *schema.Event) {
				_, absent := normalizeOne(t, `{"id":"1"}`)
				if d.Location != nil || absent.Data.Location != nil {
					t.Fatalf("locations %+v %+v", d.Location, absent.Data.Location)
				}
			},
		},
		{
			name:  "a null caption, an absent caption and a caption without text are all empty",
			media: `{"id":"1","caption":null}`,
			check: func(t *testing.T, d *schema.MediaData, e *schema.Event) {
				m1, absent := normalizeOne(t, `{"id":"1"}`)
				m2, noText := normalizeOne(t, `{"id":"1","caption":{"id":"9"}}`)
				if d.Caption != "" || absent.Data.Caption != "" || noText.Data.Caption != "" {
					t.Fatal("caption not empty")
				}
				if m1.HasCaption || !m2.HasCaption {
					t.Fatalf("HasCaption %v %v", m1.HasCaption, m2.HasCaption)
				}
			},
		},
		{
			name:  "a 2011 caption message is read as the caption text",
			media: `{"id":"1","caption":{"message":"hello","id":20757161}}`,
			check: func(t *testing.T, d *schema.MediaData, e *schema.Event) {
				if d.Caption != "hello" {
					t.Fatalf("caption %q", d.Caption)
				}
			},
		},
		{
			name:  "null tags, users_in_photo and likes normalize to empty values",
			media: `{"id":"1","tags":null,"users_in_photo":null,"likes":null,"comments":null,"filter":null,"user":null,"images":null}`,
			check: func(t *testing.T, d *schema.MediaData, e *schema.Event) {
				if len(d.Tags) != 0 || len(d.UsersInPhoto) != 0 || d.Likes != 0 || d.Filter != "" || d.User != (schema.User{}) || !d.Images.IsZero() {
					t.Fatalf("data %+v", d)
				}
				if !strings.Contains(string(e.AppendJSON(nil)), `"tags":[]`) {
					t.Fatalf("encoded %s", e.AppendJSON(nil))
				}
			},
		},
		{
			name:  "the 2011 integer type 1 is an image",
			media: `{"id":"1","type":1}`,
			check: func(t *testing.T, d *schema.MediaData, e *schema.Event) {
				if d.Type != schema.TypeImage {
					t.Fatalf("type %q", d.Type)
				}
			},
		},
		{
			name:  "a media without a type but with videos is a video",
			media: `{"id":"1","videos":{"standard_resolution":{"url":"v.mp4","width":640,"height":640}}}`,
			check: func(t *testing.T, d *schema.MediaData, e *schema.Event) {
				if d.Type != schema.TypeVideo || d.Videos.StandardResolution.URL != "v.mp4" {
					t.Fatalf("type %q videos %+v", d.Type, d.Videos)
				}
			},
		},
		{
			name: "a carousel keeps its items, their renditions and tagged users",
			media: `{"id":"1","type":"carousel","carousel_media":[` +
				`{"type":"image","images":{"thumbnail":{"url":"t1","width":150,"height":150}},"users_in_photo":[{"position":{"x":0.5,"y":0.25},"user":{"username":"u","id":"7"}}]},` +
				`{"videos":{"low_bandwidth":{"url":"lb","width":480,"height":480}}}]}`,
			check: func(t *testing.T, d *schema.MediaData, e *schema.Event) {
				want := []schema.CarouselItem{
					{Type: "image", Images: schema.Renditions{Thumbnail: schema.Rendition{URL: "t1", Width: 150, Height: 150}},
						UsersInPhoto: []schema.UserInPhoto{{User: schema.User{ID: "7", Username: "u"}, X: 0.5, Y: 0.25}}},
					{Type: "video", Videos: schema.Renditions{LowBandwidth: schema.Rendition{URL: "lb", Width: 480, Height: 480}}},
				}
				if d.Type != schema.TypeCarousel || !reflect.DeepEqual(d.Carousel, want) {
					t.Fatalf("carousel %+v", d.Carousel)
				}
			},
		},
		{
			name:  "users in photo keep position and user",
			media: `{"id":"1","users_in_photo":[{"position":{"x":0.1,"y":0.9},"user":{"username":"a","full_name":"A B","id":"5","profile_picture":"p"}}]}`,
			check: func(t *testing.T, d *schema.MediaData, e *schema.Event) {
				want := []schema.UserInPhoto{{User: schema.User{ID: "5", Username: "a", FullName: "A B", ProfilePicture: "p"}, X: 0.1, Y: 0.9}}
				if !reflect.DeepEqual(d.UsersInPhoto, want) {
					t.Fatalf("users in photo %+v", d.UsersInPhoto)
				}
			},
		},
		{
			name:  "unknown members and odd types of optional fields are ignored",
			media: `{"id":"1","attribution":{"x":[1,2,{"y":null}]},"images":{"thumbnail":[1],"weird":{"url":"x"}},"tags":[1,"b",null,{}],"user_has_liked":"yes"}`,
			check: func(t *testing.T, d *schema.MediaData, e *schema.Event) {
				if !d.Images.IsZero() || !reflect.DeepEqual(d.Tags, []string{"1", "b"}) {
					t.Fatalf("images %+v tags %q", d.Images, d.Tags)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ev := normalizeOne(t, tt.media)
			tt.check(t, ev.Data, ev)
		})
	}
}

func TestCaptionsSurviveByteForByte(t *testing.T) {
	tests := []struct {
		name    string
		escaped string // as it appears in the JSON body
		want    string
	}{
		{name: "ASCII punctuation, quotes and backslashes", escaped: `say \"hi\" \\ o/ \/`, want: `say "hi" \ o/ /`},
		{name: "HTML markup is not escaped on the way out", escaped: `<b>bold</b> & <script>`, want: `<b>bold</b> & <script>`},
		{name: "newlines, tabs and every C0 control character", escaped: `a\nb\r\tc\u0000\u0001\u001f\b\f`, want: "a\nb\r\tc\x00\x01\x1f\b\f"},
		{name: "U+2028 and U+2029, raw and escaped", escaped: "x\u2028y\\u2029z", want: "x\u2028y\u2029z"},
		{name: "emoji raw and as an escaped surrogate pair", escaped: `😀 \ud83d\ude00 👩‍👩‍👧`, want: "😀 😀 👩‍👩‍👧"},
		{name: "non-Latin scripts and combining marks", escaped: `komutanım candır 素敵な時間！ é e\u0301 مرحبا`, want: "komutanım candır 素敵な時間！ é e\u0301 مرحبا"},
		{name: "DEL and C1 characters", escaped: "\x7f\u0085\u009f", want: "\x7f\u0085\u009f"},
		{name: "a lone surrogate becomes U+FFFD, as encoding/json does", escaped: `a\ud800b`, want: "a\ufffdb"},
		{name: "invalid UTF-8 bytes become U+FFFD, as encoding/json does", escaped: "a\xffb\xc3", want: "a\ufffdb\ufffd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := `{"id":"1","caption":{"text":"` + tt.escaped + `"}}`
			var std struct {
				Caption struct{ Text string } `json:"caption"`
			}
			if err := json.Unmarshal([]byte(body), &std); err != nil {
				t.Fatalf("the test input is not JSON: %v", err)
			}
			if std.Caption.Text != tt.want {
				t.Fatalf("encoding/json reads %q, the test wants %q", std.Caption.Text, tt.want)
			}
			m, ev := normalizeOne(t, body)
			if m.Caption != tt.want || ev.Data.Caption != tt.want {
				t.Fatalf("decoded caption %q, want %q", m.Caption, tt.want)
			}
			enc := ev.AppendJSON(nil)
			var out struct {
				Data struct {
					Caption string `json:"caption"`
				} `json:"data"`
			}
			if err := json.Unmarshal(enc, &out); err != nil {
				t.Fatal(err)
			}
			if out.Data.Caption != tt.want {
				t.Fatalf("encoding/json reads the event's caption as %q, want %q", out.Data.Caption, tt.want)
			}
			back, err := schema.UnmarshalEvent(enc)
			if err != nil || back.Data.Caption != tt.want {
				t.Fatalf("UnmarshalEvent caption %q (%v), want %q", back.Data.Caption, err, tt.want)
			}
			if strings.ContainsAny(string(enc), "\n\r\u2028\u2029") {
				t.Fatalf("the encoded event is not one safe line: %q", enc)
			}
		})
	}
}

func TestNormalizeRefusesMediaWithoutID(t *testing.T) {
	tests := []struct {
		name  string
		media string
	}{
		{name: "an absent id", media: `{"type":"image","link":"x"}`},
		{name: "a null id", media: `{"id":null}`},
		{name: "an empty id", media: `{"id":""}`},
		{name: "a blank id", media: `{"id":"  "}`},
		{name: "an object id", media: `{"id":{"n":1}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := schema.DecodeMedia([]byte(tt.media))
			if err != nil {
				t.Fatalf("DecodeMedia: %v", err)
			}
			ev, err := schema.Normalize(m, schema.Sighting{Tag: "t", Cursor: "c"})
			if ev != nil || !errors.Is(err, schema.ErrNoMediaID) {
				t.Fatalf("got %v, %v; want ErrNoMediaID", ev, err)
			}
			if !strings.Contains(err.Error(), "no id") || !strings.Contains(err.Error(), `"t"`) {
				t.Fatalf("error %q does not say the id is missing and for which tag", err)
			}
		})
	}
	if _, err := schema.Normalize(nil, schema.Sighting{}); !errors.Is(err, schema.ErrNoMediaID) {
		t.Fatalf("Normalize(nil) = %v", err)
	}
}

func TestNormalizeFillsTheEnvelope(t *testing.T) {
	m, err := schema.DecodeMedia([]byte(`{"id":"42_7","created_time":"1443557136","caption":{"text":"x"}}`))
	if err != nil {
		t.Fatal(err)
	}
	local := time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("X", 3600))
	tests := []struct {
		name       string
		sighting   schema.Sighting
		wantSource string
		wantRaw    bool
	}{
		{name: "an empty source means the default and raw is off", sighting: schema.Sighting{Tag: "a", Cursor: "c", FetchedAt: local}, wantSource: schema.DefaultSource},
		{name: "a given source is kept and raw is attached on request", sighting: schema.Sighting{Tag: "a", Source: "/poller/eu-1", FetchedAt: local, AttachRaw: true}, wantSource: "/poller/eu-1", wantRaw: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := schema.Normalize(m, tt.sighting)
			if err != nil {
				t.Fatal(err)
			}
			if ev.SpecVersion != "1.0" || ev.Type != schema.MediaEventType || ev.Subject != "a" || ev.Source != tt.wantSource ||
				ev.DataContentType != "application/json" || ev.ID != schema.EventID("a", "42_7") || ev.Gap != nil {
				t.Fatalf("envelope %+v", ev)
			}
			if ev.Data.Tag != "a" || ev.Data.Cursor != tt.sighting.Cursor || !ev.Data.FetchedAt.Equal(local) || ev.Data.FetchedAt.Location() != time.UTC {
				t.Fatalf("data %+v", ev.Data)
			}
			if (len(ev.Data.Raw) > 0) != tt.wantRaw {
				t.Fatalf("raw attached = %v, want %v", len(ev.Data.Raw) > 0, tt.wantRaw)
			}
			enc := validateEvent(t, ev.AppendJSON(nil))
			if tt.wantRaw && string(enc.Data.Raw) != string(m.Raw) {
				t.Fatalf("raw %s, want %s", enc.Data.Raw, m.Raw)
			}
			var data map[string]any
			if err := json.Unmarshal(ev.DataJSON(), &data); err != nil || data["media_id"] != "42_7" {
				t.Fatalf("DataJSON gives %v (%v)", data, err)
			}
			mj, _ := ev.MarshalJSON()
			if string(mj) != string(ev.AppendJSON(nil)) {
				t.Fatal("MarshalJSON and AppendJSON differ")
			}
		})
	}
}

func TestEventIDIsDeterministicAndDistinct(t *testing.T) {
	tests := []struct {
		name       string
		a, b       [2]string
		wantEquals bool
	}{
		{name: "the same tag and media give the same id", a: [2]string{"ts", "1_2"}, b: [2]string{"ts", "1_2"}, wantEquals: true},
		{name: "another tag gives another id", a: [2]string{"ts", "1_2"}, b: [2]string{"bjk", "1_2"}},
		{name: "another media gives another id", a: [2]string{"ts", "1_2"}, b: [2]string{"ts", "1_3"}},
		{name: "the separator keeps tag and id apart", a: [2]string{"ab", "c"}, b: [2]string{"a", "bc"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := schema.EventID(tt.a[0], tt.a[1]), schema.EventID(tt.b[0], tt.b[1])
			if (a == b) != tt.wantEquals {
				t.Fatalf("EventID%v = %s, EventID%v = %s", tt.a, a, tt.b, b)
			}
			if len(a) != 36 || a[14] != '5' {
				t.Fatalf("%s is not a UUIDv5", a)
			}
		})
	}
}

func TestGapEvents(t *testing.T) {
	detected := time.Date(2026, 11, 30, 5, 0, 0, 0, time.UTC)
	tests := []struct {
		name        string
		gap         schema.Gap
		wantMissing string
	}{
		{name: "a gap with a known count", gap: schema.Gap{FromCursor: "100", ToCursor: "50", Missing: 12, Reason: "backlog expired", DetectedAt: detected}, wantMissing: `"missing":12`},
		{name: "a gap with an unknown count has a null count", gap: schema.Gap{FromCursor: "AQx", ToCursor: "AQy", Missing: -1, Reason: "cursor rejected", DetectedAt: detected}, wantMissing: `"missing":null`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := schema.NewGap("ts", "", tt.gap)
			if ev.Type != schema.GapEventType || ev.Data != nil || ev.Gap == nil || ev.Source != schema.DefaultSource || !ev.Time.Equal(detected) {
				t.Fatalf("event %+v", ev)
			}
			if again := schema.NewGap("ts", "", tt.gap); again.ID != ev.ID {
				t.Fatal("gap ids are not deterministic")
			}
			if ev.ID == schema.EventID("ts", tt.gap.FromCursor) {
				t.Fatal("a gap id collides with a media id")
			}
			enc := ev.AppendJSON(nil)
			if !strings.Contains(string(enc), tt.wantMissing) {
				t.Fatalf("encoded %s, want %s", enc, tt.wantMissing)
			}
			back := validateEvent(t, enc)
			if *back.Gap != *ev.Gap {
				t.Fatalf("gap %+v, want %+v", back.Gap, ev.Gap)
			}
		})
	}
}

func TestUnmarshalEventRejectsBadInput(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want error
	}{
		{name: "not JSON", in: `{"specversion":`, want: schema.ErrMalformed},
		{name: "no data", in: `{"specversion":"1.0","type":"io.tagstream.media.v1"}`, want: schema.ErrMalformed},
		{name: "an unknown type", in: `{"specversion":"1.0","type":"com.example","data":{}}`, want: schema.ErrUnknownEventType},
		{name: "data of the wrong shape", in: `{"specversion":"1.0","type":"io.tagstream.media.v1","data":{"likes":"many"}}`, want: schema.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := schema.UnmarshalEvent([]byte(tt.in)); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}
