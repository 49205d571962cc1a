package nodebench

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/agent"
	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/jointoken"
	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/server"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

// Environment of BenchmarkFleet.
const (
	// envFleet lists the fleet sizes to run, in agents: "1k,3k,10k".
	// Unset: one small fleet.
	envFleet = "SPIFFEKIT_FLEET"
	// envFleetIdle is the steady-state window (a duration); unset: 30 s.
	envFleetIdle = "SPIFFEKIT_FLEET_IDLE"
	// envFleetChanges is the number of entry changes timed; unset: 200.
	envFleetChanges = "SPIFFEKIT_FLEET_CHANGES"
	// envFleetProfile, when set, is a directory where the server process
	// writes CPU profiles of each phase and a heap profile at steady state.
	envFleetProfile = "SPIFFEKIT_FLEET_PROFILE"
)

// fleetConfig is one run of the fleet.
type fleetConfig struct {
	Agents, PerAgent int
	// Idle is the steady-state window.
	Idle time.Duration
	// Changes is the number of entry changes made, one after the other.
	Changes int
	// Profile, when not empty, is the directory of the server's profiles.
	Profile string
}

// fleetResult is what one run of the fleet measured.
type fleetResult struct {
	Populate time.Duration // tokens and entries written to SQLite
	Start    time.Duration // server process started until it serves
	Attest   time.Duration // every agent attested, with a join token
	Synced   time.Duration // every entry stream opened until every agent holds all its entries

	Idle      time.Duration // the steady-state window
	Queries   queryCounts   // the server's datastore queries during Idle
	ServerCPU time.Duration // the server process's CPU time during Idle
	// IdleGCs and IdleGCCPU are the server's garbage collections during
	// Idle and their CPU time.
	IdleGCs   uint32
	IdleGCCPU time.Duration
	AgentsCPU time.Duration // the test process's (the agents') CPU time during Idle
	Server    fleetStats    // after Idle, the live heap after a collection
	AgentsRSS uint64

	Changes                         int
	ChangeP50, ChangeP99, ChangeMax time.Duration

	StormStop   time.Duration  // the server's graceful stop
	StormStart  time.Duration  // the new server process started until it serves
	StormResync time.Duration  // from then until every agent holds a new entry stream
	StormP50    time.Duration  // the same for half the agents
	StormCPU    time.Duration  // the new server's CPU time from serving until StormResync
	DownErrors  map[string]int // entry stream failures while no server served, by gRPC code
	StormErrors map[string]int // the same from the new server on
	// StormMessages are a few of the messages of StormErrors.
	StormMessages []string
}

// simAgent is a simulated agent: its node protocol client, and the
// revisions of the entries it holds.
type simAgent struct {
	id    spiffeid.ID
	token string
	cli   *nodeapi.Client
	first string // the ID of one of its entries, which the changes change

	known map[string]int64 // used by its run goroutine only
	// upEpoch is the fleet's epoch when one of its streams last brought it
	// every entry.
	upEpoch atomic.Int64
	upAt    atomic.Int64 // when, in Unix nanoseconds
	// watch, when set, is told when an upsert of its entry arrives.
	watch atomic.Pointer[simWatch]
}

// simWatch waits for an upsert of one entry.
type simWatch struct {
	id string
	at chan time.Time // capacity 1
}

// streamError is one end of an entry stream.
type streamError struct {
	at   time.Time
	code codes.Code
	msg  string
}

// fleet is the simulated agents of a run.
type fleet struct {
	perAgent int
	agents   []*simAgent
	epoch    atomic.Int64

	mu   sync.Mutex
	errs []streamError
}

// run keeps a's entry stream open as the node agent does (agent.syncLoop):
// it sends what it holds, applies each update, and reconnects after a
// jittered exponential backoff, from agent.DefaultRetryMin to
// agent.DefaultRetryMax, reset by a stream that brought an update.
func (f *fleet) run(ctx context.Context, a *simAgent) {
	wait := agent.DefaultRetryMin
	for ctx.Err() == nil {
		full := false
		err := a.cli.Sync(ctx, a.known, func(u nodeapi.Update) error {
			for _, e := range u.Upserts {
				a.known[e.ID] = e.Revision
			}
			for _, id := range u.Deleted {
				delete(a.known, id)
			}
			if w := a.watch.Load(); w != nil {
				for _, e := range u.Upserts {
					if e.ID == w.id {
						select {
						case w.at <- time.Now():
						default:
						}
					}
				}
			}
			if !full && len(a.known) == f.perAgent {
				full = true
				a.upAt.Store(time.Now().UnixNano())
				a.upEpoch.Store(f.epoch.Load())
			}
			return nil
		})
		if ctx.Err() != nil {
			return
		}
		f.mu.Lock()
		f.errs = append(f.errs, streamError{at: time.Now(), code: status.Code(err), msg: err.Error()})
		f.mu.Unlock()
		if full {
			wait = agent.DefaultRetryMin
		}
		d := wait/2 + time.Duration(mrand.Int64N(int64(wait)+1))
		wait = min(wait*2, agent.DefaultRetryMax)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// errors returns the stream failures between from and to, by code, with
// a few of their messages, and forgets those before to.
func (f *fleet) errors(from, to time.Time) (map[string]int, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int{}
	var msgs []string
	keep := f.errs[:0]
	for _, e := range f.errs {
		switch {
		case e.at.Before(from):
		case e.at.Before(to):
			out[e.code.String()]++
			if len(msgs) < 3 && !slices.Contains(msgs, e.msg) {
				msgs = append(msgs, e.msg)
			}
		default:
			keep = append(keep, e)
		}
	}
	f.errs = keep
	return out, msgs
}

// waitUp waits until every agent holds all its entries through a stream
// opened in the current epoch, or limit passes.
func (f *fleet) waitUp(tb testing.TB, limit time.Duration) {
	tb.Helper()
	epoch := f.epoch.Load()
	waitFor(tb, limit, "every agent synced", func() bool {
		for _, a := range f.agents {
			if a.upEpoch.Load() < epoch {
				return false
			}
		}
		return true
	})
}

func fleetAgentID(i int) spiffeid.ID {
	return spiffeid.RequireFromPath(td, fmt.Sprintf("/spiffekit/agent/fleet/%d", i))
}

// agentOf returns the number of the agent with ID id (see fleetAgentID).
func agentOf(id spiffeid.ID) int {
	i, err := strconv.Atoi(strings.TrimPrefix(id.Path(), "/spiffekit/agent/fleet/"))
	if err != nil {
		panic(fmt.Sprintf("not a fleet agent: %s", id)) // the fleet's own IDs only
	}
	return i
}

// runFleet runs the fleet of cfg against an issuing server in a process of
// its own, with its SQLite database in memory (/dev/shm):
//
//  1. writes, before the server starts, a join token for each agent and
//     PerAgent entries parented by each agent's ID;
//  2. starts the server, attests every agent with its token (the node
//     protocol, concurrently), then opens every agent's entry stream at
//     once, each on its own mutual TLS connection, and waits until every
//     agent holds all its entries;
//  3. measures, over cfg.Idle, the server's datastore queries and the CPU
//     time of both processes, then the server's memory;
//  4. changes cfg.Changes entries through the admin API, one after the
//     other, each of a random agent, timing each until its agent receives
//     it;
//  5. stops the server and starts it again on the same data directory and
//     address while every agent reconnects, and times until every agent
//     holds a new stream.
func runFleet(tb testing.TB, cfg fleetConfig) fleetResult {
	tb.Helper()
	require.NoError(tb, raiseFileLimit())
	require.LessOrEqual(tb, cfg.PerAgent, registry.MaxBatch, "an agent's entries are written in one batch")
	ctx := tb.Context()
	var r fleetResult
	dir := shmDir(tb)
	adminSocket := filepath.Join(dir, "admin.sock")

	// 1. The registry, written before the server starts.
	f := &fleet{perAgent: cfg.PerAgent, agents: make([]*simAgent, cfg.Agents)}
	start := time.Now()
	{
		base, st, err := server.OpenSQLite(ctx, td, dir)
		require.NoError(tb, err)
		var batch []registry.Entry // the entries of several agents, written together
		write := func() {
			res, err := st.CreateBatch(ctx, batch)
			require.NoError(tb, err)
			for k, r := range res {
				require.NoError(tb, r.Err)
				if k%cfg.PerAgent == 0 {
					f.agents[agentOf(r.Entry.ParentID)].first = r.Entry.ID
				}
			}
			batch = batch[:0]
		}
		for i := range f.agents {
			id := fleetAgentID(i)
			tok, _, err := jointoken.Generate(ctx, st, jointoken.Params{AgentID: id, TTL: time.Hour})
			require.NoError(tb, err)
			f.agents[i] = &simAgent{id: id, token: tok, known: make(map[string]int64, cfg.PerAgent)}
			if len(batch)+cfg.PerAgent > registry.MaxBatch {
				write()
			}
			for j := range cfg.PerAgent {
				batch = append(batch, registry.Entry{
					SPIFFEID: spiffeid.RequireFromPath(td, fmt.Sprintf("/fleet/%d/w%d", i, j)), ParentID: id,
					Selectors: []attest.Selector{ourUID},
				})
			}
		}
		write()
		require.NoError(tb, st.Close())
		require.NoError(tb, base.DataDirLock.Close())
	}
	r.Populate = time.Since(start)

	// 2. The server, the attestations and the sync.
	srv := startFleetServer(tb, dir, "127.0.0.1:0", adminSocket)
	r.Start = srv.ready
	profile := func(srv *fleetServer, name string) {
		if cfg.Profile != "" {
			srv.command(tb, "cpu "+filepath.Join(cfg.Profile, fmt.Sprintf("cpu-%s-%d.pprof", name, cfg.Agents)))
		}
	}
	profileStop := func(srv *fleetServer) {
		if cfg.Profile != "" {
			srv.command(tb, "cpustop")
		}
	}
	adm := admin.Dial(adminSocket)
	defer adm.Close()
	pem, err := adm.Bundle(ctx, admin.FormatPEM)
	require.NoError(tb, err)
	bundle, err := x509bundle.Parse(td, pem)
	require.NoError(tb, err)
	ccfg := nodeapi.ClientConfig{Servers: []string{srv.addr}, TrustDomain: td, Bundle: bundle}

	profile(srv, "attest")
	start = time.Now()
	attestAll(tb, ccfg, f.agents)
	r.Attest = time.Since(start)
	profileStop(srv)

	simCtx, cancel := context.WithCancel(context.Background())
	var sims sync.WaitGroup
	defer func() {
		cancel()
		sims.Wait()
		for _, a := range f.agents {
			if a.cli != nil {
				a.cli.Close()
			}
		}
	}()
	profile(srv, "sync")
	f.epoch.Store(1)
	start = time.Now()
	for _, a := range f.agents {
		sims.Go(func() { f.run(simCtx, a) })
	}
	f.waitUp(tb, 15*time.Minute)
	r.Synced = time.Since(start)
	profileStop(srv)

	// 3. Steady state: no change, every stream open. The reads of the
	// agent records the attestations caused are spaced (see
	// agentcache.Reloader); they are over after a few seconds.
	time.Sleep(3 * time.Second)
	profile(srv, "idle")
	before, agentsBefore := srv.stats(tb, false), processCPU()
	start = time.Now()
	time.Sleep(cfg.Idle)
	after, agentsAfter := srv.stats(tb, false), processCPU()
	r.Idle = time.Since(start)
	profileStop(srv)
	r.Queries = after.Queries.sub(before.Queries)
	r.ServerCPU, r.AgentsCPU = after.CPU-before.CPU, agentsAfter-agentsBefore
	r.IdleGCs, r.IdleGCCPU = after.GCs-before.GCs, after.GCCPU-before.GCCPU
	r.Server = srv.stats(tb, true)
	r.AgentsRSS, _ = procStatus(os.Getpid())
	if cfg.Profile != "" {
		srv.command(tb, "heap "+filepath.Join(cfg.Profile, fmt.Sprintf("heap-steady-%d.pprof", cfg.Agents)))
	}
	require.Equal(tb, cfg.Agents, r.Server.Streams, "open entry streams at steady state")

	// 4. Changes, one at a time.
	profile(srv, "changes")
	var lat durations
	for k := range cfg.Changes {
		a := f.agents[mrand.IntN(len(f.agents))]
		e, err := adm.Entry(ctx, a.first)
		require.NoError(tb, err)
		e.Hint = "change " + strconv.Itoa(k)
		w := &simWatch{id: e.ID, at: make(chan time.Time, 1)}
		a.watch.Store(w)
		start := time.Now()
		_, err = adm.UpdateEntry(ctx, e)
		require.NoError(tb, err)
		select {
		case at := <-w.at:
			lat.add(at.Sub(start))
		case <-time.After(time.Minute):
			tb.Fatalf("change %d of entry %s: not at agent %s within a minute", k, e.ID, a.id)
		}
		a.watch.Store(nil)
	}
	profileStop(srv)
	r.Changes = len(lat.d)
	r.ChangeP50, r.ChangeP99, r.ChangeMax = lat.percentile(50), lat.percentile(99), lat.percentile(100)

	// 5. The reconnect storm: the server stops, every stream ends, and a
	// new server process on the same data directory and address takes
	// them all back at once.
	start = time.Now()
	srv.stop(tb)
	r.StormStop = time.Since(start)
	f.epoch.Add(1)
	srv = startFleetServer(tb, dir, srv.addr, adminSocket)
	r.StormStart = srv.ready
	profile(srv, "storm")
	served := srv.started.Add(srv.ready)
	cpu := srv.stats(tb, false).CPU
	f.waitUp(tb, 15*time.Minute)
	r.StormResync = time.Since(served)
	r.StormCPU = srv.stats(tb, false).CPU - cpu
	profileStop(srv)
	var up durations
	for _, a := range f.agents {
		up.add(time.Unix(0, a.upAt.Load()).Sub(served))
	}
	r.StormP50 = up.percentile(50)
	r.DownErrors, _ = f.errors(time.Time{}, served)
	r.StormErrors, r.StormMessages = f.errors(served, time.Now())
	srv.stop(tb)
	return r
}

// attestAll attests every agent with its join token, a few at a time, and
// dials its client with the SVID it received.
func attestAll(tb testing.TB, cfg nodeapi.ClientConfig, agents []*simAgent) {
	tb.Helper()
	work := make(chan *simAgent)
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	for range 8 {
		wg.Go(func() {
			for a := range work {
				key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				if err == nil {
					var svid *nodeapi.AgentSVID
					if svid, err = nodeapi.Attest(tb.Context(), cfg, jointoken.NewClient(a.token), key); err == nil {
						a.cli, err = nodeapi.Dial(cfg, svidSource{&x509svid.SVID{ID: svid.ID, Certificates: svid.Certificates, PrivateKey: key}})
					}
				}
				if err != nil {
					err = fmt.Errorf("agent %s: %w", a.id, err)
					failed.CompareAndSwap(nil, &err)
				}
			}
		})
	}
	for _, a := range agents {
		if failed.Load() != nil {
			break
		}
		work <- a
	}
	close(work)
	wg.Wait()
	if err := failed.Load(); err != nil {
		tb.Fatal(*err)
	}
}

// processCPU returns the user and system CPU time of the test process.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (q queryCounts) total() int64 {
	return q.Head + q.Changes + q.List + q.Get + q.ListAgents + q.GetAgent + q.PutAgent
}

// TestFleet runs a small fleet: 50 agents with 10 entries each, against a
// server in a process of its own. Every agent syncs; at steady state the
// server reads nothing on behalf of an agent; each change reaches its
// agent; after the server restarts, every agent reconnects, and no stream
// fails other than as Unavailable.
func TestFleet(t *testing.T) {
	// Registered first, so checked last: after the server process and
	// the agents have stopped.
	t.Cleanup(leaktest.Check(t))
	const window = time.Second
	r := runFleet(t, fleetConfig{Agents: 50, PerAgent: 10, Idle: window, Changes: 10})
	// The server's own periodic reads only (the change feed and the agent
	// records, once per 30 s poll): none for an agent, however many.
	assert.Zero(t, r.Queries.List)
	assert.Zero(t, r.Queries.Get)
	assert.Zero(t, r.Queries.GetAgent)
	assert.Zero(t, r.Queries.PutAgent)
	assert.Zero(t, r.Queries.Head)
	polls := int64(r.Idle/server.DefaultPollInterval) + 2
	assert.LessOrEqual(t, r.Queries.Changes, polls)
	assert.LessOrEqual(t, r.Queries.ListAgents, polls)
	assert.Equal(t, 10, r.Changes)
	for code := range r.StormErrors {
		assert.Equal(t, codes.Unavailable.String(), code, "a stream failed otherwise than as Unavailable after the restart")
	}
	for code := range r.DownErrors {
		assert.Equal(t, codes.Unavailable.String(), code, "a stream failed otherwise than as Unavailable during the restart")
	}
	t.Log(r.summary(50))
}

// fleetSizes returns the fleet sizes envFleet asks for ("1k,3k,10k"), or
// 100 agents when it is unset.
func fleetSizes(tb testing.TB) []int {
	tb.Helper()
	v := os.Getenv(envFleet)
	if v == "" {
		return []int{100}
	}
	var out []int
	for s := range strings.SplitSeq(v, ",") {
		s = strings.TrimSpace(s)
		mult := 1
		if n, ok := strings.CutSuffix(s, "k"); ok {
			s, mult = n, 1000
		}
		n, err := strconv.Atoi(s)
		require.NoError(tb, err, "%s=%q: want agent counts such as 1k,3k,10k", envFleet, v)
		require.Positive(tb, n)
		out = append(out, n*mult)
	}
	return out
}

// BenchmarkFleet runs fleets of simulated agents with 100 entries each
// (see runFleet) of the sizes SPIFFEKIT_FLEET lists (1k,3k,10k; unset:
// 100 agents), over a steady-state window of SPIFFEKIT_FLEET_IDLE (30 s)
// and SPIFFEKIT_FLEET_CHANGES changes (200). With SPIFFEKIT_FLEET_PROFILE
// set to a directory, the server writes its profiles there. Run with
// -benchtime=1x; every figure is also logged.
func BenchmarkFleet(b *testing.B) {
	idle, changes := 30*time.Second, 200
	if v := os.Getenv(envFleetIdle); v != "" {
		d, err := time.ParseDuration(v)
		require.NoError(b, err, envFleetIdle)
		idle = d
	}
	if v := os.Getenv(envFleetChanges); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(b, err, envFleetChanges)
		changes = n
	}
	profile := os.Getenv(envFleetProfile)
	if profile != "" {
		require.NoError(b, os.MkdirAll(profile, 0o755))
	}
	for _, n := range fleetSizes(b) {
		b.Run("agents="+strconv.Itoa(n), func(b *testing.B) {
			b.Cleanup(leaktest.Check(b)) // checked last, after the server process stopped
			for range b.N {
				r := runFleet(b, fleetConfig{Agents: n, PerAgent: 100, Idle: idle, Changes: changes, Profile: profile})
				b.Log(r.summary(n))
				b.ReportMetric(r.Synced.Seconds(), "synced-s")
				b.ReportMetric(float64(r.Queries.total())/r.Idle.Seconds()/float64(n), "queries/s/agent")
				b.ReportMetric(100*r.ServerCPU.Seconds()/r.Idle.Seconds(), "server-cpu-%")
				b.ReportMetric(ms(r.ChangeP99), "change-p99-ms")
				b.ReportMetric(float64(r.Server.RSS)/(1<<20), "server-rss-MB")
				b.ReportMetric(r.StormResync.Seconds(), "storm-s")
				failures := 0
				for code, c := range r.StormErrors {
					if code != codes.Unavailable.String() {
						failures += c
					}
				}
				b.ReportMetric(float64(failures), "storm-failures")
			}
		})
	}
}

// summary is every figure of r, for the log.
func (r fleetResult) summary(agents int) string {
	var s strings.Builder
	mb := func(n uint64) string { return fmt.Sprintf("%.0f MB", float64(n)/(1<<20)) }
	fmt.Fprintf(&s, "fleet of %d agents (RLIMIT_NOFILE %d): populate %.1fs, server start %.2fs, attest %.1fs, all synced %.2fs\n",
		agents, fileLimit(), r.Populate.Seconds(), r.Start.Seconds(), r.Attest.Seconds(), r.Synced.Seconds())
	fmt.Fprintf(&s, "steady state over %.1fs: queries %+v (%d in all, %.2g/s/agent); server CPU %.2fs (%.2f%% of a core); agents' CPU %.2fs (%.1f%%)\n",
		r.Idle.Seconds(), r.Queries, r.Queries.total(), float64(r.Queries.total())/r.Idle.Seconds()/float64(agents),
		r.ServerCPU.Seconds(), 100*r.ServerCPU.Seconds()/r.Idle.Seconds(), r.AgentsCPU.Seconds(), 100*r.AgentsCPU.Seconds()/r.Idle.Seconds())
	fmt.Fprintf(&s, "server garbage collections in the steady state: %d, %.2fs of CPU\n", r.IdleGCs, r.IdleGCCPU.Seconds())
	fmt.Fprintf(&s, "server memory: RSS %s (peak %s), live heap %s, heap obtained %s, %d goroutines, %d streams; agents' process RSS %s\n",
		mb(r.Server.RSS), mb(r.Server.PeakRSS), mb(r.Server.LiveHeap), mb(r.Server.HeapSys), r.Server.Goroutines, r.Server.Streams, mb(r.AgentsRSS))
	fmt.Fprintf(&s, "%d changes: p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", r.Changes, ms(r.ChangeP50), ms(r.ChangeP99), ms(r.ChangeMax))
	fmt.Fprintf(&s, "storm: stop %.2fs, start %.2fs, then half the agents resynced in %.2fs, all in %.2fs (server CPU %.2fs); stream ends while away %v, after %v",
		r.StormStop.Seconds(), r.StormStart.Seconds(), r.StormP50.Seconds(), r.StormResync.Seconds(), r.StormCPU.Seconds(),
		sortedCounts(r.DownErrors), sortedCounts(r.StormErrors))
	for _, m := range r.StormMessages {
		fmt.Fprintf(&s, "\n  after: %s", m)
	}
	return s.String()
}

func sortedCounts(m map[string]int) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s:%d", k, v))
	}
	slices.Sort(parts)
	return "[" + strings.Join(parts, " ") + "]"
}
