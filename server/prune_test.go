package server_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
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
	// Nine seconds ahead at least, to the second: time to sync first,
	// even on a loaded machine.
	expiresAt := time.Now().Add(10 * time.Second).Truncate(time.Second)
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
	expiresAt := time.Now().Add(10 * time.Second).Truncate(time.Second)
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

// Property: servers sharing a datastore both prune; an expired entry is
// deleted once, the other server's attempt finds it gone and fails
// nothing, and the entries that have not expired stay.
func TestPruneSharedDatastore(t *testing.T) { onSharedDBs(t, testPruneSharedDatastore) }

func testPruneSharedDatastore(t *testing.T, db sharedDB) {
	dsn := db.newDSN(t)
	var logs logtest.Buffer
	cfg := func() server.Config {
		c := db.config(t, dsn)
		c.EntryPruneInterval = 50 * time.Millisecond
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		return c
	}
	s1 := start(t, cfg())
	s2 := start(t, cfg())
	parent := spiffeid.RequireFromPath(td, "/agent")
	expiresAt := time.Now().Add(8 * time.Second).Truncate(time.Second)
	temp := registerExpiring(t, s1, parent, "/temporary", expiresAt)
	lasting := registerExpiring(t, s2, parent, "/lasting", time.Now().Add(time.Hour))

	require.Eventually(t, func() bool {
		_, err := s2.Stores.Entries.Get(t.Context(), temp.ID)
		return errors.Is(err, registry.ErrNotFound)
	}, nodetest.Timeout, 20*time.Millisecond, "the expired entry is pruned")
	assert.False(t, time.Now().Before(expiresAt), "not before its expiry")
	_, err := s1.Stores.Entries.Get(t.Context(), lasting.ID)
	require.NoError(t, err)
	// Both servers' indexes let go of it: neither prunes again.
	require.Eventually(t, func() bool {
		return len(s1.Node().Index().Expired()) == 0 && len(s2.Node().Index().Expired()) == 0
	}, nodetest.Timeout, 20*time.Millisecond)
	assert.Equal(t, 1, strings.Count(logs.String(), `msg="expired entry pruned"`), logs.String())
	assert.NotContains(t, logs.String(), "pruning expired entries failed")
}
