//go:build race

package check

// raceEnabled tells whether the tests run with -race: the binary under test is built the same way, so that it
// shares the build cache with the other packages' builds of cmd/tagstream.
const raceEnabled = true
