package nodebench

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/workloadapi"
)

// idWatcher follows a workload's X.509 context and signals each update.
type idWatcher struct {
	mu     sync.Mutex
	ids    map[spiffeid.ID]bool
	update chan struct{}
}

func newIDWatcher() *idWatcher {
	return &idWatcher{ids: map[spiffeid.ID]bool{}, update: make(chan struct{}, 1)}
}

func (w *idWatcher) OnX509ContextUpdate(c *workloadapi.X509Context) {
	ids := make(map[spiffeid.ID]bool, len(c.SVIDs))
	for _, s := range c.SVIDs {
		ids[s.ID] = true
	}
	w.mu.Lock()
	w.ids = ids
	w.mu.Unlock()
	select {
	case w.update <- struct{}{}:
	default:
	}
}

func (w *idWatcher) OnX509ContextWatchError(error) {}

func (w *idWatcher) has(id spiffeid.ID) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ids[id]
}

// waitUntil waits for an update after which has(id) == want.
func (w *idWatcher) waitUntil(tb testing.TB, id spiffeid.ID, want bool, limit time.Duration) {
	tb.Helper()
	t := time.NewTimer(limit)
	defer t.Stop()
	for w.has(id) != want {
		select {
		case <-w.update:
		case <-t.C:
			tb.Fatalf("%s held=%v: not within %s", id, want, limit)
		}
	}
}

// latencySetup is a server with a SQLite registry on disk and the given
// poll interval, a real agent, and a workload watching its X.509 context
// through the agent.
type latencySetup struct {
	e     *env
	agent spiffeid.ID
	w     *idWatcher
	n     int
}

func newLatencySetup(tb testing.TB, poll time.Duration) *latencySetup {
	tb.Helper()
	e := newEnv(tb, envConfig{PollInterval: poll})
	a := e.newAgent(tb, nil)
	// A base entry keeps the workload's stream open between iterations.
	createEntries(tb, e.store, a.ID(), "/base", 1, ourUID)
	waitSynced(tb, a, 30*time.Second)
	waitFor(tb, 30*time.Second, "the agent holds the base entry", func() bool { return a.Stats().Entries == 1 })
	return &latencySetup{e: e, agent: a.ID(), w: watchWorkload(tb, a.Addr)}
}

// watchWorkload follows the X.509 context of this process, as a workload,
// through the agent serving addr, until the test ends; it returns once the
// first context arrived.
func watchWorkload(tb testing.TB, addr string) *idWatcher {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c, err := workloadapi.New(ctx, workloadapi.WithAddr(addr))
	require.NoError(tb, err)
	w := newIDWatcher()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.WatchX509Context(ctx, w)
	}()
	tb.Cleanup(func() {
		cancel()
		<-done
		c.Close()
	})
	select {
	case <-w.update:
	case <-time.After(30 * time.Second):
		tb.Fatal("the workload got no X.509 context")
	}
	return w
}

// once creates an entry for the workload in the store, waits until the
// workload holds its SVID and returns how long that took. The store tells
// the server of the write. It then deletes the entry and waits for the
// workload to lose it, untimed.
func (s *latencySetup) once(tb testing.TB) time.Duration {
	tb.Helper()
	s.n++
	return s.w.timeEntry(tb, fmt.Sprintf("/late/%d", s.n), s.agent, s.e.store.Create, s.e.store.Delete)
}

// timeEntry creates, with create, an entry of path for the workload w
// watches, parented to agent; waits until the workload holds its SVID and
// returns how long that took. It then deletes the entry, with del, and
// waits for the workload to lose it, untimed.
func (w *idWatcher) timeEntry(tb testing.TB, path string, agent spiffeid.ID,
	create func(context.Context, registry.Entry) (registry.Entry, error),
	del func(ctx context.Context, id string, revision int64) (registry.Entry, error),
) time.Duration {
	tb.Helper()
	id := spiffeid.RequireFromPath(td, path)
	start := time.Now()
	en, err := create(tb.Context(), registry.Entry{SPIFFEID: id, ParentID: agent, Selectors: []attest.Selector{ourUID}})
	require.NoError(tb, err)
	w.waitUntil(tb, id, true, 30*time.Second)
	took := time.Since(start)
	_, err = del(tb.Context(), en.ID, en.Revision)
	require.NoError(tb, err)
	w.waitUntil(tb, id, false, 30*time.Second)
	return took
}

// Property: a write reaches the workload through the store's notification
// alone: the server's poll is an hour long.
func TestEntryReachesWorkload(t *testing.T) {
	s := newLatencySetup(t, time.Hour)
	var d durations
	for range 3 {
		d.add(s.once(t))
	}
	require.Len(t, d.d, 3)
}

// BenchmarkEntryToWorkload measures the time from an entry written to the
// SQLite registry to a workload, already connected to the agent, holding
// its SVID: the store's notification, the server's change feed read, the
// entry stream, the agent's pre-mint (a signing round trip) and the
// Workload API stream. One op is one entry; run with -benchtime=50x.
func BenchmarkEntryToWorkload(b *testing.B) {
	measure(b, newLatencySetup(b, 0).once)
}
