//go:build integration

package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tagstream/tagstream/testenv"
)

// simOptions configures the simulator of one test. Zero values mean the defaults noted on each field.
type simOptions struct {
	Tags            []testenv.TagConfig // default defaultTags()
	Tokens          int                 // tokens handed to tagstream; default 3
	Verifiers       int                 // extra tokens only the checker uses to fetch media; default 1
	RequestsPerHour int                 // per token per simulated hour; default 300000 (83 per second: never the bottleneck)
	TimeScale       float64             // simulated seconds per real second; default 1
	Faults          testenv.Faults
	Seed            int64 // default: derived from the test name
}

// sim is a running simulator plus the credentials of one test.
type sim struct {
	*testenv.Server
	opts       simOptions
	tokens     []string // given to tagstream, in the tokens file's order
	verifiers  []string // used only by the checker to fetch media; never given to tagstream
	tokensFile string
	started    time.Time
}

// defaultTags is a skewed workload: a hot tag, a medium one, a slow tag with a non-ASCII name (the subject
// encoding) and a quiet one.
func defaultTags() []testenv.TagConfig {
	return []testenv.TagConfig{
		{Name: "sunset", Rate: 6, Initial: 50},
		{Name: "coffee", Rate: 2, Initial: 10},
		{Name: "東京", Rate: 0.8, Initial: 5},
		{Name: "quiet_tag", Rate: 0.1},
	}
}

// newToken returns a random access token shaped like the API's (<user id>.<hex>), unique to the test.
func newToken(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random token: %v", err)
	}
	return "1" + hex.EncodeToString(b[:3]) + "." + hex.EncodeToString(b[3:])
}

// startSim starts an HTTPS simulator with fresh tokens and writes them to a 0600 tokens file.
func startSim(t *testing.T, o simOptions) *sim {
	t.Helper()
	if o.Tags == nil {
		o.Tags = defaultTags()
	}
	if o.Tokens == 0 {
		o.Tokens = 3
	}
	if o.Verifiers == 0 {
		o.Verifiers = 1
	}
	if o.RequestsPerHour == 0 {
		o.RequestsPerHour = 300000
	}
	if o.TimeScale == 0 {
		o.TimeScale = 1
	}
	if o.Seed == 0 {
		for _, c := range t.Name() {
			o.Seed = o.Seed*31 + int64(c)
		}
	}
	s := &sim{opts: o}
	for range o.Tokens {
		s.tokens = append(s.tokens, newToken(t))
	}
	for range o.Verifiers {
		s.verifiers = append(s.verifiers, newToken(t))
	}
	srv, err := testenv.New(testenv.Config{
		Tokens:          s.secrets(),
		RequestsPerHour: o.RequestsPerHour,
		TimeScale:       o.TimeScale,
		Seed:            o.Seed,
		Tags:            o.Tags,
		Faults:          o.Faults,
		CertDir:         t.TempDir(),
	})
	if err != nil {
		t.Fatalf("testenv.New: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("simulator start: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	s.Server = srv
	s.started = time.Now()

	s.tokensFile = filepath.Join(t.TempDir(), "tokens")
	body := "# tokens of " + t.Name() + "\n" + strings.Join(s.tokens, "\n") + "\n"
	if err := os.WriteFile(s.tokensFile, []byte(body), 0o600); err != nil {
		t.Fatalf("write tokens file: %v", err)
	}
	return s
}

// tagNames returns the names of the simulator's configured tags.
func (s *sim) tagNames() []string {
	names := make([]string, len(s.opts.Tags))
	for i, tc := range s.opts.Tags {
		names[i] = tc.Name
	}
	return names
}

// secrets returns every credential of the test, for leak checks.
func (s *sim) secrets() []string {
	return append(append([]string(nil), s.tokens...), s.verifiers...)
}

// realRequestsPerHour is the budget per token per real hour that matches the simulator's scaled window. (tagstream
// corrects its pacing from the X-Ratelimit headers, which count in simulated hours, so tests keep TimeScale 1
// unless they want tagstream to believe a smaller budget than it has.)
func (s *sim) realRequestsPerHour() int {
	return int(float64(s.opts.RequestsPerHour) * s.opts.TimeScale)
}

// credentialStats returns the simulator's counters of the i-th tagstream token.
func (s *sim) credentialStats(t *testing.T, i int) testenv.CredentialStats {
	t.Helper()
	for _, c := range s.Stats().Credentials {
		if c.Index == i {
			return c
		}
	}
	t.Fatalf("simulator has no credential with index %d", i)
	return testenv.CredentialStats{}
}
