// Package bundleset provides [Set], a concurrency-safe set of bundles keyed by
// trust domain. It is the mechanism behind the Set types of
// bundle/x509bundle, bundle/jwtbundle, exp/bundle/witbundle and
// bundle/spiffebundle, which wrap a Set of their own Bundle type and add their
// Source methods.
//
//	var set bundleset.Set[*x509bundle.Bundle] // ready to use
//	set.Add(bundleA, bundleB)                 // one bundle per trust domain
//	b, ok := set.Get(td)
//	for _, b := range set.Bundles() {         // sorted by trust domain
//		// ...
//	}
//
// A Set holds the bundles it is given, not copies.
package bundleset
