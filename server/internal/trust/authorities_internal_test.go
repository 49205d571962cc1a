package trust

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// newTestTrust returns the trust of server "own" over a fresh rotating CA
// and an in-memory store, logging to the returned buffer.
func newTestTrust(t *testing.T) (*View, *memstore.Store, *logtest.Buffer) {
	t.Helper()
	m, err := rotation.New(t.Context(), rotation.Config{TrustDomain: spiffeid.RequireTrustDomainFromString("example.org")})
	require.NoError(t, err)
	store := memstore.New(memstore.Config{})
	var logs logtest.Buffer
	tr := New(m, Stores{store, store}, "own", slog.New(slog.NewTextHandler(&logs, nil)), time.Now)
	require.NoError(t, tr.Refresh(t.Context()))
	return tr, store, &logs
}

// Property: a mark that names an authority of this server that is not old
// (it cannot come from the admin API, which checks the state first) is
// not applied, and is logged once, not at every refresh.
func TestMarkOnActiveAuthorityIsNotApplied(t *testing.T) {
	tr, store, logs := newTestTrust(t)
	active := tr.ca.X509CAs()[0]
	_, err := store.PutAuthorityMark(t.Context(), registry.AuthorityMark{
		ServerID: "own", Kind: registry.AuthorityX509, AuthorityID: active.ID, Revoked: true, ExpiresAt: active.NotAfter,
	})
	require.NoError(t, err)
	for range 3 {
		require.NoError(t, tr.Refresh(t.Context()))
	}
	assert.Equal(t, rotation.StateActive, tr.ca.X509CAs()[0].State)
	assert.False(t, tr.ca.X509CAs()[0].Tainted)
	assert.True(t, tr.Bundle().HasX509Authority(active.Certificate))
	assert.Equal(t, 1, strings.Count(logs.String(), "is not applied"), logs.String())
}

// Property: marks on another server's authorities are honoured only for
// old authorities, whatever else the server publishes; a certificate that
// does not parse names no issuer.
func TestHonourOnlyOldAuthorities(t *testing.T) {
	tr, _, _ := newTestTrust(t)
	ca := tr.ca.X509CAs()[0]
	exp := ca.NotAfter
	peer := registry.ServerBundle{ServerID: "peer", Authorities: []registry.ServerAuthority{
		{Kind: registry.AuthorityX509, ID: "active", State: registry.AuthorityActive, NotAfter: exp, Certificate: ca.Certificate.Raw},
		{Kind: registry.AuthorityX509, ID: "garbled", State: registry.AuthorityOld, Tainted: true, NotAfter: exp, Certificate: []byte{1}},
		{Kind: registry.AuthorityJWT, ID: "kid-old", State: registry.AuthorityOld, NotAfter: exp},
		{Kind: registry.AuthorityJWT, ID: "kid-prepared", State: registry.AuthorityPrepared, NotAfter: exp},
	}}
	marks := []registry.AuthorityMark{
		{ServerID: "peer", Kind: registry.AuthorityX509, AuthorityID: "active", Revoked: true, ExpiresAt: exp},
		{ServerID: "peer", Kind: registry.AuthorityJWT, AuthorityID: "kid-old", Revoked: true, ExpiresAt: exp},
		{ServerID: "peer", Kind: registry.AuthorityJWT, AuthorityID: "kid-prepared", Revoked: true, ExpiresAt: exp},
		{ServerID: "gone", Kind: registry.AuthorityJWT, AuthorityID: "kid-gone", Revoked: true, ExpiresAt: exp},
	}
	h := honour([]registry.ServerBundle{peer}, marks)
	assert.Empty(t, h.revokedX509, "the active CA stays")
	assert.Empty(t, h.tainted, "nor is it tainted; the garbled one is skipped")
	assert.Equal(t, map[string]bool{"kid-old": true}, h.revokedJWT)
}

func TestFailedMapsRotationErrors(t *testing.T) {
	a := authorities{}
	err := a.failed("tainting", registry.AuthorityX509, "ab", fmt.Errorf("x: %w", rotation.ErrNotFound))
	require.ErrorIs(t, err, registry.ErrNotFound)
	assert.Equal(t, `server: no X.509 CA "ab" on this server`, err.Error(), "the message says it all")
	err = a.failed("tainting", registry.AuthorityJWT, "k", fmt.Errorf("%w: only an old JWT key can be tainted", rotation.ErrWrongState))
	require.ErrorIs(t, err, admin.ErrFailedPrecondition)
	require.ErrorIs(t, err, rotation.ErrWrongState)
	assert.Equal(t, "server: rotation: authority is in the wrong state: only an old JWT key can be tainted", err.Error())
	err = a.failed("revoking", registry.AuthorityJWT, "k", context.DeadlineExceeded)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, "server: revoking JWT key k: context deadline exceeded", err.Error())
}

// failingMarks is a store whose marks cannot be read or written.
type failingMarks struct{ *memstore.Store }

var errStoreDown = errors.New("store down")

func (failingMarks) PutAuthorityMark(context.Context, registry.AuthorityMark) (registry.AuthorityMark, error) {
	return registry.AuthorityMark{}, errStoreDown
}

func (failingMarks) ListAuthorityMarks(context.Context, time.Time) ([]registry.AuthorityMark, error) {
	return nil, errStoreDown
}

// Property: when the store fails, the operations say so and change nothing
// they cannot finish.
func TestAuthorityOperationsStoreDown(t *testing.T) {
	tr, store, logs := newTestTrust(t)
	tr.stores.Shares = failingMarks{store}
	a := authorities{tr}
	_, err := a.Authorities(t.Context())
	require.ErrorIs(t, err, errStoreDown)
	_, err = a.TaintAuthority(t.Context(), registry.AuthorityX509, "00ff")
	require.ErrorIs(t, err, errStoreDown)
	require.ErrorIs(t, tr.Refresh(t.Context()), errStoreDown)

	// A change of the own CA is made; publishing it waits for the refresh
	// loop, and the failure is logged.
	prepared, err := a.PrepareAuthority(t.Context(), registry.AuthorityJWT)
	require.NoError(t, err)
	assert.Equal(t, registry.AuthorityPrepared, prepared.State)
	assert.Contains(t, logs.String(), "refreshing the bundle after an authority change failed")
}
