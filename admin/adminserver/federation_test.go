package adminserver_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/admintest"
	"github.com/spiffekit/spiffekit/registry"
)

func TestFederationRelationshipsBadRequests(t *testing.T) {
	e, f := admintest.StartFederation(t)
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
			status, body := admintest.Raw(t, e.Path, tt.method, tt.target, strings.NewReader(tt.body))
			assert.Equal(t, http.StatusBadRequest, status, body)
			assert.Contains(t, body, tt.want)
		})
	}
	rels, err := f.Store.ListFederationRelationships(t.Context())
	require.NoError(t, err)
	assert.Empty(t, rels, "nothing was stored")

	// A failing manager is an internal error, logged.
	f.SetErr(errors.New("database on fire"))
	for _, call := range []func() error{
		func() error { _, err := e.Client.FederationRelationships(t.Context()); return err },
		func() error { _, err := e.Client.FederationRelationship(t.Context(), admintest.Partner); return err },
	} {
		err := call()
		require.Error(t, err)
		assert.Contains(t, err.Error(), "internal error")
	}
	assert.Contains(t, e.Log.String(), "database on fire")
}

func TestNoFederationManager(t *testing.T) {
	e := admintest.Start(t)
	ctx := t.Context()
	_, err := e.Client.FederationRelationships(ctx)
	require.ErrorIs(t, err, registry.ErrNotFound)
	assert.Equal(t, "admin: this server keeps no federation relationships in its datastore", err.Error())
	_, err = e.Client.FederationRelationship(ctx, admintest.Partner)
	require.ErrorIs(t, err, registry.ErrNotFound)
	r := registry.FederationRelationship{TrustDomain: admintest.Partner, BundleEndpointURL: "https://p/", BundleEndpointProfile: registry.ProfileHTTPSWeb}
	_, err = e.Client.CreateFederationRelationship(ctx, r)
	require.ErrorIs(t, err, registry.ErrNotFound)
	_, err = e.Client.UpdateFederationRelationship(ctx, r)
	require.ErrorIs(t, err, registry.ErrNotFound)
	require.ErrorIs(t, e.Client.DeleteFederationRelationship(ctx, admintest.Partner), registry.ErrNotFound)
}
