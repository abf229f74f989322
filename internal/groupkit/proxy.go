package groupkit

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"
)

// Proxy serves plain HTTP on loopback and forwards every request to the simulator, recording the feed requests in
// a PollLog as made by one member.
type Proxy struct {
	srv *http.Server
	// URL is the API URL to give the member (http://127.0.0.1:port/v1).
	URL string
}

// StartProxy starts a proxy to target over transport that records member's feed requests in log.
func StartProxy(target *url.URL, transport http.RoundTripper, member string, log *PollLog) (*Proxy, error) {
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme = target.Scheme
			r.Out.URL.Host = target.Host
			r.Out.Host = target.Host
		},
		Transport: transport,
		// The request URL holds the access token: errors are answered, never logged.
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, _ error) { w.WriteHeader(http.StatusBadGateway) },
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{URL: "http://" + ln.Addr().String() + "/v1"}
	p.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tag, feed := FeedTag(r.URL.EscapedPath())
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		rp.ServeHTTP(sw, r)
		if feed {
			log.Add(Poll{Member: member, Tag: tag, Start: start, End: time.Now(), Status: sw.status})
		}
	})}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// Close stops the proxy.
func (p *Proxy) Close() { _ = p.srv.Close() }

// FeedTag returns the tag of a /v1/tags/{tag}/media/recent path (escaped, with or without .json), and whether the
// path is one.
func FeedTag(escapedPath string) (string, bool) {
	rest, ok := strings.CutPrefix(escapedPath, "/v1/tags/")
	if !ok {
		return "", false
	}
	rest, ok = strings.CutSuffix(strings.TrimSuffix(rest, ".json"), "/media/recent")
	if !ok || strings.Contains(rest, "/") {
		return "", false
	}
	tag, err := url.PathUnescape(rest)
	return tag, err == nil
}

// statusWriter remembers the status code of the response it writes.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
