package agent_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/jointoken"
	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi"
)

var (
	td     = spiffeid.RequireTrustDomainFromString("example.org")
	ourUID = attest.Selector{Type: "unix", Value: "uid:" + strconv.Itoa(os.Getuid())}
)

// server is an issuing server on loopback: rotating CA, memstore, join
// tokens.
type server struct {
	ca    *rotation.Manager
	store *memstore.Store
	srv   *nodeapi.Server
	addr  string
	stop  func()
}

func startServer(t *testing.T, store *memstore.Store, addr string) *server {
	t.Helper()
	m, err := rotation.New(t.Context(), rotation.Config{TrustDomain: td})
	require.NoError(t, err)
	return startServerWith(t, m, store, addr)
}

func startServerWith(t *testing.T, m *rotation.Manager, store *memstore.Store, addr string) *server {
	t.Helper()
	return startServerCfg(t, m, store, addr, nil)
}

// startServerCfg starts a server with join tokens, after mod changed its
// configuration (to add attestors, shorten the agent SVID TTL).
func startServerCfg(t *testing.T, m *rotation.Manager, store *memstore.Store, addr string, mod func(*nodeapi.ServerConfig)) *server {
	t.Helper()
	jt, err := jointoken.NewServer(jointoken.ServerConfig{Store: store})
	require.NoError(t, err)
	cfg := nodeapi.ServerConfig{
		Authority: m,
		Registry:  store,
		Agents:    store,
		Attestors: []attest.NodeAttestor{jt},
	}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := nodeapi.NewServer(t.Context(), cfg)
	require.NoError(t, err)
	var lis net.Listener
	for range 50 { // a restarted server takes its old port back
		if lis, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done, ran := make(chan error, 1), make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	go func() { ran <- srv.Run(ctx) }()
	s := &server{ca: m, store: store, srv: srv, addr: lis.Addr().String()}
	stopped := false
	s.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		require.NoError(t, <-done)
		require.ErrorIs(t, <-ran, context.Canceled)
		require.NoError(t, srv.Close())
	}
	t.Cleanup(s.stop)
	return s
}

func (s *server) token(t *testing.T) string {
	t.Helper()
	tok, _, err := jointoken.Generate(t.Context(), s.store, jointoken.Params{})
	require.NoError(t, err)
	return tok
}

func (s *server) entry(t *testing.T, parent spiffeid.ID, path string) registry.Entry {
	t.Helper()
	e, err := s.store.Create(t.Context(), registry.Entry{
		SPIFFEID:  spiffeid.RequireFromPath(td, path),
		ParentID:  parent,
		Selectors: []attest.Selector{ourUID},
	})
	require.NoError(t, err)
	return e
}

// newAgent runs an agent that attests to s with a join token until the test
// ends, and waits until it is attested.
func newAgent(t *testing.T, s *server, token, dataDir string) *testAgent {
	t.Helper()
	return startAgent(t, agentOpts{servers: []string{s.addr}, bundle: s.ca.Bundle().X509Bundle(), attestor: jointoken.NewClient(token), dataDir: dataDir})
}

func socketPath(t *testing.T) string {
	dir, err := os.MkdirTemp("", "agent")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "api.sock")
}

func waitSynced(t *testing.T, a *testAgent) {
	t.Helper()
	select {
	case <-a.Synced():
	case <-time.After(20 * time.Second):
		t.Fatal("the agent did not sync within 20s")
	}
}

// fetchID fetches the caller's X509-SVID from the agent and returns its ID.
func fetchID(t *testing.T, addr string) spiffeid.ID {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	svid, err := workloadapi.FetchX509SVID(ctx, workloadapi.WithAddr(addr))
	require.NoError(t, err)
	return svid.ID
}

func TestAgentServesItsEntries(t *testing.T) {
	t.Cleanup(leaktest.Check(t)) // registered first, so it runs after every other cleanup
	s := startServer(t, memstore.New(memstore.Config{}), "127.0.0.1:0")
	a := newAgent(t, s, s.token(t), t.TempDir())
	assert.Contains(t, a.ID().String(), "/spiffekit/agent/join_token/")
	web := s.entry(t, a.ID(), "/web")
	waitSynced(t, a)
	addr := a.addr
	assert.Equal(t, web.SPIFFEID, fetchID(t, addr))

	// The SVID chains to the server's CA.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	svid, err := workloadapi.FetchX509SVID(ctx, workloadapi.WithAddr(addr))
	require.NoError(t, err)
	_, _, err = x509svid.Verify(svid.Certificates, s.ca.Bundle())
	require.NoError(t, err)
	require.NoError(t, a.Healthy())
	assert.Equal(t, 1, a.Stats().Entries)
}

func TestEntryCreatedLaterReachesTheWorkload(t *testing.T) {
	s := startServer(t, memstore.New(memstore.Config{}), "127.0.0.1:0")
	a := newAgent(t, s, s.token(t), "")
	waitSynced(t, a)
	addr := a.addr

	updates := make(chan *x509svid.SVID, 8)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	client, err := workloadapi.New(ctx, workloadapi.WithAddr(addr))
	require.NoError(t, err)
	defer client.Close()
	go client.WatchX509Context(ctx, watcher{updates})

	s.entry(t, a.ID(), "/late")
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
	s := startServerWith(t, m, store, "127.0.0.1:0")
	a := newAgent(t, s, s.token(t), t.TempDir())
	web := s.entry(t, a.ID(), "/web")
	waitSynced(t, a)
	addr := a.addr
	require.Equal(t, web.SPIFFEID, fetchID(t, addr))

	s.stop()
	require.Eventually(t, func() bool { return !a.Stats().Connected }, 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, web.SPIFFEID, fetchID(t, addr), "served from the cache while the server is away")

	// The server comes back on the same address; the agent re-syncs and
	// a new entry reaches it.
	s2 := startServerWith(t, m, store, s.addr)
	require.Eventually(t, func() bool { return a.Stats().Connected }, 20*time.Second, 10*time.Millisecond)
	db := s2.entry(t, a.ID(), "/db")
	require.Eventually(t, func() bool { return a.Stats().Entries == 2 }, 10*time.Second, 10*time.Millisecond)
	_ = db
}

func TestRestartedAgentReusesItsSVID(t *testing.T) {
	s := startServer(t, memstore.New(memstore.Config{}), "127.0.0.1:0")
	dir := t.TempDir()
	token := s.token(t)
	a := newAgent(t, s, token, dir)
	id := a.ID()
	serial := a.SVID().Certificates[0].SerialNumber
	require.NoError(t, a.Close())

	info, err := os.Stat(filepath.Join(dir, "agent-key.pem"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())

	// The join token is spent, but the saved SVID lets the agent back in.
	b := newAgent(t, s, token, dir)
	assert.Equal(t, id, b.ID())
	assert.Equal(t, serial, b.SVID().Certificates[0].SerialNumber)
	waitSynced(t, b)

	// Without the saved SVID, the spent token is refused: Run fails.
	_, err = tryAgent(t, agentOpts{servers: []string{s.addr}, bundle: s.ca.Bundle().X509Bundle(), attestor: jointoken.NewClient(token)})
	require.Error(t, err)
	assert.ErrorContains(t, err, "agent: the server refused attestation")
}

type brokenAttestor struct{}

func (brokenAttestor) Type() string { return "join_token" }
func (brokenAttestor) Payload(context.Context) ([]byte, error) {
	return nil, errors.New("no evidence on this node")
}
func (brokenAttestor) Respond(context.Context, []byte) ([]byte, error) { return nil, errors.New("no") }

func TestBrokenNodeAttestorStopsAtOnce(t *testing.T) {
	s := startServer(t, memstore.New(memstore.Config{}), "127.0.0.1:0")
	_, err := tryAgent(t, agentOpts{servers: []string{s.addr}, bundle: s.ca.Bundle().X509Bundle(), attestor: brokenAttestor{}})
	require.ErrorIs(t, err, nodeapi.ErrNodeAttestor)
	assert.Contains(t, err.Error(), "no evidence on this node")
}

// TestCAActivationReachesWorkloads: when the server activates a new CA (no
// taint), the agent replaces its SVIDs with ones chaining to it at once,
// not at their half life.
func TestCAActivationReachesWorkloads(t *testing.T) {
	s := startServer(t, memstore.New(memstore.Config{}), "127.0.0.1:0")
	a := newAgent(t, s, s.token(t), "")
	s.entry(t, a.ID(), "/web")
	waitSynced(t, a)
	addr := a.addr
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	before, err := workloadapi.FetchX509SVID(ctx, workloadapi.WithAddr(addr))
	require.NoError(t, err)

	_, err = s.ca.PrepareX509CA(t.Context())
	require.NoError(t, err)
	require.NoError(t, s.ca.ActivateX509CA(t.Context()))
	newCA := s.ca.X509Authority().Certificate()
	require.NotEqual(t, before.Certificates[1].Raw, newCA.Raw)
	require.Eventually(t, func() bool {
		svid, err := workloadapi.FetchX509SVID(ctx, workloadapi.WithAddr(addr))
		return err == nil && len(svid.Certificates) > 1 && string(svid.Certificates[1].Raw) == string(newCA.Raw)
	}, 10*time.Second, 20*time.Millisecond, "the workload's SVID chains to the new CA")
}
