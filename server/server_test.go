package server_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/jointoken"
	"github.com/spiffekit/spiffekit/internal/testing/mysqltest"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/internal/testing/pgtest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/server"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi"
)

// TestMain provides the tests with a PostgreSQL server (pgtest) and a
// MariaDB server (mysqltest, started by the first test that needs it).
func TestMain(m *testing.M) {
	code := pgtest.Run(m)
	if err := mysqltest.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "mysqltest:", err)
		code = 1
	}
	os.Exit(code)
}

var (
	td     = spiffeid.RequireTrustDomainFromString("example.org")
	ourUID = nodetest.UID()
)

// start runs a server of cfg until the test ends, with what cfg leaves
// unset of its state in a new data directory: the embedded default, SQLite
// and CA keys on disk (see nodetest.StartServerIn).
func start(t *testing.T, cfg server.Config) *nodetest.Server {
	t.Helper()
	return nodetest.StartServerIn(t, t.TempDir(), cfg)
}

// postgres returns a Config whose Stores are the PostgreSQL database of
// dsn, opened for the test.
func postgres(t *testing.T, dsn string) server.Config {
	t.Helper()
	return server.Config{Stores: server.StoresOf(nodetest.OpenPostgreSQL(t, dsn))}
}

// mysql returns a Config whose Stores are the MySQL database of dsn,
// opened for the test.
func mysql(t *testing.T, dsn string) server.Config {
	t.Helper()
	return server.Config{Stores: server.StoresOf(nodetest.OpenMySQL(t, dsn))}
}

// sharedDB is a database several servers share, for the tests that run on
// each.
type sharedDB struct {
	name string
	// newDSN makes a new, empty database for the test.
	newDSN func(testing.TB) string
	// config returns a Config whose Stores are the database of dsn.
	config func(*testing.T, string) server.Config
}

var sharedDBs = []sharedDB{
	{"PostgreSQL", pgtest.New, postgres},
	{"MySQL", mysqltest.New, mysql},
}

// onSharedDBs runs test on each shared database, as a subtest.
func onSharedDBs(t *testing.T, test func(t *testing.T, db sharedDB)) {
	for _, db := range sharedDBs {
		t.Run(db.name, func(t *testing.T) { test(t, db) })
	}
}

func TestServerAdminAgentWorkload(t *testing.T) {
	s := start(t, server.Config{})
	a := nodetest.StartAgent(t, s.AgentConfig(t))
	web := s.Register(t, a.ID(), "/web")
	a.WaitEntries(t, 1)                 // the entry is pushed to the agent
	svid := a.WaitSVID(t, web.SPIFFEID) // and served: the agent holds an entry before it serves it
	assert.Equal(t, "/web", svid.ID.Path())

	agents, err := s.Admin.ListAgents(t.Context())
	require.NoError(t, err)
	require.Len(t, agents, 1)
	assert.Equal(t, a.ID(), agents[0].ID)
	require.NoError(t, s.Healthy(t.Context()))

	// Eviction through the admin API ends the agent's access at once.
	require.NoError(t, s.Admin.EvictAgent(t.Context(), a.ID()))
	require.Eventually(t, func() bool { return !a.Stats().Connected }, 10*time.Second, 5*time.Millisecond)
}

func TestServerRestartKeepsCAAndAgents(t *testing.T) {
	dataDir := t.TempDir()
	s := nodetest.StartServerIn(t, dataDir, server.Config{})
	bundle := s.Bundle()
	id := s.ID()
	tok := s.Token(t)
	addr := s.Addr().String()
	s.Stop()

	s2 := nodetest.StartServerIn(t, dataDir, server.Config{BindAddr: addr})
	assert.Equal(t, id, s2.ID(), "the server ID is stable")
	assert.True(t, bundle.X509Bundle().Equal(s2.Bundle().X509Bundle()), "the CA survives a restart")
	// A token made before the restart still works, with the bundle of
	// before the restart.
	cfg := s2.AgentConfig(t)
	cfg.TrustBundle, cfg.NodeAttestor = bundle.X509Bundle(), jointoken.NewClient(tok)
	nodetest.StartAgent(t, cfg).WaitSynced(t)
}

func TestHighAvailability(t *testing.T) { onSharedDBs(t, testHighAvailability) }

func testHighAvailability(t *testing.T, db sharedDB) {
	dsn := db.newDSN(t)
	s1 := start(t, db.config(t, dsn))
	s2 := start(t, db.config(t, dsn))
	require.NotEqual(t, s1.ID(), s2.ID())

	// Both CAs end up in the bundle each server hands out.
	require.Eventually(t, func() bool {
		b1, b2 := s1.Bundle(), s2.Bundle()
		return len(b1.X509Authorities()) == 2 && len(b2.X509Authorities()) == 2
	}, 10*time.Second, 20*time.Millisecond)

	// A token made on one server is accepted by the other, once.
	cfg := s1.AgentConfig(t)
	cfg.Servers = []string{s2.Addr().String(), s1.Addr().String()}
	a := nodetest.StartAgent(t, cfg)
	web := s1.Register(t, a.ID(), "/web")
	addr := a.Addr
	a.WaitEntries(t, 1)
	first := a.WaitSVID(t, web.SPIFFEID)

	// The server the agent uses goes away; it fails over to the other and
	// keeps receiving entries.
	s2.Stop()
	_, err := s1.Admin.CreateEntry(t.Context(), registry.Entry{
		SPIFFEID:  spiffeid.RequireFromPath(td, "/db"),
		ParentID:  a.ID(),
		Selectors: []attest.Selector{{Type: "unix", Value: "gid:" + strconv.Itoa(os.Getgid())}},
	})
	require.NoError(t, err)
	a.WaitEntries(t, 2)
	// The agent holds the entry at once; the workload is served its SVID
	// once it is minted, through the surviving server.
	var ids []string
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		svids, err := workloadapi.FetchX509SVIDs(ctx, workloadapi.WithAddr(addr))
		if err != nil {
			return false
		}
		ids = ids[:0]
		for _, s := range svids {
			ids = append(ids, s.ID.Path())
		}
		return len(ids) == 2
	}, 30*time.Second, 20*time.Millisecond, "two SVIDs for the workload")
	assert.ElementsMatch(t, []string{"/web", "/db"}, ids)
	// The SVIDs signed by either server verify with either server's bundle.
	_, _, err = x509svid.Verify(first.Certificates, s1.Bundle())
	require.NoError(t, err)
}

// Property: Run returns every failure of its parts instead of hanging or
// dropping one: after Close, the node API can neither serve nor follow
// the registry, and both say so.
func TestRunReturnsItsPartsFailures(t *testing.T) {
	s, err := server.New(t.Context(), memConfig())
	require.NoError(t, err)
	require.NoError(t, s.Close())
	err = s.Run(t.Context())
	require.ErrorContains(t, err, "nodeserver: the server is closed")
	joined, ok := err.(interface{ Unwrap() []error })
	require.True(t, ok, "%v", err)
	assert.Len(t, joined.Unwrap(), 2, "the node API's Serve and Run: %v", err)
}
