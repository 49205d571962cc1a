// Package oauthsvid authenticates OAuth 2.0 clients with their SPIFFE SVIDs
// instead of client secrets, as draft-ietf-oauth-spiffe-client-auth-02
// (June 2026) profiles RFC 7521, RFC 7523 and RFC 8705. Like the draft, it
// is experimental.
//
// A client authenticates to a token endpoint in one of two ways:
//
//   - with a JWT-SVID (spiffe_jwt): the form carries client_assertion_type
//     urn:ietf:params:oauth:client-assertion-type:jwt-spiffe and the
//     JWT-SVID, whose aud is the authorization server's issuer identifier
//     alone, as client_assertion;
//   - with an X509-SVID (spiffe_x509): the request goes over mutual TLS with
//     the X509-SVID as client certificate, and client_id is its SPIFFE ID.
//     The client checks the server's certificate against Web PKI roots, not
//     the SPIFFE bundle.
//
// The draft's third way, a WIT-SVID with OAuth 2.0 Attestation-Based Client
// Authentication (spiffe_wit), is not implemented.
//
// # Client
//
//	source, err := workloadapi.NewJWTSource(ctx)
//	client := &oauthsvid.Client{
//		TokenURL:  "https://as.example.com/token",
//		Audience:  "https://as.example.com", // the issuer identifier
//		JWTSource: source,
//	}
//	token, err := client.Token(ctx, url.Values{"grant_type": {"client_credentials"}})
//
// # Authorization server
//
// A [Validator] authenticates token requests for an authorization server
// written in Go, against the trust domains' bundles it is configured with,
// and maps the SPIFFE ID to a registered client ([Registry]):
//
//	v, err := oauthsvid.NewValidator(oauthsvid.Config{
//		Issuer:     "https://as.example.com",
//		JWTBundles: bundles, // e.g. from federation.WatchBundle, keyed by trust domain
//		Clients:    oauthsvid.Registry{"spiffe://example.org/billing": oauthsvid.MustParsePattern("spiffe://example.org/billing")},
//	})
//	client, err := v.Authenticate(r)
//	if err != nil {
//		oauthsvid.WriteError(w, err) // 401 invalid_client or 400 invalid_request
//		return
//	}
//	// client.ClientID is authenticated; go on with the grant.
package oauthsvid
