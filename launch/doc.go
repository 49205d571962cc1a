// Package launch gives identities on demand to short-lived sandboxes (AI
// agents, CI steps, functions) that run no node agent. A trusted launcher,
// an orchestrator that starts them, asks the server for a launch over a
// unix socket; it gets a one-time handle, hands it to the sandbox it
// starts, and the sandbox trades the handle for an SVID at the server's
// token exchange endpoint (package exchange). The identity ends when the
// launch's TTL does.
//
// # A launch
//
// [Server.Launch] writes a registration entry for the SPIFFE ID asked for,
// parented by [ParentID] (spiffe://<td>/spiffekit/launch, in the reserved
// namespace, so that no agent is ever given it), expiring after the
// launch's TTL (at most [MaxTTL]), with the launcher's metadata as its hint
// and one selector, launch:handle:<SHA-256 of the handle's secret, hex>.
// The handle is <entry ID>.<256-bit secret, base64url>: only its digest is
// stored, and it is returned once, with the trust domain's X.509
// authorities (Config.X509Authorities) for the sandbox to authenticate the
// endpoint and its peers, and its JWT and WIT authorities
// (Config.JWTAuthorities, Config.WITAuthorities, each a JWK Set on the
// launcher API) to validate the JWT-SVIDs and WIT-SVIDs it is shown. The
// handle itself is redeemed for an X509-SVID or a JWT-SVID.
// Reserved SPIFFE IDs (the server's and the agents') and IDs of other trust
// domains are refused, and so are IDs outside Config.PathPrefixes when it
// lists any: without them a launcher may take any workload identity of the
// trust domain for the life of a launch.
//
// # Redemption
//
// The sandbox posts the handle to the token exchange as a subject_token of
// type exchange.TokenTypeLaunchHandle, with a CSR for an X509-SVID or an
// audience for a JWT-SVID. [Server.Redeem] reads the entry, compares the
// secret's digest in constant time, refuses an expired or redeemed
// launch, lets the exchange refuse a request it cannot honour (another
// spiffe_id) without spending the handle, and marks the launch redeemed
// (launch:redeemed:<digest>) by an
// update at the revision it read: of concurrent redemptions, on any
// servers sharing the store, one wins. A handle gives one SVID, which
// never outlives the launch.
//
// # End
//
// An expired launch's entry is served to no one and is deleted by the
// server's pruner of expired entries; [Server.End] (DELETE
// /v1/launches/{id}) deletes it earlier.
//
// # The launcher API
//
// [Server.Serve] answers HTTP+JSON on a unix socket ([Server.Listen]),
// like the admin API: every connection's uid is read from the kernel
// (SO_PEERCRED) and only Config.AllowedUIDs may call it.
//
//	POST   /v1/launches       {"spiffe_id": "spiffe://example.org/sandbox/42", "ttl": "10m", "hint": "job 42"}
//	GET    /v1/launches/{id}
//	DELETE /v1/launches/{id}
//
// [Client] is a launcher's Go client of it ([Dial]).
//
// Launches are rate-limited (Config.Rate) and bounded in number
// (Config.MaxLive alive at once, default [DefaultMaxLive]), and every
// launch, redemption and end is one log line with the launch's ID and
// SPIFFE ID (and the launcher's uid and pid); never the handle.
//
// # Usage
//
//	// the server's side (package server does this with Config.Launcher)
//	ls, err := launch.New(launch.Config{TrustDomain: td, Entries: store})
//	lis, err := ls.Listen("/run/spiffe-server/launch.sock")
//	go ls.Serve(ctx, lis)
//	h, err := exchange.New(exchange.Config{TrustDomain: td, Handles: ls, Entries: idx, Minter: minter})
//
//	// the launcher's side
//	c := launch.Dial("/run/spiffe-server/launch.sock")
//	l, err := c.Launch(ctx, launch.Params{SPIFFEID: id, TTL: 10 * time.Minute})
//	// start the sandbox with l.Handle (and l.X509Authorities, l.JWTAuthorities, l.WITAuthorities); it redeems the handle at the exchange
//
// Package server serves both (server.Config.Launch).
package launch
