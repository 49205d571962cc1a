// Package admin is the administration API of an issuing server: a small
// HTTP/1.1 + JSON API on a unix socket that only root and the server's own
// uid may use, to manage registration entries, join tokens, federated
// bundles, federation relationships and node agents, to read the trust
// domain's own bundle, to operate its CA (prepare, activate, taint and
// revoke authorities) and to have SVIDs minted outside registration.
//
// This package is the API and its client: [Client], made by [Dial], the
// values it exchanges ([Authority], [Relationship], [Refreshed],
// [MintedX509SVID], [MintedJWTSVID]) and the errors its answers wrap. The
// server side, which a server embeds to answer on its socket, is package
// admin/adminserver:
//
//	srv, err := adminserver.New(adminserver.Config{
//		TrustDomain: td,
//		Entries:     store, Agents: store, Bundles: store,
//		Tokens:      tokens,
//		Bundle:      rotator.Bundle,
//	})
//	lis, err := adminserver.ListenUnix("/run/spiffe-server/admin.sock")
//	go srv.Serve(ctx, lis)
//
//	c := admin.Dial("/run/spiffe-server/admin.sock")
//	e, err := c.CreateEntry(ctx, registry.Entry{...})
//	if errors.Is(err, registry.ErrAlreadyExists) { ... }
//
// A caller whose uid may not administer the server gets an error wrapping
// [ErrPermissionDenied], whether the socket's mode kept it out or the
// server refused it. An entry the server refuses (see admin/adminserver
// for what an entry may hold) gives an error wrapping [registry.ErrInvalid]
// with the reason.
//
// # Wire
//
// Routes, all under /v1: status (GET: the trust domain and health),
// entries (POST, GET with filter parameters, GET /entries/count with
// them; GET, PUT and DELETE /entries/{id}; POST /entries/batch, a JSON
// array of at most [MaxBatchEntries] entries answered with one result per
// entry), tokens (POST), bundle (GET, ?format=pem|spiffe),
// federation/bundles (GET; GET, PUT and DELETE /federation/bundles/{trust
// domain}, DELETE with ?mode=restrict|delete|dissociate, see
// [BundleDeleteMode]), federation/relationships (GET, POST; GET, PUT and
// DELETE /federation/relationships/{trust domain}: {"trust_domain",
// "bundle_endpoint_url", "bundle_endpoint_profile", "endpoint_spiffe_id",
// "trust_domain_bundle" (a SPIFFE bundle document, base64), and in answers
// "configured", "created_at", "updated_at"}; POST
// /federation/relationships/{trust domain}/refresh fetches its bundle now,
// answered with {"trust_domain", "changed", "sequence_number"}), and
// agents (GET, GET /agents/count, DELETE, and POST /agents/ban), which
// name the agent in the query parameter id because agent IDs contain
// slashes, and authorities (GET; POST /authorities/{x509|jwt|wit}/prepare;
// /activate, with an optional {"authority_id": "..."}; /taint and /revoke
// with one), and svids (POST /svids/x509 with {"csr": DER, "ttl": "1h"},
// the SPIFFE ID and DNS names read from the CSR, answered with the chain
// and the root CAs; POST /svids/jwt with {"spiffe_id", "audience": [...],
// "ttl"}, answered with the token; both logged at Info without the key or
// token). Errors are {"error": "...", "code": "..."} with status 400, 403,
// 404, 409, 413, 500 or 503 (code "unavailable", [ErrUnavailable]: the
// server's stores did not answer within its request timeout, or a
// refresh's fetch failed); a batch's request body is bounded by
// [MaxBatchRequestBody], any other's by adminserver.MaxRequestBody.
//
// A join token request (POST /tokens, {"ttl": "10m", "spiffe_id": "..."})
// names an optional node alias for the agent the token admits, in the
// trust domain and outside the reserved namespace; see
// [Client.GenerateToken].
package admin
