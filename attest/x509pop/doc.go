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
//  3. The server sends a challenge of [NonceSize] random bytes.
//  4. The agent signs SHA-256("spiffekit x509pop v1" || 0x00 || nonce ||
//     SHA-256(leaf DER)) with the leaf's key: ECDSA (ASN.1 signature),
//     RSA-PSS with SHA-256 and a salt as long as the hash, or Ed25519 (over
//     the 32-byte digest). The fixed prefix keeps the signature from being
//     usable as anything else, and the leaf hash binds it to this
//     certificate.
//  5. The server verifies the signature with the leaf's public key.
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
//	client, err := x509pop.LoadClient("/etc/spiffekit/node.pem", "/etc/spiffekit/node.key")
//	payload, err := client.Payload(ctx)
//	response, err := client.Respond(ctx, challengeFromServer)
package x509pop
