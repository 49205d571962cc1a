// Package signer has a node agent's server sign the SVIDs its issuer
// serves: [Remote] is the issuer's Signer and WITSigner, which sends the
// server a CSR for each key the issuer generated (made on every core), a
// JWT-SVID's entry and audience, or a WIT-SVID's public key, over the
// agent's current client, and checks that an X509-SVID certifies the key
// it was sent for. A request the server cannot take, or refuses, fails as
// endpoint.ErrUnavailable, so that the workload retries; a WIT-SVID of a
// server without WIT keys, as endpoint.ErrUnimplemented.
//
//	iss, err := issuer.New(ctx, issuer.Config{
//		Signer: signer.New(a.client, log), // the client of the moment, or nil
//		...
//	})
//
// Its errors carry the prefix of package agent, whose they are.
package signer
