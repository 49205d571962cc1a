package server_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/server"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/workloadapi"
)

// registerExpiring creates, through the admin API, the entry of path for
// the test process under parent, expiring at at.
func registerExpiring(t *testing.T, s *nodetest.Server, parent spiffeid.ID, path string, at time.Time) registry.Entry {
	t.Helper()
	e, err := s.Admin.CreateEntry(t.Context(), registry.Entry{
		SPIFFEID:  spiffeid.RequireFromPath(s.TrustDomain(), path),
		ParentID:  parent,
		Selectors: []attest.Selector{nodetest.UID()},
		ExpiresAt: at,
	})
	require.NoError(t, err)
	return e
}

// servedPaths returns the paths of the X509-SVIDs the agent serves the
// test process.
func servedPaths(t *testing.T, a *nodetest.Agent) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), nodetest.Timeout)
	defer cancel()
	svids, err := workloadapi.FetchX509SVIDs(ctx, workloadapi.WithAddr(a.Addr))
	require.NoError(t, err)
	var out []string
	for _, s := range svids {
		out = append(out, s.ID.Path())
	}
	slices.Sort(out)
	return out
}

// Property: an agent serves an entry until its expiry and not after, even
// with its server gone (nothing told it to drop the entry).
func TestAgentStopsServingExpiredEntryWithServerAway(t *testing.T) {
	s := start(t, server.Config{})
	a := nodetest.StartAgent(t, s.AgentConfig(t))
	// Four seconds ahead at least, to the second: time to sync first.
	expiresAt := time.Now().Add(5 * time.Second).Truncate(time.Second)
	registerExpiring(t, s, a.ID(), "/temporary", expiresAt)
	s.Register(t, a.ID(), "/lasting")
	a.WaitEntries(t, 2)
	a.WaitSVID(t, spiffeid.RequireFromPath(td, "/temporary"))
	s.Stop()

	require.Eventually(t, func() bool { return slices.Equal(servedPaths(t, a), []string{"/lasting"}) },
		nodetest.Timeout, 50*time.Millisecond, "the agent stops serving the entry at its expiry")
	assert.False(t, time.Now().Before(expiresAt), "not before its expiry")
}

// Property: the server deletes expired entries from the store every
// EntryPruneInterval, and no others; the agent drops them at their
// expiry; the admin API refuses an expiry that has passed.
func TestExpiredEntriesArePruned(t *testing.T) {
	s := start(t, server.Config{EntryPruneInterval: 100 * time.Millisecond})
	a := nodetest.StartAgent(t, s.AgentConfig(t))
	expiresAt := time.Now().Add(5 * time.Second).Truncate(time.Second)
	temp := registerExpiring(t, s, a.ID(), "/temporary", expiresAt)
	later := registerExpiring(t, s, a.ID(), "/later", time.Now().Add(time.Hour))
	lasting := s.Register(t, a.ID(), "/lasting")
	a.WaitEntries(t, 3)

	require.Eventually(t, func() bool {
		_, err := s.Stores.Entries.Get(t.Context(), temp.ID)
		return err != nil
	}, nodetest.Timeout, 20*time.Millisecond, "the expired entry is pruned")
	_, err := s.Stores.Entries.Get(t.Context(), temp.ID)
	require.ErrorIs(t, err, registry.ErrNotFound)
	assert.False(t, time.Now().Before(expiresAt), "not before its expiry")
	for _, e := range []registry.Entry{later, lasting} {
		_, err := s.Stores.Entries.Get(t.Context(), e.ID)
		require.NoError(t, err, "%s stays", e.SPIFFEID)
	}
	a.WaitEntries(t, 2)
	assert.Equal(t, []string{"/lasting", "/later"}, servedPaths(t, a))
	assert.Zero(t, s.PruneEntries(t.Context()), "nothing left to prune")

	_, err = s.Admin.CreateEntry(t.Context(), registry.Entry{
		SPIFFEID: spiffeid.RequireFromPath(td, "/late"), ParentID: a.ID(),
		Selectors: []attest.Selector{nodetest.UID()}, ExpiresAt: time.Now().Add(-time.Minute),
	})
	require.ErrorIs(t, err, registry.ErrInvalid)
	assert.ErrorContains(t, err, "has passed")
}
