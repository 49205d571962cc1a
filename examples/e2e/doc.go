// Package e2e holds the end-to-end tests of the reference programs: they
// build spiffe-server and spiffe-agent, start them on loopback and temporary
// directories, and drive them through their command lines as an operator
// and a workload would.
package e2e
