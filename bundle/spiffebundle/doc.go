// Package spiffebundle holds SPIFFE bundles: all the public key material of
// one trust domain (X.509, JWT and WIT authorities) together with the bundle's
// sequence number and refresh hint, and encodes them as the SPIFFE bundle
// document, a JWK Set (RFC 7517) defined by the SPIFFE Trust Domain and Bundle
// standard.
//
// The document does not name its trust domain, so every function that reads
// one takes the trust domain as an argument (Bundle rule 2).
//
//	td := spiffeid.RequireTrustDomainFromString("example.org")
//	bundle, err := spiffebundle.Load(td, "bundle.json")
//	if err != nil {
//		return err
//	}
//	if seq, ok := bundle.SequenceNumber(); ok {
//		log.Printf("bundle sequence %d", seq)
//	}
//	doc, err := bundle.Marshal()
//
// A [Bundle] and a [Set] implement [Source] as well as [x509bundle.Source],
// [jwtbundle.Source] and [witbundle.Source], so a federated bundle set can be
// handed straight to X.509, JWT and WIT verification:
//
//	set := spiffebundle.NewSet(bundle)
//	var x509Source x509bundle.Source = set
//	var jwtSource jwtbundle.Source = set
//
// # Parsing
//
// [Parse] follows the standard where go-spiffe is stricter (keys of unknown
// type and X.509 keys without a certificate are skipped, not fatal) and is
// stricter where the standard leaves room (private key members, symmetric keys,
// duplicate key IDs and non-positive refresh hints are rejected). See [Parse]
// for the full list. Documents are limited to [MaxBundleSize] bytes and
// [MaxKeys] keys.
package spiffebundle
