package agent_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/jointoken"
	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/workloadapi"
)

// startLaggingServer starts a server on m and store that serves agents but
// does not run Run: it indexes the store once, now, and reads none of its
// later changes by itself, as a server does between two reads of the
// change feed when another server wrote. It stops when the test ends.
func startLaggingServer(t *testing.T, m *rotation.Manager, store *memstore.Store) string {
	t.Helper()
	jt, err := jointoken.NewServer(jointoken.ServerConfig{Store: store})
	require.NoError(t, err)
	srv, err := nodeapi.NewServer(t.Context(), nodeapi.ServerConfig{
		Authority: m,
		Registry:  store,
		Agents:    store,
		Attestors: []attest.NodeAttestor{jt},
	})
	require.NoError(t, err)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-served)
		require.NoError(t, srv.Close())
	})
	return lis.Addr().String()
}

// streamWatcher records what a Workload API watch stream receives.
type streamWatcher struct {
	updates chan *workloadapi.X509Context
	errs    chan error
}

func (w streamWatcher) OnX509ContextUpdate(c *workloadapi.X509Context) {
	select {
	case w.updates <- c:
	default:
	}
}

func (w streamWatcher) OnX509ContextWatchError(err error) {
	select {
	case w.errs <- err:
	default:
	}
}

// Property: an agent that fails over to a server which has not yet read
// the entries the other server gave it (servers sharing a store read each
// other's writes from its change feed, at their next poll or notification)
// refuses none of its workloads meanwhile: a stream open across the
// failover stays open, and a fetch after it gets the SVID.
func TestFailoverToAServerBehindTheStoreRefusesNoWorkload(t *testing.T) {
	store := memstore.New(memstore.Config{})
	m := newRotation(t)
	s1 := nodetest.StartNodeServer(t, nodetest.NodeConfig{CA: m, Store: store})
	s2 := startLaggingServer(t, m, store) // will never read /web by itself
	cfg := s1.AgentConfig(t)
	cfg.Servers = []string{s1.Addr, s2}
	a := nodetest.StartAgent(t, cfg)
	web := s1.Register(t, a.ID(), "/web")
	a.WaitSynced(t)
	require.Eventually(t, func() bool { return a.Stats().Entries == 1 }, 20*time.Second, 20*time.Millisecond)
	require.Equal(t, web.SPIFFEID, a.FetchX509SVID(t).ID)

	w := streamWatcher{updates: make(chan *workloadapi.X509Context, 16), errs: make(chan error, 16)}
	ctx, cancel := context.WithCancel(t.Context())
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		_ = workloadapi.WatchX509Context(ctx, w, workloadapi.WithAddr(a.Addr))
	}()
	defer func() { cancel(); <-watched }()
	select {
	case c := <-w.updates:
		require.Equal(t, web.SPIFFEID, c.DefaultSVID().ID)
	case err := <-w.errs:
		t.Fatalf("the stream failed before the failover: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the stream sent nothing within 10s")
	}

	syncs := a.Stats().Syncs
	s1.Stop()
	require.Eventually(t, func() bool { st := a.Stats(); return st.Connected && st.Syncs > syncs },
		30*time.Second, 10*time.Millisecond, "the agent did not sync with the second server")

	svid, err := fetch(t, a.Addr)
	require.NoError(t, err, "a workload whose entry the agent held is refused after the failover")
	assert.Equal(t, web.SPIFFEID, svid)
	assert.Equal(t, 1, a.Stats().Entries)
	select {
	case err := <-w.errs:
		t.Fatalf("the stream open across the failover failed: %v", err)
	default:
	}
}

// fetch fetches the caller's X509-SVID from the agent at addr and returns
// its ID, or the error.
func fetch(t *testing.T, addr string) (spiffeid.ID, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	svid, err := workloadapi.FetchX509SVID(ctx, workloadapi.WithAddr(addr))
	if err != nil {
		return spiffeid.ID{}, err
	}
	return svid.ID, nil
}
