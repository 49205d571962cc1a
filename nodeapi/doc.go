// Package nodeapi is the protocol between an issuing server and its node
// agents, and its client side (Attest, Dial, Client); the server side is
// package [github.com/spiffekit/spiffekit/nodeapi/nodeserver]. It is public
// so that custom agents can speak it.
//
// The protocol is gRPC over TLS 1.3 (service "spiffekit.node.v1.Node"):
//
//   - Attest: a challenge/response stream. The agent names a node attestor
//     (attest.NodeAttestor: join_token, x509pop, ...), sends its payload and
//     a CSR; the server may send challenges; the exchange ends with the
//     agent's X509-SVID and the trust domain's bundle. The server records
//     the agent (registry.AgentStore). A node may attest again under an
//     agent ID in use only if both the record's node attestor and the new
//     attestation allow it (attest.NodeResult.CanReattest: x509pop does, a
//     join token does not); otherwise it is refused (PermissionDenied) and
//     the record left as it is, until the agent is evicted.
//   - Every other call is mutual TLS with that SVID. The server accepts only
//     the SVID it issued last (or the one before, until the agent uses the
//     new one), refuses evicted and banned agents, and reads the records
//     again when the agent store tells of a write (registry.Notifier), so
//     that servers sharing a database share evictions and bans at once.
//   - RenewAgent: a new agent SVID for a new key. The record is written
//     with registry.AgentStore.UpdateAgent, which writes only a record
//     that still exists: an agent evicted through another server while it
//     renews stays evicted, and is refused.
//   - Sync: a stream of the registration entries the agent may serve (its
//     own, those of the node aliases its selectors match, and their
//     descendants), first what differs from what the agent holds, then each
//     change as it happens, with the bundle, the federated bundles and the
//     tainted CAs. Changes are computed from the server's in-memory index,
//     so an idle agent costs no datastore query.
//   - Servers sharing a registry read each other's writes from its change
//     feed, a moment later: an agent that fails over may hold, or ask to
//     sign for, an entry the new server has not read yet. Before it tells
//     an agent to delete an entry the agent holds (or holds at a newer
//     revision), or refuses to sign for one, the server reads the change
//     feed up to now, once for every caller that asked meanwhile; when that
//     read fails it answers Unavailable, never that the entry is gone.
//   - SignX509SVIDs: X509-SVIDs from CSRs, in batches of up to MaxBatch, for
//     entries the agent is authorized for only, with the entry's SPIFFE ID
//     (a CSR naming another ID is refused); the agent never sees a CA key.
//   - SignJWTSVID: a JWT-SVID for an authorized entry.
//
// # Errors
//
// The server tells an agent what it got wrong about its own request
// (InvalidArgument, with the reason) and why it is refused (Unauthenticated
// or PermissionDenied: banned, evicted, SVID superseded or expired, entry
// not authorized), in fixed words; everything else is Unavailable or
// Internal with a generic message. The client's errors keep the server's
// code and message ([CallError]). Agents retry anything but
// PermissionDenied and Unauthenticated (see [IsRefused]). The client
// checks everything a server sends: the agent SVID (for the agent's key,
// in its trust domain, verified by the bundle that comes with it), the
// entries (by the registry's own rules), chains and bundles.
//
// # Renewal
//
// A [Client] presents, at each TLS handshake, the SVID its source returns
// then; an open connection is not authenticated again, so the servers see
// a renewed SVID only over a new connection. [Client.Reconnect] moves the
// client to one: new calls go to it at once, the calls in flight on the
// old connection finish there (the old connection closes once they have,
// or after a bound the caller chooses), and the entry stream on the old
// one ends with [ErrReconnected], for the caller to open it again at once
// over the new one, which brings it up to date from the revisions it
// holds. The server retires the agent's previous SVID at its first call
// with the new one, and ends an entry stream opened with an SVID it no
// longer accepts.
//
// # Usage
//
//	cfg := nodeapi.ClientConfig{Servers: []string{"server:8081"}, TrustDomain: td, Bundle: bundle}
//	svid, err := nodeapi.Attest(ctx, cfg, jointoken.NewClient(token), key)
//	client, err := nodeapi.Dial(cfg, svidSource)
//	err = client.Sync(ctx, known, func(u nodeapi.Update) error { ... })
//	results, err := client.SignX509SVIDs(ctx, reqs)
//	err = client.Reconnect(nil, 30*time.Second) // after a renewal
//
// Package agent is a complete agent built on the client side.
package nodeapi
