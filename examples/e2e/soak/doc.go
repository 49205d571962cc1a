// Package soak holds the soak test of the reference programs: thousands of
// Workload API streams held open on one spiffe-agent through SVID
// rotations with short TTLs, checking that every stream receives every
// rotation and that the agent's goroutines and memory stay flat. A short
// run is part of the test suite; SPIFFEKIT_SOAK=long runs 10,000 streams
// for an hour (see docs/RELIABILITY.md).
package soak
