package testenv

import (
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

const (
	kindToken    = "access_token"
	kindClientID = "client_id"
)

// credential is one access token or client id with its sliding-window rate limit.
type credential struct {
	kind  string
	value string
	index int
	fp    string

	revokedAt atomic.Int64 // unix nanoseconds; 0 = not revoked

	requests atomic.Int64
	limited  atomic.Int64

	mu      sync.Mutex
	times   []int64 // unix nanoseconds of counted requests inside the window, oldest first, from head
	head    int
	refused int64 // requests refused since the window was last not full, for the over-limit message
}

func credKey(kind, value string) string {
	if kind == kindToken {
		return "t:" + value
	}
	return "c:" + value
}

// addCredential registers a credential (or un-revokes a known one) and returns it.
func (s *Server) addCredential(kind, value string) *credential {
	key := credKey(kind, value)
	s.credsMu.Lock()
	defer s.credsMu.Unlock()
	if c, ok := s.creds[key]; ok {
		c.revokedAt.Store(0)
		return c
	}
	sum := sha256.Sum256([]byte(value))
	c := &credential{kind: kind, value: value, index: len(s.credList), fp: hex.EncodeToString(sum[:4])}
	s.creds[key] = c
	s.credList = append(s.credList, c)
	return c
}

func (s *Server) lookupCredential(kind, value string) *credential {
	s.credsMu.RLock()
	defer s.credsMu.RUnlock()
	return s.creds[credKey(kind, value)]
}

// AddToken accepts tok as an access token from now on (and lifts a revocation of it). Invalid tokens (empty or
// outside printable ASCII) are ignored.
func (s *Server) AddToken(tok string) {
	if !validCredential(tok) {
		s.log.Warn("igsim: add token refused: empty or not printable ASCII")
		return
	}
	s.addCredential(kindToken, tok)
}

// RevokeToken makes tok answer OAuthAccessTokenException from now on.
func (s *Server) RevokeToken(tok string) { s.RevokeTokenAt(tok, s.clock()) }

// RevokeTokenAt makes tok answer OAuthAccessTokenException from at on. An unknown token is registered as revoked.
func (s *Server) RevokeTokenAt(tok string, at time.Time) {
	if !validCredential(tok) {
		return
	}
	c := s.lookupCredential(kindToken, tok)
	if c == nil {
		c = s.addCredential(kindToken, tok)
	}
	ns := at.UnixNano()
	if ns == 0 {
		ns = 1
	}
	c.revokedAt.Store(ns)
	s.log.Info("igsim: token revocation scheduled", "token_index", c.index, "token_fp", c.fp, "at", at)
}

func (c *credential) revoked(now time.Time) bool {
	at := c.revokedAt.Load()
	return at != 0 && now.UnixNano() >= at
}

// take counts one request at now against the limit over window. It reports whether the request is allowed, the
// requests remaining after it, and the requests made in the window (including refused ones).
func (c *credential) take(now time.Time, limit int, window time.Duration) (ok bool, remaining int, total int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := now.UnixNano()
	cutoff := n - int64(window)
	for c.head < len(c.times) && c.times[c.head] <= cutoff {
		c.head++
	}
	if c.head == len(c.times) {
		c.times, c.head = c.times[:0], 0
	} else if c.head > 1024 && c.head*2 > len(c.times) {
		c.times = append(c.times[:0], c.times[c.head:]...)
		c.head = 0
	}
	inWindow := len(c.times) - c.head
	if inWindow >= limit {
		c.refused++
		return false, 0, int64(inWindow) + c.refused
	}
	c.refused = 0
	c.times = append(c.times, n)
	return true, limit - inWindow - 1, int64(inWindow) + 1
}

// lockedRand is a goroutine-safe random source.
type lockedRand struct {
	mu sync.Mutex
	r  *rand.Rand
}

func newLockedRand(seed int64) *lockedRand {
	return &lockedRand{r: rand.New(rand.NewPCG(uint64(seed), 0xFA17))}
}

func (l *lockedRand) Float64() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Float64()
}
