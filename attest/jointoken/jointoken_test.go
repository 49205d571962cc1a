package jointoken_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/jointoken"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

var (
	td    = spiffeid.RequireTrustDomainFromString("example.org")
	t0    = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	fixed = func() time.Time { return t0 }
)

// newStore returns an empty token store.
func newStore() registry.TokenStore { return memstore.New(memstore.Config{}) }

// noChallenge fails the test if an attestor sends a challenge.
func noChallenge(t *testing.T) attest.Challenger {
	return func(context.Context, []byte) ([]byte, error) {
		t.Error("join token attestation sent a challenge")
		return nil, context.Canceled
	}
}

func newServer(t *testing.T, store registry.TokenStore, now func() time.Time) *jointoken.Server {
	t.Helper()
	s, err := jointoken.NewServer(jointoken.ServerConfig{Store: store, Now: now})
	require.NoError(t, err)
	return s
}

func generate(t *testing.T, store registry.TokenStore, p jointoken.Params) (string, registry.JoinToken) {
	t.Helper()
	if p.Now == nil {
		p.Now = fixed
	}
	token, rec, err := jointoken.Generate(t.Context(), store, p)
	require.NoError(t, err)
	return token, rec
}

func TestGenerate(t *testing.T) {
	store := newStore()
	token, rec, err := jointoken.Generate(t.Context(), store, jointoken.Params{Now: fixed})
	require.NoError(t, err)

	id, secret, ok := strings.Cut(token, ".")
	require.True(t, ok)
	assert.Equal(t, rec.ID, id)
	assert.Regexp(t, `^[0-9a-f]{32}$`, id)
	assert.True(t, registry.ValidTokenID(id))
	raw, err := base64.RawURLEncoding.DecodeString(secret)
	require.NoError(t, err)
	require.Len(t, raw, 32)
	sum := sha256.Sum256(raw)
	assert.Equal(t, sum[:], rec.SecretHash, "the store keeps the SHA-256 of the secret")
	assert.Equal(t, t0.Add(jointoken.DefaultTTL), rec.ExpiresAt)
	assert.True(t, rec.AgentID.IsZero())

	stored, err := store.GetToken(t.Context(), id)
	require.NoError(t, err)
	assert.Equal(t, rec, stored)
	assert.NotContains(t, string(stored.SecretHash), secret)

	// Two tokens never share an ID or a secret.
	token2, rec2, err := jointoken.Generate(t.Context(), store, jointoken.Params{TTL: time.Hour})
	require.NoError(t, err)
	assert.NotEqual(t, rec.ID, rec2.ID)
	assert.NotEqual(t, token, token2)
	assert.WithinDuration(t, time.Now().Add(time.Hour), rec2.ExpiresAt, time.Minute, "nil Now means time.Now")
}

func TestGenerateParams(t *testing.T) {
	alias := spiffeid.RequireFromPath(td, "/spiffekit/agent/custom/db-1")
	_, rec := generate(t, newStore(), jointoken.Params{TTL: jointoken.MaxTTL, AgentID: alias})
	assert.Equal(t, alias, rec.AgentID)
	assert.Equal(t, t0.Add(jointoken.MaxTTL), rec.ExpiresAt)

	tests := []struct {
		name  string
		store registry.TokenStore
		p     jointoken.Params
		msg   string
	}{
		{"negative TTL", newStore(), jointoken.Params{TTL: -time.Second}, "negative"},
		{"TTL above the maximum", newStore(), jointoken.Params{TTL: jointoken.MaxTTL + time.Second}, "maximum"},
		{"alias without path", newStore(), jointoken.Params{AgentID: td.ID()}, "no path"},
		{"no store", nil, jointoken.Params{}, "no token store"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token, _, err := jointoken.Generate(t.Context(), tt.store, tt.p)
			require.ErrorContains(t, err, tt.msg)
			assert.True(t, strings.HasPrefix(err.Error(), "jointoken: "))
			assert.Empty(t, token)
		})
	}

	t.Run("store failure", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, _, err := jointoken.Generate(ctx, newStore(), jointoken.Params{})
		require.ErrorIs(t, err, context.Canceled)
	})
}

func TestNewServer(t *testing.T) {
	_, err := jointoken.NewServer(jointoken.ServerConfig{})
	require.ErrorContains(t, err, "jointoken: no token store")

	s, err := jointoken.NewServer(jointoken.ServerConfig{Store: newStore()})
	require.NoError(t, err)
	assert.Equal(t, "join_token", s.Type())
	assert.Equal(t, s.Type(), jointoken.NewClient("").Type())
}

func TestAttest(t *testing.T) {
	store := newStore()
	token, rec := generate(t, store, jointoken.Params{})
	s := newServer(t, store, fixed)

	payload, err := jointoken.NewClient(token).Payload(t.Context())
	require.NoError(t, err)
	res, err := s.Attest(t.Context(), td, payload, noChallenge(t))
	require.NoError(t, err)
	assert.Equal(t, "spiffe://example.org/spiffekit/agent/join_token/"+rec.ID, res.AgentID.String())
	assert.Equal(t, "[join_token:id:"+rec.ID+"]", res.Selectors.String())
	assert.False(t, res.CanReattest, "a token is used once")

	_, err = store.GetToken(t.Context(), rec.ID)
	require.ErrorIs(t, err, registry.ErrNotFound, "an admitted token is consumed")

	// Replay: the same token again, on the same or another server.
	other := newServer(t, store, fixed)
	for _, srv := range []*jointoken.Server{s, other} {
		_, err = srv.Attest(t.Context(), td, payload, noChallenge(t))
		require.ErrorIs(t, err, attest.ErrNodeRejected)
		assert.NotContains(t, err.Error(), secretOf(token))
	}
}

func TestAttestAlias(t *testing.T) {
	alias := spiffeid.RequireFromPath(td, "/spiffekit/agent/custom/db-1")
	store := newStore()
	token, _ := generate(t, store, jointoken.Params{AgentID: alias})
	res, err := newServer(t, store, fixed).Attest(t.Context(), td, []byte(token), noChallenge(t))
	require.NoError(t, err)
	assert.Equal(t, alias, res.AgentID)
}

// An alias must stay in the trust domain of the server that admits the node:
// a token must not mint an agent ID for another trust domain.
func TestAttestAliasInOtherTrustDomain(t *testing.T) {
	alias := spiffeid.RequireFromString("spiffe://other.org/spiffekit/agent/custom/db-1")
	store := newStore()
	token, rec := generate(t, store, jointoken.Params{AgentID: alias})

	_, err := newServer(t, store, fixed).Attest(t.Context(), td, []byte(token), noChallenge(t))
	require.ErrorIs(t, err, attest.ErrNodeRejected)
	assert.Contains(t, err.Error(), "other.org")
	assert.NotContains(t, err.Error(), secretOf(token))

	// The rejected attempt did not consume the token; a server of the
	// alias's own trust domain still admits it.
	res, err := newServer(t, store, fixed).Attest(t.Context(), alias.TrustDomain(), []byte(token), noChallenge(t))
	require.NoError(t, err)
	assert.Equal(t, alias, res.AgentID)
	_, err = store.GetToken(t.Context(), rec.ID)
	require.ErrorIs(t, err, registry.ErrNotFound)
}

// A wrong secret is rejected without consuming the token: knowing a token's
// ID (it is in logs and selectors) must not let anyone lock out its node.
func TestAttestWrongSecret(t *testing.T) {
	store := newStore()
	token, rec := generate(t, store, jointoken.Params{})
	s := newServer(t, store, fixed)

	guess := rec.ID + "." + base64.RawURLEncoding.EncodeToString(make([]byte, 32))
	for range 3 {
		_, err := s.Attest(t.Context(), td, []byte(guess), noChallenge(t))
		require.ErrorIs(t, err, attest.ErrNodeRejected)
		assert.Contains(t, err.Error(), "wrong secret")
		assert.NotContains(t, err.Error(), secretOf(guess))
	}

	// One bit off in the real secret.
	raw, err := base64.RawURLEncoding.DecodeString(secretOf(token))
	require.NoError(t, err)
	raw[31] ^= 1
	_, err = s.Attest(t.Context(), td, []byte(rec.ID+"."+base64.RawURLEncoding.EncodeToString(raw)), noChallenge(t))
	require.ErrorIs(t, err, attest.ErrNodeRejected)

	// The right secret under another token's ID.
	token2, _ := generate(t, store, jointoken.Params{})
	_, err = s.Attest(t.Context(), td, []byte(idOf(token2)+"."+secretOf(token)), noChallenge(t))
	require.ErrorIs(t, err, attest.ErrNodeRejected)

	_, err = s.Attest(t.Context(), td, []byte(token), noChallenge(t))
	require.NoError(t, err, "the token survives wrong guesses")
}

func TestAttestExpired(t *testing.T) {
	store := newStore()
	token, rec := generate(t, store, jointoken.Params{TTL: time.Minute})

	// One nanosecond before expiry it still admits (checked on a copy).
	copyStore := newStore()
	require.NoError(t, copyStore.CreateToken(t.Context(), rec))
	_, err := newServer(t, copyStore, func() time.Time { return rec.ExpiresAt.Add(-1) }).
		Attest(t.Context(), td, []byte(token), noChallenge(t))
	require.NoError(t, err)

	// At the expiry instant it no longer does, and the token is gone.
	s := newServer(t, store, func() time.Time { return rec.ExpiresAt })
	_, err = s.Attest(t.Context(), td, []byte(token), noChallenge(t))
	require.ErrorIs(t, err, attest.ErrNodeRejected)
	assert.Contains(t, err.Error(), "expired")
	assert.NotContains(t, err.Error(), secretOf(token))
	_, err = store.GetToken(t.Context(), rec.ID)
	require.ErrorIs(t, err, registry.ErrNotFound, "an expired token is deleted")

	// Turning the clock back does not revive it.
	_, err = newServer(t, store, fixed).Attest(t.Context(), td, []byte(token), noChallenge(t))
	require.ErrorIs(t, err, attest.ErrNodeRejected)
}

// Many nodes, or one node replaying its token, racing on two servers that
// share one store: exactly one is admitted.
func TestAttestConcurrentUse(t *testing.T) {
	store := newStore()
	token, _ := generate(t, store, jointoken.Params{})
	servers := []*jointoken.Server{newServer(t, store, fixed), newServer(t, store, fixed)}

	const attempts = 16
	var wins, rejects atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range attempts {
		wg.Go(func() {
			<-start
			_, err := servers[i%2].Attest(context.Background(), td, []byte(token), nil)
			switch {
			case err == nil:
				wins.Add(1)
			case assert.ErrorIs(t, err, attest.ErrNodeRejected):
				rejects.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	assert.Equal(t, int32(1), wins.Load())
	assert.Equal(t, int32(attempts-1), rejects.Load())
}

func TestAttestMalformed(t *testing.T) {
	store := newStore()
	token, rec := generate(t, store, jointoken.Params{})
	secret := secretOf(token)
	s := newServer(t, store, fixed)

	tests := []struct {
		name    string
		payload string
	}{
		{"empty", ""},
		{"no dot", rec.ID + secret},
		{"empty ID", "." + secret},
		{"empty secret", rec.ID + "."},
		{"ID with a slash", "a/b." + secret},
		{"ID with a dot", "a.b." + secret},
		{"ID with a space", "a b." + secret},
		{"ID too long", strings.Repeat("a", registry.MaxTokenIDLen+1) + "." + secret},
		{"secret too short", rec.ID + "." + secret[:42]},
		{"secret too long", rec.ID + "." + secret + "AA"},
		{"secret padded", rec.ID + "." + secret + "="},
		{"secret in std base64", rec.ID + "." + strings.NewReplacer("-", "+", "_", "/").Replace(secret) + "+/"},
		{"secret with white space", rec.ID + ". " + secret[1:]},
		{"token with trailing newline", token + "\n"},
		{"NUL", rec.ID + "\x00." + secret},
		{"oversized", rec.ID + "." + strings.Repeat("A", attest.MaxNodePayload)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Attest(t.Context(), td, []byte(tt.payload), noChallenge(t))
			require.ErrorIs(t, err, attest.ErrNodeRejected)
			assert.True(t, strings.HasPrefix(err.Error(), "jointoken: "))
			assert.NotContains(t, err.Error(), secret[:20], "errors never echo the secret")
			assert.Less(t, len(err.Error()), 200, "errors stay small whatever the payload")
		})
	}

	_, err := s.Attest(t.Context(), td, []byte(token), noChallenge(t))
	require.NoError(t, err, "malformed attempts do not consume the token")
}

func TestAttestUnknownToken(t *testing.T) {
	s := newServer(t, newStore(), fixed)
	token := "0123456789abcdef." + base64.RawURLEncoding.EncodeToString(make([]byte, 32))
	_, err := s.Attest(t.Context(), td, []byte(token), noChallenge(t))
	require.ErrorIs(t, err, attest.ErrNodeRejected)
	assert.Contains(t, err.Error(), "0123456789abcdef")
}

// A store failure is not a verdict on the node: it must not wrap
// ErrNodeRejected, so that the node is told to retry, not that it is refused.
func TestAttestStoreFailure(t *testing.T) {
	tests := []struct {
		name                string
		failGet, failDelete bool
		expired             bool
	}{
		{name: "get", failGet: true},
		{name: "delete", failDelete: true},
		{name: "delete expired", failDelete: true, expired: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inner := newStore()
			token, rec := generate(t, inner, jointoken.Params{})
			now := fixed
			if tt.expired {
				now = func() time.Time { return rec.ExpiresAt.Add(time.Second) }
			}
			s := newServer(t, brokenStore{TokenStore: inner, failGet: tt.failGet, failDelete: tt.failDelete}, now)
			_, err := s.Attest(t.Context(), td, []byte(token), noChallenge(t))
			require.ErrorIs(t, err, errBackend)
			assert.NotErrorIs(t, err, attest.ErrNodeRejected)
			assert.NotContains(t, err.Error(), secretOf(token))

			// The token is still there for the node's retry.
			_, err = inner.GetToken(t.Context(), rec.ID)
			require.NoError(t, err)
		})
	}

	t.Run("cancelled", func(t *testing.T) {
		store := newStore()
		token, _ := generate(t, store, jointoken.Params{})
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := newServer(t, store, fixed).Attest(ctx, td, []byte(token), noChallenge(t))
		require.ErrorIs(t, err, context.Canceled)
		assert.NotErrorIs(t, err, attest.ErrNodeRejected)
	})
}

func TestAttestNoTrustDomain(t *testing.T) {
	store := newStore()
	token, _ := generate(t, store, jointoken.Params{})
	_, err := newServer(t, store, fixed).Attest(t.Context(), spiffeid.TrustDomain{}, []byte(token), noChallenge(t))
	require.ErrorContains(t, err, "no trust domain")
	assert.NotErrorIs(t, err, attest.ErrNodeRejected)
}

func TestClient(t *testing.T) {
	store := newStore()
	token, _ := generate(t, store, jointoken.Params{})

	c := jointoken.NewClient("  " + token + "\n")
	payload, err := c.Payload(t.Context())
	require.NoError(t, err)
	assert.Equal(t, token, string(payload), "white space around the token is removed")

	_, err = c.Respond(t.Context(), []byte("nonce"))
	require.ErrorContains(t, err, "jointoken: unexpected challenge")

	for _, bad := range []string{"", "nodot", "id." + secretOf(token)[1:], token + token} {
		_, err := jointoken.NewClient(bad).Payload(t.Context())
		require.Error(t, err)
		assert.True(t, strings.HasPrefix(err.Error(), "jointoken: "))
		assert.NotContains(t, err.Error(), secretOf(token)[2:30])
	}
}

// Generated IDs name the agent: they must be valid path segments.
func TestIDIsPathSegment(t *testing.T) {
	for range 8 {
		_, rec := generate(t, newStore(), jointoken.Params{})
		_, err := spiffeid.FromSegments(td, rec.ID)
		require.NoError(t, err)
	}
}

func idOf(token string) string {
	id, _, _ := strings.Cut(token, ".")
	return id
}

func secretOf(token string) string {
	_, s, _ := strings.Cut(token, ".")
	return s
}
