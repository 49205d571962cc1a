package server

import (
	"time"
)

// Stats is a snapshot of a Server's state, for metrics and health checks.
type Stats struct {
	// Entries is the number of registration entries the server has
	// indexed.
	Entries int

	// Agents is the number of agent records the server knows of
	// (attested and not evicted, banned ones included), and
	// ConnectedAgents the number connected to this server now.
	Agents, ConnectedAgents int

	// HandshakesRefused counts the agents' connections closed since the
	// server started because their TLS handshake waited too long for a
	// turn (nodeserver.Stats.HandshakesRefused): not zero when more agents
	// connect at once than the server can handshake in time.
	HandshakesRefused uint64

	// CAExpiresAt is the expiry of the server's active X.509 CA; zero
	// while it has none.
	CAExpiresAt time.Time

	// SkippedAuthorities counts the descriptions and marks of authorities
	// of a kind this version does not know (published by a server of a
	// later version sharing the database) that the store left out of its
	// reads, at every read, since it was opened: not zero during a
	// mixed-version upgrade. Zero for a store that does not count them
	// (see sqlstore.Store.SkippedAuthorities).
	SkippedAuthorities uint64

	// Federation holds the bundle endpoint fetches of each federation
	// relationship polled now: those of Config.Federation in its order,
	// then those of Stores.Federation by trust domain name. A stored
	// relationship that is changed starts counting again.
	Federation []FederationStats
}

// Stats returns a snapshot of the server's state. It reads memory only
// and is safe for concurrent use, before and during Run.
func (s *Server) Stats() Stats {
	ns := s.node.Stats()
	st := Stats{Entries: ns.Entries, Agents: ns.Agents, ConnectedAgents: ns.Streams, HandshakesRefused: ns.HandshakesRefused}
	if a := s.ca.X509Authority(); a != nil {
		st.CAExpiresAt = a.Certificate().NotAfter
	}
	if c, ok := s.cfg.Stores.ServerBundles.(interface{ SkippedAuthorities() uint64 }); ok {
		st.SkippedAuthorities = c.SkippedAuthorities()
	}
	st.Federation = s.fed.Stats()
	return st
}
