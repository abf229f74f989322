package testenv

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Error types of the API, as recorded.
const (
	errOAuthParameter   = "OAuthParameterException"
	errOAuthAccessToken = "OAuthAccessTokenException"
	errOAuthRateLimit   = "OAuthRateLimitException"
	errNotFound         = "APINotFoundError"
	errInvalidParams    = "APIInvalidParametersError"
	errAPI              = "APIError"
	errUnavailable      = "ServiceUnavailableException"
)

// Outcomes counted in Stats.ByOutcome.
const (
	outcomeOK          = "ok"
	outcomeLimited     = "rate_limited"
	outcomeAuth        = "auth_error"
	outcomeBadRequest  = "bad_request"
	outcomeNotFound    = "not_found"
	outcomeDown        = "down"
	outcomeInternal    = "internal_error"
	outcomeFaultPrefix = "fault_"
)

const deprecationWarning = "next_max_id and min_id are deprecated for this endpoint; use min_tag_id and max_tag_id instead"

const html503 = "<html><head><title>503 Service Unavailable</title></head><body><h1>503 Service Unavailable</h1>\n" +
	"No server is available to handle this request.\n</body></html>\n"

// Header values shared by every answer; net/http does not modify them.
var (
	hdrJSON         = []string{"application/json; charset=utf-8"}
	hdrJSONFlat     = []string{"application/json"}
	hdrJS           = []string{"text/javascript; charset=utf-8"}
	hdrHTML         = []string{"text/html"}
	hdrCacheControl = []string{"private, no-cache, no-store, must-revalidate"}
	hdrPragma       = []string{"no-cache"}
	hdrExpires      = []string{"Sat, 01 Jan 2000 00:00:00 GMT"}
	hdrVary         = []string{"Cookie, Accept-Language, Accept-Encoding"}
	hdrLanguage     = []string{"en"}
)

// apiError is an answer other than 200.
type apiError struct {
	status  int
	typ     string
	message string
	flat    bool // 2017 body without meta
	outcome string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.status, e.typ, e.message) }

func invalidParam(format string, args ...any) *apiError {
	return &apiError{status: 400, typ: errInvalidParams, message: fmt.Sprintf(format, args...), outcome: outcomeBadRequest}
}

func notFound(msg string) *apiError {
	return &apiError{status: 400, typ: errNotFound, message: msg, outcome: outcomeNotFound}
}

// endpoint identifies a route.
type endpoint int

const (
	epUnknown endpoint = iota
	epRecent
	epTag
	epTagSearch
	epPopular
	epMedia
	epLikes
)

// jsonSuffix is the format suffix the API accepted after any path ("/v1/tags/coffee/media/recent.json"), as
// python-instagram and other clients of the time sent it.
const jsonSuffix = ".json"

// route parses an API path. It returns the endpoint and its path argument (tag or media id). A ".json" suffix on
// the last segment is ignored: neither tags nor media ids contain a '.', so it never belongs to the argument.
func route(path string) (endpoint, string) {
	rest, ok := strings.CutPrefix(path, "/v1/")
	if !ok {
		return epUnknown, ""
	}
	rest = strings.TrimSuffix(rest, "/")
	rest = strings.TrimSuffix(rest, jsonSuffix)
	parts := strings.Split(rest, "/")
	switch {
	case len(parts) == 4 && parts[0] == "tags" && parts[2] == "media" && parts[3] == "recent":
		return epRecent, parts[1]
	case len(parts) == 2 && parts[0] == "tags" && parts[1] == "search":
		return epTagSearch, ""
	case len(parts) == 2 && parts[0] == "tags":
		return epTag, parts[1]
	case len(parts) == 2 && parts[0] == "media" && parts[1] == "popular":
		return epPopular, ""
	case len(parts) == 2 && parts[0] == "media":
		return epMedia, parts[1]
	case len(parts) == 3 && parts[0] == "media" && parts[2] == "likes":
		return epLikes, parts[1]
	}
	return epUnknown, ""
}

// apiRequest carries what the handlers need about one request.
type apiRequest struct {
	w         http.ResponseWriter
	r         *http.Request
	q         url.Values
	method    string
	callback  string
	truncate  bool
	cred      *credential
	credParam string // "access_token=..." or "client_id=...", escaped, for next_url
	// rate-limit headers
	headers   bool
	remaining int
}

// serveAPI answers one API request. Every path is bounded: no handler blocks except a Slow fault, which ends
// with the request's context.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	rq := &apiRequest{w: w, r: r, method: r.Method}
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("igsim: handler panic", "path", r.URL.Path, "panic", fmt.Sprint(v))
			s.count(outcomeInternal)
			s.replyError(rq, &apiError{status: 500, typ: errAPI, message: "Oops, an error occurred."})
		}
	}()
	now := s.clock()
	if s.isDown(now) {
		s.count(outcomeDown)
		resetRequest(w)
		return
	}
	switch fault := s.pickFault(now); fault {
	case "":
	case FaultDown503Envelope:
		s.count(outcomeFaultPrefix + fault)
		s.replyError(rq, &apiError{status: 503, typ: errUnavailable, message: "The server is temporarily unavailable."})
		return
	case FaultDown503HTML:
		s.count(outcomeFaultPrefix + fault)
		h := w.Header()
		h["Content-Type"] = hdrHTML
		h["Content-Length"] = []string{strconv.Itoa(len(html503))}
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(html503))
		return
	case FaultError500:
		s.count(outcomeFaultPrefix + fault)
		s.replyError(rq, &apiError{status: 500, typ: errAPI, message: "Oops, an error occurred."})
		return
	case FaultRateLimit429:
		s.count(outcomeFaultPrefix + fault)
		s.replyError(rq, s.overLimitError(int64(s.cfg.RequestsPerHour)+1, 429))
		return
	case FaultReset:
		s.count(outcomeFaultPrefix + fault)
		resetRequest(w)
		return
	case FaultSlow:
		s.countOnly(outcomeFaultPrefix + fault)
		f := s.faults.Load()
		d := f.SlowDelay
		if d == 0 {
			d = defaultSlowDelay
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			s.count(outcomeFaultPrefix + fault)
			return
		}
		now = s.clock()
	case FaultTruncated:
		s.countOnly(outcomeFaultPrefix + fault)
		rq.truncate = true
	}
	s.handle(rq, now)
}

// handle runs the API proper: parameters, route, authentication, limit, endpoint.
func (s *Server) handle(rq *apiRequest, now time.Time) {
	r := rq.r
	q, qerr := url.ParseQuery(r.URL.RawQuery)
	rq.q = q
	var paramErr *apiError
	if qerr != nil {
		paramErr = invalidParam("The query string could not be parsed.")
	}
	if r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodDelete {
		r.Body = http.MaxBytesReader(rq.w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil && paramErr == nil {
			paramErr = invalidParam("The request body could not be parsed.")
		}
		for k, v := range r.PostForm {
			if _, ok := q[k]; !ok {
				q[k] = v
			}
		}
		if r.Method == http.MethodPost {
			switch m := strings.ToUpper(q.Get("_method")); m {
			case "":
			case http.MethodPut, http.MethodDelete:
				rq.method = m
			default:
				if paramErr == nil {
					paramErr = invalidParam("_method must be PUT or DELETE.")
				}
			}
		}
	}
	if cb := q.Get("callback"); cb != "" {
		if validCallback(cb) {
			rq.callback = cb
		} else if paramErr == nil {
			paramErr = invalidParam("The callback parameter is not a valid JavaScript identifier.")
		}
	}

	ep, arg := route(r.URL.Path)
	authErr := s.authenticate(rq, now)
	if rq.cred != nil {
		ok, remaining, total := rq.cred.take(now, s.cfg.RequestsPerHour, s.RateWindow())
		rq.cred.requests.Add(1)
		if !ok {
			rq.cred.limited.Add(1)
			if s.cfg.OverLimit != Over429Flat {
				rq.headers, rq.remaining = true, 0
			}
			s.fail(rq, s.overLimitError(total, 0))
			return
		}
		rq.headers, rq.remaining = true, remaining
	} else {
		// Answers to unknown credentials still carry the headers, as recorded.
		rq.headers, rq.remaining = true, s.cfg.RequestsPerHour
	}
	if ep == epUnknown {
		s.fail(rq, notFound("this request path is not recognized"))
		return
	}
	if authErr != nil {
		s.fail(rq, authErr)
		return
	}
	if paramErr != nil {
		s.fail(rq, paramErr)
		return
	}
	if ep != epLikes && rq.method != http.MethodGet && rq.method != http.MethodHead {
		// Every endpoint but likes (which takes POST and DELETE too) is read-only.
		s.fail(rq, notFound("this endpoint does not support "+rq.method))
		return
	}
	var e *apiError
	switch ep {
	case epRecent:
		e = s.serveRecent(rq, arg)
	case epTag:
		e = s.serveTag(rq, arg)
	case epTagSearch:
		e = s.serveTagSearch(rq)
	case epPopular:
		e = s.servePopular(rq)
	case epMedia:
		e = s.serveMedia(rq, arg)
	case epLikes:
		e = s.serveLikes(rq, arg)
	}
	if e != nil {
		s.fail(rq, e)
		return
	}
	s.count(outcomeOK)
}

// RequestsPerHour returns the limit of each credential per simulated hour (Config.RequestsPerHour after
// defaults), the value of every X-Ratelimit-Limit header.
func (s *Server) RequestsPerHour() int { return s.cfg.RequestsPerHour }

// RateWindow returns the real duration of the simulated hour over which each credential's Config.RequestsPerHour
// requests are counted: one hour divided by Config.TimeScale (at least 1 ns). The X-Ratelimit headers count per
// this window, so a client that paces itself from them must use it as its hour: for tagstream,
// poller.Config.RateWindow.
func (s *Server) RateWindow() time.Duration {
	w := time.Duration(float64(time.Hour) / s.cfg.TimeScale)
	if w <= 0 {
		w = 1
	}
	return w
}

// authenticate finds the request's credential. It sets rq.cred for a valid one and returns the API's error
// otherwise.
func (s *Server) authenticate(rq *apiRequest, now time.Time) *apiError {
	if tok := rq.q.Get("access_token"); tok != "" {
		c := s.lookupCredential(kindToken, tok)
		if c == nil || c.revoked(now) {
			return &apiError{status: 400, typ: errOAuthAccessToken, message: "The access_token provided is invalid.", outcome: outcomeAuth}
		}
		rq.cred, rq.credParam = c, "access_token="+url.QueryEscape(tok)
		return nil
	}
	if id := rq.q.Get("client_id"); id != "" {
		c := s.lookupCredential(kindClientID, id)
		if c == nil {
			return &apiError{status: 400, typ: errOAuthParameter, message: "The client_id provided is invalid and does not match a valid application.", outcome: outcomeAuth}
		}
		rq.cred, rq.credParam = c, "client_id="+url.QueryEscape(id)
		return nil
	}
	return &apiError{status: 400, typ: errOAuthParameter, message: "Missing client_id or access_token URL parameter.", outcome: outcomeAuth}
}

// overLimitError is the answer over the limit; status 0 means the configured one.
func (s *Server) overLimitError(total int64, status int) *apiError {
	msg := fmt.Sprintf("You have exceeded the maximum number of requests per hour. You have performed a total of %d "+
		"requests in the last hour. Our general maximum limit is set at %d requests per hour.", total, s.cfg.RequestsPerHour)
	e := &apiError{status: status, typ: errOAuthRateLimit, message: msg, outcome: outcomeLimited}
	switch s.cfg.OverLimit {
	case Over429:
		if e.status == 0 {
			e.status = 429
		}
	case Over429Flat:
		if e.status == 0 {
			e.status = 429
		}
		e.flat = e.status == 429
	default:
		if e.status == 0 {
			e.status = 503
		}
	}
	return e
}

func (s *Server) fail(rq *apiRequest, e *apiError) {
	if e.outcome == "" {
		e.outcome = outcomeBadRequest
	}
	s.count(e.outcome)
	s.replyError(rq, e)
}

// replyError writes an error envelope (or the flat 2017 body).
func (s *Server) replyError(rq *apiRequest, e *apiError) {
	b := make([]byte, 0, 96+len(e.message))
	if e.flat {
		b = append(b, `{"error_type":`...)
		b = appendJSONString(b, e.typ)
		b = append(b, `,"code":`...)
		b = strconv.AppendInt(b, int64(e.status), 10)
		b = append(b, `,"error_message":`...)
		b = appendJSONString(b, e.message)
		b = append(b, '}')
	} else {
		b = append(b, `{"meta":{"error_type":`...)
		b = appendJSONString(b, e.typ)
		b = append(b, `,"code":`...)
		b = strconv.AppendInt(b, int64(e.status), 10)
		b = append(b, `,"error_message":`...)
		b = appendJSONString(b, e.message)
		b = append(b, `}}`...)
	}
	s.reply(rq, e.status, b, e.flat)
}

// reply writes a JSON answer, wrapping it for JSONP and cutting it short for a Truncated fault.
func (s *Server) reply(rq *apiRequest, status int, body []byte, flat bool) {
	h := rq.w.Header()
	if rq.callback != "" {
		wrapped := make([]byte, 0, len(body)+len(rq.callback)+3)
		wrapped = append(wrapped, rq.callback...)
		wrapped = append(wrapped, '(')
		wrapped = append(wrapped, body...)
		wrapped = append(wrapped, ");"...)
		body = wrapped
		h["Content-Type"] = hdrJS
	} else if flat {
		h["Content-Type"] = hdrJSONFlat
	} else {
		h["Content-Type"] = hdrJSON
	}
	if rq.truncate && status == http.StatusOK && len(body) > 1 {
		body = body[:len(body)/2]
	}
	h["Cache-Control"] = hdrCacheControl
	h["Pragma"] = hdrPragma
	h["Expires"] = hdrExpires
	h["Vary"] = hdrVary
	h["Content-Language"] = hdrLanguage
	if rq.headers {
		h["X-Ratelimit-Limit"] = []string{strconv.Itoa(s.cfg.RequestsPerHour)}
		h["X-Ratelimit-Remaining"] = []string{strconv.Itoa(rq.remaining)}
	}
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	rq.w.WriteHeader(status)
	if rq.r.Method != http.MethodHead {
		_, _ = rq.w.Write(body)
	}
}

// parseRecent reads the parameters of tags/{tag}/media/recent.
func parseRecent(q url.Values, codec cursorCodec) (pageQuery, *apiError) {
	pq := pageQuery{count: defaultCount}
	if c := q.Get("count"); c != "" {
		n, err := strconv.Atoi(c)
		if err != nil {
			return pq, invalidParam("count must be an integer.")
		}
		switch {
		case n <= 0:
			pq.count = defaultCount
		case n > maxCount:
			pq.count = maxCount
		default:
			pq.count = n
		}
	}
	minC := q.Get("min_tag_id")
	if minC == "" {
		minC = q.Get("min_id")
	}
	maxC := q.Get("max_tag_id")
	if maxC == "" {
		maxC = q.Get("max_id")
	}
	var err error
	if pq.min, err = codec.parse(minC); err != nil {
		return pq, invalidParam("min_tag_id is not a valid cursor.")
	}
	if pq.max, err = codec.parse(maxC); err != nil {
		return pq, invalidParam("max_tag_id is not a valid cursor.")
	}
	return pq, nil
}

// serveRecent answers GET /v1/tags/{tag}/media/recent from pre-encoded media.
func (s *Server) serveRecent(rq *apiRequest, tag string) *apiError {
	if !validTagName(tag) {
		return invalidParam("Invalid tag name.")
	}
	pq, e := parseRecent(rq.q, s.codec)
	if e != nil {
		return e
	}
	bp, _ := s.bufPool.Get().(*pageBuf)
	if bp == nil {
		bp = &pageBuf{}
	}
	defer s.bufPool.Put(bp)
	items, newest, oldest := bp.items[:0], "", ""
	more := false
	if f := s.feed(tag); f != nil {
		items, newest, oldest, more = f.page(pq, s.cfg.InclusiveMin, s.cfg.Retention, &s.mediaMu, items)
	}
	bp.items = items
	b := bp.body[:0]
	b = append(b, `{"pagination":{`...)
	if more {
		b = append(b, `"next_max_tag_id":"`...)
		b = append(b, oldest...)
		b = append(b, `",`...)
	}
	b = append(b, `"deprecation_warning":"`+deprecationWarning+`"`...)
	if more {
		b = append(b, `,"next_max_id":"`...)
		b = append(b, oldest...)
		b = append(b, '"')
	}
	if newest != "" {
		b = append(b, `,"next_min_id":"`...)
		b = append(b, newest...)
		b = append(b, `","min_tag_id":"`...)
		b = append(b, newest...)
		b = append(b, '"')
	}
	if more {
		b = append(b, `,"next_url":`...)
		b = appendJSONString(b, s.nextURL(rq, tag, oldest))
	}
	b = append(b, `},"meta":{"code":200},"data":[`...)
	for i, it := range items {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, it...)
	}
	b = append(b, "]}"...)
	bp.body = b
	s.reply(rq, http.StatusOK, b, false)
	clear(bp.items)
	return nil
}

// pageBuf is a pooled buffer for assembling pages.
type pageBuf struct {
	items [][]byte
	body  []byte
}

// nextURL builds next_url the way the API did: the base URL, the caller's own credential, count if given, the
// caller's min_tag_id if given, and max_tag_id.
func (s *Server) nextURL(rq *apiRequest, tag, oldest string) string {
	var b strings.Builder
	b.WriteString(s.baseURL)
	b.WriteString("/tags/")
	b.WriteString(url.PathEscape(tag))
	b.WriteString("/media/recent?")
	b.WriteString(rq.credParam)
	if c := rq.q.Get("count"); c != "" {
		b.WriteString("&count=")
		b.WriteString(url.QueryEscape(c))
	}
	if m := rq.q.Get("min_tag_id"); m != "" {
		b.WriteString("&min_tag_id=")
		b.WriteString(url.QueryEscape(m))
	}
	b.WriteString("&max_tag_id=")
	b.WriteString(oldest)
	return b.String()
}

// serveTag answers GET /v1/tags/{tag}.
func (s *Server) serveTag(rq *apiRequest, tag string) *apiError {
	if !validTagName(tag) {
		return invalidParam("Invalid tag name.")
	}
	n := 0
	if f := s.feed(tag); f != nil {
		f.mu.RLock()
		n = f.count
		f.mu.RUnlock()
	}
	b := append([]byte(`{"meta":{"code":200},"data":{"media_count":`), strconv.Itoa(n)...)
	b = append(b, `,"name":`...)
	b = appendJSONString(b, tag)
	b = append(b, "}}"...)
	s.reply(rq, http.StatusOK, b, false)
	return nil
}

// serveTagSearch answers GET /v1/tags/search?q=: known tags starting with q (case-insensitive), an exact match
// first, then by media count.
func (s *Server) serveTagSearch(rq *apiRequest) *apiError {
	qv, ok := rq.q["q"]
	if !ok || len(qv) == 0 || qv[0] == "" {
		return invalidParam("Missing required parameter: q.")
	}
	term := strings.TrimPrefix(qv[0], "#")
	if len(term) > 400 {
		return invalidParam("q is too long.")
	}
	lower := strings.ToLower(term)
	type hit struct {
		name  string
		count int
	}
	var hits []hit
	for _, f := range s.tagNames() {
		if strings.HasPrefix(strings.ToLower(f.name), lower) {
			f.mu.RLock()
			hits = append(hits, hit{f.name, f.count})
			f.mu.RUnlock()
		}
	}
	sort.SliceStable(hits, func(i, j int) bool {
		ei, ej := hits[i].name == term, hits[j].name == term
		if ei != ej {
			return ei
		}
		return hits[i].count > hits[j].count
	})
	if len(hits) > 50 {
		hits = hits[:50]
	}
	b := []byte(`{"meta":{"code":200},"data":[`)
	for i, h := range hits {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"media_count":`...)
		b = strconv.AppendInt(b, int64(h.count), 10)
		b = append(b, `,"name":`...)
		b = appendJSONString(b, h.name)
		b = append(b, '}')
	}
	b = append(b, "]}"...)
	s.reply(rq, http.StatusOK, b, false)
	return nil
}

// servePopular answers GET /v1/media/popular: the 20 most recently visible media over all tags.
func (s *Server) servePopular(rq *apiRequest) *apiError {
	const n = 20
	var all []*media
	for _, f := range s.tagNames() {
		f.mu.RLock()
		items := f.items
		if len(items) > n {
			items = items[len(items)-n:]
		}
		all = append(all, items...)
		f.mu.RUnlock()
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].visible.After(all[j].visible) })
	if len(all) > n {
		all = all[:n]
	}
	b := []byte(`{"meta":{"code":200},"data":[`)
	for i, m := range all {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, s.mediaJSON(m)...)
	}
	b = append(b, "]}"...)
	s.reply(rq, http.StatusOK, b, false)
	return nil
}

// mediaJSON returns the current JSON of m (it changes when likes change).
func (s *Server) mediaJSON(m *media) []byte {
	return m.json(&s.mediaMu)
}

// serveMedia answers GET /v1/media/{id}.
func (s *Server) serveMedia(rq *apiRequest, id string) *apiError {
	m := s.lookupMedia(id)
	if m == nil {
		return notFound("invalid media id")
	}
	b := append([]byte(`{"meta":{"code":200},"data":`), s.mediaJSON(m)...)
	b = append(b, '}')
	s.reply(rq, http.StatusOK, b, false)
	return nil
}

func (s *Server) lookupMedia(id string) *media {
	if len(id) > 64 {
		return nil
	}
	s.mediaMu.RLock()
	defer s.mediaMu.RUnlock()
	return s.media[id]
}

// serveLikes answers GET, POST (PUT) and DELETE /v1/media/{id}/likes. Likes need an access token. A like changes
// the media's likes.count (and re-encodes it once); user_has_liked stays as the generator made it.
func (s *Server) serveLikes(rq *apiRequest, id string) *apiError {
	m := s.lookupMedia(id)
	if m == nil {
		return notFound("invalid media id")
	}
	switch rq.method {
	case http.MethodGet, http.MethodHead:
		b := []byte(`{"meta":{"code":200},"data":`)
		s.mediaMu.RLock()
		b = append(b, encodeJSON(m.wire.Likes.Data)...)
		s.mediaMu.RUnlock()
		b = append(b, '}')
		s.reply(rq, http.StatusOK, b, false)
		return nil
	case http.MethodPost, http.MethodPut, http.MethodDelete:
	default:
		return notFound("this endpoint does not support " + rq.method)
	}
	if rq.cred == nil || rq.cred.kind != kindToken {
		return &apiError{status: 400, typ: errOAuthParameter, message: "Missing access_token URL parameter.", outcome: outcomeAuth}
	}
	s.mediaMu.Lock()
	if m.likers == nil {
		m.likers = make(map[int]bool)
	}
	changed := false
	if rq.method == http.MethodDelete {
		if m.likers[rq.cred.index] {
			delete(m.likers, rq.cred.index)
			m.wire.Likes.Count--
			changed = true
		}
	} else if !m.likers[rq.cred.index] {
		m.likers[rq.cred.index] = true
		m.wire.Likes.Count++
		changed = true
	}
	if changed {
		m.changed()
	}
	s.mediaMu.Unlock()
	s.reply(rq, http.StatusOK, []byte(`{"meta":{"code":200},"data":null}`), false)
	return nil
}

// validCallback reports whether cb is a safe JSONP callback: a dotted JavaScript identifier of at most 128 bytes.
func validCallback(cb string) bool {
	if cb == "" || len(cb) > 128 {
		return false
	}
	for i := 0; i < len(cb); i++ {
		c := cb[i]
		switch {
		case c == '_' || c == '$' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'):
		case (c >= '0' && c <= '9') || c == '.' || c == '[' || c == ']':
			if i == 0 {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// appendJSONString appends s as a JSON string, escaping what JSON and JSONP need.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case r < 0x20 || r == 0x2028 || r == 0x2029:
			b = append(b, '\\', 'u', hex[(r>>12)&0xF], hex[(r>>8)&0xF], hex[(r>>4)&0xF], hex[r&0xF])
		case r == unicode.ReplacementChar:
			b = append(b, `\ufffd`...)
		default:
			b = append(b, string(r)...)
		}
	}
	return append(b, '"')
}

// resetRequest closes the request's connection with a TCP reset, without an answer.
func resetRequest(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	c, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	resetConn(c)
}

// resetConn closes c (a TCP or TLS connection) with SO_LINGER 0, so the peer sees a reset.
func resetConn(c net.Conn) {
	raw := c
	for {
		if u, ok := raw.(interface{ NetConn() net.Conn }); ok {
			raw = u.NetConn()
			continue
		}
		break
	}
	if tc, ok := raw.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
		_ = tc.Close()
		return
	}
	_ = raw.Close()
}

// downListener resets connections accepted while the API is down.
type downListener struct {
	net.Listener
	s *Server
}

// Accept returns the next connection, resetting those that arrive while the API is down.
func (l *downListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.s.isDown(l.s.clock()) {
			l.s.count(outcomeDown)
			resetConn(c)
			continue
		}
		return c, nil
	}
}

// pickFault returns the fault to inject into a request at now, or "".
func (s *Server) pickFault(now time.Time) string {
	f := s.faults.Load()
	for _, sf := range f.Schedule {
		if !now.Before(sf.At) && now.Before(sf.At.Add(sf.For)) {
			return canonicalFault(sf.Kind)
		}
	}
	probs := [...]float64{f.Down503Envelope, f.Down503HTML, f.Error500, f.RateLimit429, f.Slow, f.Reset, f.Truncated}
	for i, p := range probs {
		if p > 0 && s.faultRand() < p {
			return faultKinds[i]
		}
	}
	return ""
}

func (s *Server) countOnly(outcome string) {
	s.statsMu.Lock()
	s.byOutcome[outcome]++
	s.statsMu.Unlock()
}

func isLetterOrDigit(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r)
}
