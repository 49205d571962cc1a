package nodeserver

import (
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// CachedAgent returns the server's cached record of id, as calls of the
// agent see it before any store read.
func (s *Server) CachedAgent(id spiffeid.ID) (registry.Agent, bool) {
	return s.agents.Cached(id)
}

// Generation returns how many times the server told the open streams to
// look again.
func (s *Server) Generation() uint64 {
	gen, _ := s.watch()
	return gen
}
