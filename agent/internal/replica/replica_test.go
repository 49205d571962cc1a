package replica

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/index"
	"github.com/spiffekit/spiffekit/spiffeid"
)

var (
	replicaTD  = spiffeid.RequireTrustDomainFromString("example.org")
	replicaUID = attest.Selector{Type: "unix", Value: "uid:1000"}
)

// replicated is an entry as the server sends it.
func replicated(path string, rev int64) registry.Entry {
	return registry.Entry{
		ID:        registry.NewEntryID(),
		Revision:  rev,
		SPIFFEID:  spiffeid.RequireFromPath(replicaTD, path),
		ParentID:  spiffeid.RequireFromPath(replicaTD, "/node"),
		Selectors: []attest.Selector{replicaUID},
	}
}

func paths(es []registry.Entry) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, e.SPIFFEID.Path())
	}
	return out
}

// The index follows the replica as it followed a memstore, while the
// replica drops every change the index has read.
func TestReplicaFeedsTheIndex(t *testing.T) {
	r := New()
	ctx := t.Context()
	idx, err := index.New(ctx, r, index.Config{PageSize: 2})
	require.NoError(t, err)
	changes, cancel := r.Subscribe(registry.TopicEntries)
	defer cancel()

	a, b, c := replicated("/a", 1), replicated("/b", 1), replicated("/c", 3)
	require.NoError(t, r.Replicate(ctx, []registry.Entry{a, b, c}, nil))
	<-changes
	n, err := idx.Sync(ctx)
	require.NoError(t, err)
	assert.Equal(t, 3, n)
	assert.Equal(t, []string{"/a", "/b", "/c"}, sortedPaths(idx.All()))
	assert.Equal(t, map[string]int64{a.ID: 1, b.ID: 1, c.ID: 3}, r.Revisions())
	assert.Equal(t, 3, r.Len())

	// An update, a stale replay (ignored), a deletion.
	a2 := a
	a2.Revision, a2.Hint = 2, "new"
	stale := c
	stale.Revision = 2
	require.NoError(t, r.Replicate(ctx, []registry.Entry{a2, stale}, []string{b.ID, "missing"}))
	<-changes
	n, err = idx.Sync(ctx)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	all := idx.All()
	assert.Equal(t, []string{"/a", "/c"}, sortedPaths(all))
	for _, e := range all {
		if e.ID == a.ID {
			assert.Equal(t, "new", e.Hint)
		}
	}
	head, err := r.Head(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(5), head)
	assert.Equal(t, head, idx.Seq())
	assert.Equal(t, head, r.Version(), "Version is the head")

	// The index asks once more, finds nothing, and thereby acknowledges
	// everything: nothing is kept.
	n, err = idx.Sync(ctx)
	require.NoError(t, err)
	assert.Zero(t, n)
	r.mu.Lock()
	assert.Empty(t, r.events)
	r.mu.Unlock()

	// A replay of what is held changes nothing and signals nothing.
	require.NoError(t, r.Replicate(ctx, []registry.Entry{a2, c}, []string{b.ID}))
	assert.Equal(t, head, r.Version(), "no change, no new version")
	select {
	case <-changes:
		t.Fatal("signalled without a change")
	case <-time.After(10 * time.Millisecond):
	}
}

func sortedPaths(es []registry.Entry) []string {
	out := paths(es)
	slices.Sort(out)
	return out
}

func TestReplicaChanges(t *testing.T) {
	r := New()
	ctx := t.Context()
	var entries []registry.Entry
	for _, p := range []string{"/a", "/b", "/c", "/d"} {
		entries = append(entries, replicated(p, 1))
	}
	require.NoError(t, r.Replicate(ctx, entries, nil))

	evs, err := r.Changes(ctx, 0, 3)
	require.NoError(t, err)
	require.Len(t, evs, 3)
	assert.Equal(t, int64(1), evs[0].Seq)
	assert.Equal(t, registry.OpCreate, evs[0].Op)
	assert.Equal(t, "/a", evs[0].After.SPIFFEID.Path())

	// Reading on from 2 drops 1 and 2.
	evs, err = r.Changes(ctx, 2, 10)
	require.NoError(t, err)
	require.Len(t, evs, 2)
	assert.Equal(t, int64(3), evs[0].Seq)
	// A late call of the same reader, from before the drop, gets what
	// follows the dropped events.
	evs, err = r.Changes(ctx, 1, 10)
	require.NoError(t, err)
	require.Len(t, evs, 2)
	assert.Equal(t, int64(3), evs[0].Seq)
	// Past the head: nothing, and everything is dropped.
	evs, err = r.Changes(ctx, 9, 10)
	require.NoError(t, err)
	assert.Empty(t, evs)
	head, err := r.Head(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(4), head)

	_, err = r.Changes(ctx, 0, 0)
	require.ErrorIs(t, err, registry.ErrInvalid)
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = r.Changes(canceled, 0, 1)
	require.ErrorIs(t, err, context.Canceled)
	_, err = r.Head(canceled)
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorIs(t, r.Replicate(canceled, nil, nil), context.Canceled)
	_, _, err = r.List(canceled, registry.Filter{}, registry.Page{})
	require.ErrorIs(t, err, context.Canceled)
	_, err = r.Get(canceled, "x")
	require.ErrorIs(t, err, context.Canceled)
}

// The replica keeps no entries: it can be listed only while empty, as the
// index is built before the first sync.
func TestReplicaReads(t *testing.T) {
	r := New()
	ctx := t.Context()
	got, next, err := r.List(ctx, registry.Filter{}, registry.Page{})
	require.NoError(t, err)
	assert.Empty(t, got)
	assert.Empty(t, next)
	_, err = r.Get(ctx, "x")
	require.ErrorIs(t, err, registry.ErrNotFound)

	require.NoError(t, r.Replicate(ctx, []registry.Entry{replicated("/a", 1)}, nil))
	_, _, err = r.List(ctx, registry.Filter{}, registry.Page{})
	require.ErrorIs(t, err, errNotKept)
	_, err = r.Get(ctx, "x")
	require.ErrorIs(t, err, errNotKept)
}

func TestReplicaRefusesInvalidEntries(t *testing.T) {
	ctx := t.Context()
	good := replicated("/a", 1)
	noID := replicated("/b", 1)
	noID.ID = "not an ID"
	noRev := replicated("/c", 0)
	noSelectors := replicated("/d", 1)
	noSelectors.Selectors = nil
	for name, bad := range map[string]registry.Entry{"ID": noID, "revision": noRev, "entry": noSelectors} {
		t.Run(name, func(t *testing.T) {
			r := New()
			err := r.Replicate(ctx, []registry.Entry{good, bad}, nil)
			require.ErrorIs(t, err, registry.ErrInvalid)
			assert.Zero(t, r.Len(), "nothing applied")
			head, err := r.Head(ctx)
			require.NoError(t, err)
			assert.Zero(t, head)
		})
	}
}
