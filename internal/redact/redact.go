// Package redact keeps secrets (access tokens, client ids, broker passwords) out of everything a person or a
// program outside the process can read: log lines, error messages, metrics, status pages and terminal output.
//
// A Redactor knows the secrets of one process and replaces each of them, in the forms a URL or a server's echo
// carries them (as is, query-escaped and path-escaped), by Placeholder. It is the one redactor of the project: the
// poller, the publishers and the command all use it, so that every redacted text looks the same.
package redact

import (
	"errors"
	"net/url"
	"slices"
	"strings"
)

// Placeholder replaces every secret.
const Placeholder = "[REDACTED]"

// Redactor replaces known secrets in text and errors. The zero value and nil redact nothing. A Redactor is
// immutable and safe for concurrent use.
type Redactor struct {
	forms []string // every form of every secret, longest first, so that a secret inside another is not cut in half
}

// New returns a Redactor for secrets. Empty strings are ignored.
func New(secrets ...string) *Redactor {
	r := &Redactor{}
	for _, s := range secrets {
		if s == "" {
			continue
		}
		for _, f := range []string{s, url.QueryEscape(s), url.PathEscape(s)} {
			if !slices.Contains(r.forms, f) {
				r.forms = append(r.forms, f)
			}
		}
	}
	slices.SortFunc(r.forms, func(a, b string) int { return len(b) - len(a) })
	return r
}

// With returns a Redactor that also knows secrets.
func (r *Redactor) With(secrets ...string) *Redactor {
	if r == nil {
		return New(secrets...)
	}
	return New(append(slices.Clone(r.forms), secrets...)...)
}

// String returns s with every known secret replaced by Placeholder.
func (r *Redactor) String(s string) string {
	if r == nil {
		return s
	}
	for _, f := range r.forms {
		s = strings.ReplaceAll(s, f, Placeholder)
	}
	return s
}

// Error returns err unchanged when its text holds no secret, and otherwise an error whose text has every secret
// replaced. The returned error still answers errors.Is for the errors in err's chain, but gives no access to them
// (no Unwrap, no errors.As), since their own texts hold the secret. It returns nil for nil.
func (r *Redactor) Error(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := r.String(msg)
	if clean == msg {
		return err
	}
	return &redactedError{msg: clean, cause: err}
}

// Truncate returns s redacted and then cut to at most n bytes at a rune boundary, with "…" appended when cut.
// Redacting first matters: a cut made first can split a secret so that its head no longer matches.
func (r *Redactor) Truncate(s string, n int) string {
	s = r.String(s)
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// URL returns raw with its user info replaced and every query value whose key names a credential (access_token,
// client_id, client_secret, sig, token, password) replaced by Placeholder, then with known secrets redacted. A raw
// that does not parse is redacted as text.
func (r *Redactor) URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return r.String(raw)
	}
	if u.User != nil {
		u.User = url.User(Placeholder)
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			switch strings.ToLower(k) {
			case "access_token", "client_id", "client_secret", "sig", "token", "password":
				q[k] = []string{Placeholder}
			}
		}
		u.RawQuery = q.Encode()
	}
	return r.String(u.String())
}

type redactedError struct {
	msg   string
	cause error
}

func (e *redactedError) Error() string { return e.msg }

// Is lets errors.Is see the sentinels in the original chain without exposing the original texts.
func (e *redactedError) Is(target error) bool { return errors.Is(e.cause, target) }
