package testenv

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// duration is a time.Duration that reads JSON as a Go duration string ("1.5s") or as seconds (a number).
type duration time.Duration

// UnmarshalJSON reads "1.5s" or 1.5.
func (d *duration) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch x := v.(type) {
	case string:
		p, err := time.ParseDuration(x)
		if err != nil {
			return err
		}
		*d = duration(p)
	case float64:
		if x < 0 || x > 1e9 {
			return fmt.Errorf("duration %v out of range", x)
		}
		*d = duration(x * float64(time.Second))
	case nil:
		*d = 0
	default:
		return fmt.Errorf("duration must be a string or a number of seconds")
	}
	return nil
}

// adminFaults is the JSON form of Faults.
type adminFaults struct {
	Down503Envelope float64  `json:"down503_envelope"`
	Down503HTML     float64  `json:"down503_html"`
	Error500        float64  `json:"error500"`
	RateLimit429    float64  `json:"rate_limit429"`
	Slow            float64  `json:"slow"`
	Reset           float64  `json:"reset"`
	Truncated       float64  `json:"truncated"`
	SlowDelay       duration `json:"slow_delay"`
	Schedule        []struct {
		Kind string    `json:"kind"`
		At   time.Time `json:"at"`
		In   duration  `json:"in"` // alternative to At: from now
		For  duration  `json:"for"`
	} `json:"schedule"`
}

// adminHandler serves the control API. Every route takes a JSON POST (GET for truth and stats):
//
//	POST /_admin/tags    {"name":"x","rate":0.5,"initial":10}
//	POST /_admin/rate    {"tag":"x","rate":2}
//	POST /_admin/post    {"tag":"x","n":40}                 -> [Truth...]
//	POST /_admin/late    {"tag":"x","age":"36h"}            -> Truth
//	POST /_admin/delete  {"tag":"x","media_id":"..."}       -> {"deleted":true}
//	POST /_admin/tokens  {"add":"tok"} | {"revoke":"tok","at":"RFC3339","in":"5s"}
//	POST /_admin/faults  {"error500":0.1,"slow_delay":"1s","schedule":[{"kind":"Reset","in":"1s","for":"2s"}]}
//	POST /_admin/down    {"for":"3s"}
//	GET  /_admin/truth   -> [Truth...]
//	GET  /_admin/stats   -> Stats
//
// Errors answer 400 with {"error": "..."}; tokens are never echoed.
func (s *Server) adminHandler() http.Handler {
	mux := http.NewServeMux()
	post := func(path string, fn func(dec *json.Decoder) (any, error)) {
		mux.HandleFunc("POST "+path, func(w http.ResponseWriter, r *http.Request) {
			dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
			dec.DisallowUnknownFields()
			v, err := fn(dec)
			if err != nil {
				adminJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
				return
			}
			adminJSON(w, http.StatusOK, v)
		})
	}
	post("/_admin/tags", func(dec *json.Decoder) (any, error) {
		var in struct {
			Name    string  `json:"name"`
			Rate    float64 `json:"rate"`
			Initial int     `json:"initial"`
		}
		if err := dec.Decode(&in); err != nil {
			return nil, err
		}
		tc := TagConfig{Name: in.Name, Rate: in.Rate, Initial: in.Initial}
		if err := validTagConfig(tc); err != nil {
			return nil, err
		}
		if in.Initial > 1_000_000 {
			return nil, errors.New("initial is larger than 1000000")
		}
		s.AddTag(tc)
		return map[string]string{"tag": in.Name}, nil
	})
	post("/_admin/rate", func(dec *json.Decoder) (any, error) {
		var in struct {
			Tag  string  `json:"tag"`
			Rate float64 `json:"rate"`
		}
		if err := dec.Decode(&in); err != nil {
			return nil, err
		}
		if err := validTagConfig(TagConfig{Name: in.Tag, Rate: in.Rate}); err != nil {
			return nil, err
		}
		if s.feed(in.Tag) == nil {
			return nil, fmt.Errorf("unknown tag %q", in.Tag)
		}
		s.SetRate(in.Tag, in.Rate)
		return map[string]any{"tag": in.Tag, "rate": in.Rate}, nil
	})
	post("/_admin/post", func(dec *json.Decoder) (any, error) {
		var in struct {
			Tag string `json:"tag"`
			N   int    `json:"n"`
		}
		if err := dec.Decode(&in); err != nil {
			return nil, err
		}
		if !validTagName(in.Tag) {
			return nil, fmt.Errorf("invalid tag %q", in.Tag)
		}
		if in.N <= 0 || in.N > 100_000 {
			return nil, errors.New("n must be in 1..100000")
		}
		return s.Post(in.Tag, in.N), nil
	})
	post("/_admin/late", func(dec *json.Decoder) (any, error) {
		var in struct {
			Tag string   `json:"tag"`
			Age duration `json:"age"`
		}
		if err := dec.Decode(&in); err != nil {
			return nil, err
		}
		if !validTagName(in.Tag) {
			return nil, fmt.Errorf("invalid tag %q", in.Tag)
		}
		return s.PostLate(in.Tag, time.Duration(in.Age)), nil
	})
	post("/_admin/delete", func(dec *json.Decoder) (any, error) {
		var in struct {
			Tag     string `json:"tag"`
			MediaID string `json:"media_id"`
		}
		if err := dec.Decode(&in); err != nil {
			return nil, err
		}
		return map[string]bool{"deleted": s.Delete(in.Tag, in.MediaID)}, nil
	})
	post("/_admin/tokens", func(dec *json.Decoder) (any, error) {
		var in struct {
			Add    string    `json:"add"`
			Revoke string    `json:"revoke"`
			At     time.Time `json:"at"`
			In     duration  `json:"in"`
		}
		if err := dec.Decode(&in); err != nil {
			return nil, errors.New("bad token request") // the decoder's error could quote a token
		}
		if in.Add == "" && in.Revoke == "" {
			return nil, errors.New("give add or revoke")
		}
		if in.Add != "" {
			if !validCredential(in.Add) {
				return nil, errors.New("token is empty or not printable ASCII")
			}
			s.AddToken(in.Add)
		}
		if in.Revoke != "" {
			at := in.At
			if at.IsZero() {
				at = s.clock().Add(time.Duration(in.In))
			}
			s.RevokeTokenAt(in.Revoke, at)
		}
		return map[string]bool{"ok": true}, nil
	})
	post("/_admin/faults", func(dec *json.Decoder) (any, error) {
		var in adminFaults
		if err := dec.Decode(&in); err != nil {
			return nil, err
		}
		f := Faults{
			Down503Envelope: in.Down503Envelope, Down503HTML: in.Down503HTML, Error500: in.Error500,
			RateLimit429: in.RateLimit429, Slow: in.Slow, Reset: in.Reset, Truncated: in.Truncated,
			SlowDelay: time.Duration(in.SlowDelay),
		}
		now := s.clock()
		for _, sf := range in.Schedule {
			at := sf.At
			if at.IsZero() {
				at = now.Add(time.Duration(sf.In))
			}
			f.Schedule = append(f.Schedule, ScheduledFault{Kind: sf.Kind, At: at, For: time.Duration(sf.For)})
		}
		if err := f.validate(); err != nil {
			return nil, err
		}
		s.SetFaults(f)
		return map[string]bool{"ok": true}, nil
	})
	post("/_admin/down", func(dec *json.Decoder) (any, error) {
		var in struct {
			For duration `json:"for"`
		}
		if err := dec.Decode(&in); err != nil {
			return nil, err
		}
		if in.For <= 0 {
			return nil, errors.New("for must be positive")
		}
		s.Down(time.Duration(in.For))
		return map[string]bool{"ok": true}, nil
	})
	mux.HandleFunc("GET /_admin/truth", func(w http.ResponseWriter, r *http.Request) {
		adminJSON(w, http.StatusOK, s.GroundTruth())
	})
	mux.HandleFunc("GET /_admin/stats", func(w http.ResponseWriter, r *http.Request) {
		adminJSON(w, http.StatusOK, s.Stats())
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		adminJSON(w, http.StatusNotFound, map[string]string{"error": "unknown admin route " + strings.ToValidUTF8(r.URL.Path, "?")})
	})
	return mux
}

func adminJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
