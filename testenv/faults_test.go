package testenv

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestFaultsByProbability(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		faults Faults
		over   OverLimit
		check  func(t *testing.T, resp *http.Response, body []byte, err error)
	}{
		{"Down503Envelope answers 503 with the envelope", Faults{Down503Envelope: 1}, Over503, func(t *testing.T, r *http.Response, b []byte, err error) {
			wantEnvelope(t, r, b, err, 503, errUnavailable)
		}},
		{"Down503HTML answers 503 with an HTML page", Faults{Down503HTML: 1}, Over503, func(t *testing.T, r *http.Response, b []byte, err error) {
			if err != nil || r.StatusCode != 503 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(b), "<html>") {
				t.Errorf("err %v status %v type %q body %.80q", err, status(r), r.Header.Get("Content-Type"), b)
			}
			if json.Valid(b) {
				t.Error("the HTML body is valid JSON")
			}
		}},
		{"Error500 answers 500 with the envelope", Faults{Error500: 1}, Over503, func(t *testing.T, r *http.Response, b []byte, err error) {
			wantEnvelope(t, r, b, err, 500, errAPI)
		}},
		{"RateLimit429 answers 429 OAuthRateLimitException", Faults{RateLimit429: 1}, Over503, func(t *testing.T, r *http.Response, b []byte, err error) {
			wantEnvelope(t, r, b, err, 429, errOAuthRateLimit)
		}},
		{"RateLimit429 in flat mode answers the flat body", Faults{RateLimit429: 1}, Over429Flat, func(t *testing.T, r *http.Response, b []byte, err error) {
			var v struct {
				Code      int    `json:"code"`
				ErrorType string `json:"error_type"`
			}
			if err != nil || r.StatusCode != 429 || json.Unmarshal(b, &v) != nil || v.Code != 429 || v.ErrorType != errOAuthRateLimit {
				t.Errorf("err %v status %v body %.120s", err, status(r), b)
			}
		}},
		{"Slow answers normally after the delay", Faults{Slow: 1, SlowDelay: 30 * time.Millisecond}, Over503, func(t *testing.T, r *http.Response, b []byte, err error) {
			if err != nil || r.StatusCode != 200 || !json.Valid(b) {
				t.Errorf("err %v status %v", err, status(r))
			}
		}},
		{"Reset closes the connection without an answer", Faults{Reset: 1}, Over503, func(t *testing.T, r *http.Response, b []byte, err error) {
			if err == nil {
				t.Fatalf("got status %d, want a connection error", r.StatusCode)
			}
			if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("error %v is not a reset or EOF", err)
			}
		}},
		{"Truncated answers 200 with JSON cut short", Faults{Truncated: 1}, Over503, func(t *testing.T, r *http.Response, b []byte, err error) {
			if err != nil || r.StatusCode != 200 {
				t.Fatalf("err %v status %v", err, status(r))
			}
			if json.Valid(b) || len(b) < 10 {
				t.Errorf("body of %d bytes is valid JSON or empty", len(b))
			}
			if cl, _ := strconv.Atoi(r.Header.Get("Content-Length")); cl != len(b) {
				t.Errorf("Content-Length %d, body %d: the HTTP answer itself must be complete", cl, len(b))
			}
		}},
		{"a scheduled fault applies while active", Faults{Schedule: []ScheduledFault{{Kind: "error500", At: time.Now().Add(-time.Minute), For: time.Hour}}}, Over503, func(t *testing.T, r *http.Response, b []byte, err error) {
			wantEnvelope(t, r, b, err, 500, errAPI)
		}},
		{"a scheduled fault that ended does not apply", Faults{Schedule: []ScheduledFault{{Kind: FaultReset, At: time.Now().Add(-time.Hour), For: time.Minute}}}, Over503, func(t *testing.T, r *http.Response, b []byte, err error) {
			if err != nil || r.StatusCode != 200 {
				t.Errorf("err %v status %v", err, status(r))
			}
		}},
		{"a scheduled fault takes precedence over probabilities", Faults{Error500: 1, Schedule: []ScheduledFault{{Kind: FaultDown503Envelope, At: time.Now().Add(-time.Minute), For: time.Hour}}}, Over503, func(t *testing.T, r *http.Response, b []byte, err error) {
			wantEnvelope(t, r, b, err, 503, errUnavailable)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := plain(TagConfig{Name: "flt", Initial: 40})
			cfg.Faults, cfg.OverLimit = tc.faults, tc.over
			s := start(t, cfg)
			resp, err := s.Client().Get(s.URL() + "/tags/flt/media/recent?access_token=" + testToken)
			var body []byte
			if err == nil {
				body, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			tc.check(t, resp, body, err)
			// Faults do not count against the limit.
			if got := s.Stats().Credentials[0].Requests; got != 0 && tc.faults.Slow == 0 && tc.faults.Truncated == 0 && len(tc.faults.Schedule) == 0 {
				t.Errorf("a faulted request counted against the limit (%d)", got)
			}
		})
	}
}

func status(r *http.Response) any {
	if r == nil {
		return "none"
	}
	return r.StatusCode
}

func wantEnvelope(t *testing.T, r *http.Response, b []byte, err error, code int, typ string) {
	t.Helper()
	if err != nil {
		t.Fatalf("error %v", err)
	}
	var e envelope
	if jerr := json.Unmarshal(b, &e); jerr != nil || r.StatusCode != code || e.Meta.Code != code || e.Meta.ErrorType != typ {
		t.Errorf("status %d body %.200s, want %d %s", r.StatusCode, b, code, typ)
	}
}

func TestSetFaultsChangesFaultsAtRunTime(t *testing.T) {
	t.Parallel()
	s := start(t, plain(TagConfig{Name: "sf", Initial: 1}))
	if a := get(t, s, "/tags/sf", auth()); a.status != 200 {
		t.Fatalf("status %d before faults", a.status)
	}
	s.SetFaults(Faults{Error500: 1})
	if a := get(t, s, "/tags/sf", auth()); a.status != 500 {
		t.Fatalf("status %d with Error500=1", a.status)
	}
	s.SetFaults(Faults{Error500: 2}) // invalid: ignored
	if a := get(t, s, "/tags/sf", auth()); a.status != 500 {
		t.Fatalf("an invalid SetFaults replaced the faults (status %d)", a.status)
	}
	s.SetFaults(Faults{})
	if a := get(t, s, "/tags/sf", auth()); a.status != 200 {
		t.Fatalf("status %d after clearing faults", a.status)
	}
	st := s.Stats()
	if st.ByOutcome["fault_Error500"] != 2 || st.ByOutcome[outcomeOK] != 2 {
		t.Errorf("outcomes %v", st.ByOutcome)
	}
}

func TestFaultProbabilityIsAProbability(t *testing.T) {
	t.Parallel()
	cfg := plain(TagConfig{Name: "half", Initial: 1})
	cfg.Faults = Faults{Error500: 0.5}
	s := start(t, cfg)
	n500 := 0
	for i := 0; i < 200; i++ {
		if serve(t, s, "/tags/half", auth()).status == 500 { // in-process: the draw, not the transport, is tested here
			n500++
		}
	}
	// With p=0.5 over 200 draws, fewer than 50 or more than 150 has probability below 1e-12.
	if n500 < 50 || n500 > 150 {
		t.Errorf("%d of 200 answers were 500 with p=0.5", n500)
	}
}

func TestDownResetsConnectionsThenRecovers(t *testing.T) {
	t.Parallel()
	clock := newTestClock()
	s := startWithClock(t, plain(TagConfig{Name: "dn", Initial: 1}), clock)
	if a := get(t, s, "/tags/dn", auth()); a.status != 200 { // leaves a keep-alive connection open
		t.Fatalf("status %d", a.status)
	}
	s.Down(2 * time.Second)
	down := func(when string) {
		t.Helper()
		resp, err := s.Client().Get(s.URL() + "/tags/dn?client_id=client-1")
		if err == nil {
			resp.Body.Close()
			t.Fatalf("status %d %s, want a connection error", resp.StatusCode, when)
		}
	}
	down("while down")
	// The admin endpoint stays up.
	if r, err := s.Client().Get(s.AdminURL() + "/stats"); err != nil {
		t.Fatalf("admin while down: %v", err)
	} else {
		r.Body.Close()
	}
	clock.Advance(2*time.Second - 1)
	down("just before the outage ends")
	clock.Advance(1)
	waitAPIBack(t, s, "dn")
	if s.Stats().ByOutcome[outcomeDown] == 0 {
		t.Error("no request counted as down")
	}
}

func TestRevokeTokenAtTakesEffectAtThatTime(t *testing.T) {
	t.Parallel()
	clock := newTestClock()
	s := startWithClock(t, plain(TagConfig{Name: "rv", Initial: 1}), clock)
	s.RevokeTokenAt(testToken, clock.Now().Add(time.Minute))
	errorType := func() string { return decode(t, get(t, s, "/tags/rv", auth())).Meta.ErrorType }
	clock.Advance(time.Minute - 1)
	if got := errorType(); got != "" {
		t.Fatalf("just before the revocation: error %q, want none", got)
	}
	clock.Advance(1)
	if got := errorType(); got != errOAuthAccessToken {
		t.Fatalf("at the revocation: error %q, want %s", got, errOAuthAccessToken)
	}
	if !s.Stats().Credentials[0].Revoked {
		t.Error("Stats does not show the revocation")
	}
	s.AddToken(testToken)
	if a := get(t, s, "/tags/rv", auth()); a.status != 200 {
		t.Errorf("AddToken did not lift the revocation: %d", a.status)
	}
}
