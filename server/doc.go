// Package server assembles an issuing server from the kit's parts: a
// self-rotating CA (ca/rotation, over any ca.KeyManager, optionally under
// a ca.UpstreamAuthority), a registry (any backend of the registry store
// interfaces), the node API that agents attest to and sync from
// (nodeapi/nodeserver, with the node attestors it is given) and an
// administration socket (admin).
//
// [Config] takes Go values, not file names: the program opens databases,
// reads PEM files and reloads certificates. [OpenSQLite] makes the common
// case, a server whose state (SQLite registry, CA keys on disk, CA journal,
// server ID) lives in one directory, with the join_token node attestor:
//
//	cfg, store, err := server.OpenSQLite(ctx, td, "/var/lib/spiffe-server")
//	if err != nil {
//		return err
//	}
//	defer store.Close()
//	cfg.BindAddr = "0.0.0.0:8081"
//	cfg.AdminSocket = "/run/spiffe-server/admin.sock"
//	s, err := server.New(ctx, cfg)
//	if err != nil {
//		return err
//	}
//	defer s.Close()
//	return s.Run(ctx) // until ctx is done
//
// Any part can be replaced: registry/memstore and keymanager.Memory make a
// server that touches no disk, and a node attestor is any
// attest.NodeAttestor, filed under its Type:
//
//	store := memstore.New(memstore.Config{})
//	s, err := server.New(ctx, server.Config{
//		TrustDomain:   td,
//		Stores:        server.StoresOf(store),
//		KeyManager:    keymanager.NewMemory(),
//		NodeAttestors: map[string]attest.NodeAttestor{"psk": psk},
//	})
//
// [Server.Stats] reports the server's figures (entries, agents, CA expiry,
// federation fetches) from memory, for health checks and metrics.
//
// # High availability
//
// Servers whose Stores share one database (registry/sqlstore on
// PostgreSQL) serve one trust domain together. Each keeps its own CA, under
// its own Config.ServerID ([DataDir] keeps the keys, journal and ID in a
// directory); each publishes its authorities in the database and hands
// agents a bundle that holds every live server's authorities, so an SVID
// signed by one verifies everywhere. Join tokens, agent records (evictions,
// bans) and entries are shared. Agents given several server addresses fail
// over between them.
//
// # Operating the CA
//
// The admin socket lists and operates the CA's authorities, X.509 CAs,
// JWT keys and, with Config.WITSVIDs, WIT keys (see
// adminserver.AuthorityManager): prepare and activate act on the answering
// server's own CA; taint and revoke on an old authority of any server of
// the trust domain. Each server publishes the state of its authorities
// beside its share of the bundle. A taint or revocation of another
// server's authority is recorded in the database (registry.AuthorityMark):
// the owning server applies it to its CA as soon as the database tells it
// (or when it starts again, if it is away), and meanwhile every server
// honours it: a revoked authority leaves the bundle every server hands
// out, and every server names every server's tainted CAs to its agents,
// which replace the SVIDs those CAs signed, their own agent SVID included.
// Every server's tainted JWT and WIT keys are named to agents the same way
// (by kid): agents drop the JWT-SVIDs and WIT-SVIDs those keys signed and
// serve tokens of the active keys from the next fetch on (open
// FetchWITSVID streams at once), however far from their half life.
//
// Servers of different versions may share the database during an
// upgrade: the authorities and marks of a kind this version does not know,
// published by a later one, are left out of what it reads (and logged),
// not a cause to fail its refresh.
//
// # Federation
//
// With Config.FederationBind the server serves its trust domain's bundle
// at "/" of an HTTPS bundle endpoint, authenticated with its own
// X509-SVID (https_spiffe, the default) or a Web PKI certificate
// (https_web, from Config.FederationCertificate). Each Config.Federation
// relationship names a foreign trust domain, its endpoint URL and profile,
// and for https_spiffe the endpoint's SPIFFE ID and, for a self-serving
// endpoint, a bootstrap bundle; nothing is inferred. The server polls each
// endpoint (at the bundle's refresh hint, at most Config.FederationRefresh
// apart), stores every changed bundle in Stores.Bundles, from where it
// reaches agents and the workloads whose entries federate with that trust
// domain, and authenticates later fetches with the latest stored bundle, so
// the foreign CA can rotate. A failed fetch is logged and the last good
// bundle stays. Removing a relationship stops the polling but keeps the
// stored bundle; the admin API deletes it.
//
//	cfg.FederationBind = "0.0.0.0:8443"
//	cfg.Federation = []server.Relationship{{
//		TrustDomain:      spiffeid.RequireTrustDomainFromString("partner.test"),
//		URL:              "https://bundle.partner.test:8443/",
//		Profile:          server.ProfileHTTPSSPIFFE,
//		EndpointSPIFFEID: spiffeid.RequireFromString("spiffe://partner.test/spiffekit/server"),
//		BootstrapBundle:  partnerBundle, // handed over out of band
//	}}
//
// # Token exchange
//
// With [Config.TokenExchange] set, the server also serves OAuth 2.0 token
// exchange (RFC 8693, package exchange) over HTTPS at [ExchangePath]: a job
// that runs no agent trades an identity token of a configured OpenID
// Connect issuer (a CI system, a Kubernetes service account, a cloud) for a
// JWT-SVID or an X509-SVID, as an entry parented by exchange.ParentID
// grants it:
//
//	cfg.TokenExchange = &server.TokenExchange{
//		Bind: "0.0.0.0:8444",
//		Endpoint: exchange.Config{Issuers: []exchange.Issuer{{
//			URL:      "https://token.actions.githubusercontent.com",
//			Audience: "spiffe://example.org",
//		}}},
//	}
//
// The endpoint presents the server's own X509-SVID unless
// TokenExchange.Certificate gives another certificate.
//
// # On-demand identities
//
// With [Config.Launcher] set too, a trusted launcher (an orchestrator of AI
// agents or sandboxes, by uid) makes launches on a unix socket (package
// launch): a short-lived entry for the SPIFFE ID it asks for, and a
// one-time handle that the sandbox it starts redeems at the token
// exchange endpoint for an SVID, with no agent. The entry expires with
// the launch's TTL and is pruned; the launcher may end it earlier.
//
//	cfg.TokenExchange = &server.TokenExchange{Bind: "0.0.0.0:8444"} // no issuer needed for launches alone
//	cfg.Launcher = &server.Launcher{
//		SocketPath: "/run/spiffe-server/launch.sock",
//		Service:    launch.Config{AllowedUIDs: []int{orchestratorUID}, MaxTTL: time.Hour},
//	}
//
// # Pushing changes
//
// A store that is a registry.Notifier tells the server of writes:
// registry/memstore and SQLite of those made through the same store value,
// PostgreSQL of every server's (LISTEN/NOTIFY, on a connection the store's
// Run holds, which Server.Run runs). The server then reads what changed,
// once for all its agents: the change feed for entries, the agent records
// for evictions and bans, the other servers' shares of the bundle and the
// federated bundles. So a write made through any server reaches the agents
// of every server within milliseconds. Every Config.PollInterval (30 s) the
// server reads them anyway, as a safety net for a lost notification or a
// store that tells of none.
package server
