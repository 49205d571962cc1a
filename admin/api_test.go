package admin_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/internal/testing/admintest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

func TestGenerateToken(t *testing.T) {
	e := admintest.Start(t)
	ctx := t.Context()
	agentID := spiffeid.RequireFromPath(td, "/agent/node7")

	tok, err := e.Client.GenerateToken(ctx, 10*time.Minute, agentID)
	require.NoError(t, err)
	assert.Contains(t, tok.Value, "tok-")
	assert.Equal(t, time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), tok.ExpiresAt.UTC())
	ttl, alias := e.Tokens.Last()
	assert.Equal(t, 10*time.Minute, ttl)
	assert.Equal(t, agentID, alias)
	assert.NotContains(t, e.Log.String(), tok.Value, "a join token is a secret and never logged")

	_, err = e.Client.GenerateToken(ctx, time.Minute, spiffeid.ID{})
	require.NoError(t, err)
	_, alias = e.Tokens.Last()
	assert.True(t, alias.IsZero())

	_, err = e.Client.GenerateToken(ctx, 0, spiffeid.ID{})
	require.ErrorIs(t, err, registry.ErrInvalid)
	assert.EqualError(t, err, "admin: token TTL must be positive: registry: invalid argument")
	_, err = e.Client.GenerateToken(ctx, -time.Second, spiffeid.ID{})
	require.ErrorIs(t, err, registry.ErrInvalid)
	assert.EqualError(t, err, "admin: token TTL must be positive: registry: invalid argument")

	_, err = e.Client.GenerateToken(ctx, time.Minute, spiffeid.RequireFromString("spiffe://other.org/agent"))
	require.ErrorIs(t, err, registry.ErrInvalid, "an agent ID outside the trust domain")

	e.Tokens.SetErr(fmt.Errorf("jointoken: ttl too long: %w", registry.ErrInvalid))
	_, err = e.Client.GenerateToken(ctx, time.Minute, spiffeid.ID{})
	require.ErrorIs(t, err, registry.ErrInvalid, "the issuer's own validation reaches the caller")
	assert.Contains(t, err.Error(), "ttl too long")

	e.Tokens.SetErr(errors.New("database on fire"))
	_, err = e.Client.GenerateToken(ctx, time.Minute, spiffeid.ID{})
	require.Error(t, err)
	assert.Equal(t, "admin: internal error", err.Error(), "internal details stay in the log")
	assert.Contains(t, e.Log.String(), "database on fire")
}

func TestFederatedBundles(t *testing.T) {
	e := admintest.Start(t)
	ctx := t.Context()
	c := e.Client
	other := spiffeid.RequireTrustDomainFromString("other.org")
	third := spiffeid.RequireTrustDomainFromString("third.org")

	_, err := c.FederatedBundle(ctx, other)
	require.ErrorIs(t, err, registry.ErrNotFound)

	doc := admintest.ForeignDoc(t, "other.org")
	stored, err := c.SetFederatedBundle(ctx, other, doc)
	require.NoError(t, err)
	assert.Equal(t, other, stored.TrustDomain)
	assert.JSONEq(t, string(doc), string(stored.Document))
	assert.False(t, stored.UpdatedAt.IsZero())

	_, err = c.SetFederatedBundle(ctx, third, admintest.ForeignDoc(t, "third.org"))
	require.NoError(t, err)

	got, err := c.FederatedBundle(ctx, other)
	require.NoError(t, err)
	assert.JSONEq(t, string(doc), string(got.Document))

	list, err := c.ListFederatedBundles(ctx)
	require.NoError(t, err)
	require.Len(t, list, 2)
	assert.Equal(t, other, list[0].TrustDomain)
	assert.Equal(t, third, list[1].TrustDomain)

	// Replacing is allowed.
	doc2 := admintest.ForeignDoc(t, "other.org")
	_, err = c.SetFederatedBundle(ctx, other, doc2)
	require.NoError(t, err)
	got, err = c.FederatedBundle(ctx, other)
	require.NoError(t, err)
	assert.JSONEq(t, string(doc2), string(got.Document))

	n, err := c.DeleteFederatedBundle(ctx, other, "")
	require.NoError(t, err)
	assert.Zero(t, n)
	_, err = c.FederatedBundle(ctx, other)
	require.ErrorIs(t, err, registry.ErrNotFound)
	_, err = c.DeleteFederatedBundle(ctx, other, admin.DeleteEntries)
	require.ErrorIs(t, err, registry.ErrNotFound)

	_, err = c.SetFederatedBundle(ctx, spiffeid.TrustDomain{}, doc)
	require.ErrorIs(t, err, registry.ErrInvalid)
	assert.EqualError(t, err, "admin: trust domain is required: registry: invalid argument")
	_, err = c.FederatedBundle(ctx, spiffeid.TrustDomain{})
	require.ErrorIs(t, err, registry.ErrInvalid)
	assert.EqualError(t, err, "admin: trust domain is required: registry: invalid argument")
	_, err = c.DeleteFederatedBundle(ctx, spiffeid.TrustDomain{}, "")
	require.ErrorIs(t, err, registry.ErrInvalid)
	assert.EqualError(t, err, "admin: trust domain is required: registry: invalid argument")
}
