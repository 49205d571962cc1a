package server

import (
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/ca/rotation"
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
	t1 := newTrust(m1, store, "s1", log, clock)
	t2 := newTrust(m2, store, "s2", log, clock)
	require.NoError(t, t1.refresh(t.Context()))
	require.NoError(t, t2.refresh(t.Context()))
	require.NoError(t, t1.refresh(t.Context()))

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
	require.NoError(t, t1.refresh(t.Context()))
	select {
	case <-updates:
	default:
		t.Fatal("no update after the WIT key changed")
	}
	require.NoError(t, t2.refresh(t.Context()))
	assert.Len(t, t2.Bundle().WITAuthorities(), 2, "both of the other server's WIT keys")
}
