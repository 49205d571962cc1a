package agent_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/agent"
	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/jointoken"
	"github.com/spiffekit/spiffekit/attest/unix"
	"github.com/spiffekit/spiffekit/attest/x509pop"
	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/internal/pemutil"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/nodeapi/nodeserver"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// withAttestor returns the configuration of an agent of s that attests
// with node.
func withAttestor(t *testing.T, s *nodetest.NodeServer, node attest.NodeAttestorClient) agent.Config {
	t.Helper()
	cfg := s.AgentConfig(t)
	cfg.NodeAttestor = node
	return cfg
}

func serial(a *nodetest.Agent) string { return a.SVID().Certificates[0].SerialNumber.Text(16) }

func newRotation(t *testing.T) *rotation.Manager {
	m, err := rotation.New(t.Context(), rotation.Config{TrustDomain: td})
	require.NoError(t, err)
	return m
}

// taintAndAwaitRenewal taints the CA oldCA of m and waits until agent a
// has renewed its own SVID off it, with newCA (the active CA): the agent has
// learned of the taint.
func taintAndAwaitRenewal(t *testing.T, m *rotation.Manager, a *nodetest.Agent, oldCA, newCA *x509.Certificate) {
	t.Helper()
	var oldID string
	for _, info := range m.X509CAs() {
		if info.Certificate.Equal(oldCA) {
			oldID = info.ID
		}
	}
	require.NoError(t, m.TaintX509CA(t.Context(), oldID))
	require.Eventually(t, func() bool {
		svid := a.SVID()
		return len(svid.Certificates) > 1 && bytes.Equal(svid.Certificates[1].Raw, newCA.Raw)
	}, nodetest.Timeout, 5*time.Millisecond, "the agent SVID is renewed off the tainted CA")
}

func shortTTL(ttl time.Duration) func(*nodeserver.Config) {
	return func(c *nodeserver.Config) { c.AgentSVIDTTL = ttl }
}

// x509PopNode is a node CA and one node certificate it issued.
func x509PopNode(t *testing.T) (*testca.CA, *x509pop.Client) {
	nodeCA := testca.New(t, spiffeid.RequireTrustDomainFromString("nodes.test"))
	chain, key := nodeCA.NewLeaf(t, spiffeid.ID{})
	c, err := x509pop.NewClient(x509pop.ClientConfig{TrustDomain: td, Certificates: chain, Key: key})
	require.NoError(t, err)
	return nodeCA, c
}

func withX509Pop(t *testing.T, nodeCA *testca.CA, mod func(*nodeserver.Config)) func(*nodeserver.Config) {
	return func(c *nodeserver.Config) {
		srv, err := x509pop.NewServer(x509pop.ServerConfig{Roots: []*x509.Certificate{nodeCA.Root()}})
		require.NoError(t, err)
		c.Attestors = append(c.Attestors, srv)
		if mod != nil {
			mod(c)
		}
	}
}

// Property: the agent renews its own SVID at half its life: a new serial,
// saved to the data directory in place of the old one, and the server's
// record follows; workloads keep being served meanwhile.
func TestAgentRenewsAtHalfLife(t *testing.T) {
	store := memstore.New(memstore.Config{})
	s := nodetest.StartNodeServer(t, nodetest.NodeConfig{CA: newRotation(t), Store: store, Edit: shortTTL(4 * time.Second)})
	dir := t.TempDir()
	a := newAgent(t, s, dir)
	web := s.Register(t, a.ID(), "/web")
	a.WaitSynced(t)
	first := serial(a)
	savedKey, err := os.ReadFile(filepath.Join(dir, "agent-key.pem"))
	require.NoError(t, err)

	require.Eventually(t, func() bool { return serial(a) != first }, 30*time.Second, 20*time.Millisecond)
	renewed := a.SVID()
	assert.Equal(t, a.ID(), renewed.ID)

	// The saved SVID and key are the new ones.
	require.Eventually(t, func() bool {
		pemBytes, err := os.ReadFile(filepath.Join(dir, "agent-svid.pem"))
		if err != nil {
			return false
		}
		certs, err := pemutil.ParseCertificates(pemBytes)
		return err == nil && certs[0].SerialNumber.Text(16) != first
	}, 10*time.Second, 20*time.Millisecond)
	nowKey, err := os.ReadFile(filepath.Join(dir, "agent-key.pem"))
	require.NoError(t, err)
	assert.NotEqual(t, savedKey, nowKey, "a new key for each renewal")

	// The server knows the new serial, and the workload is served.
	require.Eventually(t, func() bool {
		rec, err := store.GetAgent(t.Context(), a.ID())
		return err == nil && rec.SerialNumber != first
	}, 10*time.Second, 20*time.Millisecond)
	assert.Equal(t, web.SPIFFEID, a.FetchX509SVID(t).ID)
	require.NoError(t, a.Healthy())
}

// Property: renewing the agent SVID, which supersedes the one the entry
// stream was opened with, makes the agent reconnect with the new one, not
// attest again (which an x509pop agent could do): each renewal keeps the
// server's record's previous serial, and entries registered after the
// renewals still reach the workload.
func TestRenewalReconnectsTheStreamWithoutAttestingAgain(t *testing.T) {
	store := memstore.New(memstore.Config{})
	nodeCA, node := x509PopNode(t)
	// Long enough that a renewal at half life, slow under -race on a loaded
	// machine, still reaches the server before the SVID expires.
	s := nodetest.StartNodeServer(t, nodetest.NodeConfig{CA: newRotation(t), Store: store, Edit: withX509Pop(t, nodeCA, shortTTL(12*time.Second))})
	logs := &logtest.Buffer{}
	cfg := withAttestor(t, s, node)
	cfg.Logger = logs.Logger()
	a := nodetest.StartAgent(t, cfg)
	a.WaitSynced(t)
	first := serial(a)
	require.Eventually(t, func() bool { return serial(a) != first }, 30*time.Second, 20*time.Millisecond)
	second := serial(a)
	require.Eventually(t, func() bool { return serial(a) != second }, 30*time.Second, 20*time.Millisecond)

	web := s.Register(t, a.ID(), "/after-renewals")
	assert.Equal(t, web.SPIFFEID, a.WaitSVID(t, web.SPIFFEID).ID)
	require.NoError(t, a.Healthy())
	assert.False(t, logs.Contains("refused the agent"), "no refusal:\n%s", logs)
	assert.False(t, logs.Contains("attested again"), "no attestation after the first:\n%s", logs)
	// A routine renewal is no incident: nothing above Info.
	assert.False(t, logs.Contains("level=WARN") || logs.Contains("level=ERROR"), "a routine renewal logs no WARN:\n%s", logs)
	assert.GreaterOrEqual(t, strings.Count(logs.String(), "agent SVID renewed"), 2, logs.String())
}

// waitExpired waits until the agent's own SVID is past its NotAfter.
func waitExpired(t *testing.T, a *nodetest.Agent) {
	t.Helper()
	notAfter := a.Stats().SVIDExpiresAt
	require.Eventually(t, func() bool { return time.Now().After(notAfter) }, 30*time.Second, 20*time.Millisecond)
}

// Property: an agent whose SVID expired while its servers were away
// attests again by itself when its node attestor allows (x509pop), keeping
// its agent ID, and syncs again.
func TestX509PopAgentRecoversAfterItsSVIDExpired(t *testing.T) {
	store := memstore.New(memstore.Config{})
	m := newRotation(t)
	nodeCA, node := x509PopNode(t)
	s := nodetest.StartNodeServer(t, nodetest.NodeConfig{CA: m, Store: store, Edit: withX509Pop(t, nodeCA, shortTTL(3*time.Second))})
	a := nodetest.StartAgent(t, withAttestor(t, s, node))
	id := a.ID()
	a.WaitSynced(t)
	s.Stop()
	waitExpired(t, a)
	require.EqualError(t, a.Healthy(), "agent: the agent SVID has expired")
	old := serial(a)

	s2 := nodetest.StartNodeServer(t, nodetest.NodeConfig{CA: m, Store: store, Addr: s.Addr, Edit: withX509Pop(t, nodeCA, shortTTL(time.Minute))})
	require.Eventually(t, func() bool { return serial(a) != old && a.Healthy() == nil }, 30*time.Second, 20*time.Millisecond)
	assert.Equal(t, id, a.ID(), "x509pop gives the same node the same ID")
	web := s2.Register(t, a.ID(), "/web")
	require.Eventually(t, func() bool { return a.Stats().Entries == 1 }, 20*time.Second, 20*time.Millisecond)
	assert.Equal(t, web.SPIFFEID, a.WaitSVID(t, web.SPIFFEID).ID) // held is not yet served
}

// Property: a join token admits a node once, so an agent whose SVID
// expired cannot attest again: it says so in its log, reports itself
// unhealthy, and keeps serving the SVIDs it holds until they expire.
func TestJoinTokenAgentServesCacheAfterItsSVIDExpired(t *testing.T) {
	store := memstore.New(memstore.Config{})
	m := newRotation(t)
	s := nodetest.StartNodeServer(t, nodetest.NodeConfig{CA: m, Store: store, Edit: shortTTL(3 * time.Second)})
	logs := &logtest.Buffer{}
	cfg := s.AgentConfig(t)
	cfg.Logger = logs.Logger()
	a := nodetest.StartAgent(t, cfg)
	web := s.Register(t, a.ID(), "/web")
	a.WaitSynced(t)
	require.Equal(t, web.SPIFFEID, a.FetchX509SVID(t).ID)
	s.Stop()
	waitExpired(t, a)

	nodetest.StartNodeServer(t, nodetest.NodeConfig{CA: m, Store: store, Addr: s.Addr, Edit: shortTTL(time.Minute)})
	require.Eventually(t, func() bool { return logs.Contains("attesting again failed") }, 30*time.Second, 20*time.Millisecond)
	assert.EqualError(t, a.Healthy(), "agent: the agent SVID has expired")
	assert.Equal(t, web.SPIFFEID, a.FetchX509SVID(t).ID, "the cached workload SVID is still served")
	assert.False(t, logs.Contains(s.Token(t)[:8]), "no token in the log")
}

// Property: an evicted agent loses its stream, and one whose attestor
// allows it attests again and is served again.
func TestEvictedX509PopAgentAttestsAgain(t *testing.T) {
	store := memstore.New(memstore.Config{})
	m := newRotation(t)
	nodeCA, node := x509PopNode(t)
	s := nodetest.StartNodeServer(t, nodetest.NodeConfig{CA: m, Store: store, Edit: withX509Pop(t, nodeCA, nil)})
	a := nodetest.StartAgent(t, withAttestor(t, s, node))
	a.WaitSynced(t)
	old := serial(a)

	require.NoError(t, store.DeleteAgent(t.Context(), a.ID()))
	require.Eventually(t, func() bool {
		rec, err := store.GetAgent(t.Context(), a.ID())
		return err == nil && rec.SerialNumber != old && serial(a) == rec.SerialNumber
	}, 30*time.Second, 20*time.Millisecond)
	syncs := a.Stats().Syncs
	s.Register(t, a.ID(), "/after-eviction")
	require.Eventually(t, func() bool { return a.Stats().Syncs > syncs && a.Stats().Entries == 1 }, 20*time.Second, 20*time.Millisecond)
}

// Property: when the server taints a CA, the workload receives a fresh
// SVID from the new CA without waiting for its refresh time.
func TestTaintedCAReachesTheWorkload(t *testing.T) {
	m := newRotation(t)
	s := nodetest.StartNodeServer(t, nodetest.NodeConfig{CA: m, Store: memstore.New(memstore.Config{})})
	a := newAgent(t, s, "")
	s.Register(t, a.ID(), "/web")
	a.WaitSynced(t)
	addr := a.Addr

	updates := make(chan *x509svid.SVID, 16)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	client, err := workloadapi.New(ctx, workloadapi.WithAddr(addr))
	require.NoError(t, err)
	defer client.Close()
	go client.WatchX509Context(ctx, watcher{updates})
	var first *x509svid.SVID
	select {
	case first = <-updates:
	case <-time.After(10 * time.Second):
		t.Fatal("no SVID")
	}

	oldCA := m.X509Authority().Certificate()
	var oldID string
	for _, info := range m.X509CAs() {
		if info.Certificate.Equal(oldCA) {
			oldID = info.ID
		}
	}
	require.NoError(t, first.Certificates[0].CheckSignatureFrom(oldCA))
	_, err = m.PrepareX509CA(t.Context())
	require.NoError(t, err)
	require.NoError(t, m.ActivateX509CA(t.Context()))
	newCA := m.X509Authority().Certificate()
	require.NoError(t, m.TaintX509CA(t.Context(), oldID))

	require.Eventually(t, func() bool {
		select {
		case svid := <-updates:
			return svid.Certificates[0].CheckSignatureFrom(newCA) == nil
		default:
			return false
		}
	}, 30*time.Second, 20*time.Millisecond)
}

// Property: with two servers configured, the agent syncs with the second
// when the first stops, and changes keep reaching it.
func TestAgentFailsOverToTheSecondServer(t *testing.T) {
	store := memstore.New(memstore.Config{})
	m := newRotation(t)
	s1 := nodetest.StartNodeServer(t, nodetest.NodeConfig{CA: m, Store: store})
	s2 := nodetest.StartNodeServer(t, nodetest.NodeConfig{CA: m, Store: store})
	cfg := s1.AgentConfig(t)
	cfg.Servers = []string{s1.Addr, s2.Addr}
	a := nodetest.StartAgent(t, cfg)
	s1.Register(t, a.ID(), "/web")
	a.WaitSynced(t)
	require.Eventually(t, func() bool { return a.Stats().Entries == 1 }, 20*time.Second, 20*time.Millisecond)

	s1.Stop()
	s2.Register(t, a.ID(), "/db")
	require.Eventually(t, func() bool { st := a.Stats(); return st.Connected && st.Entries == 2 }, 30*time.Second, 20*time.Millisecond)
	require.NoError(t, a.Healthy())
}

// Property: saved state that does not hold together is ignored with a
// warning, and the agent attests again instead of presenting it. (A file
// others could have written is refused instead: see
// TestDataDirFilesOthersCouldChangeAreRefused.)
func TestCorruptedStateIsIgnored(t *testing.T) {
	s := startServer(t)
	for _, tt := range []struct {
		name    string
		corrupt func(t *testing.T, dir string)
		want    string
	}{
		{"key of another SVID", func(t *testing.T, dir string) {
			der, err := pemutil.EncodePKCS8PrivateKey(testca.NewECKey(t))
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(dir, "agent-key.pem"), der, 0o600))
		}, "does not match"},
		{"garbage bundle", func(t *testing.T, dir string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "bundle.json"), []byte("{not json"), 0o644))
		}, "saved bundle"},
		{"bundle of another CA", func(t *testing.T, dir string) {
			doc, err := newRotation(t).Bundle().Marshal()
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(dir, "bundle.json"), doc, 0o644))
		}, "saved SVID"},
		{"garbage SVID", func(t *testing.T, dir string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "agent-svid.pem"), []byte("junk"), 0o644))
		}, "saved SVID"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			first := newAgent(t, s, dir)
			oldID := first.ID()
			require.NoError(t, first.Close())
			tt.corrupt(t, dir)

			logs := &logtest.Buffer{}
			cfg := s.AgentConfig(t)
			cfg.DataDir, cfg.Logger = dir, logs.Logger()
			a := nodetest.StartAgent(t, cfg)
			assert.NotEqual(t, oldID, a.ID(), "attested again with the new token")
			assert.True(t, logs.Contains("ignoring the saved agent state"))
			assert.True(t, logs.Contains(tt.want), "the warning says why")
			a.WaitSynced(t)
		})
	}
}

// Property: many agents starting at once against one server all attest
// and sync.
func TestManyAgentsStartAtOnce(t *testing.T) {
	s := startServer(t)
	const n = 50
	cfgs := make([]agent.Config, n)
	for i := range cfgs {
		cfgs[i] = s.AgentConfig(t)
	}
	agents := make([]*nodetest.Agent, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			agents[i], errs[i] = nodetest.TryAgent(t, cfgs[i])
		})
	}
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i], "agent %d", i)
	}
	for _, a := range agents {
		a.WaitSynced(t)
	}
}

func TestNewValidation(t *testing.T) {
	wa, err := unix.New(unix.Config{SkipHash: true})
	require.NoError(t, err)
	tok, _, err := jointoken.Generate(t.Context(), memstore.New(memstore.Config{}), jointoken.Params{})
	require.NoError(t, err)
	ok := agent.Config{TrustDomain: td, Servers: []string{"127.0.0.1:1"}, NodeAttestor: jointoken.NewClient(tok),
		WorkloadAttestors: []attest.WorkloadAttestor{wa}, TrustBundle: testca.New(t, td).X509Bundle()}
	for _, tt := range []struct {
		name string
		mod  func(*agent.Config)
		is   error  // when not nil, the error wraps it
		want string // the whole message
	}{
		{"no trust domain", func(c *agent.Config) { c.TrustDomain = spiffeid.TrustDomain{} }, nil, "agent: Config.TrustDomain is required"},
		{"no servers", func(c *agent.Config) { c.Servers = nil }, nil, "agent: Config.Servers needs at least one address"},
		{"no workload attestor", func(c *agent.Config) { c.WorkloadAttestors = nil }, nil, "agent: Config.WorkloadAttestors needs at least one attestor"},
		{"nil workload attestor", func(c *agent.Config) { c.WorkloadAttestors = []attest.WorkloadAttestor{wa, nil} }, nil, "agent: Config.WorkloadAttestors holds a nil attestor"},
		{"negative retry", func(c *agent.Config) { c.RetryMin = -1 }, nil, "agent: retry bounds must not be negative"},
		{"no trust bundle", func(c *agent.Config) { c.TrustBundle = nil }, nil, "agent: a trust bundle is needed to attest (or InsecureBootstrap, to try things out)"},
		{"no node attestor", func(c *agent.Config) { c.NodeAttestor = nil }, agent.ErrNoNodeAttestor, "agent: no node attestor, and no usable agent SVID is saved in the data directory"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.mod(&cfg)
			_, err := agent.New(t.Context(), cfg)
			require.EqualError(t, err, tt.want)
			if tt.is != nil {
				assert.ErrorIs(t, err, tt.is)
			}
		})
	}

	// Unreachable servers: Run retries until its ctx ends, and then
	// returns nil.
	cfg := ok
	logs := &logtest.Buffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	cfg.RetryMin, cfg.RetryMax = 10*time.Millisecond, 20*time.Millisecond
	a, err := agent.New(t.Context(), cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	require.NoError(t, a.Run(ctx))
	assert.True(t, logs.Contains("attestation failed; retrying"))
	assert.Zero(t, a.ID(), "never attested")
	assert.EqualError(t, a.Healthy(), "agent: not attested yet")
	require.NoError(t, a.Close())

	// A node attestor that cannot produce its evidence stops Run at once.
	cfg.NodeAttestor = jointoken.NewClient("malformed")
	a, err = agent.New(t.Context(), cfg)
	require.NoError(t, err)
	assert.ErrorIs(t, a.Run(t.Context()), nodeapi.ErrNodeAttestor)
	require.NoError(t, a.Close())
}

// InsecureBootstrap attests without a trust bundle and trusts the bundle
// the server returns; the agent's handler is then served by a Workload API
// server of the caller's.
func TestInsecureBootstrapAndHandler(t *testing.T) {
	s := startServer(t)
	cfg := nodetest.AgentDefaults(t, agent.Config{
		Servers: []string{s.Addr}, InsecureBootstrap: true, NodeAttestor: jointoken.NewClient(s.Token(t)),
	})
	lis := cfg.Listener
	cfg.Listener = nil // the agent serves nothing: the test serves its handler on lis
	a, err := agent.New(t.Context(), cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	ran := make(chan error, 1)
	go func() { ran <- a.Run(ctx) }()
	<-a.Attested()
	assert.True(t, a.Bundle().Equal(s.CA.Bundle()))
	web := s.Register(t, a.ID(), "/web")
	<-a.Synced()

	srv, err := endpoint.New(endpoint.Config{Handler: a.Handler()})
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, lis) }()
	// The first sync may come before the entry does, and the agent holds
	// an entry (Stats().Entries) a moment before its handler serves it.
	var id spiffeid.ID
	require.Eventually(t, func() bool {
		got, err := fetch(t, "unix://"+lis.Addr().String())
		id = got
		return err == nil
	}, nodetest.Timeout, 10*time.Millisecond, "the workload gets its SVID")
	assert.Equal(t, web.SPIFFEID, id)
	cancel()
	require.NoError(t, <-served)
	require.NoError(t, <-ran)
	require.NoError(t, a.Close())
}

// Property: when the server names the CA that signed the agent's own SVID
// as tainted, the agent renews its SVID at once, not at its half life.
func TestTaintedCARenewsTheAgentSVID(t *testing.T) {
	m := newRotation(t)
	s := nodetest.StartNodeServer(t, nodetest.NodeConfig{CA: m, Store: memstore.New(memstore.Config{})})
	a := newAgent(t, s, "")
	a.WaitSynced(t)
	oldCA := m.X509Authority().Certificate()
	first := a.SVID()
	require.Equal(t, oldCA.Raw, first.Certificates[1].Raw)

	prepared, err := m.PrepareX509CA(t.Context())
	require.NoError(t, err)
	require.Eventually(t, func() bool { return slices.ContainsFunc(a.Bundle().X509Authorities(), prepared.Certificate.Equal) },
		10*time.Second, 5*time.Millisecond, "the prepared CA in the agent's bundle")
	// An activation alone leaves the agent SVID to its half life. The
	// syncs are counted before it: the one that tells of it may come as
	// soon as it is made.
	syncs := a.Stats().Syncs
	require.NoError(t, m.ActivateX509CA(t.Context()))
	newCA := m.X509Authority().Certificate()
	require.True(t, newCA.Equal(prepared.Certificate))
	require.Eventually(t, func() bool { return a.Stats().Syncs > syncs }, 10*time.Second, 5*time.Millisecond)
	assert.Equal(t, first.Certificates[0].Raw, a.SVID().Certificates[0].Raw)

	taintAndAwaitRenewal(t, m, a, oldCA, newCA)
	require.NoError(t, a.Healthy())
}
