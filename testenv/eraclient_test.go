package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tagstream/tagstream/internal/redact"
)

// eraPythonPath is where scripts/era-clients.sh puts the interpreter of its virtual environment, under the cache.
const eraPythonPath = "era-clients/python-instagram-1.3.2/bin/python"

// eraPython returns the Python interpreter that has python-instagram 1.3.2 installed: $TAGSTREAM_ERA_PYTHON, or the
// one scripts/era-clients.sh made under ${TAGSTREAM_CACHE:-$HOME/.cache/tagstream}. Without it the test fails when
// TAGSTREAM_INTEGRATION=1 (scripts/test.sh runs the script and sets both) and is skipped otherwise.
func eraPython(t *testing.T) string {
	t.Helper()
	missing := func(format string, args ...any) {
		t.Helper()
		const how = "run scripts/era-clients.sh (needs python3 with venv and PyPI) and set TAGSTREAM_ERA_PYTHON to the path it prints"
		if os.Getenv("TAGSTREAM_INTEGRATION") == "1" {
			t.Fatalf("era client prerequisite missing: "+format+"; "+how, args...)
		}
		t.Skipf("era client prerequisite missing: "+format+"; "+how+" (skipped without TAGSTREAM_INTEGRATION=1)", args...)
	}
	py := os.Getenv("TAGSTREAM_ERA_PYTHON")
	if py == "" {
		cache := os.Getenv("TAGSTREAM_CACHE")
		if cache == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				missing("TAGSTREAM_ERA_PYTHON is not set and there is no home directory (%v)", err)
			}
			cache = filepath.Join(home, ".cache", "tagstream")
		}
		py = filepath.Join(cache, eraPythonPath)
		if _, err := os.Stat(py); err != nil {
			missing("TAGSTREAM_ERA_PYTHON is not set and %s does not exist", py)
		}
	}
	cmd := exec.Command(py, "-c", "import instagram.client, instagram.bind, httplib2")
	if out, err := cmd.CombinedOutput(); err != nil {
		missing("%s cannot import python-instagram: %v: %s", py, err, out)
	}
	return py
}

// eraAnswer is what testdata/era/python_instagram.py prints.
type eraAnswer struct {
	Result    json.RawMessage `json:"result"`
	Error     *eraError       `json:"error"`
	Requested []string        `json:"requested"`
}

type eraError struct {
	Class        string `json:"class"`
	StatusCode   string `json:"status_code"`
	ErrorType    string `json:"error_type"`
	ErrorMessage string `json:"error_message"`
}

type eraMedia struct {
	ID        string `json:"id"`
	Type      string `json:"type"`
	LikeCount int    `json:"like_count"`
	Username  string `json:"username"`
}

// eraCall is one call of testdata/era/python_instagram.py: a scenario, with the token, tag and argument it uses.
type eraCall struct {
	Scenario string `json:"scenario"`
	Token    string `json:"token"`
	Tag      string `json:"tag"`
	Arg      string `json:"arg"`
}

// runEraClient runs the calls of the python-instagram program against s, in one Python process, and returns their
// answers in order.
func runEraClient(t *testing.T, py string, s *Server, calls []eraCall) []eraAnswer {
	t.Helper()
	u, err := url.Parse(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	in, err := json.Marshal(calls)
	if err != nil {
		t.Fatal(err)
	}
	var toks []string
	for _, c := range calls {
		toks = append(toks, c.Token)
	}
	r := redact.New(toks...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a hung client, not a timing
	defer cancel()
	cmd := exec.CommandContext(ctx, py, filepath.Join("testdata", "era", "python_instagram.py"))
	cmd.Env = append(os.Environ(), "IGSIM_ERA_HOST="+u.Host, "IGSIM_ERA_PROTOCOL="+u.Scheme,
		"HTTPLIB2_CA_CERTS="+s.CAFile(), "PYTHONIOENCODING=utf-8", "PYTHONDONTWRITEBYTECODE=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(in), &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("python-instagram: %v\nstderr: %s", err, r.Truncate(stderr.String(), 4000))
	}
	var answers []eraAnswer
	if err := json.Unmarshal(stdout.Bytes(), &answers); err != nil || len(answers) != len(calls) {
		t.Fatalf("python-instagram: output %q: %v, want %d answers", r.Truncate(stdout.String(), 1000), err, len(calls))
	}
	for i, a := range answers {
		for j, p := range a.Requested {
			rest, ok := strings.CutPrefix(p, strings.TrimSuffix(s.URL(), "/v1"))
			if !ok {
				t.Fatalf("scenario %s: request %d went to %q, not to the simulator", calls[i].Scenario, j, p)
			}
			a.Requested[j] = rest
		}
	}
	return answers
}

// TestEraClientPythonInstagram runs the real python-instagram 1.3.2 from PyPI, the most used Python client of the
// v1 API, against the simulator over HTTPS: the calls a tag poller of the time made, with the library's own URL
// templates (".json" suffix), pagination by next_url, model parsing and error classes.
func TestEraClientPythonInstagram(t *testing.T) {
	t.Parallel() // most of its time is spent starting Python
	py := eraPython(t)
	const (
		tok     = "era-client-token.0001"
		revoked = "era-client-token.revoked"
	)
	cfg := Config{
		Tokens: []string{tok, revoked}, Seed: 15, CertDir: t.TempDir(),
		Tags: []TagConfig{{Name: "coffee", Initial: 70}, {Name: "coffeeart", Initial: 4}, {Name: "日本語", Initial: 5}, {Name: "tea", Initial: 2}},
	}
	s := start(t, cfg)
	s.RevokeToken(revoked)
	mediaID := newestFirst(s, "coffee")[5]

	tests := []struct {
		name     string
		tok      string
		scenario string
		tag, arg string
		check    func(t *testing.T, a eraAnswer)
	}{
		{"walking a tag by next_url returns the whole feed newest first", tok, "walk", "coffee", "33", func(t *testing.T, a eraAnswer) {
			var r struct {
				Pages     int      `json:"pages"`
				IDs       []string `json:"ids"`
				RateLimit []string `json:"ratelimit"`
			}
			mustUnmarshal(t, a.Result, &r)
			if want := newestFirst(s, "coffee"); !slices.Equal(r.IDs, want) {
				t.Errorf("walked %d ids, want the %d of the feed in order", len(r.IDs), len(want))
			}
			if r.Pages != 3 || len(a.Requested) != 3 {
				t.Errorf("%d pages in %d requests, want 3 (70 media by 33)", r.Pages, len(a.Requested))
			}
			// The library appends .json; next_url, as the API built it, has none.
			want := []string{"/v1/tags/coffee/media/recent.json", "/v1/tags/coffee/media/recent", "/v1/tags/coffee/media/recent"}
			if !slices.Equal(a.Requested, want) {
				t.Errorf("requested %q, want %q", a.Requested, want)
			}
			if len(r.RateLimit) != 2 || r.RateLimit[0] != "5000" || r.RateLimit[1] == "" {
				t.Errorf("x_ratelimit, x_ratelimit_remaining = %q, want 5000 and a count", r.RateLimit)
			}
		}},
		{"walking a tag of another script works", tok, "walk", "日本語", "", func(t *testing.T, a eraAnswer) {
			var r struct {
				IDs []string `json:"ids"`
			}
			mustUnmarshal(t, a.Result, &r)
			if want := newestFirst(s, "日本語"); !slices.Equal(r.IDs, want) {
				t.Errorf("walked %q, want %q", r.IDs, want)
			}
		}},
		{"tag info gives the name and media count", tok, "tag", "coffee", "", func(t *testing.T, a eraAnswer) {
			var r struct {
				Name       string `json:"name"`
				MediaCount int    `json:"media_count"`
			}
			mustUnmarshal(t, a.Result, &r)
			if r.Name != "coffee" || r.MediaCount != 70 || !slices.Equal(a.Requested, []string{"/v1/tags/coffee.json"}) {
				t.Errorf("tag = %+v via %q, want coffee with 70 media via /v1/tags/coffee.json", r, a.Requested)
			}
		}},
		{"tag search finds the tags starting with the term", tok, "search", "", "coff", func(t *testing.T, a eraAnswer) {
			var r struct {
				Tags []struct {
					Name       string `json:"name"`
					MediaCount int    `json:"media_count"`
				} `json:"tags"`
			}
			mustUnmarshal(t, a.Result, &r)
			var names []string
			for _, tg := range r.Tags {
				names = append(names, tg.Name)
			}
			if !slices.Equal(names, []string{"coffee", "coffeeart"}) || r.Tags[0].MediaCount != 70 {
				t.Errorf("search = %+v, want coffee (70) then coffeeart", r.Tags)
			}
		}},
		{"popular gives the 20 newest media as the library's models", tok, "popular", "", "", func(t *testing.T, a eraAnswer) {
			var r struct {
				Media []eraMedia `json:"media"`
			}
			mustUnmarshal(t, a.Result, &r)
			if len(r.Media) != 20 || !slices.Equal(a.Requested, []string{"/v1/media/popular.json"}) {
				t.Fatalf("%d media via %q, want 20 via /v1/media/popular.json", len(r.Media), a.Requested)
			}
			for _, m := range r.Media {
				if m.ID == "" || m.Username == "" || (m.Type != "image" && m.Type != "video" && m.Type != "carousel") {
					t.Errorf("media %+v", m)
				}
			}
		}},
		{"a media by id is parsed by the library", tok, "media", "", mediaID, func(t *testing.T, a eraAnswer) {
			var r struct {
				Media eraMedia `json:"media"`
			}
			mustUnmarshal(t, a.Result, &r)
			var want struct {
				Likes struct {
					Count int `json:"count"`
				} `json:"likes"`
			}
			mustUnmarshal(t, decode(t, get(t, s, "/media/"+mediaID, url.Values{"access_token": {tok}})).Data, &want)
			if r.Media.ID != mediaID || r.Media.LikeCount != want.Likes.Count {
				t.Errorf("media = %+v, want id %s with %d likes", r.Media, mediaID, want.Likes.Count)
			}
		}},
		{"an unknown media id raises InstagramAPIError APINotFoundError", tok, "media", "", "1_1", func(t *testing.T, a eraAnswer) {
			if a.Error == nil || a.Error.Class != "InstagramAPIError" || a.Error.StatusCode != "400" || a.Error.ErrorType != errNotFound {
				t.Errorf("error = %+v, want InstagramAPIError 400 %s", a.Error, errNotFound)
			}
		}},
		{"a revoked token raises InstagramAPIError OAuthAccessTokenException", revoked, "tag", "coffee", "", func(t *testing.T, a eraAnswer) {
			if a.Error == nil || a.Error.Class != "InstagramAPIError" || a.Error.StatusCode != "400" || a.Error.ErrorType != errOAuthAccessToken {
				t.Errorf("error = %+v, want InstagramAPIError 400 %s", a.Error, errOAuthAccessToken)
			}
		}},
	}
	// One Python process runs every scenario: starting Python and importing the library is most of the time.
	calls := make([]eraCall, len(tests))
	for i, tc := range tests {
		calls[i] = eraCall{Scenario: tc.scenario, Token: tc.tok, Tag: tc.tag, Arg: tc.arg}
	}
	answers := runEraClient(t, py, s, calls)
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := answers[i]
			if a.Error != nil && !strings.Contains(tc.name, "raises") {
				t.Fatalf("the client raised %+v", a.Error)
			}
			tc.check(t, a)
		})
	}

	t.Run("over the limit the library raises its rate-limit error", func(t *testing.T) {
		limited := start(t, Config{Tokens: []string{tok}, RequestsPerHour: 1, CertDir: t.TempDir(), Tags: []TagConfig{{Name: "coffee", Initial: 1}}})
		a := runEraClient(t, py, limited, []eraCall{{Scenario: "tag_twice", Token: tok, Tag: "coffee"}})[0]
		if a.Error == nil || a.Error.Class != "InstagramAPIError" || a.Error.StatusCode != "503" || a.Error.ErrorType != "Rate limited" {
			t.Errorf("error = %+v, want InstagramAPIError 503 Rate limited", a.Error)
		}
	})
}
