// Package gcpiit holds the end-to-end tests of the gcp_iit node attestor:
// spiffe-server and spiffe-agent, the real programs, with the agent
// fetching its instance identity token from a local metadata server
// (internal/testing/gcemdtest) that signs it with a test key, and the
// server fetching that key from a local stand-in for Google's key
// endpoint.
package gcpiit
