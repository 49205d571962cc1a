package gcpiit

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/agent"
	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/testing/gcemdtest"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/server"
)

// TestReplayRefused runs a whole server and agents attesting through a
// local metadata server: the first agent of an instance is admitted; a
// second node presenting a token of the same instance (one it got from
// the instance) is refused while the first agent's record exists, unless
// re-attestation is allowed; evicting the agent frees the instance.
func TestReplayRefused(t *testing.T) {
	google := gcemdtest.NewKey(t, 0)
	md := gcemdtest.Start(t, google, gcemdtest.TestInstance())

	for _, reattest := range []bool{false, true} {
		t.Run(map[bool]string{false: "trust on first use", true: "re-attestation allowed"}[reattest], func(t *testing.T) {
			srv := newTestServer(t, ServerConfig{Keys: gcemdtest.JWKS(t, google), AllowReattestation: reattest})
			s := nodetest.StartServer(t, server.Config{
				TrustDomain:   nodetest.TrustDomain,
				NodeAttestors: map[string]attest.NodeAttestor{Type: srv},
			})
			agentConfig := func() agent.Config {
				client, err := NewClient(ClientConfig{Host: md.Host()})
				require.NoError(t, err)
				return agent.Config{
					TrustDomain:  s.TrustDomain(),
					Servers:      []string{s.Addr().String()},
					TrustBundle:  s.Bundle().X509Bundle(),
					NodeAttestor: client,
				}
			}
			first := nodetest.StartAgent(t, agentConfig())
			want := "spiffe://" + nodetest.TrustDomain.Name() + wantPath
			require.Equal(t, want, first.ID().String())

			// A token of the same instance from another node (the "copy").
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
