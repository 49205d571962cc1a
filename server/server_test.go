package server_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/agent"
	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/jointoken"
	"github.com/spiffekit/spiffekit/attest/unix"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/internal/testing/pgtest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/sqlstore"
	"github.com/spiffekit/spiffekit/server"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var (
	td     = spiffeid.RequireTrustDomainFromString("example.org")
	ourUID = attest.Selector{Type: "unix", Value: "uid:" + strconv.Itoa(os.Getuid())}
)

type running struct {
	*server.Server
	admin  *admin.Client
	socket string
	stores server.Stores
	store  *sqlstore.Store // the store start opened; nil when cfg.Stores was given
	stop   func()
}

func shortDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "srv")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// start runs a server of cfg until the test ends, with what cfg leaves
// unset taken from a new data directory (see startIn).
func start(t *testing.T, cfg server.Config) *running {
	t.Helper()
	return startIn(t, t.TempDir(), cfg)
}

// withState fills what cfg leaves unset of the server's state from dir:
// Stores in SQLite (the store is returned, to be closed after the
// server), KeyManager, Journal and ServerID, as server.OpenSQLite and
// server.DataDir do; and the trust domain td.
func withState(t *testing.T, dir string, cfg server.Config) (server.Config, *sqlstore.Store) {
	t.Helper()
	if cfg.TrustDomain.IsZero() {
		cfg.TrustDomain = td
	}
	var (
		base  server.Config
		store *sqlstore.Store
		err   error
	)
	if cfg.Stores.Entries == nil {
		base, store, err = server.OpenSQLite(t.Context(), cfg.TrustDomain, dir)
		require.NoError(t, err)
		cfg.Stores = base.Stores
	} else {
		base, err = server.DataDir(cfg.TrustDomain, dir)
		require.NoError(t, err)
	}
	if cfg.KeyManager == nil {
		cfg.KeyManager, cfg.Journal, cfg.ServerID = base.KeyManager, base.Journal, base.ServerID
	}
	return cfg, store
}

// startIn runs a server of cfg until the test ends. What cfg leaves unset:
// the trust domain td, the state in dir (see withState), a free port, an
// admin socket, a 100 ms refresh interval.
func startIn(t *testing.T, dir string, cfg server.Config) *running {
	t.Helper()
	cfg, store := withState(t, dir, cfg)
	if cfg.BindAddr == "" {
		cfg.BindAddr = "127.0.0.1:0"
	}
	if cfg.AdminSocket == "" {
		cfg.AdminSocket = filepath.Join(shortDir(t), "admin.sock")
	}
	s, err := server.New(t.Context(), cfg)
	if err != nil && store != nil {
		store.Close()
	}
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	r := &running{Server: s, admin: admin.Dial(cfg.AdminSocket), socket: cfg.AdminSocket, stores: cfg.Stores, store: store}
	stopped := false
	r.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		require.NoError(t, <-done)
		require.NoError(t, s.Close())
		r.admin.Close()
		if store != nil {
			require.NoError(t, store.Close())
		}
	}
	t.Cleanup(r.stop)
	return r
}

// postgres returns a Config whose Stores are the PostgreSQL database of
// dsn, opened for the test.
func postgres(t *testing.T, dsn string) server.Config {
	t.Helper()
	st, err := sqlstore.Open(t.Context(), sqlstore.Config{Dialect: sqlstore.PostgreSQL, DSN: dsn})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	return server.Config{Stores: server.StoresOf(st)}
}

func (r *running) token(t *testing.T) string {
	t.Helper()
	tok, err := r.admin.GenerateToken(t.Context(), 10*time.Minute, spiffeid.ID{})
	require.NoError(t, err)
	return tok.Value
}

// testAgent is an agent running until the test ends, serving the
// Workload API at addr.
type testAgent struct {
	*agent.Agent
	addr string
}

// runAgent runs an agent of cfg, with a unix workload attestor and a
// Workload API socket, until the test ends, and returns it once attested.
func runAgent(t *testing.T, cfg agent.Config) *testAgent {
	t.Helper()
	wa, err := unix.New(unix.Config{SkipHash: true})
	require.NoError(t, err)
	lis, err := endpoint.ListenUnix(filepath.Join(shortDir(t), "api.sock"), 0o700)
	require.NoError(t, err)
	cfg.WorkloadAttestors = []attest.WorkloadAttestor{wa}
	cfg.Listener = lis
	cfg.RetryMin, cfg.RetryMax = 20*time.Millisecond, 200*time.Millisecond
	a, err := agent.New(t.Context(), cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-ran)
		require.NoError(t, a.Close())
	})
	select {
	case <-a.Attested():
	case <-time.After(20 * time.Second):
		t.Fatal("the agent did not attest within 20s")
	}
	return &testAgent{Agent: a, addr: "unix://" + lis.Addr().String()}
}

func startAgent(t *testing.T, servers []string, bundle *spiffebundle.Bundle, token string) *testAgent {
	t.Helper()
	return runAgent(t, agent.Config{
		TrustDomain:  td,
		Servers:      servers,
		TrustBundle:  bundle.X509Bundle(),
		NodeAttestor: jointoken.NewClient(token),
	})
}

func fetch(t *testing.T, addr string) *x509svid.SVID {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	svid, err := workloadapi.FetchX509SVID(ctx, workloadapi.WithAddr(addr))
	require.NoError(t, err)
	return svid
}

func TestServerAdminAgentWorkload(t *testing.T) {
	s := start(t, server.Config{})
	a := startAgent(t, []string{s.Addr().String()}, s.Bundle(), s.token(t))
	_, err := s.admin.CreateEntry(t.Context(), registry.Entry{
		SPIFFEID:  spiffeid.RequireFromPath(td, "/web"),
		ParentID:  a.ID(),
		Selectors: []attest.Selector{ourUID},
	})
	require.NoError(t, err)
	addr := a.addr
	require.Eventually(t, func() bool { return a.Stats().Entries == 1 }, 10*time.Second, 5*time.Millisecond,
		"the entry is pushed to the agent")
	svid := fetch(t, addr)
	assert.Equal(t, "/web", svid.ID.Path())

	agents, err := s.admin.ListAgents(t.Context())
	require.NoError(t, err)
	require.Len(t, agents, 1)
	assert.Equal(t, a.ID(), agents[0].ID)
	require.NoError(t, s.Healthy(t.Context()))

	// Eviction through the admin API ends the agent's access at once.
	require.NoError(t, s.admin.EvictAgent(t.Context(), a.ID()))
	require.Eventually(t, func() bool { return !a.Stats().Connected }, 10*time.Second, 5*time.Millisecond)
}

func TestServerRestartKeepsCAAndAgents(t *testing.T) {
	dataDir := t.TempDir()
	s := startIn(t, dataDir, server.Config{})
	bundle := s.Bundle()
	id := s.ID()
	tok := s.token(t)
	addr := s.Addr().String()
	s.stop()

	s2 := startIn(t, dataDir, server.Config{BindAddr: addr})
	assert.Equal(t, id, s2.ID(), "the server ID is stable")
	assert.True(t, bundle.X509Bundle().Equal(s2.Bundle().X509Bundle()), "the CA survives a restart")
	// A token made before the restart still works.
	a := startAgent(t, []string{s2.Addr().String()}, bundle, tok)
	select {
	case <-a.Synced():
	case <-time.After(10 * time.Second):
		t.Fatal("agent did not sync")
	}
}

func TestHighAvailabilityOnPostgreSQL(t *testing.T) {
	dsn := pgtest.New(t)
	s1 := start(t, postgres(t, dsn))
	s2 := start(t, postgres(t, dsn))
	require.NotEqual(t, s1.ID(), s2.ID())

	// Both CAs end up in the bundle each server hands out.
	require.Eventually(t, func() bool {
		b1, b2 := s1.Bundle(), s2.Bundle()
		return len(b1.X509Authorities()) == 2 && len(b2.X509Authorities()) == 2
	}, 10*time.Second, 20*time.Millisecond)

	// A token made on one server is accepted by the other, once.
	tok := s1.token(t)
	a := startAgent(t, []string{s2.Addr().String(), s1.Addr().String()}, s1.Bundle(), tok)
	_, err := s1.admin.CreateEntry(t.Context(), registry.Entry{
		SPIFFEID:  spiffeid.RequireFromPath(td, "/web"),
		ParentID:  a.ID(),
		Selectors: []attest.Selector{ourUID},
	})
	require.NoError(t, err)
	addr := a.addr
	require.Eventually(t, func() bool { return a.Stats().Entries == 1 }, 10*time.Second, 10*time.Millisecond)
	first := fetch(t, addr)

	// The server the agent uses goes away; it fails over to the other and
	// keeps receiving entries.
	s2.stop()
	_, err = s1.admin.CreateEntry(t.Context(), registry.Entry{
		SPIFFEID:  spiffeid.RequireFromPath(td, "/db"),
		ParentID:  a.ID(),
		Selectors: []attest.Selector{{Type: "unix", Value: "gid:" + strconv.Itoa(os.Getgid())}},
	})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return a.Stats().Entries == 2 }, 20*time.Second, 10*time.Millisecond)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	svids, err := workloadapi.FetchX509SVIDs(ctx, workloadapi.WithAddr(addr))
	require.NoError(t, err)
	var ids []string
	for _, s := range svids {
		ids = append(ids, s.ID.Path())
	}
	assert.ElementsMatch(t, []string{"/web", "/db"}, ids)
	// The SVIDs signed by either server verify with either server's bundle.
	_, _, err = x509svid.Verify(first.Certificates, s1.Bundle())
	require.NoError(t, err)
}

// Property: Run returns every failure of its parts instead of hanging or
// dropping one: after Close, the node API can neither serve nor follow
// the registry, and both say so.
func TestRunReturnsItsPartsFailures(t *testing.T) {
	cfg, store := withState(t, t.TempDir(), server.Config{BindAddr: "127.0.0.1:0"})
	defer store.Close()
	s, err := server.New(t.Context(), cfg)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	err = s.Run(t.Context())
	require.ErrorContains(t, err, "nodeapi: the server is closed")
	joined, ok := err.(interface{ Unwrap() []error })
	require.True(t, ok, "%v", err)
	assert.Len(t, joined.Unwrap(), 2, "the node API's Serve and Run: %v", err)
}
