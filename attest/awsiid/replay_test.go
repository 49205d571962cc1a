package awsiid

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/agent"
	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/server"
)

// TestReplayRefused runs a whole server and agents attesting through a
// local IMDSv2 service: the first agent of an instance is admitted; a
// second node presenting the same document (copied from the instance) is
// refused while the first agent's record exists, unless re-attestation is
// allowed; evicting the agent frees the instance.
func TestReplayRefused(t *testing.T) {
	aws := newSigner(t, 0, 1)
	doc := document(testAccount, testRegion, testInstance)
	imds := startIMDS(t, instanceData(t, aws, doc))

	for _, reattest := range []bool{false, true} {
		t.Run(map[bool]string{false: "trust on first use", true: "re-attestation allowed"}[reattest], func(t *testing.T) {
			srv := newTestServer(t, ServerConfig{RSA2048Certificates: certsOf(testRegion, aws), AllowReattestation: reattest})
			s := nodetest.StartServer(t, server.Config{
				TrustDomain:   nodetest.TrustDomain,
				NodeAttestors: map[string]attest.NodeAttestor{Type: srv},
			})
			agentConfig := func() agent.Config {
				client, err := NewClient(ClientConfig{Endpoint: imds.URL})
				require.NoError(t, err)
				return agent.Config{
					TrustDomain:  s.TrustDomain(),
					Servers:      []string{s.Addr().String()},
					TrustBundle:  s.Bundle().X509Bundle(),
					NodeAttestor: client,
				}
			}
			first := nodetest.StartAgent(t, agentConfig())
			want := "spiffe://" + nodetest.TrustDomain.Name() + "/spiffekit/agent/aws_iid/123456789012/us-east-1/i-0123456789abcdef0"
			require.Equal(t, want, first.ID().String())

			// The same document from another node (the "copy").
			second, err := nodetest.TryAgent(t, agentConfig())
			if reattest {
				require.NoError(t, err)
				require.Equal(t, want, second.ID().String())
				return
			}
			require.Error(t, err)
			require.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)

			// Evicted, the instance may attest again.
			require.NoError(t, first.Stop())
			require.NoError(t, s.Admin.EvictAgent(t.Context(), first.ID()))
			again := nodetest.StartAgent(t, agentConfig())
			require.Equal(t, want, again.ID().String())
		})
	}
}
