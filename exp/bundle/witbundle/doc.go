// Package witbundle holds WIT bundles: the public keys, by key ID, that a
// trust domain uses to sign WIT-SVIDs (Workload Identity Tokens). Like the
// WIT-SVID standard it follows, the package is experimental.
//
// A [Bundle] belongs to exactly one trust domain. A [Set] keys bundles by trust
// domain. Both implement [Source].
//
//	td := spiffeid.RequireTrustDomainFromString("example.org")
//	bundle, err := witbundle.Parse(td, jwksBytes)
//	if err != nil {
//		return err
//	}
//	key, ok := bundle.FindWITAuthority(kid)
//
//	var source witbundle.Source = witbundle.NewSet(bundle)
//
// # Encoding
//
// [Parse], [Read] and [Load] take a plain RFC 7517 JWK Set, the format of the
// Workload API's WIT bundles (WIT rule 17): "use" is ignored, every key needs a
// non-empty, unique "kid" (WIT rule 16), keys with private members or of type
// "oct" are rejected, and keys of unknown type are skipped. Documents above
// [MaxBundleSize] bytes or with more than [MaxKeys] keys are rejected.
// [Bundle.Marshal] writes the same format, sorted by key ID.
package witbundle
