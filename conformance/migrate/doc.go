// Package migrate moves a trust domain from SPIRE to spiffekit's programs
// as docs/MIGRATING-FROM-SPIRE.md says, with SPIRE's own binaries: both
// servers under one upstream CA, the entries exported with spire-server
// entry show -output json and imported with spiffe-server entry create
// -data, workloads under either agent verifying each other's SVIDs, and a
// node rolled from spire-agent to spiffe-agent on the same socket.
//
// The test runs when $SPIRE_BIN_DIR names a directory holding SPIRE's
// spire-server and spire-agent (scripts/migrate-test builds them), and
// skips otherwise, saying so; with "spire" in $SPIFFEKIT_TEST_REQUIRE it
// fails instead.
package migrate
