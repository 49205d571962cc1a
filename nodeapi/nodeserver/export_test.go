package nodeserver

import (
	"time"

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

// HoldHandshakeTurn takes one of the server's handshake turns (see
// Config.MaxHandshakes), for a test to exhaust them; release gives it
// back.
func (s *Server) HoldHandshakeTurn() (release func(), err error) {
	if err := s.handshakes.acquire(false, time.Minute, nil); err != nil {
		return nil, err
	}
	return s.handshakes.release, nil
}
