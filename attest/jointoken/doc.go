// Package jointoken is the join token node attestor: an operator generates a
// single-use, short-lived secret for one node, and the node's agent presents
// it to the issuing server once to be admitted.
//
// A token reads "<id>.<secret>". The ID is not secret: it names the token in
// the [registry.TokenStore] and, unless the token carries another agent ID
// (always under spiffe://<trust domain>/spiffekit/agent/), the agent ID
// derives from it (spiffe://<trust domain>/spiffekit/agent/join_token/<id>),
// and the agent is attested with the selector join_token:id:<id>. To give a
// node a name workloads' entries can hang off, register a node alias entry
// with that selector, parented by the server's ID (the issuing server's
// admin API does this for a token requested with a SPIFFE ID).
// The secret is 32 random bytes; the store keeps only their SHA-256 digest, so
// the printed token is the only place the secret exists.
//
// # Usage
//
// On the server, generate a token and hand it to the node out of band:
//
//	token, rec, err := jointoken.Generate(ctx, store, jointoken.Params{TTL: 10 * time.Minute})
//	...
//	fmt.Println(token) // give this to the node; rec.ID names it in logs
//
//	srv, err := jointoken.NewServer(jointoken.ServerConfig{Store: store})
//	res, err := srv.Attest(ctx, td, payload, challenge)
//	if errors.Is(err, attest.ErrNodeRejected) {
//		// unknown, wrong, expired or used token: issue nothing
//	}
//
// On the node:
//
//	client := jointoken.NewClient(token)
//	payload, err := client.Payload(ctx)
//
// # Security
//
// A token admits exactly one node: the server deletes it from the store
// before it admits the node, and only the call whose deletion succeeds
// proceeds, even with several servers sharing one store. A presentation with
// the right ID but a wrong secret is rejected without consuming the token, so
// that someone who learned an ID cannot lock out the node it was made for.
// Secrets are compared in constant time and never appear in errors.
// Agents admitted by a join token cannot re-attest
// ([attest.NodeResult.CanReattest] is false): while an agent's record
// exists, a server refuses another token naming the same agent ID (the
// token is spent all the same). The agent renews with its SVID; evicting it
// frees its ID.
package jointoken
