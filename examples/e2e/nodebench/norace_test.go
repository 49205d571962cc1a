//go:build !race

package nodebench

const raceEnabled = false
