package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// pskType names the pre-shared-key node attestor on both sides.
const pskType = "psk"

// pskServer admits a node that proves it holds the key: it sends a fresh
// nonce, and the node answers HMAC-SHA256(key, nonce || node name). The
// key itself never travels.
type pskServer struct{ key []byte }

func (pskServer) Type() string { return pskType }

func (s pskServer) Attest(ctx context.Context, td spiffeid.TrustDomain, payload []byte, challenge attest.Challenger) (attest.NodeResult, error) {
	node := string(payload)
	id, err := agentID(td, node)
	if err != nil {
		return attest.NodeResult{}, fmt.Errorf("psk: %w: %w", attest.ErrNodeRejected, err)
	}
	nonce := make([]byte, 32)
	rand.Read(nonce)
	answer, err := challenge(ctx, nonce)
	if err != nil {
		return attest.NodeResult{}, fmt.Errorf("psk: %w", err)
	}
	// hmac.Equal compares in constant time: the time taken tells nothing
	// of how much of a forged answer was right.
	if !hmac.Equal(answer, mac(s.key, nonce, node)) {
		return attest.NodeResult{}, fmt.Errorf("psk: %w: node %q does not hold the key", attest.ErrNodeRejected, node)
	}
	return attest.NodeResult{
		AgentID:     id,
		Selectors:   attest.NewSelectors(attest.Selector{Type: pskType, Value: "node:" + node}),
		CanReattest: true, // the key admits the node again, unlike a join token
	}, nil
}

// pskClient is the node's side: it names itself and answers the nonce.
type pskClient struct {
	node string
	key  []byte
}

func (pskClient) Type() string                              { return pskType }
func (c pskClient) Payload(context.Context) ([]byte, error) { return []byte(c.node), nil }
func (c pskClient) Respond(_ context.Context, nonce []byte) ([]byte, error) {
	return mac(c.key, nonce, c.node), nil
}

func mac(key, nonce []byte, node string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(nonce) // fixed length: nonce || node is unambiguous
	h.Write([]byte(node))
	return h.Sum(nil)
}

// agentID is the SPIFFE ID of the agent of node: one path segment, checked.
func agentID(td spiffeid.TrustDomain, node string) (spiffeid.ID, error) {
	return spiffeid.FromSegments(td, "spiffekit", "agent", pskType, node)
}
