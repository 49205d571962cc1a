// Package jwtbundle holds JWT bundles: the public keys, by key ID, that a trust
// domain uses to sign JWT-SVIDs.
//
// A [Bundle] belongs to exactly one trust domain (Bundle rule 2). A [Set] keys
// bundles by trust domain. Both implement [Source], the interface JWT-SVID
// validation consumes.
//
//	td := spiffeid.RequireTrustDomainFromString("example.org")
//	bundle, err := jwtbundle.Load(td, "bundle.jwks")
//	if err != nil {
//		return err
//	}
//	if err := bundle.AddJWTAuthority("key-2", publicKey); err != nil {
//		return err
//	}
//	key, ok := bundle.FindJWTAuthority("key-2")
//
//	var source jwtbundle.Source = jwtbundle.NewSet(bundle)
//
// # Encoding
//
// [Parse], [Read] and [Load] take a plain RFC 7517 JWK Set, the format of the
// Workload API's JWT bundles (JWT rule 14): "use" is ignored, every key needs a
// non-empty, unique "kid", keys with private members or of type "oct" are
// rejected, and keys of unknown type are skipped. Documents above
// [MaxBundleSize] bytes or with more than [MaxKeys] keys are rejected.
// [Bundle.Marshal] writes the same format, sorted by key ID.
package jwtbundle
