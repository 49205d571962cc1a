package syncstate_test

import (
	"crypto/x509"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/nodeapi/nodeserver/internal/syncstate"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

var td = spiffeid.RequireTrustDomainFromString("example.org")

func entry(id string, rev int64) registry.Entry {
	return registry.Entry{
		ID:        id,
		SPIFFEID:  spiffeid.RequireFromPath(td, "/"+id),
		ParentID:  spiffeid.RequireFromPath(td, "/spiffekit/agent/x"),
		Selectors: []attest.Selector{{Type: "unix", Value: "uid:1000"}},
		Revision:  rev,
		CreatedAt: time.UnixMicro(1).UTC(),
		UpdatedAt: time.UnixMicro(1).UTC(),
	}
}

func bundleOf(t *testing.T, c *testca.CA) *spiffebundle.Bundle {
	return spiffebundle.FromX509Authorities(c.TrustDomain(), []*x509.Certificate{c.Root()})
}

// Property: each message carries what the agent lacks and only that:
// entries new or at another revision, the IDs of entries it may no longer
// hold (both sorted), the bundle when it changed, the federated bundles as
// a complete set when it changed (never one of the own trust domain), the
// tainted CAs and active CA when they changed; nothing when nothing did.
func TestNext(t *testing.T) {
	own := testca.New(t, td)
	ownBundle := bundleOf(t, own)
	partner := bundleOf(t, testca.New(t, spiffeid.RequireTrustDomainFromString("partner.example")))
	impostor := bundleOf(t, testca.New(t, td)) // claims the own trust domain
	now := syncstate.Now{
		TrustDomain: td,
		Entries:     map[string]registry.Entry{"b": entry("b", 1), "a": entry("a", 2), "held": entry("held", 3)},
		Bundle:      ownBundle,
		Federation:  true,
		Federated:   []*spiffebundle.Bundle{partner, nil, impostor},
		Active:      own.Cert(),
	}
	// The agent holds "held" at its revision, and "gone".
	st := syncstate.New(map[string]int64{"held": 3, "gone": 1})
	resp, err := st.Next(now)
	require.NoError(t, err)
	require.NotNil(t, resp)
	require.Len(t, resp.Upserts, 2)
	assert.Equal(t, []string{"a", "b"}, []string{resp.Upserts[0].Id, resp.Upserts[1].Id}, "sorted, and not what the agent holds")
	assert.Equal(t, []string{"gone"}, resp.DeletedIds)
	assert.NotEmpty(t, resp.Bundle)
	assert.True(t, resp.FederatedBundlesSet)
	assert.Len(t, resp.FederatedBundles, 1, "the own trust domain never comes through federation")
	assert.Contains(t, resp.FederatedBundles, "partner.example")
	assert.Equal(t, own.Cert().Raw, resp.ActiveX509Ca)

	resp, err = st.Next(now)
	require.NoError(t, err)
	assert.Nil(t, resp, "nothing changed")

	// A new revision, a deletion, no more federated bundles, a tainted
	// CA: each comes once.
	now.Entries = map[string]registry.Entry{"a": entry("a", 3), "held": entry("held", 3)}
	now.Federated = nil
	now.Tainted = []*x509.Certificate{own.Cert()}
	resp, err = st.Next(now)
	require.NoError(t, err)
	require.NotNil(t, resp)
	require.Len(t, resp.Upserts, 1)
	assert.Equal(t, int64(3), resp.Upserts[0].Revision)
	assert.Equal(t, []string{"b"}, resp.DeletedIds)
	assert.Empty(t, resp.Bundle, "the bundle did not change")
	assert.True(t, resp.FederatedBundlesSet, "an empty set, told apart from no change")
	assert.Empty(t, resp.FederatedBundles)
	assert.Equal(t, [][]byte{own.Cert().Raw}, resp.TaintedX509Cas)
	resp, err = st.Next(now)
	require.NoError(t, err)
	assert.Nil(t, resp)

	// A tainted JWT key, then a tainted WIT key: each a message of its
	// own, and every message carries the tainted CAs and keys.
	for _, tt := range []struct{ jwt, wit []string }{
		{[]string{"k1"}, nil},
		{[]string{"k1"}, []string{"w1"}},
		{[]string{"k1", "w1"}, nil}, // the same kids, of other kinds
		{nil, []string{"k1", "w1"}},
	} {
		now.TaintedJWTKeys, now.TaintedWITKeys = tt.jwt, tt.wit
		resp, err = st.Next(now)
		require.NoError(t, err)
		require.NotNil(t, resp, "%+v", tt)
		assert.Empty(t, resp.Upserts)
		assert.Equal(t, tt.jwt, resp.TaintedJwtKeyIds)
		assert.Equal(t, tt.wit, resp.TaintedWitKeyIds)
		assert.Equal(t, [][]byte{own.Cert().Raw}, resp.TaintedX509Cas)
		resp, err = st.Next(now)
		require.NoError(t, err)
		assert.Nil(t, resp, "%+v: nothing changed", tt)
	}
	now.TaintedJWTKeys, now.TaintedWITKeys = nil, nil
	resp, err = st.Next(now)
	require.NoError(t, err)
	require.NotNil(t, resp, "the taints ended")
	assert.Empty(t, resp.TaintedJwtKeyIds)
	assert.Empty(t, resp.TaintedWitKeyIds)

	// Another active CA, without federation at all.
	other := testca.New(t, td)
	now.Federation = false
	now.Active = other.Cert()
	resp, err = st.Next(now)
	require.NoError(t, err)
	require.NotNil(t, resp)
	assert.Equal(t, other.Cert().Raw, resp.ActiveX509Ca)
	assert.False(t, resp.FederatedBundlesSet)

	// A new stream whose agent holds nothing gets everything; without a
	// bundle there is nothing to send.
	resp, err = syncstate.New(nil).Next(now)
	require.NoError(t, err)
	assert.Len(t, resp.Upserts, 2)
	now.Bundle = nil
	_, err = syncstate.New(nil).Next(now)
	assert.ErrorContains(t, err, "no bundle")
}
