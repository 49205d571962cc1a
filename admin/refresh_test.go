package admin_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// refreshingFederation is a storeFederation that can refresh: the
// relationships stored refresh, that of down.test fails as an endpoint
// that does not answer.
type refreshingFederation struct {
	*storeFederation
	calls []spiffeid.TrustDomain
}

var down = spiffeid.RequireTrustDomainFromString("down.test")

func (f *refreshingFederation) RefreshRelationship(ctx context.Context, td spiffeid.TrustDomain) (admin.Refreshed, error) {
	f.calls = append(f.calls, td)
	if td == down {
		return admin.Refreshed{}, fmt.Errorf("%w: fetching the bundle of %q failed: connection refused", admin.ErrUnavailable, td.Name())
	}
	if _, err := f.store.GetFederationRelationship(ctx, td); err != nil {
		return admin.Refreshed{}, err
	}
	return admin.Refreshed{TrustDomain: td, Changed: true, SequenceNumber: 7}, nil
}

// TestRefreshFederationRelationship: a refresh reaches the manager and
// comes back with its outcome; a relationship that does not exist is 404,
// a fetch that fails is 503 with its reason (ErrUnavailable); a manager
// that cannot refresh, or none, is 404 with a message that says so.
func TestRefreshFederationRelationship(t *testing.T) {
	f := &refreshingFederation{storeFederation: &storeFederation{store: memstore.New(memstore.Config{})}}
	e := start(t, func(c *admin.Config) { c.Federation = f })
	ctx := t.Context()
	_, err := f.store.CreateFederationRelationship(ctx, registry.FederationRelationship{
		TrustDomain: partner, BundleEndpointURL: "https://partner.test/", BundleEndpointProfile: registry.ProfileHTTPSWeb})
	require.NoError(t, err)

	got, err := e.client.RefreshFederationRelationship(ctx, partner)
	require.NoError(t, err)
	assert.Equal(t, admin.Refreshed{TrustDomain: partner, Changed: true, SequenceNumber: 7}, got)
	assert.Contains(t, e.log.String(), "admin: federated bundle refreshed")

	_, err = e.client.RefreshFederationRelationship(ctx, spiffeid.RequireTrustDomainFromString("absent.test"))
	require.ErrorIs(t, err, registry.ErrNotFound)

	_, err = e.client.RefreshFederationRelationship(ctx, down)
	require.ErrorIs(t, err, admin.ErrUnavailable)
	assert.EqualError(t, err, `admin: unavailable: fetching the bundle of "down.test" failed: connection refused`)
	assert.Equal(t, []spiffeid.TrustDomain{partner, spiffeid.RequireTrustDomainFromString("absent.test"), down}, f.calls)

	_, err = e.client.RefreshFederationRelationship(ctx, spiffeid.TrustDomain{})
	require.ErrorIs(t, err, registry.ErrInvalid)
	status, text := raw(t, e.path, http.MethodPost, "/v1/federation/relationships/Not%20A%20TD/refresh", nil)
	assert.Equal(t, http.StatusBadRequest, status, text)
	status, _ = raw(t, e.path, http.MethodGet, "/v1/federation/relationships/partner.test/refresh", nil)
	assert.Equal(t, http.StatusMethodNotAllowed, status, "a refresh is a POST")
	assert.Len(t, f.calls, 3, "no call for a refused request")

	// A manager that cannot refresh, and no manager.
	e = start(t, func(c *admin.Config) { c.Federation = f.storeFederation })
	_, err = e.client.RefreshFederationRelationship(ctx, partner)
	require.ErrorIs(t, err, registry.ErrNotFound)
	assert.EqualError(t, err, "admin: this server cannot refresh federated bundles on demand")
	e = start(t)
	_, err = e.client.RefreshFederationRelationship(ctx, partner)
	require.ErrorIs(t, err, registry.ErrNotFound)
	assert.EqualError(t, err, "admin: this server keeps no federation relationships in its datastore")
}
