package nodebench

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest/jointoken"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// bigSyncResult is what one sync of a large registry to one agent took.
type bigSyncResult struct {
	synced, minted time.Duration
	// heapWith is the process's heap growth with the agent running;
	// heapAfter is what remains after the agent closed (the server's
	// caches).
	heapWith, heapAfter int64
}

// bigSync starts a real agent whose ID already has n entries in the SQLite
// registry and measures how long it takes to sync them all and to have an
// X509-SVID pre-minted for each.
func bigSync(tb testing.TB, n int) bigSyncResult {
	tb.Helper()
	agentID := spiffeid.RequireFromPath(td, "/spiffekit/agent/big")
	var token string
	e := newEnv(tb, envConfig{Before: func(e *env) {
		var err error
		token, _, err = jointoken.Generate(tb.Context(), e.store, jointoken.Params{AgentID: agentID})
		require.NoError(tb, err)
		createEntries(tb, e.store, agentID, "/big", n, ourUID)
	}})
	var minted mintCounter
	h0 := heapInUse()
	start := time.Now()
	a := e.newAgentWithToken(tb, token, &minted)
	waitSynced(tb, a, 5*time.Minute)
	var r bigSyncResult
	r.synced = time.Since(start)
	require.Equal(tb, n, a.Stats().Entries)
	waitFor(tb, 10*time.Minute, "every SVID pre-minted", func() bool { return minted.n.Load() >= int64(n) })
	r.minted = time.Since(start)
	r.heapWith = int64(heapInUse()) - int64(h0)
	stop := a.Stop
	a = nil
	require.NoError(tb, stop())
	r.heapAfter = int64(heapInUse()) - int64(h0)
	return r
}

func TestBigSync(t *testing.T) {
	r := bigSync(t, 50)
	require.Positive(t, r.synced)
	require.GreaterOrEqual(t, r.minted, r.synced)
}

// BenchmarkSync10kEntries starts a node agent for which the SQLite registry
// holds 10,000 entries. synced-s is the time from agent.New (Run's attestation
// included) to agent.Synced; minted-s to every X509-SVID pre-minted
// through the server; heap-MB is the process's live heap growth with the
// agent running (server and agent: they share the process), and
// server-MB what is left of it once the agent has closed; agent-B/entry is
// the difference, the agent's live heap, over the entries (its replica of
// the entries, the issuer's index and the 10,000 SVIDs). Run with
// -benchtime=1x.
func BenchmarkSync10kEntries(b *testing.B) {
	const entries = 10000
	var synced, minted, with, after float64
	for range b.N {
		r := bigSync(b, entries)
		synced += r.synced.Seconds()
		minted += r.minted.Seconds()
		with += float64(r.heapWith)
		after += float64(r.heapAfter)
	}
	n := float64(b.N)
	b.ReportMetric(synced/n, "synced-s")
	b.ReportMetric(minted/n, "minted-s")
	b.ReportMetric(with/n/(1<<20), "heap-MB")
	b.ReportMetric(after/n/(1<<20), "server-MB")
	b.ReportMetric((with-after)/n/entries, "agent-B/entry")
}

// manyAgentsResult is what the sync of many simulated agents took.
type manyAgentsResult struct {
	full time.Duration
	// heapWith is the process's heap growth with every stream open
	// (server and clients); heapAfter what remains once the clients
	// closed.
	heapWith, heapAfter int64
}

// manyAgents registers agents simulated agents, each with perAgent entries
// in the SQLite registry and an agent SVID and record made directly (no
// attestation), then opens every agent's entry stream at once (its own
// mutual TLS connection each) and measures the time until every one has
// received all its entries.
func manyAgents(tb testing.TB, agents, perAgent int) manyAgentsResult {
	tb.Helper()
	type sim struct {
		id    spiffeid.ID
		key   *ecdsa.PrivateKey
		chain []*x509.Certificate
	}
	sims := make([]sim, agents)
	e := newEnv(tb, envConfig{DBDir: shmDir(tb), Before: func(e *env) {
		authority := e.ca.X509Authority()
		for i := range sims {
			key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			require.NoError(tb, err)
			id := spiffeid.RequireFromPath(td, fmt.Sprintf("/agent/sim%d", i))
			chain, err := authority.SignX509SVID(tb.Context(), ca.X509SVIDParams{PublicKey: key.Public(), ID: id})
			require.NoError(tb, err)
			_, err = e.store.PutAgent(tb.Context(), registry.Agent{
				ID: id, AttestorType: "join_token",
				SerialNumber: chain[0].SerialNumber.Text(16), ExpiresAt: chain[0].NotAfter,
			})
			require.NoError(tb, err)
			createEntries(tb, e.store, id, fmt.Sprintf("/sim%d", i), perAgent, ourUID)
			sims[i] = sim{id: id, key: key, chain: chain}
		}
	}})
	h0 := heapInUse()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var done atomic.Int64
	all := make(chan struct{})
	var wg sync.WaitGroup
	clients := make([]*nodeapi.Client, agents)
	defer func() { // on failure
		cancel()
		wg.Wait()
		for _, c := range clients {
			if c != nil {
				c.Close()
			}
		}
	}()
	start := time.Now()
	for i, s := range sims {
		cli := e.dialNoCleanup(tb, s.id, s.chain, s.key)
		clients[i] = cli
		wg.Go(func() {
			got := 0
			err := cli.Sync(ctx, nil, func(u nodeapi.Update) error {
				got += len(u.Upserts)
				if got == perAgent {
					if done.Add(1) == int64(agents) {
						close(all)
					}
				}
				return nil
			})
			if err != nil && ctx.Err() == nil {
				tb.Errorf("agent %s: %v", s.id, err)
			}
		})
	}
	select {
	case <-all:
	case <-time.After(10 * time.Minute):
		tb.Fatalf("only %d of %d agents synced", done.Load(), agents)
	}
	var r manyAgentsResult
	r.full = time.Since(start)
	r.heapWith = int64(heapInUse()) - int64(h0)
	cancel()
	wg.Wait()
	for i, c := range clients {
		c.Close()
		clients[i] = nil
	}
	r.heapAfter = int64(heapInUse()) - int64(h0)
	return r
}

func TestManyAgents(t *testing.T) {
	r := manyAgents(t, 5, 10)
	require.Positive(t, r.full)
}

// BenchmarkManyAgents opens the entry streams of 1,000 simulated agents
// with 100 entries each at once, against one server with a SQLite
// registry of 100,000 entries. full-sync-s is the time until every agent
// has all its entries (TLS handshakes included); heap-MB the process's
// live heap growth with every stream open (server and the 1,000 clients
// share the process), server-MB what remains once the clients closed.
// Run with -benchtime=1x.
func BenchmarkManyAgents(b *testing.B) {
	var full, with, after float64
	for range b.N {
		r := manyAgents(b, 1000, 100)
		full += r.full.Seconds()
		with += float64(r.heapWith) / (1 << 20)
		after += float64(r.heapAfter) / (1 << 20)
	}
	n := float64(b.N)
	b.ReportMetric(full/n, "full-sync-s")
	b.ReportMetric(with/n, "heap-MB")
	b.ReportMetric(after/n, "server-MB")
}
