package registrytest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// RunFederation runs the contract suite of [registry.FederationStore]
// against stores made by newStore, which must return a new, empty store
// each time it is called and release it with t.Cleanup. The store's clock
// must be the real one (within a second).
func RunFederation(t *testing.T, newStore func(t *testing.T) registry.FederationStore) {
	t.Run("CreateGet", func(t *testing.T) { testRelationshipCreateGet(t, newStore(t)) })
	t.Run("Update", func(t *testing.T) { testRelationshipUpdate(t, newStore(t)) })
	t.Run("ListDelete", func(t *testing.T) { testRelationshipListDelete(t, newStore(t)) })
	t.Run("Invalid", func(t *testing.T) { testRelationshipInvalid(t, newStore(t)) })
	t.Run("Limit", func(t *testing.T) { testRelationshipLimit(t, newStore(t)) })
	t.Run("CanceledContext", func(t *testing.T) { testRelationshipCanceled(t, newStore(t)) })
}

// FederationCreateOnce races CreateFederationRelationship for one trust
// domain through several stores on one database, as servers sharing it
// would: exactly one call creates it, the others fail with
// [registry.ErrAlreadyExists].
func FederationCreateOnce(t *testing.T, stores []registry.FederationStore, calls int) {
	ctx := t.Context()
	r := relationship("race.example", "https://race.example/bundle")
	var created atomic.Int32
	errs := make(chan error, calls*len(stores))
	var wg sync.WaitGroup
	for i := range calls * len(stores) {
		wg.Go(func() {
			_, err := stores[i%len(stores)].CreateFederationRelationship(ctx, r)
			if err == nil {
				created.Add(1)
				return
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.ErrorIs(t, err, registry.ErrAlreadyExists)
	}
	assert.Equal(t, int32(1), created.Load())
}

func relationship(td, url string) registry.FederationRelationship {
	return registry.FederationRelationship{
		TrustDomain:           spiffeid.RequireTrustDomainFromString(td),
		BundleEndpointURL:     url,
		BundleEndpointProfile: registry.ProfileHTTPSWeb,
	}
}

func spiffeRelationship(td, url, endpointID string, bundle []byte) registry.FederationRelationship {
	return registry.FederationRelationship{
		TrustDomain:           spiffeid.RequireTrustDomainFromString(td),
		BundleEndpointURL:     url,
		BundleEndpointProfile: registry.ProfileHTTPSSPIFFE,
		EndpointSPIFFEID:      spiffeid.RequireFromString(endpointID),
		TrustDomainBundle:     bundle,
	}
}

func testRelationshipCreateGet(t *testing.T, s registry.FederationStore) {
	ctx := t.Context()
	doc := []byte(`{"keys":[]}`)
	in := spiffeRelationship("b.example", "https://b.example:8443/", "spiffe://b.example/spiffekit/server", doc)
	in.CreatedAt, in.UpdatedAt = time.Unix(1, 0), time.Unix(2, 0)
	before := time.Now()
	got, err := s.CreateFederationRelationship(ctx, in)
	after := time.Now()
	require.NoError(t, err)
	assert.Equal(t, in.TrustDomain, got.TrustDomain)
	assert.Equal(t, in.BundleEndpointURL, got.BundleEndpointURL)
	assert.Equal(t, registry.ProfileHTTPSSPIFFE, got.BundleEndpointProfile)
	assert.Equal(t, in.EndpointSPIFFEID, got.EndpointSPIFFEID)
	assert.Equal(t, doc, got.TrustDomainBundle)
	inWindow(t, got.CreatedAt, before, after)
	assert.Equal(t, got.CreatedAt, got.UpdatedAt)

	stored, err := s.GetFederationRelationship(ctx, in.TrustDomain)
	require.NoError(t, err)
	assert.Equal(t, got, stored)

	// Copies both ways.
	doc[0] = 'X'
	got.TrustDomainBundle[1] = 'X'
	stored.TrustDomainBundle[2] = 'X'
	again, err := s.GetFederationRelationship(ctx, in.TrustDomain)
	require.NoError(t, err)
	assert.Equal(t, []byte(`{"keys":[]}`), again.TrustDomainBundle)

	// One per trust domain, whatever else differs.
	_, err = s.CreateFederationRelationship(ctx, relationship("b.example", "https://other.example/"))
	require.ErrorIs(t, err, registry.ErrAlreadyExists)
	assert.Contains(t, err.Error(), `"b.example"`)
	again, err = s.GetFederationRelationship(ctx, in.TrustDomain)
	require.NoError(t, err)
	assert.Equal(t, "https://b.example:8443/", again.BundleEndpointURL, "the refused create changed nothing")

	// https_web, without a bundle: no bundle comes back, in one form.
	web, err := s.CreateFederationRelationship(ctx, relationship("web.example", "https://web.example/bundle"))
	require.NoError(t, err)
	assert.Nil(t, web.TrustDomainBundle)
	assert.True(t, web.EndpointSPIFFEID.IsZero())
	web2, err := s.GetFederationRelationship(ctx, web.TrustDomain)
	require.NoError(t, err)
	assert.Equal(t, web, web2)
	empty := relationship("empty.example", "https://empty.example/")
	empty.TrustDomainBundle = []byte{}
	e, err := s.CreateFederationRelationship(ctx, empty)
	require.NoError(t, err)
	assert.Nil(t, e.TrustDomainBundle, "an empty bundle is none")

	// The largest bundle document is kept byte for byte.
	big := []byte(strings.Repeat("\x00\xff\"\n", registry.MaxBundleDocument/4))
	_, err = s.CreateFederationRelationship(ctx, spiffeRelationship("big.example", "https://big.example/", "spiffe://big.example/s", big))
	require.NoError(t, err)
	gotBig, err := s.GetFederationRelationship(ctx, spiffeid.RequireTrustDomainFromString("big.example"))
	require.NoError(t, err)
	assert.Equal(t, big, gotBig.TrustDomainBundle)

	_, err = s.GetFederationRelationship(ctx, spiffeid.RequireTrustDomainFromString("never.example"))
	require.ErrorIs(t, err, registry.ErrNotFound)
	assert.Contains(t, err.Error(), "federation relationship")
	_, err = s.GetFederationRelationship(ctx, spiffeid.TrustDomain{})
	require.ErrorIs(t, err, registry.ErrNotFound)
}

func testRelationshipUpdate(t *testing.T, s registry.FederationStore) {
	ctx := t.Context()
	created, err := s.CreateFederationRelationship(ctx, relationship("b.example", "https://b.example/"))
	require.NoError(t, err)

	upd := spiffeRelationship("b.example", "https://b2.example/", "spiffe://c.example/server", nil)
	upd.CreatedAt = time.Unix(5, 0)
	got, err := s.UpdateFederationRelationship(ctx, upd)
	require.NoError(t, err)
	assert.Equal(t, created.CreatedAt, got.CreatedAt, "CreatedAt is kept")
	assert.False(t, got.UpdatedAt.Before(created.UpdatedAt))
	assert.Equal(t, "https://b2.example/", got.BundleEndpointURL)
	assert.Equal(t, registry.ProfileHTTPSSPIFFE, got.BundleEndpointProfile)
	stored, err := s.GetFederationRelationship(ctx, upd.TrustDomain)
	require.NoError(t, err)
	assert.Equal(t, got, stored)

	// Back to https_web: the endpoint ID is gone.
	got, err = s.UpdateFederationRelationship(ctx, relationship("b.example", "https://b3.example/"))
	require.NoError(t, err)
	assert.True(t, got.EndpointSPIFFEID.IsZero())
	stored, err = s.GetFederationRelationship(ctx, upd.TrustDomain)
	require.NoError(t, err)
	assert.Equal(t, got, stored)

	// Update never creates.
	_, err = s.UpdateFederationRelationship(ctx, relationship("absent.example", "https://absent.example/"))
	require.ErrorIs(t, err, registry.ErrNotFound)
	_, err = s.GetFederationRelationship(ctx, spiffeid.RequireTrustDomainFromString("absent.example"))
	require.ErrorIs(t, err, registry.ErrNotFound)

	// An invalid update changes nothing.
	_, err = s.UpdateFederationRelationship(ctx, registry.FederationRelationship{TrustDomain: upd.TrustDomain, BundleEndpointURL: "http://b.example/"})
	require.ErrorIs(t, err, registry.ErrInvalid)
	again, err := s.GetFederationRelationship(ctx, upd.TrustDomain)
	require.NoError(t, err)
	assert.Equal(t, stored, again)
}

func testRelationshipListDelete(t *testing.T, s registry.FederationStore) {
	ctx := t.Context()
	list, err := s.ListFederationRelationships(ctx)
	require.NoError(t, err)
	assert.NotNil(t, list, "an empty list, not nil")
	assert.Empty(t, list)
	for _, name := range []string{"b-c.example", "b.example", "b_c.example", "a-z.example", "b1.example", "a.example"} {
		_, err := s.CreateFederationRelationship(ctx, spiffeRelationship(name, "https://"+name+"/", "spiffe://"+name+"/s", []byte("{}")))
		require.NoError(t, err)
	}
	list, err = s.ListFederationRelationships(ctx)
	require.NoError(t, err)
	var names []string
	for _, r := range list {
		names = append(names, r.TrustDomain.Name())
	}
	assert.Equal(t, []string{"a-z.example", "a.example", "b-c.example", "b.example", "b1.example", "b_c.example"}, names,
		"ordered by name, byte by byte")
	list[1].TrustDomainBundle[0] = 'X'
	again, err := s.GetFederationRelationship(ctx, list[1].TrustDomain)
	require.NoError(t, err)
	assert.Equal(t, []byte("{}"), again.TrustDomainBundle, "listed relationships are copies")

	td := spiffeid.RequireTrustDomainFromString("a.example")
	require.NoError(t, s.DeleteFederationRelationship(ctx, td))
	_, err = s.GetFederationRelationship(ctx, td)
	require.ErrorIs(t, err, registry.ErrNotFound)
	err = s.DeleteFederationRelationship(ctx, td)
	require.ErrorIs(t, err, registry.ErrNotFound)
	assert.Contains(t, err.Error(), `federation relationship with "a.example" not found`)
	require.ErrorIs(t, s.DeleteFederationRelationship(ctx, spiffeid.TrustDomain{}), registry.ErrNotFound)
	list, err = s.ListFederationRelationships(ctx)
	require.NoError(t, err)
	assert.Len(t, list, 5)

	// A deleted one can be created again.
	_, err = s.CreateFederationRelationship(ctx, relationship("a.example", "https://a.example/"))
	require.NoError(t, err)
}

func testRelationshipInvalid(t *testing.T, s registry.FederationStore) {
	ctx := t.Context()
	td := spiffeid.RequireTrustDomainFromString("b.example")
	endpoint := spiffeid.RequireFromString("spiffe://b.example/s")
	valid := registry.FederationRelationship{TrustDomain: td, BundleEndpointURL: "https://b.example/", BundleEndpointProfile: registry.ProfileHTTPSWeb}
	with := func(f func(r *registry.FederationRelationship)) registry.FederationRelationship {
		r := valid
		f(&r)
		return r
	}
	tests := []struct {
		name, want string
		r          registry.FederationRelationship
	}{
		{"zero trust domain", "trust domain is missing", with(func(r *registry.FederationRelationship) { r.TrustDomain = spiffeid.TrustDomain{} })},
		{"no URL", "URL is missing", with(func(r *registry.FederationRelationship) { r.BundleEndpointURL = "" })},
		{"http", "scheme must be https", with(func(r *registry.FederationRelationship) { r.BundleEndpointURL = "http://b.example/" })},
		{"user info", "user information", with(func(r *registry.FederationRelationship) { r.BundleEndpointURL = "https://u:p@b.example/" })},
		{"no host", "no host", with(func(r *registry.FederationRelationship) { r.BundleEndpointURL = "https:///bundle" })},
		{"unparsable URL", "bad bundle endpoint URL", with(func(r *registry.FederationRelationship) { r.BundleEndpointURL = "https://b.example/%zz" })},
		{"URL not UTF-8", "not UTF-8", with(func(r *registry.FederationRelationship) { r.BundleEndpointURL = "https://b.example/\xff" })},
		{"URL too long", "longer than", with(func(r *registry.FederationRelationship) {
			r.BundleEndpointURL = "https://b.example/" + strings.Repeat("a", registry.MaxBundleEndpointURL)
		})},
		{"no profile", "profile is missing", with(func(r *registry.FederationRelationship) { r.BundleEndpointProfile = "" })},
		{"unknown profile", `unknown bundle endpoint profile "https"`, with(func(r *registry.FederationRelationship) { r.BundleEndpointProfile = "https" })},
		{"https_spiffe without ID", "needs the endpoint's SPIFFE ID", with(func(r *registry.FederationRelationship) { r.BundleEndpointProfile = registry.ProfileHTTPSSPIFFE })},
		{"https_web with ID", "for the https_spiffe profile only", with(func(r *registry.FederationRelationship) { r.EndpointSPIFFEID = endpoint })},
		{"bundle too large", "larger than", with(func(r *registry.FederationRelationship) {
			r.TrustDomainBundle = make([]byte, registry.MaxBundleDocument+1)
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.CreateFederationRelationship(ctx, tt.r)
			require.ErrorIs(t, err, registry.ErrInvalid)
			assert.Contains(t, err.Error(), tt.want)
			assert.True(t, strings.HasPrefix(err.Error(), "registry: federation relationship "), err.Error())
			_, err = s.UpdateFederationRelationship(ctx, tt.r)
			require.ErrorIs(t, err, registry.ErrInvalid)
		})
	}
	list, err := s.ListFederationRelationships(ctx)
	require.NoError(t, err)
	assert.Empty(t, list, "nothing invalid was stored")
}

func testRelationshipLimit(t *testing.T, s registry.FederationStore) {
	ctx := t.Context()
	for i := range registry.MaxFederationRelationships {
		name := fmt.Sprintf("td%04d.example", i)
		_, err := s.CreateFederationRelationship(ctx, relationship(name, "https://"+name+"/"))
		require.NoError(t, err)
	}
	_, err := s.CreateFederationRelationship(ctx, relationship("one-more.example", "https://one-more.example/"))
	require.ErrorIs(t, err, registry.ErrConflict)
	assert.Contains(t, err.Error(), "the most it keeps")
	// An existing one is still told as such.
	_, err = s.CreateFederationRelationship(ctx, relationship("td0000.example", "https://td0000.example/"))
	require.ErrorIs(t, err, registry.ErrAlreadyExists)
	// Room again after a delete.
	require.NoError(t, s.DeleteFederationRelationship(ctx, spiffeid.RequireTrustDomainFromString("td0001.example")))
	_, err = s.CreateFederationRelationship(ctx, relationship("one-more.example", "https://one-more.example/"))
	require.NoError(t, err)
}

func testRelationshipCanceled(t *testing.T, s registry.FederationStore) {
	ctx := t.Context()
	_, err := s.CreateFederationRelationship(ctx, relationship("b.example", "https://b.example/"))
	require.NoError(t, err)
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	r := relationship("c.example", "https://c.example/")
	td := spiffeid.RequireTrustDomainFromString("b.example")
	_, err = s.CreateFederationRelationship(canceled, r)
	require.ErrorIs(t, err, context.Canceled)
	_, err = s.UpdateFederationRelationship(canceled, relationship("b.example", "https://b2.example/"))
	require.ErrorIs(t, err, context.Canceled)
	_, err = s.GetFederationRelationship(canceled, td)
	require.ErrorIs(t, err, context.Canceled)
	_, err = s.ListFederationRelationships(canceled)
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorIs(t, s.DeleteFederationRelationship(canceled, td), context.Canceled)
	got, err := s.GetFederationRelationship(ctx, td)
	require.NoError(t, err)
	assert.Equal(t, "https://b.example/", got.BundleEndpointURL, "nothing changed")
	_, err = s.GetFederationRelationship(ctx, r.TrustDomain)
	require.ErrorIs(t, err, registry.ErrNotFound)
}
