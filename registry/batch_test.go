package registry_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

func batchEntry(path string, sels ...attest.Selector) registry.Entry {
	return registry.Entry{
		SPIFFEID:  spiffeid.RequireFromString("spiffe://example.org" + path),
		ParentID:  spiffeid.RequireFromString("spiffe://example.org/agent"),
		Selectors: sels,
	}
}

func TestPrepareBatch(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 678999, time.FixedZone("x", 3600))
	a := attest.Selector{Type: "unix", Value: "uid:1"}
	b := attest.Selector{Type: "unix", Value: "gid:1"}
	withID := batchEntry("/id", a)
	withID.ID = "not-an-entry-id"
	chosen := registry.NewEntryID()
	withChosen, sameChosen := batchEntry("/chosen", a), batchEntry("/chosen2", a)
	withChosen.ID, sameChosen.ID = chosen, chosen
	in := []registry.Entry{
		batchEntry("/w", a, b),
		batchEntry("/w", b, a), // the same selector set in another order
		batchEntry("/x"),
		withID,
		batchEntry("/w", a),
		withChosen,
		sameChosen,
	}
	results, keys, err := registry.PrepareBatch(in, now)
	require.NoError(t, err)
	require.Len(t, results, len(in))
	require.Len(t, keys, len(in))

	// Prepared as Create would: new ID, revision 1, store time, sorted sets.
	first := results[0]
	require.NoError(t, first.Err)
	assert.True(t, registry.ValidEntryID(first.Entry.ID))
	assert.Equal(t, int64(1), first.Entry.Revision)
	assert.Equal(t, registry.StoreTime(now), first.Entry.CreatedAt)
	assert.Equal(t, []attest.Selector{b, a}, first.Entry.Selectors)
	assert.Equal(t, registry.SimilarityKey(first.Entry), keys[0])
	assert.Equal(t, []attest.Selector{a, b}, in[0].Selectors, "the caller's entry is not changed")

	require.ErrorIs(t, results[1].Err, registry.ErrAlreadyExists)
	assert.True(t, strings.HasPrefix(results[1].Err.Error(), "registry: "), results[1].Err.Error())
	assert.Contains(t, results[1].Err.Error(), "an earlier entry of the batch")
	require.ErrorIs(t, results[2].Err, registry.ErrInvalid)
	require.ErrorIs(t, results[3].Err, registry.ErrInvalid)
	for _, i := range []int{1, 2, 3} {
		assert.Zero(t, results[i].Entry)
		assert.Empty(t, keys[i])
	}
	require.NoError(t, results[4].Err)
	assert.NotEqual(t, first.Entry.ID, results[4].Entry.ID)
	require.NoError(t, results[5].Err)
	assert.Equal(t, chosen, results[5].Entry.ID, "a chosen ID is kept")
	require.ErrorIs(t, results[6].Err, registry.ErrAlreadyExists)
	assert.Contains(t, results[6].Err.Error(), "entry ID "+chosen+" is taken by an earlier entry of the batch")

	empty, keys, err := registry.PrepareBatch(nil, now)
	require.NoError(t, err)
	assert.Empty(t, empty)
	assert.Empty(t, keys)
}

// TestPrepareBatchLimit checks that one batch cannot make a store do
// unbounded work in one transaction.
func TestPrepareBatchLimit(t *testing.T) {
	in := make([]registry.Entry, registry.MaxBatch+1)
	_, _, err := registry.PrepareBatch(in, time.Now())
	require.ErrorIs(t, err, registry.ErrInvalid)
	assert.True(t, strings.HasPrefix(err.Error(), "registry: "), err.Error())
	results, _, err := registry.PrepareBatch(in[:registry.MaxBatch], time.Now())
	require.NoError(t, err)
	require.Len(t, results, registry.MaxBatch)
	require.ErrorIs(t, results[0].Err, registry.ErrInvalid, "zero entries are invalid one by one")
}
