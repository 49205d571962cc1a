package nodetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/agent"
	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/jointoken"
	"github.com/spiffekit/spiffekit/ca/keymanager"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/registry/sqlstore"
	"github.com/spiffekit/spiffekit/server"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// Server is an issuing server (package server) running until the test
// ends or Stop.
type Server struct {
	*server.Server
	// Admin is a client of the server's admin API.
	Admin *admin.Client
	// Stores are the server's stores, for a test to read or write behind
	// the server's back.
	Stores server.Stores

	stop func()
}

// StartServer runs an issuing server of cfg until the test ends, and
// returns it serving. What cfg leaves unset: the trust domain
// [TrustDomain], Stores (a new memstore), KeyManager (in memory), BindAddr
// (a free loopback port), AdminSocket (in a new directory).
func StartServer(t testing.TB, cfg server.Config) *Server {
	t.Helper()
	checkLeaks(t)
	if cfg.Stores.Entries == nil {
		cfg.Stores = server.StoresOf(memstore.New(memstore.Config{}))
	}
	if cfg.KeyManager == nil {
		cfg.KeyManager = keymanager.NewMemory()
	}
	return startServer(t, cfg, nil)
}

// StartServerIn is StartServer with the server's state in dir, as
// server.OpenSQLite and server.DataDir keep it: Stores, unless cfg sets
// them, in SQLite (closed when the server stops), and, unless cfg sets a
// KeyManager, the CA keys, its journal and the server ID. A server stopped
// and started again in the same directory keeps its CA, its ID and its
// records.
func StartServerIn(t testing.TB, dir string, cfg server.Config) *Server {
	t.Helper()
	checkLeaks(t)
	if cfg.TrustDomain.IsZero() {
		cfg.TrustDomain = TrustDomain
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
	// The server owns the data directory's lock, and releases it when it
	// stops.
	cfg.DataDirLock = base.DataDirLock
	return startServer(t, cfg, store)
}

// OpenPostgreSQL opens the PostgreSQL database of dsn (see
// internal/testing/pgtest) for a server's Stores (server.StoresOf), and
// closes it when the test ends, after the servers using it stopped. Its
// listener is run by the server (see server.Stores).
func OpenPostgreSQL(t testing.TB, dsn string) *sqlstore.Store {
	t.Helper()
	checkLeaks(t)
	st, err := sqlstore.Open(t.Context(), sqlstore.Config{Dialect: sqlstore.PostgreSQL, DSN: dsn})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })
	return st
}

// OpenMySQL opens the MySQL (MariaDB) database of dsn (see
// internal/testing/mysqltest) for a server's Stores (server.StoresOf), and
// closes it when the test ends, after the servers using it stopped. Its
// poller of the change counters is run by the server (see server.Stores).
func OpenMySQL(t testing.TB, dsn string) *sqlstore.Store {
	t.Helper()
	checkLeaks(t)
	st, err := sqlstore.Open(t.Context(), sqlstore.Config{Dialect: sqlstore.MySQL, DSN: dsn})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })
	return st
}

// startServer runs a server of cfg, closing owned after it when not nil.
func startServer(t testing.TB, cfg server.Config, owned *sqlstore.Store) *Server {
	t.Helper()
	if cfg.TrustDomain.IsZero() {
		cfg.TrustDomain = TrustDomain
	}
	if cfg.BindAddr == "" {
		cfg.BindAddr = "127.0.0.1:0"
	}
	if cfg.AdminSocket == "" {
		cfg.AdminSocket = socketPath(t, "admin.sock")
	}
	s, err := server.New(t.Context(), cfg)
	if err != nil && owned != nil {
		owned.Close()
	}
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	r := &Server{Server: s, Admin: admin.Dial(cfg.AdminSocket), Stores: cfg.Stores}
	r.stop = sync.OnceFunc(func() {
		cancel()
		require.NoError(t, <-done, "the server's Run")
		require.NoError(t, s.Close())
		require.NoError(t, r.Admin.Close())
		if owned != nil {
			require.NoError(t, owned.Close())
		}
	})
	t.Cleanup(r.stop)
	return r
}

// Stop stops the server before the test ends: Run must return nil and
// Close succeed. Later calls do nothing.
func (s *Server) Stop() { s.stop() }

// Token returns a new join token, made through the admin API, valid for
// ten minutes.
func (s *Server) Token(t testing.TB) string {
	t.Helper()
	tok, err := s.Admin.GenerateToken(t.Context(), 10*time.Minute, spiffeid.ID{})
	require.NoError(t, err)
	return tok.Value
}

// AgentConfig returns the configuration of an agent of the server's trust
// domain that attests to it with a new join token, trusting its bundle;
// [StartAgent] fills the rest.
func (s *Server) AgentConfig(t testing.TB) agent.Config {
	t.Helper()
	return agent.Config{
		TrustDomain:  s.TrustDomain(),
		Servers:      []string{s.Addr().String()},
		TrustBundle:  s.Bundle().X509Bundle(),
		NodeAttestor: jointoken.NewClient(s.Token(t)),
	}
}

// Register creates, through the admin API, the entry of path in the
// server's trust domain for the test process ([UID]) under parent, and
// returns it.
func (s *Server) Register(t testing.TB, parent spiffeid.ID, path string) registry.Entry {
	t.Helper()
	e, err := s.Admin.CreateEntry(t.Context(), registry.Entry{
		SPIFFEID:  spiffeid.RequireFromPath(s.TrustDomain(), path),
		ParentID:  parent,
		Selectors: []attest.Selector{UID()},
	})
	require.NoError(t, err)
	return e
}
