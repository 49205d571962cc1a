package trust_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/ca/upstream/nested"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/server"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi"
)

// TestNestedServerBundles runs a server nested under another: each one's
// JWT key reaches the other's bundle, and the nested server's bundle
// holds the upstream roots. When the upstream server goes away, the
// nested server keeps trying, saying so in its log.
func TestNestedServerBundles(t *testing.T) {
	root := nodetest.StartServer(t, server.Config{})
	agent := nodetest.StartAgent(t, root.AgentConfig(t))
	id := spiffeid.RequireFromPath(nodetest.TrustDomain, "/regional")
	_, err := root.Admin.CreateEntry(t.Context(), registry.Entry{SPIFFEID: id, ParentID: agent.ID(),
		Selectors: []attest.Selector{nodetest.UID()}, Downstream: true})
	require.NoError(t, err)
	agent.WaitSVID(t, id)
	ctx, cancel := context.WithTimeout(t.Context(), nodetest.Timeout)
	defer cancel()
	src, err := workloadapi.NewX509Source(ctx, workloadapi.WithClientOptions(workloadapi.WithAddr(agent.Addr)),
		workloadapi.WithDefaultX509SVIDPicker(func(s []*x509svid.SVID) *x509svid.SVID { return s[0] }))
	require.NoError(t, err)
	defer src.Close()
	up, err := nested.New(nested.Config{ServerAddress: root.Addr().String(), TrustDomain: nodetest.TrustDomain, SVIDSource: src, BundleSource: src})
	require.NoError(t, err)
	defer up.Close()
	var logs logtest.Buffer
	regional := nodetest.StartServer(t, server.Config{Upstream: up, Logger: logs.Logger()})

	assert.Equal(t, root.Bundle().X509Authorities(), regional.Bundle().X509Authorities())
	hasKey := func(s *nodetest.Server, kid string) func() bool {
		return func() bool { _, ok := s.Bundle().JWTAuthorities()[kid]; return ok }
	}
	rootKID, regionalKID := root.CA().JWTAuthority().KeyID(), regional.CA().JWTAuthority().KeyID()
	require.Eventually(t, hasKey(root, regionalKID), nodetest.Timeout, 5*time.Millisecond, "the nested server's JWT key is in the upstream bundle")
	require.Eventually(t, hasKey(regional, rootKID), nodetest.Timeout, 5*time.Millisecond, "the upstream JWT key is in the nested server's bundle")
	assert.True(t, slices.ContainsFunc(regional.Bundle().X509Authorities(), root.Bundle().X509Authorities()[0].Equal))

	// Each server's authority list holds its own authorities only: the
	// shares of the other (the downstream's keys at the root, the upstream
	// bundle at the nested server) are in the bundle, not among the
	// authorities it may taint or revoke, which their own server manages.
	for _, s := range []*nodetest.Server{root, regional} {
		list, err := s.Admin.Authorities(t.Context())
		require.NoError(t, err)
		require.Len(t, list, 2, "one X.509 CA and one JWT key")
		for _, a := range list {
			assert.True(t, a.Local)
			assert.Equal(t, s.ID(), a.ServerID)
		}
	}
	_, err = root.Admin.TaintAuthority(t.Context(), registry.AuthorityJWT, regionalKID)
	require.ErrorIs(t, err, registry.ErrNotFound, "the nested server's key is tainted on the nested server")

	// A new JWT key of the nested server is published at once.
	_, err = regional.CA().PrepareJWTKey(t.Context())
	require.NoError(t, err)
	require.NoError(t, regional.CA().ActivateJWTKey(t.Context()))
	require.Eventually(t, hasKey(root, regional.CA().JWTAuthority().KeyID()), nodetest.Timeout, 5*time.Millisecond)

	agent.Stop()
	root.Stop()
	_, err = regional.CA().PrepareJWTKey(t.Context())
	require.NoError(t, err)
	require.Eventually(t, func() bool { return logs.Contains("publishing the JWT keys upstream failed") }, nodetest.Timeout, 10*time.Millisecond)
}
