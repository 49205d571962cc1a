package server_test

import (
	"context"
	"crypto"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/jointoken"
	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/internal/testing/pgtest"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/server"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

// haPair starts two servers sharing one PostgreSQL database, polling it
// only every hour: what one writes can reach the other in a test only
// through the database's notifications. The second server logs to logs.
func haPair(t *testing.T, logs *logtest.Buffer) (a, b *nodetest.Server) {
	t.Helper()
	return haPairOn(t, sharedDBs[0], logs)
}

// haPairOn is haPair on db: on MySQL, what one server writes reaches the
// other through the store's poll of the change counters.
func haPairOn(t *testing.T, db sharedDB, logs *logtest.Buffer) (a, b *nodetest.Server) {
	t.Helper()
	dsn := db.newDSN(t)
	a = start(t, serverConfigOn(t, db, dsn, nil))
	b = start(t, serverConfigOn(t, db, dsn, logs))
	require.Eventually(t, func() bool {
		return len(a.Bundle().X509Authorities()) == 2 && len(b.Bundle().X509Authorities()) == 2
	}, 10*time.Second, 5*time.Millisecond, "each server reads the other's authorities")
	return a, b
}

func serverConfig(t *testing.T, dsn string, logs *logtest.Buffer) server.Config {
	return serverConfigOn(t, sharedDBs[0], dsn, logs)
}

func serverConfigOn(t *testing.T, db sharedDB, dsn string, logs *logtest.Buffer) server.Config {
	cfg := db.config(t, dsn)
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
	onSharedDBs(t, testBanAndEvictionReachAnotherServer)
}

func testBanAndEvictionReachAnotherServer(t *testing.T, db sharedDB) {
	var logs logtest.Buffer
	s1, s2 := haPairOn(t, db, &logs)
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
	onSharedDBs(t, testFederatedBundleReachesAnotherServersAgents)
}

func testFederatedBundleReachesAnotherServersAgents(t *testing.T, db sharedDB) {
	s1, s2 := haPairOn(t, db, nil)
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
	onSharedDBs(t, testAuthorityChangeReachesAnotherServer)
}

func testAuthorityChangeReachesAnotherServer(t *testing.T, db sharedDB) {
	s1, s2 := haPairOn(t, db, nil)
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
	onSharedDBs(t, testIdleServersDoNotWakeEachOther)
}

func testIdleServersDoNotWakeEachOther(t *testing.T, db sharedDB) {
	s1, s2 := haPairOn(t, db, nil)
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

// evictThrough is the agent store of a server that has, once armed for an
// agent, the agent evicted through another server (by its admin API) right
// before it writes the agent's record: the interleaving in which a server
// that read the record before the eviction writes it back.
type evictThrough struct {
	registry.AgentStore
	other *nodetest.Server
	armed atomic.Pointer[spiffeid.ID]
}

func (e *evictThrough) beforeWrite(ctx context.Context, id spiffeid.ID) error {
	if armed := e.armed.Load(); armed != nil && *armed == id && e.armed.CompareAndSwap(armed, nil) {
		return e.other.Admin.EvictAgent(ctx, id)
	}
	return nil
}

func (e *evictThrough) PutAgent(ctx context.Context, a registry.Agent) (registry.Agent, error) {
	if err := e.beforeWrite(ctx, a.ID); err != nil {
		return registry.Agent{}, err
	}
	return e.AgentStore.PutAgent(ctx, a)
}

func (e *evictThrough) UpdateAgent(ctx context.Context, a registry.Agent) (registry.Agent, error) {
	if err := e.beforeWrite(ctx, a.ID); err != nil {
		return registry.Agent{}, err
	}
	return e.AgentStore.UpdateAgent(ctx, a)
}

// agentSVID is an agent's own SVID, as its x509svid.Source.
type agentSVID struct {
	key  crypto.Signer
	svid *nodeapi.AgentSVID
}

func (a agentSVID) GetX509SVID() (*x509svid.SVID, error) {
	return &x509svid.SVID{ID: a.svid.ID, Certificates: a.svid.Certificates, PrivateKey: a.key}, nil
}

// Property: an agent evicted through one server stays evicted when, at the
// same moment, another server sharing the PostgreSQL database renews its
// SVID (having read its record before the eviction), or retires its
// previous SVID at the first use of the new one: the other server's write
// of the record is refused, not a new record, and so is the agent.
func TestRenewalDoesNotUndoAnEvictionThroughAnotherServer(t *testing.T) {
	dsn := pgtest.New(t)
	s1 := start(t, serverConfig(t, dsn, nil))
	cfg := serverConfig(t, dsn, nil)
	hook := &evictThrough{AgentStore: cfg.Stores.Agents, other: s1}
	cfg.Stores.Agents = hook
	s2 := start(t, cfg)
	require.Eventually(t, func() bool { return len(s2.Bundle().X509Authorities()) == 2 }, 10*time.Second, 5*time.Millisecond)
	clientConfig := nodeapi.ClientConfig{Servers: []string{s2.Addr().String()}, TrustDomain: td, Bundle: s2.Bundle().X509Bundle()}

	// attest admits an agent through the second server, and dials it with
	// the agent's SVID.
	attest := func(t *testing.T) (*nodeapi.AgentSVID, *nodeapi.Client) {
		key := testca.NewECKey(t)
		svid, err := nodeapi.Attest(t.Context(), clientConfig, jointoken.NewClient(s2.Token(t)), key)
		require.NoError(t, err)
		c, err := nodeapi.Dial(clientConfig, agentSVID{key, svid})
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		return svid, c
	}
	for _, tt := range []struct {
		name string
		// call makes the second server write the agent's record, once
		// armed is called, and returns the call's error.
		call func(t *testing.T, armed func(spiffeid.ID)) error
	}{
		{"renewal", func(t *testing.T, armed func(spiffeid.ID)) error {
			svid, c := attest(t)
			armed(svid.ID)
			_, err := c.RenewAgent(t.Context(), testca.NewECKey(t))
			return err
		}},
		{"first use of the renewed SVID", func(t *testing.T, armed func(spiffeid.ID)) error {
			svid, c := attest(t)
			key := testca.NewECKey(t)
			renewed, err := c.RenewAgent(t.Context(), key)
			require.NoError(t, err)
			c2, err := nodeapi.Dial(clientConfig, agentSVID{key, renewed})
			require.NoError(t, err)
			defer c2.Close()
			armed(svid.ID)
			_, err = c2.SignJWTSVID(t.Context(), "no-such-entry", []string{"db"})
			return err
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var id spiffeid.ID
			err := tt.call(t, func(agent spiffeid.ID) {
				id = agent
				hook.armed.Store(&agent)
			})
			require.Nil(t, hook.armed.Load(), "the eviction was made between the read and the write")
			assert.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
			assert.ErrorContains(t, err, "evicted")
			_, err = s1.Stores.Agents.GetAgent(t.Context(), id)
			require.ErrorIs(t, err, registry.ErrNotFound, "the agent's record stays deleted")
		})
	}
}
