//go:build race

package progtest

// RaceDetector reports whether the test binary runs under the race
// detector. The programs Build builds run without it whatever the test
// binary does: a test that only drives them may skip under -race, saying
// so, and run in the pass without it.
const RaceDetector = true
