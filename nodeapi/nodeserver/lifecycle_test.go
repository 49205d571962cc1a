package nodeserver_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/nodeapi/nodeserver"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/index"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// quietRegistry is a registry that does not tell of its writes: the server
// sees them only when it reads the change feed.
type quietRegistry struct{ index.Source }

func bareConfig(t testing.TB) nodeserver.Config {
	t.Helper()
	m, err := rotation.New(t.Context(), rotation.Config{TrustDomain: td})
	require.NoError(t, err)
	store := memstore.New(memstore.Config{})
	return nodeserver.Config{Authority: m, Registry: store, Agents: store, Attestors: []attest.NodeAttestor{echoAttestor{}}}
}

// Property: NewServer starts nothing. synctest fails the test if the
// bubble ends with a goroutine left, and the server is never closed.
func TestNewServerStartsNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, err := nodeserver.New(t.Context(), bareConfig(t))
		require.NoError(t, err)
		assert.False(t, srv.ID().IsZero())
	})
}

// fakeListener is a listener that records being closed.
type fakeListener struct {
	net.Listener
	closed atomic.Bool
}

func (l *fakeListener) Close() error { l.closed.Store(true); return nil }

// Property: Run returns ctx.Err() when its ctx ends and nil when Close
// ends it, and Close returns only after Run has (synctest fails the test
// if a goroutine is left); one Run at a time, and none after Close; Serve
// after Close closes its listener and fails.
func TestRunAndCloseLifecycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, err := nodeserver.New(t.Context(), bareConfig(t))
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(t.Context())
		ran := make(chan error, 1)
		go func() { ran <- srv.Run(ctx) }()
		synctest.Wait()
		assert.ErrorContains(t, srv.Run(ctx), "already running")
		time.Sleep(time.Hour) // fake time: polls and refreshes go by
		cancel()
		assert.ErrorIs(t, <-ran, context.Canceled)

		go func() { ran <- srv.Run(t.Context()) }() // again, once the first returned
		synctest.Wait()
		require.NoError(t, srv.Close())
		// Run has returned; the goroutine that called it may not have
		// reported it yet. Fake time passes only once it is blocked.
		select {
		case err := <-ran:
			assert.NoError(t, err, "Close ends Run without error")
		case <-time.After(time.Minute):
			t.Fatal("Run did not return after Close")
		}
		require.NoError(t, srv.Close(), "Close is idempotent")
		assert.ErrorContains(t, srv.Run(t.Context()), "closed")
		lis := &fakeListener{}
		assert.ErrorContains(t, srv.Serve(t.Context(), lis), "closed")
		assert.True(t, lis.closed.Load(), "Serve closes its listener, even when it cannot serve")
	})
}

// Property: Serve answers agents without Run, from the registry as
// NewServer read it; Run then catches up with what changed before it
// started, without waiting for a poll or a notification.
func TestServeWithoutRunAndRunCatchesUp(t *testing.T) {
	cfg := bareConfig(t)
	store := cfg.Registry.(*memstore.Store)
	cfg.Registry = quietRegistry{store}
	cfg.PollInterval = time.Hour
	// The echo attestor names node1 so; the entry exists before NewServer.
	node1 := spiffeid.RequireFromPath(td, "/spiffekit/agent/echo/node1")
	first, err := store.Create(t.Context(), registry.Entry{
		SPIFFEID: spiffeid.RequireFromPath(td, "/first"), ParentID: node1,
		Selectors: []attest.Selector{{Type: "unix", Value: "uid:1000"}},
	})
	require.NoError(t, err)
	srv, err := nodeserver.New(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { srv.Close() })
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, lis) }()
	t.Cleanup(func() { stop(); require.NoError(t, <-served) })
	e := &env{auth: cfg.Authority, store: store, srv: srv, addr: lis.Addr().String()}

	a := e.attest(t, "node1")
	require.Equal(t, node1, a.svid.ID)
	updates, _ := syncUpdates(t, a)
	u := next(t, updates)
	require.Len(t, u.Upserts, 1)
	assert.Equal(t, first.ID, u.Upserts[0].ID)

	// Written while Run does not run: the server does not know of it...
	later, err := store.Create(t.Context(), registry.Entry{
		SPIFFEID: spiffeid.RequireFromPath(td, "/later"), ParentID: a.svid.ID, Selectors: first.Selectors,
	})
	require.NoError(t, err)
	assert.Equal(t, 1, srv.Index().Len())
	// ...until Run starts and catches up.
	runCtx, stopRun := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- srv.Run(runCtx) }()
	t.Cleanup(func() { stopRun(); require.ErrorIs(t, <-ran, context.Canceled) })
	u = next(t, updates)
	require.Len(t, u.Upserts, 1)
	assert.Equal(t, later.ID, u.Upserts[0].ID)
}

// Property: Close ends the open entry streams with Unavailable, which
// agents take as "reconnect", not as a refusal.
func TestCloseEndsEntryStreams(t *testing.T) {
	e := newEnv(t, nil)
	a := e.attest(t, "node1")
	updates, end := syncUpdates(t, a)
	next(t, updates)
	require.NoError(t, e.srv.Close())
	err := end(t)
	assert.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	assert.Equal(t, "nodeserver: the server is shutting down", status.Convert(err).Message())
	assert.False(t, nodeapi.IsRefused(err))
}
