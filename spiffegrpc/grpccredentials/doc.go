// Package grpccredentials provides gRPC transport credentials that
// authenticate with X509-SVIDs and authorize peers by SPIFFE ID, built on
// package tlsconfig.
//
// Server and client each take their X509-SVID and bundles from sources, for
// example one workloadapi.X509Source, so rotation needs no restart:
//
//	td := spiffeid.RequireTrustDomainFromString("example.org")
//	srv := grpc.NewServer(grpc.Creds(
//		grpccredentials.MTLSServerCredentials(source, source, tlsconfig.AuthorizeMemberOf(td))))
//
//	backend := spiffeid.RequireFromString("spiffe://example.org/backend")
//	conn, err := grpc.NewClient("dns:///backend:443", grpc.WithTransportCredentials(
//		grpccredentials.MTLSClientCredentials(source, source, tlsconfig.AuthorizeID(backend))))
//
// In a handler, [PeerIDFromContext] returns the caller's SPIFFE ID; a client
// reads the server's with grpc.Peer and [PeerIDFromPeer]. The peer is
// verified and authorized on every handshake, resumed TLS sessions included.
//
// The API is source-compatible with go-spiffe v2's grpccredentials package.
package grpccredentials
