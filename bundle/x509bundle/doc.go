// Package x509bundle holds X.509 bundles: the CA certificates a trust domain
// uses to sign X509-SVIDs.
//
// A [Bundle] belongs to exactly one trust domain and is never merged with the
// bundle of another one (Bundle rule 4). A [Set] keys bundles by trust domain.
// Both implement [Source], the interface verifiers consume.
//
//	td := spiffeid.RequireTrustDomainFromString("example.org")
//	bundle, err := x509bundle.Load(td, "bundle.pem")
//	if err != nil {
//		return err
//	}
//	bundle.AddX509Authority(newRoot)
//
//	set := x509bundle.NewSet(bundle)
//	var source x509bundle.Source = set
//	b, err := source.GetX509BundleForTrustDomain(td)
//
// # Encodings
//
// [Parse], [Read] and [Load] take PEM CERTIFICATE blocks; [ParseRaw] takes
// concatenated DER certificates as the Workload API carries them. [Bundle.Marshal]
// writes PEM. Input larger than [MaxBundleSize] bytes is rejected.
package x509bundle
