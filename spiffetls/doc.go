// Package spiffetls dials and listens for TLS connections authenticated with
// X509-SVIDs and authorized by SPIFFE ID.
//
// By default the X509-SVID and the X.509 bundles come from a Workload API
// X.509 source that the connection or listener creates and closes; other
// modes take a workloadapi.X509Source the caller owns, or any
// x509svid.Source and x509bundle.Source ("raw config"):
//
//	td := spiffeid.RequireTrustDomainFromString("example.org")
//	lis, err := spiffetls.Listen(ctx, "tcp", ":8443", tlsconfig.AuthorizeMemberOf(td))
//	...
//	conn, err := lis.Accept()
//	client, err := spiffetls.PeerIDFromConn(conn) // completes the handshake
//
//	backend := spiffeid.RequireFromString("spiffe://example.org/backend")
//	conn, err := spiffetls.DialWithMode(ctx, "tcp", "backend:8443",
//		spiffetls.MTLSClientWithSource(tlsconfig.AuthorizeID(backend), source))
//
// # Differences from go-spiffe
//
// The API is source-compatible with go-spiffe v2's spiffetls package. The
// behaviour differs where go-spiffe's is unsafe or surprising:
//   - Dial honours its context for the dial and the handshake.
//   - Base TLS configs given as options are cloned, never changed, so one
//     base can serve many dials and listeners.
//   - Peers are authorized on every handshake, resumed sessions included
//     (see package tlsconfig).
//   - Closing a connection or listener closes the Workload API source its
//     mode created; Close is idempotent.
//   - PeerID fails when the peer was not authenticated by SPIFFE ID (a web
//     server, or a client of a TLS-only listener) rather than returning an
//     unverified URI SAN.
//   - A nil mode, listener or X509Source is an error, not a panic.
package spiffetls
