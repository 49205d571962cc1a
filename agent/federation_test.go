package agent_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/internal/broadcast"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/nodeapi/nodeserver"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/spiffekit/spiffekit/workloadapi"
)

// fedSource is a nodeserver.FederationSource whose bundles a test sets.
type fedSource struct {
	broadcast.Hub // Subscribe
	mu            sync.Mutex
	bundles       []*spiffebundle.Bundle
}

func (f *fedSource) FederatedBundles() []*spiffebundle.Bundle {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bundles
}

func (f *fedSource) set(b ...*spiffebundle.Bundle) {
	f.mu.Lock()
	f.bundles = b
	f.mu.Unlock()
	f.Notify()
}

// Federation rule: a workload whose entry federates with a trust domain
// receives that domain's bundle as the server sent it, and loses it when
// the server drops it; the own trust domain's bundle never comes from
// federation. JWT-SVIDs are signed by the server for the entry.
func TestAgentServesFederatedBundlesAndJWTSVIDs(t *testing.T) {
	partnerTD := spiffeid.RequireTrustDomainFromString("partner.example")
	partnerCA := testca.New(t, partnerTD)
	partner := spiffebundle.FromX509Authorities(partnerTD, []*x509.Certificate{partnerCA.Root()})
	impostor := spiffebundle.FromX509Authorities(td, []*x509.Certificate{testca.New(t, td).Root()})
	fed := &fedSource{}
	fed.set(partner, impostor)

	store := memstore.New(memstore.Config{})
	m := newRotation(t)
	s := nodetest.StartNodeServer(t, nodetest.NodeConfig{CA: m, Store: store, Edit: func(c *nodeserver.Config) { c.Federation = fed }})
	a := newAgent(t, s, t.TempDir())
	web, err := store.Create(t.Context(), registry.Entry{
		SPIFFEID: spiffeid.RequireFromPath(td, "/web"), ParentID: a.ID(),
		Selectors: []attest.Selector{ourUID}, FederatesWith: []spiffeid.TrustDomain{partnerTD},
	})
	require.NoError(t, err)
	a.WaitSynced(t)
	require.Eventually(t, func() bool { return a.Stats().Entries == 1 }, 20*time.Second, 20*time.Millisecond)
	addr := a.Addr

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var xc *workloadapi.X509Context
	require.Eventually(t, func() bool {
		xc, err = workloadapi.FetchX509Context(ctx, workloadapi.WithAddr(addr))
		return err == nil && xc.Bundles.Len() == 2
	}, 20*time.Second, 20*time.Millisecond)
	got, err := xc.Bundles.GetX509BundleForTrustDomain(partnerTD)
	require.NoError(t, err)
	assert.True(t, got.Equal(partner.X509Bundle()))
	own, err := xc.Bundles.GetX509BundleForTrustDomain(td)
	require.NoError(t, err)
	assert.True(t, own.Equal(m.Bundle().X509Bundle()), "the own bundle is the CA's, not the impostor's")

	// The server drops the partner: the workload loses its bundle.
	fed.set()
	require.Eventually(t, func() bool {
		xc, err = workloadapi.FetchX509Context(ctx, workloadapi.WithAddr(addr))
		return err == nil && xc.Bundles.Len() == 1
	}, 20*time.Second, 20*time.Millisecond)

	svid, err := workloadapi.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "db"}, workloadapi.WithAddr(addr))
	require.NoError(t, err)
	assert.Equal(t, web.SPIFFEID, svid.ID)
	_, err = jwtsvid.ParseAndValidate(svid.Marshal(), m.Bundle(), []string{"db"})
	require.NoError(t, err)
}

// A data directory that cannot be created fails New instead of running
// without the state it was asked to keep.
func TestUnusableDataDir(t *testing.T) {
	s := startServer(t)
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	cfg := s.AgentConfig(t)
	cfg.DataDir = filepath.Join(file, "sub")
	_, err := nodetest.TryAgent(t, cfg)
	require.ErrorIs(t, err, syscall.ENOTDIR)
	assert.ErrorContains(t, err, "agent: creating the data directory")
}

// A data directory others can write to is refused: its bundle is the
// agent's trust anchor.
func TestDataDirWritableByOthers(t *testing.T) {
	s := startServer(t)
	for _, mode := range []os.FileMode{0o777, 0o770, 0o702} {
		dir := filepath.Join(t.TempDir(), "data")
		require.NoError(t, os.Mkdir(dir, 0o700))
		require.NoError(t, os.Chmod(dir, mode))
		cfg := s.AgentConfig(t)
		cfg.DataDir = dir
		_, err := nodetest.TryAgent(t, cfg)
		assert.EqualError(t, err, fmt.Sprintf("agent: data directory %s has mode %04o: group and others must not be able to write to it, "+
			"since it holds the agent's trust bundle (chmod go-w %s)", dir, mode, dir))
	}
}

// A data directory is one agent's: a second agent on it is refused, and
// told which process holds it, until the first is closed.
func TestDataDirLocked(t *testing.T) {
	s := startServer(t)
	dir := filepath.Join(t.TempDir(), "data")
	cfg := s.AgentConfig(t)
	cfg.DataDir = dir
	first, err := nodetest.TryAgent(t, cfg)
	require.NoError(t, err)
	_, err = nodetest.TryAgent(t, cfg)
	assert.EqualError(t, err, fmt.Sprintf("agent: data directory %s is in use by pid %d", dir, os.Getpid()))
	require.NoError(t, first.Stop())
	second, err := nodetest.TryAgent(t, cfg)
	require.NoError(t, err, "Close released the data directory")
	require.NoError(t, second.Stop())
}
