package admin_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/internal/testing/admintest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

func TestFederationRelationships(t *testing.T) {
	e, _ := admintest.StartFederation(t)
	ctx := t.Context()
	want := registry.FederationRelationship{
		TrustDomain:           admintest.Partner,
		BundleEndpointURL:     "https://partner.test:8443/",
		BundleEndpointProfile: registry.ProfileHTTPSSPIFFE,
		EndpointSPIFFEID:      spiffeid.RequireFromString("spiffe://partner.test/spiffekit/server"),
		TrustDomainBundle:     []byte(`{"keys":[]}`),
	}
	got, err := e.Client.CreateFederationRelationship(ctx, want)
	require.NoError(t, err)
	assert.False(t, got.Configured)
	assert.Equal(t, want.EndpointSPIFFEID, got.EndpointSPIFFEID)
	assert.Equal(t, want.TrustDomainBundle, got.TrustDomainBundle)
	assert.False(t, got.CreatedAt.IsZero())
	assert.Contains(t, e.Log.String(), "admin: federation relationship created")

	rels, err := e.Client.FederationRelationships(ctx)
	require.NoError(t, err)
	require.Len(t, rels, 2)
	assert.True(t, rels[0].Configured)
	assert.True(t, rels[0].CreatedAt.IsZero())
	assert.Equal(t, got, rels[1])

	shown, err := e.Client.FederationRelationship(ctx, admintest.Partner)
	require.NoError(t, err)
	assert.Equal(t, got, shown)
	_, err = e.Client.FederationRelationship(ctx, spiffeid.RequireTrustDomainFromString("none.test"))
	require.ErrorIs(t, err, registry.ErrNotFound)
	assert.Contains(t, err.Error(), `federation relationship with "none.test" not found`)

	want.BundleEndpointURL = "https://partner2.test/"
	upd, err := e.Client.UpdateFederationRelationship(ctx, want)
	require.NoError(t, err)
	assert.Equal(t, "https://partner2.test/", upd.BundleEndpointURL)
	assert.Contains(t, e.Log.String(), "admin: federation relationship updated")

	_, err = e.Client.CreateFederationRelationship(ctx, want)
	require.ErrorIs(t, err, registry.ErrAlreadyExists)
	_, err = e.Client.CreateFederationRelationship(ctx, registry.FederationRelationship{TrustDomain: admintest.Configured,
		BundleEndpointURL: "https://x.test/", BundleEndpointProfile: registry.ProfileHTTPSWeb})
	require.ErrorIs(t, err, admin.ErrFailedPrecondition)

	require.NoError(t, e.Client.DeleteFederationRelationship(ctx, admintest.Partner))
	assert.Contains(t, e.Log.String(), "admin: federation relationship deleted")
	require.ErrorIs(t, e.Client.DeleteFederationRelationship(ctx, admintest.Partner), registry.ErrNotFound)
	require.ErrorIs(t, e.Client.DeleteFederationRelationship(ctx, admintest.Configured), admin.ErrFailedPrecondition)
	_, err = e.Client.UpdateFederationRelationship(ctx, want)
	require.ErrorIs(t, err, registry.ErrNotFound)

	// The client refuses what it cannot name.
	_, err = e.Client.FederationRelationship(ctx, spiffeid.TrustDomain{})
	require.ErrorIs(t, err, registry.ErrInvalid)
	_, err = e.Client.UpdateFederationRelationship(ctx, registry.FederationRelationship{})
	require.ErrorIs(t, err, registry.ErrInvalid)
	require.ErrorIs(t, e.Client.DeleteFederationRelationship(ctx, spiffeid.TrustDomain{}), registry.ErrInvalid)
}
