// Package witsvid parses and validates WIT-SVIDs (Workload Identity Token
// SVIDs): JWTs of type "wit+jwt" whose subject is a SPIFFE ID and whose cnf
// claim binds a public key to it. A WIT-SVID is not a bearer token: it proves
// nothing unless its presenter also proves possession of the private key of
// that cnf key (WIT rules 14, 15). Like the standard it follows, the package
// is experimental.
//
// [ParseAndValidate] authenticates the token itself: header, claims, and the
// signature by a key of the WIT bundle of the subject's trust domain. It does
// not check a proof of possession; the caller must, either with the
// presentation protocol in use (such as a WIMSE Workload Proof Token) or with
// [SVID.VerifyProofOfPossession]. [ParseInsecure] reads a token without
// verifying its signature; use it only on tokens obtained from a trusted
// source, such as one's own Workload API.
//
// # Usage
//
//	svid, err := witsvid.ParseAndValidate(token, bundles)
//	if err != nil {
//		return err // forged, expired, malformed, or from an untrusted trust domain
//	}
//	// WIT rule 15: never accept the token without a proof of possession.
//	// Here the presenter signed a fresh challenge issued by the validator.
//	if err := svid.VerifyProofOfPossession(challenge, signature); err != nil {
//		return err
//	}
//	// Authenticated: authorize on svid.ID.
//
// # Differences from go-spiffe
//
// Tokens longer than [MaxTokenLength] are rejected before parsing. The bundle
// key must fit the token's algorithm, and the cnf key must fit its cnf.jwk.alg
// (key type, elliptic curve, RSA size of at least 2048 bits). A token with an
// aud claim is rejected even when the claim is empty or null (WIT rule 12). A
// cnf.jwk carrying private key members is rejected outright, as is one of type
// "oct". Errors are wrapped with %w.
package witsvid
