// Package soak holds the load tests of the reference programs. The soak:
// thousands of Workload API streams held open on one spiffe-agent through
// SVID rotations with short TTLs, checking that every stream receives
// every rotation and that the agent's goroutines and memory stay flat. The
// flood: one workload's uid floods the agent while another's is served,
// which the agent's per-uid rate limit ensures. Short runs are part of the
// test suite; the long mode (SPIFFEKIT_SOAK=long, or SPIFFEKIT_LONG=1)
// runs 10,000 streams for an hour, and the flood without a limit too for
// comparison (see docs/RELIABILITY.md). The flood runs workloads under
// other uids, which takes root: without it the test skips, or fails when
// $SPIFFEKIT_TEST_REQUIRE names uids (CI sets it).
package soak
