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
// # Pushing changes
//
// Writes made through this server's admin socket reach the agents they
// concern at once. Writes made through another server sharing the database
// are read from the change feed every Config.PollInterval (one query per
// server, whatever the number of agents).
package server
