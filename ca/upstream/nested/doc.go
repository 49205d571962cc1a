// Package nested is a [ca.UpstreamAuthority] backed by another issuing
// server of the same trust domain, for nested (downstream) servers, as
// SPIRE's UpstreamAuthority "spire": each X.509 CA of the downstream
// server's rotating CA (package ca/rotation) is an intermediate signed by
// the upstream server, and the downstream server's bundle holds the
// upstream server's roots, so that an SVID issued at any level verifies
// everywhere in the trust domain.
//
// # How a downstream server is authorized
//
// The downstream server runs beside a node agent attested to the upstream
// server, and is a workload of that agent: an entry of the upstream server
// marked downstream (registry.Entry.Downstream, `entry create -downstream`)
// gives it an X509-SVID, which it fetches from the agent's Workload API
// (workloadapi.X509Source serves both Config.SVIDSource and
// Config.BundleSource). MintX509CA presents that SVID over mutual TLS to
// the upstream server's node API, authorizes the server by its SPIFFE ID
// (spiffe://<trust domain>/spiffekit/server, nodeapi.ServerPath), and
// calls the node protocol's MintX509CA with a CSR of the new CA key. The
// upstream server signs only for a caller whose SPIFFE ID is that of a
// downstream entry, read from its store at each call (a deleted entry
// stops authorizing at once), only the CSR's key with the trust domain's
// SPIFFE ID as sole URI SAN (a CSR naming anything else is refused), and
// caps the lifetime at its own CA's expiry.
//
// # JWT keys
//
// PublishJWTKeys (ca.UpstreamJWTPublisher) sends the upstream server the
// JWT keys a server signs with, its own and those the servers below it
// published, with the same authorization as
// MintX509CA (the node protocol's PublishJWTKeys). The upstream server
// keeps them as a share of the trust domain's bundle and answers with its
// bundle, which the server keeps beside its own: a JWT-SVID minted at any
// level validates at every level. Package server does this on its own when
// its upstream authority is one.
//
// # Rotation
//
// The downstream rotating CA prepares its next CA at half life, as with
// any upstream authority, and has it signed by the upstream server's CA
// active then. Servers may be nested any number of levels deep: a
// downstream server is itself an upstream one for the servers below it.
// While the upstream server is down, a downstream server keeps issuing
// SVIDs with its CA until that CA expires.
//
// # What is checked
//
// Every answer is checked before use: a chain of at most
// nodeapi.MaxChainLength certificates whose first is a CA certificate for
// the key of the request, naming exactly the trust domain's SPIFFE ID,
// that verifies to the roots sent with it, at most 64 of them.
//
// # Usage
//
//	src, err := workloadapi.NewX509Source(ctx, workloadapi.WithClientOptions(workloadapi.WithAddr(agentSocket)))
//	up, err := nested.New(nested.Config{
//		ServerAddress: "upstream.example.org:8081",
//		TrustDomain:   td,
//		SVIDSource:    src,
//		BundleSource:  src,
//	})
//	defer up.Close()
//	srv, err := server.New(ctx, server.Config{TrustDomain: td, Upstream: up, ...})
package nested
