package schema_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/tagstream/tagstream/schema"
)

// htmlUnavailable is the kind of page a load balancer serves with a 503.
const htmlUnavailable = `<!DOCTYPE html>
<html><head><title>503 Service Temporarily Unavailable</title></head>
<body><center><h1>503 Service Temporarily Unavailable</h1></center><hr><center>nginx</center></body></html>
`

func TestDecodePageClassifiesAnswers(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		contentType string
		body        string
		check       func(t *testing.T, p *schema.Page, err error)
	}{
		{
			name: "an HTML 503 from a load balancer is a NonJSONError carrying the status", status: 503, contentType: "text/html", body: htmlUnavailable,
			check: wantNonJSON(503, "text/html"),
		},
		{
			name: "an HTML 502 labelled as JSON is still a NonJSONError", status: 502, contentType: "application/json", body: htmlUnavailable,
			check: wantNonJSON(502, "application/json"),
		},
		{
			name: "an empty 504 is a NonJSONError", status: 504, body: "",
			check: wantNonJSON(504, ""),
		},
		{
			name: "an HTML 200 is a NonJSONError", status: 200, contentType: "text/html; charset=utf-8", body: htmlUnavailable,
			check: wantNonJSON(200, "text/html; charset=utf-8"),
		},
		{
			name: "a 200 JSON answer that is not JSON is malformed", status: 200, contentType: "application/json; charset=utf-8", body: "oops",
			check: wantMalformed("does not start with a JSON object"),
		},
		{
			name: "an empty 200 JSON answer is malformed", status: 200, contentType: "application/json", body: " \n",
			check: wantMalformed("empty body"),
		},
		{
			name: "a truncated body is malformed and says so", status: 200, contentType: "application/json", body: `{"meta":{"code":200},"data":[{"id":"1_2","caption":{"text":"abc`,
			check: wantMalformed("truncated"),
		},
		{
			name: "a body with an invalid token is malformed and names the offset", status: 200, body: `{"meta":{"code":200},"data":[{"id":"1"}}`,
			check: wantMalformed("offset 39"),
		},
		{
			name: "trailing data after the object is malformed", status: 200, body: `{"meta":{"code":200},"data":[]} {}`,
			check: wantMalformed("after the top-level object"),
		},
		{
			name: "a top-level array is malformed", status: 200, body: `[{"id":"1"}]`,
			check: wantMalformed("array"),
		},
		{
			name: "data that is a string is malformed", status: 200, body: `{"meta":{"code":200},"data":"nope"}`,
			check: wantMalformed("data is string"),
		},
		{
			name: "a media that is not an object is malformed and named by index", status: 200, body: `{"meta":{"code":200},"data":[{"id":"1"},7]}`,
			check: wantMalformed("data[1] is number"),
		},
		{
			name: "nesting deeper than the limit is malformed", status: 200, body: `{"data":[{"x":` + strings.Repeat("[", 1000) + strings.Repeat("]", 1000) + `}]}`,
			check: wantMalformed("nesting"),
		},
		{
			name: "a bad escape is malformed", status: 200, body: `{"data":[{"id":"\x"}]}`,
			check: wantMalformed("escape"),
		},
		{
			name: "a raw control character in a string is malformed", status: 200, body: "{\"data\":[{\"id\":\"a\nb\"}]}",
			check: wantMalformed("control character"),
		},
		{
			name: "a 200 whose meta.code is 400 is an APIError", status: 200, body: `{"meta":{"code":400,"error_type":"APINotFoundError","error_message":"this tag cannot be viewed"}}`,
			check: wantAPIError(schema.APIError{HTTPStatus: 200, Code: 400, Type: "APINotFoundError", Message: "this tag cannot be viewed"}),
		},
		{
			name: "a 500 with an empty JSON object is an unnamed APIError", status: 500, body: `{}`,
			check: wantAPIError(schema.APIError{HTTPStatus: 500, Code: 500, Flat: true}),
		},
		{
			name: "a 429 with a meta block is a rate-limit APIError", status: 429, body: `{"meta":{"code":429,"error_type":"OAuthRateLimitException","error_message":"slow down"}}`,
			check: wantAPIError(schema.APIError{HTTPStatus: 429, Code: 429, Type: "OAuthRateLimitException", Message: "slow down"}),
		},
		{
			name: "a 503 JSON error from the seed era is an APIError", status: 503, body: `{"meta":{"code":503,"error_type":"RateLimit","error_message":"limit"}}`,
			check: wantAPIError(schema.APIError{HTTPStatus: 503, Code: 503, Type: "RateLimit", Message: "limit"}),
		},
		{
			name: "data null is an empty page", status: 200, body: `{"meta":{"code":200},"data":null,"pagination":{}}`,
			check: func(t *testing.T, p *schema.Page, err error) {
				if err != nil || len(p.Media) != 0 || p.Meta.Code != 200 {
					t.Fatalf("got %+v, %v", p, err)
				}
			},
		},
		{
			name: "a single media object is a page of one", status: 200, body: "\n {\"meta\":{\"code\":200},\"data\":{\"id\":\"9\"}}\n",
			check: func(t *testing.T, p *schema.Page, err error) {
				if err != nil || len(p.Media) != 1 || p.Media[0].ID != "9" || string(p.Media[0].Raw) != `{"id":"9"}` {
					t.Fatalf("got %+v, %v", p, err)
				}
			},
		},
		{
			name: "numeric cursors above 2^64 keep their exact text", status: 200,
			body: `{"meta":{"code":200},"data":[],"pagination":{"next_max_tag_id":123456789012345678901234567890,"min_tag_id":9007199254740993,"next_max_id":1e3}}`,
			check: func(t *testing.T, p *schema.Page, err error) {
				want := schema.Pagination{NextMaxTagID: "123456789012345678901234567890", MinTagID: "9007199254740993", NextMaxID: "1e3"}
				if err != nil || p.Pagination != want {
					t.Fatalf("got %+v, %v", p, err)
				}
			},
		},
		{
			name: "a status of 0 means unknown and is read as 200", status: 0, body: `{"data":[{"id":"1"}]}`,
			check: func(t *testing.T, p *schema.Page, err error) {
				if err != nil || len(p.Media) != 1 || p.Meta.Code != 200 {
					t.Fatalf("got %+v, %v", p, err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := schema.DecodePage(tt.status, tt.contentType, []byte(tt.body))
			if (p == nil) == (err == nil) {
				t.Fatalf("DecodePage returned page %v and error %v; want exactly one", p, err)
			}
			tt.check(t, p, err)
		})
	}
}

func wantNonJSON(status int, contentType string) func(*testing.T, *schema.Page, error) {
	return func(t *testing.T, _ *schema.Page, err error) {
		t.Helper()
		var nj *schema.NonJSONError
		if !errors.As(err, &nj) || nj.HTTPStatus != status || nj.ContentType != contentType {
			t.Fatalf("got %T %v, want NonJSONError{%d, %q}", err, err, status, contentType)
		}
		if errors.Is(err, schema.ErrMalformed) {
			t.Fatal("a non-JSON answer also claims to be malformed JSON")
		}
	}
}

func wantMalformed(says string) func(*testing.T, *schema.Page, error) {
	return func(t *testing.T, _ *schema.Page, err error) {
		t.Helper()
		if !errors.Is(err, schema.ErrMalformed) || !strings.Contains(err.Error(), says) {
			t.Fatalf("got %v, want ErrMalformed saying %q", err, says)
		}
		var apiErr *schema.APIError
		var nj *schema.NonJSONError
		if errors.As(err, &apiErr) || errors.As(err, &nj) {
			t.Fatalf("a malformed body is also classified as %T", err)
		}
	}
}

func wantAPIError(want schema.APIError) func(*testing.T, *schema.Page, error) {
	return func(t *testing.T, _ *schema.Page, err error) {
		t.Helper()
		var apiErr *schema.APIError
		if !errors.As(err, &apiErr) || *apiErr != want {
			t.Fatalf("got %T %+v, want APIError %+v", err, err, want)
		}
	}
}

func TestTruncatedRecordedPagesAreMalformed(t *testing.T) {
	tests := []struct {
		name  string
		file  string
		token string // a dead token inside next_url that no error may repeat
		step  int    // every step-th prefix (1 = all of them)
	}{
		{name: "every prefix of the 2010 user page", file: "python-instagram__user_recent_media__2010.json", step: 1},
		{name: "every 13th prefix of the 2015 tag page, whose next_url holds a token", file: "elixtagram__tags_ts_media_recent__2015-09-29T2006.cassette.json",
			token: "00000000.0000000.00000000000000000000000000000000", step: 13},
	}
	// Decoding every prefix is quadratic in the page's length and single-threaded: the prefixes are checked in
	// parallel parts, the tail of the whole run otherwise waited for one core to go through them all.
	const parts = 4
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := loadFixture(t, tt.file)
			if !strings.Contains(string(f.body), tt.token) {
				t.Fatal("the fixture no longer holds the token this test looks for")
			}
			if _, err := schema.DecodePage(200, "application/json", f.body); err != nil {
				t.Fatalf("the whole body does not decode: %v", err)
			}
			body := strings.TrimRight(string(f.body), " \n")
			for part := range parts {
				t.Run(fmt.Sprintf("part %d of %d", part+1, parts), func(t *testing.T) {
					t.Parallel()
					// Part k checks the prefixes n = 1 + (k + parts*i)*step: together the parts check each one once.
					for n := 1 + part*tt.step; n < len(body); n += parts * tt.step {
						p, err := schema.DecodePage(200, "application/json", []byte(body[:n]))
						if p != nil || !errors.Is(err, schema.ErrMalformed) {
							t.Fatalf("prefix of %d bytes: got %v, %v; want ErrMalformed", n, p, err)
						}
						if tt.token != "" && strings.Contains(err.Error(), tt.token[:12]) {
							t.Fatalf("prefix of %d bytes: the error leaks the access token: %v", n, err)
						}
					}
				})
			}
		})
	}
}

func TestAPIErrorMessageIsBounded(t *testing.T) {
	long := strings.Repeat("x", 5000)
	_, err := schema.DecodePage(400, "application/json", []byte(`{"meta":{"code":400,"error_type":"E","error_message":"`+long+`"}}`))
	var apiErr *schema.APIError
	if !errors.As(err, &apiErr) || apiErr.Message != long {
		t.Fatalf("got %v", err)
	}
	if n := len(err.Error()); n > 400 {
		t.Fatalf("Error() is %d bytes long; want it bounded", n)
	}
}
