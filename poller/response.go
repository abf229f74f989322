package poller

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
)

// readResponse reads an answer's status line and header from br as http.ReadResponse does, and frames its body
// (Content-Length, chunked, or up to the end of the connection), for the answers the poller gets to its GETs. Its Request is left nil.
//
// Unlike http.ReadResponse it keeps only the header fields the poller reads (keptFields): at a thousand answers a
// second, mostly empty pages, canonicalizing and storing every field of every answer was a tenth of the process's
// CPU (bench/RESULTS.md, scale100k). A field's value is reused from the connection's previous answer when it did
// not change, as Content-Type and X-Ratelimit-Limit seldom do. What it refuses, http.ReadResponse refuses too (see
// TestReadResponseAgreesWithNetHTTP and FuzzReadResponse): a malformed status or header line, a Content-Length
// that is not a number or that differs between two fields, a transfer coding other than chunked.
func readResponse(br *bufio.Reader, last *[len(keptFields)]string) (*http.Response, error) {
	line, err := readLine(br)
	if err != nil {
		return nil, err
	}
	total := len(line)
	resp := &http.Response{}
	if err := parseStatusLine(resp, line); err != nil {
		return nil, err
	}
	if b, err := br.Peek(1); err == nil && (b[0] == ' ' || b[0] == '\t') {
		line, _ := readLine(br)
		return nil, fmt.Errorf("malformed MIME header initial line: %q", line)
	}
	var (
		vals               [len(keptFields)]string
		have               uint8 // bit i: keptFields[i] was present
		length             = int64(-1)
		lengthDigits       int // the first Content-Length's digits: a second one must be the same text
		chunked, teSeen    bool
		hasClose, keepOpen bool
		buf                []byte
		// Transfer codings exist from HTTP/1.1 on; net/http reads an "HTTP/0.0" answer's body as HTTP/1.1's.
		atLeast11 = resp.ProtoMajor > 1 || resp.ProtoMajor == 1 && resp.ProtoMinor >= 1 ||
			resp.ProtoMajor == 0 && resp.ProtoMinor == 0
	)
	for {
		line, err = readFieldLine(br, &buf)
		if err != nil {
			return nil, err
		}
		if total += len(line); total > maxResponseHeader {
			return nil, errHeaderTooLarge
		}
		if len(line) == 0 {
			break
		}
		name, value, err := splitField(line)
		if err != nil {
			return nil, err
		}
		switch {
		case asciiEqualFold(name, "Content-Length"):
			n, ok := parseContentLength(value)
			if !ok {
				return nil, fmt.Errorf("bad Content-Length %q", value)
			}
			if length >= 0 && (n != length || len(value) != lengthDigits) {
				return nil, fmt.Errorf("multiple Content-Length fields that differ (%d, %q)", length, value)
			}
			length, lengthDigits = n, len(value)
		case asciiEqualFold(name, "Transfer-Encoding"):
			if !atLeast11 {
				continue // HTTP/1.0 has no transfer codings (golang.org/issue/12785)
			}
			if teSeen || !asciiEqualFold(value, "chunked") {
				return nil, fmt.Errorf("unsupported transfer encoding: %q", value)
			}
			teSeen, chunked = true, true
		case asciiEqualFold(name, "Connection"):
			hasClose = hasClose || hasToken(value, "close")
			keepOpen = keepOpen || hasToken(value, "keep-alive")
		default:
			for i, f := range keptFields {
				if have&(1<<i) != 0 || !asciiEqualFold(name, f) {
					continue // a field's first value is its value, as Header.Get has it
				}
				have |= 1 << i
				if last != nil && last[i] == string(value) { // compared without a copy
					vals[i] = last[i]
				} else {
					vals[i] = string(value)
				}
				break
			}
		}
	}

	n := bits.OnesCount8(have)
	resp.Header = make(http.Header, n)
	if n > 0 {
		backing := make([]string, 0, n) // one allocation for every value
		for i, f := range keptFields {
			if have&(1<<i) != 0 {
				backing = append(backing, vals[i])
				resp.Header[f] = backing[len(backing)-1 : len(backing) : len(backing)]
				if last != nil {
					last[i] = vals[i]
				}
			}
		}
	}
	resp.Close = hasClose || resp.ProtoMajor < 1 || resp.ProtoMajor == 1 && resp.ProtoMinor == 0 && !keepOpen
	bodyAllowed := resp.StatusCode/100 != 1 && resp.StatusCode != http.StatusNoContent &&
		resp.StatusCode != http.StatusNotModified // the poller sends only GETs
	if chunked {
		resp.TransferEncoding = chunkedEncoding
	}
	switch {
	case !bodyAllowed:
		resp.ContentLength, resp.Body = 0, http.NoBody
	case chunked:
		resp.ContentLength = -1
		resp.Body = &chunkedBody{br: br, r: httputil.NewChunkedReader(br)}
	case length == 0:
		resp.ContentLength, resp.Body = 0, http.NoBody
	case length > 0:
		resp.ContentLength, resp.Body = length, &fixedBody{br: br, n: length}
	default:
		// The body ends with the connection.
		resp.ContentLength, resp.Close, resp.Body = -1, true, io.NopCloser(br)
	}
	return resp, nil
}

// keptFields are the header fields readResponse keeps, in their canonical form.
var keptFields = [...]string{"Content-Type", "X-Ratelimit-Limit", "X-Ratelimit-Remaining", "Retry-After", "Location"}

// maxResponseHeader bounds an answer's status line and header together, as http.Transport's default
// MaxResponseHeaderBytes does.
const maxResponseHeader = 10 << 20

var chunkedEncoding = []string{"chunked"}

// parseStatusLine fills resp's protocol and status from a status line such as "HTTP/1.1 200 OK".
func parseStatusLine(resp *http.Response, line []byte) error {
	proto, status, ok := bytes.Cut(line, []byte{' '})
	if !ok {
		return fmt.Errorf("malformed HTTP response %q", line)
	}
	major, minor, ok := http.ParseHTTPVersion(string(proto))
	if !ok {
		return fmt.Errorf("malformed HTTP version %q", proto)
	}
	resp.ProtoMajor, resp.ProtoMinor = major, minor
	resp.Proto = "HTTP/1.1"
	if major != 1 || minor != 1 {
		resp.Proto = string(proto)
	}
	status = bytes.TrimLeft(status, " ")
	code, _, _ := bytes.Cut(status, []byte{' '})
	if len(code) != 3 {
		return fmt.Errorf("malformed HTTP status code %q", code)
	}
	n, err := strconv.Atoi(string(code))
	if err != nil || n < 0 {
		return fmt.Errorf("malformed HTTP status code %q", code)
	}
	resp.StatusCode = n
	if string(status) == "200 OK" {
		resp.Status = "200 OK"
	} else {
		resp.Status = string(status)
	}
	return nil
}

// readLine reads a line from br without its line ending (CRLF or LF). The result aliases br's buffer unless the
// line is longer, so it is valid until the next read. A connection that ends within a line is
// io.ErrUnexpectedEOF.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		long := append([]byte(nil), line...)
		for err == bufio.ErrBufferFull {
			if len(long) > maxResponseHeader {
				return nil, errHeaderTooLarge
			}
			line, err = br.ReadSlice('\n')
			long = append(long, line...)
		}
		line = long
	}
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// readFieldLine reads a header field line with its obsolete line foldings (RFC 9112, 5.2): the lines after it that
// begin with a space or tab continue it, joined by a single space, as net/textproto joins them. Trailing white
// space of each line is dropped. The result aliases br's buffer or *buf.
func readFieldLine(br *bufio.Reader, buf *[]byte) ([]byte, error) {
	line, err := readLine(br)
	if err != nil || len(line) == 0 {
		return line, err
	}
	if bytes.IndexByte(line, ':') < 0 { // the name cannot be folded
		return nil, fmt.Errorf("malformed MIME header: missing colon: %q", line)
	}
	line = trimOWS(line)
	if br.Buffered() > 0 {
		if b, _ := br.Peek(1); b[0] != ' ' && b[0] != '\t' {
			return line, nil // the usual case: no folding, and no copy
		}
	}
	// Peek may refill the buffer that line aliases: copy it first.
	*buf = append((*buf)[:0], line...)
	for {
		b, err := br.Peek(1)
		if err != nil || b[0] != ' ' && b[0] != '\t' {
			return *buf, nil // an error is the next read's
		}
		next, err := readLine(br)
		if err != nil {
			return *buf, nil
		}
		*buf = append(append(*buf, ' '), trimOWS(next)...)
		if len(*buf) > maxResponseHeader {
			return nil, errHeaderTooLarge
		}
	}
}

// errHeaderTooLarge is an answer whose status line and header are longer than maxResponseHeader.
var errHeaderTooLarge = fmt.Errorf("net/http: server response headers exceeded %d bytes", maxResponseHeader)

// splitField splits a header field line into its name and its value without leading white space. A name must
// be a token (RFC 9110, 5.6.2); like net/textproto it may hold spaces too ("Name : value", golang.org/issue/34540),
// and is then no field the poller knows.
func splitField(line []byte) (name, value []byte, err error) {
	name, value, ok := bytes.Cut(line, []byte{':'})
	if !ok || len(name) == 0 || !validFieldName(name) || !validFieldValue(value) {
		return nil, nil, fmt.Errorf("malformed MIME header line: %q", line)
	}
	return name, bytes.TrimLeft(value, " \t"), nil // readFieldLine trimmed each line's end
}

// validFieldName reports whether a header field name holds only token characters and spaces.
func validFieldName(b []byte) bool {
	for _, c := range b {
		if !fieldNameByte[c] {
			return false
		}
	}
	return true
}

// validFieldValue reports whether a header field value holds no control character other than a tab (RFC 9110,
// 5.5).
func validFieldValue(b []byte) bool {
	for _, c := range b {
		if !fieldValueByte[c] {
			return false
		}
	}
	return true
}

// fieldNameByte and fieldValueByte say which bytes validFieldName and validFieldValue accept.
var fieldNameByte, fieldValueByte = func() (name, value [256]bool) {
	for c := range 256 {
		name[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte(" !#$%&'*+-.^_`|~", byte(c)) >= 0
		value[c] = c >= ' ' && c != 0x7f || c == '\t'
	}
	return name, value
}()

// trimOWS trims optional white space (spaces and tabs) around a header value.
func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// asciiEqualFold reports whether b equals s ignoring ASCII case.
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c, d := b[i], s[i]
		if c == d {
			continue
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

// hasToken reports whether the comma-separated list v holds token, ignoring ASCII case.
func hasToken(v []byte, token string) bool {
	for len(v) > 0 {
		var t []byte
		t, v, _ = bytes.Cut(v, []byte{','})
		if asciiEqualFold(trimOWS(t), token) {
			return true
		}
	}
	return false
}

// parseContentLength parses a Content-Length value: decimal digits only, at most 2^63-1.
func parseContentLength(v []byte) (int64, bool) {
	if len(v) == 0 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		if n > (math.MaxInt64-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// fixedBody is a body of n bytes; the connection ending sooner is io.ErrUnexpectedEOF.
type fixedBody struct {
	br *bufio.Reader
	n  int64
}

func (b *fixedBody) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.br.Read(p)
	b.n -= int64(n)
	if err == io.EOF {
		return n, io.ErrUnexpectedEOF
	}
	if b.n == 0 && err == nil {
		err = io.EOF
	}
	return n, err
}

func (b *fixedBody) Close() error { return nil }

// chunkedBody is a chunked body; at its last chunk it reads the trailer section too (and drops it), so that the
// connection is left at the next answer. As net/http, it refuses a trailer section that does not end within the
// connection's buffer, or with a malformed line.
type chunkedBody struct {
	br   *bufio.Reader
	r    io.Reader
	done bool
}

// errLongTrailer is a trailer section longer than the connection's buffer.
var errLongTrailer = errors.New("http: suspiciously long trailer after chunked body")

func (b *chunkedBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.r.Read(p)
	if err == io.EOF {
		if terr := b.readTrailer(); terr != nil {
			return n, terr
		}
		b.done = true
	}
	return n, err
}

func (b *chunkedBody) readTrailer() error {
	end, err := b.br.Peek(2)
	switch {
	case len(end) == 2 && end[0] == '\r' && end[1] == '\n':
		_, err = b.br.Discard(2) // the usual case: no trailer
		return err
	case len(end) < 2:
		return io.ErrUnexpectedEOF
	case err != nil:
		return err
	}
	for n := 4; ; n++ { // as net/http: the section's end must come within the buffer
		upcoming, err := b.br.Peek(n)
		if bytes.HasSuffix(upcoming, []byte("\r\n\r\n")) {
			break
		}
		if err != nil {
			return errLongTrailer
		}
	}
	if first, _ := b.br.Peek(1); first[0] == ' ' || first[0] == '\t' {
		return errors.New("malformed MIME header initial line in the chunked trailer")
	}
	var buf []byte
	for {
		line, err := readFieldLine(b.br, &buf)
		if err != nil {
			return err
		}
		if len(line) == 0 {
			return nil
		}
		if _, _, err := splitField(line); err != nil {
			return err
		}
	}
}

func (b *chunkedBody) Close() error { return nil }
