// Package nodetest runs issuing servers and node agents inside a test's
// process: the one harness of the module's tests of the server, the agent,
// the programs and the node benchmarks. Test only.
//
// [StartServer] runs a whole issuing server (package server) over a
// memstore, or a store the test gives (PostgreSQL from [OpenPostgreSQL] for
// several servers sharing one database), with its admin API on a unix
// socket; [StartServerIn] keeps its state in a directory, so that a server
// stopped and started again keeps its CA and records. [StartNodeServer]
// runs a bare node API server (package nodeapi/nodeserver) over a CA manager the test
// holds, for tests of the agent that control what the server does: stop it,
// start it again on the same address, shorten the agent SVID's lifetime,
// serve federated bundles of the test's choosing. [StartAgent] runs a node
// agent (package agent) serving the Workload API on a unix socket, with the
// unix workload attestor, so that the test process is the workload; the
// [UID] selector registers entries for it. [StartWorkload] does all of
// that, waits for the workload's X509-SVID and dials the agent's Workload
// API; [StartWITWorkload] does it for an agent serving WIT-SVIDs.
//
//	func TestWorkloadGetsItsSVID(t *testing.T) {
//		s := nodetest.StartServer(t, server.Config{})
//		a := nodetest.StartAgent(t, s.AgentConfig(t)) // attested with a join token
//		web := s.Register(t, a.ID(), "/web")           // for this process's uid
//		svid := a.WaitSVID(t, web.SPIFFEID)
//		...
//	}
//
// Whatever the harness starts stops when the test ends (t.Cleanup), and
// must stop cleanly: Run returns nil, Close succeeds. The first start in a
// test (or in a subtest whose parent started nothing) also checks, after
// every later cleanup, that no goroutine started since is left
// (internal/testing/leaktest). Every wait is bounded by [Timeout]; none
// measures time.
package nodetest
