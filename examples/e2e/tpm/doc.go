// Package tpm holds the end-to-end tests of the tpm and tpm_devid node
// attestors: spiffe-server and spiffe-agent, the real programs, with
// software TPMs (internal/testing/swtpmtest) whose EK certificates a local
// CA issued, and DevID keys the tests make in them.
// They need Debian's swtpm and swtpm-tools, and skip without them, except
// when $SPIFFEKIT_TEST_REQUIRE names swtpm (CI).
package tpm
