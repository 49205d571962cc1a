package index_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/index"
	"github.com/spiffekit/spiffekit/registry/memstore"
)

// TestReservedEntriesAreNotServed: an entry stored before the server's and
// agents' namespace was reserved (the store keeps it readable) is served to
// no workload and no agent.
func TestReservedEntriesAreNotServed(t *testing.T) {
	s := memstore.New(memstore.Config{})
	uid := sel("unix", "uid:1")
	var old []registry.Entry
	for _, path := range []string{"/spiffekit/server", "/spiffekit/agent/join_token/x", "/spiffekit"} {
		old = append(old, registry.Entry{ID: registry.NewEntryID(), Revision: 1, SPIFFEID: id(path), ParentID: id("/spiffekit/agent/1"), Selectors: []attest.Selector{uid}})
	}
	require.NoError(t, s.Replicate(t.Context(), old, nil))
	create(t, s, "/web", "/spiffekit/agent/1", uid)
	idx, err := index.New(t.Context(), s, index.Config{ServerID: id("/spiffekit/server")})
	require.NoError(t, err)
	assert.Equal(t, []string{"/web"}, paths(idx.ForWorkload([]attest.Selector{uid})))
	assert.Equal(t, []string{"/web"}, paths(idx.ForAgent(id("/spiffekit/agent/1"), []attest.Selector{uid})))
	assert.Equal(t, []string{"/web"}, paths(idx.All()))

	// Replicated later, through the change feed, it is left out too.
	late := old[0]
	late.ID = registry.NewEntryID()
	require.NoError(t, s.Replicate(t.Context(), []registry.Entry{late}, nil))
	_, err = idx.Sync(t.Context())
	require.NoError(t, err)
	assert.Equal(t, []string{"/web"}, paths(idx.ForWorkload([]attest.Selector{uid})))
	assert.Equal(t, []string{"/web"}, paths(idx.All()))
}
