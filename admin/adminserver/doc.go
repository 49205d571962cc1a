// Package adminserver is the server side of the administration API
// (package admin, which holds its client and the values it exchanges): a
// [Server] an issuing server embeds to answer the API on a unix socket made
// by [ListenUnix], over the registry's stores and a join token issuer, and
// optionally the managers of the CA's authorities ([AuthorityManager]), of
// federation relationships ([FederationManager], refreshed on demand
// through a [FederationRefresher]) and of SVIDs minted outside
// registration ([SVIDMinter]):
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
// The routes and the wire form are described in package admin. Request
// bodies are bounded by [MaxRequestBody], a batch's by
// admin.MaxBatchRequestBody; each request's work by
// [Config.RequestTimeout], after which it is answered 503 with the code
// "unavailable".
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
// A join token's node alias must be in the trust domain, have a path and
// be outside the reserved namespace; so must a minted SVID's SPIFFE ID.
package adminserver
