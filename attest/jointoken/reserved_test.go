package jointoken_test

import (
	"crypto/sha256"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/jointoken"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// TestGenerateTTLMinimum: a token that expires before a node could present
// it is refused.
func TestGenerateTTLMinimum(t *testing.T) {
	for _, ttl := range []time.Duration{time.Nanosecond, time.Second - 1} {
		_, _, err := jointoken.Generate(t.Context(), newStore(), jointoken.Params{TTL: ttl})
		require.ErrorIs(t, err, registry.ErrInvalid, ttl)
		assert.EqualError(t, err, "jointoken: TTL "+ttl.String()+" is below the minimum of 1s: registry: invalid argument")
	}
	_, rec := generate(t, newStore(), jointoken.Params{TTL: time.Second})
	assert.Equal(t, t0.Add(time.Second), rec.ExpiresAt)
}

// TestAgentIDMustBeAnAgentID: a token's AgentID is an agent's ID, in the
// agents' namespace; a workload's ID there would make the agent's SVID
// carry it.
func TestAgentIDMustBeAnAgentID(t *testing.T) {
	web := spiffeid.RequireFromPath(td, "/web")
	_, _, err := jointoken.Generate(t.Context(), newStore(), jointoken.Params{AgentID: web})
	require.ErrorIs(t, err, registry.ErrInvalid)
	assert.EqualError(t, err, `jointoken: agent ID "spiffe://example.org/web" is not under /spiffekit/agent/, the agents' namespace: registry: invalid argument`)

	// A record stored by an older version is refused at attestation.
	store := newStore()
	secret := make([]byte, 32)
	hash := sha256.Sum256(secret)
	require.NoError(t, store.CreateToken(t.Context(), registry.JoinToken{ID: "old", SecretHash: hash[:], AgentID: web, ExpiresAt: t0.Add(time.Hour)}))
	token := "old." + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	_, err = newServer(t, store, fixed).Attest(t.Context(), td, []byte(token), noChallenge(t))
	require.ErrorIs(t, err, attest.ErrNodeRejected)
	assert.Contains(t, err.Error(), `token old names agent ID "spiffe://example.org/web", which is not an agent ID of trust domain "example.org"`)
}
