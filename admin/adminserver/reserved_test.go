package adminserver_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/admintest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// TestEntryReservedIDs: the server's and the agents' namespace is refused
// as an entry's SPIFFE ID, on create, update and in a batch; as a parent
// (node aliases hang off the server's ID) it stays allowed.
func TestEntryReservedIDs(t *testing.T) {
	e := admintest.Start(t)
	ctx := t.Context()
	const msg = `admin: entry SPIFFE ID "spiffe://example.org/spiffekit/server" is reserved for the server and its agents (spiffe://example.org/spiffekit/...): registry: invalid argument`
	_, err := e.Client.CreateEntry(ctx, admintest.Entry("/spiffekit/server", "unix:uid:1"))
	require.ErrorIs(t, err, registry.ErrInvalid)
	assert.EqualError(t, err, msg)
	for _, path := range []string{"/spiffekit", "/spiffekit/agent/join_token/x", "/spiffekit/other"} {
		_, err := e.Client.CreateEntry(ctx, admintest.Entry(path, "unix:uid:1"))
		require.ErrorIs(t, err, registry.ErrInvalid, path)
		assert.Contains(t, err.Error(), "is reserved for the server and its agents", path)
	}

	alias := admintest.Entry("/nodes/blue", "join_token:id:abc")
	alias.ParentID = spiffeid.RequireFromPath(td, "/spiffekit/server")
	stored, err := e.Client.CreateEntry(ctx, alias)
	require.NoError(t, err, "a node alias is parented by the server's ID")
	stored.SPIFFEID = spiffeid.RequireFromPath(td, "/spiffekit/agent/x")
	_, err = e.Client.UpdateEntry(ctx, stored)
	require.ErrorIs(t, err, registry.ErrInvalid)
	assert.Contains(t, err.Error(), "is reserved for the server and its agents")

	results, err := e.Client.CreateEntries(ctx, []registry.Entry{admintest.Entry("/ok", "unix:uid:1"), admintest.Entry("/spiffekit/server", "unix:uid:1")})
	require.NoError(t, err)
	require.NoError(t, results[0].Err)
	require.ErrorIs(t, results[1].Err, registry.ErrInvalid)
	assert.EqualError(t, results[1].Err, msg)
}

// TestReservedEntryStaysReadable: an entry stored before the namespace was
// reserved can still be read, listed and deleted.
func TestReservedEntryStaysReadable(t *testing.T) {
	old := admintest.Entry("/spiffekit/server", "unix:uid:1")
	old.ID, old.Revision = registry.NewEntryID(), 1
	e := admintest.Start(t)
	require.NoError(t, e.Store.Replicate(t.Context(), []registry.Entry{old}, nil))
	got, err := e.Client.Entry(t.Context(), old.ID)
	require.NoError(t, err)
	assert.Equal(t, old.SPIFFEID, got.SPIFFEID)
	list, err := e.Client.ListEntries(t.Context(), registry.Filter{})
	require.NoError(t, err)
	assert.Len(t, list, 1)
	_, err = e.Client.DeleteEntry(t.Context(), old.ID, 0)
	require.NoError(t, err)
}

// TestEntryFederatesWithOwnTrustDomain: an entry cannot federate with its
// own trust domain, whose bundle its workloads have anyway.
func TestEntryFederatesWithOwnTrustDomain(t *testing.T) {
	e := admintest.Start(t)
	en := admintest.Entry("/web", "unix:uid:1")
	en.FederatesWith = []spiffeid.TrustDomain{td}
	_, err := e.Client.CreateEntry(t.Context(), en)
	require.ErrorIs(t, err, registry.ErrInvalid)
	assert.EqualError(t, err, `admin: entry federates with "example.org", this server's own trust domain: registry: invalid argument`)
	en.FederatesWith = []spiffeid.TrustDomain{spiffeid.RequireTrustDomainFromString("partner.test")}
	_, err = e.Client.CreateEntry(t.Context(), en)
	require.NoError(t, err, "a trust domain without a bundle yet is accepted: its bundle may come later")
}

// TestTokenAliasChecks: a token's SPIFFE ID, the node alias of the agent
// it admits, must be a workload ID of the trust domain, outside the
// reserved namespace; the issuer is not asked otherwise.
func TestTokenAliasChecks(t *testing.T) {
	e := admintest.Start(t)
	for id, want := range map[string]string{
		"spiffe://example.org/spiffekit/agent/join_token/x": `admin: token SPIFFE ID "spiffe://example.org/spiffekit/agent/join_token/x" is reserved for the server and its agents (spiffe://example.org/spiffekit/...); the agent's own ID is derived from the token, and the SPIFFE ID becomes a node alias of it: registry: invalid argument`,
		"spiffe://example.org":                              `admin: token SPIFFE ID "spiffe://example.org" has no path: registry: invalid argument`,
		"spiffe://other.org/node":                           `admin: token SPIFFE ID "spiffe://other.org/node" is not in trust domain "example.org": registry: invalid argument`,
	} {
		_, err := e.Client.GenerateToken(t.Context(), time.Minute, spiffeid.RequireFromString(id))
		require.ErrorIs(t, err, registry.ErrInvalid, id)
		assert.EqualError(t, err, want, id)
		_, alias := e.Tokens.Last()
		assert.True(t, alias.IsZero(), "the issuer was not asked")
	}
	status, body := admintest.Raw(t, e.Path, "POST", "/v1/tokens", strings.NewReader(`{"ttl":"1m","spiffe_id":"nope"}`))
	assert.Equal(t, 400, status)
	assert.Contains(t, body, "spiffe_id: ")
	status, body = admintest.Raw(t, e.Path, "POST", "/v1/tokens", strings.NewReader(`{"ttl":"1m","agent_id":"spiffe://example.org/web"}`))
	assert.Equal(t, 400, status, "the field of older versions, which named the agent's ID, is refused")
	assert.Contains(t, body, `unknown field \"agent_id\"`)
}
