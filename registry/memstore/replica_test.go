package memstore_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

func TestReplicate(t *testing.T) {
	ctx := t.Context()
	src := memstore.New(memstore.Config{})
	replica := memstore.New(memstore.Config{})
	td := spiffeid.RequireTrustDomainFromString("example.org")
	e1, err := src.Create(ctx, registry.Entry{
		SPIFFEID:  spiffeid.RequireFromPath(td, "/a"),
		ParentID:  spiffeid.RequireFromPath(td, "/agent"),
		Selectors: []attest.Selector{{Type: "unix", Value: "uid:1"}},
	})
	require.NoError(t, err)
	e2, err := src.Create(ctx, registry.Entry{
		SPIFFEID:  spiffeid.RequireFromPath(td, "/b"),
		ParentID:  spiffeid.RequireFromPath(td, "/agent"),
		Selectors: []attest.Selector{{Type: "unix", Value: "uid:2"}},
	})
	require.NoError(t, err)
	changes, cancel := replica.Subscribe(registry.TopicEntries)
	defer cancel()
	signalled := func() bool {
		select {
		case <-changes:
			return true
		default:
			return false
		}
	}

	require.NoError(t, replica.Replicate(ctx, []registry.Entry{e1, e2}, nil))
	assert.True(t, signalled(), "a replication that changes entries signals")
	got, err := replica.Get(ctx, e1.ID)
	require.NoError(t, err)
	assert.Equal(t, e1, got, "the entry is kept as the source holds it")
	assert.Equal(t, map[string]int64{e1.ID: 1, e2.ID: 1}, replica.Revisions())

	// An update and a delete are recorded in the feed; a stale upsert is
	// ignored.
	e1b := e1
	e1b.Hint = "new"
	e1b.Revision = 2
	require.NoError(t, replica.Replicate(ctx, []registry.Entry{e1b}, []string{e2.ID, "unknown-id"}))
	assert.True(t, signalled())
	require.NoError(t, replica.Replicate(ctx, []registry.Entry{e1}, nil))
	assert.False(t, signalled(), "a replication that changes nothing does not signal")
	got, err = replica.Get(ctx, e1.ID)
	require.NoError(t, err)
	assert.Equal(t, "new", got.Hint)
	_, err = replica.Get(ctx, e2.ID)
	assert.ErrorIs(t, err, registry.ErrNotFound)

	evs, err := replica.Changes(ctx, 0, 10)
	require.NoError(t, err)
	var ops []registry.Op
	for _, ev := range evs {
		ops = append(ops, ev.Op)
	}
	assert.Equal(t, []registry.Op{registry.OpCreate, registry.OpCreate, registry.OpDelete, registry.OpUpdate}, ops)
	list, _, err := replica.List(ctx, registry.Filter{}, registry.Page{})
	require.NoError(t, err)
	assert.Len(t, list, 1)

	// Invalid entries are refused before anything is applied.
	bad := e1b
	bad.Revision = 3
	bad.Selectors = nil
	assert.ErrorIs(t, replica.Replicate(ctx, []registry.Entry{bad}, nil), registry.ErrInvalid)
	noID := e1b
	noID.ID = "x"
	assert.ErrorIs(t, replica.Replicate(ctx, []registry.Entry{noID}, nil), registry.ErrInvalid)
	noRev := e1b
	noRev.Revision = 0
	assert.ErrorIs(t, replica.Replicate(ctx, []registry.Entry{noRev}, nil), registry.ErrInvalid)
}
