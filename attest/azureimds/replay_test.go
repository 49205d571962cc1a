package azureimds

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
// local metadata service: the first agent of a VM is admitted; a second
// node with a document of the same VM (fresh for its nonce, as anything
// on the VM can ask for one) is refused while the first agent's record
// exists, unless re-attestation is allowed; evicting the agent frees the
// VM.
func TestReplayRefused(t *testing.T) {
	ca := azuretest.NewCA(t, "metadata.azure.com")
	imds := azuretest.StartIMDS(t)
	imds.SetDocument(func(nonce string) string { return ca.Sign(t, azuretest.Document(t, nonce, testVM, testSub)) })

	for _, reattest := range []bool{false, true} {
		t.Run(map[bool]string{false: "trust on first use", true: "re-attestation allowed"}[reattest], func(t *testing.T) {
			srv := serverFor(t, ca, func(c *ServerConfig) { c.AllowReattestation = reattest })
			s := nodetest.StartServer(t, server.Config{
				TrustDomain:   nodetest.TrustDomain,
				NodeAttestors: map[string]attest.NodeAttestor{Type: srv},
			})
			agentConfig := func() agent.Config {
				client, err := NewClient(ClientConfig{TenantDomain: testTenant, Endpoint: imds.URL})
				require.NoError(t, err)
				return agent.Config{
					TrustDomain:  s.TrustDomain(),
					Servers:      []string{s.Addr().String()},
					TrustBundle:  s.Bundle().X509Bundle(),
					NodeAttestor: client,
				}
			}
			first := nodetest.StartAgent(t, agentConfig())
			want := "spiffe://" + nodetest.TrustDomain.Name() + "/spiffekit/agent/azure_imds/" + testTenant + "/" + testSub + "/" + testVM
			require.Equal(t, want, first.ID().String())

			second, err := nodetest.TryAgent(t, agentConfig())
			if reattest {
				require.NoError(t, err)
				require.Equal(t, want, second.ID().String())
				return
			}
			require.Error(t, err)
			require.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)

			require.NoError(t, first.Stop())
			require.NoError(t, s.Admin.EvictAgent(t.Context(), first.ID()))
			again := nodetest.StartAgent(t, agentConfig())
			require.Equal(t, want, again.ID().String())
		})
	}
}
