// Package ca is the signing core of a SPIFFE certificate authority: it mints
// X509-SVIDs, CA certificates, JWT-SVIDs and WIT-SVIDs with the profiles of
// the SPIFFE standards.
//
// An [X509Authority] wraps one X.509 signing key (any crypto.Signer) and its
// CA certificate; a [JWTAuthority] wraps one JWT signing key and its key ID,
// and a [WITAuthority] does the same for WIT-SVIDs (incubating standard).
// Both are immutable and safe for concurrent use, so rotating keys means
// building a new authority and swapping it in whole. Each signing call takes
// a param struct, validates every input, and caps the lifetime it grants at
// the expiry of the authority.
//
// # Usage
//
//	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
//	td := spiffeid.RequireTrustDomainFromString("example.org")
//	root, err := ca.CreateRoot(ctx, ca.RootParams{Signer: key, TrustDomain: td})
//	authority, err := ca.NewX509Authority(ca.X509AuthorityConfig{Signer: key, Certificate: root})
//
//	// chain is leaf first: the SVID, then root. Pair it with the workload's key.
//	chain, err := authority.SignX509SVID(ctx, ca.X509SVIDParams{
//		PublicKey: workloadKey.Public(), // or CSR: der
//		ID:        spiffeid.RequireFromPath(td, "/web"),
//		DNSNames:  []string{"web.example.org"},
//	})
//
//	jwtAuthority, err := ca.NewJWTAuthority(ca.JWTAuthorityConfig{Signer: jwtKey})
//	token, err := jwtAuthority.SignJWTSVID(ctx, ca.JWTSVIDParams{ID: id, Audience: []string{"db"}})
//
// # Keys and upstream authorities
//
// A rotating CA is assembled from parts that this package defines as
// interfaces: a [KeyManager] creates and finds the signing keys (optionally a
// [KeyDestroyer] that deletes them), and an [UpstreamAuthority] signs the CA
// certificates when the trust domain chains to an existing PKI. Package
// [github.com/spiffekit/spiffekit/ca/keymanager] keeps keys in memory or on
// disk, package [github.com/spiffekit/spiffekit/ca/upstream] signs with a CA
// read from disk, and package [github.com/spiffekit/spiffekit/ca/rotation]
// rotates the authorities and publishes the trust bundle.
//
// # Profiles
//
// X509-SVIDs carry one URI SAN, basicConstraints cA=FALSE, keyUsage
// digitalSignature and extKeyUsage serverAuth and clientAuth; CA certificates
// carry cA=TRUE, keyUsage keyCertSign and cRLSign, the trust domain ID as URI
// SAN and no extKeyUsage. JWT-SVIDs have the header alg, kid and typ "JWT" and
// the claims sub, aud, exp and iat, and nothing else. WIT-SVIDs have typ
// "wit+jwt", no aud, and bind the workload's public key in cnf.jwk.
package ca
