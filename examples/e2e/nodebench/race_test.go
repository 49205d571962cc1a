//go:build race

package nodebench

// raceEnabled: under the race detector the registry's writes and reads
// run several times slower, so the start test fills a smaller registry.
const raceEnabled = true
