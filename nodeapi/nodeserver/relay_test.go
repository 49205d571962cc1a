package nodeserver_test

import (
	"context"
	"crypto"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/x509pop"
	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/nodeapi/nodeserver"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// relayAttestor is the node attestor of a hostile server of another trust
// domain: when a node attests to it with x509pop, it attests as that node
// to the victim server, relaying the victim's challenge to the node (after
// rewrite, when set) and the node's answer back, to get an agent SVID of
// the victim's trust domain with the node's identity.
type relayAttestor struct {
	victim  nodeapi.ClientConfig
	key     crypto.Signer // the relay's agent key
	rewrite func([]byte) []byte

	done   chan struct{} // closed once the relay's attestation ended
	stolen *nodeapi.AgentSVID
	err    error
}

func (*relayAttestor) Type() string { return x509pop.Type }

func (r *relayAttestor) Attest(ctx context.Context, _ spiffeid.TrustDomain, payload []byte, challenge attest.Challenger) (attest.NodeResult, error) {
	svid, err := nodeapi.Attest(ctx, r.victim, relayClient{payload, challenge, r.rewrite}, r.key)
	r.stolen, r.err = svid, err
	close(r.done)
	return attest.NodeResult{}, attest.ErrNodeRejected
}

// relayClient presents a node's payload to the victim and has the node
// answer the victim's challenges.
type relayClient struct {
	payload   []byte
	challenge attest.Challenger
	rewrite   func([]byte) []byte
}

func (relayClient) Type() string                              { return x509pop.Type }
func (c relayClient) Payload(context.Context) ([]byte, error) { return c.payload, nil }
func (c relayClient) Respond(ctx context.Context, ch []byte) ([]byte, error) {
	if c.rewrite != nil {
		ch = c.rewrite(ch)
	}
	return c.challenge(ctx, ch)
}

// Property: an x509pop proof is bound to the trust domain and the server it
// is made for. Two trust domains trust the same node CA; a node of the
// second attests to its server, which relays the challenge of the first
// trust domain's server to it: the relay gets no agent SVID of the first
// trust domain, and the first server keeps no record of the node. The node
// still attests to the first server itself when it is one of its nodes.
func TestX509PopChallengeRelayedFromAnotherTrustDomainIsRefused(t *testing.T) {
	nodeCA := testca.New(t, spiffeid.RequireTrustDomainFromString("nodes.test"))
	victim := newEnv(t, withX509Pop(t, nodeCA))
	chain, key := nodeCA.NewLeaf(t, spiffeid.ID{})

	tdB := spiffeid.RequireTrustDomainFromString("other.test")
	for _, tt := range []struct {
		name    string
		rewrite func([]byte) []byte
		// nodeRefuses: the node does not answer; else the victim refuses
		// the answer.
		nodeRefuses bool
	}{
		{"challenge relayed as it is", nil, true},
		{"challenge rewritten to name the relay's server", func(ch []byte) []byte {
			return append(ch[:x509pop.NonceSize:x509pop.NonceSize], "spiffe://other.test/spiffekit/server"...)
		}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			relay := &relayAttestor{victim: victim.clientConfig(), key: newKey(t), rewrite: tt.rewrite, done: make(chan struct{})}
			hostile := newServerOf(t, tdB, relay)
			// A node of the relay's trust domain.
			node, err := x509pop.NewClient(x509pop.ClientConfig{TrustDomain: tdB, Certificates: chain, Key: key})
			require.NoError(t, err)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			_, nodeErr := nodeapi.Attest(ctx, hostile, node, newKey(t))
			require.Error(t, nodeErr, "the hostile server admits no one")

			select {
			case <-relay.done:
			case <-ctx.Done():
				t.Fatal("the relay's attestation did not end")
			}
			require.Nil(t, relay.stolen, "the relay got an agent SVID of %s", td)
			require.Error(t, relay.err)
			if tt.nodeRefuses {
				require.ErrorIs(t, nodeErr, nodeapi.ErrNodeAttestor)
				assert.ErrorContains(t, nodeErr, `the challenge is for spiffe://example.org/spiffekit/server, not for a server of trust domain "other.test"`)
			} else {
				assert.Equal(t, codes.PermissionDenied, status.Code(relay.err), "the victim refuses the proof: %v", relay.err)
			}
			agents, err := victim.store.ListAgents(t.Context())
			require.NoError(t, err)
			assert.Empty(t, agents, "the victim recorded no agent")
		})
	}

	// The node, as a node of the victim's trust domain, is admitted: the
	// node CA is trusted there, and only the relay was refused.
	node, err := x509pop.NewClient(x509pop.ClientConfig{TrustDomain: td, Certificates: chain, Key: key})
	require.NoError(t, err)
	svid, err := nodeapi.Attest(t.Context(), victim.clientConfig(), node, newKey(t))
	require.NoError(t, err)
	assert.Equal(t, td, svid.ID.TrustDomain())
}

// newServerOf runs a node API server of trust domain td with the given
// node attestor, and returns the configuration of its agents.
func newServerOf(t *testing.T, td spiffeid.TrustDomain, attestor attest.NodeAttestor) nodeapi.ClientConfig {
	t.Helper()
	m, err := rotation.New(t.Context(), rotation.Config{TrustDomain: td})
	require.NoError(t, err)
	store := memstore.New(memstore.Config{})
	srv, err := nodeserver.New(t.Context(), nodeserver.Config{
		Authority: m,
		Registry:  store,
		Agents:    store,
		Attestors: []attest.NodeAttestor{attestor},
	})
	require.NoError(t, err)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	serve(t, srv, lis)
	return nodeapi.ClientConfig{Servers: []string{lis.Addr().String()}, TrustDomain: td, Bundle: m.Bundle()}
}
