package nodeapi_test

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/jointoken"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// second starts another server on e's CA and stores, as a replica of the
// issuing server would be, whose cache of agent records goes stale: it
// reads them at start only (the agent store does not tell of writes, and
// the poll is slow).
func (e *env) second(t *testing.T) *env {
	t.Helper()
	srv, err := nodeapi.NewServer(t.Context(), nodeapi.ServerConfig{
		Authority:    e.ca,
		Registry:     e.store,
		Agents:       quietAgents{e.store},
		Attestors:    []attest.NodeAttestor{echoAttestor{}},
		PollInterval: time.Hour,
	})
	require.NoError(t, err)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	cancel := serve(t, srv, lis)
	return &env{ca: e.ca, auth: e.ca, store: e.store, srv: srv, addr: lis.Addr().String(), cancel: cancel}
}

// quietAgents is an agent store that does not tell of its writes.
type quietAgents struct{ registry.AgentStore }

// Property: an agent that renewed its SVID through one server is accepted
// at once by another server sharing the agent records, whose cache still
// holds the previous serial; a superseded SVID is still refused there.
func TestRenewedAgentIsAcceptedByAnotherServer(t *testing.T) {
	e := newEnv(t, nil)
	a := e.attest(t, "node1")
	s2 := e.second(t) // caches the record with the first serial
	old := &agent{key: a.key, svid: a.svid}

	_, err := a.client.RenewAgent(t.Context(), newKey(t))
	require.NoError(t, err)
	key := newKey(t)
	// Renewed again: the first SVID is now superseded twice over.
	renewed, err := a.client.RenewAgent(t.Context(), key)
	require.NoError(t, err)

	cur := &agent{key: key, svid: renewed}
	c, err := nodeapi.Dial(s2.clientConfig(), cur)
	require.NoError(t, err)
	defer c.Close()
	_, err = c.SignJWTSVID(t.Context(), "x", []string{"db"})
	assert.ErrorContains(t, err, "not authorized", "authenticated, then refused for the entry: %v", err)

	c2, err := nodeapi.Dial(s2.clientConfig(), old)
	require.NoError(t, err)
	defer c2.Close()
	_, err = c2.SignJWTSVID(t.Context(), "x", []string{"db"})
	assert.Equal(t, codes.PermissionDenied, status.Code(err))
	assert.ErrorContains(t, err, "no longer current")
}

// Property: what an agent may obtain follows the selectors of its latest
// attestation at once: an agent ID attested again with other selectors
// (join tokens naming a fixed agent ID) loses the entries that only the
// old selectors gave it, even before the next refresh of agent records.
func TestReattestationWithOtherSelectorsUpdatesAuthorization(t *testing.T) {
	e := newEnv(t, func(c *nodeapi.ServerConfig) {
		withJoinToken(t)(c)
		c.Agents = quietAgents{c.Agents}
		c.PollInterval = time.Hour
	})
	agentID := spiffeid.RequireFromPath(td, "/spiffekit/agent/fixed")
	tok1, rec1, err := jointoken.Generate(t.Context(), e.store, jointoken.Params{AgentID: agentID})
	require.NoError(t, err)
	tok2, _, err := jointoken.Generate(t.Context(), e.store, jointoken.Params{AgentID: agentID})
	require.NoError(t, err)
	serverID := spiffeid.RequireFromPath(td, nodeapi.ServerPath)
	alias := e.entry(t, serverID, "/by-token-1", attest.Selector{Type: jointoken.Type, Value: "id:" + rec1.ID})
	x := e.entry(t, alias.SPIFFEID, "/x")

	attestWith := func(tok string) *agent {
		key := newKey(t)
		svid, err := nodeapi.Attest(t.Context(), e.clientConfig(), jointoken.NewClient(tok), key)
		require.NoError(t, err)
		a := &agent{key: key, svid: svid}
		a.client, err = nodeapi.Dial(e.clientConfig(), a)
		require.NoError(t, err)
		t.Cleanup(func() { a.client.Close() })
		return a
	}
	a1 := attestWith(tok1)
	require.Equal(t, agentID, a1.svid.ID)
	_, err = a1.client.SignJWTSVID(t.Context(), x.ID, []string{"db"})
	require.NoError(t, err)

	a2 := attestWith(tok2)
	require.Equal(t, agentID, a2.svid.ID)
	_, err = a2.client.SignJWTSVID(t.Context(), x.ID, []string{"db"})
	assert.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
}

// Property: a ban written by another server, which this server's cache
// has not seen, is neither bypassed nor written over by attesting again.
func TestReattestationDoesNotBypassABan(t *testing.T) {
	e := newEnv(t, func(c *nodeapi.ServerConfig) {
		c.Agents = quietAgents{c.Agents}
		c.PollInterval = time.Hour
	})
	a := e.attest(t, "node1")
	rec, err := e.store.GetAgent(t.Context(), a.svid.ID)
	require.NoError(t, err)
	rec.Banned = true
	_, err = e.store.PutAgent(t.Context(), rec) // as another server would
	require.NoError(t, err)

	_, err = nodeapi.Attest(t.Context(), e.clientConfig(), echoClient{"node1"}, newKey(t))
	assert.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
	rec, err = e.store.GetAgent(t.Context(), a.svid.ID)
	require.NoError(t, err)
	assert.True(t, rec.Banned, "the ban is still recorded")
}
