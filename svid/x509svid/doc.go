// Package x509svid reads, writes and verifies X509-SVIDs: X.509 certificate
// chains whose leaf carries a SPIFFE ID as its only URI SAN.
//
// A workload loads its own SVID with [Parse], [ParseRaw] or [Load], which
// check the certificates against the X509-SVID profile and that the private
// key belongs to the leaf. A relying party authenticates a peer with [Verify]
// or [ParseAndVerify], which validate the chain against the X.509 bundle of
// the leaf's trust domain, and only that one.
//
// # Usage
//
//	// The peer's chain, leaf first, e.g. from tls.ConnectionState.PeerCertificates.
//	id, chains, err := x509svid.Verify(peerCerts, bundles)
//	if err != nil {
//		return err // not a valid SVID of a trusted trust domain
//	}
//	// Authenticated: now authorize on id.
//	if id != spiffeid.RequireFromString("spiffe://example.org/frontend") {
//		return errors.New("unauthorized")
//	}
//	_ = chains
//
//	// Loading one's own SVID from disk:
//	svid, err := x509svid.Load("svid.pem", "svid.key")
//
// # Differences from go-spiffe
//
// [Verify] rejects a leaf whose SPIFFE ID has no path (X509 rule 18), bounds
// the chain to [MaxChainLength] certificates, and rejects a bundle source
// that answers with a bundle of another trust domain. Errors are wrapped with
// %w throughout.
package x509svid
