package azuremsi

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/agent"
	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/testing/azuretest"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/server"
)

// TestReplayRefused runs a whole server and agents attesting through a
// local metadata service: the first agent of an identity is admitted; a
// second node presenting a token of the same identity (the same token,
// copied, or a new one) is refused while the first agent's record exists,
// unless re-attestation is allowed; evicting the agent frees the identity.
func TestReplayRefused(t *testing.T) {
	e, k0, _ := entra(t)
	imds := azuretest.StartIMDS(t)
	token := k0.Sign(t, claims())
	imds.SetToken(func(string) string { return token })

	for _, reattest := range []bool{false, true} {
		t.Run(map[bool]string{false: "trust on first use", true: "re-attestation allowed"}[reattest], func(t *testing.T) {
			srv := newTestServer(t, e, ServerConfig{AllowReattestation: reattest})
			s := nodetest.StartServer(t, server.Config{
				TrustDomain:   nodetest.TrustDomain,
				NodeAttestors: map[string]attest.NodeAttestor{Type: srv},
			})
			agentConfig := func() agent.Config {
				client, err := NewClient(ClientConfig{Endpoint: imds.URL, ResourceID: testResource})
				require.NoError(t, err)
				return agent.Config{
					TrustDomain:  s.TrustDomain(),
					Servers:      []string{s.Addr().String()},
					TrustBundle:  s.Bundle().X509Bundle(),
					NodeAttestor: client,
				}
			}
			first := nodetest.StartAgent(t, agentConfig())
			want := "spiffe://" + nodetest.TrustDomain.Name() + "/spiffekit/agent/azure_msi/" + testTenant + "/" + testPrincipal
			require.Equal(t, want, first.ID().String())

			// The same token from another node (the "copy").
			second, err := nodetest.TryAgent(t, agentConfig())
			if reattest {
				require.NoError(t, err)
				require.Equal(t, want, second.ID().String())
				return
			}
			require.Error(t, err)
			require.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)

			// Evicted, the identity may attest again.
			require.NoError(t, first.Stop())
			require.NoError(t, s.Admin.EvictAgent(t.Context(), first.ID()))
			again := nodetest.StartAgent(t, agentConfig())
			require.Equal(t, want, again.ID().String())
		})
	}
}
