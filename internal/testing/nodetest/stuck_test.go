package nodetest_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// stuckCalls are the calls StuckStore holds, each on s.
func stuckCalls(s *nodetest.StuckStore, id spiffeid.ID) map[string]func(context.Context) error {
	return map[string]func(context.Context) error{
		"PutAgent": func(ctx context.Context) error {
			_, err := s.PutAgent(ctx, registry.Agent{ID: id, AttestorType: "join_token", SerialNumber: "1", ExpiresAt: time.Now().Add(time.Hour)})
			return err
		},
		"UpdateAgent": func(ctx context.Context) error {
			_, err := s.UpdateAgent(ctx, registry.Agent{ID: id, AttestorType: "join_token", SerialNumber: "2", ExpiresAt: time.Now().Add(time.Hour)})
			return err
		},
		"GetAgent":   func(ctx context.Context) error { _, err := s.GetAgent(ctx, id); return err },
		"ListAgents": func(ctx context.Context) error { _, err := s.ListAgents(ctx); return err },
		"CreateToken": func(ctx context.Context) error {
			return s.CreateToken(ctx, registry.JoinToken{ID: "tok", SecretHash: make([]byte, 32), ExpiresAt: time.Now().Add(time.Hour)})
		},
		"GetToken":    func(ctx context.Context) error { _, err := s.GetToken(ctx, "tok"); return err },
		"DeleteToken": func(ctx context.Context) error { _, err := s.DeleteToken(ctx, "tok"); return err },
		"PruneTokens": func(ctx context.Context) error { _, err := s.PruneTokens(ctx, time.Now()); return err },
		"DeleteAgent": func(ctx context.Context) error { return s.DeleteAgent(ctx, id) },
	}
}

// Property: a StuckStore passes every call through until Stuck is set,
// and then holds each call about a node until its context ends, while
// the entries stay in reach.
func TestStuckStore(t *testing.T) {
	s := &nodetest.StuckStore{Store: memstore.New(memstore.Config{})}
	id := spiffeid.RequireFromPath(nodetest.TrustDomain, "/spiffekit/agent/x")
	calls := stuckCalls(s, id)
	// In an order in which each call succeeds on what the one before did.
	for _, name := range []string{"PutAgent", "UpdateAgent", "GetAgent", "ListAgents", "CreateToken", "GetToken", "DeleteToken", "PruneTokens", "DeleteAgent"} {
		require.NoError(t, calls[name](t.Context()), name)
	}
	s.Stuck.Store(true)
	for name, call := range calls {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		err := call(ctx)
		cancel()
		assert.ErrorIs(t, err, context.DeadlineExceeded, "%s is held until its context ends", name)
		assert.Equal(t, 1, s.Held(name), "%s held once", name)
	}
	_, err := s.Head(t.Context())
	assert.NoError(t, err, "the entries stay in reach")
}
