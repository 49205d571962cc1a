package nodetest_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/agent"
	"github.com/spiffekit/spiffekit/attest/jointoken"
	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/internal/testing/pgtest"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/nodeapi/nodeserver"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/server"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestServerAgentAndWorkload(t *testing.T) {
	s := nodetest.StartServer(t, server.Config{})
	assert.Equal(t, nodetest.TrustDomain, s.TrustDomain())
	a := nodetest.StartAgent(t, s.AgentConfig(t))
	web := s.Register(t, a.ID(), "/web")
	assert.Equal(t, []string{nodetest.UID().String()}, selectorStrings(web.Selectors))
	svid := a.WaitSVID(t, web.SPIFFEID)
	_, _, err := x509svid.Verify(svid.Certificates, s.Bundle())
	require.NoError(t, err)
	a.WaitSynced(t)
	a.WaitEntries(t, 1)
	assert.Equal(t, web.SPIFFEID, a.FetchX509SVID(t).ID)

	require.NoError(t, a.Stop())
	require.NoError(t, a.Stop(), "a second Stop does nothing")
	s.Stop()
	s.Stop()
}

func selectorStrings[S interface{ String() string }](sels []S) []string {
	out := make([]string, len(sels))
	for i, s := range sels {
		out[i] = s.String()
	}
	return out
}

// A server started again in its directory keeps its ID, its CA and its
// records: a token made before the restart admits an agent after it.
func TestStartServerInKeepsState(t *testing.T) {
	dir := t.TempDir()
	s := nodetest.StartServerIn(t, dir, server.Config{})
	id, bundle, tok, addr := s.ID(), s.Bundle(), s.Token(t), s.Addr().String()
	s.Stop()

	s = nodetest.StartServerIn(t, dir, server.Config{BindAddr: addr})
	assert.Equal(t, id, s.ID())
	assert.True(t, bundle.X509Bundle().Equal(s.Bundle().X509Bundle()))
	cfg := s.AgentConfig(t)
	cfg.NodeAttestor = jointoken.NewClient(tok)
	nodetest.StartAgent(t, cfg).WaitSynced(t)

	// Stores of the test's own, with the CA's state in the directory.
	other := nodetest.StartServerIn(t, t.TempDir(), server.Config{Stores: server.StoresOf(memstore.New(memstore.Config{}))})
	assert.NotEqual(t, id, other.ID())
}

// Two servers sharing one PostgreSQL database serve one trust domain: each
// hands out both CAs.
func TestServersOnPostgreSQL(t *testing.T) {
	dsn := pgtest.New(t)
	s1 := nodetest.StartServer(t, server.Config{Stores: server.StoresOf(nodetest.OpenPostgreSQL(t, dsn))})
	s2 := nodetest.StartServer(t, server.Config{Stores: server.StoresOf(nodetest.OpenPostgreSQL(t, dsn))})
	require.Eventually(t, func() bool {
		return len(s1.Bundle().X509Authorities()) == 2 && len(s2.Bundle().X509Authorities()) == 2
	}, nodetest.Timeout, 10*time.Millisecond)
}

// A node server stopped and started again on its address, with its CA and
// store, serves its agents again.
func TestNodeServerStartedAgain(t *testing.T) {
	s := nodetest.StartNodeServer(t, nodetest.NodeConfig{
		Edit: func(c *nodeserver.Config) { c.AgentSVIDTTL = time.Hour },
	})
	a := nodetest.StartAgent(t, s.AgentConfig(t))
	web := s.Register(t, a.ID(), "/web")
	a.WaitSVID(t, web.SPIFFEID)
	assert.Equal(t, time.Hour, a.SVID().Certificates[0].NotAfter.Sub(a.SVID().Certificates[0].NotBefore).Round(time.Hour))

	s.Stop()
	require.Eventually(t, func() bool { return !a.Stats().Connected }, nodetest.Timeout, 5*time.Millisecond)
	s2 := nodetest.StartNodeServer(t, nodetest.NodeConfig{CA: s.CA, Store: s.Store, Addr: s.Addr})
	assert.Equal(t, s.Addr, s2.Addr)
	db := s2.Register(t, a.ID(), "/db")
	a.WaitEntries(t, 2)
	a.WaitSVID(t, db.SPIFFEID)
}

func TestTryAgentFailures(t *testing.T) {
	s := nodetest.StartNodeServer(t, nodetest.NodeConfig{})

	// agent.New refuses the configuration.
	cfg := s.AgentConfig(t)
	cfg.Servers = nil
	_, err := nodetest.TryAgent(t, cfg)
	require.EqualError(t, err, "agent: Config.Servers needs at least one address")

	// Run returns before the agent attests: the server refuses a token it
	// never issued.
	tok, _, err := jointoken.Generate(t.Context(), memstore.New(memstore.Config{}), jointoken.Params{})
	require.NoError(t, err)
	cfg = s.AgentConfig(t)
	cfg.NodeAttestor = jointoken.NewClient(tok)
	_, err = nodetest.TryAgent(t, cfg)
	require.ErrorContains(t, err, "agent: the server refused attestation")
	assert.True(t, nodeapi.IsRefused(err), "%v", err)
}

func TestAgentDefaults(t *testing.T) {
	cfg := nodetest.AgentDefaults(t, agent.Config{})
	assert.Equal(t, nodetest.TrustDomain, cfg.TrustDomain)
	assert.Len(t, cfg.WorkloadAttestors, 1)
	require.NotNil(t, cfg.Listener)
	assert.Equal(t, "unix", cfg.Listener.Addr().Network())
	assert.Equal(t, 20*time.Millisecond, cfg.RetryMin)
	assert.Equal(t, 200*time.Millisecond, cfg.RetryMax)

	other := spiffeid.RequireTrustDomainFromString("other.test")
	cfg = nodetest.AgentDefaults(t, agent.Config{TrustDomain: other, WorkloadAttestors: cfg.WorkloadAttestors, Listener: cfg.Listener, RetryMin: time.Second, RetryMax: time.Minute})
	assert.Equal(t, other, cfg.TrustDomain)
	assert.Equal(t, time.Second, cfg.RetryMin)
	assert.Equal(t, time.Minute, cfg.RetryMax)
}

// A node server that only serves attests and syncs agents from the index
// it built when it started.
func TestNodeServerServeOnly(t *testing.T) {
	s := nodetest.StartNodeServer(t, nodetest.NodeConfig{ServeOnly: true})
	a := nodetest.StartAgent(t, s.AgentConfig(t))
	a.WaitSynced(t)
	assert.Zero(t, a.Stats().Entries)
	s.Stop()
}

// StartWorkload makes the test process the workload of an agent of s's
// configuration, unchanged without an edit (WIT-SVIDs off, though the
// server issues them), and returns a client of its Workload API that gets
// the entry's X509-SVID; StartWITWorkload's edit turns them on.
func TestStartWorkload(t *testing.T) {
	m, err := rotation.New(t.Context(), rotation.Config{TrustDomain: nodetest.TrustDomain, WITKeys: true})
	require.NoError(t, err)
	web, c := nodetest.StartWorkload(t, nodetest.StartNodeServer(t, nodetest.NodeConfig{CA: m}), "/web", nil)
	assert.Equal(t, spiffeid.RequireFromPath(nodetest.TrustDomain, "/web"), web.SPIFFEID)
	svid, err := c.FetchX509SVID(t.Context())
	require.NoError(t, err)
	assert.Equal(t, web.SPIFFEID, svid.ID)
	_, err = c.FetchWITSVID(t.Context(), "")
	assert.Equal(t, codes.Unimplemented, status.Code(err), "%v", err)
}

// StartWITWorkload makes the test process the workload of an agent of a
// server or of a node server alike, which obtains a WIT-SVID of the
// entry; the client it returns is closed when the test ends.
func TestStartWITWorkload(t *testing.T) {
	for name, start := range map[string]func(*testing.T) nodetest.Issuer{
		"server": func(t *testing.T) nodetest.Issuer { return nodetest.StartServer(t, server.Config{WITSVIDs: true}) },
		"node server": func(t *testing.T) nodetest.Issuer {
			m, err := rotation.New(t.Context(), rotation.Config{TrustDomain: nodetest.TrustDomain, WITKeys: true})
			require.NoError(t, err)
			return nodetest.StartNodeServer(t, nodetest.NodeConfig{CA: m})
		},
	} {
		var c *workloadapi.Client
		t.Run(name, func(t *testing.T) {
			var web registry.Entry
			web, c = nodetest.StartWITWorkload(t, start(t), "/web")
			assert.Equal(t, spiffeid.RequireFromPath(nodetest.TrustDomain, "/web"), web.SPIFFEID)
			assert.Equal(t, []string{nodetest.UID().String()}, selectorStrings(web.Selectors))
			svid, err := c.FetchWITSVID(t.Context(), "")
			require.NoError(t, err)
			assert.Equal(t, web.SPIFFEID, svid.ID)
		})
		require.NotNil(t, c, name)
		assert.Error(t, c.Close(), "%s: the client was closed when the test ended", name)
	}
}
