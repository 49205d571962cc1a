package admin_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

var (
	partner    = spiffeid.RequireTrustDomainFromString("partner.test")
	configured = spiffeid.RequireTrustDomainFromString("configured.test")
)

// storeFederation is a FederationManager over a memstore, with one
// relationship of a configuration, as the server's is.
type storeFederation struct {
	store *memstore.Store
	err   error // returned by every call when set
}

func (f *storeFederation) Relationships(ctx context.Context) ([]admin.Relationship, error) {
	if f.err != nil {
		return nil, f.err
	}
	stored, err := f.store.ListFederationRelationships(ctx)
	if err != nil {
		return nil, err
	}
	out := []admin.Relationship{{Configured: true, FederationRelationship: registry.FederationRelationship{
		TrustDomain: configured, BundleEndpointURL: "https://configured.test/", BundleEndpointProfile: registry.ProfileHTTPSWeb,
	}}}
	for _, r := range stored {
		out = append(out, admin.Relationship{FederationRelationship: r})
	}
	return out, nil
}

func (f *storeFederation) refuse(td spiffeid.TrustDomain) error {
	if f.err != nil {
		return f.err
	}
	if td == configured {
		return admin.ErrFailedPrecondition
	}
	return nil
}

func (f *storeFederation) CreateRelationship(ctx context.Context, r registry.FederationRelationship) (admin.Relationship, error) {
	if err := f.refuse(r.TrustDomain); err != nil {
		return admin.Relationship{}, err
	}
	got, err := f.store.CreateFederationRelationship(ctx, r)
	return admin.Relationship{FederationRelationship: got}, err
}

func (f *storeFederation) UpdateRelationship(ctx context.Context, r registry.FederationRelationship) (admin.Relationship, error) {
	if err := f.refuse(r.TrustDomain); err != nil {
		return admin.Relationship{}, err
	}
	got, err := f.store.UpdateFederationRelationship(ctx, r)
	return admin.Relationship{FederationRelationship: got}, err
}

func (f *storeFederation) DeleteRelationship(ctx context.Context, td spiffeid.TrustDomain) error {
	if err := f.refuse(td); err != nil {
		return err
	}
	return f.store.DeleteFederationRelationship(ctx, td)
}

func startFederation(t *testing.T) (*env, *storeFederation) {
	f := &storeFederation{store: memstore.New(memstore.Config{})}
	return start(t, func(c *admin.Config) { c.Federation = f }), f
}

func TestFederationRelationships(t *testing.T) {
	e, _ := startFederation(t)
	ctx := t.Context()
	want := registry.FederationRelationship{
		TrustDomain:           partner,
		BundleEndpointURL:     "https://partner.test:8443/",
		BundleEndpointProfile: registry.ProfileHTTPSSPIFFE,
		EndpointSPIFFEID:      spiffeid.RequireFromString("spiffe://partner.test/spiffekit/server"),
		TrustDomainBundle:     []byte(`{"keys":[]}`),
	}
	got, err := e.client.CreateFederationRelationship(ctx, want)
	require.NoError(t, err)
	assert.False(t, got.Configured)
	assert.Equal(t, want.EndpointSPIFFEID, got.EndpointSPIFFEID)
	assert.Equal(t, want.TrustDomainBundle, got.TrustDomainBundle)
	assert.False(t, got.CreatedAt.IsZero())
	assert.Contains(t, e.log.String(), "admin: federation relationship created")

	rels, err := e.client.FederationRelationships(ctx)
	require.NoError(t, err)
	require.Len(t, rels, 2)
	assert.True(t, rels[0].Configured)
	assert.True(t, rels[0].CreatedAt.IsZero())
	assert.Equal(t, got, rels[1])

	shown, err := e.client.FederationRelationship(ctx, partner)
	require.NoError(t, err)
	assert.Equal(t, got, shown)
	_, err = e.client.FederationRelationship(ctx, spiffeid.RequireTrustDomainFromString("none.test"))
	require.ErrorIs(t, err, registry.ErrNotFound)
	assert.Contains(t, err.Error(), `federation relationship with "none.test" not found`)

	want.BundleEndpointURL = "https://partner2.test/"
	upd, err := e.client.UpdateFederationRelationship(ctx, want)
	require.NoError(t, err)
	assert.Equal(t, "https://partner2.test/", upd.BundleEndpointURL)
	assert.Contains(t, e.log.String(), "admin: federation relationship updated")

	_, err = e.client.CreateFederationRelationship(ctx, want)
	require.ErrorIs(t, err, registry.ErrAlreadyExists)
	_, err = e.client.CreateFederationRelationship(ctx, registry.FederationRelationship{TrustDomain: configured,
		BundleEndpointURL: "https://x.test/", BundleEndpointProfile: registry.ProfileHTTPSWeb})
	require.ErrorIs(t, err, admin.ErrFailedPrecondition)

	require.NoError(t, e.client.DeleteFederationRelationship(ctx, partner))
	assert.Contains(t, e.log.String(), "admin: federation relationship deleted")
	require.ErrorIs(t, e.client.DeleteFederationRelationship(ctx, partner), registry.ErrNotFound)
	require.ErrorIs(t, e.client.DeleteFederationRelationship(ctx, configured), admin.ErrFailedPrecondition)
	_, err = e.client.UpdateFederationRelationship(ctx, want)
	require.ErrorIs(t, err, registry.ErrNotFound)

	// The client refuses what it cannot name.
	_, err = e.client.FederationRelationship(ctx, spiffeid.TrustDomain{})
	require.ErrorIs(t, err, registry.ErrInvalid)
	_, err = e.client.UpdateFederationRelationship(ctx, registry.FederationRelationship{})
	require.ErrorIs(t, err, registry.ErrInvalid)
	require.ErrorIs(t, e.client.DeleteFederationRelationship(ctx, spiffeid.TrustDomain{}), registry.ErrInvalid)
}

func TestFederationRelationshipsBadRequests(t *testing.T) {
	e, f := startFederation(t)
	const path = "/v1/federation/relationships"
	for name, tt := range map[string]struct {
		method, target, body, want string
	}{
		"bad path trust domain": {http.MethodGet, path + "/Bad!", "", "trust domain"},
		"bad update path":       {http.MethodPut, path + "/Bad!", "{}", "trust domain"},
		"bad delete path":       {http.MethodDelete, path + "/Bad!", "", "trust domain"},
		"unknown field":         {http.MethodPost, path, `{"trust_domain":"partner.test","x":1}`, "unknown field"},
		"bad trust domain":      {http.MethodPost, path, `{"trust_domain":"Bad!"}`, "trust_domain"},
		"bad endpoint ID":       {http.MethodPost, path, `{"trust_domain":"partner.test","endpoint_spiffe_id":"nope"}`, "endpoint_spiffe_id"},
		"configured set":        {http.MethodPost, path, `{"trust_domain":"partner.test","configured":true}`, "set by the server"},
		"created_at set":        {http.MethodPost, path, `{"trust_domain":"partner.test","created_at":"2030-01-01T00:00:00Z"}`, "set by the server"},
		"updated_at set":        {http.MethodPost, path, `{"trust_domain":"partner.test","updated_at":"2030-01-01T00:00:00Z"}`, "set by the server"},
		"own trust domain": {http.MethodPost, path, `{"trust_domain":"example.org","bundle_endpoint_url":"https://x/","bundle_endpoint_profile":"https_web"}`,
			"this server's own trust domain"},
		"path and body differ": {http.MethodPut, path + "/other.test", `{"trust_domain":"partner.test","bundle_endpoint_url":"https://x/","bundle_endpoint_profile":"https_web"}`,
			"is not the path's"},
		"invalid relationship": {http.MethodPost, path, `{"trust_domain":"partner.test","bundle_endpoint_url":"http://x/","bundle_endpoint_profile":"https_web"}`,
			"the scheme must be https"},
		"malformed update": {http.MethodPut, path + "/partner.test", `{`, "invalid"},
	} {
		t.Run(name, func(t *testing.T) {
			status, body := raw(t, e.path, tt.method, tt.target, strings.NewReader(tt.body))
			assert.Equal(t, http.StatusBadRequest, status, body)
			assert.Contains(t, body, tt.want)
		})
	}
	rels, err := f.store.ListFederationRelationships(t.Context())
	require.NoError(t, err)
	assert.Empty(t, rels, "nothing was stored")

	// A failing manager is an internal error, logged.
	f.err = errors.New("database on fire")
	for _, call := range []func() error{
		func() error { _, err := e.client.FederationRelationships(t.Context()); return err },
		func() error { _, err := e.client.FederationRelationship(t.Context(), partner); return err },
	} {
		err := call()
		require.Error(t, err)
		assert.Contains(t, err.Error(), "internal error")
	}
	assert.Contains(t, e.log.String(), "database on fire")
}

func TestNoFederationManager(t *testing.T) {
	e := start(t)
	ctx := t.Context()
	_, err := e.client.FederationRelationships(ctx)
	require.ErrorIs(t, err, registry.ErrNotFound)
	assert.Equal(t, "admin: this server keeps no federation relationships in its datastore", err.Error())
	_, err = e.client.FederationRelationship(ctx, partner)
	require.ErrorIs(t, err, registry.ErrNotFound)
	r := registry.FederationRelationship{TrustDomain: partner, BundleEndpointURL: "https://p/", BundleEndpointProfile: registry.ProfileHTTPSWeb}
	_, err = e.client.CreateFederationRelationship(ctx, r)
	require.ErrorIs(t, err, registry.ErrNotFound)
	_, err = e.client.UpdateFederationRelationship(ctx, r)
	require.ErrorIs(t, err, registry.ErrNotFound)
	require.ErrorIs(t, e.client.DeleteFederationRelationship(ctx, partner), registry.ErrNotFound)
}
