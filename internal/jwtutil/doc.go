// Package jwtutil holds the JWS rules that JWT-SVIDs and WIT-SVIDs share: the
// signature algorithm allow-list (JWT rule 3, WIT rule 3), the check that a
// key fits an algorithm, and verification of a detached JWS signature. It is
// used by svid/jwtsvid, exp/svid/witsvid and ca so that all three apply the
// same rules.
//
//	tok, err := jwt.ParseSigned(token, jwtutil.Algorithms())
//	if err != nil {
//		return err
//	}
//	alg := jose.SignatureAlgorithm(tok.Headers[0].Algorithm)
//	if err := jwtutil.CheckKeyFitsAlg(alg, key, "JWT authority"); err != nil {
//		return err
//	}
//
// Errors carry no package prefix; callers add theirs.
package jwtutil
