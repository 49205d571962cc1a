package fedpoll

import (
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/server/internal/trust"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// Fed rules 21, 22: a refresh hint shorter than the configured interval is
// followed, but the endpoint cannot make the server poll in a tight loop.
func TestNextRefresh(t *testing.T) {
	for _, tc := range []struct {
		refresh, hint, want time.Duration
	}{
		{5 * time.Minute, 0, 5 * time.Minute},
		{5 * time.Minute, time.Hour, 5 * time.Minute},
		{5 * time.Minute, time.Minute, time.Minute},
		{5 * time.Minute, time.Millisecond, time.Second},
		{100 * time.Millisecond, 10 * time.Millisecond, 100 * time.Millisecond},
		{100 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond},
	} {
		w := &watcher{refresh: tc.refresh}
		assert.Equal(t, tc.want, w.nextRefresh(tc.hint), "refresh %s hint %s", tc.refresh, tc.hint)
	}
}

// Fed rules 17, 18: the bundle that authenticates an https_spiffe endpoint.
func TestEndpointBundleSource(t *testing.T) {
	own := spiffeid.RequireTrustDomainFromString("example.org")
	partner := spiffeid.RequireTrustDomainFromString("partner.test")
	boot := x509bundle.New(partner)
	w := &watcher{
		rel: Checked{Relationship: Relationship{
			TrustDomain: partner, Profile: ProfileHTTPSSPIFFE, EndpointSPIFFEID: spiffeid.RequireFromPath(partner, "/x"),
		}, bootstrap: boot},
		own: own, trust: newTestTrust(t, own),
	}
	_, err := w.GetX509BundleForTrustDomain(own)
	require.EqualError(t, err, `server: no bundle of "example.org" for the bundle endpoint of "partner.test"`, "only the endpoint's trust domain")
	b, err := w.GetX509BundleForTrustDomain(partner)
	require.NoError(t, err)
	assert.Same(t, boot, b, "the bootstrap bundle until a fetch succeeds")
	w.fetched.Store(true)
	_, err = w.GetX509BundleForTrustDomain(partner)
	require.ErrorContains(t, err, "no bundle of \"partner.test\" is stored", "never the bootstrap after the first fetch")

	// An endpoint of the own trust domain is authenticated with the own
	// bundle.
	w.rel.EndpointSPIFFEID = spiffeid.RequireFromPath(own, "/x")
	b, err = w.GetX509BundleForTrustDomain(own)
	require.NoError(t, err)
	assert.Equal(t, own, b.TrustDomain())
	assert.Equal(t, w.trust.Bundle().X509Authorities(), b.X509Authorities())
}

// newTestTrust returns the view of a server of td over a fresh CA and an
// empty store.
func newTestTrust(t *testing.T, td spiffeid.TrustDomain) *trust.View {
	t.Helper()
	m, err := rotation.New(t.Context(), rotation.Config{TrustDomain: td})
	require.NoError(t, err)
	st := memstore.New(memstore.Config{})
	v := trust.New(m, trust.Stores{Shares: st, Bundles: st}, "s1", slog.New(slog.DiscardHandler), time.Now)
	require.NoError(t, v.Refresh(t.Context()))
	return v
}
