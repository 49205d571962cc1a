// Package nodebench holds the performance measurements of the issuing
// server and the node agent working together: X509-SVID signing through
// the node protocol, Workload API round trips served by an agent, the delay
// from a registry write to a workload holding the new SVID (through the
// server that made the write, and through another server sharing its
// PostgreSQL database), the sync of large registries and of many agents,
// the datastore queries an idle agent costs, and fleets of up to 10,000
// simulated agents against one server (BenchmarkFleet, sizes from
// SPIFFEKIT_FLEET). It has no code of its own; everything is in its tests.
// Its TestMain starts a throwaway PostgreSQL server (see
// internal/testing/pgtest) for the measurements across servers, or, when
// the test binary is started again as the fleet's server process
// (SPIFFEKIT_FLEET_SERVER), runs that server instead.
//
// Every benchmark also runs, on a small scale, as a test, so that a plain
// `go test` keeps them working:
//
//	go test ./examples/e2e/nodebench
//	go test ./examples/e2e/nodebench -run '^$' -bench . -benchmem -count 3
//
// Each benchmark reports its main figure with testing.B.ReportMetric
// (SVIDs/s, p50-ms, p99-ms, queries/s/agent, ...); docs/PERFORMANCE.md
// lists the figures and how to reproduce them.
package nodebench
