// Package endpoint is the server side of the SPIFFE Workload API: it serves
// each local caller its X509-SVIDs, JWT-SVIDs, optional WIT-SVIDs and the
// bundles it trusts, over gRPC on a unix socket, and pushes a new message to
// every open stream when the caller's view changes.
//
// The package does not decide who gets what. A [Handler] does: given the
// [Caller] (its pid, uid and gid, read from the socket with SO_PEERCRED), it
// returns the caller's [Snapshot] and tells the server when it changes.
// On Linux the server also records, as it accepts each connection, a pidfd
// bound to the process that connected, its start time and the identity of
// its executable (attest/unix.Peer); [Caller.Workload] passes them to a
// workload attestor, which refuses a process that exited or executed
// another file since (see attest/unix for what that does and does not
// promise). A process that exited before its connection was accepted gets
// PermissionDenied on every call of that connection. The record holds one
// more file descriptor per connection.
// [MemoryHandler] keeps snapshots in memory, keyed by UID by default; an
// issuing server plugs in its own Handler backed by a CA and a registry.
//
// # Usage
//
//	handler := endpoint.NewMemoryHandler(endpoint.MemoryConfig{SignJWT: signJWT})
//	err := handler.Set("1000", &endpoint.Snapshot{ // callers running as uid 1000
//		TrustDomain: td,
//		X509SVIDs:   []*x509svid.SVID{svid},
//		Bundles:     []*spiffebundle.Bundle{ownBundle, federatedBundle},
//	})
//	srv, err := endpoint.New(endpoint.Config{Handler: handler, Logger: logger})
//	lis, err := endpoint.ListenUnix("/run/spiffe/agent.sock", 0o777)
//	err = srv.Serve(ctx, lis) // until ctx is done
//
//	// Rotation: build a new Snapshot and Set it; open streams get it at once.
//	err = handler.Set("1000", nextSnapshot)
//
// # Behaviour
//
// Every Workload API method first checks the security header (WE rule 6),
// then identifies the caller, then the request's mandatory fields, and
// answers PermissionDenied to a caller with no identity. Watch streams send
// the complete view at once and then only when what they would send differs
// from what they last sent; they end with PermissionDenied when the caller's
// entitlement goes away, and with Unavailable when Serve stops. Handler
// errors become status codes in one place; details of unexpected errors are
// logged, never sent.
//
// Config.Observer, when set, is told how long each call took to be
// answered and with which code, and when watch streams open and close, for
// a program's metrics; without one the server does no accounting.
//
// Config.RateLimit, when set, gives each caller (each uid, or each IP
// address over TCP) a token bucket: every unary call and every stream
// opened takes a token, and a caller whose bucket is empty gets
// ResourceExhausted at once, before its call reaches the Handler, while
// other callers go on being served. See [RateLimit].
//
// Each Snapshot is encoded once and the bytes are shared by every stream that
// sees it, so a rotation reaching thousands of streams costs one encoding
// plus one write per stream. A Handler that holds many SVIDs may keep them
// in their wire form ([RawX509SVID]), which the server sends without
// parsing.
package endpoint
