package trust

import (
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// Property: the servers of a trust domain publish their WIT keys to each
// other, so that a WIT-SVID any of them signed validates against the
// bundle every one hands out; a server without WIT keys still carries the
// others'.
func TestWITKeysAreSharedBetweenServers(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("example.org")
	store := memstore.New(memstore.Config{})
	now := time.Now()
	clock := func() time.Time { return now }
	log := slog.New(slog.DiscardHandler)

	m1, err := rotation.New(t.Context(), rotation.Config{TrustDomain: td, WITKeys: true})
	require.NoError(t, err)
	m2, err := rotation.New(t.Context(), rotation.Config{TrustDomain: td})
	require.NoError(t, err)
	t1 := New(m1, Stores{store, store}, "s1", log, clock)
	t2 := New(m2, Stores{store, store}, "s2", log, clock)
	require.NoError(t, t1.Refresh(t.Context()))
	require.NoError(t, t2.Refresh(t.Context()))
	require.NoError(t, t1.Refresh(t.Context()))

	kid := m1.WITAuthority().KeyID()
	assert.True(t, t1.Bundle().HasWITAuthority(kid))
	assert.True(t, t2.Bundle().HasWITAuthority(kid), "the other server's WIT key is in the bundle")
	assert.Equal(t, m1.WITAuthority(), t1.WITAuthority())
	assert.Nil(t, t2.WITAuthority(), "a server without WIT keys signs no WIT-SVID")
	var _ ca.WITIssuer = t1

	// A new active WIT key is a change subscribers hear of, as for the
	// other authorities.
	updates, unsubscribe := t1.Subscribe()
	defer unsubscribe()
	_, err = m1.PrepareWITKey(t.Context())
	require.NoError(t, err)
	require.NoError(t, m1.ActivateWITKey(t.Context()))
	require.NoError(t, t1.Refresh(t.Context()))
	select {
	case <-updates:
	default:
		t.Fatal("no update after the WIT key changed")
	}
	require.NoError(t, t2.Refresh(t.Context()))
	assert.Len(t, t2.Bundle().WITAuthorities(), 2, "both of the other server's WIT keys")
}

// Property: a taint and a revocation of a WIT key made through a server
// that signs no WIT-SVIDs reach the key's own server: the revoked key
// leaves the bundle of the server it was made through at once, and its
// own server applies both at its next refresh.
func TestWITKeyMarksAcrossServers(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("example.org")
	store := memstore.New(memstore.Config{})
	now := time.Now()
	clock := func() time.Time { return now }
	log := slog.New(slog.DiscardHandler)
	ctx := t.Context()

	m1, err := rotation.New(ctx, rotation.Config{TrustDomain: td, WITKeys: true})
	require.NoError(t, err)
	m2, err := rotation.New(ctx, rotation.Config{TrustDomain: td})
	require.NoError(t, err)
	t1 := New(m1, Stores{store, store}, "s1", log, clock)
	t2 := New(m2, Stores{store, store}, "s2", log, clock)
	old := m1.WITAuthority().KeyID()
	_, err = m1.PrepareWITKey(ctx)
	require.NoError(t, err)
	require.NoError(t, m1.ActivateWITKey(ctx))
	require.NoError(t, t1.Refresh(ctx))
	require.NoError(t, t2.Refresh(ctx))
	require.True(t, t2.Bundle().HasWITAuthority(old))

	a2 := authorities{t2}
	list, err := a2.Authorities(ctx)
	require.NoError(t, err)
	var wits []admin.Authority
	for _, a := range list {
		if a.Kind == registry.AuthorityWIT {
			wits = append(wits, a)
		}
	}
	require.Len(t, wits, 2, "the other server's WIT keys are listed")
	assert.Equal(t, old, wits[0].ID)
	assert.Equal(t, "s1", wits[0].ServerID)
	assert.False(t, wits[0].Local)
	assert.Equal(t, registry.AuthorityOld, wits[0].State)

	_, err = a2.TaintAuthority(ctx, registry.AuthorityWIT, m1.WITAuthority().KeyID())
	require.ErrorIs(t, err, admin.ErrFailedPrecondition, "the active WIT key of another server cannot be tainted")
	got, err := a2.TaintAuthority(ctx, registry.AuthorityWIT, old)
	require.NoError(t, err)
	assert.True(t, got.Tainted && got.Pending, "recorded; s1 has not applied it")
	require.NoError(t, t1.Refresh(ctx))
	assert.True(t, m1.WITKeys()[0].Tainted, "s1 applied the taint")

	got, err = a2.RevokeAuthority(ctx, registry.AuthorityWIT, old)
	require.NoError(t, err)
	assert.True(t, got.Revoked)
	assert.False(t, t2.Bundle().HasWITAuthority(old), "s2 leaves it out at once")
	assert.True(t, t2.Bundle().HasWITAuthority(m1.WITAuthority().KeyID()), "the active one stays")
	require.NoError(t, t1.Refresh(ctx))
	assert.Len(t, m1.WITKeys(), 1, "s1 applied the revocation")
	assert.False(t, t1.Bundle().HasWITAuthority(old))
}
