// Package awsiid holds the end-to-end tests of the aws_iid node attestor:
// spiffe-server and spiffe-agent, the real programs, with the agent
// fetching its instance identity document through IMDSv2 from a local
// metadata service (internal/testing/imdstest) that signs it with a test
// key whose certificate the server is configured with.
package awsiid
