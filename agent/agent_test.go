package agent_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/agent"
	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi"
)

var (
	td     = spiffeid.RequireTrustDomainFromString("example.org")
	ourUID = nodetest.UID()
)

// startServer runs a node API server over a new CA and memstore until the
// test ends (see nodetest.StartNodeServer).
func startServer(t *testing.T) *nodetest.NodeServer {
	t.Helper()
	return nodetest.StartNodeServer(t, nodetest.NodeConfig{})
}

// newAgent runs an agent that attests to s with a new join token, keeping
// its state in dataDir (none if empty), until the test ends, and returns
// it once attested.
func newAgent(t *testing.T, s *nodetest.NodeServer, dataDir string) *nodetest.Agent {
	t.Helper()
	cfg := s.AgentConfig(t)
	cfg.DataDir = dataDir
	return nodetest.StartAgent(t, cfg)
}

func TestAgentServesItsEntries(t *testing.T) {
	s := startServer(t)
	a := newAgent(t, s, t.TempDir())
	assert.Contains(t, a.ID().String(), "/spiffekit/agent/join_token/")
	web := s.Register(t, a.ID(), "/web")
	a.WaitSynced(t) // the first sync may come before the entry does
	addr := a.Addr
	assert.Equal(t, web.SPIFFEID, a.WaitSVID(t, web.SPIFFEID).ID)

	// The SVID chains to the server's CA.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	svid, err := workloadapi.FetchX509SVID(ctx, workloadapi.WithAddr(addr))
	require.NoError(t, err)
	_, _, err = x509svid.Verify(svid.Certificates, s.CA.Bundle())
	require.NoError(t, err)
	require.NoError(t, a.Healthy())
	assert.Equal(t, 1, a.Stats().Entries)
}

func TestEntryCreatedLaterReachesTheWorkload(t *testing.T) {
	s := startServer(t)
	a := newAgent(t, s, "")
	a.WaitSynced(t)
	addr := a.Addr

	updates := make(chan *x509svid.SVID, 8)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	client, err := workloadapi.New(ctx, workloadapi.WithAddr(addr))
	require.NoError(t, err)
	defer client.Close()
	go client.WatchX509Context(ctx, watcher{updates})

	s.Register(t, a.ID(), "/late")
	select {
	case svid := <-updates:
		assert.Equal(t, "/late", svid.ID.Path())
	case <-time.After(10 * time.Second):
		t.Fatal("the new entry did not reach the workload")
	}
}

type watcher struct{ ch chan *x509svid.SVID }

func (w watcher) OnX509ContextUpdate(c *workloadapi.X509Context) { w.ch <- c.DefaultSVID() }
func (w watcher) OnX509ContextWatchError(error)                  {}

func TestAgentKeepsServingWhileServerIsAway(t *testing.T) {
	store := memstore.New(memstore.Config{})
	m, err := rotation.New(t.Context(), rotation.Config{TrustDomain: td})
	require.NoError(t, err)
	s := nodetest.StartNodeServer(t, nodetest.NodeConfig{CA: m, Store: store})
	logs := &logtest.Buffer{}
	cfg := s.AgentConfig(t)
	cfg.DataDir, cfg.Logger = t.TempDir(), logs.Logger()
	a := nodetest.StartAgent(t, cfg)
	web := s.Register(t, a.ID(), "/web")
	a.WaitSynced(t)
	require.Equal(t, web.SPIFFEID, a.FetchX509SVID(t).ID)

	s.Stop()
	require.Eventually(t, func() bool { return !a.Stats().Connected }, 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, web.SPIFFEID, a.FetchX509SVID(t).ID, "served from the cache while the server is away")

	// The server comes back on the same address; the agent re-syncs and
	// a new entry reaches it.
	s2 := nodetest.StartNodeServer(t, nodetest.NodeConfig{CA: m, Store: store, Addr: s.Addr})
	require.Eventually(t, func() bool { return a.Stats().Connected }, 20*time.Second, 10*time.Millisecond)
	db := s2.Register(t, a.ID(), "/db")
	require.Eventually(t, func() bool { return a.Stats().Entries == 2 }, 10*time.Second, 10*time.Millisecond)
	_ = db
	// The operator reads that the outage is over, once.
	require.Eventually(t, func() bool { return logs.Contains("reconnected to the server") }, 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, 1, strings.Count(logs.String(), "reconnected to the server"), logs.String())
	assert.Regexp(t, `level=INFO msg="reconnected to the server" outage=\S+`, logs.String())
}

func TestRestartedAgentReusesItsSVID(t *testing.T) {
	s := startServer(t)
	dir := t.TempDir()
	cfg := s.AgentConfig(t) // one join token for the three agents
	cfg.DataDir = dir
	a := nodetest.StartAgent(t, cfg)
	id := a.ID()
	serial := a.SVID().Certificates[0].SerialNumber
	require.NoError(t, a.Close())

	info, err := os.Stat(filepath.Join(dir, "agent-key.pem"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())

	// The join token is spent, but the saved SVID lets the agent back in.
	b := nodetest.StartAgent(t, cfg)
	assert.Equal(t, id, b.ID())
	assert.Equal(t, serial, b.SVID().Certificates[0].SerialNumber)
	b.WaitSynced(t)

	// Without the saved SVID, the spent token is refused: Run fails.
	cfg.DataDir = ""
	_, err = nodetest.TryAgent(t, cfg)
	require.ErrorContains(t, err, "agent: the server refused attestation")
	assert.True(t, nodeapi.IsRefused(err), "refused for good, not failed for the moment: %v", err)
}

type brokenAttestor struct{}

func (brokenAttestor) Type() string { return "join_token" }
func (brokenAttestor) Payload(context.Context) ([]byte, error) {
	return nil, errors.New("no evidence on this node")
}
func (brokenAttestor) Respond(context.Context, []byte) ([]byte, error) { return nil, errors.New("no") }

func TestBrokenNodeAttestorStopsAtOnce(t *testing.T) {
	s := startServer(t)
	_, err := nodetest.TryAgent(t, withAttestor(t, s, brokenAttestor{}))
	require.ErrorIs(t, err, nodeapi.ErrNodeAttestor)
	assert.Contains(t, err.Error(), "no evidence on this node")
}

// TestCAActivationReachesWorkloads: when the server activates a new CA (no
// taint), the agent replaces its SVIDs with ones chaining to it at once,
// not at their half life.
func TestCAActivationReachesWorkloads(t *testing.T) {
	s := startServer(t)
	a := newAgent(t, s, "")
	s.Register(t, a.ID(), "/web")
	a.WaitSynced(t)
	addr := a.Addr
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	before, err := workloadapi.FetchX509SVID(ctx, workloadapi.WithAddr(addr))
	require.NoError(t, err)

	_, err = s.CA.PrepareX509CA(t.Context())
	require.NoError(t, err)
	require.NoError(t, s.CA.ActivateX509CA(t.Context()))
	newCA := s.CA.X509Authority().Certificate()
	require.NotEqual(t, before.Certificates[1].Raw, newCA.Raw)
	require.Eventually(t, func() bool {
		svid, err := workloadapi.FetchX509SVID(ctx, workloadapi.WithAddr(addr))
		return err == nil && len(svid.Certificates) > 1 && string(svid.Certificates[1].Raw) == string(newCA.Raw)
	}, 10*time.Second, 20*time.Millisecond, "the workload's SVID chains to the new CA")
}

// TestUnverifiableServerStopsTheFirstAttestation: a trust bundle that
// cannot verify the server (another CA, a certificate that is not a CA,
// another trust domain) fails the agent's first attestation at once,
// saying so, instead of retrying forever; a server that is only away is
// waited for.
func TestUnverifiableServerStopsTheFirstAttestation(t *testing.T) {
	s := startServer(t)
	other := testca.New(t, td)
	// A certificate the server's CA signed, but not a CA.
	leaf, err := s.CA.X509Authority().SignX509SVID(t.Context(), ca.X509SVIDParams{PublicKey: testca.NewECKey(t).Public(), ID: spiffeid.RequireFromPath(td, "/db")})
	require.NoError(t, err)
	for name, edit := range map[string]func(cfg *agent.Config){
		"another CA": func(cfg *agent.Config) { cfg.TrustBundle = other.X509Bundle() },
		"not a CA":   func(cfg *agent.Config) { cfg.TrustBundle = x509bundle.FromX509Authorities(td, leaf[:1]) },
		"another name": func(cfg *agent.Config) {
			cfg.TrustDomain = spiffeid.RequireTrustDomainFromString("other.org")
			cfg.TrustBundle = x509bundle.FromX509Authorities(cfg.TrustDomain, s.CA.Bundle().X509Authorities())
		},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := s.AgentConfig(t)
			edit(&cfg)
			_, err := nodetest.TryAgent(t, cfg)
			require.ErrorIs(t, err, nodeapi.ErrServerNotVerified)
			assert.Contains(t, err.Error(), "agent: the trust bundle does not verify the servers of "+cfg.TrustDomain.Name()+" (is it their trust domain's bundle?): nodeapi: ")
			assert.False(t, nodeapi.IsRefused(err))
		})
	}
}
