package server_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/agent"
	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/jointoken"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/server"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// TestReservedIDsAreRefused: no entry may issue the server's ID, an
// agent's ID or any other ID under /spiffekit/, whatever its parent.
func TestReservedIDsAreRefused(t *testing.T) {
	s := start(t, server.Config{})
	a := nodetest.StartAgent(t, s.AgentConfig(t))
	a.WaitSynced(t)
	for name, id := range map[string]spiffeid.ID{
		"the server's ID":    spiffeid.RequireFromPath(td, nodeapi.ServerPath),
		"this agent's ID":    a.ID(),
		"another agent's ID": spiffeid.RequireFromPath(td, "/spiffekit/agent/x509pop/abc"),
		"the namespace root": spiffeid.RequireFromPath(td, "/spiffekit"),
	} {
		_, err := s.Admin.CreateEntry(t.Context(), registry.Entry{SPIFFEID: id, ParentID: a.ID(), Selectors: []attest.Selector{ourUID}})
		require.ErrorIs(t, err, registry.ErrInvalid, name)
		assert.Contains(t, err.Error(), `is reserved for the server and its agents`, name)
	}
	// Only the namespace itself: a path that merely begins alike is free.
	_, err := s.Admin.CreateEntry(t.Context(), registry.Entry{
		SPIFFEID: spiffeid.RequireFromPath(td, "/spiffekit-web"), ParentID: a.ID(), Selectors: []attest.Selector{ourUID},
	})
	require.NoError(t, err)
	a.WaitEntries(t, 1)
	a.WaitSVID(t, spiffeid.RequireFromPath(td, "/spiffekit-web")) // the agent holds an entry before it serves it
}

// TestTokenSPIFFEIDIsAnAlias: a join token made with a SPIFFE ID admits
// an agent whose own ID stays under /spiffekit/agent/; the ID becomes a
// node alias of that agent, whose workload entries the agent serves.
func TestTokenSPIFFEIDIsAnAlias(t *testing.T) {
	s := start(t, server.Config{})
	alias := spiffeid.RequireFromPath(td, "/nodes/web-1")
	tok, err := s.Admin.GenerateToken(t.Context(), 10*time.Minute, alias)
	require.NoError(t, err)
	entries, err := s.Admin.ListEntries(t.Context(), registry.Filter{BySPIFFEID: alias})
	require.NoError(t, err)
	require.Len(t, entries, 1, "the token's SPIFFE ID is a node alias entry")
	assert.Equal(t, spiffeid.RequireFromPath(td, nodeapi.ServerPath), entries[0].ParentID)
	require.Len(t, entries[0].Selectors, 1)
	assert.Equal(t, jointoken.Type, entries[0].Selectors[0].Type)

	web := s.Register(t, alias, "/web")
	a := nodetest.StartAgent(t, agent.Config{
		TrustDomain: td, Servers: []string{s.Addr().String()}, TrustBundle: s.Bundle().X509Bundle(),
		NodeAttestor: jointoken.NewClient(tok.Value),
	})
	assert.Contains(t, a.ID().Path(), "/spiffekit/agent/join_token/", "the agent's own ID is an agent ID, not the alias")
	a.WaitEntries(t, 1)
	a.WaitSVID(t, web.SPIFFEID) // the agent holds an entry before it serves it

	for name, id := range map[string]spiffeid.ID{
		"a reserved ID":        spiffeid.RequireFromPath(td, "/spiffekit/agent/mine"),
		"an ID without a path": spiffeid.RequireFromString("spiffe://" + td.Name()),
	} {
		_, err := s.Admin.GenerateToken(t.Context(), time.Minute, id)
		require.ErrorIs(t, err, registry.ErrInvalid, name)
	}
}

// TestTokenTTLMinimum: a token that would expire before a node could use
// it is refused.
func TestTokenTTLMinimum(t *testing.T) {
	s := start(t, server.Config{})
	_, err := s.Admin.GenerateToken(t.Context(), time.Nanosecond, spiffeid.ID{})
	require.ErrorIs(t, err, registry.ErrInvalid)
	assert.Contains(t, err.Error(), "token TTL must be between 1s and 24h0m0s")
	_, err = s.Admin.GenerateToken(t.Context(), time.Second, spiffeid.ID{})
	require.NoError(t, err)
}
