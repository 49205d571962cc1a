package server_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/internal/testing/pgtest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/server"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// haPair starts two servers sharing one PostgreSQL database, polling it
// only every hour: what one writes can reach the other in a test only
// through the database's notifications. The second server logs to logs.
func haPair(t *testing.T, logs *logtest.Buffer) (a, b *nodetest.Server) {
	t.Helper()
	dsn := pgtest.New(t)
	a = start(t, serverConfig(t, dsn, nil))
	b = start(t, serverConfig(t, dsn, logs))
	require.Eventually(t, func() bool {
		return len(a.Bundle().X509Authorities()) == 2 && len(b.Bundle().X509Authorities()) == 2
	}, 10*time.Second, 5*time.Millisecond, "each server reads the other's authorities")
	return a, b
}

func serverConfig(t *testing.T, dsn string, logs *logtest.Buffer) server.Config {
	cfg := postgres(t, dsn)
	cfg.PollInterval = time.Hour
	if logs != nil {
		cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	}
	return cfg
}

// agentWithEntry starts an agent served by s, with one entry for this
// process that federates with federatesWith, and returns it once it holds
// the entry.
func agentWithEntry(t *testing.T, s *nodetest.Server, federatesWith ...spiffeid.TrustDomain) *nodetest.Agent {
	t.Helper()
	a := nodetest.StartAgent(t, s.AgentConfig(t))
	_, err := s.Admin.CreateEntry(t.Context(), registry.Entry{
		SPIFFEID: spiffeid.RequireFromPath(td, "/web-"+strings.ReplaceAll(a.ID().Path(), "/", "-")), ParentID: a.ID(),
		Selectors: []attest.Selector{ourUID}, FederatesWith: federatesWith,
	})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return a.Stats().Entries == 1 && a.Stats().Connected }, 10*time.Second, 5*time.Millisecond)
	return a
}

// Property: an eviction or a ban made through one server ends, on another
// server sharing the database, the entry stream of the agent it concerns,
// without waiting for a poll.
func TestBanAndEvictionReachAnotherServer(t *testing.T) {
	var logs logtest.Buffer
	s1, s2 := haPair(t, &logs)
	for _, tt := range []struct {
		name, why string
		act       func(spiffeid.ID) error
	}{
		{"ban", "banned", func(id spiffeid.ID) error { _, err := s1.Admin.BanAgent(t.Context(), id); return err }},
		{"evict", "evicted", func(id spiffeid.ID) error { return s1.Admin.EvictAgent(t.Context(), id) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := agentWithEntry(t, s2)
			require.NoError(t, tt.act(a.ID()))
			require.Eventually(t, func() bool {
				return strings.Contains(logs.String(), tt.why+": agent "+a.ID().String()+", during its entry stream")
			}, 10*time.Second, 5*time.Millisecond, "server 2 ends the agent's stream")
			require.Eventually(t, func() bool { return !a.Stats().Connected }, 10*time.Second, 5*time.Millisecond)
		})
	}
}

// Property: a federated bundle set through one server reaches the
// workloads of an agent served by another, without waiting for a poll.
func TestFederatedBundleReachesAnotherServersAgents(t *testing.T) {
	s1, s2 := haPair(t, nil)
	src := x509Source(t, agentWithEntry(t, s2, partnerTD).Addr)
	partner, err := rotation.New(t.Context(), rotation.Config{TrustDomain: partnerTD})
	require.NoError(t, err)
	doc, err := partner.Bundle().Marshal()
	require.NoError(t, err)
	_, err = s1.Admin.SetFederatedBundle(t.Context(), partnerTD, doc)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return hasX509Authority(src, partnerTD, partner.X509Authority().Certificate())
	}, 10*time.Second, 5*time.Millisecond, "the workload behind server 2 gets the bundle set through server 1")
}

// Property: a change of one server's authorities (here a prepared CA)
// reaches the other server's bundle and its agents' workloads without
// waiting for a poll.
func TestAuthorityChangeReachesAnotherServer(t *testing.T) {
	s1, s2 := haPair(t, nil)
	src := x509Source(t, agentWithEntry(t, s2).Addr)
	next, err := s1.CA().PrepareX509CA(t.Context())
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return s2.Bundle().HasX509Authority(next.Certificate) && hasX509Authority(src, td, next.Certificate)
	}, 10*time.Second, 5*time.Millisecond)
}

// Property: servers woken by a write of the servers' shares read, but
// write their own share only when it changed: two idle servers do not wake
// each other forever. A third party publishes a share again and again;
// each time both servers read it, and neither writes its own.
func TestIdleServersDoNotWakeEachOther(t *testing.T) {
	s1, s2 := haPair(t, nil)
	written := func() map[string]time.Time {
		list, err := s1.Stores.ServerBundles.ListServerBundles(t.Context(), time.Now())
		require.NoError(t, err)
		m := map[string]time.Time{}
		for _, b := range list {
			m[b.ServerID] = b.UpdatedAt
		}
		return m
	}
	before := written()
	require.Contains(t, before, s1.ID())
	require.Contains(t, before, s2.ID())

	third, err := rotation.New(t.Context(), rotation.Config{TrustDomain: td})
	require.NoError(t, err)
	for range 5 {
		next, err := third.PrepareX509CA(t.Context())
		require.NoError(t, err)
		doc, err := third.Bundle().Marshal()
		require.NoError(t, err)
		require.NoError(t, s1.Stores.ServerBundles.PutServerBundle(t.Context(), registry.ServerBundle{
			ServerID: "third", Document: doc, ExpiresAt: time.Now().Add(time.Hour),
		}))
		require.Eventually(t, func() bool {
			return s1.Bundle().HasX509Authority(next.Certificate) && s2.Bundle().HasX509Authority(next.Certificate)
		}, 10*time.Second, 5*time.Millisecond, "both servers read the third share")
	}
	after := written()
	assert.Equal(t, before[s1.ID()], after[s1.ID()], "server 1 did not write its share again")
	assert.Equal(t, before[s2.ID()], after[s2.ID()], "server 2 did not write its share again")
}
