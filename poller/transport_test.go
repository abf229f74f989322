package poller

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// h1Server is an httptest server that counts the connections it accepted.
func h1Server(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

// stallingServer answers a request for halfBody with half of a 20-byte body and then nothing, and any other
// request with nothing at all, until the test ends.
func stallingServer(t *testing.T, halfBody string) *httptest.Server {
	t.Helper()
	release := make(chan struct{})
	srv, _ := h1Server(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == halfBody {
			w.Header().Set("Content-Length", "20")
			io.WriteString(w, "half of it")
			w.(http.Flusher).Flush()
		}
		<-release
	})
	t.Cleanup(func() { close(release) }) // runs before h1Server's srv.Close, which waits for the handlers
	return srv
}

// get sends one GET with tr and reads the body to its end.
func get(t *testing.T, tr http.RoundTripper, u string) (int, string, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func TestH1TransportReusesOneConnectionForSequentialRequests(t *testing.T) {
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			srv, conns := h1Server(t, func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("User-Agent") != userAgent || r.URL.RawQuery != "count=1" {
					http.Error(w, "unexpected request "+r.URL.String(), http.StatusBadRequest)
					return
				}
				if chunked {
					io.WriteString(w, "part one, ")
					w.(http.Flusher).Flush() // no Content-Length: the answer goes chunked
				}
				io.WriteString(w, "body")
			})
			tr := newH1Transport(nil, 4)
			defer tr.CloseIdleConnections()
			want := "body"
			if chunked {
				want = "part one, body"
			}
			for i := range 20 {
				req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/x?count=1", nil)
				req.Header = requestHeader
				resp, err := tr.RoundTrip(req)
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || string(b) != want {
					t.Fatalf("request %d: %d %q %v", i, resp.StatusCode, b, err)
				}
			}
			if n := conns.Load(); n != 1 {
				t.Errorf("20 sequential requests used %d connections, want 1", n)
			}
		})
	}
}

func TestH1TransportClosesAConnectionWhoseBodyWasNotReadToItsEnd(t *testing.T) {
	srv, conns := h1Server(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("x", 10000))
	})
	tr := newH1Transport(nil, 4)
	defer tr.CloseIdleConnections()
	for i := range 3 {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL, nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := resp.Body.Read(make([]byte, 10)); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close() // the rest would be read as the next answer on a reused connection
		if n := conns.Load(); n != int64(i+1) {
			t.Fatalf("after %d cut answers the server saw %d connections, want %d", i+1, n, i+1)
		}
	}
	if code, body, err := get(t, tr, srv.URL); err != nil || code != 200 || len(body) != 10000 {
		t.Fatalf("after cut answers: %d, %d bytes, %v", code, len(body), err)
	}
}

// TestH1TransportRetriesOnceWhenTheServerClosedAnIdleConnection: the server answers and then closes the
// connection without saying so (no Connection: close), as a server does when its idle timeout ends. The next
// request, sent on that connection, gets nothing: it is sent again on a new one.
func TestH1TransportRetriesOnceWhenTheServerClosedAnIdleConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int64
	var wg sync.WaitGroup
	defer wg.Wait()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			wg.Go(func() {
				defer c.Close()
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				_ = req
				// closed after one answer, silently
			})
		}
	}()
	tr := newH1Transport(nil, 4)
	defer tr.CloseIdleConnections()
	u := "http://" + ln.Addr().String() + "/"
	for i := range 3 {
		code, body, err := get(t, tr, u)
		if err != nil || code != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q %v", i, code, body, err)
		}
	}
	if n := accepted.Load(); n != 3 {
		t.Errorf("3 requests on connections closed after each answer: %d connections, want 3", n)
	}
}

func TestH1TransportDoesNotRetryANewConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close() // closed before any answer
		}
	}()
	tr := newH1Transport(nil, 4)
	if _, _, err := get(t, tr, "http://"+ln.Addr().String()+"/"); err == nil {
		t.Fatal("a server that answers nothing: no error")
	}
	if n := accepted.Load(); n != 1 {
		t.Errorf("a fresh connection closed before the answer was sent %d times, want once", n)
	}
}

func TestH1TransportEndsWithTheContext(t *testing.T) {
	srv := stallingServer(t, "/")
	tr := newH1Transport(nil, 4)
	defer tr.CloseIdleConnections()

	t.Run("before the header", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		if _, err := tr.RoundTrip(req); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled request: %v, want context.Canceled", err)
		}
	})
	t.Run("in the body", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		buf := make([]byte, 10)
		if _, err := io.ReadFull(resp.Body, buf); err != nil {
			t.Fatal(err)
		}
		cancel()
		if _, err := resp.Body.Read(buf); !errors.Is(err, context.Canceled) {
			t.Fatalf("body read after cancel: %v, want context.Canceled", err)
		}
	})
	if n := len(tr.idle); n != 0 {
		t.Errorf("%d connections kept after cancelled requests, want 0", n)
	}
}

func TestH1TransportSkipsInformationalAnswers(t *testing.T) {
	srv, _ := h1Server(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</x>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		io.WriteString(w, "final")
	})
	tr := newH1Transport(nil, 4)
	defer tr.CloseIdleConnections()
	if code, body, err := get(t, tr, srv.URL); err != nil || code != 200 || body != "final" {
		t.Fatalf("after 103: %d %q %v", code, body, err)
	}
}

// TestH1TransportOverTLS: a TLS server that offers HTTP/2 is spoken to in HTTP/1.1 (the transport offers only
// http/1.1), with the configured roots.
func TestH1TransportOverTLS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.Proto)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	cfg := srv.Client().Transport.(*http.Transport).TLSClientConfig
	tr := newH1Transport(cfg, 4)
	defer tr.CloseIdleConnections()
	for range 2 {
		if code, body, err := get(t, tr, srv.URL); err != nil || code != 200 || body != "HTTP/1.1" {
			t.Fatalf("over TLS: %d %q %v", code, body, err)
		}
	}
	if n := len(tr.idle); n != 1 {
		t.Errorf("%d idle connections after two requests, want 1", n)
	}
	if code, _, err := get(t, newH1Transport(nil, 4), srv.URL); err == nil && code == 200 {
		t.Error("plain HTTP to a TLS server: 200")
	}
}

func TestNewTransportUsesHTTPTransportBehindAProxy(t *testing.T) {
	cfg := Config{BaseURL: "http://api.example/v1", Workers: 4}
	tr, err := newTransport(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tr.(*h1Transport); !ok {
		t.Errorf("no proxy: %T, want *h1Transport", tr)
	}
	defer func(f func(*http.Request) (*url.URL, error)) { proxyOf = f }(proxyOf)
	proxyOf = func(*http.Request) (*url.URL, error) {
		return &url.URL{Scheme: "http", Host: "proxy.example:3128"}, nil
	}
	tr, err = newTransport(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tr.(*http.Transport); !ok {
		t.Errorf("behind a proxy: %T, want *http.Transport", tr)
	}
}

// TestWriteRequestIsWhatRequestWriteSends: a server reads the same request from writeRequest as from
// http.Request.Write, for the poller's requests (built by newRequest) and for one without a User-Agent.
func TestWriteRequestIsWhatRequestWriteSends(t *testing.T) {
	var reqs []*http.Request
	for _, base := range []string{"http://127.0.0.1:8080/v1", "http://[::1]:9/v1/",
		"http://[fe80::1%25lo]:8080/v1", "https://api.example.test:/v1", "https://api.example.test/a b/ä"} {
		c := urlTestClient(t, base)
		for _, tok := range urlTestTokens {
			for _, q := range urlTestQueries {
				req, err := c.newRequest(t.Context(), &tok, q)
				if err != nil {
					t.Fatal(err)
				}
				reqs = append(reqs, req)
			}
		}
	}
	bare, _ := http.NewRequest(http.MethodGet, "http://api.example/v1/x?y=1", nil) // no User-Agent
	reqs = append(reqs, bare)
	for _, req := range reqs {
		o, err := newOrigin(req)
		if err != nil {
			t.Fatalf("%s: %v", req.URL.Path, err)
		}
		var ours, theirs strings.Builder
		bw := bufio.NewWriter(&ours)
		writeRequest(bw, o, req.URL.RequestURI())
		bw.Flush()
		if err := req.Write(&theirs); err != nil {
			t.Fatal(err)
		}
		a, err := http.ReadRequest(bufio.NewReader(strings.NewReader(ours.String())))
		if err != nil {
			t.Fatalf("writeRequest wrote %q: %v", ours.String(), err)
		}
		b, err := http.ReadRequest(bufio.NewReader(strings.NewReader(theirs.String())))
		if err != nil {
			t.Fatal(err)
		}
		if a.Method != b.Method || a.RequestURI != b.RequestURI || a.Host != b.Host || a.Proto != b.Proto ||
			fmt.Sprint(a.Header) != fmt.Sprint(b.Header) || a.ContentLength != b.ContentLength {
			t.Errorf("writeRequest sent\n%q\nhttp.Request.Write sends\n%q", ours.String(), theirs.String())
		}
	}
}

func TestCheckRequestRefusesWhatWriteRequestCannotWrite(t *testing.T) {
	for name, mod := range map[string]func(*http.Request){
		"CR LF in a header value": func(r *http.Request) { r.Header = http.Header{"Accept": {"a\r\nX-Evil: 1"}} },
		"space in a header name":  func(r *http.Request) { r.Header = http.Header{"Bad Name": {"x"}} },
		"a Host header":           func(r *http.Request) { r.Header = http.Header{"Host": {"other"}} },
		"non-ASCII host":          func(r *http.Request) { r.Host = "café.example" },
		"CR LF in the host":       func(r *http.Request) { r.Host = "a\r\nX-Evil: 1" },
	} {
		req, _ := http.NewRequest(http.MethodGet, "http://api.example/v1", nil)
		mod(req)
		if err := checkRequest(req); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if _, err := newH1Transport(nil, 1).RoundTrip(req); err == nil {
			t.Errorf("%s: sent", name)
		}
	}
}

// TestH1TransportDeadlineBoundsTheWholeExchange: the deadline that send passes ends a request whose answer does
// not come, and one whose body stops half way, with a timeout error, and neither connection is kept.
func TestH1TransportDeadlineBoundsTheWholeExchange(t *testing.T) {
	srv := stallingServer(t, "/body")
	tr := newH1Transport(nil, 4)
	defer tr.CloseIdleConnections()
	timeout := func(err error) bool {
		var ne net.Error
		return errors.As(err, &ne) && ne.Timeout()
	}

	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/header", nil)
	if _, err := tr.roundTrip(req, time.Now().Add(50*time.Millisecond)); !timeout(err) {
		t.Fatalf("no answer by the deadline: %v, want a timeout", err)
	}
	req, _ = http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/body", nil)
	resp, err := tr.roundTrip(req, time.Now().Add(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !timeout(err) {
		t.Fatalf("body cut at the deadline: %v, want a timeout", err)
	}
	if n := len(tr.idle); n != 0 {
		t.Errorf("%d connections kept after timeouts, want 0", n)
	}
}
