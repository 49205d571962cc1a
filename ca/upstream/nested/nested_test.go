//go:build !windows

package nested_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/ca/upstream/nested"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/server"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi"
)

var td = nodetest.TrustDomain

// level is one server of a nested topology with its agent.
type level struct {
	server *nodetest.Server
	agent  *nodetest.Agent
}

// createEntry creates an entry of path for the test process under the
// level's agent.
func (l level) createEntry(t testing.TB, path string, downstream bool) registry.Entry {
	t.Helper()
	e, err := l.server.Admin.CreateEntry(t.Context(), registry.Entry{
		SPIFFEID:   spiffeid.RequireFromPath(td, path),
		ParentID:   l.agent.ID(),
		Selectors:  []attest.Selector{nodetest.UID()},
		Downstream: downstream,
	})
	require.NoError(t, err)
	return e
}

// source returns an X509Source on the level's agent whose default SVID is
// that of id, closed when the test ends.
func (l level) source(t testing.TB, id spiffeid.ID) *workloadapi.X509Source {
	t.Helper()
	l.agent.WaitSVID(t, id)
	ctx, cancel := context.WithTimeout(t.Context(), nodetest.Timeout)
	defer cancel()
	src, err := workloadapi.NewX509Source(ctx,
		workloadapi.WithClientOptions(workloadapi.WithAddr(l.agent.Addr)),
		workloadapi.WithDefaultX509SVIDPicker(func(svids []*x509svid.SVID) *x509svid.SVID {
			if i := slices.IndexFunc(svids, func(s *x509svid.SVID) bool { return s.ID == id }); i >= 0 {
				return svids[i]
			}
			return svids[0]
		}))
	require.NoError(t, err)
	t.Cleanup(func() { src.Close() })
	return src
}

// startLevel starts a server, signed by up when not nil, and an agent
// attested to it.
func startLevel(t testing.TB, up *nested.Authority, cfg server.Config) level {
	t.Helper()
	if up != nil {
		cfg.Upstream = up
	}
	s := nodetest.StartServer(t, cfg)
	return level{server: s, agent: nodetest.StartAgent(t, s.AgentConfig(t))}
}

// downstreamOf makes, on parent, a downstream entry of path and returns
// the upstream authority a nested server under parent uses.
func downstreamOf(t testing.TB, parent level, path string) *nested.Authority {
	t.Helper()
	e := parent.createEntry(t, path, true)
	src := parent.source(t, e.SPIFFEID)
	up, err := nested.New(nested.Config{
		ServerAddress: parent.server.Addr().String(),
		TrustDomain:   td,
		SVIDSource:    src,
		BundleSource:  src,
	})
	require.NoError(t, err)
	t.Cleanup(func() { up.Close() })
	return up
}

// bundleAt returns the X.509 bundle the test process receives from the
// Workload API of l's agent.
func bundleAt(t *testing.T, l level) *workloadapi.X509Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), nodetest.Timeout)
	defer cancel()
	x, err := workloadapi.FetchX509Context(ctx, workloadapi.WithAddr(l.agent.Addr))
	require.NoError(t, err)
	return x
}

// TestThreeLevels runs a root server, a regional server signed by it and
// an edge server signed by the regional one: a workload at the edge and
// one at the root each verify the other's X509-SVID with the bundle their
// own agent gives them, and every level's bundle holds the root's roots
// only.
func TestThreeLevels(t *testing.T) {
	root := startLevel(t, nil, server.Config{})
	regional := startLevel(t, downstreamOf(t, root, "/regional"), server.Config{})
	edge := startLevel(t, downstreamOf(t, regional, "/edge"), server.Config{})

	rootRoots := root.server.Bundle().X509Authorities()
	require.NotEmpty(t, rootRoots)
	assert.Equal(t, rootRoots, regional.server.Bundle().X509Authorities())
	assert.Equal(t, rootRoots, edge.server.Bundle().X509Authorities())

	atRoot := root.createEntry(t, "/at-root", false).SPIFFEID
	atEdge := edge.createEntry(t, "/at-edge", false).SPIFFEID
	rootSVID := root.agent.WaitSVID(t, atRoot)
	edgeSVID := edge.agent.WaitSVID(t, atEdge)
	// The edge's SVID chains through the edge's and the regional CAs.
	require.Len(t, edgeSVID.Certificates, 3)
	assert.Equal(t, regional.server.CA().X509Authority().Certificate().Raw, edgeSVID.Certificates[2].Raw)

	rootBundle, edgeBundle := bundleAt(t, root).Bundles, bundleAt(t, edge).Bundles
	id, _, err := x509svid.Verify(edgeSVID.Certificates, rootBundle)
	require.NoError(t, err, "a workload at the root verifies one at the edge")
	assert.Equal(t, atEdge, id)
	id, _, err = x509svid.Verify(rootSVID.Certificates, edgeBundle)
	require.NoError(t, err, "a workload at the edge verifies one at the root")
	assert.Equal(t, atRoot, id)

	// JWT keys travel up (each server publishes its own and those below
	// it) and down (each server keeps its upstream server's bundle).
	edgeToken, rootToken := jwtFor(t, edge, atEdge), jwtFor(t, root, atRoot)
	validates := func(l level, token string) func() bool {
		return func() bool {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			_, err := workloadapi.ValidateJWTSVID(ctx, token, "db", workloadapi.WithAddr(l.agent.Addr))
			return err == nil
		}
	}
	require.Eventually(t, validates(root, edgeToken), nodetest.Timeout, 20*time.Millisecond, "a JWT-SVID of the edge validates at the root")
	require.Eventually(t, validates(edge, rootToken), nodetest.Timeout, 20*time.Millisecond, "a JWT-SVID of the root validates at the edge")
	require.Eventually(t, validates(regional, edgeToken), nodetest.Timeout, 20*time.Millisecond, "a JWT-SVID of the edge validates at the regional level")
}

// jwtFor fetches a JWT-SVID of id for the audience "db" from l's agent.
func jwtFor(t *testing.T, l level, id spiffeid.ID) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), nodetest.Timeout)
	defer cancel()
	svid, err := workloadapi.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "db", Subject: id}, workloadapi.WithAddr(l.agent.Addr))
	require.NoError(t, err)
	return svid.Marshal()
}

// TestRootDown stops the root server for longer than an X509-SVID's
// lifetime: the regional server keeps issuing with the CA the root signed,
// renewing its workloads' SVIDs and signing for an entry the root never
// saw.
func TestRootDown(t *testing.T) {
	const svidTTL = 2 * time.Second
	root := startLevel(t, nil, server.Config{})
	regional := startLevel(t, downstreamOf(t, root, "/regional"), server.Config{X509SVIDTTL: svidTTL})
	before := regional.createEntry(t, "/before", false).SPIFFEID
	first := regional.agent.WaitSVID(t, before)
	root.agent.Stop()
	root.server.Stop()
	stopped := time.Now()

	after := regional.createEntry(t, "/after", false).SPIFFEID
	svid := regional.agent.WaitSVID(t, after)
	_, _, err := x509svid.Verify(svid.Certificates, regional.server.Bundle().X509Bundle())
	require.NoError(t, err)

	// Past two lifetimes, the SVID held was signed with the root down.
	time.Sleep(time.Until(stopped.Add(2 * svidTTL)))
	renewed := regional.agent.WaitSVID(t, before)
	assert.NotEqual(t, first.Certificates[0].SerialNumber, renewed.Certificates[0].SerialNumber)
	assert.True(t, renewed.Certificates[0].NotBefore.After(stopped.Add(-time.Minute)))
	_, _, err = x509svid.Verify(renewed.Certificates, regional.server.Bundle().X509Bundle(), x509svid.WithTime(time.Now()))
	require.NoError(t, err, "the SVID held now is valid: renewed while the root was down")
}
