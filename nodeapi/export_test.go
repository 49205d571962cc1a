package nodeapi

import (
	"github.com/spiffekit/spiffekit/internal/nodepb"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// EntryToPB and EntryFromPB expose the entry conversions to the external
// tests.
var (
	EntryToPB   = entryToPB
	EntryFromPB = entryFromPB
)

// ParseUpdate runs the client's conversion of one entry stream message, as
// Client.Sync does for each message it receives.
func ParseUpdate(td spiffeid.TrustDomain, resp *nodepb.SyncResponse) (Update, error) {
	c := &Client{cfg: ClientConfig{TrustDomain: td}}
	return c.update(resp)
}

// AgentSVIDFromPB exposes the client's check of an agent SVID.
var AgentSVIDFromPB = agentSVIDFromPB

// CachedAgent returns the server's cached record of id, as calls of the
// agent see it before any store read.
func (s *Server) CachedAgent(id spiffeid.ID) (registry.Agent, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.agents[id]
	return a, ok
}

// Generation returns how many times the server told the open streams to
// look again.
func (s *Server) Generation() uint64 {
	gen, _ := s.watch()
	return gen
}
