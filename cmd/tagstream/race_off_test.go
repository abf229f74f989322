//go:build !race

package main

// raceEnabled makes TestMain build the binary with the race detector too when the tests run with -race.
const raceEnabled = false
