// Package exchange is an OAuth 2.0 Token Exchange endpoint (RFC 8693) that
// turns an identity token of a trusted external issuer (a CI system's OIDC
// token, a Kubernetes service account token, a cloud identity token) into
// an SVID: a JWT-SVID for the audience asked for, or an X509-SVID for a
// certificate request the caller sends. It gives an identity to jobs that run
// no node agent.
//
// # What is checked
//
// The token must be a JWS of a configured [Issuer], signed with one of the
// JWT-SVID algorithms (RS*, ES*, PS*; never "none" nor HMAC) by a key of the
// issuer's JWK Set, found through its OpenID Connect discovery document and
// named by the token's "kid". Its "iss" must be the issuer's identifier
// exactly, its "aud" must hold the issuer's configured Audience, "exp" must
// be present and not past, "nbf" and "iat" not in the future, each within
// [Config.ClockSkew]; "sub" must be present.
//
// # Who gets what
//
// The verified claims become selectors of type [SelectorType]:
//
//	oidc:<issuer>:sub:<sub>
//	oidc:<issuer>:claim:<name>:<value>
//
// one for every other string claim, and one per element of a claim that is
// an array of strings (registered claims, and claim names holding ':', are
// left out). A registration entry whose parent is [ParentID] of the trust
// domain (spiffe://<td>/spiffekit/exchange) and whose selectors are all among
// them names the SPIFFE ID that the caller may obtain, as an ordinary entry
// names what an agent's workload may obtain. No agent is ever given such
// entries: the parent is in the reserved namespace, where no agent lives.
// An entry whose own SPIFFE ID is reserved is never used.
//
// # Launch handles
//
// With [Config.Handles] set, a subject_token of type
// [TokenTypeLaunchHandle] is a one-time handle that a trusted launcher
// obtained for a sandbox it starts (package launch). The [HandleRedeemer]
// consumes it and names the entry whose SVID the sandbox gets; the SVID
// never outlives that entry's expiry, and a reserved or foreign SPIFFE ID
// is never issued. A handle is consumed before anything is minted.
//
// # The protocol
//
// A POST of application/x-www-form-urlencoded parameters (at most
// [MaxRequestSize] bytes):
//
//	grant_type=urn:ietf:params:oauth:grant-type:token-exchange
//	subject_token=<the external JWT>
//	subject_token_type=urn:ietf:params:oauth:token-type:jwt (or ...:id_token, or a launch handle's type)
//	requested_token_type=urn:ietf:params:oauth:token-type:jwt  (a JWT-SVID; the default without csr)
//	audience=<aud> (repeatable; required for a JWT-SVID)
//	requested_token_type=urn:spiffekit:params:oauth:token-type:x509-svid (an X509-SVID; the default with csr)
//	csr=<base64url DER PKCS #10 request> (required for an X509-SVID)
//	spiffe_id=<ID> (needed only when several entries apply)
//
// The answer is RFC 8693's JSON response: access_token (the JWT-SVID, or the
// X509-SVID's chain as PEM, leaf first), issued_token_type, token_type
// ("N_A" for an X509-SVID, "Bearer" for a JWT-SVID), expires_in, and
// spiffe_id. Errors follow RFC 6749 §5.2: a token that is not acceptable,
// for any reason, is invalid_request, as RFC 8693 §2.2.2 requires, with a
// fixed description; the reason goes to the log. An audience or SPIFFE ID
// that cannot be given is invalid_target; a flood is refused with 429.
//
// # Limits and audit
//
// A global token bucket bounds the exchanges the endpoint verifies per
// second, and one bucket per issuer and subject the SVIDs one subject
// obtains. Every exchange, granted or refused, is one log line with the
// issuer, the subject and the SVID issued (its SPIFFE ID, type and expiry,
// and an X509-SVID's serial number); never the token.
//
// # Usage
//
//	h, err := exchange.New(exchange.Config{
//		TrustDomain: td,
//		Issuers:     []exchange.Issuer{{URL: "https://token.actions.githubusercontent.com", Audience: "spiffe://example.org"}},
//		Entries:     idx,    // a *registry/index.Index
//		Minter:      minter, // signs with the server's CA
//	})
//	...
//	http.Handle("/token", h)
//
// Package server serves it on a listener of its own (server.Config.TokenExchange).
package exchange
