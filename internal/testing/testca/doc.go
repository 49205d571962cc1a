// Package testca is a certificate authority for tests: it mints real X.509
// roots, intermediates and leaf SVIDs with real keys, and signs JWTs with any
// header and claims, including malformed ones.
//
// Every certificate field that the X509-SVID rules talk about can be changed
// through [WithTemplate], so that a test table can build exactly the
// certificate a row needs to break a rule.
//
// # Usage
//
//	td := spiffeid.RequireTrustDomainFromString("example.org")
//	root := testca.New(t, td)
//	inter := root.NewIntermediate(t)
//	chain, key := inter.NewLeaf(t, spiffeid.RequireFromPath(td, "/workload"))
//	// chain is leaf, intermediate; the root is in root.X509Bundle().
//	id, _, err := x509svid.Verify(chain, root.X509Bundle())
//
//	// A leaf that wrongly claims to be a CA:
//	bad, _ := root.NewLeaf(t, id, testca.WithTemplate(func(c *x509.Certificate) {
//		c.IsCA = true
//	}))
//
//	// An *x509svid.SVID with DNS names, as a tls.Certificate, and a source
//	// whose SVID a test can rotate:
//	svid := root.NewSVID(t, "/www", "localhost")
//	cert := testca.TLSCertificate(svid)
//	source := testca.NewX509Source(svid)
//	source.Set(root.NewSVID(t, "/www", "localhost"))
//
//	// A JWT with an arbitrary header and claims:
//	token := testca.SignJWT(t, key, map[string]any{"alg": "ES256", "kid": "k1"}, claims)
//
// The package imports bundle/x509bundle and svid/x509svid, so tests of those
// packages that use it must live in their external test packages
// (x509bundle_test, x509svid_test).
package testca
