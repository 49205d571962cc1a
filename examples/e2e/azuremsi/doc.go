// Package azuremsi holds the end-to-end tests of the azure_msi node
// attestor: spiffe-server and spiffe-agent, the real programs, with the
// agent asking a local Azure instance metadata service
// (internal/testing/azuretest) for a managed identity token that a test key
// signs, and the server fetching that key from a local stand-in of
// Microsoft Entra ID's JWKS.
package azuremsi
