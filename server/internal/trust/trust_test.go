package trust

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// Property: a share read back from the store is the share written, though
// the store keeps times to the microsecond only; any change of its
// document or of an authority is a change. Otherwise a server would
// publish its unchanged share on every read, waking every other server.
func TestSameShareComparesTheStoreForm(t *testing.T) {
	m, err := rotation.New(t.Context(), rotation.Config{TrustDomain: spiffeid.RequireTrustDomainFromString("example.org")})
	require.NoError(t, err)
	doc, err := m.Bundle().Marshal()
	require.NoError(t, err)
	notAfter := time.Now().Add(time.Hour).Round(0).Add(123 * time.Nanosecond)
	want := registry.ServerBundle{
		ServerID: "s1", Document: doc, ExpiresAt: notAfter,
		Authorities: []registry.ServerAuthority{{
			Kind: registry.AuthorityJWT, ID: "k1", State: registry.AuthorityActive, NotAfter: notAfter,
		}},
	}
	store := memstore.New(memstore.Config{})
	require.NoError(t, store.PutServerBundle(t.Context(), want))
	list, err := store.ListServerBundles(t.Context(), time.Now())
	require.NoError(t, err)
	require.Len(t, list, 1)
	stored := list[0]
	assert.True(t, sameShare(stored, want))

	tainted := want.Clone()
	tainted.Authorities[0].Tainted = true
	assert.False(t, sameShare(stored, tainted))
	other := want.Clone()
	other.Document = append(doc[:len(doc):len(doc)], ' ')
	assert.False(t, sameShare(stored, other))
	none := want.Clone()
	none.Authorities = nil
	assert.False(t, sameShare(stored, none))
}

// countingShares counts the writes of servers' shares.
type countingShares struct {
	*memstore.Store
	puts int
}

func (c *countingShares) PutServerBundle(ctx context.Context, b registry.ServerBundle) error {
	c.puts++
	return c.Store.PutServerBundle(ctx, b)
}

// Property: a server writes its share when there is none, when its CA
// changed, and when less than shareRenewal of it remains; reading the
// shares again writes nothing otherwise.
func TestShareIsPublishedOnlyWhenDue(t *testing.T) {
	m, err := rotation.New(t.Context(), rotation.Config{TrustDomain: spiffeid.RequireTrustDomainFromString("example.org")})
	require.NoError(t, err)
	store := &countingShares{Store: memstore.New(memstore.Config{})}
	now := time.Now()
	tr := New(m, Stores{store, store}, "s1", slog.New(slog.DiscardHandler), func() time.Time { return now })

	require.NoError(t, tr.Refresh(t.Context()))
	assert.Equal(t, 1, store.puts, "none stored")
	require.NoError(t, tr.Refresh(t.Context()))
	assert.Equal(t, 1, store.puts, "unchanged")

	expires := m.X509Authority().Certificate().NotAfter
	assert.Equal(t, expires.Add(-shareRenewal).Sub(now), tr.RenewIn(0))
	now = expires.Add(-shareRenewal - time.Minute)
	require.NoError(t, tr.Refresh(t.Context()))
	assert.Equal(t, 1, store.puts, "not due yet")
	now = now.Add(2 * time.Minute)
	assert.Equal(t, time.Minute, tr.RenewIn(time.Minute), "overdue: at least the given wait")
	require.NoError(t, tr.Refresh(t.Context()))
	assert.Equal(t, 2, store.puts, "due for renewal")
	assert.Equal(t, shareLifetime-shareRenewal, tr.RenewIn(0), "renewed for shareLifetime")

	_, err = m.PrepareX509CA(t.Context())
	require.NoError(t, err)
	require.NoError(t, tr.Refresh(t.Context()))
	assert.Equal(t, 3, store.puts, "the CA changed")
}

// Property: as the bundle endpoint's source, the view serves the trust
// domain's own bundle as the server hands it out, and no other.
func TestBundleSourceIsTheOwnBundle(t *testing.T) {
	tr, _, _ := newTestTrust(t)
	b, err := tr.GetBundleForTrustDomain(spiffeid.RequireTrustDomainFromString("example.org"))
	require.NoError(t, err)
	assert.Same(t, tr.Bundle(), b)
	_, err = tr.GetBundleForTrustDomain(spiffeid.RequireTrustDomainFromString("partner.test"))
	require.EqualError(t, err, `server: no bundle for trust domain "partner.test"`)
}
