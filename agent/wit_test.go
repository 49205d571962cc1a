package agent_test

import (
	"crypto"
	"crypto/ecdsa"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/agent"
	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/exp/svid/witsvid"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
)

// witServer is a node API server whose CA keeps a WIT key.
func witServer(t *testing.T) *nodetest.NodeServer {
	t.Helper()
	m, err := rotation.New(t.Context(), rotation.Config{TrustDomain: td, WITKeys: true})
	require.NoError(t, err)
	return nodetest.StartNodeServer(t, nodetest.NodeConfig{CA: m})
}

// TestAgentServesWITSVIDs: an agent with WIT-SVIDs on has its server sign
// one for its workload's entry when the workload asks, for a key that
// never left the agent, and serves the WIT bundle it received with the
// trust domain's bundle.
func TestAgentServesWITSVIDs(t *testing.T) {
	s := witServer(t)
	web, c := nodetest.StartWITWorkload(t, s, "/web")
	svid, err := c.FetchWITSVID(t.Context(), "")
	require.NoError(t, err)
	assert.Equal(t, web.SPIFFEID, svid.ID)
	bundles, err := c.FetchWITBundles(t.Context())
	require.NoError(t, err)
	v, err := witsvid.ParseAndValidate(svid.Marshal(), bundles)
	require.NoError(t, err)
	assert.Equal(t, s.CA.WITAuthority().KeyID(), v.KeyID, "signed by the server's WIT key")
	assert.True(t, v.PublicKey.(*ecdsa.PublicKey).Equal(svid.PrivateKey.(crypto.Signer).Public()),
		"the served key is the one the token binds")

	// Another caller of the same entry shares it.
	again, err := c.FetchWITSVID(t.Context(), web.SPIFFEID.String())
	require.NoError(t, err)
	assert.Equal(t, svid.Marshal(), again.Marshal())
}

// TestAgentWITSVIDsNotOffered: an agent without WIT-SVIDs answers
// Unimplemented on both methods, and so does FetchWITSVID on an agent
// whose server does not issue them; neither is retried by the client.
func TestAgentWITSVIDsNotOffered(t *testing.T) {
	for name, tt := range map[string]struct {
		server  func(*testing.T) *nodetest.NodeServer
		agentOn bool
	}{
		"agent off":  {server: witServer},
		"server off": {server: startServer, agentOn: true},
	} {
		t.Run(name, func(t *testing.T) {
			_, c := nodetest.StartWorkload(t, tt.server(t), "/web", func(c *agent.Config) { c.WITSVIDs = tt.agentOn })
			_, err := c.FetchWITSVID(t.Context(), "")
			assert.Equal(t, codes.Unimplemented, status.Code(err), "%v", err)
			_, err = c.FetchWITBundles(t.Context())
			if tt.agentOn {
				assert.Equal(t, codes.PermissionDenied, status.Code(err), "no WIT key in the bundle: %v", err)
			} else {
				assert.Equal(t, codes.Unimplemented, status.Code(err), "%v", err)
			}
		})
	}
}
