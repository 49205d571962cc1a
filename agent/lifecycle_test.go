package agent_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/agent"
	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/unix"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/workloadapi"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

func TestNewStartsNothing(t *testing.T) {
	s := startServer(t)
	cfg := nodetest.AgentDefaults(t, s.AgentConfig(t))
	lis := cfg.Listener
	before := goleak.IgnoreCurrent()
	a, err := agent.New(t.Context(), cfg)
	require.NoError(t, err)
	leaktest.VerifyNone(t, before)
	assert.Zero(t, a.ID(), "nothing attested before Run")
	assert.Nil(t, a.SVID())
	_, err = a.GetX509SVID()
	assert.EqualError(t, err, "agent: not attested yet")
	assert.Zero(t, a.Stats())

	// Close without Run releases the listener the agent owns, and Run
	// after Close fails.
	require.NoError(t, a.Close())
	require.NoError(t, a.Close(), "Close is idempotent")
	_, err = lis.Accept()
	require.ErrorIs(t, err, net.ErrClosed)
	require.ErrorContains(t, a.Run(t.Context()), "agent: closed")
}

// TestNewFailureClosesListener: the agent owns Config.Listener from New,
// so a New that fails closes it rather than leaving the socket open.
func TestNewFailureClosesListener(t *testing.T) {
	lis, err := endpoint.ListenUnix(t.TempDir()+"/api.sock", 0o700)
	require.NoError(t, err)
	users, err := unix.New(unix.Config{})
	require.NoError(t, err)
	_, err = agent.New(t.Context(), agent.Config{
		TrustDomain:       spiffeid.RequireTrustDomainFromString("example.org"),
		Servers:           []string{"127.0.0.1:1"},
		WorkloadAttestors: []attest.WorkloadAttestor{users},
		Listener:          lis,
	})
	require.ErrorIs(t, err, agent.ErrNoNodeAttestor)
	_ = lis.SetDeadline(time.Now().Add(5 * time.Second)) // an open listener fails the test, not hangs it
	_, err = lis.Accept()
	require.ErrorIs(t, err, net.ErrClosed)
}

func TestRunOnceAndCloseStopsIt(t *testing.T) {
	s := startServer(t)
	a, err := agent.New(t.Context(), nodetest.AgentDefaults(t, s.AgentConfig(t)))
	require.NoError(t, err)
	ran := make(chan error, 1)
	go func() { ran <- a.Run(context.Background()) }()
	<-a.Synced()
	require.ErrorContains(t, a.Run(t.Context()), "Run called twice")

	// Concurrent Closes both wait for Run: once they return, the entry
	// stream Run kept open is closed. Run returns nil; the goroutine that
	// called it may still be on its way to report it.
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { assert.NoError(t, a.Close()) })
	}
	wg.Wait()
	assert.False(t, a.Stats().Connected, "Close returned while Run still synced")
	select {
	case err := <-ran:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after Close")
	}
}

func TestNoNodeAttestor(t *testing.T) {
	s := startServer(t)

	// Nothing saved to reuse: New says so.
	cfg := s.AgentConfig(t)
	cfg.NodeAttestor = nil
	_, err := agent.New(t.Context(), nodetest.AgentDefaults(t, cfg))
	require.ErrorIs(t, err, agent.ErrNoNodeAttestor)

	// A restart with a saved SVID needs no node attestor.
	dir := t.TempDir()
	first := newAgent(t, s, dir)
	id := first.ID()
	require.NoError(t, first.Close())
	logs := &logtest.Buffer{}
	a := nodetest.StartAgent(t, agent.Config{Servers: []string{s.Addr}, DataDir: dir, Logger: logs.Logger()})
	assert.Equal(t, id, a.ID())
	web := s.Register(t, a.ID(), "/web")
	a.WaitSynced(t)
	require.Eventually(t, func() bool { return a.Stats().Entries == 1 }, 20*time.Second, 20*time.Millisecond)
	assert.Equal(t, web.SPIFFEID, a.WaitSVID(t, web.SPIFFEID).ID) // held is not yet served

	// Evicted, it cannot attest again: it says why, and keeps serving.
	require.NoError(t, s.Store.DeleteAgent(t.Context(), a.ID()))
	require.Eventually(t, func() bool { return logs.Contains("attesting again is impossible") }, 20*time.Second, 20*time.Millisecond)
	assert.True(t, logs.Contains(agent.ErrNoNodeAttestor.Error()))
	assert.Equal(t, web.SPIFFEID, a.FetchX509SVID(t).ID)
	require.NoError(t, a.Close())

	// A saved SVID that expires between New and Run: Run says so.
	var skew atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	b, err := agent.New(t.Context(), nodetest.AgentDefaults(t, agent.Config{Servers: []string{s.Addr}, DataDir: dir, Now: now}))
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	skew.Store(int64(24 * time.Hour))
	require.ErrorIs(t, b.Run(t.Context()), agent.ErrNoNodeAttestor)
}

// labelAttestor is a workload attestor whose answer a test sets.
type labelAttestor struct {
	mu   sync.Mutex
	sels []attest.Selector
	err  error
}

func (l *labelAttestor) set(err error, sels ...attest.Selector) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sels, l.err = sels, err
}

func (l *labelAttestor) Attest(context.Context, attest.Workload) (attest.Selectors, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return attest.NewSelectors(l.sels...), l.err
}

// Property: the agent's workload attestors are combined: an entry may
// select on the selectors of several; one that rejects the caller rejects
// it, and one that fails makes the call fail with Unavailable rather than
// lose the caller its identities.
func TestCombinedWorkloadAttestors(t *testing.T) {
	s := startServer(t)
	wa, err := unix.New(unix.Config{SkipHash: true})
	require.NoError(t, err)
	labels := &labelAttestor{}
	web := attest.Selector{Type: "docker", Value: "label:app:web"}
	labels.set(nil, web)
	cfg := s.AgentConfig(t)
	cfg.WorkloadAttestors = []attest.WorkloadAttestor{wa, labels}
	a := nodetest.StartAgent(t, cfg)
	both, err := s.Store.Create(t.Context(), registry.Entry{
		SPIFFEID: spiffeid.RequireFromPath(td, "/web"), ParentID: a.ID(),
		Selectors: []attest.Selector{ourUID, web},
	})
	require.NoError(t, err)
	_, err = s.Store.Create(t.Context(), registry.Entry{
		SPIFFEID: spiffeid.RequireFromPath(td, "/db"), ParentID: a.ID(),
		Selectors: []attest.Selector{ourUID, {Type: "docker", Value: "label:app:db"}},
	})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return a.Stats().Entries == 2 }, 20*time.Second, 20*time.Millisecond)

	// The union of both attestors' selectors: the entry needing both
	// matches; the one needing a label the caller lacks does not.
	fetch := func() ([]spiffeid.ID, error) {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		svids, err := workloadapi.FetchX509SVIDs(ctx, workloadapi.WithAddr(a.Addr))
		var ids []spiffeid.ID
		for _, s := range svids {
			ids = append(ids, s.ID)
		}
		return ids, err
	}
	ids, err := fetch()
	require.NoError(t, err)
	assert.Equal(t, []spiffeid.ID{both.SPIFFEID}, ids)

	labels.set(fmt.Errorf("docker: container gone: %w", attest.ErrRejected))
	_, err = fetch()
	assert.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)

	labels.set(errors.New("docker: daemon unreachable"))
	_, err = fetch()
	assert.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
}

// brokenListener fails every Accept, as a listener whose socket broke.
type brokenListener struct {
	net.Listener
}

var errAcceptBroke = errors.New("accept broke")

func (brokenListener) Accept() (net.Conn, error) { return nil, errAcceptBroke }

// Property: when a part of the agent fails, Run stops the others and
// returns its error.
func TestRunReturnsAPartsError(t *testing.T) {
	s := startServer(t)
	cfg := nodetest.AgentDefaults(t, s.AgentConfig(t))
	cfg.Listener = brokenListener{cfg.Listener}
	a, err := agent.New(t.Context(), cfg)
	require.NoError(t, err)
	err = a.Run(t.Context())
	require.ErrorIs(t, err, errAcceptBroke)
	assert.ErrorContains(t, err, "agent: endpoint: serve")
	assert.False(t, a.Stats().Connected, "the entry stream stopped with Run")
	require.NoError(t, a.Close())
}
