package nodetest

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/agent"
	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/jointoken"
	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/nodeapi/nodeserver"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// A Store keeps what a [NodeServer] reads and writes: entries, agent
// records, join tokens. registry/memstore and registry/sqlstore are Stores.
type Store interface {
	registry.Store
	registry.AgentStore
	registry.TokenStore
}

// NodeConfig configures StartNodeServer. Every field may be left zero.
type NodeConfig struct {
	// CA signs for the server. Nil means a new CA manager of
	// [TrustDomain]. Servers given one CA manager (and one Store) are
	// replicas of one issuing server, or one server started again.
	CA *rotation.Manager
	// Store keeps the registry. Nil means a new memstore.
	Store Store
	// Addr is the address to listen on. Empty means a free loopback port.
	// A server started again on its predecessor's address takes it back,
	// waiting while the port is still held.
	Addr string
	// Edit, when not nil, changes the server's configuration before
	// nodeserver.New: to add node attestors to join_token, shorten the
	// agent SVID's lifetime, serve federated bundles, wrap the stores.
	Edit func(*nodeserver.Config)
	// ServeOnly serves agents without running the server's Run: the server
	// indexes the store once, when it starts, and reads none of its later
	// changes, as a server does between two reads of the change feed when
	// another server wrote.
	ServeOnly bool
}

// NodeServer is a bare node API server (package nodeapi/nodeserver) running until the
// test ends or Stop: no admin API, bundle endpoint or bundle shared with
// other servers; its CA manager and store are the test's to drive.
type NodeServer struct {
	*nodeserver.Server
	// CA is the server's CA manager.
	CA *rotation.Manager
	// Store is the server's store.
	Store Store
	// Addr is the address the server listens on.
	Addr string

	stop func()
}

// StartNodeServer runs a node API server of cfg (Serve, and Run unless
// cfg.ServeOnly), with the join_token node attestor over cfg.Store, until
// the test ends, and returns it serving.
func StartNodeServer(t testing.TB, cfg NodeConfig) *NodeServer {
	t.Helper()
	checkLeaks(t)
	if cfg.CA == nil {
		m, err := rotation.New(t.Context(), rotation.Config{TrustDomain: TrustDomain})
		require.NoError(t, err)
		cfg.CA = m
	}
	if cfg.Store == nil {
		cfg.Store = memstore.New(memstore.Config{})
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	tokens, err := jointoken.NewServer(jointoken.ServerConfig{Store: cfg.Store})
	require.NoError(t, err)
	sc := nodeserver.Config{
		Authority: cfg.CA,
		Registry:  cfg.Store,
		Agents:    cfg.Store,
		Attestors: []attest.NodeAttestor{tokens},
	}
	if cfg.Edit != nil {
		cfg.Edit(&sc)
	}
	srv, err := nodeserver.New(t.Context(), sc)
	require.NoError(t, err)
	lis, err := listen(cfg.Addr)
	if err != nil {
		srv.Close()
	}
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	served, ran := make(chan error, 1), make(chan error, 1)
	go func() { served <- srv.Serve(ctx, lis) }()
	if cfg.ServeOnly {
		ran <- context.Canceled
	} else {
		go func() { ran <- srv.Run(ctx) }()
	}
	s := &NodeServer{Server: srv, CA: cfg.CA, Store: cfg.Store, Addr: lis.Addr().String()}
	s.stop = sync.OnceFunc(func() {
		cancel()
		require.NoError(t, <-served, "the node server's Serve")
		require.ErrorIs(t, <-ran, context.Canceled, "the node server's Run")
		require.NoError(t, srv.Close())
	})
	t.Cleanup(s.stop)
	return s
}

// listen listens on addr, retrying for a while if it is in use: a server
// started again takes its predecessor's port back once the kernel let it
// go.
func listen(addr string) (net.Listener, error) {
	deadline := time.Now().Add(Timeout)
	for {
		lis, err := net.Listen("tcp", addr)
		if err == nil || time.Now().After(deadline) {
			return lis, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop stops the server before the test ends: Serve must return nil, Run
// context.Canceled, and Close succeed. Later calls do nothing.
func (s *NodeServer) Stop() { s.stop() }

// Token returns a new join token of the server's store.
func (s *NodeServer) Token(t testing.TB) string {
	t.Helper()
	tok, _, err := jointoken.Generate(t.Context(), s.Store, jointoken.Params{})
	require.NoError(t, err)
	return tok
}

// AgentConfig returns the configuration of an agent that attests to the
// server with a new join token, trusting its CA's bundle; [StartAgent]
// fills the rest.
func (s *NodeServer) AgentConfig(t testing.TB) agent.Config {
	t.Helper()
	return agent.Config{
		TrustDomain:  s.CA.Bundle().TrustDomain(),
		Servers:      []string{s.Addr},
		TrustBundle:  s.CA.Bundle().X509Bundle(),
		NodeAttestor: jointoken.NewClient(s.Token(t)),
	}
}

// Register creates, in the server's store, the entry of path in its trust
// domain for the test process ([UID]) under parent, and returns it.
func (s *NodeServer) Register(t testing.TB, parent spiffeid.ID, path string) registry.Entry {
	t.Helper()
	e, err := s.Store.Create(t.Context(), registry.Entry{
		SPIFFEID:  spiffeid.RequireFromPath(s.CA.Bundle().TrustDomain(), path),
		ParentID:  parent,
		Selectors: []attest.Selector{UID()},
	})
	require.NoError(t, err)
	return e
}
