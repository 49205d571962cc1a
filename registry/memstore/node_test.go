package memstore_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/registry/registrytest"
	"github.com/spiffekit/spiffekit/spiffeid"
)

func TestNodeContract(t *testing.T) {
	registrytest.RunNode(t, func(t *testing.T) registrytest.NodeStore {
		return memstore.New(memstore.Config{})
	})
}

// TestNodeClock checks that record timestamps come from Config.Now.
func TestNodeClock(t *testing.T) {
	ctx := t.Context()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	s := memstore.New(memstore.Config{Now: func() time.Time { return now }})
	a := registry.Agent{ID: spiffeid.RequireFromString("spiffe://example.org/agent/1"), AttestorType: "join_token"}
	first, err := s.PutAgent(ctx, a)
	require.NoError(t, err)
	assert.Equal(t, now, first.CreatedAt)

	now = now.Add(time.Hour)
	a.Banned = true
	second, err := s.PutAgent(ctx, a)
	require.NoError(t, err)
	assert.Equal(t, first.CreatedAt, second.CreatedAt)
	assert.Equal(t, now, second.UpdatedAt)

	b, err := s.PutBundle(ctx, registry.FederatedBundle{TrustDomain: spiffeid.RequireTrustDomainFromString("a.org"), Document: []byte("{}")})
	require.NoError(t, err)
	assert.Equal(t, now, b.UpdatedAt)
	require.NoError(t, s.PutServerBundle(ctx, registry.ServerBundle{ServerID: "s", Document: []byte("{}"), ExpiresAt: now.Add(time.Hour)}))
	list, err := s.ListServerBundles(ctx, now)
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, now, list[0].UpdatedAt)
}

// ExampleStore_DeleteToken shows how deleting a join token makes it
// single-use: only the call that removes it admits the node.
func ExampleStore_DeleteToken() {
	ctx := context.Background()
	s := memstore.New(memstore.Config{})
	hash := sha256.Sum256([]byte("the token's secret"))
	err := s.CreateToken(ctx, registry.JoinToken{ID: "node-1", SecretHash: hash[:], ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		fmt.Println(err)
		return
	}
	for range 2 {
		admitted, err := s.DeleteToken(ctx, "node-1")
		fmt.Println("admitted:", admitted, err)
	}
	// Output:
	// admitted: true <nil>
	// admitted: false <nil>
}

func TestFederationContract(t *testing.T) {
	registrytest.RunFederation(t, func(t *testing.T) registry.FederationStore {
		return memstore.New(memstore.Config{})
	})
}

func TestFederationCreateOnce(t *testing.T) {
	s := memstore.New(memstore.Config{})
	registrytest.FederationCreateOnce(t, []registry.FederationStore{s, s, s}, 8)
}
