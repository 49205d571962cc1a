package prune

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/index"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

var td = spiffeid.RequireTrustDomainFromString("example.org")

// clock is a time that tests move forward.
type clock struct{ ns atomic.Int64 }

func (c *clock) now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *clock) add(d time.Duration) { c.ns.Add(int64(d)) }
func newClock() *clock               { c := &clock{}; c.ns.Store(time.Now().UnixNano()); return c }
func entry(path string, exp time.Time) registry.Entry {
	return registry.Entry{
		SPIFFEID:  spiffeid.RequireFromPath(td, path),
		ParentID:  spiffeid.RequireFromPath(td, "/node"),
		Selectors: []attest.Selector{{Type: "unix", Value: "uid:1000"}},
		ExpiresAt: exp,
	}
}

// failingDeletes is an entry store whose deletes fail.
type failingDeletes struct{ registry.Store }

func (failingDeletes) Delete(context.Context, string, int64) (registry.Entry, error) {
	return registry.Entry{}, errors.New("disk full")
}

// Property: an entry whose expiry has passed is deleted at the revision
// that expired; one updated or deleted since is left alone, one that has
// not expired stays; a failure is logged, and a round given up stops.
func TestPrune(t *testing.T) {
	ctx := t.Context()
	c := newClock()
	store := memstore.New(memstore.Config{Now: c.now})
	idx, err := index.New(ctx, store, index.Config{Now: c.now})
	require.NoError(t, err)
	soon := c.now().Add(time.Minute)
	expiring, err := store.Create(ctx, entry("/expiring", soon))
	require.NoError(t, err)
	updated, err := store.Create(ctx, entry("/updated", soon))
	require.NoError(t, err)
	gone, err := store.Create(ctx, entry("/gone", soon))
	require.NoError(t, err)
	_, err = store.Create(ctx, entry("/lasting", time.Time{}))
	require.NoError(t, err)
	c.add(2 * time.Minute)
	_, err = idx.Sync(ctx)
	require.NoError(t, err)
	require.Len(t, idx.Expired(), 3)

	updated.ExpiresAt = c.now().Add(time.Hour)
	_, err = store.Update(ctx, updated)
	require.NoError(t, err)
	_, err = store.Delete(ctx, gone.ID, gone.Revision)
	require.NoError(t, err)

	var logs logtest.Buffer
	p := Entries{Index: idx, Store: failingDeletes{store}, Interval: time.Minute, Logger: logs.Logger()}
	assert.Equal(t, 0, p.Prune(ctx))
	assert.True(t, logs.Contains("pruning expired entries failed; trying again at the next round"))
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	p.Store = store
	assert.Equal(t, 0, p.Prune(canceled), "a round given up")

	assert.Equal(t, 1, p.Prune(ctx))
	assert.True(t, logs.Contains("expired entries pruned"))
	_, err = store.Get(ctx, expiring.ID)
	require.ErrorIs(t, err, registry.ErrNotFound)
	got, err := store.Get(ctx, updated.ID)
	require.NoError(t, err, "updated since it expired: left alone")
	assert.True(t, got.ExpiresAt.After(c.now()))
	list, _, err := store.List(ctx, registry.Filter{}, registry.Page{})
	require.NoError(t, err)
	assert.Len(t, list, 2, "the updated and the lasting entries")
}

// Property: Run prunes every Interval until its context ends.
func TestRun(t *testing.T) {
	ctx := t.Context()
	store := memstore.New(memstore.Config{})
	_, err := store.Create(ctx, entry("/short", time.Now().Add(time.Second)))
	require.NoError(t, err)
	idx, err := index.New(ctx, store, index.Config{})
	require.NoError(t, err)
	var logs logtest.Buffer
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		Entries{Index: idx, Store: store, Interval: 10 * time.Millisecond, Logger: logs.Logger()}.Run(rctx)
	}()
	require.Eventually(t, func() bool {
		_, _ = idx.Sync(ctx)
		return logs.Contains("expired entries pruned")
	}, 15*time.Second, 10*time.Millisecond)
	cancel()
	<-done
}

// failingTokens is a token store whose pruning fails.
type failingTokens struct{ registry.TokenStore }

func (failingTokens) PruneTokens(context.Context, time.Time) (int, error) {
	return 0, errors.New("disk full")
}

// Property: Run deletes the join tokens that expired, every Interval, and
// logs what it pruned and what failed.
func TestTokens(t *testing.T) {
	ctx := t.Context()
	c := newClock()
	store := memstore.New(memstore.Config{Now: c.now})
	require.NoError(t, store.CreateToken(ctx, registry.JoinToken{ID: "expiring", SecretHash: make([]byte, 32), ExpiresAt: c.now().Add(time.Minute)}))
	require.NoError(t, store.CreateToken(ctx, registry.JoinToken{ID: "lasting", SecretHash: make([]byte, 32), ExpiresAt: c.now().Add(time.Hour)}))
	c.add(2 * time.Minute)

	run := func(p Tokens, until func() bool) {
		t.Helper()
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			p.Run(rctx)
		}()
		require.Eventually(t, until, 15*time.Second, 5*time.Millisecond)
		cancel()
		<-done
	}
	var logs logtest.Buffer
	run(Tokens{Store: failingTokens{store}, Interval: 5 * time.Millisecond, Now: c.now, Logger: logs.Logger()},
		func() bool { return logs.Contains("pruning expired join tokens failed") })
	run(Tokens{Store: store, Interval: 5 * time.Millisecond, Now: c.now, Logger: logs.Logger()},
		func() bool { return logs.Contains("pruned expired join tokens") })
	_, err := store.GetToken(ctx, "expiring")
	require.ErrorIs(t, err, registry.ErrNotFound)
	_, err = store.GetToken(ctx, "lasting")
	require.NoError(t, err)
}
