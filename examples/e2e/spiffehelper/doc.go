// Package spiffehelper is the end-to-end test of the spiffe-helper
// program: spiffe-server, spiffe-agent and spiffe-helper run as processes,
// spiffe-helper with configuration files of the SPIFFE project's
// spiffe-helper, and with a real child process (testdata/ghostunnel, a
// stand-in for the TLS proxy of spiffe-helper's example) that reloads its
// certificate on the signal.
package spiffehelper
