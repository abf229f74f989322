// Package simkit starts the v1 API simulator (testenv) for the tests of the packages that wire tagstream together
// (cmd/tagstream, internal/pipeline, e2e). It is apart from testkit because testenv's own tests use testkit.
package simkit

import (
	"testing"

	"github.com/tagstream/tagstream/testenv"
)

// SimOptions configure StartSim. Zero values mean: no client ids, seed 42.
type SimOptions struct {
	Tokens    []string // access tokens the simulator accepts
	ClientIDs []string // client ids it accepts
	Tags      []string // tags with 25 media each, all still (rate 0) until the test sets a rate
	Seed      int64
}

// StartSim starts the v1 API simulator over HTTPS with opaque, inclusive cursors (as the real API had them) and
// closes it when the test ends.
func StartSim(t testing.TB, o SimOptions) *testenv.Server {
	t.Helper()
	if o.Seed == 0 {
		o.Seed = 42
	}
	var tcs []testenv.TagConfig
	for _, tag := range o.Tags {
		tcs = append(tcs, testenv.TagConfig{Name: tag, Initial: 25})
	}
	sim, err := testenv.New(testenv.Config{
		CertDir:      t.TempDir(),
		Tokens:       o.Tokens,
		ClientIDs:    o.ClientIDs,
		Cursors:      testenv.CursorOpaque,
		InclusiveMin: true,
		Seed:         o.Seed,
		Tags:         tcs,
	})
	if err != nil {
		t.Fatalf("simulator: %v", err)
	}
	if err := sim.Start(); err != nil {
		t.Fatalf("simulator: %v", err)
	}
	t.Cleanup(func() { sim.Close() })
	return sim
}
