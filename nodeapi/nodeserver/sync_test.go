package nodeserver_test

import (
	"crypto/x509"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/internal/broadcast"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/nodeapi/nodeserver"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// fedSource is a FederationSource whose bundles a test sets.
type fedSource struct {
	broadcast.Hub // Subscribe
	mu            sync.Mutex
	bundles       []*spiffebundle.Bundle
}

func (f *fedSource) FederatedBundles() []*spiffebundle.Bundle {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bundles
}

func (f *fedSource) set(b ...*spiffebundle.Bundle) {
	f.mu.Lock()
	f.bundles = b
	f.mu.Unlock()
	f.Notify()
}

func caBundle(t testing.TB, name string) *spiffebundle.Bundle {
	c := testca.New(t, spiffeid.RequireTrustDomainFromString(name))
	return spiffebundle.FromX509Authorities(c.TrustDomain(), []*x509.Certificate{c.Root()})
}

func names(bs []*spiffebundle.Bundle) []string {
	var out []string
	for _, b := range bs {
		out = append(out, b.TrustDomain().Name())
	}
	return out
}

// Federation rule: the server hands agents the federated bundles as a
// complete set when it changes, only those the agent's entries federate
// with (however many relationships the server has), and never a bundle of
// its own trust domain through federation (which would let a foreign
// source replace the trust domain's own roots).
func TestSyncDeliversFederatedBundles(t *testing.T) {
	fed := &fedSource{}
	partner := caBundle(t, "partner.example")
	unrelated := caBundle(t, "unrelated.example") // no entry of the agent's federates with it
	impostor := caBundle(t, td.Name())            // claims to be our own trust domain
	fed.set(partner, unrelated, impostor, nil)
	e := newEnv(t, func(c *nodeserver.Config) { c.Federation = fed })
	a := e.attest(t, "node1")
	updates, _ := syncUpdates(t, a)

	// No entry yet: no foreign bundle.
	u := next(t, updates)
	assert.Empty(t, u.FederatedBundles)
	require.NotNil(t, u.Bundle)
	assert.True(t, u.Bundle.Equal(e.ca.Bundle()), "the own bundle comes from the CA")

	second := spiffeid.RequireTrustDomainFromString("second.example")
	en, err := e.store.Create(t.Context(), registry.Entry{
		SPIFFEID:      spiffeid.RequireFromPath(td, "/web"),
		ParentID:      a.svid.ID,
		Selectors:     []attest.Selector{{Type: "unix", Value: "uid:1000"}},
		FederatesWith: []spiffeid.TrustDomain{partner.TrustDomain(), second},
	})
	require.NoError(t, err)
	u = next(t, updates)
	require.True(t, u.FederatedSet)
	assert.Equal(t, []string{"partner.example"}, names(u.FederatedBundles))
	assert.True(t, u.FederatedBundles[0].Equal(partner))

	secondBundle := caBundle(t, second.Name())
	fed.set(partner, secondBundle, unrelated, impostor)
	u = next(t, updates)
	require.True(t, u.FederatedSet)
	assert.ElementsMatch(t, []string{"partner.example", "second.example"}, names(u.FederatedBundles))
	assert.Nil(t, u.Bundle)

	// The entry goes: an empty set, told apart from "no change".
	_, err = e.store.Delete(t.Context(), en.ID, en.Revision)
	require.NoError(t, err)
	u = next(t, updates)
	assert.True(t, u.FederatedSet)
	assert.Empty(t, u.FederatedBundles)

	// The client refuses its own trust domain through federation, even if
	// a server sends it: see nodeapi's TestParseUpdateRejectsMalformed.
}

// Property: after a CA is tainted, every agent is told which CA at once,
// with the new bundle and active CA, so that it re-mints what that CA
// signed.
func TestSyncPropagatesTaintedCAs(t *testing.T) {
	e := newEnv(t, nil)
	a := e.attest(t, "node1")
	e.entry(t, a.svid.ID, "/web")
	updates, _ := syncUpdates(t, a)
	u := next(t, updates)
	assert.Empty(t, u.TaintedX509CAs)
	oldCA := u.ActiveX509CA
	require.NotNil(t, oldCA)

	ctx := t.Context()
	old := e.ca.X509CAs()
	_, err := e.ca.PrepareX509CA(ctx)
	require.NoError(t, err)
	require.NoError(t, e.ca.ActivateX509CA(ctx))
	var oldID string
	for _, info := range old {
		if info.Certificate.Equal(oldCA) {
			oldID = info.ID
		}
	}
	require.NotEmpty(t, oldID)
	require.NoError(t, e.ca.TaintX509CA(ctx, oldID))

	require.Eventually(t, func() bool {
		select {
		case u = <-updates:
		case <-time.After(5 * time.Second):
			return false
		}
		return len(u.TaintedX509CAs) == 1
	}, 20*time.Second, time.Millisecond)
	assert.True(t, u.TaintedX509CAs[0].Equal(oldCA))
	require.NotNil(t, u.ActiveX509CA)
	assert.False(t, u.ActiveX509CA.Equal(oldCA))

	// The renewed agent SVID comes from the new CA and verifies with the
	// bundle the agent was sent.
	cfg := e.clientConfig()
	cfg.Bundle = liveBundle{e.ca}
	c, err := nodeapi.Dial(cfg, a)
	require.NoError(t, err)
	defer c.Close()
	renewed, err := c.RenewAgent(ctx, newKey(t))
	require.NoError(t, err)
	require.NoError(t, renewed.Certificates[0].CheckSignatureFrom(u.ActiveX509CA))
}

// Node alias rule: an entry whose parent is the server ID is an alias for
// every agent whose selectors include its own; the entries under the
// alias reach those agents and no others, and may be signed by them.
func TestNodeAliasScopesEntries(t *testing.T) {
	e := newEnv(t, nil)
	n1 := e.attest(t, "node1")
	n2 := e.attest(t, "node2")
	serverID := spiffeid.RequireFromPath(td, nodeapi.ServerPath)
	alias := e.entry(t, serverID, "/cluster/blue", attest.Selector{Type: "echo", Value: "name:node1"})
	viaAlias := e.entry(t, alias.SPIFFEID, "/blue-web")

	u1, _ := syncUpdates(t, n1)
	u := next(t, u1)
	require.Len(t, u.Upserts, 1)
	assert.Equal(t, viaAlias.ID, u.Upserts[0].ID)
	u2, _ := syncUpdates(t, n2)
	assert.Empty(t, next(t, u2).Upserts, "node2 lacks the alias's selector")

	key := newKey(t)
	csr, err := nodeapi.NewCSR(key, viaAlias.SPIFFEID)
	require.NoError(t, err)
	res, err := n1.client.SignX509SVIDs(t.Context(), []nodeapi.X509SVIDRequest{{EntryID: viaAlias.ID, CSR: csr}})
	require.NoError(t, err)
	require.NoError(t, res[0].Err)
	res, err = n2.client.SignX509SVIDs(t.Context(), []nodeapi.X509SVIDRequest{{EntryID: viaAlias.ID, CSR: csr}})
	require.NoError(t, err)
	assert.ErrorContains(t, res[0].Err, "not authorized")
}

// A change of an entry parented by an agent wakes that agent's streams
// only, not every stream (the generation stays): an entry moved from one
// agent to another reaches both, as a delete and an upsert. A node alias,
// which may concern any agent, wakes every stream.
func TestSyncWakesOnlyTheAgentsConcerned(t *testing.T) {
	e := newEnv(t, nil)
	a, b := e.attest(t, "node1"), e.attest(t, "node2")
	ua, _ := syncUpdates(t, a)
	ub, _ := syncUpdates(t, b)
	next(t, ua)
	next(t, ub)
	gen := e.srv.Generation()

	en := e.entry(t, a.svid.ID, "/web")
	u := next(t, ua)
	require.Len(t, u.Upserts, 1)
	assert.Equal(t, en.ID, u.Upserts[0].ID)
	en.ParentID = b.svid.ID
	en, err := e.store.Update(t.Context(), en)
	require.NoError(t, err)
	u = next(t, ua)
	assert.Equal(t, []string{en.ID}, u.Deleted, "the agent it left is told")
	u = next(t, ub)
	require.Len(t, u.Upserts, 1, "the agent it moved to is told")
	assert.Equal(t, en.ID, u.Upserts[0].ID)
	assert.Equal(t, gen, e.srv.Generation(), "no other stream was woken")

	serverID := spiffeid.RequireFromPath(td, nodeapi.ServerPath)
	alias := e.entry(t, serverID, "/cluster/blue", attest.Selector{Type: "echo", Value: "name:node1"})
	assert.Greater(t, e.srv.Generation(), gen, "a node alias wakes every stream")
	below := e.entry(t, alias.SPIFFEID, "/cluster/blue/db")
	u = next(t, ua)
	require.Len(t, u.Upserts, 1, "the agent the alias applies to gets what it parents")
	assert.Equal(t, below.ID, u.Upserts[0].ID)
}
