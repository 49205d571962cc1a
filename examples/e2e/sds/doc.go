// Package sds is the end-to-end test of Envoy's SDS on the agent's
// Workload API socket: spiffe-server and spiffe-agent run as processes, and
// an SDS client written with go-control-plane's generated gRPC stubs, as
// Envoy speaks the protocol (xDS v3, state of the world and incremental),
// asks the agent's socket for SPIRE's resource names.
package sds
