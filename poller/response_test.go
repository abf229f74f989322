package poller

import (
	"bufio"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"unsafe"
)

// simulatorAnswer is an empty page as the simulator answers it, header for header.
const simulatorAnswer = "HTTP/1.1 200 OK\r\n" +
	"Cache-Control: private, no-cache, no-store, must-revalidate\r\n" +
	"Content-Language: en\r\n" +
	"Content-Length: 47\r\n" +
	"Content-Type: application/json; charset=utf-8\r\n" +
	"Date: Tue, 01 Dec 2026 17:00:00 GMT\r\n" +
	"Expires: Sat, 01 Jan 2000 00:00:00 GMT\r\n" +
	"Pragma: no-cache\r\n" +
	"Vary: Cookie, Accept-Language, Accept-Encoding\r\n" +
	"X-Ratelimit-Limit: 5000\r\n" +
	"X-Ratelimit-Remaining: 4987\r\n" +
	"\r\n" +
	`{"meta":{"code":200},"data":[],"pagination":{}}`

// responseCases are answers whose reading readResponse and http.ReadResponse must agree on: the ones the API and
// the simulator send, every framing, and what either refuses.
var responseCases = map[string]string{
	"the simulator's empty page": simulatorAnswer,
	"a chunked body": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n" +
		"5\r\n{\"a\":\r\n3;ext=1\r\n1}\n\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n",
	"a chunked body with trailers": "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n" +
		"2\r\n{}\r\n0\r\nX-Trailer: 1\r\nX-Other: 2\r\n\r\nnext",
	"chunked and a Content-Length": "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"2\r\n{}\r\n0\r\n\r\n",
	"a chunked body cut short": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{\"a\":1",
	"a body cut short":         "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"data\":[",
	"a body up to the close":   "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html>down</html>",
	"Connection: close":        "HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 2\r\n\r\n{}",
	"HTTP/1.0":                 "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}",
	"HTTP/1.0 keep-alive":      "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\n{}",
	"HTTP/1.0 ignores chunked": "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n{}",
	"HTTP/1.0 ignores gzip":    "HTTP/1.0 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n{}",
	"HTTP/1.1 refuses gzip":    "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n{}",
	"two transfer encodings":   "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"an HTML 503 page":         "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: 23\r\n\r\n<html>Oops, down</html>",
	"a flat 429 with Retry-After": "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 120\r\nContent-Type: application/json\r\n" +
		"X-Ratelimit-Remaining: 0\r\nContent-Length: 51\r\n\r\n{\"code\":429,\"error_type\":\"OAuthRateLimitException\"}",
	"a redirect":                   "HTTP/1.1 302 Found\r\nLocation: https://elsewhere.example/x?access_token=secret\r\nContent-Length: 0\r\n\r\n",
	"204 with a Content-Length":    "HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\nnext",
	"304 chunked":                  "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\nnext",
	"103 then 200":                 "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
	"equal Content-Lengths":        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length:  2 \r\n\r\n{}",
	"different Content-Lengths":    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
	"Content-Lengths of one value": "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 02\r\n\r\n{}",
	"Content-Length with a sign":   "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\n{}",
	"an empty Content-Length":      "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n{}",
	"Content-Length of 2^63":       "HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775808\r\n\r\n{}",
	"Content-Length of 2^63-1":     "HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775807\r\n\r\n{}",
	"Content-Length not a number":  "HTTP/1.1 200 OK\r\nContent-Length: two\r\n\r\n{}",
	"a zero Content-Length":        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nnext",
	"lower-case names, LF endings": "HTTP/1.1 200 OK\ncontent-type: application/json\nx-ratelimit-limit: 5000\nx-RATELIMIT-remaining:4999 \ncontent-length: 2\n\n{}",
	"a folded value": "HTTP/1.1 200 OK\r\nContent-Type: application/json;\r\n \t charset=utf-8 \r\n\tand more\r\n" +
		"X-Ratelimit-Remaining: 12\r\nContent-Length: 2\r\n\r\n{}",
	"a folded unknown field":         "HTTP/1.1 200 OK\r\nX-Other: a\r\n b\r\nContent-Length: 2\r\n\r\n{}",
	"a field given twice":            "HTTP/1.1 200 OK\r\nX-Ratelimit-Remaining: 7\r\nX-Ratelimit-Remaining: 8\r\nContent-Length: 2\r\n\r\n{}",
	"the first field line folded":    "HTTP/1.1 200 OK\r\n Content-Length: 2\r\n\r\n{}",
	"a field line without a colon":   "HTTP/1.1 200 OK\r\nContent-Length 2\r\n\r\n{}",
	"a space before the colon":       "HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\n{}",
	"a control character in a value": "HTTP/1.1 200 OK\r\nX-Ratelimit-Remaining: 1\x002\r\nContent-Length: 2\r\n\r\n{}",
	"DEL in a value":                 "HTTP/1.1 200 OK\r\nContent-Type: a\x7f\r\nContent-Length: 2\r\n\r\n{}",
	"obs-text in a value":            "HTTP/1.1 200 OK\r\nContent-Type: caf\xc3\xa9\r\nContent-Length: 2\r\n\r\n{}",
	"an empty field name":            "HTTP/1.1 200 OK\r\n: nameless\r\nContent-Length: 2\r\n\r\n{}",
	"a status without a reason":      "HTTP/1.1 200\r\nContent-Length: 2\r\n\r\n{}",
	"spaces around the status":       "HTTP/1.1   404   Not  Found\r\nContent-Length: 2\r\n\r\n{}",
	"a two-digit status":             "HTTP/1.1 20 OK\r\n\r\n",
	"a status that is not a number":  "HTTP/1.1 2x0 OK\r\n\r\n",
	"a bad version":                  "HTTP/1.x 200 OK\r\n\r\n",
	"HTTP/2.0 in a status line":      "HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\n{}",
	"no space in the status line":    "HTTP/1.1200OK\r\n\r\n",
	"a header cut short":             "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n",
	"a status line cut short":        "HTTP/1.1 200",
	"nothing":                        "",
	"a long field line": "HTTP/1.1 200 OK\r\nSet-Cookie: " + strings.Repeat("c", 5000) + "\r\nContent-Type: " +
		strings.Repeat("t", 300) + "\r\nContent-Length: 2\r\n\r\n{}",
}

func TestReadResponseAgreesWithNetHTTP(t *testing.T) {
	for name, raw := range responseCases {
		t.Run(name, func(t *testing.T) {
			// A 16-byte buffer (bufio's smallest) makes every line longer than the buffer and every folding refill it.
			for _, size := range []int{16, 4096} {
				compareResponses(t, raw, size)
			}
		})
	}
}

// compareResponses reads the answers in raw with http.ReadResponse and readResponse (as h1Transport does: an
// informational answer is followed by the answer) and fails where they disagree: on refusing, the status, the
// framing, the kept header fields, the body and its error, and what is left for the next answer after a body
// read to its end.
func compareResponses(t *testing.T, raw string, size int) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://api.example/v1/tags/x/media/recent", nil)
	type outcome struct {
		Err                    bool
		Status                 string
		StatusCode             int
		Proto                  string
		ProtoMajor, ProtoMinor int
		Close                  bool
		ContentLength          int64
		TransferEncoding       []string
		Fields                 [len(keptFields)]string
		Body                   string
		BodyErr                bool
		Rest                   string
	}
	read := func(netHTTP bool) (out []outcome) {
		br := bufio.NewReaderSize(strings.NewReader(raw), size)
		var last [len(keptFields)]string
		for {
			var resp *http.Response
			var err error
			if netHTTP {
				resp, err = http.ReadResponse(br, req)
			} else {
				resp, err = readResponse(br, &last)
			}
			if err != nil {
				return append(out, outcome{Err: true})
			}
			o := outcome{Status: resp.Status, StatusCode: resp.StatusCode, Proto: resp.Proto,
				ProtoMajor: resp.ProtoMajor, ProtoMinor: resp.ProtoMinor, Close: resp.Close,
				ContentLength: resp.ContentLength, TransferEncoding: resp.TransferEncoding}
			for i, f := range keptFields {
				o.Fields[i] = resp.Header.Get(f)
			}
			body, err := io.ReadAll(resp.Body)
			o.Body, o.BodyErr = string(body), err != nil
			if resp.StatusCode/100 != 1 || resp.StatusCode == http.StatusSwitchingProtocols {
				if !o.BodyErr { // after an error the connection is closed: where it stopped does not matter
					rest, _ := io.ReadAll(br)
					o.Rest = string(rest)
				}
				return append(out, o)
			}
			out = append(out, o)
		}
	}
	want, got := read(true), read(false)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%q (buffer %d):\nreadResponse      %+v\nhttp.ReadResponse %+v", raw, size, got, want)
	}
}

func FuzzReadResponse(f *testing.F) {
	for _, raw := range responseCases {
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		compareResponses(t, raw, 16)
		compareResponses(t, raw, 4096)
	})
}

// TestReadResponseReusesUnchangedValues checks that a connection's answers share the header values that did not
// change, and that a changed one is its own.
func TestReadResponseReusesUnchangedValues(t *testing.T) {
	next := strings.Replace(simulatorAnswer, "4987", "4986", 1)
	br := bufio.NewReader(strings.NewReader(simulatorAnswer + next))
	var last [len(keptFields)]string
	var resps []*http.Response
	for range 2 {
		resp, err := readResponse(br, &last)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			t.Fatal(err)
		}
		resps = append(resps, resp)
	}
	same := func(f string) bool {
		return unsafe.StringData(resps[0].Header.Get(f)) == unsafe.StringData(resps[1].Header.Get(f))
	}
	if !same("Content-Type") || !same("X-Ratelimit-Limit") {
		t.Errorf("the second answer's unchanged values were copied again")
	}
	if got := resps[1].Header.Get("X-Ratelimit-Remaining"); got != "4986" {
		t.Errorf("the second answer's X-Ratelimit-Remaining = %q, want 4986", got)
	}
	if got := resps[0].Header.Get("X-Ratelimit-Remaining"); got != "4987" {
		t.Errorf("the first answer's X-Ratelimit-Remaining changed to %q", got)
	}
}

func BenchmarkReadResponse(b *testing.B) {
	for _, impl := range []string{"readResponse", "http.ReadResponse"} {
		b.Run(impl, func(b *testing.B) {
			r := strings.NewReader(simulatorAnswer)
			br := bufio.NewReaderSize(r, 4096)
			var last [len(keptFields)]string
			b.ReportAllocs()
			for b.Loop() {
				r.Reset(simulatorAnswer)
				br.Reset(r)
				var resp *http.Response
				var err error
				if impl == "readResponse" {
					resp, err = readResponse(br, &last)
				} else {
					resp, err = http.ReadResponse(br, nil)
				}
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, resp.Body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
