// Package jwtsvid parses and validates JWT-SVIDs: JWTs in JWS compact
// serialization whose subject is a SPIFFE ID, signed by a key of the
// subject's trust domain.
//
// [ParseAndValidate] authenticates a token received from a peer: it checks the
// algorithm, header and claims, verifies the signature with a key of the JWT
// bundle of the subject's trust domain, and checks expiry and audience.
// [ParseInsecure] reads a token without verifying its signature; use it only
// on tokens obtained from a trusted source, such as one's own Workload API.
//
// # Usage
//
//	// token from "Authorization: Bearer <token>" (JWT rule 10).
//	svid, err := jwtsvid.ParseAndValidate(token, bundles, []string{"spiffe://example.org/reports"})
//	if err != nil {
//		return err // forged, expired, not for us, or from an untrusted trust domain
//	}
//	// Authenticated: authorize on svid.ID.
//	if !svid.ID.MemberOf(spiffeid.RequireTrustDomainFromString("example.org")) {
//		return errors.New("unauthorized")
//	}
//
// # Differences from go-spiffe
//
// [ParseAndValidate] requires at least one expected audience and rejects a
// token without an aud claim (JWT rule 7), rejects tokens longer than
// [MaxTokenLength] before parsing them, and checks that the bundle key fits
// the token's algorithm (key type, elliptic curve, RSA size of at least 2048
// bits) before verifying the signature. Errors are wrapped with %w.
package jwtsvid
