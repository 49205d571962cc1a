package nodebench

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/jointoken"
	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/nodeapi/nodeserver"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/sqlstore"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

var (
	td     = spiffeid.RequireTrustDomainFromString("example.org")
	ourUID = attest.Selector{Type: "unix", Value: "uid:" + strconv.Itoa(os.Getuid())}
)

// countingStore is the registry and the agent store as the server reads
// them: sqlstore, with a count of each query. It is one value, so that a
// server given it in every field of its Stores runs the store once.
type countingStore struct {
	*sqlstore.Store
	head, changes, list, get       atomic.Int64
	listAgents, getAgent, putAgent atomic.Int64
}

func (c *countingStore) Head(ctx context.Context) (int64, error) {
	c.head.Add(1)
	return c.Store.Head(ctx)
}

func (c *countingStore) Changes(ctx context.Context, after int64, limit int) ([]registry.Event, error) {
	c.changes.Add(1)
	return c.Store.Changes(ctx, after, limit)
}

func (c *countingStore) List(ctx context.Context, f registry.Filter, p registry.Page) ([]registry.Entry, string, error) {
	c.list.Add(1)
	return c.Store.List(ctx, f, p)
}

func (c *countingStore) Get(ctx context.Context, id string) (registry.Entry, error) {
	c.get.Add(1)
	return c.Store.Get(ctx, id)
}

func (c *countingStore) ListAgents(ctx context.Context) ([]registry.Agent, error) {
	c.listAgents.Add(1)
	return c.Store.ListAgents(ctx)
}

func (c *countingStore) GetAgent(ctx context.Context, id spiffeid.ID) (registry.Agent, error) {
	c.getAgent.Add(1)
	return c.Store.GetAgent(ctx, id)
}

func (c *countingStore) PutAgent(ctx context.Context, a registry.Agent) (registry.Agent, error) {
	c.putAgent.Add(1)
	return c.Store.PutAgent(ctx, a)
}

// counts returns a snapshot of the counters.
func (c *countingStore) counts() queryCounts {
	return queryCounts{
		Head: c.head.Load(), Changes: c.changes.Load(), List: c.list.Load(), Get: c.get.Load(),
		ListAgents: c.listAgents.Load(), GetAgent: c.getAgent.Load(), PutAgent: c.putAgent.Load(),
	}
}

// queryCounts is a snapshot of the query counters.
type queryCounts struct {
	Head, Changes, List, Get, ListAgents, GetAgent, PutAgent int64
}

func (e *env) counts() queryCounts { return e.counting.counts() }

func (q queryCounts) sub(o queryCounts) queryCounts {
	return queryCounts{
		Head: q.Head - o.Head, Changes: q.Changes - o.Changes, List: q.List - o.List, Get: q.Get - o.Get,
		ListAgents: q.ListAgents - o.ListAgents, GetAgent: q.GetAgent - o.GetAgent, PutAgent: q.PutAgent - o.PutAgent,
	}
}

// env is an issuing server on loopback (a node server of the shared
// harness): a rotating CA, a SQLite registry and agent store behind
// counting wrappers, join tokens.
type env struct {
	ca    *rotation.Manager
	store *sqlstore.Store
	// counting wraps store: the server reads the registry and the
	// agent records through it.
	counting *countingStore
	srv      *nodetest.NodeServer
}

type envConfig struct {
	// PollInterval is the server's; zero means its default (30 s), as a
	// real server runs. The SQLite store tells the server of the writes
	// made through it at once.
	PollInterval time.Duration
	// DBDir holds the SQLite file; empty means a temporary directory on
	// the test's disk.
	DBDir string
	// Before runs after the store and the CA are made and before the
	// server starts, to fill the store.
	Before func(*env)
}

func newEnv(tb testing.TB, cfg envConfig) *env {
	tb.Helper()
	ctx := tb.Context()
	dir := cfg.DBDir
	if dir == "" {
		dir = tb.TempDir()
	}
	store, err := sqlstore.Open(ctx, sqlstore.Config{Dialect: sqlstore.SQLite, DSN: filepath.Join(dir, "registry.db")})
	require.NoError(tb, err)
	tb.Cleanup(func() { store.Close() })
	m, err := rotation.New(ctx, rotation.Config{TrustDomain: td})
	require.NoError(tb, err)
	e := &env{ca: m, store: store, counting: &countingStore{Store: store}}
	if cfg.Before != nil {
		cfg.Before(e)
	}
	e.srv = nodetest.StartNodeServer(tb, nodetest.NodeConfig{CA: m, Store: store, Edit: func(c *nodeserver.Config) {
		c.Registry, c.Agents, c.PollInterval = e.counting, e.counting, cfg.PollInterval
	}})
	return e
}

// waitIndexed waits until the server's index holds every entry written so
// far: the store tells the server of each write, and the server reads the
// change feed.
func (e *env) waitIndexed(tb testing.TB) {
	tb.Helper()
	head, err := e.store.Head(tb.Context())
	require.NoError(tb, err)
	waitFor(tb, 30*time.Second, "the server reads the change feed", func() bool { return e.srv.Index().Seq() >= head })
}

// createEntries adds n entries parented by parent, each with sel, in
// batches when the store takes them, and returns them.
func createEntries(tb testing.TB, store registry.Writer, parent spiffeid.ID, prefix string, n int, sel attest.Selector) []registry.Entry {
	tb.Helper()
	in := make([]registry.Entry, n)
	for i := range n {
		in[i] = registry.Entry{
			SPIFFEID:  spiffeid.RequireFromPath(td, fmt.Sprintf("%s/w%d", prefix, i)),
			ParentID:  parent,
			Selectors: []attest.Selector{sel},
		}
	}
	out := make([]registry.Entry, 0, n)
	bc, batched := store.(registry.BatchCreator)
	for len(in) > 0 {
		if !batched {
			en, err := store.Create(tb.Context(), in[0])
			require.NoError(tb, err)
			out, in = append(out, en), in[1:]
			continue
		}
		k := min(len(in), registry.MaxBatch)
		res, err := bc.CreateBatch(tb.Context(), in[:k])
		require.NoError(tb, err)
		for _, r := range res {
			require.NoError(tb, r.Err)
			out = append(out, r.Entry)
		}
		in = in[k:]
	}
	return out
}

// svidSource is an x509svid.Source holding one SVID.
type svidSource struct{ svid *x509svid.SVID }

func (s svidSource) GetX509SVID() (*x509svid.SVID, error) { return s.svid, nil }

// attestClient attests a simulated agent with a join token and returns its
// node protocol client.
func (e *env) attestClient(tb testing.TB) (*nodeapi.Client, spiffeid.ID) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(tb, err)
	cfg := nodeapi.ClientConfig{Servers: []string{e.srv.Addr}, TrustDomain: td, Bundle: e.ca.Bundle().X509Bundle()}
	ctx, cancel := context.WithTimeout(tb.Context(), 30*time.Second)
	defer cancel()
	a, err := nodeapi.Attest(ctx, cfg, jointoken.NewClient(e.srv.Token(tb)), key)
	require.NoError(tb, err)
	return e.dial(tb, a.ID, a.Certificates, key), a.ID
}

func (e *env) dial(tb testing.TB, id spiffeid.ID, chain []*x509.Certificate, key crypto.Signer) *nodeapi.Client {
	tb.Helper()
	cli := e.dialNoCleanup(tb, id, chain, key)
	tb.Cleanup(func() { cli.Close() })
	return cli
}

// dialNoCleanup is dial for a caller that closes the client itself.
func (e *env) dialNoCleanup(tb testing.TB, id spiffeid.ID, chain []*x509.Certificate, key crypto.Signer) *nodeapi.Client {
	tb.Helper()
	cfg := nodeapi.ClientConfig{Servers: []string{e.srv.Addr}, TrustDomain: td, Bundle: e.ca.Bundle().X509Bundle()}
	cli, err := nodeapi.Dial(cfg, svidSource{&x509svid.SVID{ID: id, Certificates: chain, PrivateKey: key}})
	require.NoError(tb, err)
	return cli
}

// mintCounter is a slog handler that counts the X509-SVIDs an agent's
// issuer reports minted, from its Info line of each batch: taking Debug
// records too would make the agent build its Debug lines, and slow what
// the benchmarks measure.
type mintCounter struct {
	n atomic.Int64
}

func (m *mintCounter) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }
func (m *mintCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "minted X509-SVIDs" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "count" {
				m.n.Add(a.Value.Int64())
				return false
			}
			return true
		})
	}
	return nil
}
func (m *mintCounter) WithAttrs([]slog.Attr) slog.Handler { return m }
func (m *mintCounter) WithGroup(string) slog.Handler      { return m }

// newAgent starts a real node agent against e, attested with a fresh join
// token; minted, when not nil, counts its pre-minted SVIDs.
func (e *env) newAgent(tb testing.TB, minted *mintCounter) *nodetest.Agent {
	tb.Helper()
	return e.newAgentWithToken(tb, e.srv.Token(tb), minted)
}

// newAgentWithToken is newAgent with a given join token. The agent's Stop
// lets go of it, so that its memory can be reclaimed before the test ends.
func (e *env) newAgentWithToken(tb testing.TB, token string, minted *mintCounter) *nodetest.Agent {
	tb.Helper()
	cfg := e.srv.AgentConfig(tb)
	cfg.NodeAttestor = jointoken.NewClient(token)
	if minted != nil {
		cfg.Logger = slog.New(minted)
	}
	return nodetest.StartAgent(tb, cfg)
}

func waitSynced(tb testing.TB, a *nodetest.Agent, limit time.Duration) {
	tb.Helper()
	select {
	case <-a.Synced():
	case <-time.After(limit):
		tb.Fatalf("the agent did not sync within %s", limit)
	}
}

// waitFor polls cond every millisecond until it holds or limit passes.
func waitFor(tb testing.TB, limit time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(time.Millisecond)
	}
}

// durations collects latencies from several goroutines.
type durations struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *durations) add(d time.Duration) {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
}

// percentile returns the p-th percentile (0-100), nearest rank.
func (s *durations) percentile(p float64) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.d) == 0 {
		return 0
	}
	d := slices.Clone(s.d)
	slices.Sort(d)
	rank := int(p/100*float64(len(d))+0.999999) - 1
	return d[min(max(rank, 0), len(d)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// measure runs once b.N times, timed, and reports the percentiles of the
// durations it returns (see report).
func measure(b *testing.B, once func(testing.TB) time.Duration) {
	var d durations
	b.ResetTimer()
	for range b.N {
		d.add(once(b))
	}
	b.StopTimer()
	d.report(b)
}

// report reports the 50th and 99th percentiles, in milliseconds, as the
// benchmark's p50-ms and p99-ms.
func (s *durations) report(b *testing.B) {
	b.ReportMetric(ms(s.percentile(50)), "p50-ms")
	b.ReportMetric(ms(s.percentile(99)), "p99-ms")
}

// heapInUse returns the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// shmDir returns a temporary directory in memory when /dev/shm exists, for
// benchmarks whose setup writes many entries and whose figure is not the
// disk's.
func shmDir(tb testing.TB) string {
	tb.Helper()
	if st, err := os.Stat("/dev/shm"); err != nil || !st.IsDir() {
		return tb.TempDir()
	}
	dir, err := os.MkdirTemp("/dev/shm", "nodebench")
	require.NoError(tb, err)
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
