// Package wpt mints and verifies WIMSE Workload Proof Tokens (WPTs): short
// JWTs, signed with the private key of a WIT-SVID's cnf claim, that prove
// possession of that key for one HTTP request. A WIT-SVID is not a bearer
// token (WIT rules 14, 15); a WPT is the proof that makes it one
// presentation, bound to the request it travels with.
//
// The package follows draft-ietf-wimse-wpt-02 (27 August 2026) with the
// Workload Identity Token of draft-ietf-wimse-workload-creds-02, as the
// SPIFFE WIT-SVID profiles it. Like both drafts, it is experimental. A
// request carries the WIT-SVID in the Workload-Identity-Token header field
// and the WPT in Authorization with the WPT scheme:
//
//	Workload-Identity-Token: eyJhbGciOiJFUzI1NiIsImtpZCI6...
//	Authorization: WPT eyJhbGciOiJFUzI1NiIsInR5cCI6IndwdCtqd3QifQ...
//
// The WPT's header holds alg, the WIT's cnf.jwk.alg, and typ "wpt+jwt"; its
// claims are aud (the target URI without query or fragment), exp, jti (128
// random bits), wth (the SHA-256 of the WIT as sent), tth (the SHA-256 of a
// Txn-Token in the request) and oth (the SHA-256 of other context tokens, by
// lowercased header field name). [Mint] also sets iat and htm, the request
// method: htm is the claim RFC 9449 registers for DPoP proofs, not one of
// the draft's, and a recipient that does not know it ignores it
// (draft-ietf-wimse-wpt-02 §2.3). The draft's earlier ath claim (the hash of
// an access token in the same request) was removed in -02, since a WPT
// request carries no other Authorization credentials; this package neither
// sets nor reads it.
//
// # Usage
//
// The client side adds a [Transport], which reads the WIT-SVID from a live
// source, such as workloadapi.WITSource, for each request:
//
//	source, err := workloadapi.NewWITSource(ctx)
//	client := &http.Client{Transport: &wpt.Transport{Source: source, ID: id}}
//
// The server side wraps its handler with a [Verifier]'s middleware, which
// validates the WIT-SVID against the WIT bundles (the same source will do)
// and the WPT against the request, and hands the handler the caller's
// SPIFFE ID:
//
//	verifier, err := wpt.NewVerifier(wpt.Config{
//		Bundles: source,
//		Origins: []string{"https://api.example.org"}, // from configuration, never from Host
//	})
//	http.Handle("/", verifier.Middleware(handler))
//	// in handler: res, _ := wpt.FromContext(r.Context()); res.ID is the caller
//
// # Verification
//
// [Verifier.Verify] refuses a request unless: it has exactly one
// Workload-Identity-Token field, whose WIT-SVID passes
// witsvid.ParseAndValidate against the bundle of its own trust domain; it
// has exactly one Authorization field, with the WPT scheme and one compact
// JWS of at most [MaxTokenLength] bytes; the WPT's alg is exactly the WIT's
// cnf.jwk.alg (so neither "none" nor any other algorithm is tried) and its
// signature verifies with the cnf key; typ is "wpt+jwt"; aud names one of
// the configured origins followed by the request's path; exp is present, not
// past, and at most Config.MaxLifetime ahead (and iat, when present, not in
// the future and at most Config.MaxLifetime before exp); wth is the hash of
// the WIT-SVID
// presented; tth is present and matches when the request has a Txn-Token,
// and absent otherwise; every oth entry names a header field present once
// whose value it hashes, and every configured context-token header present
// is covered; htm, when present (or always, with Config.RequireMethod), is
// the request's method; and the pair of the WIT's SPIFFE ID and the jti has
// not been seen while it could still be valid. The replay cache holds at
// most Config.ReplayCacheSize entries, each until its WPT expires; when it
// is full of live entries, new proofs are refused ([ErrReplayCacheFull])
// rather than an entry forgotten early.
package wpt
