// Package server assembles an issuing server from the kit's parts: a
// self-rotating CA (ca/rotation, keys on disk), a registry (SQLite in the
// data directory, or a PostgreSQL database shared by several servers), the
// node API that agents attest to and sync from (nodeapi, with the
// join_token and x509pop node attestors), and an administration socket
// (admin).
//
//	s, err := server.New(ctx, server.Config{
//		TrustDomain: spiffeid.RequireTrustDomainFromString("example.org"),
//		DataDir:     "/var/lib/spiffe-server",
//		BindAddr:    "0.0.0.0:8081",
//		AdminSocket: "/run/spiffe-server/admin.sock",
//	})
//	if err != nil {
//		return err
//	}
//	defer s.Close()
//	return s.Run(ctx) // until ctx is done
//
// # High availability
//
// Servers given the same PostgreSQL Datastore serve one trust domain
// together. Each keeps its own CA in its own data directory and publishes
// its authorities in the database; each hands agents a bundle that holds
// every live server's authorities, so an SVID signed by one verifies
// everywhere. Join tokens, agent records (evictions, bans) and entries are
// shared. Agents given several server addresses fail over between them.
//
// # Federation
//
// With Config.FederationBind the server serves its trust domain's bundle
// at "/" of an HTTPS bundle endpoint, authenticated with its own
// X509-SVID (https_spiffe, the default) or a Web PKI certificate
// (https_web). Each Config.Federation relationship names a foreign trust
// domain, its endpoint URL and profile, and for https_spiffe the
// endpoint's SPIFFE ID and, for a self-serving endpoint, a bootstrap
// bundle; nothing is inferred. The server polls each endpoint (at the
// bundle's refresh hint, at most Config.FederationRefresh apart), stores
// every changed bundle in the datastore, from where it reaches agents and
// the workloads whose entries federate with that trust domain, and
// authenticates later fetches with the latest stored bundle, so the
// foreign CA can rotate. A failed fetch is logged and the last good bundle
// stays. Removing a relationship stops the polling but keeps the stored
// bundle; the admin API deletes it.
//
//	s, err := server.New(ctx, server.Config{
//		TrustDomain:    td,
//		DataDir:        dir,
//		FederationBind: "0.0.0.0:8443",
//		Federation: []server.Relationship{{
//			TrustDomain:      spiffeid.RequireTrustDomainFromString("partner.test"),
//			URL:              "https://bundle.partner.test:8443/",
//			Profile:          server.ProfileHTTPSSPIFFE,
//			EndpointSPIFFEID: spiffeid.RequireFromString("spiffe://partner.test/spiffekit/server"),
//			BootstrapBundle:  "/etc/spiffe-server/partner.test.json",
//		}},
//	})
//
// # Pushing changes
//
// The datastore tells the server of writes (registry.Notifier): on SQLite
// of those made through the server itself, on PostgreSQL of every server's
// (LISTEN/NOTIFY, on a connection Run holds). The server then reads what
// changed, once for all its agents: the change feed for entries, the agent
// records for evictions and bans, the other servers' shares of the bundle
// and the federated bundles. So a write made through any server reaches
// the agents of every server within milliseconds. Every
// Config.PollInterval (30 s) the server reads them anyway, as a safety net
// for a lost notification.
package server
