package nodeserver_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/nodeapi/nodeserver"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/index"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// countingAgents is a memstore (a registry.Notifier) that counts the
// reads of every agent record, each taking listTakes of the bubble's time.
type countingAgents struct {
	*memstore.Store
	lists     atomic.Int64
	listTakes time.Duration
}

func (c *countingAgents) ListAgents(ctx context.Context) ([]registry.Agent, error) {
	c.lists.Add(1)
	time.Sleep(c.listTakes)
	return c.Store.ListAgents(ctx)
}

// runBubbled starts a server on agents, with PollInterval poll, whose Run
// runs until the test's bubble ends.
func runBubbled(t *testing.T, agents registry.AgentStore, reg index.Source, poll time.Duration) *nodeserver.Server {
	t.Helper()
	m, err := rotation.New(t.Context(), rotation.Config{TrustDomain: td})
	require.NoError(t, err)
	srv, err := nodeserver.New(t.Context(), nodeserver.Config{
		Authority: m, Registry: reg, Agents: agents,
		Attestors: []attest.NodeAttestor{echoAttestor{}}, PollInterval: poll,
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	ran := make(chan error, 1)
	go func() { ran <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		assert.ErrorIs(t, <-ran, context.Canceled)
		require.NoError(t, srv.Close())
	})
	synctest.Wait() // Run has caught up and waits
	return srv
}

func agentRecord(i int) registry.Agent {
	return registry.Agent{
		ID:           spiffeid.RequireFromPath(td, fmt.Sprintf("/spiffekit/agent/echo/n%d", i)),
		AttestorType: "echo",
		SerialNumber: fmt.Sprintf("%x", i+1),
		ExpiresAt:    time.Now().Add(time.Hour),
	}
}

// Property: a burst of agent record writes (a fleet renewing, attesting)
// costs the server a bounded number of reads of every record, not one per
// write; the last write is seen; a write after a quiet spell is read at
// once. No poll can explain any of it: the poll interval is an hour.
func TestAgentWritesAreReadInFewLists(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := memstore.New(memstore.Config{})
		agents := &countingAgents{Store: store}
		srv := runBubbled(t, agents, store, time.Hour)
		time.Sleep(time.Second) // past the spacing of Run's first read
		before := agents.lists.Load()

		const n = 200
		for i := range n {
			_, err := store.PutAgent(t.Context(), agentRecord(i))
			require.NoError(t, err)
			synctest.Wait() // Run has taken each signal before the next write
		}
		last := agentRecord(n - 1)
		last.Banned = true
		_, err := store.PutAgent(t.Context(), last)
		require.NoError(t, err)
		time.Sleep(time.Second) // the bubble's clock: a deferred read is due
		synctest.Wait()
		lists := agents.lists.Load() - before
		assert.Equal(t, int64(2), lists, "one read at once, one folding the writes that came after it")
		got, ok := srv.CachedAgent(last.ID)
		require.True(t, ok, "the last write is read")
		assert.True(t, got.Banned)

		// After a quiet spell, a write is read without waiting.
		before = agents.lists.Load()
		_, err = store.PutAgent(t.Context(), agentRecord(n))
		require.NoError(t, err)
		synctest.Wait()
		assert.Equal(t, before+1, agents.lists.Load())
		_, ok = srv.CachedAgent(agentRecord(n).ID)
		assert.True(t, ok)
	})
}

// Property: reads of every agent record are spaced by ten times what the
// last one took, so that a large fleet costs the server and the database a
// bounded share of their time.
func TestSlowAgentListsAreSpacedByTheirCost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := memstore.New(memstore.Config{})
		agents := &countingAgents{Store: store, listTakes: time.Second}
		srv := runBubbled(t, agents, store, time.Hour)
		time.Sleep(time.Minute) // past the spacing of Run's first read
		synctest.Wait()

		before := agents.lists.Load()
		_, err := store.PutAgent(t.Context(), agentRecord(1)) // read at once, for 1 s
		require.NoError(t, err)
		synctest.Wait()
		time.Sleep(2 * time.Second)
		_, err = store.PutAgent(t.Context(), agentRecord(2)) // due 10 s after the first read began
		require.NoError(t, err)
		synctest.Wait()
		assert.Equal(t, before+1, agents.lists.Load())
		time.Sleep(7 * time.Second) // 9 s after the first read began
		synctest.Wait()
		assert.Equal(t, before+1, agents.lists.Load(), "not yet")
		_, ok := srv.CachedAgent(agentRecord(2).ID)
		assert.False(t, ok)
		time.Sleep(3 * time.Second)
		synctest.Wait()
		assert.Equal(t, before+2, agents.lists.Load())
		_, ok = srv.CachedAgent(agentRecord(2).ID)
		assert.True(t, ok)
	})
}

// Property: an agent store that does not tell of its writes is read every
// PollInterval, so that a ban made through another server still takes
// effect.
func TestQuietAgentStoreIsPolled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := memstore.New(memstore.Config{})
		rec, err := store.PutAgent(t.Context(), agentRecord(1))
		require.NoError(t, err)
		srv := runBubbled(t, quietAgents{store}, quietRegistry{store}, time.Minute)

		rec.Banned = true
		_, err = store.PutAgent(t.Context(), rec)
		require.NoError(t, err)
		synctest.Wait()
		got, _ := srv.CachedAgent(rec.ID)
		assert.False(t, got.Banned, "not told")
		time.Sleep(time.Minute)
		synctest.Wait()
		got, _ = srv.CachedAgent(rec.ID)
		assert.True(t, got.Banned, "read at the poll")
	})
}

// Property: reading the agent records wakes the open streams only when a
// record they may concern changed: an agent removed, banned or with other
// selectors. A fleet attesting or renewing wakes none.
func TestAgentRecordsWakeStreamsOnlyForWhatConcernsThem(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := memstore.New(memstore.Config{})
		known, err := store.PutAgent(t.Context(), agentRecord(0))
		require.NoError(t, err)
		srv := runBubbled(t, store, store, time.Hour)
		write := func(a registry.Agent) {
			t.Helper()
			_, err := store.PutAgent(t.Context(), a)
			require.NoError(t, err)
			time.Sleep(time.Second) // past the spacing of reads
			synctest.Wait()
		}
		gen := srv.Generation()
		write(agentRecord(1)) // a new agent
		renewed := known
		renewed.SerialNumber = "ff"
		write(renewed)
		assert.Equal(t, gen, srv.Generation(), "an attestation and a renewal wake no stream")

		otherSelectors := renewed
		otherSelectors.Selectors = []attest.Selector{{Type: "echo", Value: "name:other"}}
		write(otherSelectors)
		assert.Greater(t, srv.Generation(), gen, "other selectors")

		gen = srv.Generation()
		banned := agentRecord(2)
		banned.Banned = true
		write(banned)
		assert.Greater(t, srv.Generation(), gen, "a banned record, even one not seen before")

		gen = srv.Generation()
		require.NoError(t, store.DeleteAgent(t.Context(), known.ID))
		time.Sleep(time.Second)
		synctest.Wait()
		assert.Greater(t, srv.Generation(), gen, "an eviction")
	})
}
