// Package admin is the administration API of an issuing server: a small
// HTTP/1.1 + JSON API on a unix socket that only root and the server's own
// uid may use, to manage registration entries, join tokens, federated
// bundles and node agents, to read the trust domain's own bundle, and to
// operate its CA (prepare, activate, taint and revoke authorities, through
// an [AuthorityManager]) and have SVIDs minted outside registration
// (through an [SVIDMinter]).
//
// The server side is [Server], served on a socket made by [ListenUnix]; the
// client side is [Client], made by [Dial]:
//
//	srv, err := admin.New(admin.Config{
//		TrustDomain: td,
//		Entries:     store, Agents: store, Bundles: store,
//		Tokens:      tokens,
//		Bundle:      rotator.Bundle,
//	})
//	lis, err := admin.ListenUnix("/run/spiffe-server/admin.sock")
//	go srv.Serve(ctx, lis)
//
//	c := admin.Dial("/run/spiffe-server/admin.sock")
//	e, err := c.CreateEntry(ctx, registry.Entry{...})
//	if errors.Is(err, registry.ErrAlreadyExists) { ... }
//
// # Who may call
//
// The socket is created with mode 0600, and each connection's process is
// identified by the kernel (SO_PEERCRED) when it is accepted: a process
// whose uid is not in [Config.AllowedUIDs] gets 403 with
// "admin: permission denied: uid N may not administer this server" on every
// request, whatever the socket's mode. Refused connections are logged at
// Warn with their uid and pid.
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
// DELETE /federation/relationships/{trust domain}; see
// [FederationManager]: {"trust_domain", "bundle_endpoint_url",
// "bundle_endpoint_profile", "endpoint_spiffe_id", "trust_domain_bundle"
// (a SPIFFE bundle document, base64), and in answers "configured",
// "created_at", "updated_at"}; POST /federation/relationships/{trust
// domain}/refresh fetches its bundle now, through a [FederationRefresher],
// answered with {"trust_domain", "changed", "sequence_number"}), and agents (GET, GET /agents/count, DELETE, and POST
// /agents/ban), which name the agent in the query parameter id because
// agent IDs contain slashes, and authorities (GET; POST
// /authorities/{x509|jwt|wit}/prepare; /activate, with an optional
// {"authority_id": "..."}; /taint and /revoke with one), and svids (POST
// /svids/x509 with {"csr": DER, "ttl": "1h"}, the SPIFFE ID and DNS names
// read from the CSR, answered with the chain and the root CAs; POST
// /svids/jwt with {"spiffe_id", "audience": [...], "ttl"}, answered with
// the token; both logged at Info without the key or token). Errors are {"error": "...", "code":
// "..."} with status 400, 403, 404, 409, 413, 500 or 503 (code "unavailable",
// [ErrUnavailable]: the server's stores did not answer within
// [Config.RequestTimeout], or a refresh's fetch failed); request bodies are
// bounded by [MaxRequestBody], a batch's by [MaxBatchRequestBody].
//
// # What an entry may hold
//
// Besides the registry's own rules ([registry.Entry.Validate]), an entry
// (created, updated or in a batch) is refused, with 400 and the reason,
// when its SPIFFE ID or parent is outside [Config.TrustDomain]; when its
// SPIFFE ID is in the reserved namespace spiffe://<td>/spiffekit/ of the
// server and its agents ([registry.Reserved]; a parent there is fine, as
// node aliases are parented by the server's ID); when it federates with
// the server's own trust domain; and when one of its selectors is of a
// type of the built-in attestors (unix, join_token, x509pop) but of a
// value that attestor never produces (unix:uid:notanumber, UNIX:UID:0,
// unix:uid:). Selectors of other types belong to custom attestors and
// are not checked. A trust domain without a stored bundle is accepted in
// FederatesWith: a federation relationship may fetch it later. An entry's
// expiry ("expires_at", RFC 3339, absent for none; [registry.Entry.ExpiresAt])
// must not have come by [Config.Now]: an expired entry is served to no one.
//
// A join token request (POST /tokens, {"ttl": "10m", "spiffe_id": "..."})
// names an optional node alias for the agent the token admits, in the
// trust domain and outside the reserved namespace; see
// [Client.GenerateToken].
//
// A minted SVID's SPIFFE ID must be in the trust domain, have a path and
// be outside the reserved namespace.
package admin
