// Package nodeserver is the issuing server's side of the node protocol
// (package [github.com/spiffekit/spiffekit/nodeapi], which describes the
// protocol and is its client side): it attests agents with the node
// attestors it is given, keeps their records, streams each agent the
// registration entries it is authorized for, and signs SVIDs for those
// entries only.
//
// # Errors
//
// The server tells an agent what it got wrong about its own request
// (InvalidArgument, with the reason) and why it is refused (Unauthenticated
// or PermissionDenied: banned, evicted, SVID superseded or expired, entry
// not authorized, attesting again where the node attestor does not allow
// it), in fixed words. A node attestor's refusal is a bare "node
// attestation refused". Everything else (a store or key manager that fails)
// is Unavailable or Internal with a generic message: the details go to
// Config.Logger only, never to the peer, which may not even be
// authenticated yet.
//
// # Many agents at once
//
// When a fleet reconnects at once (the server restarted), the TLS
// handshakes of its connections compute a few at a time
// (Config.MaxHandshakes, two per CPU by default), those already begun
// before new ones. A handshake waiting on its agent holds no turn, so
// slow or silent connections cannot keep the others out; one that waits
// for a turn longer than Config.HandshakeWait (10 s) has its connection
// closed, and the agent tries again after its backoff. Such a connection
// is counted (Stats.HandshakesRefused) and logged at Debug, and a Warn
// line, at most one a minute, tells how many there were. Each handshake so
// takes milliseconds, where all of them at once would each take as long
// as all of them together, and past the agents' connect timeout none
// would finish.
//
// # Metrics
//
// Config.Observer, when set, is told of every call with its code, every
// node attestation with its attestor and outcome, and every SVID the CA
// signs, with how long it took; Server.Stats counts the indexed entries,
// the agent records, the open entry streams and the connections closed
// while their handshake waited for a turn. The package depends on no
// metrics library: a program turns these into its metrics.
//
// # Usage
//
//	srv, err := nodeserver.New(ctx, nodeserver.Config{
//		Authority: ca,        // *rotation.Manager
//		Registry:  store,     // entries
//		Agents:    store,     // agent records
//		Attestors: []attest.NodeAttestor{joinTokens},
//	})
//	defer srv.Close()
//	go srv.Run(ctx)        // follows the registry, the CA and the agent records
//	go srv.Serve(ctx, lis) // answers the agents
//
// Package server assembles a complete issuing server around it.
package nodeserver
