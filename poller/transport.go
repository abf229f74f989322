package poller

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// h1Transport is the poller's HTTP/1.1 transport: a pool of keep-alive connections to the API host, each used by
// one request at a time, which writes the request and reads the answer in the goroutine of the poll that sends it.
//
// http.Transport hands every request to two goroutines of its connection (one writes, one reads) and back, three
// goroutine switches per request; at a thousand requests a second, mostly empty pages, those switches, their
// thread wake-ups and the per-request formatting were a fifth of the process's CPU (bench/RESULTS.md, scale100k).
// Here the request is written as http.Request.Write writes it (writeRequest) and the answer read as
// http.ReadResponse reads it (readResponse, which keeps only the header fields the poller reads); what this type
// adds is the connection pool: dial (and TLS, offering only http/1.1), reuse after a body read to its end, one
// retry on a fresh connection when a reused one turns out to have been closed by the server before it answered (a
// GET is idempotent; http.Transport does the same), cancellation through the request's context, and an idle
// timeout.
//
// newTransport uses it unless a proxy is configured for the API (HTTP_PROXY, HTTPS_PROXY, NO_PROXY), which
// http.Transport then handles. It serves only the requests the poller makes: GET, no body, one host.
type h1Transport struct {
	tls         *tls.Config // nil for http
	dialer      net.Dialer
	tlsTimeout  time.Duration
	idleTimeout time.Duration
	maxIdle     int

	mu   sync.Mutex
	idle []*h1Conn // most recently used last
}

// h1Conn is one connection with its buffers.
type h1Conn struct {
	net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	idleAt time.Time
	last   [len(keptFields)]string // the previous answer's kept header values, reused while they stay the same
}

// errH1Closed reports that a reused connection was closed by the server before any byte of an answer came.
var errH1Closed = errors.New("connection closed before an answer")

func newH1Transport(tlsCfg *tls.Config, maxIdle int) *h1Transport {
	if tlsCfg != nil {
		tlsCfg = tlsCfg.Clone()
		tlsCfg.NextProtos = []string{"http/1.1"}
	}
	return &h1Transport{
		tls:         tlsCfg,
		dialer:      net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second},
		tlsTimeout:  10 * time.Second,
		idleTimeout: 90 * time.Second,
		maxIdle:     maxIdle,
	}
}

// RoundTrip sends req on an idle connection, or a new one, and returns its answer; the answer's Body gives the
// connection back when it was read to its end and closed.
func (t *h1Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	return t.roundTrip(req, time.Time{})
}

// roundTrip is RoundTrip with a deadline for the whole exchange, body included (none when zero), besides the
// request context's.
func (t *h1Transport) roundTrip(req *http.Request, deadline time.Time) (*http.Response, error) {
	if req.Method != http.MethodGet || (req.Body != nil && req.Body != http.NoBody) {
		return nil, errors.New("poller transport: only GET without a body")
	}
	o, err := newOrigin(req)
	if err != nil {
		return nil, err
	}
	resp, err := t.get(req.Context(), o, req.URL.RequestURI(), deadline)
	if resp != nil {
		resp.Request = req
	}
	return resp, err
}

// h1Origin is where get sends its requests: the URL to dial (its scheme and host) and the rest of every request
// after its target, " HTTP/1.1" and the header, written once.
type h1Origin struct {
	url  *url.URL
	head string
}

// newOrigin checks req's host and header (checkRequest) and renders them as http.Request.Write writes them for a
// GET without a body (the Host first, a User-Agent when req has none), without its per-request formatting and
// sorting.
func newOrigin(req *http.Request) (h1Origin, error) {
	if err := checkRequest(req); err != nil {
		return h1Origin{}, err
	}
	var b strings.Builder
	b.WriteString(" HTTP/1.1\r\nHost: ")
	b.WriteString(requestHost(req))
	b.WriteString("\r\n")
	if _, ok := req.Header["User-Agent"]; !ok {
		b.WriteString("User-Agent: Go-http-client/1.1\r\n")
	}
	for k, vs := range req.Header {
		for _, v := range vs {
			b.WriteString(k)
			b.WriteString(": ")
			b.WriteString(v)
			b.WriteString("\r\n")
		}
	}
	b.WriteString("\r\n")
	return h1Origin{url: req.URL, head: b.String()}, nil
}

// writeRequest writes a GET of target (a path and query, escaped) to o.
func writeRequest(w *bufio.Writer, o h1Origin, target string) {
	w.WriteString("GET ")
	w.WriteString(target)
	w.WriteString(o.head)
}

// get sends a GET of target (a path and query, escaped) to o and returns the answer (its Request is nil). The
// client sends every poll this way: its origin is rendered once, and no http.Request is made per poll.
func (t *h1Transport) get(ctx context.Context, o h1Origin, target string, deadline time.Time) (*http.Response, error) {
	fresh := false
	for {
		pc, reused, err := t.conn(ctx, o.url, fresh, deadline)
		if err != nil {
			return nil, err
		}
		resp, err := t.exchange(ctx, pc, o, target, deadline)
		if err == nil {
			return resp, nil
		}
		pc.Close()
		if !reused || !errors.Is(err, errH1Closed) || ctx.Err() != nil {
			return nil, err
		}
		// The server had closed the idle connection: once more, on a new connection, which cannot be stale.
		fresh = true
	}
}

// exchange writes a GET of target to o on pc and reads the answer's header. The body is read by the caller, through
// h1Body.
func (t *h1Transport) exchange(ctx context.Context, pc *h1Conn, o h1Origin, target string, deadline time.Time) (*http.Response, error) {
	if d, ok := ctx.Deadline(); ok && (deadline.IsZero() || d.Before(deadline)) {
		deadline = d
	}
	pc.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { pc.SetDeadline(time.Unix(1, 0)) })
	fail := func(err error) (*http.Response, error) {
		stop()
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		return nil, err
	}
	writeRequest(pc.bw, o, target)
	if err := pc.bw.Flush(); err != nil {
		return fail(closedAsNothingCame(err))
	}
	if _, err := pc.br.Peek(1); err != nil {
		return fail(closedAsNothingCame(err))
	}
	for {
		resp, err := readResponse(pc.br, &pc.last)
		if err != nil {
			return fail(err)
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			continue // an informational answer (103 Early Hints) precedes the answer
		}
		resp.Body = &h1Body{ctx: ctx, rc: resp.Body, t: t, pc: pc, stop: stop, keep: !resp.Close}
		return resp, nil
	}
}

// checkRequest refuses what newOrigin cannot write as it is: a host that is not plain ASCII (http.Request.Write
// would turn it into punycode) and header names or values that are not valid HTTP (a CR or LF would split them).
func checkRequest(req *http.Request) error {
	host := requestHost(req)
	if host == "" || !validHeaderValue(host) || strings.ContainsAny(host, " /?#@") || !isASCII(host) {
		return fmt.Errorf("poller transport: invalid host %q", host)
	}
	for k, vs := range req.Header {
		if !validHeaderName(k) || k == "Host" {
			return fmt.Errorf("poller transport: invalid header name %q", k)
		}
		for _, v := range vs {
			if !validHeaderValue(v) {
				return fmt.Errorf("poller transport: invalid value of header %s", k)
			}
		}
	}
	return nil
}

// requestHost is the Host header of req: its Host or its URL's, without an IPv6 zone ([fe80::1%eth0] is sent as
// [fe80::1], as http.Request.Write does).
func requestHost(req *http.Request) string {
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if strings.HasPrefix(host, "[") {
		if i, j := strings.IndexByte(host, '%'), strings.LastIndexByte(host, ']'); i > 0 && j > i {
			host = host[:i] + host[j:]
		}
	}
	return host
}

// validHeaderName reports whether k is an HTTP token (RFC 9110, 5.6.2).
func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// validHeaderValue reports whether v holds no control character other than a tab (RFC 9110, 5.5).
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// closedAsNothingCame marks an error of a connection that gave no byte of an answer as errH1Closed when the
// server closed it (EOF, reset, broken pipe): on a reused connection that means it had been closed while idle.
func closedAsNothingCame(err error) error {
	var ne net.Error
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || (errors.As(err, &ne) && !ne.Timeout()) {
		return fmt.Errorf("%w: %w", errH1Closed, err)
	}
	return err
}

// conn returns an idle connection to u's host, or dials one (always when fresh) by the deadline (none when zero).
func (t *h1Transport) conn(ctx context.Context, u *url.URL, fresh bool, deadline time.Time) (pc *h1Conn, reused bool, err error) {
	now := time.Now()
	t.mu.Lock()
	for len(t.idle) > 0 && !fresh {
		pc = t.idle[len(t.idle)-1]
		t.idle[len(t.idle)-1] = nil
		t.idle = t.idle[:len(t.idle)-1]
		if now.Sub(pc.idleAt) < t.idleTimeout {
			t.mu.Unlock()
			return pc, true, nil
		}
		pc.Close()
	}
	t.mu.Unlock()
	addr := u.Host
	if u.Port() == "" {
		port := "80"
		if t.tls != nil {
			port = "443"
		}
		addr = net.JoinHostPort(u.Hostname(), port)
	}
	d := t.dialer
	d.Deadline = deadline
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	if t.tls != nil {
		cfg := t.tls
		if cfg.ServerName == "" {
			cfg = cfg.Clone()
			cfg.ServerName = u.Hostname()
		}
		tc := tls.Client(c, cfg)
		limit := time.Now().Add(t.tlsTimeout)
		if !deadline.IsZero() && deadline.Before(limit) {
			limit = deadline
		}
		hctx, cancel := context.WithDeadline(ctx, limit)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			c.Close()
			return nil, false, err
		}
		c = tc
	}
	return &h1Conn{Conn: c, br: bufio.NewReaderSize(c, 4<<10), bw: bufio.NewWriterSize(c, 1<<10)}, false, nil
}

// put gives a connection back for the next request, or closes it when enough are idle.
func (t *h1Transport) put(pc *h1Conn) {
	pc.idleAt = time.Now()
	t.mu.Lock()
	if len(t.idle) < t.maxIdle {
		t.idle = append(t.idle, pc)
		pc = nil
	}
	t.mu.Unlock()
	if pc != nil {
		pc.Close()
	}
}

// CloseIdleConnections closes the idle connections (http.Client.CloseIdleConnections calls it).
func (t *h1Transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	t.mu.Unlock()
	for _, pc := range idle {
		pc.Close()
	}
}

// h1Body is an answer's body. Read to its end and closed, it gives its connection back; closed earlier, or after
// an error, it closes the connection (what is left of the answer would be read as the next one's).
type h1Body struct {
	ctx  context.Context
	rc   io.ReadCloser
	t    *h1Transport
	pc   *h1Conn
	stop func() bool
	keep bool // the answer allows the connection to be reused
	eof  bool
	err  bool
}

func (b *h1Body) Read(p []byte) (int, error) {
	if b.pc == nil {
		return 0, errors.New("read on a closed body")
	}
	n, err := b.rc.Read(p)
	switch {
	case err == io.EOF:
		b.eof = true
	case err != nil:
		b.err = true
		if cerr := b.ctx.Err(); cerr != nil {
			err = cerr // the deadline that the context's end set, as http.Transport reports it
		}
	}
	return n, err
}

func (b *h1Body) Close() error {
	if b.pc == nil {
		return nil
	}
	pc := b.pc
	b.pc = nil
	// stop reports false when the context ended meanwhile and may have set the connection's deadline.
	if b.stop() && b.keep && b.eof && !b.err && pc.br.Buffered() == 0 {
		b.t.put(pc)
		return nil
	}
	return pc.Close()
}
