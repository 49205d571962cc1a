package fedpoll

import (
	"context"
	"crypto/x509"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

var (
	ownTD     = spiffeid.RequireTrustDomainFromString("example.org")
	partnerTD = spiffeid.RequireTrustDomainFromString("partner.test")
)

// Property: Check accepts a relationship only with every parameter its
// profile needs and none it refuses, and says what is wrong; a failure to
// read the store is a StoreError, not the relationship's fault.
func TestCheck(t *testing.T) {
	selfID := spiffeid.RequireFromPath(partnerTD, "/spiffekit/server")
	otherID := spiffeid.RequireFromPath(spiffeid.RequireTrustDomainFromString("third.test"), "/endpoint")
	boot := spiffebundle.FromX509Authorities(partnerTD, []*x509.Certificate{{Raw: []byte("ca")}})
	url := "https://bundle.partner.test/"
	storedNone := func(spiffeid.TrustDomain) (bool, error) { return false, nil }
	for _, tc := range []struct {
		name string
		r    Relationship
		want string
	}{
		{"no trust domain", Relationship{URL: url, Profile: ProfileHTTPSWeb}, "the trust domain is required"},
		{"own trust domain", Relationship{TrustDomain: ownTD, URL: url, Profile: ProfileHTTPSWeb}, "can never be overwritten through federation"},
		{"no URL", Relationship{TrustDomain: partnerTD, Profile: ProfileHTTPSWeb}, "the URL is required"},
		{"bad URL", Relationship{TrustDomain: partnerTD, URL: "https://a b/%zz", Profile: ProfileHTTPSWeb}, "bad URL"},
		{"http", Relationship{TrustDomain: partnerTD, URL: "http://bundle.partner.test/", Profile: ProfileHTTPSWeb}, "the scheme must be https"},
		{"user", Relationship{TrustDomain: partnerTD, URL: "https://u:p@bundle.partner.test/", Profile: ProfileHTTPSWeb}, "user information is not allowed"},
		{"no host", Relationship{TrustDomain: partnerTD, URL: "https:///x", Profile: ProfileHTTPSWeb}, "no host"},
		{"no profile", Relationship{TrustDomain: partnerTD, URL: url}, "the profile is required"},
		{"unknown profile", Relationship{TrustDomain: partnerTD, URL: url, Profile: "ftp"}, `unknown profile "ftp"`},
		{"spiffe without ID", Relationship{TrustDomain: partnerTD, URL: url, Profile: ProfileHTTPSSPIFFE}, "needs the endpoint's SPIFFE ID"},
		{"spiffe with roots", Relationship{TrustDomain: partnerTD, URL: url, Profile: ProfileHTTPSSPIFFE, EndpointSPIFFEID: selfID, WebPKIRoots: x509.NewCertPool()},
			"the Web PKI roots are for the https_web profile only"},
		{"bootstrap of another endpoint", Relationship{TrustDomain: partnerTD, URL: url, Profile: ProfileHTTPSSPIFFE, EndpointSPIFFEID: otherID, BootstrapBundle: boot},
			"the bundle of third.test must come from its own relationship"},
		{"bootstrap of another trust domain", Relationship{TrustDomain: partnerTD, URL: url, Profile: ProfileHTTPSSPIFFE, EndpointSPIFFEID: selfID,
			BootstrapBundle: spiffebundle.New(ownTD)}, `the bootstrap bundle is of trust domain "example.org"`},
		{"empty bootstrap", Relationship{TrustDomain: partnerTD, URL: url, Profile: ProfileHTTPSSPIFFE, EndpointSPIFFEID: selfID,
			BootstrapBundle: spiffebundle.New(partnerTD)}, "the bootstrap bundle holds no X.509 authority"},
		{"self-serving without bootstrap", Relationship{TrustDomain: partnerTD, URL: url, Profile: ProfileHTTPSSPIFFE, EndpointSPIFFEID: selfID},
			"needs a bootstrap bundle, or a bundle set with `bundle set`"},
		{"web with ID", Relationship{TrustDomain: partnerTD, URL: url, Profile: ProfileHTTPSWeb, EndpointSPIFFEID: selfID},
			"are for the https_spiffe profile only"},
	} {
		_, err := Check(ownTD, tc.r, storedNone)
		require.ErrorContains(t, err, tc.want, tc.name)
		_, isStore := errors.AsType[StoreError](err)
		assert.False(t, isStore, tc.name)
	}

	for name, r := range map[string]Relationship{
		"web":                 {TrustDomain: partnerTD, URL: url, Profile: ProfileHTTPSWeb},
		"spiffe of another":   {TrustDomain: partnerTD, URL: url, Profile: ProfileHTTPSSPIFFE, EndpointSPIFFEID: otherID},
		"self-serving, boot":  {TrustDomain: partnerTD, URL: url, Profile: ProfileHTTPSSPIFFE, EndpointSPIFFEID: selfID, BootstrapBundle: boot},
		"self-serving, store": {TrustDomain: partnerTD, URL: url, Profile: ProfileHTTPSSPIFFE, EndpointSPIFFEID: selfID},
	} {
		stored := func(spiffeid.TrustDomain) (bool, error) { return name == "self-serving, store", nil }
		c, err := Check(ownTD, r, stored)
		require.NoError(t, err, name)
		assert.Equal(t, r, c.Relationship, name)
		assert.Equal(t, name == "self-serving, boot", c.bootstrap != nil, name)
	}

	down := errors.New("store down")
	_, err := Check(ownTD, Relationship{TrustDomain: partnerTD, URL: url, Profile: ProfileHTTPSSPIFFE, EndpointSPIFFEID: selfID},
		func(spiffeid.TrustDomain) (bool, error) { return false, down })
	se, ok := errors.AsType[StoreError](err)
	require.True(t, ok)
	assert.Equal(t, down, se.Err)
	assert.Equal(t, "store down", err.Error())
}

// failingBundles is a bundle store that cannot be read.
type failingBundles struct{ registry.BundleStore }

func (failingBundles) GetBundle(context.Context, spiffeid.TrustDomain) (registry.FederatedBundle, error) {
	return registry.FederatedBundle{}, errors.New("store down")
}

func (failingBundles) ListBundles(context.Context) ([]registry.FederatedBundle, error) {
	return nil, errors.New("store down")
}

// Property: Stored tells a stored bundle from none, and passes a failure
// of the store on.
func TestStored(t *testing.T) {
	store := memstore.New(memstore.Config{})
	doc, err := spiffebundle.New(partnerTD).Marshal()
	require.NoError(t, err)
	_, err = store.PutBundle(t.Context(), registry.FederatedBundle{TrustDomain: partnerTD, Document: doc})
	require.NoError(t, err)
	ok, err := Stored(t.Context(), store)(partnerTD)
	require.NoError(t, err)
	assert.True(t, ok)
	ok, err = Stored(t.Context(), store)(ownTD)
	require.NoError(t, err)
	assert.False(t, ok)
	_, err = Stored(t.Context(), failingBundles{store})(partnerTD)
	require.EqualError(t, err, "reading the stored bundle: store down")
}

// Property: CheckAll accepts at most MaxRelationships, none twice, and
// names the relationship an error is about: by trust domain, or by its
// place when it has none; a failure to read the store stays a StoreError.
func TestCheckAll(t *testing.T) {
	web := func(td spiffeid.TrustDomain) Relationship {
		return Relationship{TrustDomain: td, URL: "https://bundle.example/", Profile: ProfileHTTPSWeb}
	}
	none := func(spiffeid.TrustDomain) (bool, error) { return false, nil }
	third := spiffeid.RequireTrustDomainFromString("third.test")
	got, err := CheckAll(ownTD, []Relationship{web(partnerTD), web(third)}, none)
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.Equal(t, third, got[1].TrustDomain)

	_, err = CheckAll(ownTD, make([]Relationship, MaxRelationships+1), none)
	require.EqualError(t, err, "at most 1024 federation relationships")
	_, err = CheckAll(ownTD, []Relationship{web(partnerTD), web(partnerTD)}, none)
	require.EqualError(t, err, "federation relationship partner.test: configured twice")
	_, err = CheckAll(ownTD, []Relationship{web(partnerTD), {URL: "https://x/"}}, none)
	require.EqualError(t, err, "federation relationship #2: the trust domain is required")

	self := Relationship{TrustDomain: partnerTD, URL: "https://bundle.example/", Profile: ProfileHTTPSSPIFFE,
		EndpointSPIFFEID: spiffeid.RequireFromPath(partnerTD, "/endpoint")}
	down := errors.New("store down")
	_, err = CheckAll(ownTD, []Relationship{self}, func(spiffeid.TrustDomain) (bool, error) { return false, down })
	se, ok := errors.AsType[StoreError](err)
	require.True(t, ok)
	require.ErrorIs(t, se.Err, down)
	assert.EqualError(t, se.Err, "server: federation relationship partner.test: store down")
}
