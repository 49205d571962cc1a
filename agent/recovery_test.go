package agent_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"log/slog"
	"net"
	"os"
	"path/filepath"
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
	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/internal/pemutil"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// logBuffer collects log lines for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) contains(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Contains(l.buf.String(), s)
}

type agentOpts struct {
	servers   []string
	bundle    *x509bundle.Bundle
	attestor  attest.NodeAttestorClient
	workloads []attest.WorkloadAttestor // nil: attest/unix
	dataDir   string
	log       *logBuffer
	insecure  bool
	now       func() time.Time
}

// testAgent is an agent whose Run runs until the test ends, serving the
// Workload API on a unix socket.
type testAgent struct {
	*agent.Agent
	addr string // of the Workload API: "unix://" and the socket's path
}

// startAgent runs an agent until the test ends, and returns it once it is
// attested.
func startAgent(t *testing.T, o agentOpts) *testAgent {
	t.Helper()
	a, err := tryAgent(t, o)
	require.NoError(t, err)
	return a
}

// tryAgent builds an agent and runs it until the test ends. It returns the
// agent once it is attested, or the error of New, or that of a Run that
// returned first.
func tryAgent(t *testing.T, o agentOpts) (*testAgent, error) {
	t.Helper()
	a, lis, err := newAgentCfg(t, o)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	var runErr error
	done := make(chan struct{})
	go func() {
		runErr = a.Run(ctx)
		close(done)
	}()
	attested := false
	t.Cleanup(func() {
		cancel()
		<-done
		require.NoError(t, a.Close())
		if attested {
			require.NoError(t, runErr, "Run of an agent that attested")
		}
	})
	select {
	case <-a.Attested():
		attested = true
		return &testAgent{Agent: a, addr: "unix://" + lis.Addr().String()}, nil
	case <-done:
		return nil, runErr
	case <-time.After(30 * time.Second):
		t.Fatal("the agent did not attest within 30s")
	}
	return nil, nil
}

// newAgentCfg builds an agent with a Workload API socket, and the test's
// defaults for what o leaves unset.
func newAgentCfg(t *testing.T, o agentOpts) (*agent.Agent, net.Listener, error) {
	t.Helper()
	if o.workloads == nil {
		wa, err := unix.New(unix.Config{SkipHash: true})
		require.NoError(t, err)
		o.workloads = []attest.WorkloadAttestor{wa}
	}
	var logger *slog.Logger
	if o.log != nil {
		logger = slog.New(slog.NewTextHandler(o.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	lis, err := endpoint.ListenUnix(socketPath(t), 0o700)
	require.NoError(t, err)
	a, err := agent.New(t.Context(), agent.Config{
		TrustDomain:       td,
		Servers:           o.servers,
		TrustBundle:       o.bundle,
		InsecureBootstrap: o.insecure,
		NodeAttestor:      o.attestor,
		WorkloadAttestors: o.workloads,
		Listener:          lis,
		DataDir:           o.dataDir,
		RetryMin:          20 * time.Millisecond,
		RetryMax:          200 * time.Millisecond,
		Logger:            logger,
		Now:               o.now,
	})
	if err != nil {
		lis.Close()
	}
	return a, lis, err
}

func serial(a *testAgent) string { return a.SVID().Certificates[0].SerialNumber.Text(16) }

func newRotation(t *testing.T) *rotation.Manager {
	m, err := rotation.New(t.Context(), rotation.Config{TrustDomain: td})
	require.NoError(t, err)
	return m
}

func shortTTL(ttl time.Duration) func(*nodeapi.ServerConfig) {
	return func(c *nodeapi.ServerConfig) { c.AgentSVIDTTL = ttl }
}

// x509PopNode is a node CA and one node certificate it issued.
func x509PopNode(t *testing.T) (*testca.CA, *x509pop.Client) {
	nodeCA := testca.New(t, spiffeid.RequireTrustDomainFromString("nodes.test"))
	chain, key := nodeCA.NewLeaf(t, spiffeid.ID{})
	c, err := x509pop.NewClient(x509pop.ClientConfig{Certificates: chain, Key: key})
	require.NoError(t, err)
	return nodeCA, c
}

func withX509Pop(t *testing.T, nodeCA *testca.CA, mod func(*nodeapi.ServerConfig)) func(*nodeapi.ServerConfig) {
	return func(c *nodeapi.ServerConfig) {
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
	s := startServerCfg(t, newRotation(t), store, "127.0.0.1:0", shortTTL(4*time.Second))
	dir := t.TempDir()
	a := newAgent(t, s, s.token(t), dir)
	web := s.entry(t, a.ID(), "/web")
	waitSynced(t, a)
	addr := a.addr
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
	assert.Equal(t, web.SPIFFEID, fetchID(t, addr))
	require.NoError(t, a.Healthy())
}

// waitExpired waits until the agent's own SVID is past its NotAfter.
func waitExpired(t *testing.T, a *testAgent) {
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
	s := startServerCfg(t, m, store, "127.0.0.1:0", withX509Pop(t, nodeCA, shortTTL(3*time.Second)))
	a := startAgent(t, agentOpts{servers: []string{s.addr}, bundle: m.Bundle().X509Bundle(), attestor: node})
	id := a.ID()
	waitSynced(t, a)
	s.stop()
	waitExpired(t, a)
	require.Error(t, a.Healthy())
	old := serial(a)

	s2 := startServerCfg(t, m, store, s.addr, withX509Pop(t, nodeCA, shortTTL(time.Minute)))
	require.Eventually(t, func() bool { return serial(a) != old && a.Healthy() == nil }, 30*time.Second, 20*time.Millisecond)
	assert.Equal(t, id, a.ID(), "x509pop gives the same node the same ID")
	web := s2.entry(t, a.ID(), "/web")
	require.Eventually(t, func() bool { return a.Stats().Entries == 1 }, 20*time.Second, 20*time.Millisecond)
	addr := a.addr
	assert.Equal(t, web.SPIFFEID, fetchID(t, addr))
}

// Property: a join token admits a node once, so an agent whose SVID
// expired cannot attest again: it says so in its log, reports itself
// unhealthy, and keeps serving the SVIDs it holds until they expire.
func TestJoinTokenAgentServesCacheAfterItsSVIDExpired(t *testing.T) {
	store := memstore.New(memstore.Config{})
	m := newRotation(t)
	s := startServerCfg(t, m, store, "127.0.0.1:0", shortTTL(3*time.Second))
	logs := &logBuffer{}
	a := startAgent(t, agentOpts{servers: []string{s.addr}, bundle: m.Bundle().X509Bundle(), attestor: jointoken.NewClient(s.token(t)), log: logs})
	web := s.entry(t, a.ID(), "/web")
	waitSynced(t, a)
	addr := a.addr
	require.Equal(t, web.SPIFFEID, fetchID(t, addr))
	s.stop()
	waitExpired(t, a)

	startServerCfg(t, m, store, s.addr, shortTTL(time.Minute))
	require.Eventually(t, func() bool { return logs.contains("attesting again failed") }, 30*time.Second, 20*time.Millisecond)
	assert.ErrorContains(t, a.Healthy(), "expired")
	assert.Equal(t, web.SPIFFEID, fetchID(t, addr), "the cached workload SVID is still served")
	assert.False(t, logs.contains(s.token(t)[:8]), "no token in the log")
}

// Property: an evicted agent loses its stream, and one whose attestor
// allows it attests again and is served again.
func TestEvictedX509PopAgentAttestsAgain(t *testing.T) {
	store := memstore.New(memstore.Config{})
	m := newRotation(t)
	nodeCA, node := x509PopNode(t)
	s := startServerCfg(t, m, store, "127.0.0.1:0", withX509Pop(t, nodeCA, nil))
	a := startAgent(t, agentOpts{servers: []string{s.addr}, bundle: m.Bundle().X509Bundle(), attestor: node})
	waitSynced(t, a)
	old := serial(a)

	require.NoError(t, store.DeleteAgent(t.Context(), a.ID()))
	require.Eventually(t, func() bool {
		rec, err := store.GetAgent(t.Context(), a.ID())
		return err == nil && rec.SerialNumber != old && serial(a) == rec.SerialNumber
	}, 30*time.Second, 20*time.Millisecond)
	syncs := a.Stats().Syncs
	s.entry(t, a.ID(), "/after-eviction")
	require.Eventually(t, func() bool { return a.Stats().Syncs > syncs && a.Stats().Entries == 1 }, 20*time.Second, 20*time.Millisecond)
}

// Property: when the server taints a CA, the workload receives a fresh
// SVID from the new CA without waiting for its refresh time.
func TestTaintedCAReachesTheWorkload(t *testing.T) {
	m := newRotation(t)
	s := startServerWith(t, m, memstore.New(memstore.Config{}), "127.0.0.1:0")
	a := newAgent(t, s, s.token(t), "")
	s.entry(t, a.ID(), "/web")
	waitSynced(t, a)
	addr := a.addr

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
	s1 := startServerWith(t, m, store, "127.0.0.1:0")
	s2 := startServerWith(t, m, store, "127.0.0.1:0")
	a := startAgent(t, agentOpts{servers: []string{s1.addr, s2.addr}, bundle: m.Bundle().X509Bundle(), attestor: jointoken.NewClient(s1.token(t))})
	s1.entry(t, a.ID(), "/web")
	waitSynced(t, a)
	require.Eventually(t, func() bool { return a.Stats().Entries == 1 }, 20*time.Second, 20*time.Millisecond)

	s1.stop()
	s2.entry(t, a.ID(), "/db")
	require.Eventually(t, func() bool { st := a.Stats(); return st.Connected && st.Entries == 2 }, 30*time.Second, 20*time.Millisecond)
	require.NoError(t, a.Healthy())
}

// Property: saved state that does not hold together is ignored with a
// warning, and the agent attests again instead of presenting it.
func TestCorruptedStateIsIgnored(t *testing.T) {
	s := startServer(t, memstore.New(memstore.Config{}), "127.0.0.1:0")
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
		{"key readable by others", func(t *testing.T, dir string) {
			require.NoError(t, os.Chmod(filepath.Join(dir, "agent-key.pem"), 0o644))
		}, "saved key"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			first := newAgent(t, s, s.token(t), dir)
			oldID := first.ID()
			require.NoError(t, first.Close())
			tt.corrupt(t, dir)

			logs := &logBuffer{}
			a := startAgent(t, agentOpts{servers: []string{s.addr}, bundle: s.ca.Bundle().X509Bundle(), attestor: jointoken.NewClient(s.token(t)), dataDir: dir, log: logs})
			assert.NotEqual(t, oldID, a.ID(), "attested again with the new token")
			assert.True(t, logs.contains("ignoring the saved agent state"))
			assert.True(t, logs.contains(tt.want), "the warning says why")
			waitSynced(t, a)
		})
	}
}

// Property: many agents starting at once against one server all attest
// and sync.
func TestManyAgentsStartAtOnce(t *testing.T) {
	s := startServer(t, memstore.New(memstore.Config{}), "127.0.0.1:0")
	const n = 50
	tokens := make([]string, n)
	for i := range tokens {
		tokens[i] = s.token(t)
	}
	agents := make([]*testAgent, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			agents[i], errs[i] = tryAgent(t, agentOpts{servers: []string{s.addr}, bundle: s.ca.Bundle().X509Bundle(), attestor: jointoken.NewClient(tokens[i])})
		})
	}
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i], "agent %d", i)
	}
	for _, a := range agents {
		waitSynced(t, a)
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
		want string
	}{
		{"no trust domain", func(c *agent.Config) { c.TrustDomain = spiffeid.TrustDomain{} }, "TrustDomain"},
		{"no servers", func(c *agent.Config) { c.Servers = nil }, "Servers"},
		{"no workload attestor", func(c *agent.Config) { c.WorkloadAttestors = nil }, "WorkloadAttestors needs at least one"},
		{"nil workload attestor", func(c *agent.Config) { c.WorkloadAttestors = []attest.WorkloadAttestor{wa, nil} }, "nil attestor"},
		{"negative retry", func(c *agent.Config) { c.RetryMin = -1 }, "negative"},
		{"no trust bundle", func(c *agent.Config) { c.TrustBundle = nil }, "trust bundle is needed"},
		{"no node attestor", func(c *agent.Config) { c.NodeAttestor = nil }, "no usable agent SVID"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.mod(&cfg)
			_, err := agent.New(t.Context(), cfg)
			require.Error(t, err)
			assert.ErrorContains(t, err, "agent: ")
			assert.ErrorContains(t, err, tt.want)
		})
	}

	// Unreachable servers: Run retries until its ctx ends, and then
	// returns nil.
	cfg := ok
	logs := &logBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	cfg.RetryMin, cfg.RetryMax = 10*time.Millisecond, 20*time.Millisecond
	a, err := agent.New(t.Context(), cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	require.NoError(t, a.Run(ctx))
	assert.True(t, logs.contains("attestation failed; retrying"))
	assert.Zero(t, a.ID(), "never attested")
	assert.ErrorContains(t, a.Healthy(), "not attested yet")
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
	s := startServer(t, memstore.New(memstore.Config{}), "127.0.0.1:0")
	wa, err := unix.New(unix.Config{SkipHash: true})
	require.NoError(t, err)
	a, err := agent.New(t.Context(), agent.Config{
		TrustDomain: td, Servers: []string{s.addr}, InsecureBootstrap: true,
		NodeAttestor: jointoken.NewClient(s.token(t)), WorkloadAttestors: []attest.WorkloadAttestor{wa},
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	ran := make(chan error, 1)
	go func() { ran <- a.Run(ctx) }()
	<-a.Attested()
	assert.True(t, a.Bundle().Equal(s.ca.Bundle()))
	web := s.entry(t, a.ID(), "/web")
	<-a.Synced()

	srv, err := endpoint.New(endpoint.Config{Handler: a.Handler()})
	require.NoError(t, err)
	lis, err := endpoint.ListenUnix(socketPath(t), 0o700)
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, lis) }()
	assert.Equal(t, web.SPIFFEID, fetchID(t, "unix://"+lis.Addr().String()))
	cancel()
	require.NoError(t, <-served)
	require.NoError(t, <-ran)
	require.NoError(t, a.Close())
}

// Property: when the server names the CA that signed the agent's own SVID
// as tainted, the agent renews its SVID at once, not at its half life.
func TestTaintedCARenewsTheAgentSVID(t *testing.T) {
	m := newRotation(t)
	s := startServerWith(t, m, memstore.New(memstore.Config{}), "127.0.0.1:0")
	a := newAgent(t, s, s.token(t), "")
	waitSynced(t, a)
	oldCA := m.X509Authority().Certificate()
	first := a.SVID()
	require.Equal(t, oldCA.Raw, first.Certificates[1].Raw)

	_, err := m.PrepareX509CA(t.Context())
	require.NoError(t, err)
	require.NoError(t, m.ActivateX509CA(t.Context()))
	newCA := m.X509Authority().Certificate()
	// An activation alone leaves the agent SVID to its half life.
	syncs := a.Stats().Syncs
	require.Eventually(t, func() bool { return a.Stats().Syncs > syncs }, 10*time.Second, 5*time.Millisecond)
	assert.Equal(t, first.Certificates[0].Raw, a.SVID().Certificates[0].Raw)

	var oldID string
	for _, info := range m.X509CAs() {
		if info.Certificate.Equal(oldCA) {
			oldID = info.ID
		}
	}
	require.NoError(t, m.TaintX509CA(t.Context(), oldID))
	require.Eventually(t, func() bool {
		svid := a.SVID()
		return len(svid.Certificates) > 1 && string(svid.Certificates[1].Raw) == string(newCA.Raw)
	}, 10*time.Second, 5*time.Millisecond, "the agent SVID is renewed off the tainted CA")
	require.NoError(t, a.Healthy())
}
