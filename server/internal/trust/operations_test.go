package trust

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

var td = spiffeid.RequireTrustDomainFromString("example.org")

// twoServers returns the views of servers s1 and s2 of td, each over a CA
// of its own, sharing one in-memory store, both refreshed.
func twoServers(t *testing.T) (t1, t2 *View, store *memstore.Store) {
	t.Helper()
	store = memstore.New(memstore.Config{})
	log := slog.New(slog.DiscardHandler)
	m1, err := rotation.New(t.Context(), rotation.Config{TrustDomain: td})
	require.NoError(t, err)
	m2, err := rotation.New(t.Context(), rotation.Config{TrustDomain: td})
	require.NoError(t, err)
	t1, t2 = New(m1, Stores{store, store}, "s1", log, time.Now), New(m2, Stores{store, store}, "s2", log, time.Now)
	require.NoError(t, t1.Refresh(t.Context()))
	require.NoError(t, t2.Refresh(t.Context()))
	require.NoError(t, t1.Refresh(t.Context()))
	return t1, t2, store
}

// rotateOwn prepares and activates a new authority of kind k on v's own
// CA through the admin operations, and returns the ID of the one that was
// active.
func rotateOwn(t *testing.T, v *View, k registry.AuthorityKind) string {
	t.Helper()
	a := v.AuthorityManager()
	old := infos(v.ca, k)[0].ID
	prepared, err := a.PrepareAuthority(t.Context(), k)
	require.NoError(t, err)
	require.True(t, prepared.Local)
	require.Equal(t, registry.AuthorityPrepared, prepared.State)
	active, err := a.ActivateAuthority(t.Context(), k, prepared.ID)
	require.NoError(t, err)
	require.Equal(t, prepared.ID, active.ID)
	require.Equal(t, registry.AuthorityActive, active.State)
	return old
}

// Property: activation acts on the own CA's prepared authority only, and
// says what is wrong otherwise.
func TestActivateAuthority(t *testing.T) {
	t1, _, _ := twoServers(t)
	a := t1.AuthorityManager()
	ctx := t.Context()

	_, err := a.ActivateAuthority(ctx, registry.AuthorityJWT, "")
	require.ErrorIs(t, err, admin.ErrFailedPrecondition)
	assert.Contains(t, err.Error(), "no prepared JWT key to activate on this server")
	_, err = a.ActivateAuthority(ctx, registry.AuthorityJWT, "nope")
	require.ErrorIs(t, err, registry.ErrNotFound)
	assert.Equal(t, `server: no JWT key "nope" on this server`, err.Error())
	active := t1.JWTAuthority().KeyID()
	_, err = a.ActivateAuthority(ctx, registry.AuthorityJWT, active)
	require.ErrorIs(t, err, admin.ErrFailedPrecondition)
	assert.Contains(t, err.Error(), "is active, not prepared")

	old := rotateOwn(t, t1, registry.AuthorityJWT)
	assert.Equal(t, active, old)
	assert.NotEqual(t, old, t1.JWTAuthority().KeyID())
	assert.True(t, t1.Bundle().HasJWTAuthority(old), "the old key stays in the bundle")

	// Without an ID, the prepared one is activated.
	_, err = a.PrepareAuthority(ctx, registry.AuthorityX509)
	require.NoError(t, err)
	got, err := a.ActivateAuthority(ctx, registry.AuthorityX509, "")
	require.NoError(t, err)
	assert.Equal(t, t1.X509Authority().Certificate().NotAfter, got.NotAfter)
}

// Property: the own CA's old authority is tainted and revoked at once; its
// active one can be neither, a prepared one cannot be tainted, and the
// errors say what to do instead.
func TestTaintAndRevokeOwnAuthority(t *testing.T) {
	t1, _, _ := twoServers(t)
	a := t1.AuthorityManager()
	ctx := t.Context()
	oldCert := t1.X509Authority().Certificate()
	old := rotateOwn(t, t1, registry.AuthorityX509)
	active := infos(t1.ca, registry.AuthorityX509)[1].ID

	_, err := a.TaintAuthority(ctx, registry.AuthorityX509, active)
	require.ErrorIs(t, err, admin.ErrFailedPrecondition)
	assert.Contains(t, err.Error(), "this server's X.509 CA "+active+" is active: the active authority cannot be tainted")
	_, err = a.RevokeAuthority(ctx, registry.AuthorityX509, active)
	require.ErrorIs(t, err, admin.ErrFailedPrecondition)
	assert.Contains(t, err.Error(), "the active authority cannot be revoked")

	got, err := a.TaintAuthority(ctx, registry.AuthorityX509, old)
	require.NoError(t, err)
	assert.True(t, got.Tainted && got.Local && !got.Pending)
	assert.True(t, slices.ContainsFunc(t1.TaintedX509CAs(), oldCert.Equal), "named as tainted at once")

	got, err = a.RevokeAuthority(ctx, registry.AuthorityX509, old)
	require.NoError(t, err)
	assert.True(t, got.Revoked)
	assert.False(t, t1.Bundle().HasX509Authority(oldCert), "out of the bundle at once")
	_, err = a.RevokeAuthority(ctx, registry.AuthorityX509, old)
	require.ErrorIs(t, err, registry.ErrNotFound)

	prepared, err := a.PrepareAuthority(ctx, registry.AuthorityJWT)
	require.NoError(t, err)
	_, err = a.TaintAuthority(ctx, registry.AuthorityJWT, prepared.ID)
	require.ErrorIs(t, err, admin.ErrFailedPrecondition)
	assert.Contains(t, err.Error(), "a prepared authority signed nothing and cannot be tainted")
	got, err = a.RevokeAuthority(ctx, registry.AuthorityJWT, prepared.ID)
	require.NoError(t, err, "the own CA's prepared authority is revoked at once")
	assert.True(t, got.Revoked)
	assert.Len(t, t1.ca.JWTKeys(), 1)
}

// Property: a taint and a revocation of another server's old authority
// are recorded as marks: the server they are made through honours them at
// once (the taint named to its agents, the revoked CA out of its bundle),
// the owner applies them at its next refresh, and both list them.
func TestMarksOnAnotherServersAuthority(t *testing.T) {
	t1, t2, _ := twoServers(t)
	a2 := t2.AuthorityManager()
	ctx := t.Context()
	oldCert := t1.X509Authority().Certificate()
	old := rotateOwn(t, t1, registry.AuthorityX509)
	oldJWT := rotateOwn(t, t1, registry.AuthorityJWT)
	prepared, err := t1.AuthorityManager().PrepareAuthority(ctx, registry.AuthorityX509)
	require.NoError(t, err)
	require.NoError(t, t2.Refresh(ctx))

	list, err := a2.Authorities(ctx)
	require.NoError(t, err)
	i := slices.IndexFunc(list, func(a admin.Authority) bool { return a.ID == old })
	require.GreaterOrEqual(t, i, 0, "s1's authorities are listed by s2")
	assert.Equal(t, admin.Authority{Kind: registry.AuthorityX509, ID: old, ServerID: "s1", State: registry.AuthorityOld,
		NotAfter: list[i].NotAfter}, list[i])

	_, err = a2.RevokeAuthority(ctx, registry.AuthorityX509, prepared.ID)
	require.ErrorIs(t, err, admin.ErrFailedPrecondition)
	assert.Contains(t, err.Error(), "X.509 CA "+prepared.ID+" of server s1 is prepared: through another server only an old authority can be revoked")

	got, err := a2.TaintAuthority(ctx, registry.AuthorityX509, old)
	require.NoError(t, err)
	assert.True(t, got.Tainted && got.Pending && !got.Local, "recorded, not applied yet")
	assert.True(t, slices.ContainsFunc(t2.TaintedX509CAs(), oldCert.Equal), "s2 names it as tainted at once")
	_, err = a2.TaintAuthority(ctx, registry.AuthorityJWT, oldJWT)
	require.NoError(t, err)
	assert.Contains(t, t2.TaintedJWTKeyIDs(), oldJWT)
	assert.NotContains(t, t1.TaintedJWTKeyIDs(), oldJWT, "s1 has not read the mark yet")

	require.NoError(t, t1.Refresh(ctx))
	assert.True(t, infos(t1.ca, registry.AuthorityX509)[0].Tainted, "s1 applied the taint")
	assert.Contains(t, t1.TaintedJWTKeyIDs(), oldJWT)
	require.NoError(t, t2.Refresh(ctx))
	got, err = a2.RevokeAuthority(ctx, registry.AuthorityX509, old)
	require.NoError(t, err)
	assert.True(t, got.Revoked && got.Pending)
	assert.False(t, t2.Bundle().HasX509Authority(oldCert), "s2 leaves it out at once")
	assert.True(t, t1.Bundle().HasX509Authority(oldCert), "s1 until its next refresh")
	require.NoError(t, t1.Refresh(ctx))
	assert.False(t, t1.Bundle().HasX509Authority(oldCert))
	assert.Len(t, t1.ca.X509CAs(), 2, "the active and the prepared CA")
}

// Property: the view reads the federated bundles from the store, leaving
// out one of its own trust domain and one that does not parse, tells its
// subscribers when they change and only then, and finds one by trust
// domain.
func TestFederatedBundles(t *testing.T) {
	t1, _, store := twoServers(t)
	ctx := t.Context()
	partner := spiffeid.RequireTrustDomainFromString("partner.test")
	doc, err := spiffebundle.New(partner).Marshal()
	require.NoError(t, err)
	own, err := t1.Bundle().Marshal()
	require.NoError(t, err)
	for _, b := range []registry.FederatedBundle{
		{TrustDomain: partner, Document: doc},
		{TrustDomain: td, Document: own},
		{TrustDomain: spiffeid.RequireTrustDomainFromString("garbled.test"), Document: []byte("{")},
	} {
		_, err := store.PutBundle(ctx, b)
		require.NoError(t, err)
	}
	updates, unsubscribe := t1.Subscribe()
	defer unsubscribe()

	require.NoError(t, t1.Refresh(ctx))
	require.Len(t, t1.FederatedBundles(), 1)
	assert.Equal(t, partner, t1.FederatedBundles()[0].TrustDomain())
	assert.NotNil(t, t1.FederatedBundle(partner))
	assert.Nil(t, t1.FederatedBundle(td), "the own bundle is never federated")
	assert.Equal(t, td, t1.TrustDomain())
	select {
	case <-updates:
	default:
		t.Fatal("no update after a federated bundle was stored")
	}
	require.NoError(t, t1.Refresh(ctx))
	select {
	case <-updates:
		t.Fatal("an update though nothing changed")
	default:
	}
}

// Property: Run refreshes the view when the stores tell of a write of
// another server's share or of a federated bundle, and when the own CA
// changes, without waiting for the poll.
func TestRunFollowsTheStores(t *testing.T) {
	t1, t2, store := twoServers(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t1.Run(ctx, time.Hour)
	}()
	defer func() { cancel(); <-done }()

	rotateOwn(t, t2, registry.AuthorityX509)
	newCA := t2.X509Authority().Certificate()
	require.Eventually(t, func() bool { return t1.Bundle().HasX509Authority(newCA) }, 15*time.Second, 5*time.Millisecond,
		"another server's new CA")

	partner := spiffeid.RequireTrustDomainFromString("partner.test")
	doc, err := spiffebundle.New(partner).Marshal()
	require.NoError(t, err)
	_, err = store.PutBundle(t.Context(), registry.FederatedBundle{TrustDomain: partner, Document: doc})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return t1.FederatedBundle(partner) != nil }, 15*time.Second, 5*time.Millisecond,
		"a federated bundle")

	prepared, err := t1.ca.PrepareJWTKey(t.Context())
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		list, err := store.ListServerBundles(t.Context(), time.Now())
		require.NoError(t, err)
		for _, b := range list {
			if b.ServerID == "s1" && slices.ContainsFunc(b.Authorities, func(a registry.ServerAuthority) bool { return a.ID == prepared.ID }) {
				return true
			}
		}
		return false
	}, 15*time.Second, 5*time.Millisecond, "the own CA's change is published")
}
