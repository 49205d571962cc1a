package agentcache_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/nodeapi/nodeserver/internal/agentcache"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

func record(name, serial string) registry.Agent {
	return registry.Agent{
		ID:           spiffeid.RequireFromPath(spiffeid.RequireTrustDomainFromString("example.org"), "/spiffekit/agent/test/"+name),
		AttestorType: "test",
		Selectors:    []attest.Selector{{Type: "test", Value: "name:" + name}},
		SerialNumber: serial,
		ExpiresAt:    time.Now().Add(time.Hour),
	}
}

func put(t *testing.T, s registry.AgentStore, a registry.Agent) registry.Agent {
	t.Helper()
	stored, err := s.PutAgent(t.Context(), a)
	require.NoError(t, err)
	return stored
}

// woken reports whether ch is closed.
func woken(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// Reload reports a change every open stream must react to only for a
// record removed, banned or with other selectors, or a new banned one; a
// renewal or a new record is not one. It wakes the followers of an agent
// whose record came, went or changed serials.
func TestReload(t *testing.T) {
	store := memstore.New(memstore.Config{})
	a := put(t, store, record("a", "01"))
	c := agentcache.New(store)
	changed, err := c.Reload(t.Context())
	require.NoError(t, err)
	assert.False(t, changed, "a first read of records is no change streams react to")
	assert.Equal(t, 1, c.Len())
	woke, stop := c.Follow(a.ID)
	defer stop()

	for _, tt := range []struct {
		name        string
		write       func()
		changed     bool
		wakesStream bool
	}{
		{"a new record", func() { put(t, store, record("b", "01")) }, false, false},
		{"renewed", func() { a.SerialNumber, a.PreviousSerialNumber = "02", "01"; put(t, store, a) }, false, true},
		{"other selectors", func() {
			a.Selectors = []attest.Selector{{Type: "test", Value: "name:other"}}
			put(t, store, a)
		}, true, false},
		{"banned", func() { a.Banned = true; put(t, store, a) }, true, false},
		{"a new banned record", func() { b := record("c", "01"); b.Banned = true; put(t, store, b) }, true, false},
		{"evicted", func() { require.NoError(t, store.DeleteAgent(t.Context(), a.ID)) }, true, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ch := woke()
			tt.write()
			changed, err := c.Reload(t.Context())
			require.NoError(t, err)
			assert.Equal(t, tt.changed, changed)
			assert.Equal(t, tt.wakesStream, woken(ch), "the agent's stream is woken")
		})
	}

	_, err = agentcache.New(failing{store}).Reload(t.Context())
	require.ErrorIs(t, err, errStore)
	assert.ErrorContains(t, err, "reading the agent records")
}

var errStore = errors.New("the database is away")

// failing is an agent store that fails every call.
type failing struct{ registry.AgentStore }

func (failing) ListAgents(context.Context) ([]registry.Agent, error) { return nil, errStore }
func (failing) GetAgent(context.Context, spiffeid.ID) (registry.Agent, error) {
	return registry.Agent{}, errStore
}
func (failing) PutAgent(context.Context, registry.Agent) (registry.Agent, error) {
	return registry.Agent{}, errStore
}
func (failing) UpdateAgent(context.Context, registry.Agent) (registry.Agent, error) {
	return registry.Agent{}, errStore
}

// Get serves the cache, and reads the store for a record it does not
// hold; Read always reads the store, and caches what it read.
func TestGetAndRead(t *testing.T) {
	store := memstore.New(memstore.Config{})
	c := agentcache.New(store)
	a := put(t, store, record("a", "01"))

	got, found, err := c.Get(t.Context(), a.ID)
	require.NoError(t, err)
	require.True(t, found, "read from the store, the cache holding none")
	assert.Equal(t, a, got)
	cached, ok := c.Cached(a.ID)
	require.True(t, ok)
	assert.Equal(t, a, cached)

	renewed := a
	renewed.SerialNumber = "02"
	put(t, store, renewed)
	got, _, err = c.Get(t.Context(), a.ID)
	require.NoError(t, err)
	assert.Equal(t, "01", got.SerialNumber, "from the cache")
	got, found, err = c.Read(t.Context(), a.ID)
	require.NoError(t, err)
	require.True(t, found)
	assert.Equal(t, "02", got.SerialNumber, "from the store")
	cached, _ = c.Cached(a.ID)
	assert.Equal(t, "02", cached.SerialNumber, "and cached")

	_, found, err = c.Get(t.Context(), record("none", "01").ID)
	require.NoError(t, err)
	assert.False(t, found)

	_, _, err = agentcache.New(failing{store}).Get(t.Context(), a.ID)
	require.ErrorIs(t, err, errStore)
	assert.ErrorContains(t, err, "reading the agent record of "+a.ID.String())
}

// Put and Update write through: the record returned and cached is the
// store's (a ban written meanwhile kept), and a changed serial wakes the
// agent's streams. Update writes nothing for a record that is gone: it
// forgets the agent, wakes its streams, and says the record was not found.
func TestPutAndUpdate(t *testing.T) {
	store := memstore.New(memstore.Config{})
	c := agentcache.New(store)
	a, err := c.Put(t.Context(), record("a", "01"))
	require.NoError(t, err)
	woke, stop := c.Follow(a.ID)
	defer stop()

	ch := woke()
	banned := a
	banned.Banned = true
	put(t, store, banned) // through another server
	renewed := a
	renewed.SerialNumber, renewed.PreviousSerialNumber = "02", "01"
	got, err := c.Update(t.Context(), renewed)
	require.NoError(t, err)
	assert.True(t, got.Banned, "the store kept the ban")
	cached, _ := c.Cached(a.ID)
	assert.Equal(t, got, cached)
	assert.True(t, woken(ch), "a new serial wakes the agent's streams")

	ch = woke()
	got, err = c.Put(t.Context(), got)
	require.NoError(t, err)
	assert.False(t, woken(ch), "the same serials wake nothing")

	require.NoError(t, store.DeleteAgent(t.Context(), a.ID)) // through another server
	_, err = c.Update(t.Context(), got)
	require.ErrorIs(t, err, registry.ErrNotFound)
	_, err = store.GetAgent(t.Context(), a.ID)
	require.ErrorIs(t, err, registry.ErrNotFound, "nothing was written")
	_, ok := c.Cached(a.ID)
	assert.False(t, ok, "the agent is forgotten")
	assert.True(t, woken(ch), "and its streams woken")
	_, err = c.Update(t.Context(), got)
	require.ErrorIs(t, err, registry.ErrNotFound, "also when the cache did not hold it")

	_, err = agentcache.New(failing{store}).Put(t.Context(), a)
	require.ErrorIs(t, err, errStore)
	_, err = agentcache.New(failing{store}).Update(t.Context(), a)
	require.ErrorIs(t, err, errStore)
	assert.NotErrorIs(t, err, registry.ErrNotFound)
}

// Several streams of one agent share a follow until the last stops.
func TestFollow(t *testing.T) {
	store := memstore.New(memstore.Config{})
	c := agentcache.New(store)
	a := record("a", "01")
	w1, stop1 := c.Follow(a.ID)
	w2, stop2 := c.Follow(a.ID)
	ch1, ch2 := w1(), w2()
	_, err := c.Put(t.Context(), a)
	require.NoError(t, err)
	assert.True(t, woken(ch1) && woken(ch2), "both streams woken")
	stop1()
	ch2 = w2()
	a.SerialNumber = "02"
	_, err = c.Put(t.Context(), a)
	require.NoError(t, err)
	assert.True(t, woken(ch2), "the other stream still follows")
	stop2()
	a.SerialNumber = "03"
	_, err = c.Put(t.Context(), a) // no follower left: nothing to wake
	require.NoError(t, err)
}

// Wake wakes the streams of the agent it names, and no other's.
func TestWake(t *testing.T) {
	c := agentcache.New(memstore.New(memstore.Config{}))
	a, b := record("a", "01"), record("b", "01")
	wa, stopA := c.Follow(a.ID)
	defer stopA()
	wb, stopB := c.Follow(b.ID)
	defer stopB()
	cha, chb := wa(), wb()
	c.Wake(a.ID)
	assert.True(t, woken(cha))
	assert.False(t, woken(chb), "another agent's stream sleeps on")
	assert.False(t, woken(wa()), "a new channel once woken")
	c.Wake(record("c", "01").ID) // no stream: nothing to wake
}

// The Reloader reads at once after a quiet spell, folds the signals that
// come sooner into one read at the end of the gap, and calls Changed after
// a read that found a change streams react to only.
func TestReloader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := memstore.New(memstore.Config{})
		a := put(t, store, record("a", "01"))
		c := agentcache.New(store)
		calls := 0
		r := &agentcache.Reloader{Cache: c, Changed: func() { calls++ }, Log: slog.New(slog.DiscardHandler)}
		ctx := t.Context()

		r.Reload(ctx)
		assert.Equal(t, 1, c.Len())
		assert.Nil(t, r.Due(), "no read pending")

		// A signal right after a read waits for the gap to end.
		put(t, store, record("b", "01"))
		r.Signalled(ctx)
		assert.Equal(t, 1, c.Len(), "not read yet")
		due := r.Due()
		require.NotNil(t, due)
		r.Signalled(ctx) // folded into the pending read
		assert.Equal(t, due, r.Due())
		start := time.Now()
		<-due
		assert.Equal(t, 100*time.Millisecond, time.Since(start), "the gap after a quick read")
		r.Reload(ctx)
		assert.Equal(t, 2, c.Len())
		assert.Zero(t, calls, "a new record is no change streams react to")

		// After a quiet spell, a signal is followed at once.
		time.Sleep(time.Second)
		require.NoError(t, store.DeleteAgent(ctx, a.ID))
		r.Signalled(ctx)
		assert.Nil(t, r.Due())
		assert.Equal(t, 1, c.Len())
		assert.Equal(t, 1, calls, "an eviction is")

		// Stop drops a pending read.
		r.Signalled(ctx)
		require.NotNil(t, r.Due())
		r.Stop()
		assert.Nil(t, r.Due())
	})
}

// A failed read is logged and keeps the cache.
func TestReloaderLogsFailures(t *testing.T) {
	store := memstore.New(memstore.Config{})
	logs := &logtest.Buffer{}
	r := &agentcache.Reloader{Cache: agentcache.New(failing{store}), Changed: func() { t.Error("no change") }, Log: logs.Logger()}
	r.Reload(t.Context())
	assert.True(t, logs.Contains("reading the agent records failed"), "%s", logs)
	assert.True(t, logs.Contains(errStore.Error()))
}
