package schema_test

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/tagstream/tagstream/internal/testkit"
	"github.com/tagstream/tagstream/schema"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// fixtureDir holds the recorded v1 traffic shared by the project.
const fixtureDir = "../testdata/instagram-v1"

// fetchedAt is the fixed fetch time of every golden event.
var fetchedAt = time.Date(2026, 11, 30, 4, 0, 0, 123456789, time.UTC)

// fixture is one recorded answer: the body as sent, with its status and
// content type where the recording has them.
type fixture struct {
	status      int
	contentType string
	body        []byte
}

// loadFixture reads a fixture file: an ExVCR cassette (a JSON array of
// {request, response} whose response.body is the body as a JSON string) or a
// plain body.
func loadFixture(t testing.TB, name string) fixture {
	t.Helper()
	path := filepath.Join(fixtureDir, name)
	if strings.HasSuffix(name, ".cassette.json") {
		r := testkit.Cassette(t, path)[0]
		return fixture{status: r.Status, contentType: r.Headers["Content-Type"], body: []byte(r.Body)}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	return fixture{status: 200, contentType: "application/json", body: b}
}

// mediaFixtures are the recordings that carry media objects, each with the
// tag the golden events are filed under.
// noID lists the media that have no id (the docs example's second media has
// every member nested inside "videos" by a missing brace): Normalize must
// refuse them with ErrNoMediaID.
var mediaFixtures = []struct {
	file string
	tag  string
	noID []int
}{
	{"elixtagram__tags_ts_media_recent__2015-09-29T2006.cassette.json", "ts", nil},
	{"elixtagram__tags_ts_media_recent__2015-09-29T2008.cassette.json", "ts", nil},
	{"elixtagram__location_recent_media__2015-09.cassette.json", "location", nil},
	{"elixtagram__media_by_id__2015-09.cassette.json", "media", nil},
	{"elixtagram__media_search__2015-10.cassette.json", "search", nil},
	{"elixtagram__media_shortcode__2015-09.cassette.json", "shortcode", nil},
	{"elixtagram__user_recent_media__2015-10.cassette.json", "user", nil},
	{"elixtagram__user_self_recent_media_last_page__2016-07.cassette.json", "self", nil},
	{"elogram__media_by_id__docs_example.json", "docs", nil},
	{"elogram__tags_snowy_media_recent__docs_example.json", "snowy", []int{1}},
	{"instagram-ruby-gem__media_by_id__2011.json", "media", nil},
	{"instagram-ruby-gem__tag_recent_media__2010.json", "cat", nil},
	{"instagram-ruby-gem__user_recent_media.json", "user", nil},
	{"jinstagram__media_carousel_images__2017.json", "carousel", nil},
	{"python-instagram__media_by_id__2010.json", "media", nil},
	{"python-instagram__tag_recent_media__2010.json", "tag", nil},
	{"python-instagram__user_recent_media__2010.json", "user", nil},
}

var (
	compileOnce sync.Once
	compiled    *jsonschema.Schema
	compileErr  error
)

// eventSchema compiles the embedded JSON Schema once, with format assertions on.
func eventSchema(t testing.TB) *jsonschema.Schema {
	t.Helper()
	compileOnce.Do(func() {
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema.JSONSchema()))
		if err != nil {
			compileErr = err
			return
		}
		c := jsonschema.NewCompiler()
		c.AssertFormat()
		if err := c.AddResource(schema.JSONSchemaID, doc); err != nil {
			compileErr = err
			return
		}
		compiled, compileErr = c.Compile(schema.JSONSchemaID)
	})
	if compileErr != nil {
		t.Fatalf("compile the event JSON Schema: %v", compileErr)
	}
	return compiled
}

// validateEvent checks one encoded event against the JSON Schema and checks
// that UnmarshalEvent reads it back to an event that encodes identically.
func validateEvent(t testing.TB, encoded []byte) *schema.Event {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(encoded))
	if err != nil {
		t.Fatalf("event is not JSON: %v\n%s", err, encoded)
	}
	if err := eventSchema(t).Validate(inst); err != nil {
		t.Fatalf("event does not match the JSON Schema: %v\n%s", err, encoded)
	}
	back, err := schema.UnmarshalEvent(encoded)
	if err != nil {
		t.Fatalf("UnmarshalEvent: %v\n%s", err, encoded)
	}
	if again := back.AppendJSON(nil); !bytes.Equal(again, encoded) {
		t.Fatalf("event does not survive UnmarshalEvent + AppendJSON:\n got %s\nwant %s", again, encoded)
	}
	return back
}

// pageCursor is the cursor golden events are filed at: the page's newest
// cursor, as the poller records it.
func pageCursor(p *schema.Page) string {
	if p.Pagination.MinTagID != "" {
		return p.Pagination.MinTagID
	}
	return p.Pagination.NextMaxID
}

func TestGoldenEventsForEveryMediaFixture(t *testing.T) {
	for _, fx := range mediaFixtures {
		t.Run(strings.TrimSuffix(strings.TrimSuffix(fx.file, ".json"), ".cassette"), func(t *testing.T) {
			f := loadFixture(t, fx.file)
			page, err := schema.DecodePage(f.status, f.contentType, f.body)
			if err != nil {
				t.Fatalf("DecodePage: %v", err)
			}
			if len(page.Media) == 0 {
				t.Fatal("the fixture decoded to no media")
			}
			var out bytes.Buffer
			for i := range page.Media {
				ev, err := schema.Normalize(&page.Media[i], schema.Sighting{
					Tag:       fx.tag,
					Cursor:    pageCursor(page),
					FetchedAt: fetchedAt,
					AttachRaw: i == 0, // the first event of each file shows the raw attachment
				})
				if slices.Contains(fx.noID, i) {
					if !errors.Is(err, schema.ErrNoMediaID) || ev != nil {
						t.Fatalf("Normalize media %d (no id) = %v, %v; want ErrNoMediaID", i, ev, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("Normalize media %d: %v", i, err)
				}
				enc := ev.AppendJSON(nil)
				validateEvent(t, enc)
				out.Write(enc)
				out.WriteByte('\n')
			}
			golden := filepath.Join("testdata", strings.TrimSuffix(strings.TrimSuffix(fx.file, ".json"), ".cassette")+".golden.ndjson")
			if *update {
				if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("read golden file (run go test ./schema -update to create it): %v", err)
			}
			if !bytes.Equal(out.Bytes(), want) {
				gotLines, wantLines := strings.Split(out.String(), "\n"), strings.Split(string(want), "\n")
				for i := range min(len(gotLines), len(wantLines)) {
					if gotLines[i] != wantLines[i] {
						t.Fatalf("event %d differs from %s:\n got %s\nwant %s", i, golden, gotLines[i], wantLines[i])
					}
				}
				t.Fatalf("output has %d lines, %s has %d", len(gotLines), golden, len(wantLines))
			}
		})
	}
}

func TestDecodePageClassifiesEveryErrorFixture(t *testing.T) {
	tests := []struct {
		name      string
		file      string
		status    int // used when the recording has none
		wantType  string
		wantCode  int
		wantFlat  bool
		rateLimit bool
		tokenBad  bool
	}{
		{name: "a flat 429 body from 2017 is a rate-limit APIError", file: "elixtagram__error_429_OAuthRateLimitException_no_meta__2017-04.cassette.json",
			wantType: "OAuthRateLimitException", wantCode: 429, wantFlat: true, rateLimit: true},
		{name: "a meta-wrapped 400 OAuthAccessTokenException says the token is invalid", file: "elixtagram__error_400_OAuthAccessTokenException__2015-09.cassette.json",
			wantType: "OAuthAccessTokenException", wantCode: 400, tokenBad: true},
		{name: "a meta-wrapped 400 OAuthPermissionsException is neither rate limit nor bad token", file: "elixtagram__error_400_OAuthPermissionsException__2015-10.cassette.json",
			wantType: "OAuthPermissionsException", wantCode: 400},
		{name: "a 2010 meta-wrapped 400 keeps its free-text error type", file: "python-instagram__error_400_no_authenticated_user.json", status: 400,
			wantType: "no authenticated user", wantCode: 400},
		{name: "a flat 400 OAuthException is flat", file: "elogram__error_400_OAuthException_redirect_uri.json", status: 400,
			wantType: "OAuthException", wantCode: 400, wantFlat: true},
		{name: "a flat 403 OAuthForbiddenException is flat", file: "elogram__error_403_OAuthForbiddenException_signed_request.json", status: 403,
			wantType: "OAuthForbiddenException", wantCode: 403, wantFlat: true},
		{name: "a flat 400 body served with HTTP 200 is still an error", file: "elogram__error_400_OAuthException_redirect_uri.json", status: 200,
			wantType: "OAuthException", wantCode: 400, wantFlat: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := loadFixture(t, tt.file)
			status := f.status
			if !strings.HasSuffix(tt.file, ".cassette.json") {
				status = tt.status
			}
			page, err := schema.DecodePage(status, f.contentType, f.body)
			if page != nil {
				t.Fatalf("got a page for an error body")
			}
			var apiErr *schema.APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("got %T %v, want *schema.APIError", err, err)
			}
			if apiErr.Type != tt.wantType || apiErr.Code != tt.wantCode || apiErr.Flat != tt.wantFlat || apiErr.HTTPStatus != status {
				t.Fatalf("got %+v, want type %q code %d flat %v status %d", apiErr, tt.wantType, tt.wantCode, tt.wantFlat, status)
			}
			if apiErr.Message == "" {
				t.Fatal("the server's error message was lost")
			}
			if apiErr.RateLimited() != tt.rateLimit || errors.Is(err, schema.ErrRateLimited) != tt.rateLimit {
				t.Fatalf("RateLimited() = %v, want %v", apiErr.RateLimited(), tt.rateLimit)
			}
			if apiErr.TokenInvalid() != tt.tokenBad || errors.Is(err, schema.ErrTokenInvalid) != tt.tokenBad {
				t.Fatalf("TokenInvalid() = %v, want %v", apiErr.TokenInvalid(), tt.tokenBad)
			}
			for _, part := range []string{tt.wantType, "code " + strconv.Itoa(tt.wantCode), apiErr.Message[:10]} {
				if !strings.Contains(err.Error(), part) {
					t.Fatalf("error %q does not name %q", err, part)
				}
			}
		})
	}
}

func TestDecodePageReadsPaginationOfEveryEra(t *testing.T) {
	tests := []struct {
		name string
		file string
		want schema.Pagination
	}{
		{name: "the 2015 tag page has the full block with string cursors", file: "elixtagram__tags_ts_media_recent__2015-09-29T2006.cassette.json",
			want: schema.Pagination{
				NextURL:            "https://api.instagram.com/v1/tags/ts/media/recent?access_token=00000000.0000000.00000000000000000000000000000000&count=10&max_tag_id=1084955995775571154",
				NextMaxTagID:       "1084955995775571154",
				NextMaxID:          "1084955995775571154",
				MinTagID:           "1084958352897296009",
				NextMinID:          "1084958352897296009",
				DeprecationWarning: "next_max_id and min_id are deprecated for this endpoint; use min_tag_id and max_tag_id instead",
			}},
		{name: "a 2010 numeric next_max_id becomes its decimal text", file: "instagram-ruby-gem__tag_recent_media__2010.json",
			want: schema.Pagination{NextURL: "http://api.instagram.com/v1/tags/cat/media/recent/?access_token=at&max_id=13289272", NextMaxID: "13289272"}},
		{name: "the 2011 next member is read as next_url", file: "instagram-ruby-gem__user_recent_media.json",
			want: schema.Pagination{NextURL: "http://api.instagram.com/v1/users/20/media/recent?access_token=at&max_id=17593417"}},
		{name: "an empty pagination object gives empty cursors", file: "elixtagram__user_self_recent_media_last_page__2016-07.cassette.json",
			want: schema.Pagination{}},
		{name: "a body without pagination gives empty cursors", file: "elogram__tags_snowy_media_recent__docs_example.json",
			want: schema.Pagination{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := loadFixture(t, tt.file)
			page, err := schema.DecodePage(f.status, f.contentType, f.body)
			if err != nil {
				t.Fatal(err)
			}
			if page.Pagination != tt.want {
				t.Fatalf("got  %+v\nwant %+v", page.Pagination, tt.want)
			}
		})
	}
}

func TestRecordedRepollKeepsIDsAndShiftsByOne(t *testing.T) {
	first := loadFixture(t, "elixtagram__tags_ts_media_recent__2015-09-29T2006.cassette.json")
	second := loadFixture(t, "elixtagram__tags_ts_media_recent__2015-09-29T2008.cassette.json")
	p1, err := schema.DecodePage(first.status, first.contentType, first.body)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := schema.DecodePage(second.status, second.contentType, second.body)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for i := range p1.Media {
		ev, err := schema.Normalize(&p1.Media[i], schema.Sighting{Tag: "ts", FetchedAt: fetchedAt})
		if err != nil {
			t.Fatal(err)
		}
		ids[p1.Media[i].ID] = ev.ID
	}
	seen := 0
	for i := range p2.Media {
		ev, err := schema.Normalize(&p2.Media[i], schema.Sighting{Tag: "ts", Cursor: "other", FetchedAt: fetchedAt.Add(2 * time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		if id, ok := ids[p2.Media[i].ID]; ok {
			seen++
			if id != ev.ID {
				t.Fatalf("media %s got event id %s on the re-poll, %s before", p2.Media[i].ID, ev.ID, id)
			}
		}
	}
	if seen != len(p1.Media)-1 {
		t.Fatalf("%d media repeat across the two recordings, want %d (one was deleted)", seen, len(p1.Media)-1)
	}
	if _, ok := ids["1084958344117344908_736363445"]; !ok {
		t.Fatal("the media deleted between the recordings is not on the first page")
	}
}
