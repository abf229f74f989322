package testenv

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Server is the simulated v1 API. Its methods are safe for concurrent use.
type Server struct {
	cfg   Config
	log   *slog.Logger
	codec cursorCodec
	users []wireUser

	tagsMu sync.RWMutex
	tags   map[string]*feed
	order  []*feed

	mediaMu sync.RWMutex
	media   map[string]*media // by media id, servable or retained

	credsMu  sync.RWMutex
	creds    map[string]*credential // by "t:"+token or "c:"+client id
	credList []*credential

	faults    atomic.Pointer[Faults]
	faultMu   sync.Mutex
	faultRand func() float64

	downUntil atomic.Int64 // unix nanoseconds; 0 = up

	// clock is the time of API requests and of what they depend on (rate-limit windows, revocations, scheduled
	// faults, Down); time.Now, or a test's clock set before Start. Media are posted in real time.
	clock func() time.Time

	truthMu sync.Mutex

	statsMu   sync.Mutex
	requests  int64
	byOutcome map[string]int64

	lifeMu    sync.Mutex
	started   bool
	closed    bool
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	api       *http.Server
	admin     *http.Server
	apiLn     net.Listener
	adminLn   net.Listener
	tlsConfig *tls.Config
	certDir   string
	removeDir bool
	caFile    string
	baseURL   string
	adminURL  string
	client    *http.Client
	connsMu   sync.Mutex
	conns     map[net.Conn]struct{}
	bufPool   sync.Pool
	started0  time.Time
	clientTLS bool
}

// New validates cfg and builds a server with its initial media. It does not listen yet: call Start.
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger,
		codec:     cursorCodec{style: cfg.Cursors, key: mix(uint64(cfg.Seed) ^ 0x5EED)},
		tags:      make(map[string]*feed),
		media:     make(map[string]*media),
		creds:     make(map[string]*credential),
		byOutcome: make(map[string]int64),
		conns:     make(map[net.Conn]struct{}),
		clock:     time.Now,
	}
	s.users = userPool(cfg.Seed)
	f := cfg.Faults
	s.faults.Store(&f)
	rng := newLockedRand(cfg.Seed)
	s.faultRand = rng.Float64
	for _, t := range cfg.Tokens {
		s.addCredential(kindToken, t)
	}
	for _, c := range cfg.ClientIDs {
		s.addCredential(kindClientID, c)
	}
	for _, tc := range cfg.Tags {
		s.AddTag(tc)
	}
	return s, nil
}

// Start listens on Addr (and the admin address) and starts the workload generator.
func (s *Server) Start() error {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.started {
		return errors.New("testenv: server already started")
	}
	scheme := "https"
	if s.cfg.PlainHTTP {
		scheme = "http"
	} else {
		dir := s.cfg.CertDir
		if dir == "" {
			d, err := os.MkdirTemp("", "igsim-ca-")
			if err != nil {
				return fmt.Errorf("testenv: cert dir: %w", err)
			}
			dir, s.removeDir = d, true
		}
		tc, caFile, err := makeTLS(dir, s.cfg.Addr)
		if err != nil {
			s.cleanupDir()
			return err
		}
		s.tlsConfig, s.caFile, s.certDir = tc, caFile, dir
	}
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		s.cleanupDir()
		return fmt.Errorf("testenv: listen %s: %w", s.cfg.Addr, err)
	}
	adminAddr := s.cfg.AdminAddr
	if adminAddr == "" {
		host, _, _ := net.SplitHostPort(ln.Addr().String())
		adminAddr = net.JoinHostPort(host, "0")
	}
	aln, err := net.Listen("tcp", adminAddr)
	if err != nil {
		ln.Close()
		s.cleanupDir()
		return fmt.Errorf("testenv: listen admin %s: %w", adminAddr, err)
	}
	s.apiLn = &downListener{Listener: ln, s: s}
	s.adminLn = aln
	s.baseURL = scheme + "://" + dialable(ln.Addr()) + "/v1"
	s.adminURL = scheme + "://" + dialable(aln.Addr()) + "/_admin"
	s.api = &http.Server{
		Handler:           http.HandlerFunc(s.serveAPI),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second, // bounds a request body sent slowly
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    64 << 10,
		TLSNextProto:      map[string]func(*http.Server, *tls.Conn, http.Handler){}, // HTTP/1.1: resets need Hijack
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		ConnState:         s.trackConn,
	}
	s.admin = &http.Server{
		Handler:           s.adminHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       90 * time.Second,
		TLSNextProto:      map[string]func(*http.Server, *tls.Conn, http.Handler){},
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.started = true
	s.started0 = time.Now()
	apiLn, adminLn := s.apiLn, s.adminLn
	if s.tlsConfig != nil {
		apiLn = tls.NewListener(apiLn, s.tlsConfig)
		adminLn = tls.NewListener(adminLn, s.tlsConfig)
	}
	s.wg.Add(2)
	go func() { defer s.wg.Done(); _ = s.api.Serve(apiLn) }()
	go func() { defer s.wg.Done(); _ = s.admin.Serve(adminLn) }()
	s.tagsMu.RLock()
	for _, f := range s.order {
		s.startArrivals(f)
	}
	s.tagsMu.RUnlock()
	s.log.Info("igsim listening", "url", s.baseURL, "admin", s.adminURL, "ca", s.caFile)
	return nil
}

// Close stops the server, the workload generator and removes a temporary certificate directory. It is safe to
// call more than once.
func (s *Server) Close() error {
	s.lifeMu.Lock()
	if s.closed {
		s.lifeMu.Unlock()
		return nil
	}
	s.closed = true
	started := s.started
	s.lifeMu.Unlock()
	var err error
	if started {
		s.cancel()
		err = errors.Join(s.api.Close(), s.admin.Close())
		s.wg.Wait()
	}
	s.cleanupDir()
	return err
}

func (s *Server) cleanupDir() {
	if s.removeDir && s.certDir != "" {
		_ = os.RemoveAll(s.certDir)
	}
}

// URL returns the API base URL, ending in "/v1" (e.g. "https://127.0.0.1:41234/v1"). It is "" before Start.
func (s *Server) URL() string { return s.baseURL }

// AdminURL returns the base URL of the admin endpoint, ending in "/_admin". It is "" before Start.
func (s *Server) AdminURL() string { return s.adminURL }

// CAFile returns the path of the PEM file of the CA that signed the server's certificate, or "" in plain HTTP.
func (s *Server) CAFile() string { return s.caFile }

// dialable returns addr as host:port with an unspecified host (0.0.0.0, ::) replaced by loopback.
func dialable(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		if ip.To4() != nil {
			host = "127.0.0.1"
		} else {
			host = "::1"
		}
	}
	return net.JoinHostPort(host, port)
}

// Client returns an HTTP client that trusts the server's CA, for the API and the admin endpoint, with a 30 s
// timeout. Call it after Start: before, the CA does not exist yet.
func (s *Server) Client() *http.Client {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	if s.client != nil && (s.clientTLS || s.tlsConfig == nil) {
		return s.client
	}
	{
		tr := &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConns:        64,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     60 * time.Second,
		}
		if s.tlsConfig != nil {
			tr.TLSClientConfig = &tls.Config{RootCAs: s.tlsConfig.RootCAs, MinVersion: tls.VersionTLS12}
		}
		s.client = &http.Client{Transport: tr, Timeout: 30 * time.Second}
		s.clientTLS = s.tlsConfig != nil
	}
	return s.client
}

// trackConn remembers open API connections so that Down can reset them.
func (s *Server) trackConn(c net.Conn, st http.ConnState) {
	s.connsMu.Lock()
	defer s.connsMu.Unlock()
	switch st {
	case http.StateNew:
		s.conns[c] = struct{}{}
	case http.StateClosed, http.StateHijacked:
		delete(s.conns, c)
	}
}

// AddTag adds a tag with its workload, or changes the rate of an existing one (Initial is then ignored).
// Invalid configurations are logged and ignored.
func (s *Server) AddTag(tc TagConfig) {
	if err := validTagConfig(tc); err != nil {
		s.log.Warn("igsim: add tag refused", "err", err)
		return
	}
	s.tagsMu.Lock()
	if f, ok := s.tags[tc.Name]; ok {
		s.tagsMu.Unlock()
		s.SetRate(f.name, tc.Rate)
		return
	}
	if len(s.order) >= maxTags {
		s.tagsMu.Unlock()
		s.log.Warn("igsim: add tag refused: too many tags", "tag", tc.Name, "max", maxTags)
		return
	}
	f := newFeed(s.cfg.Seed, tc.Name, len(s.order), tc.Rate, s.codec, s.users)
	s.tags[tc.Name] = f
	s.order = append(s.order, f)
	s.tagsMu.Unlock()

	if tc.Initial > 0 {
		// Initial media were created over the past, a few seconds to minutes apart, and are all visible now.
		now := time.Now()
		gaps := make([]time.Duration, tc.Initial)
		f.mu.Lock()
		var back time.Duration
		for i := tc.Initial - 1; i >= 0; i-- {
			gaps[i] = back
			back += time.Duration(1+f.arrivals.IntN(120)) * time.Second
		}
		f.mu.Unlock()
		for i := 0; i < tc.Initial; i++ {
			s.post(f, now, now.Add(-gaps[i]), false)
		}
	}
	s.lifeMu.Lock()
	if s.started && !s.closed {
		s.startArrivals(f)
	}
	s.lifeMu.Unlock()
}

// SetRate changes a tag's posting rate (media per second); unknown tags and invalid rates are ignored.
func (s *Server) SetRate(tag string, rate float64) {
	f := s.feed(tag)
	if f == nil || validTagConfig(TagConfig{Name: tag, Rate: rate}) != nil {
		return
	}
	f.mu.Lock()
	f.rate = rate
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Post makes n media appear now at the head of the tag's feed, in order (the last is the newest). The tag is
// created (with rate 0) if it does not exist.
func (s *Server) Post(tag string, n int) []Truth {
	f := s.feedOrCreate(tag)
	if f == nil || n <= 0 {
		return nil
	}
	out := make([]Truth, 0, n)
	now := time.Now()
	for i := 0; i < n; i++ {
		out = append(out, s.post(f, now, now, false))
	}
	return out
}

// PostLate makes one media appear now at the head of the tag's feed with a created_time age in the past, as
// when an old photo's caption is edited to add the tag.
func (s *Server) PostLate(tag string, age time.Duration) Truth {
	f := s.feedOrCreate(tag)
	if f == nil {
		return Truth{}
	}
	now := time.Now()
	if age < 0 {
		age = 0
	}
	return s.post(f, now, now.Add(-age), true)
}

// post appends one media to f and records its truth.
func (s *Server) post(f *feed, now, created time.Time, late bool) Truth {
	f.mu.Lock()
	m, ti := f.appendLocked(now, created, late)
	dropped := f.trimLocked(s.cfg.Retention)
	tr := f.truths[ti]
	f.mu.Unlock()
	s.mediaMu.Lock()
	s.media[m.wire.ID] = m
	for _, d := range dropped {
		delete(s.media, d.wire.ID)
	}
	s.mediaMu.Unlock()
	s.writeTruth(tr)
	return tr
}

// Delete removes a media from a tag's feed; it reports whether it was there.
func (s *Server) Delete(tag, mediaID string) bool {
	f := s.feed(tag)
	if f == nil {
		return false
	}
	now := time.Now()
	f.mu.Lock()
	_, ok := f.removeLocked(mediaID)
	var tr Truth
	if ok {
		for i := len(f.truths) - 1; i >= 0; i-- {
			if f.truths[i].MediaID == mediaID {
				f.truths[i].DeletedAt = now
				tr = f.truths[i]
				break
			}
		}
	}
	f.mu.Unlock()
	if !ok {
		return false
	}
	s.mediaMu.Lock()
	delete(s.media, mediaID)
	s.mediaMu.Unlock()
	s.writeTruth(tr)
	return true
}

func (s *Server) writeTruth(tr Truth) {
	if s.cfg.GroundTruth == nil {
		return
	}
	line, err := json.Marshal(tr)
	if err != nil {
		return
	}
	line = append(line, '\n')
	s.truthMu.Lock()
	defer s.truthMu.Unlock()
	if _, err := s.cfg.GroundTruth.Write(line); err != nil {
		s.log.Warn("igsim: ground truth write failed", "err", err)
	}
}

// GroundTruth returns every media posted so far: tags in the order they were added, each tag's media in the
// order they appeared at the head of its feed, deletions marked by DeletedAt.
func (s *Server) GroundTruth() []Truth {
	s.tagsMu.RLock()
	feeds := append([]*feed(nil), s.order...)
	s.tagsMu.RUnlock()
	var out []Truth
	for _, f := range feeds {
		f.mu.RLock()
		out = append(out, f.truths...)
		f.mu.RUnlock()
	}
	return out
}

func (s *Server) feed(tag string) *feed {
	s.tagsMu.RLock()
	defer s.tagsMu.RUnlock()
	return s.tags[tag]
}

func (s *Server) feedOrCreate(tag string) *feed {
	if f := s.feed(tag); f != nil {
		return f
	}
	s.AddTag(TagConfig{Name: tag})
	return s.feed(tag)
}

// SetFaults replaces the injected faults. Invalid faults are logged and ignored.
func (s *Server) SetFaults(f Faults) {
	if err := f.validate(); err != nil {
		s.log.Warn("igsim: faults refused", "err", err)
		return
	}
	f.Schedule = append([]ScheduledFault(nil), f.Schedule...)
	s.faults.Store(&f)
}

// Down makes the whole API unreachable for d: new connections are reset on accept and requests on open
// connections are answered by a reset. The admin endpoint stays up.
func (s *Server) Down(d time.Duration) {
	if d <= 0 {
		return
	}
	until := s.clock().Add(d).UnixNano()
	for {
		old := s.downUntil.Load()
		if old >= until || s.downUntil.CompareAndSwap(old, until) {
			break
		}
	}
	// Reset idle keep-alive connections now, as a crashed server would.
	s.connsMu.Lock()
	conns := make([]net.Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.connsMu.Unlock()
	for _, c := range conns {
		resetConn(c)
	}
	s.log.Info("igsim: down", "for", d)
}

func (s *Server) isDown(now time.Time) bool {
	u := s.downUntil.Load()
	return u != 0 && now.UnixNano() < u
}

// Stats returns request counts by outcome and per credential.
func (s *Server) Stats() Stats {
	s.statsMu.Lock()
	st := Stats{Requests: s.requests, ByOutcome: make(map[string]int64, len(s.byOutcome))}
	for k, v := range s.byOutcome {
		st.ByOutcome[k] = v
	}
	s.statsMu.Unlock()
	now := s.clock()
	s.credsMu.RLock()
	for _, c := range s.credList {
		st.Credentials = append(st.Credentials, CredentialStats{
			Index:       c.index,
			Kind:        c.kind,
			Fingerprint: c.fp,
			Requests:    c.requests.Load(),
			Limited:     c.limited.Load(),
			Revoked:     c.revoked(now),
		})
	}
	s.credsMu.RUnlock()
	sort.Slice(st.Credentials, func(i, j int) bool { return st.Credentials[i].Index < st.Credentials[j].Index })
	return st
}

func (s *Server) count(outcome string) {
	s.statsMu.Lock()
	s.requests++
	s.byOutcome[outcome]++
	s.statsMu.Unlock()
}

// startArrivals runs the Poisson arrival loop of f until the server closes, once per feed. The caller holds
// s.lifeMu, so that the loop is never added while Close waits.
func (s *Server) startArrivals(f *feed) {
	if f.running {
		return
	}
	f.running = true
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.arrivals(f)
	}()
}

func (s *Server) arrivals(f *feed) {
	ctx := s.ctx
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		f.mu.Lock()
		rate := f.rate
		var gap time.Duration
		if rate > 0 {
			g := f.arrivals.ExpFloat64() / rate
			if g > 1e6 {
				g = 1e6
			}
			gap = time.Duration(g * float64(time.Second))
		}
		f.mu.Unlock()
		if rate <= 0 {
			select {
			case <-ctx.Done():
				return
			case <-f.wake:
				continue
			}
		}
		timer.Reset(gap)
		select {
		case <-ctx.Done():
			return
		case <-f.wake:
			timer.Stop() // Go 1.23+ timers: no stale tick is delivered after Stop or Reset
			continue
		case <-timer.C:
			now := time.Now()
			s.post(f, now, now, false)
		}
	}
}

// tagNames returns the known tags in order.
func (s *Server) tagNames() []*feed {
	s.tagsMu.RLock()
	defer s.tagsMu.RUnlock()
	return append([]*feed(nil), s.order...)
}

// String describes the server without credentials.
func (s *Server) String() string {
	return fmt.Sprintf("igsim(%s, cursors=%s, over=%s)", s.baseURL, s.cfg.Cursors, s.cfg.OverLimit)
}

var _ fmt.Stringer = (*Server)(nil)

// validTagName reports whether s is a tag: 1-100 letters, digits or '_'.
func validTagName(s string) bool {
	if s == "" || len(s) > 400 {
		return false
	}
	n := 0
	for _, r := range s {
		n++
		if r == '_' || isLetterOrDigit(r) {
			continue
		}
		return false
	}
	return n <= 100 && !strings.ContainsRune(s, 0xFFFD)
}
