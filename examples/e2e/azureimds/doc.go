// Package azureimds holds the end-to-end tests of the azure_imds node
// attestor: spiffe-server and spiffe-agent, the real programs, with the
// agent answering the server's nonce with an attested document from a
// local Azure instance metadata service (internal/testing/azuretest),
// signed by a test certificate chain whose root the server is configured
// with and whose intermediate it fetches from the leaf's CA Issuers URL.
package azureimds
