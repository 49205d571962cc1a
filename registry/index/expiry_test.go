package index_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/index"
	"github.com/spiffekit/spiffekit/registry/memstore"
)

// clock is a settable clock for Config.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func createExpiring(t *testing.T, s registry.Store, path, parent string, at time.Time) registry.Entry {
	t.Helper()
	e, err := s.Create(t.Context(), registry.Entry{SPIFFEID: id(path), ParentID: id(parent),
		Selectors: []attest.Selector{sel("unix", "uid:1")}, ExpiresAt: at})
	require.NoError(t, err)
	return e
}

// TestExpiry: an entry is served until its expiry and not from then on,
// for workloads and agents alike; Sync counts its leaving as a change;
// Expired lists it until the store deletes it; an update that moves its
// expiry brings it back.
func TestExpiry(t *testing.T) {
	ctx := t.Context()
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := &clock{now: t0}
	s := memstore.New(memstore.Config{})
	soon := createExpiring(t, s, "/soon", "/agent", t0.Add(time.Minute))
	later := createExpiring(t, s, "/later", "/agent", t0.Add(time.Hour))
	createExpiring(t, s, "/never", "/agent", time.Time{})
	past := createExpiring(t, s, "/past", "/agent", t0.Add(-time.Second))
	// A child of an expired entry is not reached through it.
	create(t, s, "/child-of-past", "/past", sel("unix", "uid:2"))

	var told []string // paths OnExpire was called with
	idx, err := index.New(ctx, s, index.Config{Now: clk.Now, OnExpire: func(e registry.Entry) { told = append(told, e.SPIFFEID.Path()) }})
	require.NoError(t, err)
	workload := []attest.Selector{sel("unix", "uid:1")}
	assert.Equal(t, []string{"/later", "/never", "/soon"}, paths(idx.ForWorkload(workload)), "an entry expired at load is left out")
	assert.Equal(t, []string{"/later", "/never", "/soon"}, paths(idx.ForAgent(id("/agent"), nil)))
	assert.Equal(t, []string{"/past"}, paths(idx.Expired()))
	assert.Equal(t, soon.ExpiresAt, idx.NextExpiry())
	assert.Equal(t, 4, idx.Len())

	// One second before its expiry, it is served; at its expiry, not.
	clk.set(soon.ExpiresAt.Add(-time.Second))
	n, err := idx.Sync(ctx)
	require.NoError(t, err)
	assert.Zero(t, n)
	assert.Contains(t, paths(idx.ForWorkload(workload)), "/soon")
	clk.set(soon.ExpiresAt)
	n, err = idx.Sync(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, n, "an entry leaving at its expiry counts as a change")
	assert.Equal(t, []string{"/soon"}, told, "OnExpire is told of the entry leaving, not of one expired when read")
	assert.Equal(t, []string{"/later", "/never"}, paths(idx.ForWorkload(workload)))
	assert.Equal(t, []string{"/later", "/never"}, paths(idx.ForAgent(id("/agent"), nil)))
	assert.NotContains(t, paths(idx.All()), "/soon")
	assert.Equal(t, []string{"/past", "/soon"}, paths(idx.Expired()))
	assert.Equal(t, later.ExpiresAt, idx.NextExpiry())
	for _, x := range idx.Expired() {
		if x.ID == soon.ID {
			assert.Equal(t, soon, x, "Expired returns the entry as stored, selectors included")
		}
	}

	// Deleted by a pruner, it leaves Expired.
	_, err = s.Delete(ctx, past.ID, past.Revision)
	require.NoError(t, err)
	_, err = idx.Sync(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"/soon"}, paths(idx.Expired()))

	// Its expiry moved by an update, it is served again; a stale event
	// (an older revision) does not bring it back twice or undo that.
	soon.ExpiresAt = t0.Add(2 * time.Hour)
	soon, err = s.Update(ctx, soon)
	require.NoError(t, err)
	_, err = idx.Sync(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"/later", "/never", "/soon"}, paths(idx.ForWorkload(workload)))
	assert.Empty(t, idx.Expired())
	assert.Equal(t, later.ExpiresAt, idx.NextExpiry())

	// Updated to expire at once, it goes straight to Expired.
	soon.ExpiresAt = clk.Now()
	soon, err = s.Update(ctx, soon)
	require.NoError(t, err)
	_, err = idx.Sync(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"/later", "/never"}, paths(idx.ForWorkload(workload)))
	assert.Equal(t, []string{"/soon"}, paths(idx.Expired()))

	// Its expiry cleared, it never leaves again.
	later.ExpiresAt = time.Time{}
	_, err = s.Update(ctx, later)
	require.NoError(t, err)
	_, err = idx.Sync(ctx)
	require.NoError(t, err)
	assert.True(t, idx.NextExpiry().IsZero(), "no served entry expires")
	clk.set(registry.MaxExpiry)
	n, err = idx.Sync(ctx)
	require.NoError(t, err)
	assert.Zero(t, n)
	assert.Equal(t, []string{"/later", "/never"}, paths(idx.ForWorkload(workload)))
}

// TestExpiryManyRewrites: an entry whose expiry is rewritten many times
// leaves at its last expiry, not an earlier one, and the index's queue of
// expiries stays bounded.
func TestExpiryManyRewrites(t *testing.T) {
	ctx := t.Context()
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := &clock{now: t0}
	s := memstore.New(memstore.Config{})
	var es []registry.Entry
	for i := range 10 {
		es = append(es, createExpiring(t, s, fmt.Sprintf("/w%d", i), "/agent", t0.Add(time.Minute)))
	}
	idx, err := index.New(ctx, s, index.Config{Now: clk.Now})
	require.NoError(t, err)
	for round := range 50 {
		for i := range es {
			es[i].ExpiresAt = t0.Add(time.Duration(round+2) * time.Minute)
			es[i], err = s.Update(ctx, es[i])
			require.NoError(t, err)
		}
		_, err = idx.Sync(ctx)
		require.NoError(t, err)
	}
	assert.Equal(t, es[0].ExpiresAt, idx.NextExpiry())
	clk.set(t0.Add(50 * time.Minute)) // past every earlier expiry, before the last
	n, err := idx.Sync(ctx)
	require.NoError(t, err)
	assert.Zero(t, n, "earlier expiries of rewritten entries do not count")
	assert.Equal(t, 10, idx.Len())
	assert.LessOrEqual(t, index.ExpiringLen(idx), 3*len(es)+64, "the queue is compacted")
	clk.set(es[0].ExpiresAt)
	n, err = idx.Sync(ctx)
	require.NoError(t, err)
	assert.Equal(t, 10, n)
	assert.Zero(t, idx.Len())
	assert.Len(t, idx.Expired(), 10)
}

// TestCountByParent: the entries of a parent in service, which an expiry
// (once synced) and a deletion take out.
func TestCountByParent(t *testing.T) {
	ctx := t.Context()
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := &clock{now: t0}
	s := memstore.New(memstore.Config{})
	createExpiring(t, s, "/a", "/launcher", t0.Add(time.Minute))
	b := createExpiring(t, s, "/b", "/launcher", t0.Add(time.Hour))
	createExpiring(t, s, "/c", "/launcher", t0.Add(-time.Second))
	createExpiring(t, s, "/d", "/other", time.Time{})
	idx, err := index.New(ctx, s, index.Config{Now: clk.Now})
	require.NoError(t, err)
	assert.Equal(t, 2, idx.CountByParent(id("/launcher")), "not the expired")
	assert.Equal(t, 1, idx.CountByParent(id("/other")))
	assert.Equal(t, 0, idx.CountByParent(id("/nobody")))

	clk.set(t0.Add(time.Minute))
	_, err = idx.Sync(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, idx.CountByParent(id("/launcher")), "expired at the sync")
	_, err = s.Delete(ctx, b.ID, 0)
	require.NoError(t, err)
	_, err = idx.Sync(ctx)
	require.NoError(t, err)
	assert.Equal(t, 0, idx.CountByParent(id("/launcher")), "deleted")
}

// TestCountByParentBeforeSync: an entry no longer counts from its expiry
// on, before a Sync takes it out of service; an earlier expiry that an
// update moved, and the expiry of another parent's entry, take nothing
// off.
func TestCountByParentBeforeSync(t *testing.T) {
	ctx := t.Context()
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := &clock{now: t0}
	s := memstore.New(memstore.Config{})
	for i := range 20 {
		createExpiring(t, s, fmt.Sprintf("/soon%d", i), "/launcher", t0.Add(time.Duration(i+1)*time.Second))
	}
	moved := createExpiring(t, s, "/moved", "/launcher", t0.Add(time.Second))
	createExpiring(t, s, "/later", "/launcher", t0.Add(time.Hour))
	createExpiring(t, s, "/other", "/other", t0.Add(time.Second))
	idx, err := index.New(ctx, s, index.Config{Now: clk.Now})
	require.NoError(t, err)
	moved.ExpiresAt = t0.Add(2 * time.Hour)
	_, err = s.Update(ctx, moved)
	require.NoError(t, err)
	_, err = idx.Sync(ctx)
	require.NoError(t, err)
	assert.Equal(t, 22, idx.CountByParent(id("/launcher")))

	clk.set(t0.Add(10 * time.Second))
	assert.Equal(t, 12, idx.CountByParent(id("/launcher")), "ten have expired, not yet synced")
	assert.Equal(t, 0, idx.CountByParent(id("/other")))
	clk.set(t0.Add(time.Minute))
	assert.Equal(t, 2, idx.CountByParent(id("/launcher")), "twenty have expired")
	_, err = idx.Sync(ctx)
	require.NoError(t, err)
	assert.Equal(t, 2, idx.CountByParent(id("/launcher")), "the same once synced")
	assert.Equal(t, 0, idx.CountByParent(id("/other")))
}
