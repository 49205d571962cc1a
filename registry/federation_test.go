package registry_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

func TestFederationRelationshipValidate(t *testing.T) {
	valid := registry.FederationRelationship{
		TrustDomain:           spiffeid.RequireTrustDomainFromString("b.example"),
		BundleEndpointURL:     "https://b.example:8443/bundle",
		BundleEndpointProfile: registry.ProfileHTTPSSPIFFE,
		EndpointSPIFFEID:      spiffeid.RequireFromString("spiffe://b.example/spiffekit/server"),
	}
	require.NoError(t, valid.Validate())
	with := func(f func(r *registry.FederationRelationship)) registry.FederationRelationship {
		r := valid
		f(&r)
		return r
	}
	for name, tt := range map[string]struct {
		r    registry.FederationRelationship
		want string
	}{
		"no trust domain": {with(func(r *registry.FederationRelationship) { r.TrustDomain = spiffeid.TrustDomain{} }), "registry: federation relationship trust domain is missing"},
		"ftp":             {with(func(r *registry.FederationRelationship) { r.BundleEndpointURL = "ftp://b.example/" }), `registry: federation relationship with "b.example": bundle endpoint URL "ftp://b.example/": the scheme must be https`},
		"long URL, quoted short": {with(func(r *registry.FederationRelationship) {
			r.BundleEndpointURL = "http://" + strings.Repeat("b", 100)
		}), `..."`},
		"web with ID": {with(func(r *registry.FederationRelationship) { r.BundleEndpointProfile = registry.ProfileHTTPSWeb }), "for the https_spiffe profile only"},
	} {
		t.Run(name, func(t *testing.T) {
			err := tt.r.Validate()
			require.ErrorIs(t, err, registry.ErrInvalid)
			assert.Contains(t, err.Error(), tt.want)
			assert.Equal(t, 1, strings.Count(err.Error(), "registry: "), "one prefix: %s", err)
		})
	}
}

func TestPrepareFederationRelationship(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 6789, time.FixedZone("x", 3600))
	doc := []byte("{}")
	r, err := registry.PrepareFederationRelationship(registry.FederationRelationship{
		TrustDomain:           spiffeid.RequireTrustDomainFromString("b.example"),
		BundleEndpointURL:     "https://b.example/",
		BundleEndpointProfile: registry.ProfileHTTPSWeb,
		TrustDomainBundle:     doc,
	}, now)
	require.NoError(t, err)
	assert.Equal(t, registry.StoreTime(now), r.CreatedAt)
	assert.Equal(t, r.CreatedAt, r.UpdatedAt)
	r.TrustDomainBundle[0] = 'X'
	assert.Equal(t, []byte("{}"), doc, "the bundle is copied")

	_, err = registry.PrepareFederationRelationship(registry.FederationRelationship{}, now)
	require.ErrorIs(t, err, registry.ErrInvalid)

	require.ErrorIs(t, registry.TooManyFederationRelationships(), registry.ErrConflict)
	exists := registry.FederationRelationshipExists(spiffeid.RequireTrustDomainFromString("b.example"))
	require.ErrorIs(t, exists, registry.ErrAlreadyExists)
	assert.NotErrorIs(t, exists, registry.ErrConflict)
	assert.Equal(t, `registry: a federation relationship with "b.example" exists already`, exists.Error())
}
