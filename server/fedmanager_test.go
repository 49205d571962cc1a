package server_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/internal/testing/pgtest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/server"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// storedSPIFFERelationship is the relationship with another server's
// self-serving https_spiffe endpoint, bootstrapped with its bundle, as
// `federation create` stores it.
func storedSPIFFERelationship(t *testing.T, other *nodetest.Server) registry.FederationRelationship {
	t.Helper()
	doc, err := other.Bundle().Marshal()
	require.NoError(t, err)
	return registry.FederationRelationship{
		TrustDomain:           other.TrustDomain(),
		BundleEndpointURL:     endpointURL(other),
		BundleEndpointProfile: registry.ProfileHTTPSSPIFFE,
		EndpointSPIFFEID:      endpointID(other.TrustDomain()),
		TrustDomainBundle:     doc,
	}
}

// fedStats returns the fetch counts of the relationship with td, and
// whether it is polled.
func fedStats(s *nodetest.Server, td spiffeid.TrustDomain) (server.FederationStats, bool) {
	for _, f := range s.Stats().Federation {
		if f.TrustDomain == td {
			return f, true
		}
	}
	return server.FederationStats{}, false
}

// A relationship created, changed and deleted through the admin API is
// polled, polled anew and no longer polled, without a restart; its bundle
// stays after the delete.
func TestFederationRelationshipAtRuntime(t *testing.T) {
	org := start(t, server.Config{FederationBind: "127.0.0.1:0"})
	var logs logtest.Buffer
	p := start(t, server.Config{
		TrustDomain:       partnerTD,
		FederationRefresh: time.Hour, // no regular poll during the test: every fetch is the manager's doing
		Logger:            slog.New(slog.NewTextHandler(&logs, nil)),
	})
	ctx := t.Context()
	rels, err := p.Admin.FederationRelationships(ctx)
	require.NoError(t, err)
	assert.Empty(t, rels)

	want := storedSPIFFERelationship(t, org)
	got, err := p.Admin.CreateFederationRelationship(ctx, want)
	require.NoError(t, err)
	assert.False(t, got.Configured)
	assert.Equal(t, want.BundleEndpointURL, got.BundleEndpointURL)
	assert.False(t, got.CreatedAt.IsZero())
	require.Eventually(t, func() bool { return storedBundle(t, p, td) != nil }, 15*time.Second, 5*time.Millisecond,
		"the new relationship is fetched without a restart: %s", logs.String())
	assert.True(t, storedBundle(t, p, td).Equal(org.Bundle()))
	assert.Contains(t, logs.String(), "federation relationship added; polling its bundle endpoint")

	shown, err := p.Admin.FederationRelationship(ctx, td)
	require.NoError(t, err)
	assert.Equal(t, got, shown)

	_, err = p.Admin.CreateFederationRelationship(ctx, want)
	require.ErrorIs(t, err, registry.ErrAlreadyExists)

	// Changed: polled anew (its counts start again).
	before, ok := fedStats(p, td)
	require.True(t, ok)
	require.Positive(t, before.Fetches)
	changed := want
	changed.BundleEndpointURL = strings.Replace(endpointURL(org), "127.0.0.1", "localhost", 1)
	changed.TrustDomainBundle = nil // the stored bootstrap is kept
	upd, err := p.Admin.UpdateFederationRelationship(ctx, changed)
	require.NoError(t, err)
	assert.Equal(t, changed.BundleEndpointURL, upd.BundleEndpointURL)
	assert.Equal(t, want.TrustDomainBundle, upd.TrustDomainBundle)
	assert.Equal(t, got.CreatedAt, upd.CreatedAt)
	require.Eventually(t, func() bool {
		return strings.Contains(logs.String(), "federation relationship changed; polling its bundle endpoint")
	}, 15*time.Second, 5*time.Millisecond)
	require.Eventually(t, func() bool {
		f, ok := fedStats(p, td)
		return ok && f.Fetches > 0
	}, 15*time.Second, 5*time.Millisecond)

	// Deleted: no longer polled; the bundle stays.
	require.NoError(t, p.Admin.DeleteFederationRelationship(ctx, td))
	require.Eventually(t, func() bool {
		_, ok := fedStats(p, td)
		return !ok
	}, 15*time.Second, 5*time.Millisecond)
	assert.NotNil(t, storedBundle(t, p, td), "the bundle is kept")
	// The manager logs the removal once the watcher has stopped, after
	// Stats stopped listing it.
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "federation relationship removed") },
		15*time.Second, 5*time.Millisecond, logs.String())
	err = p.Admin.DeleteFederationRelationship(ctx, td)
	require.ErrorIs(t, err, registry.ErrNotFound)
	_, err = p.Admin.FederationRelationship(ctx, td)
	require.ErrorIs(t, err, registry.ErrNotFound)
	_, err = p.Admin.UpdateFederationRelationship(ctx, changed)
	require.ErrorIs(t, err, registry.ErrNotFound)
}

// The first fetch of a new relationship whose peer is down is tried again
// with a backoff, not at the next regular poll an hour later.
func TestFederationFirstFetchRetried(t *testing.T) {
	f := newFakeEndpoint(t)
	f.set("status", nil)
	var logs logtest.Buffer
	s := start(t, server.Config{
		FederationRefresh:     time.Hour,
		FederationWebPKIRoots: f.roots,
		Logger:                slog.New(slog.NewTextHandler(&logs, nil)),
	})
	_, err := s.Admin.CreateFederationRelationship(t.Context(), registry.FederationRelationship{
		TrustDomain: partnerTD, BundleEndpointURL: f.URL + "/bundle.json", BundleEndpointProfile: registry.ProfileHTTPSWeb,
	})
	require.NoError(t, err)
	f.awaitPolls(t) // two failed fetches: the second one came before the hour
	good, goodBundle := partnerDoc(t, 1, "partner-1")
	f.set("good", good)
	require.Eventually(t, func() bool {
		b := storedBundle(t, s, partnerTD)
		return b != nil && b.Equal(goodBundle)
	}, 30*time.Second, 10*time.Millisecond, logs.String())
	assert.Contains(t, logs.String(), "the first fetch of a federated bundle failed; trying again soon")
	st, ok := fedStats(s, partnerTD)
	require.True(t, ok)
	assert.GreaterOrEqual(t, st.Failures, uint64(2))
}

// A relationship of the configuration wins: the API shows it, refuses to
// create, change or delete it, and a stored one with its trust domain is
// ignored.
func TestFederationConfiguredWins(t *testing.T) {
	org := start(t, server.Config{FederationBind: "127.0.0.1:0"})
	var logs logtest.Buffer
	dir := t.TempDir()
	stored := storedSPIFFERelationship(t, org)
	stored.BundleEndpointURL = "https://127.0.0.1:1/never"
	// Stored before the configuration had it, as another server of the
	// trust domain might have.
	first := nodetest.StartServerIn(t, dir, server.Config{TrustDomain: partnerTD})
	_, err := first.Admin.CreateFederationRelationship(t.Context(), stored)
	require.NoError(t, err)
	first.Stop()

	p := nodetest.StartServerIn(t, dir, server.Config{
		TrustDomain: partnerTD,
		Logger:      slog.New(slog.NewTextHandler(&logs, nil)),
		Federation:  []server.Relationship{spiffeRelationship(t, org)},
	})
	ctx := t.Context()
	rels, err := p.Admin.FederationRelationships(ctx)
	require.NoError(t, err)
	require.Len(t, rels, 1)
	assert.True(t, rels[0].Configured)
	assert.Equal(t, endpointURL(org), rels[0].BundleEndpointURL)
	assert.True(t, rels[0].CreatedAt.IsZero())
	require.Eventually(t, func() bool {
		return strings.Contains(logs.String(), "a federation relationship in the datastore is ignored")
	}, 15*time.Second, 5*time.Millisecond)
	require.Eventually(t, func() bool { return storedBundle(t, p, td) != nil }, 15*time.Second, 5*time.Millisecond)
	assert.Len(t, p.Stats().Federation, 1, "polled once, as configured")

	_, err = p.Admin.CreateFederationRelationship(ctx, storedSPIFFERelationship(t, org))
	require.ErrorIs(t, err, admin.ErrFailedPrecondition)
	assert.Contains(t, err.Error(), "in the server's configuration; change it there")
	_, err = p.Admin.UpdateFederationRelationship(ctx, storedSPIFFERelationship(t, org))
	require.ErrorIs(t, err, admin.ErrFailedPrecondition)
	// The shadowed stored one can be deleted; then the configured one is
	// refused.
	require.NoError(t, p.Admin.DeleteFederationRelationship(ctx, td))
	err = p.Admin.DeleteFederationRelationship(ctx, td)
	require.ErrorIs(t, err, admin.ErrFailedPrecondition)
}

// What the server could not poll is refused with a clear error, and
// nothing is stored.
func TestFederationRelationshipRefused(t *testing.T) {
	org := start(t, server.Config{FederationBind: "127.0.0.1:0"})
	p := start(t, server.Config{TrustDomain: partnerTD})
	ctx := t.Context()
	noBundle := storedSPIFFERelationship(t, org)
	noBundle.TrustDomainBundle = nil
	otherDoc, err := p.Bundle().Marshal()
	require.NoError(t, err)
	for name, tt := range map[string]struct {
		r    func() registry.FederationRelationship
		want string
	}{
		"own trust domain": {func() registry.FederationRelationship {
			r := storedSPIFFERelationship(t, org)
			r.TrustDomain, r.EndpointSPIFFEID = partnerTD, endpointID(partnerTD)
			return r
		}, "this server's own trust domain"},
		"self-serving without a bundle": {func() registry.FederationRelationship { return noBundle }, "needs a bootstrap bundle"},
		"bundle not a SPIFFE bundle": {func() registry.FederationRelationship {
			r := storedSPIFFERelationship(t, org)
			r.TrustDomainBundle = []byte("-----BEGIN CERTIFICATE-----")
			return r
		}, "the trust domain bundle"},
		"bundle of another endpoint's trust domain": {func() registry.FederationRelationship {
			r := storedSPIFFERelationship(t, org)
			r.EndpointSPIFFEID = endpointID(spiffeid.RequireTrustDomainFromString("third.test"))
			r.TrustDomainBundle = otherDoc
			return r
		}, "a bootstrap bundle is only for an endpoint of the trust domain it serves"},
		"http": {func() registry.FederationRelationship {
			r := storedSPIFFERelationship(t, org)
			r.BundleEndpointURL = "http://127.0.0.1/"
			return r
		}, "the scheme must be https"},
		"https_web with an endpoint ID": {func() registry.FederationRelationship {
			r := storedSPIFFERelationship(t, org)
			r.BundleEndpointProfile, r.TrustDomainBundle = registry.ProfileHTTPSWeb, nil
			return r
		}, "for the https_spiffe profile only"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := p.Admin.CreateFederationRelationship(ctx, tt.r())
			require.ErrorIs(t, err, registry.ErrInvalid)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	rels, err := p.Admin.FederationRelationships(ctx)
	require.NoError(t, err)
	assert.Empty(t, rels)

	// With the bundle stored by hand, a self-serving endpoint needs none.
	doc, err := org.Bundle().Marshal()
	require.NoError(t, err)
	_, err = p.Admin.SetFederatedBundle(ctx, td, doc)
	require.NoError(t, err)
	_, err = p.Admin.CreateFederationRelationship(ctx, noBundle)
	require.NoError(t, err)
}

// Servers sharing PostgreSQL share the relationships: one created through
// one server is polled by the other at once, and deleted, by neither.
func TestFederationRelationshipSharedByServers(t *testing.T) {
	org := start(t, server.Config{FederationBind: "127.0.0.1:0"})
	dsn := pgtest.New(t)
	cfg := postgres(t, dsn)
	cfg.TrustDomain, cfg.FederationRefresh = partnerTD, time.Hour
	p1 := nodetest.StartServer(t, cfg)
	cfg2 := postgres(t, dsn)
	cfg2.TrustDomain, cfg2.FederationRefresh = partnerTD, time.Hour
	p2 := nodetest.StartServer(t, cfg2)

	_, err := p1.Admin.CreateFederationRelationship(t.Context(), storedSPIFFERelationship(t, org))
	require.NoError(t, err)
	for _, s := range []*nodetest.Server{p1, p2} {
		require.Eventually(t, func() bool {
			f, ok := fedStats(s, td)
			return ok && f.Fetches > 0
		}, 15*time.Second, 5*time.Millisecond, "each server polls it")
	}
	rels, err := p2.Admin.FederationRelationships(t.Context())
	require.NoError(t, err)
	require.Len(t, rels, 1)
	assert.Equal(t, td, rels[0].TrustDomain)

	require.NoError(t, p2.Admin.DeleteFederationRelationship(t.Context(), td))
	for _, s := range []*nodetest.Server{p1, p2} {
		require.Eventually(t, func() bool {
			_, ok := fedStats(s, td)
			return !ok
		}, 15*time.Second, 5*time.Millisecond, "neither server polls it")
	}
}

// A relationship written into the datastore behind the admin API's back
// (another tool, a restored backup) is checked as the API checks it: one
// with the server's own trust domain, or one the server could not
// authenticate, is logged and never polled, and the own bundle is never
// overwritten.
func TestFederationStoredRelationshipChecked(t *testing.T) {
	org := start(t, server.Config{FederationBind: "127.0.0.1:0"})
	var logs logtest.Buffer
	p := start(t, server.Config{
		TrustDomain: partnerTD,
		Logger:      slog.New(slog.NewTextHandler(&logs, nil)),
	})
	ctx := t.Context()
	own := storedSPIFFERelationship(t, org)
	own.TrustDomain, own.EndpointSPIFFEID, own.TrustDomainBundle = partnerTD, endpointID(partnerTD), nil
	_, err := p.Stores.Federation.CreateFederationRelationship(ctx, own)
	require.NoError(t, err)
	unauthenticated := storedSPIFFERelationship(t, org)
	unauthenticated.TrustDomainBundle = nil
	_, err = p.Stores.Federation.CreateFederationRelationship(ctx, unauthenticated)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return strings.Contains(logs.String(), "trust_domain=partner.test") &&
			strings.Contains(logs.String(), "a trust domain's own bundle can never be overwritten through federation") &&
			strings.Contains(logs.String(), "needs a bootstrap bundle")
	}, 15*time.Second, 5*time.Millisecond, logs.String())
	assert.Empty(t, p.Stats().Federation, "neither is polled")
	assert.Nil(t, storedBundle(t, p, partnerTD))

	// Once the bundle is set by hand, the second one can be authenticated:
	// it is polled at the next look at the store.
	doc, err := org.Bundle().Marshal()
	require.NoError(t, err)
	_, err = p.Admin.SetFederatedBundle(ctx, td, doc)
	require.NoError(t, err)
	_, err = p.Stores.Federation.UpdateFederationRelationship(ctx, unauthenticated) // a write: the server looks again
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		f, ok := fedStats(p, td)
		return ok && f.Fetches > 0
	}, 15*time.Second, 5*time.Millisecond)
	_, ok := fedStats(p, partnerTD)
	assert.False(t, ok)
}
