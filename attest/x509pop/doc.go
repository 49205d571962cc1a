// Package x509pop is the X.509 proof-of-possession node attestor: a node
// holds a certificate issued by a CA the issuing server trusts, with its
// private key, and proves that it holds the key by signing a fresh nonce.
//
// # Protocol
//
//  1. The agent sends its certificate chain, leaf first, as concatenated DER
//     (at most [MaxChainLength] certificates).
//  2. The server verifies the chain against its roots at the current time.
//     The leaf must not be a CA, must carry the clientAuth (or any) extended
//     key usage, and, if it has a key usage extension, digitalSignature.
//  3. The server sends a challenge: [NonceSize] random bytes followed by the
//     SPIFFE ID its agents know it by, spiffe://<trust domain>/spiffekit/server,
//     as text (the audience).
//  4. The agent checks that the audience is the server ID of the trust
//     domain it was configured with ([ClientConfig].TrustDomain), and
//     refuses to answer otherwise. It signs SHA-256("spiffekit x509pop v2" ||
//     0x00 || nonce || SHA-256(leaf DER) || len || trust domain name || len
//     || audience), each len a big-endian uint16 giving the length of the
//     field after it, with the leaf's key: ECDSA (ASN.1 signature), RSA-PSS
//     with SHA-256 and a salt as long as the hash, or Ed25519 (over the
//     32-byte digest). The fixed prefix keeps the signature from being usable
//     as anything else, and the leaf hash binds it to this certificate.
//  5. The server verifies the signature with the leaf's public key, over its
//     own trust domain and server ID.
//
// The trust domain and audience in the proof stop a relay: when two trust
// domains trust the same node CA, a server of one could otherwise send the
// challenge it got from a server of the other to one of its own nodes, and
// pass the node's answer on to be admitted, as that node, in the other
// trust domain. The node refuses a challenge naming another trust domain's
// server, and an answer made for its own is refused by the other one.
//
// Version 2 of the wire format, described here, replaced version 1, whose
// challenge was the bare nonce and whose proof covered the nonce and the
// leaf only (prefix "spiffekit x509pop v1"). The two do not mix: an agent of
// one version and a server of the other fail the exchange with a clear
// error (a challenge of the wrong length; a proof that does not verify), so
// agents and servers are upgraded together.
//
// The agent ID is spiffe://<trust domain>/spiffekit/agent/x509pop/<fp>,
// where fp is the lower-case hexadecimal SHA-256 of the leaf's DER: a new
// certificate means a new agent. The agent can re-attest with the same
// certificate. See [Server.Attest] for the selectors.
//
// # Usage
//
// On the server:
//
//	srv, err := x509pop.LoadServer("/etc/spiffekit/node-ca.pem")
//	res, err := srv.Attest(ctx, td, payload, challenge)
//	if errors.Is(err, attest.ErrNodeRejected) {
//		// untrusted, expired or misused certificate, or no proof of the key
//	}
//
// On the node:
//
//	client, err := x509pop.LoadClient(td, "/etc/spiffekit/node.pem", "/etc/spiffekit/node.key")
//	payload, err := client.Payload(ctx)
//	response, err := client.Respond(ctx, challengeFromServer)
package x509pop
