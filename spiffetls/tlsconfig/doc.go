// Package tlsconfig builds crypto/tls configurations that authenticate with
// X509-SVIDs and authorize peers by SPIFFE ID.
//
// A config presents the X509-SVID that an x509svid.Source holds at the time
// of each handshake, so rotation needs no restart, and verifies the peer's
// X509-SVID against the bundle of the peer's trust domain taken from an
// x509bundle.Source. An [Authorizer] then decides whether the verified peer
// may connect:
//
//	td := spiffeid.RequireTrustDomainFromString("example.org")
//	// source is, for example, a *workloadapi.X509Source.
//	serverConf := tlsconfig.MTLSServerConfig(source, source, tlsconfig.AuthorizeMemberOf(td))
//	lis, err := tls.Listen("tcp", ":8443", serverConf)
//
//	backend := spiffeid.RequireFromString("spiffe://example.org/backend")
//	clientConf := tlsconfig.MTLSClientConfig(source, source, tlsconfig.AuthorizeID(backend))
//	conn, err := (&tls.Dialer{Config: clientConf}).DialContext(ctx, "tcp", "backend:8443")
//
// # Resumed sessions
//
// Peers are verified and authorized in tls.Config.VerifyConnection, which
// crypto/tls calls on every handshake, including resumed sessions, rather
// than only in VerifyPeerCertificate, which resumed sessions skip (as
// go-spiffe does). A peer that resumes a session is therefore checked again
// against the current bundle, the current time and the authorizer.
//
// # Hook functions
//
// The Hook functions change the given config in place; that is their
// purpose. They set MinVersion to at least TLS 1.2 and clear every field
// that could choose a certificate or verify a peer some other way:
// Certificates, NameToCertificate, GetCertificate, GetClientCertificate,
// GetConfigForClient (a config it returns would replace the SPIFFE checks),
// ClientAuth, ClientCAs, InsecureSkipVerify and RootCAs; then they set what
// their mode needs. Other fields (cipher suites, curves, NextProtos, session
// settings, ...) are kept.
//
// A VerifyPeerCertificate or VerifyConnection callback already on the config
// is kept and runs after the peer has been authenticated and authorized, with
// the SPIFFE-verified chains: VerifyPeerCertificate is moved into
// VerifyConnection so that it runs on resumed sessions too and never before
// SPIFFE authentication. Each hook wraps the callbacks it finds, so hooking
// one config twice stacks two verifications that must both pass; hook a
// fresh config, or a Clone of a shared base, each time. The non-Hook
// functions always return a fresh config.
//
// The API is source-compatible with go-spiffe v2's tlsconfig package, plus
// [VerifyConnection].
package tlsconfig
