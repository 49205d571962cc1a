package agent_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/workloadapi"
)

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
	s2 := nodetest.StartNodeServer(t, nodetest.NodeConfig{CA: m, Store: store, ServeOnly: true}) // will never read /web by itself
	cfg := s1.AgentConfig(t)
	cfg.Servers = []string{s1.Addr, s2.Addr}
	a := nodetest.StartAgent(t, cfg)
	web := s1.Register(t, a.ID(), "/web")
	a.WaitSynced(t)
	require.Eventually(t, func() bool { return a.Stats().Entries == 1 }, 20*time.Second, 20*time.Millisecond)
	require.Equal(t, web.SPIFFEID, a.WaitSVID(t, web.SPIFFEID).ID) // held is not yet served

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
