package nodebench

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/agent"
	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/jointoken"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/internal/testing/pgtest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/sqlstore"
	"github.com/spiffekit/spiffekit/server"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// startScale is the registry a start measurement fills: nodes agents with
// perNode entries each, plus the measuring agent's own entries.
type startScale struct {
	nodes, perNode, own int
}

func (s startScale) total() int { return s.nodes*s.perNode + s.own }

// startResult is what one server start on a filled registry took, from
// before the store is opened.
type startResult struct {
	// ready is until server.New returned: store open, entries loaded and
	// indexed, agent records read, CA ready, listeners bound.
	ready time.Duration
	// readyCPU is the process's CPU time (user and system, every thread)
	// over ready: on a shared machine, the figure that other jobs do not
	// stretch.
	readyCPU time.Duration
	// synced is until a real agent, started once the server is ready,
	// attested and holds its entries.
	synced time.Duration
	// rss is the process's resident memory with the server and the agent
	// running, peak its highest during the start, and heap the live Go
	// heap the start added.
	rss, peak uint64
	heap      int64
}

// startBench is one registry, filled once, for servers to start on. The
// first server it started created the CA's keys and journal in dir, so
// that each later start is a restart.
type startBench struct {
	scale startScale
	dir   string
	// pgDSN is the PostgreSQL database, or empty for SQLite in dir.
	pgDSN string
	// agentID is the measuring agent's ID.
	agentID spiffeid.ID
}

func nodeID(i int) spiffeid.ID {
	return spiffeid.RequireFromPath(nodetest.TrustDomain, fmt.Sprintf("/spiffekit/agent/node%d", i))
}

// newStartBench starts a server on an empty registry (SQLite in a data
// directory, or PostgreSQL when postgres is set), stops it, and fills the
// registry behind its back: scale's entries, in batches, and an agent
// record for each node.
func newStartBench(tb testing.TB, postgres bool, scale startScale) *startBench {
	tb.Helper()
	sb := &startBench{
		scale:   scale,
		dir:     shmDir(tb),
		agentID: spiffeid.RequireFromPath(nodetest.TrustDomain, "/spiffekit/agent/measuring"),
	}
	if postgres {
		sb.pgDSN = pgtest.New(tb)
	}
	_, stop := sb.startServer(tb, false)
	stop()

	st := sb.openStore(tb)
	defer func() { require.NoError(tb, st.Close()) }()
	fillNodes(tb, st, st, scale)
	own := make([]registry.Entry, scale.own)
	for i := range own {
		own[i] = registry.Entry{
			SPIFFEID:  spiffeid.RequireFromPath(nodetest.TrustDomain, fmt.Sprintf("/measuring/w%d", i)),
			ParentID:  sb.agentID,
			Selectors: []attest.Selector{ourUID},
		}
	}
	createAll(tb, st, own)
	return sb
}

// openStore opens the bench's registry: the SQLite file server.OpenSQLite
// opens in the data directory, or the PostgreSQL database.
func (sb *startBench) openStore(tb testing.TB) *sqlstore.Store {
	tb.Helper()
	c := sqlstore.Config{Dialect: sqlstore.SQLite, DSN: filepath.Join(sb.dir, "datastore.sqlite3")}
	if sb.pgDSN != "" {
		c = sqlstore.Config{Dialect: sqlstore.PostgreSQL, DSN: sb.pgDSN}
	}
	st, err := sqlstore.Open(tb.Context(), c)
	require.NoError(tb, err)
	return st
}

// admitAgent deletes the measuring agent's record, left by an earlier
// start, and returns a new join token that admits it.
func (sb *startBench) admitAgent(tb testing.TB) string {
	tb.Helper()
	st := sb.openStore(tb)
	defer func() { require.NoError(tb, st.Close()) }()
	if err := st.DeleteAgent(tb.Context(), sb.agentID); err != nil {
		require.ErrorIs(tb, err, registry.ErrNotFound)
	}
	token, _, err := jointoken.Generate(tb.Context(), st, jointoken.Params{AgentID: sb.agentID, TTL: time.Hour})
	require.NoError(tb, err)
	return token
}

// nodeEntry is the i-th entry of node n: a Kubernetes-like workload with
// a namespace selector shared by many entries and a service account one
// of its own.
func nodeEntry(n, i int) registry.Entry {
	ns := n % 100
	return registry.Entry{
		SPIFFEID: spiffeid.RequireFromPath(nodetest.TrustDomain, fmt.Sprintf("/ns/%d/sa/n%d-w%d", ns, n, i)),
		ParentID: nodeID(n),
		Selectors: []attest.Selector{
			{Type: "k8s", Value: "ns:" + strconv.Itoa(ns)},
			{Type: "k8s", Value: fmt.Sprintf("sa:n%d-w%d", n, i)},
		},
	}
}

// fillNodes writes scale's node entries in batches of registry.MaxBatch,
// from two goroutines so that one encodes while the other writes, and an
// agent record for each node.
func fillNodes(tb testing.TB, bc registry.BatchCreator, agents registry.AgentStore, scale startScale) {
	tb.Helper()
	ctx := tb.Context()
	var (
		mu       sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		mu.Lock()
		firstErr = cmp.Or(firstErr, err)
		mu.Unlock()
	}
	batches := make(chan []registry.Entry, 2)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for b := range batches {
				if err := createBatch(ctx, bc, b); err != nil {
					fail(err)
				}
			}
		})
	}
	batch := make([]registry.Entry, 0, registry.MaxBatch)
	for n := range scale.nodes {
		for i := range scale.perNode {
			batch = append(batch, nodeEntry(n, i))
			if len(batch) == registry.MaxBatch {
				batches <- batch
				batch = make([]registry.Entry, 0, registry.MaxBatch)
			}
		}
	}
	if len(batch) > 0 {
		batches <- batch
	}
	close(batches)
	wg.Wait()
	require.NoError(tb, firstErr)

	nodes := make(chan int)
	expires := time.Now().Add(time.Hour)
	for range 4 {
		wg.Go(func() {
			for i := range nodes {
				if _, err := agents.PutAgent(ctx, registry.Agent{
					ID: nodeID(i), AttestorType: "join_token",
					SerialNumber: strconv.FormatInt(int64(i)+1, 16), ExpiresAt: expires,
				}); err != nil {
					fail(err)
				}
			}
		})
	}
	for i := range scale.nodes {
		nodes <- i
	}
	close(nodes)
	wg.Wait()
	require.NoError(tb, firstErr)
}

// createBatch creates entries, which must all be new, in one batch.
func createBatch(ctx context.Context, bc registry.BatchCreator, entries []registry.Entry) error {
	res, err := bc.CreateBatch(ctx, entries)
	if err != nil {
		return err
	}
	for _, r := range res {
		if r.Err != nil {
			return r.Err
		}
	}
	return nil
}

func createAll(tb testing.TB, bc registry.BatchCreator, entries []registry.Entry) {
	tb.Helper()
	for len(entries) > 0 {
		k := min(len(entries), registry.MaxBatch)
		require.NoError(tb, createBatch(tb.Context(), bc, entries[:k]))
		entries = entries[k:]
	}
}

// pagedEntries is a store's entries without ScanEntries and CountEntries:
// a server on it builds its index by paging through List, as servers did
// before the SQL store could scan.
type pagedEntries struct {
	registry.Store
	registry.Notifier
}

// startServer starts an issuing server on the bench's registry, its state
// in the bench's directory, its index built by paging when paged is set.
// stop stops it and closes the store it opened.
func (sb *startBench) startServer(tb testing.TB, paged bool) (_ *nodetest.Server, stop func()) {
	tb.Helper()
	var (
		cfg server.Config
		st  *sqlstore.Store
	)
	if sb.pgDSN != "" || paged {
		st = sb.openStore(tb)
	}
	closeStore := func() error { return nil }
	if st != nil {
		closeStore = sync.OnceValue(st.Close)
		tb.Cleanup(func() { closeStore() }) // after the server stops, if stop is not called
		cfg.Stores = server.StoresOf(st)
		if paged {
			cfg.Stores.Entries = pagedEntries{st, st}
		}
	}
	srv := nodetest.StartServerIn(tb, sb.dir, cfg)
	return srv, func() {
		srv.Stop()
		require.NoError(tb, closeStore())
	}
}

// start starts a server on the filled registry (paged: see startServer)
// and a real agent once the server is ready, measures both, checks that the server indexed every
// entry and serves each node its own, and stops both.
func (sb *startBench) start(tb testing.TB, paged bool) startResult {
	tb.Helper()
	var r startResult
	token := sb.admitAgent(tb)
	rss0, heap0 := settle(tb)
	stopProfile := profileStart(tb, paged)
	cpu0 := cpuTime(tb)
	t0 := time.Now()
	srv, stop := sb.startServer(tb, paged)
	r.ready = time.Since(t0)
	r.readyCPU = cpuTime(tb) - cpu0
	stopProfile()
	a := nodetest.StartAgent(tb, agent.Config{
		TrustDomain:  srv.TrustDomain(),
		Servers:      []string{srv.Addr().String()},
		TrustBundle:  srv.Bundle().X509Bundle(),
		NodeAttestor: jointoken.NewClient(token),
	})
	waitSynced(tb, a, 5*time.Minute)
	r.synced = time.Since(t0)
	r.rss, r.peak = procMemory(tb)
	r.heap = int64(heapInUse()) - int64(heap0)
	tb.Logf("RSS before the start %d MiB", rss0>>20)

	require.Equal(tb, sb.scale.own, a.Stats().Entries, "the measuring agent's entries")
	sb.checkIndex(tb, srv)
	require.NoError(tb, a.Stop())
	stop()
	return r
}

// checkIndex checks that the server holds every entry of the registry,
// and that each node's are exactly those it was given.
func (sb *startBench) checkIndex(tb testing.TB, srv *nodetest.Server) {
	tb.Helper()
	idx := srv.Node().Index()
	require.Equal(tb, sb.scale.total(), idx.Len(), "entries indexed")
	for n := range sb.scale.nodes {
		got := idx.ForAgent(nodeID(n), nil)
		if len(got) != sb.scale.perNode {
			tb.Fatalf("node %d: %d entries, want %d", n, len(got), sb.scale.perNode)
		}
		want := make(map[spiffeid.ID]bool, sb.scale.perNode)
		for i := range sb.scale.perNode {
			want[nodeEntry(n, i).SPIFFEID] = true
		}
		for _, e := range got {
			if !want[e.SPIFFEID] || len(e.Selectors) != 2 {
				tb.Fatalf("node %d: unexpected entry %s (%d selectors)", n, e.SPIFFEID, len(e.Selectors))
			}
			delete(want, e.SPIFFEID)
		}
	}
	own := idx.ForAgent(sb.agentID, nil)
	require.Len(tb, own, sb.scale.own)
}

// profileStart starts a CPU profile of the start when
// $SPIFFEKIT_START_PROFILE names a file prefix, and returns what stops it
// and writes, beside it, the heap profile of the server just started:
// PREFIX.NAME.cpu and PREFIX.NAME.heap, NAME the benchmark's or test's
// and, for a paged start, "_pages".
func profileStart(tb testing.TB, paged bool) (stop func()) {
	tb.Helper()
	prefix := os.Getenv("SPIFFEKIT_START_PROFILE")
	if prefix == "" {
		return func() {}
	}
	name := prefix + "." + strings.ReplaceAll(tb.Name(), "/", "_")
	if paged {
		name += "_pages"
	}
	f, err := os.Create(name + ".cpu")
	require.NoError(tb, err)
	require.NoError(tb, pprof.StartCPUProfile(f))
	return func() {
		pprof.StopCPUProfile()
		require.NoError(tb, f.Close())
		h, err := os.Create(name + ".heap")
		require.NoError(tb, err)
		require.NoError(tb, pprof.WriteHeapProfile(h))
		require.NoError(tb, h.Close())
	}
}

// cpuTime returns the CPU time the process has used, user and system.
func cpuTime(tb testing.TB) time.Duration {
	tb.Helper()
	var ru syscall.Rusage
	require.NoError(tb, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// settle collects garbage and returns the freed memory to the system,
// resets the process's peak resident memory, and returns its resident
// memory and live heap.
func settle(tb testing.TB) (rss, heap uint64) {
	tb.Helper()
	heap = heapInUse()
	debug.FreeOSMemory()
	// Writing 5 resets VmHWM (proc(5), /proc/pid/clear_refs).
	require.NoError(tb, os.WriteFile("/proc/self/clear_refs", []byte("5"), 0))
	rss, _ = procMemory(tb)
	return rss, heap
}

// procMemory returns the process's resident memory and its peak, from
// /proc/self/status.
func procMemory(tb testing.TB) (rss, peak uint64) {
	tb.Helper()
	data, err := os.ReadFile("/proc/self/status")
	require.NoError(tb, err)
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		var kb uint64
		if n, _ := fmt.Sscanf(sc.Text(), "VmRSS: %d kB", &kb); n == 1 {
			rss = kb << 10
		}
		if n, _ := fmt.Sscanf(sc.Text(), "VmHWM: %d kB", &kb); n == 1 {
			peak = kb << 10
		}
	}
	require.NotZero(tb, rss)
	return rss, peak
}

// smallStart is the registry of the start test: small enough for every
// run, and three of the index's pages of 10,000 when it pages; 2,100
// entries under the race detector.
func smallStart() startScale {
	if raceEnabled {
		return startScale{nodes: 20, perNode: 100, own: 100}
	}
	return startScale{nodes: 200, perNode: 100, own: 100}
}

// Property: a server started on a registry of 20,100 entries (SQLite, and
// PostgreSQL), its index read in one pass or by pages, indexes every one
// of them, serves each node exactly its own, and a real agent attests and
// receives its 100.
func TestServerStartWithManyEntries(t *testing.T) {
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			sb := newStartBench(t, db == "postgres", smallStart())
			for _, paged := range []bool{false, true} {
				r := sb.start(t, paged)
				t.Logf("%d entries, paged %v: ready %s (CPU %s), agent synced %s, RSS %d MiB (peak %d MiB), heap +%d MiB",
					sb.scale.total(), paged, r.ready, r.readyCPU, r.synced, r.rss>>20, r.peak>>20, r.heap>>20)
			}
		})
	}
}

// BenchmarkServerStart1M starts an issuing server on a registry of
// 1,000,100 entries: 10,000 nodes with an agent record and 100 entries
// each, and the measuring agent's 100. The registry is filled once (not
// timed); each op starts a server on it, as a restart, then a real agent.
// In "scan" the server's index reads the store in one pass
// (sqlstore.ScanEntries), in "pages" it pages through List, as before.
// ready-s is the time from opening the store to server.New returning
// (entries loaded and indexed, agent records read, CA ready, listeners
// bound), ready-cpu-s the process's CPU time meanwhile; synced-s until the
// agent, started then, attested and holds its 100 entries; rss-MB the
// process's resident memory then (server and agent; the agent holds 100
// entries), peak-rss-MB its highest during the start, heap-MB the live
// heap the start added. $SPIFFEKIT_START_NODES sets another number of
// nodes; $SPIFFEKIT_START_PROFILE profiles each start (see profileStart);
// $SPIFFEKIT_START_DBS (sqlite,postgres) and $SPIFFEKIT_START_MODES
// (scan,pages) choose the stores and the starts, in order: "scan,scan"
// starts twice the same way, the second time on a table read once since
// it was filled (PostgreSQL sets each row's hint bits at its first read).
// Run with -benchtime=1x (or 3x) and -timeout 90m.
func BenchmarkServerStart1M(b *testing.B) {
	scale := startScale{nodes: 10000, perNode: 100, own: 100}
	if s := os.Getenv("SPIFFEKIT_START_NODES"); s != "" {
		n, err := strconv.Atoi(s)
		require.NoError(b, err)
		scale.nodes = n
	}
	dbs, modes := []string{"sqlite", "postgres"}, []string{"scan", "pages"}
	if s := os.Getenv("SPIFFEKIT_START_DBS"); s != "" {
		dbs = strings.Split(s, ",")
	}
	if s := os.Getenv("SPIFFEKIT_START_MODES"); s != "" {
		modes = strings.Split(s, ",")
	}
	for _, db := range dbs {
		require.Contains(b, []string{"sqlite", "postgres"}, db, "SPIFFEKIT_START_DBS")
		b.Run(db, func(b *testing.B) {
			sb := newStartBench(b, db == "postgres", scale)
			for _, mode := range modes {
				require.Contains(b, []string{"scan", "pages"}, mode, "SPIFFEKIT_START_MODES")
				b.Run(mode, func(b *testing.B) { benchmarkStart(b, sb, mode == "pages") })
			}
		})
	}
}

func benchmarkStart(b *testing.B, sb *startBench, paged bool) {
	var ready, readyCPU, synced, rss, peak, heap float64
	for range b.N {
		r := sb.start(b, paged)
		ready += r.ready.Seconds()
		readyCPU += r.readyCPU.Seconds()
		synced += r.synced.Seconds()
		rss += float64(r.rss) / (1 << 20)
		peak += float64(r.peak) / (1 << 20)
		heap += float64(r.heap) / (1 << 20)
	}
	n := float64(b.N)
	b.ReportMetric(ready/n, "ready-s")
	b.ReportMetric(readyCPU/n, "ready-cpu-s")
	b.ReportMetric(synced/n, "synced-s")
	b.ReportMetric(rss/n, "rss-MB")
	b.ReportMetric(peak/n, "peak-rss-MB")
	b.ReportMetric(heap/n, "heap-MB")
}
