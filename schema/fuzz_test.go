package schema_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/tagstream/tagstream/schema"
)

// seedBodies adds every recorded fixture and a few hand-made edge bodies to a
// fuzz corpus.
func seedBodies(f *testing.F, add func(status int, ct string, body []byte)) {
	f.Helper()
	for _, fx := range mediaFixtures {
		x := loadFixture(f, fx.file)
		add(x.status, x.contentType, x.body)
	}
	for _, name := range []string{
		"elixtagram__error_429_OAuthRateLimitException_no_meta__2017-04.cassette.json",
		"elixtagram__error_400_OAuthAccessTokenException__2015-09.cassette.json",
		"elogram__error_403_OAuthForbiddenException_signed_request.json",
		"elixtagram__tags_search__2015-09.cassette.json",
		"elixtagram__user_follows_cursor_page__2015-11.cassette.json",
	} {
		x := loadFixture(f, name)
		add(x.status, x.contentType, x.body)
	}
	add(503, "text/html", []byte(htmlUnavailable))
	add(200, "application/json", []byte(`{"data":[{"id":1e400,"created_time":"-99999999999999","location":{"latitude":"NaN","longitude":1e999},"caption":{"text":"\ud800\u2028<&>"}}]}`))
	add(200, "application/json", []byte(`{"meta":{"code":200},"data":[{"id":"1","carousel_media":[{"videos":{"low_bandwidth":"x"}},null,{}]}],"pagination":{"next_url":"https://x/?access_token=SECRET"}}`))
}

// forbidLeak fails when an error about a body repeats a long run of that body
// (a next_url holds an access token). The content type, which NonJSONError
// names on purpose, is left out of the comparison.
func forbidLeak(t *testing.T, body []byte, ct string, err error) {
	t.Helper()
	msg := err.Error()
	if ct != "" {
		msg = strings.ReplaceAll(msg, ct, "")
	}
	const window = 24
	for i := 0; i+window <= len(msg); i++ {
		if bytes.Contains(body, []byte(msg[i:i+window])) {
			t.Fatalf("error %q repeats body content %q", msg, msg[i:i+window])
		}
	}
}

func FuzzDecodePage(f *testing.F) {
	seedBodies(f, func(status int, ct string, body []byte) { f.Add(status, ct, body) })
	f.Fuzz(func(t *testing.T, status int, ct string, body []byte) {
		page, err := schema.DecodePage(status, ct, body)
		if (page == nil) == (err == nil) {
			t.Fatalf("got page %v and error %v; want exactly one", page, err)
		}
		if err != nil {
			var apiErr *schema.APIError
			var nj *schema.NonJSONError
			isAPI, isNJ, isMal := errors.As(err, &apiErr), errors.As(err, &nj), errors.Is(err, schema.ErrMalformed)
			if n := btoi(isAPI) + btoi(isNJ) + btoi(isMal); n != 1 {
				t.Fatalf("error %v has %d classifications (api %v, non-JSON %v, malformed %v)", err, n, isAPI, isNJ, isMal)
			}
			if !isAPI {
				forbidLeak(t, body, ct, err)
			}
			if trimmed := bytes.TrimLeft(body, " \t\r\n"); len(trimmed) > 0 && trimmed[0] == '{' && !json.Valid(body) && !isMal {
				t.Fatalf("invalid JSON body was not reported as malformed: %v", err)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("accepted a body encoding/json rejects")
		}
		for i := range page.Media {
			m := &page.Media[i]
			if !json.Valid(m.Raw) {
				t.Fatalf("media %d raw is not JSON: %q", i, m.Raw)
			}
			ev, err := schema.Normalize(m, schema.Sighting{Tag: "fuzz", Cursor: page.Pagination.MinTagID, FetchedAt: fetchedAt, AttachRaw: i%2 == 0})
			if err != nil {
				if !errors.Is(err, schema.ErrNoMediaID) || strings.TrimSpace(m.ID) != "" {
					t.Fatalf("Normalize media %d with id %q: %v", i, m.ID, err)
				}
				continue
			}
			checkEncoding(t, ev, i == 0)
		}
	})
}

func FuzzNormalize(f *testing.F) {
	seedBodies(f, func(_ int, _ string, body []byte) {
		page, err := schema.DecodePage(200, "application/json", body)
		if err != nil {
			return
		}
		for i := range page.Media {
			f.Add([]byte(page.Media[i].Raw), "tag", "cursor", i%2 == 0)
		}
	})
	f.Add([]byte(`{"id":"1","caption":{"text":"\u0000\u001f\u2028\u2029😀<>&\"\\"}}`), "tag\x00with nul", "\xff", true)
	f.Add([]byte(`{"id":12345678901234567890123,"type":2,"created_time":"2011-01-20T12:04:54+0000","like_count":"9","comments":[1,2,3]}`), "", "", false)
	f.Fuzz(func(t *testing.T, raw []byte, tag, cursor string, attachRaw bool) {
		m, err := schema.DecodeMedia(raw)
		if err != nil {
			if !errors.Is(err, schema.ErrMalformed) {
				t.Fatalf("DecodeMedia error %v does not wrap ErrMalformed", err)
			}
			return
		}
		ev, err := schema.Normalize(m, schema.Sighting{Tag: tag, Cursor: cursor, FetchedAt: fetchedAt, AttachRaw: attachRaw})
		if err != nil {
			if !errors.Is(err, schema.ErrNoMediaID) || strings.TrimSpace(m.ID) != "" {
				t.Fatalf("Normalize media with id %q: %v", m.ID, err)
			}
			return
		}
		if ev.ID != schema.EventID(tag, ev.Data.MediaID) {
			t.Fatal("event id is not EventID(tag, media id)")
		}
		checkEncoding(t, ev, true)
	})
}

// checkEncoding validates an event against the JSON Schema (when
// withSchema; it is the slow part), checks that its strings survive a round
// trip through encoding/json, and that UnmarshalEvent and AppendJSON agree.
func checkEncoding(t *testing.T, ev *schema.Event, withSchema bool) {
	t.Helper()
	enc := ev.AppendJSON(nil)
	if !json.Valid(enc) || bytes.ContainsAny(enc, "\n\r") {
		t.Fatalf("AppendJSON wrote invalid or multi-line JSON: %q", enc)
	}
	if withSchema {
		eventSchemaValidate(t, enc)
	}
	var std struct {
		Subject string `json:"subject"`
		Data    struct {
			MediaID string    `json:"media_id"`
			Caption string    `json:"caption"`
			Cursor  string    `json:"cursor"`
			Created time.Time `json:"created_at"`
		} `json:"data"`
	}
	if err := json.Unmarshal(enc, &std); err != nil {
		t.Fatalf("encoding/json cannot read the event: %v", err)
	}
	if std.Data.MediaID != ev.Data.MediaID || std.Data.Caption != ev.Data.Caption || !std.Data.Created.Equal(ev.Data.CreatedAt) {
		t.Fatalf("encoding/json reads media id %q caption %q created %v; want %q %q %v",
			std.Data.MediaID, std.Data.Caption, std.Data.Created, ev.Data.MediaID, ev.Data.Caption, ev.Data.CreatedAt)
	}
	if utf8Clean(ev) && (std.Subject != ev.Subject || std.Data.Cursor != ev.Data.Cursor) {
		t.Fatalf("subject/cursor %q/%q read back as %q/%q", ev.Subject, ev.Data.Cursor, std.Subject, std.Data.Cursor)
	}
	back, err := schema.UnmarshalEvent(enc)
	if err != nil {
		t.Fatalf("UnmarshalEvent: %v", err)
	}
	again := back.AppendJSON(nil)
	if utf8Clean(ev) && !bytes.Equal(again, enc) {
		t.Fatalf("UnmarshalEvent + AppendJSON changed the event:\n got %s\nwant %s", again, enc)
	}
	if back2, err := schema.UnmarshalEvent(again); err != nil || !bytes.Equal(back2.AppendJSON(nil), again) {
		t.Fatalf("the encoding is not a fixed point: %v", err)
	}
}

// utf8Clean reports whether the sighting's strings were valid UTF-8 (the
// decoder always produces valid UTF-8; a caller's tag may not be).
func utf8Clean(ev *schema.Event) bool {
	return strings.ToValidUTF8(ev.Subject, "\ufffd") == ev.Subject && strings.ToValidUTF8(ev.Data.Cursor, "\ufffd") == ev.Data.Cursor
}

func eventSchemaValidate(t *testing.T, enc []byte) {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(enc))
	if err != nil {
		t.Fatalf("event is not JSON: %v", err)
	}
	if err := eventSchema(t).Validate(inst); err != nil {
		t.Fatalf("event does not match the JSON Schema: %v\n%s", err, enc)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
