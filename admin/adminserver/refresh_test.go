package adminserver_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/admin/adminserver"
	"github.com/spiffekit/spiffekit/internal/testing/admintest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// TestRefreshFederationRelationship: a refresh reaches the manager and
// comes back with its outcome; a relationship that does not exist is 404,
// a fetch that fails is 503 with its reason (ErrUnavailable); a manager
// that cannot refresh, or none, is 404 with a message that says so.
func TestRefreshFederationRelationship(t *testing.T) {
	f := admintest.NewRefreshingFederation()
	e := admintest.Start(t, func(c *adminserver.Config) { c.Federation = f })
	ctx := t.Context()
	_, err := f.Store.CreateFederationRelationship(ctx, registry.FederationRelationship{
		TrustDomain: admintest.Partner, BundleEndpointURL: "https://partner.test/", BundleEndpointProfile: registry.ProfileHTTPSWeb})
	require.NoError(t, err)

	got, err := e.Client.RefreshFederationRelationship(ctx, admintest.Partner)
	require.NoError(t, err)
	assert.Equal(t, admin.Refreshed{TrustDomain: admintest.Partner, Changed: true, SequenceNumber: 7}, got)
	assert.Contains(t, e.Log.String(), "admin: federated bundle refreshed")

	_, err = e.Client.RefreshFederationRelationship(ctx, spiffeid.RequireTrustDomainFromString("absent.test"))
	require.ErrorIs(t, err, registry.ErrNotFound)

	_, err = e.Client.RefreshFederationRelationship(ctx, admintest.Down)
	require.ErrorIs(t, err, admin.ErrUnavailable)
	assert.EqualError(t, err, `admin: unavailable: fetching the bundle of "down.test" failed: connection refused`)
	assert.Equal(t, []spiffeid.TrustDomain{admintest.Partner, spiffeid.RequireTrustDomainFromString("absent.test"), admintest.Down}, f.Calls())

	_, err = e.Client.RefreshFederationRelationship(ctx, spiffeid.TrustDomain{})
	require.ErrorIs(t, err, registry.ErrInvalid)
	status, text := admintest.Raw(t, e.Path, http.MethodPost, "/v1/federation/relationships/Not%20A%20TD/refresh", nil)
	assert.Equal(t, http.StatusBadRequest, status, text)
	status, _ = admintest.Raw(t, e.Path, http.MethodGet, "/v1/federation/relationships/partner.test/refresh", nil)
	assert.Equal(t, http.StatusMethodNotAllowed, status, "a refresh is a POST")
	assert.Len(t, f.Calls(), 3, "no call for a refused request")

	// A manager that cannot refresh, and no manager.
	e = admintest.Start(t, func(c *adminserver.Config) { c.Federation = f.Federation })
	_, err = e.Client.RefreshFederationRelationship(ctx, admintest.Partner)
	require.ErrorIs(t, err, registry.ErrNotFound)
	assert.EqualError(t, err, "admin: this server cannot refresh federated bundles on demand")
	e = admintest.Start(t)
	_, err = e.Client.RefreshFederationRelationship(ctx, admintest.Partner)
	require.ErrorIs(t, err, registry.ErrNotFound)
	assert.EqualError(t, err, "admin: this server keeps no federation relationships in its datastore")
}
