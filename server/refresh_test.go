package server_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/server"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// A refresh through the admin API fetches a relationship's bundle at once,
// an hour before the next regular poll, for a stored relationship and one
// of the configuration alike: it stores a changed bundle and says so,
// reports an unchanged one, and, when the endpoint fails, says why and
// keeps the stored bundle.
func TestFederationRefresh(t *testing.T) {
	for _, source := range []string{"datastore", "config"} {
		t.Run(source, func(t *testing.T) {
			f := newFakeEndpoint(t)
			doc1, b1 := partnerDoc(t, 1, "partner-1")
			f.set("good", doc1)
			cfg := server.Config{FederationRefresh: time.Hour, FederationWebPKIRoots: f.roots}
			if source == "config" {
				cfg.Federation = []server.Relationship{{TrustDomain: partnerTD, URL: f.URL + "/bundle.json", Profile: server.ProfileHTTPSWeb, WebPKIRoots: f.roots}}
			}
			s := start(t, cfg)
			ctx := t.Context()
			if source == "datastore" {
				_, err := s.Admin.CreateFederationRelationship(ctx, registry.FederationRelationship{
					TrustDomain: partnerTD, BundleEndpointURL: f.URL + "/bundle.json", BundleEndpointProfile: registry.ProfileHTTPSWeb,
				})
				require.NoError(t, err)
			}
			require.Eventually(t, func() bool {
				b := storedBundle(t, s, partnerTD)
				return b != nil && b.Equal(b1)
			}, 15*time.Second, 5*time.Millisecond, "the first fetch")

			doc2, b2 := partnerDoc(t, 2, "partner-2")
			f.set("good", doc2)
			got, err := s.Admin.RefreshFederationRelationship(ctx, partnerTD)
			require.NoError(t, err)
			assert.Equal(t, admin.Refreshed{TrustDomain: partnerTD, Changed: true, SequenceNumber: 2}, got)
			assert.True(t, storedBundle(t, s, partnerTD).Equal(b2), "stored when the refresh returns")

			got, err = s.Admin.RefreshFederationRelationship(ctx, partnerTD)
			require.NoError(t, err)
			assert.Equal(t, admin.Refreshed{TrustDomain: partnerTD, Changed: false, SequenceNumber: 2}, got)

			f.set("status", nil)
			_, err = s.Admin.RefreshFederationRelationship(ctx, partnerTD)
			require.ErrorIs(t, err, admin.ErrUnavailable)
			assert.ErrorContains(t, err, fmt.Sprintf(`fetching the bundle of "partner.test" from %s/bundle.json failed; the stored bundle stays: `, f.URL))
			assert.ErrorContains(t, err, "503")
			assert.True(t, storedBundle(t, s, partnerTD).Equal(b2), "the last good bundle stays")
			st, ok := fedStats(s, partnerTD)
			require.True(t, ok)
			assert.Positive(t, st.Failures, "a failed refresh counts as a failed fetch")

			_, err = s.Admin.RefreshFederationRelationship(ctx, spiffeid.RequireTrustDomainFromString("absent.test"))
			require.ErrorIs(t, err, registry.ErrNotFound)
		})
	}
}
