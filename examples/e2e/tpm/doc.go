// Package tpm holds the end-to-end tests of the tpm node attestor:
// spiffe-server and spiffe-agent, the real programs, with software TPMs
// (internal/testing/swtpmtest) whose EK certificates a local CA issued.
// They need Debian's swtpm and swtpm-tools, and skip without them, except
// when $SPIFFEKIT_TEST_REQUIRE names swtpm (CI).
package tpm
