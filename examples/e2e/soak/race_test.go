//go:build race

package soak_test

// raceEnabled: the race detector allows 8,128 live goroutines, which a
// client connection per stream would exceed past a few hundred streams.
const raceEnabled = true
