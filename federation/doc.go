// Package federation fetches, watches and serves SPIFFE bundle endpoints, the
// HTTPS URLs through which trust domains publish their bundles to each other
// (SPIFFE Federation standard).
//
// A relationship is configured with three explicit parameters: the endpoint
// URL, the endpoint profile and the trust domain whose bundle the endpoint
// serves; none is derived from another. The profile is https_web (the
// default: Web PKI, see [WithWebPKIRoots]) or https_spiffe ([WithSPIFFEAuth]:
// the server presents an X509-SVID with a known SPIFFE ID).
//
//	td := spiffeid.RequireTrustDomainFromString("partner.example")
//	endpointID := spiffeid.RequireFromString("spiffe://partner.example/bundle-server")
//	// trust holds an up-to-date partner.example bundle, obtained out of band.
//	trust := spiffebundle.NewSet(initialBundle)
//	bundle, err := federation.FetchBundle(ctx, td, "https://partner.example/bundle",
//		federation.WithSPIFFEAuth(trust, endpointID))
//
// [WatchBundle] keeps fetching at the cadence a [BundleWatcher] chooses from
// the bundle's refresh hint and reports each new bundle; a watcher that puts
// it back into trust keeps a self-serving relationship working across key
// rotations. [NewHandler] is the server side: an http.Handler serving the
// current bundle of a trust domain as a SPIFFE bundle document.
//
//	h, err := federation.NewHandler(td, bundleSource)
//	srv := &http.Server{Handler: h, TLSConfig: tlsconfig.TLSServerConfig(svidSource)}
//	err = srv.ServeTLS(lis, "", "")
//
// The API is source-compatible with go-spiffe v2's federation package. The
// client side is stricter, as the standard asks: https URLs only, a status
// other than 200 is an error, the document size and the fetch time are
// bounded, and redirects are followed only to https URLs, a few times, with
// the same authentication. See [FetchBundle].
package federation
